/* tclient.c — a test MQTT client on fake I/O (see tclient.h). */
#include "tclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slot.h"

void tc_send_raw(tcli_t *t, const void *p, size_t n)
{
	conn_t *c = fake_conn_find(t->id);

	if (c)
		fake_input(c, p, n);
	fake_turn();
}

static void pull(tcli_t *t)
{
	conn_t *c = fake_conn_find(t->id);
	uint8_t *out;
	size_t n;

	n = c ? fake_output(c, &out) : fake_last_output(t->id, &out);
	/* The client took the bytes: as a send completion would, let the connection send more. */
	if (c && n && c->sk.ops->on_sent)
		c->sk.ops->on_sent(&c->sk, n);
	if (n) {
		t->in = realloc(t->in, t->in_len + n);
		memcpy(t->in + t->in_len, out, n);
		t->in_len += n;
	}
	free(out);
}

bool tc_recv(tcli_t *t, mqtt_frame_t *f)
{
	int64_t r;

	pull(t);
	if (t->in_off >= t->in_len)
		return false;
	r = mqtt_frame(t->in + t->in_off, t->in_len - t->in_off, 0, f);
	if (r <= 0 || (size_t)r > sizeof(t->pkt))
		return false;
	memcpy(t->pkt, t->in + t->in_off, (size_t)r);
	f->body = t->pkt + f->header_len;
	t->in_off += (size_t)r;
	return true;
}

bool tc_expect(tcli_t *t, uint8_t type, mqtt_frame_t *f)
{
	while (tc_recv(t, f)) {
		if (f->type == type)
			return true;
	}
	return false;
}

int tc_open(tcli_t *t, uint8_t version, const char *cid, bool clean, uint32_t expiry, const mqtt_props_t *props)
{
	mqtt_connect_t cn;
	mqtt_connack_t ack;
	mqtt_frame_t f;
	uint8_t buf[4096];
	size_t n;

	memset(t, 0, sizeof(*t));
	t->version = version;
	t->c = fake_connect();
	if (!t->c)
		return -1; /* refused at accept */
	t->id = t->c->id;
	memset(&cn, 0, sizeof(cn));
	cn.version = version;
	cn.clean_start = clean;
	cn.keep_alive = 60;
	cn.client_id.p = (const uint8_t *)cid;
	cn.client_id.len = (uint32_t)strlen(cid);
	if (props)
		cn.props = *props;
	if (version == MQTT_V5 && expiry) {
		cn.props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		cn.props.session_expiry = expiry;
	}
	n = mqtt_encode_connect(buf, sizeof(buf), &cn);
	tc_send_raw(t, buf, n);
	if (!tc_recv(t, &f) || f.type != MQTT_CONNACK || mqtt_decode_connack(&f, version, &ack) < 0)
		return -1;
	return ack.reason;
}

void tc_publish(tcli_t *t, const char *topic, const char *payload, uint8_t qos, uint16_t pid)
{
	mqtt_publish_t p;
	uint8_t buf[8192];
	size_t n;

	memset(&p, 0, sizeof(p));
	p.qos = qos;
	p.packet_id = pid;
	p.topic.p = (const uint8_t *)topic;
	p.topic.len = (uint32_t)strlen(topic);
	p.payload.p = (const uint8_t *)payload;
	p.payload.len = (uint32_t)strlen(payload);
	n = mqtt_encode_publish(buf, sizeof(buf), t->version, &p);
	tc_send_raw(t, buf, n);
}

void tc_subscribe(tcli_t *t, uint16_t pid, const char *filter, uint8_t qos)
{
	mqtt_str_t f = { (const uint8_t *)filter, (uint32_t)strlen(filter) };
	mqtt_subopts_t o = { .qos = qos };
	mqtt_props_t props;
	uint8_t buf[8192];
	size_t n;

	memset(&props, 0, sizeof(props));
	n = mqtt_encode_subscribe(buf, sizeof(buf), t->version, pid, &props, &f, &o, 1);
	tc_send_raw(t, buf, n);
}

void tc_unsubscribe(tcli_t *t, uint16_t pid, const char *filter)
{
	mqtt_str_t f = { (const uint8_t *)filter, (uint32_t)strlen(filter) };
	mqtt_props_t props;
	uint8_t buf[8192];
	size_t n;

	memset(&props, 0, sizeof(props));
	n = mqtt_encode_unsubscribe(buf, sizeof(buf), t->version, pid, &props, &f, 1);
	tc_send_raw(t, buf, n);
}

void tc_ack(tcli_t *t, uint8_t type, uint16_t pid)
{
	mqtt_ack_t a;
	uint8_t buf[64];
	size_t n;

	memset(&a, 0, sizeof(a));
	a.packet_id = pid;
	n = mqtt_encode_ack(buf, sizeof(buf), type, t->version, &a);
	tc_send_raw(t, buf, n);
}

int tc_ack_reason(tcli_t *t, uint8_t type, uint16_t *pid)
{
	mqtt_frame_t f;
	mqtt_ack_t a;

	if (!tc_expect(t, type, &f) || mqtt_decode_ack(&f, t->version, &a) < 0)
		return -1;
	if (pid)
		*pid = a.packet_id;
	return a.reason;
}

bool tc_alive(const tcli_t *t)
{
	return fake_conn_open(t->id);
}

void tc_close(tcli_t *t)
{
	free(t->in);
	t->in = NULL;
	t->in_len = t->in_off = 0;
}

const char *tc_id_on(const char *base, int k, int n)
{
	static char id[128];

	for (unsigned i = 0;; i++) {
		int len = snprintf(id, sizeof(id), "%s-%u", base, i);

		if (slot_owner(slot_of(id, (size_t)len), n) == k)
			return id;
	}
}

/* conn_send.c — encoding a connection's own packets within its client's limits (see conn_send.h). */
#include "conn_send.h"

#include <string.h>

#include "log.h"
#include "worker.h"

/*
 * Encode one packet whose properties may be trimmed: try with everything, then without the Reason String and
 * User Properties ([MQTT-3.1.2-25]: never more than the client's Maximum Packet Size); if even that does not
 * fit, the connection cannot be answered and is closed.
 */
typedef uint32_t (*size_fn)(const void *pkt, uint8_t version, uint8_t type);
typedef size_t (*enc_fn)(uint8_t *buf, size_t cap, const void *pkt, uint8_t version, uint8_t type);

static int send_trimmed(conn_t *c, mqtt_props_t *props, const void *pkt, uint8_t type, size_fn sz, enc_fn enc)
{
	uint32_t n = sz(pkt, c->version, type);
	uint8_t *p;

	if (n > conn_max_packet(c) && props) {
		props->present &= ~(MQTT_PROP_BIT(MQTT_PROP_REASON_STRING) | MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY));
		props->user.len = 0;
		n = sz(pkt, c->version, type);
	}
	if (n > conn_max_packet(c)) {
		log_conn(LOG_INFO, c->id, 0, "%s: a %s of %u bytes exceeds the client's maximum packet size %u: "
			"closing", c->addr, mqtt_type_name(type), n, c->max_packet_out);
		conn_abort(c, MQTT_E_CLOSE);
		return MQTT_E_CLOSE;
	}
	p = conn_reserve(c, n);
	if (!p)
		return MQTT_E_QUOTA;
	conn_commit(c, enc(p, n, pkt, c->version, type));
	return 0;
}

static uint32_t ack_size(const void *a, uint8_t v, uint8_t t) { (void)t; return mqtt_ack_size(v, a); }
static size_t ack_enc(uint8_t *b, size_t cap, const void *a, uint8_t v, uint8_t t)
{
	return mqtt_encode_ack(b, cap, t, v, a);
}
static uint32_t connack_size(const void *a, uint8_t v, uint8_t t) { (void)t; return mqtt_connack_size(v, a); }
static size_t connack_enc(uint8_t *b, size_t cap, const void *a, uint8_t v, uint8_t t)
{
	(void)t;
	return mqtt_encode_connack(b, cap, v, a);
}
static uint32_t disc_size(const void *a, uint8_t v, uint8_t t) { (void)t; return mqtt_disconnect_size(v, a); }
static size_t disc_enc(uint8_t *b, size_t cap, const void *a, uint8_t v, uint8_t t)
{
	(void)t;
	return mqtt_encode_disconnect(b, cap, v, a);
}
static uint32_t suback_size(const void *a, uint8_t v, uint8_t t) { (void)t; return mqtt_suback_size(v, a); }
static size_t suback_enc(uint8_t *b, size_t cap, const void *a, uint8_t v, uint8_t t)
{
	return mqtt_encode_suback(b, cap, t, v, a);
}

void conn_send_reason_string(const conn_t *c, mqtt_props_t *props, const char *text)
{
	if (!text || c->version != MQTT_V5 || !c->problem_info)
		return;
	props->present |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
	props->reason_string.p = (const uint8_t *)text;
	props->reason_string.len = (uint32_t)strlen(text);
}

int conn_send_ack(conn_t *c, uint8_t type, uint16_t pid, uint8_t reason, const char *reason_string)
{
	mqtt_ack_t a;

	memset(&a, 0, sizeof(a));
	a.packet_id = pid;
	a.reason = reason;
	conn_send_reason_string(c, &a.props, reason_string);
	return send_trimmed(c, &a.props, &a, type, ack_size, ack_enc);
}

int conn_send_connack(conn_t *c, mqtt_connack_t *ack)
{
	return send_trimmed(c, &ack->props, ack, MQTT_CONNACK, connack_size, connack_enc);
}

int conn_send_disconnect(conn_t *c, uint8_t reason, const char *reason_string)
{
	mqtt_ack_t d;
	int ret;

	/* MQTT 3.1.1 has no server-to-client DISCONNECT. */
	if (c->version != MQTT_V5 || c->aborted)
		return 0;
	memset(&d, 0, sizeof(d));
	d.reason = reason;
	conn_send_reason_string(c, &d.props, reason_string);
	ret = send_trimmed(c, &d.props, &d, MQTT_DISCONNECT, disc_size, disc_enc);
	if (ret == 0)
		c->close_reason = reason;
	return ret;
}

int conn_send_suback(conn_t *c, uint8_t type, uint16_t pid, const uint8_t *reasons, uint32_t n)
{
	mqtt_suback_t s;
	const char *why = NULL;

	memset(&s, 0, sizeof(s));
	s.packet_id = pid;
	s.reasons = reasons;
	s.count = n;
	for (uint32_t i = 0; i < n && !why; i++) {
		if (reasons[i] == MQTT_RC_QUOTA_EXCEEDED)
			why = "too many subscriptions for this session";
		else if (reasons[i] == MQTT_RC_TOPIC_FILTER_INVALID)
			why = "invalid topic filter";
		else if (reasons[i] == MQTT_RC_UNSPECIFIED)
			why = "the subscription could not be stored";
	}
	conn_send_reason_string(c, &s.props, why);
	return send_trimmed(c, &s.props, &s, type, suback_size, suback_enc);
}


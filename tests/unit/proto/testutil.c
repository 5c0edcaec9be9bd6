/*
 * testutil.c — see testutil.h.
 */
#include <check.h>
#include <string.h>

#include "testutil.h"

void
bb_u8(bb_t *bb, uint8_t v)
{
	ck_assert_uint_lt(bb->n, sizeof(bb->b));
	bb->b[bb->n++] = v;
}

void
bb_u16(bb_t *bb, uint16_t v)
{
	bb_u8(bb, (uint8_t)(v >> 8));
	bb_u8(bb, (uint8_t)v);
}

void
bb_u32(bb_t *bb, uint32_t v)
{
	bb_u16(bb, (uint16_t)(v >> 16));
	bb_u16(bb, (uint16_t)v);
}

void
bb_vbi(bb_t *bb, uint32_t v)
{
	uint8_t tmp[4];
	int n = mqtt_vbi_encode(tmp, v);

	ck_assert_int_gt(n, 0);
	bb_raw(bb, tmp, (size_t)n);
}

void
bb_raw(bb_t *bb, const void *p, size_t len)
{
	ck_assert_uint_le(bb->n + len, sizeof(bb->b));
	memcpy(bb->b + bb->n, p, len);
	bb->n += len;
}

void
bb_str(bb_t *bb, const char *s)
{
	bb_bin(bb, s, strlen(s));
}

void
bb_bin(bb_t *bb, const void *p, size_t len)
{
	bb_u16(bb, (uint16_t)len);
	bb_raw(bb, p, len);
}

void
bb_props(bb_t *bb, const bb_t *props)
{
	bb_vbi(bb, (uint32_t)props->n);
	bb_raw(bb, props->b, props->n);
}

size_t
bb_packet(uint8_t byte0, const bb_t *body, uint8_t *out)
{
	int n;

	out[0] = byte0;
	n = mqtt_vbi_encode(out + 1, (uint32_t)body->n);
	memcpy(out + 1 + n, body->b, body->n);
	return 1 + (size_t)n + body->n;
}

int
decode_any(const mqtt_frame_t *f, uint8_t version)
{
	mqtt_connect_t c;
	mqtt_connack_t ca;
	mqtt_publish_t p;
	mqtt_ack_t a;
	mqtt_subscribe_t s;
	mqtt_suback_t sa;

	switch (f->type) {
	case MQTT_CONNECT:
		return mqtt_decode_connect(f, &c);
	case MQTT_CONNACK:
		return mqtt_decode_connack(f, version, &ca);
	case MQTT_PUBLISH:
		return mqtt_decode_publish(f, version, &p);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return mqtt_decode_ack(f, version, &a);
	case MQTT_SUBSCRIBE:
		return mqtt_decode_subscribe(f, version, &s);
	case MQTT_UNSUBSCRIBE:
		return mqtt_decode_unsubscribe(f, version, &s);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		return mqtt_decode_suback(f, version, &sa);
	case MQTT_DISCONNECT:
		return mqtt_decode_disconnect(f, version, &a);
	case MQTT_AUTH:
		return mqtt_decode_auth(f, &a);
	default:
		return mqtt_decode_empty(f);
	}
}

int
decode_pkt(const uint8_t *pkt, size_t len, uint8_t version)
{
	const uint8_t *g = guard_copy(pkt, len);
	mqtt_frame_t f;

	ck_assert_int_eq(mqtt_frame(g, len, 0, &f), (int64_t)len);
	return decode_any(&f, version);
}

int
decode_bb(uint8_t byte0, const bb_t *body, uint8_t version)
{
	static uint8_t pkt[sizeof(((bb_t *)0)->b) + 5];

	return decode_pkt(pkt, bb_packet(byte0, body, pkt), version);
}

/* A minimal valid CONNECT for `version` with the given flags, the client id, nothing else. */
void
connect_body(bb_t *b, const char *name, uint8_t level, uint8_t flags, const char *client_id)
{
	b->n = 0;
	bb_str(b, name);
	bb_u8(b, level);
	bb_u8(b, flags);
	bb_u16(b, 60);
	if (level == MQTT_V5)
		bb_u8(b, 0);
	if (client_id != NULL)
		bb_str(b, client_id);
}

/* PUBLISH body: topic, packet id if qos, v5 props from p (NULL: empty), payload "hi". */
void
publish_body(bb_t *b, uint8_t version, const char *topic, uint8_t qos, uint16_t pid, const bb_t *p)
{
	bb_t empty = { .n = 0 };

	b->n = 0;
	bb_str(b, topic);
	if (qos > 0)
		bb_u16(b, pid);
	if (version == MQTT_V5)
		bb_props(b, p != NULL ? p : &empty);
	bb_raw(b, "hi", 2);
}

static mqtt_str_t
lit(const char *s)
{
	mqtt_str_t r = { (const uint8_t *)s, (uint32_t)strlen(s) };

	return r;
}

void
fill_props(mqtt_props_t *p, uint8_t type, uint8_t *user_buf)
{
	static const uint8_t corr[] = { 0x00, 0xFF, 0x10 };
	static const uint8_t auth[] = { 0xDE, 0xAD };
	bb_t u = { .n = 0 };
	unsigned id;

	memset(p, 0, sizeof(*p));
	for (id = 1; id < 64; id++) {
		if (mqtt_prop_allowed(type, (uint8_t)id))
			p->present |= MQTT_PROP_BIT(id);
	}
	p->payload_format = 1;
	p->request_problem_info = 0;
	p->request_response_info = 1;
	p->maximum_qos = 1;
	p->retain_available = 1;
	p->wildcard_sub_available = 0;
	p->sub_id_available = 1;
	p->shared_sub_available = 0;
	p->server_keep_alive = 0x1234;
	p->receive_maximum = 0xFFFF;
	p->topic_alias_maximum = 10;
	p->topic_alias = 7;
	p->message_expiry = 0xFFFFFFFF;
	p->session_expiry = 3600;
	p->will_delay = 5;
	p->maximum_packet_size = 268435460;
	p->sub_ids[0] = 268435455;
	p->n_sub_ids = 1;
	/* PUBLISH may carry several identifiers; SUBSCRIBE just one */
	if (type == MQTT_PUBLISH) {
		p->sub_ids[1] = 1;
		p->sub_ids[2] = 128;
		p->n_sub_ids = 3;
	}
	p->content_type = lit("text/plain; charset=\xC3\xA9");
	p->response_topic = lit("reply/to/me");
	p->correlation_data.p = corr;
	p->correlation_data.len = sizeof(corr);
	p->assigned_client_id = lit("auto-1");
	p->auth_method = lit("SCRAM-SHA-1");
	p->auth_data.p = auth;
	p->auth_data.len = sizeof(auth);
	p->response_info = lit("resp");
	p->server_reference = lit("other.example:1883");
	p->reason_string = lit("because");
	bb_u8(&u, MQTT_PROP_USER_PROPERTY);
	bb_str(&u, "k1");
	bb_str(&u, "v1");
	bb_u8(&u, MQTT_PROP_USER_PROPERTY);
	bb_str(&u, "k1");
	bb_str(&u, "");
	memcpy(user_buf, u.b, u.n);
	p->user.p = user_buf;
	p->user.len = (uint32_t)u.n;
}

void
assert_str_eq(mqtt_str_t a, mqtt_str_t b)
{
	ck_assert_uint_eq(a.len, b.len);
	if (a.len > 0)
		ck_assert_mem_eq(a.p, b.p, a.len);
}

void
assert_props_eq(const mqtt_props_t *a, const mqtt_props_t *b)
{
	mqtt_iter_t ia, ib;
	mqtt_str_t ka, va, kb, vb;
	unsigned i;
	bool more;

	ck_assert_uint_eq(a->present, b->present);
#define SAME(f) ck_assert_uint_eq(a->f, b->f)
#define SAME_IF(id, f) do { if (a->present & MQTT_PROP_BIT(id)) SAME(f); } while (0)
#define SAME_STR(id, f) do { if (a->present & MQTT_PROP_BIT(id)) assert_str_eq(a->f, b->f); } while (0)
	SAME_IF(MQTT_PROP_PAYLOAD_FORMAT, payload_format);
	SAME_IF(MQTT_PROP_REQUEST_PROBLEM_INFO, request_problem_info);
	SAME_IF(MQTT_PROP_REQUEST_RESPONSE_INFO, request_response_info);
	SAME_IF(MQTT_PROP_MAXIMUM_QOS, maximum_qos);
	SAME_IF(MQTT_PROP_RETAIN_AVAILABLE, retain_available);
	SAME_IF(MQTT_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available);
	SAME_IF(MQTT_PROP_SUB_ID_AVAILABLE, sub_id_available);
	SAME_IF(MQTT_PROP_SHARED_SUB_AVAILABLE, shared_sub_available);
	SAME_IF(MQTT_PROP_SERVER_KEEP_ALIVE, server_keep_alive);
	SAME_IF(MQTT_PROP_RECEIVE_MAXIMUM, receive_maximum);
	SAME_IF(MQTT_PROP_TOPIC_ALIAS_MAXIMUM, topic_alias_maximum);
	SAME_IF(MQTT_PROP_TOPIC_ALIAS, topic_alias);
	SAME_IF(MQTT_PROP_MESSAGE_EXPIRY, message_expiry);
	SAME_IF(MQTT_PROP_SESSION_EXPIRY, session_expiry);
	SAME_IF(MQTT_PROP_WILL_DELAY, will_delay);
	SAME_IF(MQTT_PROP_MAXIMUM_PACKET_SIZE, maximum_packet_size);
	if (a->present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) {
		SAME(n_sub_ids);
		for (i = 0; i < a->n_sub_ids; i++)
			SAME(sub_ids[i]);
	}
	SAME_STR(MQTT_PROP_CONTENT_TYPE, content_type);
	SAME_STR(MQTT_PROP_RESPONSE_TOPIC, response_topic);
	SAME_STR(MQTT_PROP_CORRELATION_DATA, correlation_data);
	SAME_STR(MQTT_PROP_ASSIGNED_CLIENT_ID, assigned_client_id);
	SAME_STR(MQTT_PROP_AUTH_METHOD, auth_method);
	SAME_STR(MQTT_PROP_AUTH_DATA, auth_data);
	SAME_STR(MQTT_PROP_RESPONSE_INFO, response_info);
	SAME_STR(MQTT_PROP_SERVER_REFERENCE, server_reference);
	SAME_STR(MQTT_PROP_REASON_STRING, reason_string);
#undef SAME
#undef SAME_IF
#undef SAME_STR
	mqtt_user_prop_iter(a, &ia);
	mqtt_user_prop_iter(b, &ib);
	do {
		more = mqtt_user_prop_next(&ia, &ka, &va);
		ck_assert_int_eq(more, mqtt_user_prop_next(&ib, &kb, &vb));
		if (more) {
			assert_str_eq(ka, kb);
			assert_str_eq(va, vb);
		}
	} while (more);
}

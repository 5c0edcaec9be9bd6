/*
 * test_decode.c — every rule the decoders enforce, one test per spec statement. Inputs always end at a guard
 * page (see test_robust.c for truncation and corruption).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int
connect_rc(const bb_t *b)
{
	return decode_bb(0x10, b, MQTT_V5);
}

/* [MQTT-2.1.3-1]: fixed header flags of every type but PUBLISH */
START_TEST(test_MQTT_2_1_3_1_reserved_flags)
{
	static const uint8_t pubrel0[] = { 0x60, 0x02, 0x00, 0x01 };
	static const uint8_t pubrel2[] = { 0x62, 0x02, 0x00, 0x01 };
	static const uint8_t puback2[] = { 0x42, 0x02, 0x00, 0x01 };
	static const uint8_t sub0[] = { 0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00 };
	static const uint8_t unsub0[] = { 0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 'a' };
	static const uint8_t pingreq1[] = { 0xC1, 0x00 };
	static const uint8_t pingresp8[] = { 0xD8, 0x00 };
	static const uint8_t disc2[] = { 0xE2, 0x00 };
	static const uint8_t connack1[] = { 0x21, 0x02, 0x00, 0x00 };
	static const uint8_t auth1[] = { 0xF1, 0x00 };
	static const uint8_t suback1[] = { 0x91, 0x03, 0x00, 0x01, 0x00 };
	bb_t b;

	ck_assert_int_eq(decode_pkt(pubrel0, sizeof(pubrel0), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(pubrel2, sizeof(pubrel2), MQTT_V311), MQTT_OK);
	ck_assert_int_eq(decode_pkt(puback2, sizeof(puback2), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(sub0, sizeof(sub0), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(unsub0, sizeof(unsub0), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(pingreq1, sizeof(pingreq1), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(pingresp8, sizeof(pingresp8), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(disc2, sizeof(disc2), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(connack1, sizeof(connack1), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(auth1, sizeof(auth1), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(suback1, sizeof(suback1), MQTT_V311), MQTT_E_MALFORMED);
	connect_body(&b, "MQTT", MQTT_V311, 0x02, "c");
	ck_assert_int_eq(decode_bb(0x11, &b, MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_bb(0x10, &b, MQTT_V311), MQTT_OK);
}
END_TEST

START_TEST(test_MQTT_3_3_1_4_publish_qos3)
{
	bb_t b;

	publish_body(&b, MQTT_V311, "t", 1, 1, NULL);
	ck_assert_int_eq(decode_bb(0x36, &b, MQTT_V311), MQTT_E_QOS);
	ck_assert_int_eq(decode_bb(0x3E, &b, MQTT_V311), MQTT_E_QOS);
	ck_assert_int_eq(mqtt_err_reason(MQTT_E_QOS), MQTT_RC_MALFORMED);
}
END_TEST

START_TEST(test_MQTT_3_3_1_2_dup_qos0)
{
	bb_t b;

	publish_body(&b, MQTT_V311, "t", 0, 0, NULL);
	ck_assert_int_eq(decode_bb(0x38, &b, MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_bb(0x30, &b, MQTT_V311), MQTT_OK);
	ck_assert_int_eq(decode_bb(0x31, &b, MQTT_V311), MQTT_OK);
	publish_body(&b, MQTT_V311, "t", 1, 1, NULL);
	ck_assert_int_eq(decode_bb(0x3A, &b, MQTT_V311), MQTT_OK);
}
END_TEST

/* [MQTT-2.2.1-3]: a non-zero packet identifier on every packet that has one */
START_TEST(test_MQTT_2_2_1_3_packet_id_zero)
{
	static const uint8_t puback[] = { 0x40, 0x02, 0x00, 0x00 };
	static const uint8_t pubrec5[] = { 0x50, 0x03, 0x00, 0x00, 0x10 };
	static const uint8_t pubrel[] = { 0x62, 0x02, 0x00, 0x00 };
	static const uint8_t pubcomp[] = { 0x70, 0x02, 0x00, 0x00 };
	static const uint8_t sub[] = { 0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00 };
	static const uint8_t unsub[] = { 0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 'a' };
	static const uint8_t suback[] = { 0x90, 0x03, 0x00, 0x00, 0x00 };
	static const uint8_t unsuback[] = { 0xB0, 0x02, 0x00, 0x00 };
	bb_t b;
	int v;

	for (v = MQTT_V311; v <= MQTT_V5; v++) {
		publish_body(&b, (uint8_t)v, "t", 1, 0, NULL);
		ck_assert_int_eq(decode_bb(0x32, &b, (uint8_t)v), MQTT_E_PACKET_ID);
		publish_body(&b, (uint8_t)v, "t", 2, 0, NULL);
		ck_assert_int_eq(decode_bb(0x34, &b, (uint8_t)v), MQTT_E_PACKET_ID);
		ck_assert_int_eq(decode_pkt(puback, sizeof(puback), (uint8_t)v), MQTT_E_PACKET_ID);
		ck_assert_int_eq(decode_pkt(pubrel, sizeof(pubrel), (uint8_t)v), MQTT_E_PACKET_ID);
		ck_assert_int_eq(decode_pkt(pubcomp, sizeof(pubcomp), (uint8_t)v), MQTT_E_PACKET_ID);
	}
	ck_assert_int_eq(decode_pkt(pubrec5, sizeof(pubrec5), MQTT_V5), MQTT_E_PACKET_ID);
	ck_assert_int_eq(decode_pkt(sub, sizeof(sub), MQTT_V311), MQTT_E_PACKET_ID);
	ck_assert_int_eq(decode_pkt(unsub, sizeof(unsub), MQTT_V311), MQTT_E_PACKET_ID);
	ck_assert_int_eq(decode_pkt(unsuback, sizeof(unsuback), MQTT_V311), MQTT_E_PACKET_ID);
	ck_assert_int_eq(decode_pkt(suback, sizeof(suback), MQTT_V311), MQTT_E_PACKET_ID);
	/* QoS 0 carries none: the bytes are topic and payload */
	publish_body(&b, MQTT_V311, "t", 0, 0, NULL);
	ck_assert_int_eq(decode_bb(0x30, &b, MQTT_V311), MQTT_OK);
	ck_assert_int_eq(mqtt_err_reason(MQTT_E_PACKET_ID), MQTT_RC_PROTOCOL_ERROR);
}
END_TEST

START_TEST(test_MQTT_3_3_2_2_topic_name_wildcards)
{
	bb_t b;

	publish_body(&b, MQTT_V311, "a/+", 0, 0, NULL);
	ck_assert_int_eq(decode_bb(0x30, &b, MQTT_V311), MQTT_E_TOPIC_NAME);
	publish_body(&b, MQTT_V5, "a/#", 0, 0, NULL);
	ck_assert_int_eq(decode_bb(0x30, &b, MQTT_V5), MQTT_E_TOPIC_NAME);
	publish_body(&b, MQTT_V311, "a/\xED\xA0\x80", 0, 0, NULL);
	ck_assert_int_eq(decode_bb(0x30, &b, MQTT_V311), MQTT_E_UTF8);
	ck_assert_int_eq(mqtt_err_reason(MQTT_E_TOPIC_NAME), MQTT_RC_TOPIC_NAME_INVALID);
}
END_TEST

/* [MQTT-3.3.2-1] / MQTT 5 3.3.2.1: an empty topic only with a topic alias */
START_TEST(test_MQTT_3_3_2_1_empty_topic)
{
	bb_t b, p = { .n = 0 };
	mqtt_publish_t m;
	mqtt_frame_t f;
	uint8_t pkt[64];
	size_t n;

	publish_body(&b, MQTT_V311, "", 0, 0, NULL);
	ck_assert_int_eq(decode_bb(0x30, &b, MQTT_V311), MQTT_E_TOPIC_NAME);
	/* MQTT 5 3.3.2.3.4: "It is a Protocol Error if the Topic Name is zero length and there is no Topic Alias" */
	publish_body(&b, MQTT_V5, "", 0, 0, NULL);
	ck_assert_int_eq(decode_bb(0x30, &b, MQTT_V5), MQTT_E_PROTOCOL);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_PROTOCOL, MQTT_V5, false).code, MQTT_RC_PROTOCOL_ERROR);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_TOPIC_NAME, MQTT_V311, false).action, MQTT_ACT_CLOSE);
	publish_body(&b, MQTT_V31, "", 1, 1, NULL);
	ck_assert_int_eq(decode_bb(0x32, &b, MQTT_V31), MQTT_E_TOPIC_NAME);
	bb_u8(&p, MQTT_PROP_TOPIC_ALIAS);
	bb_u16(&p, 3);
	publish_body(&b, MQTT_V5, "", 1, 9, &p);
	n = bb_packet(0x32, &b, pkt);
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, n), n, 0, &f), (int64_t)n);
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V5, &m), MQTT_OK);
	ck_assert_uint_eq(m.topic.len, 0);
	ck_assert_uint_eq(m.props.topic_alias, 3);
	ck_assert_uint_eq(m.packet_id, 9);
	ck_assert_uint_eq(m.payload.len, 2);
	ck_assert_mem_eq(m.payload.p, "hi", 2);
}
END_TEST

/* [MQTT-3.1.2-1], [MQTT-3.1.2-2]: name and level go together; anything else is an unsupported version */
START_TEST(test_MQTT_3_1_2_2_protocol_version)
{
	bb_t b;
	mqtt_connect_t c;
	mqtt_frame_t f;
	uint8_t pkt[64];
	size_t n;

	connect_body(&b, "MQIsdp", MQTT_V31, 0x02, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_OK);
	connect_body(&b, "MQTT", MQTT_V311, 0x02, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_OK);
	connect_body(&b, "MQTT", MQTT_V5, 0x02, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_OK);
	/* a level we speak with the other version's name is a wrong name for that level [MQTT-3.1.2-1] */
	connect_body(&b, "MQTT", 3, 0x02, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_PROTOCOL_NAME);
	connect_body(&b, "MQIsdp", MQTT_V311, 0x02, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_PROTOCOL_NAME);
	connect_body(&b, "MQTT", 6, 0x02, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_VERSION);
	/* a wrong name is not a version problem: 3.1.1 closes, MQTT 5 may answer 0x84 [MQTT-3.1.2-1] */
	connect_body(&b, "mqtt", MQTT_V311, 0x02, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_PROTOCOL_NAME);
	/* the refused level is still reported, to answer in the client's dialect */
	connect_body(&b, "MQTT", 7, 0x02, "c");
	n = bb_packet(0x10, &b, pkt);
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, n), n, 0, &f), (int64_t)n);
	ck_assert_int_eq(mqtt_decode_connect(&f, &c), MQTT_E_VERSION);
	ck_assert_uint_eq(c.version, 7);
	ck_assert_int_eq(mqtt_err_connack_v3(MQTT_E_VERSION), MQTT_V3_BAD_VERSION);
	ck_assert_int_eq(mqtt_err_reason(MQTT_E_VERSION), MQTT_RC_UNSUPPORTED_VERSION);
}
END_TEST

/* Decode a CONNECT with the given protocol name and level byte; return the result and the reported level. */
static int
connect_name_rc(const char *name, uint8_t level, uint8_t *version)
{
	mqtt_connect_t c;
	mqtt_frame_t f;
	uint8_t pkt[64];
	size_t n;
	bb_t b;
	int rc;

	connect_body(&b, name, level, 0x02, "c");
	n = bb_packet(0x10, &b, pkt);
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, n), n, 0, &f), (int64_t)n);
	rc = mqtt_decode_connect(&f, &c);
	*version = c.version;
	return rc;
}

/* [MQTT-3.1.2-1]: a protocol name other than "MQTT" (or 3.1's "MQIsdp"); the level byte after it says which
 * dialect the client wants its answer in. */
START_TEST(test_MQTT_3_1_2_1_protocol_name)
{
	static const char *const names[] = { "mqtt", "MQT", "MQTTT", "", "MQIsdP", "HTTP" };
	mqtt_answer_t a;
	uint8_t v;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ck_assert_int_eq(connect_name_rc(names[i], MQTT_V5, &v), MQTT_E_PROTOCOL_NAME);
		ck_assert_uint_eq(v, MQTT_V5);
		a = mqtt_err_answer(MQTT_E_PROTOCOL_NAME, v, true);
		ck_assert_uint_eq(a.action, MQTT_ACT_CONNACK);
		ck_assert_uint_eq(a.code, MQTT_RC_UNSUPPORTED_VERSION);
		ck_assert_int_eq(connect_name_rc(names[i], MQTT_V311, &v), MQTT_E_PROTOCOL_NAME);
		ck_assert_uint_eq(v, MQTT_V311);
		ck_assert_uint_eq(mqtt_err_answer(MQTT_E_PROTOCOL_NAME, v, true).action, MQTT_ACT_CLOSE);
		ck_assert_int_eq(connect_name_rc(names[i], MQTT_V31, &v), MQTT_E_PROTOCOL_NAME);
		ck_assert_uint_eq(v, MQTT_V31);
	}
	/* a known name with the other version's level is a wrong name for that level: MQTT 5 gets 0x84, 3.x
	 * is closed; a level nobody speaks is a version error, answered with CONNACK 1 */
	ck_assert_int_eq(connect_name_rc("MQIsdp", MQTT_V5, &v), MQTT_E_PROTOCOL_NAME);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_PROTOCOL_NAME, v, true).code, MQTT_RC_UNSUPPORTED_VERSION);
	ck_assert_int_eq(connect_name_rc("MQIsdp", MQTT_V311, &v), MQTT_E_PROTOCOL_NAME);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_PROTOCOL_NAME, v, true).action, MQTT_ACT_CLOSE);
	ck_assert_int_eq(connect_name_rc("MQTT", MQTT_V31, &v), MQTT_E_PROTOCOL_NAME);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_PROTOCOL_NAME, v, true).action, MQTT_ACT_CLOSE);
	ck_assert_int_eq(connect_name_rc("MQTT", 6, &v), MQTT_E_VERSION);
	a = mqtt_err_answer(MQTT_E_VERSION, v, true);
	ck_assert_uint_eq(a.action, MQTT_ACT_CONNACK);
	ck_assert_uint_eq(a.code, MQTT_V3_BAD_VERSION);
}
END_TEST

START_TEST(test_MQTT_3_1_2_3_reserved_flag)
{
	bb_t b;

	connect_body(&b, "MQTT", MQTT_V311, 0x03, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
	connect_body(&b, "MQTT", MQTT_V5, 0x03, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
}
END_TEST

/* [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-14], [MQTT-3.1.2-15] */
START_TEST(test_MQTT_3_1_2_13_will_flags)
{
	bb_t b;

	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0x08, "c");     /* will QoS 1, no will */
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0x20, "c");     /* will retain, no will */
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0x04 | 0x18, "c"); /* will QoS 3 */
	bb_str(&b, "w/t");
	bb_str(&b, "bye");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0x04 | 0x10 | 0x20, "c");
	bb_str(&b, "w/t");
	bb_str(&b, "bye");
	ck_assert_int_eq(connect_rc(&b), MQTT_OK);
	/* [MQTT-3.1.3-11]: the will topic is a topic name */
	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0x04, "c");
	bb_str(&b, "w/#");
	bb_str(&b, "bye");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_TOPIC_NAME);
	/* will flag set but the fields are missing */
	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0x04, "c");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
}
END_TEST

/* [MQTT-3.1.2-22] in 3.1.1; MQTT 5 3.1.2.9 allows a password alone */
START_TEST(test_MQTT_3_1_2_22_password_without_username)
{
	bb_t b;

	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0x40, "c");
	bb_str(&b, "secret");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
	connect_body(&b, "MQTT", MQTT_V5, 0x02 | 0x40, "c");
	bb_str(&b, "secret");
	ck_assert_int_eq(connect_rc(&b), MQTT_OK);
	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0xC0, "c");
	bb_str(&b, "user");
	bb_str(&b, "secret");
	ck_assert_int_eq(connect_rc(&b), MQTT_OK);
	/* user name must be UTF-8 [MQTT-3.1.3-11] */
	connect_body(&b, "MQTT", MQTT_V311, 0x02 | 0x80, "c");
	bb_str(&b, "\xC0\x80");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_UTF8);
}
END_TEST

/* [MQTT-3.1.3-4], [MQTT-1.5.3-1], [MQTT-1.5.3-2]: the client id is a UTF-8 string; one that is ill-formed or
 * holds U+0000 makes the CONNECT malformed: closed in 3.1.1, CONNACK 0x81 in MQTT 5. */
START_TEST(test_MQTT_1_5_3_1_client_id_utf8)
{
	bb_t b;

	connect_body(&b, "MQTT", MQTT_V311, 0x02, "id\xED\xA0\x80");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_UTF8);
	connect_body(&b, "MQTT", MQTT_V5, 0x02, "\xC3");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_UTF8);
	connect_body(&b, "MQIsdp", MQTT_V31, 0x02, "\xFF");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_UTF8);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_UTF8, MQTT_V311, true).action, MQTT_ACT_CLOSE);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_UTF8, MQTT_V5, true).code, MQTT_RC_MALFORMED);
	/* the remaining refusal, an id we will not take, is still return code 2 / 0x85 */
	ck_assert_int_eq(mqtt_err_connack_v3(MQTT_E_CLIENT_ID), MQTT_V3_ID_REJECTED);
	ck_assert_int_eq(mqtt_err_reason(MQTT_E_CLIENT_ID), MQTT_RC_CLIENT_ID_INVALID);
}
END_TEST

START_TEST(test_MQTT_1_5_3_2_client_id_null_char)
{
	bb_t b;

	connect_body(&b, "MQTT", MQTT_V311, 0x02, NULL);
	bb_bin(&b, "a\0b", 3);
	ck_assert_int_eq(connect_rc(&b), MQTT_E_UTF8);
	connect_body(&b, "MQTT", MQTT_V5, 0x02, NULL);
	bb_bin(&b, "\0", 1);
	ck_assert_int_eq(connect_rc(&b), MQTT_E_UTF8);
}
END_TEST

/* [MQTT-3.1.3-7], [MQTT-3.1.3-8] */
START_TEST(test_MQTT_3_1_3_8_empty_client_id)
{
	bb_t b;

	connect_body(&b, "MQTT", MQTT_V311, 0x00, "");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_CLIENT_ID);
	connect_body(&b, "MQTT", MQTT_V311, 0x02, "");
	ck_assert_int_eq(connect_rc(&b), MQTT_OK);
	connect_body(&b, "MQTT", MQTT_V5, 0x00, "");
	ck_assert_int_eq(connect_rc(&b), MQTT_OK);
	connect_body(&b, "MQIsdp", MQTT_V31, 0x02, "");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_CLIENT_ID);
	/* missing altogether is malformed, not an empty id */
	connect_body(&b, "MQTT", MQTT_V311, 0x02, NULL);
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
}
END_TEST

START_TEST(test_MQTT_3_1_connect_trailing_bytes)
{
	bb_t b;

	connect_body(&b, "MQTT", MQTT_V311, 0x02, "c");
	bb_u8(&b, 0);
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
	connect_body(&b, "MQTT", MQTT_V5, 0x02, "c");
	bb_u8(&b, 0);
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
}
END_TEST

/* Every field of a full MQTT 5 CONNECT lands where it should. */
START_TEST(test_MQTT_3_1_connect_fields)
{
	bb_t b = { .n = 0 }, p = { .n = 0 }, wp = { .n = 0 };
	mqtt_connect_t c;
	mqtt_frame_t f;
	uint8_t pkt[256];
	size_t n;

	bb_str(&b, "MQTT");
	bb_u8(&b, 5);
	bb_u8(&b, 0xC0 | 0x20 | 0x08 | 0x04 | 0x02);
	bb_u16(&b, 0x1234);
	bb_u8(&p, MQTT_PROP_SESSION_EXPIRY);
	bb_u32(&p, 99);
	bb_u8(&p, MQTT_PROP_RECEIVE_MAXIMUM);
	bb_u16(&p, 20);
	bb_props(&b, &p);
	bb_str(&b, "client");
	bb_u8(&wp, MQTT_PROP_WILL_DELAY);
	bb_u32(&wp, 30);
	bb_u8(&wp, MQTT_PROP_PAYLOAD_FORMAT);
	bb_u8(&wp, 1);
	bb_props(&b, &wp);
	bb_str(&b, "will/topic");
	bb_bin(&b, "\x00\x01", 2);
	bb_str(&b, "user");
	bb_bin(&b, "pw", 2);
	n = bb_packet(0x10, &b, pkt);
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, n), n, 0, &f), (int64_t)n);
	ck_assert_int_eq(mqtt_decode_connect(&f, &c), MQTT_OK);
	ck_assert_uint_eq(c.version, MQTT_V5);
	ck_assert(c.clean_start && c.will && c.will_retain && c.has_username && c.has_password);
	ck_assert_uint_eq(c.will_qos, 1);
	ck_assert_uint_eq(c.keep_alive, 0x1234);
	ck_assert_uint_eq(c.props.session_expiry, 99);
	ck_assert_uint_eq(c.props.receive_maximum, 20);
	ck_assert_uint_eq(c.props.present, MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)
		| MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM));
	ck_assert_uint_eq(c.will_props.will_delay, 30);
	ck_assert_uint_eq(c.will_props.payload_format, 1);
	ck_assert_uint_eq(c.client_id.len, 6);
	ck_assert_mem_eq(c.client_id.p, "client", 6);
	ck_assert_mem_eq(c.will_topic.p, "will/topic", 10);
	ck_assert_uint_eq(c.will_payload.len, 2);
	ck_assert_mem_eq(c.username.p, "user", 4);
	ck_assert_mem_eq(c.password.p, "pw", 2);
	/* will properties are their own set: session expiry is not one of them */
	wp.n = 0;
	bb_u8(&wp, MQTT_PROP_SESSION_EXPIRY);
	bb_u32(&wp, 1);
	b.n = 0;
	bb_str(&b, "MQTT");
	bb_u8(&b, 5);
	bb_u8(&b, 0x06);
	bb_u16(&b, 0);
	bb_u8(&b, 0);
	bb_str(&b, "c");
	bb_props(&b, &wp);
	bb_str(&b, "w");
	bb_str(&b, "x");
	ck_assert_int_eq(connect_rc(&b), MQTT_E_MALFORMED);
}
END_TEST

static int
subscribe_rc(uint8_t version, const char *filter, uint8_t opts)
{
	bb_t b = { .n = 0 };

	bb_u16(&b, 1);
	if (version == MQTT_V5)
		bb_u8(&b, 0);
	bb_str(&b, filter);
	bb_u8(&b, opts);
	return decode_bb(0x82, &b, version);
}

static int
unsubscribe_rc(uint8_t version, const char *filter)
{
	bb_t b = { .n = 0 };

	bb_u16(&b, 1);
	if (version == MQTT_V5)
		bb_u8(&b, 0);
	bb_str(&b, filter);
	return decode_bb(0xA2, &b, version);
}

/* [MQTT-3.8.3-3], [MQTT-3.10.3-2]: at least one entry */
START_TEST(test_MQTT_3_8_3_3_subscribe_no_filters)
{
	static const uint8_t sub3[] = { 0x82, 0x02, 0x00, 0x01 };
	static const uint8_t sub5[] = { 0x82, 0x03, 0x00, 0x01, 0x00 };
	static const uint8_t unsub3[] = { 0xA2, 0x02, 0x00, 0x01 };
	static const uint8_t unsub5[] = { 0xA2, 0x03, 0x00, 0x01, 0x00 };

	ck_assert_int_eq(decode_pkt(sub3, sizeof(sub3), MQTT_V311), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(sub5, sizeof(sub5), MQTT_V5), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(unsub3, sizeof(unsub3), MQTT_V311), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(unsub5, sizeof(unsub5), MQTT_V5), MQTT_E_PROTOCOL);
}
END_TEST

/* MQTT 5 [MQTT-3.8.3-5]: bits 7..6 reserved; 3.1.1 [MQTT-3-8.3-4]: bits 7..2 reserved */
START_TEST(test_MQTT_3_8_3_5_subopts_reserved_bits)
{
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "a", 0x40), MQTT_E_MALFORMED);
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "a", 0x80), MQTT_E_MALFORMED);
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "a", 0x2E), MQTT_OK);
	ck_assert_int_eq(subscribe_rc(MQTT_V311, "a", 0x04), MQTT_E_MALFORMED);
	ck_assert_int_eq(subscribe_rc(MQTT_V311, "a", 0x10), MQTT_E_MALFORMED);
	ck_assert_int_eq(subscribe_rc(MQTT_V311, "a", 0x02), MQTT_OK);
	ck_assert_int_eq(subscribe_rc(MQTT_V31, "a", 0x01), MQTT_OK);
}
END_TEST

START_TEST(test_MQTT_3_8_3_1_subopts_qos3)
{
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "a", 0x03), MQTT_E_MALFORMED);
	ck_assert_int_eq(subscribe_rc(MQTT_V311, "a", 0x03), MQTT_E_MALFORMED);
}
END_TEST

START_TEST(test_MQTT_3_8_3_1_retain_handling_3)
{
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "a", 0x30), MQTT_E_PROTOCOL);
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "a", 0x20), MQTT_OK);
}
END_TEST

START_TEST(test_MQTT_3_8_3_4_no_local_shared)
{
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "$share/g/a/#", 0x04), MQTT_E_PROTOCOL);
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "$share/g/a/#", 0x01), MQTT_OK);
	ck_assert_int_eq(subscribe_rc(MQTT_V5, "a/#", 0x04), MQTT_OK);
}
END_TEST

/*
 * [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1], [MQTT-4.8.2-1], [MQTT-4.8.2-2] in SUBSCRIBE and UNSUBSCRIBE:
 * a filter that breaks the syntax makes the whole packet malformed (DISCONNECT 0x81 in MQTT 5, close in
 * 3.1.1), as mosquitto does; 0x8F is for well-formed filters the server refuses.
 */
START_TEST(test_MQTT_4_7_1_subscribe_filters)
{
	static const char *const bad[] = { "a/#/b", "a+", "#a", "", "$share/g", "$share//a", "$share/g+/a",
		"$share/g#/a", "$share/g/a#", "$share/g/", "a/b#", "+a/b", "a/+b", "a/#/" };
	static const char *const good[] = { "#", "+/+", "$share/g/#", "$SYS/#", "a//b", "/", "+", "a/+/#",
		"$share/g/+/x", "$share", "$sharefoo/a" };
	mqtt_answer_t a;
	size_t i;
	int v;

	for (v = MQTT_V31; v <= MQTT_V5; v++) {
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			mqtt_str_t f = { (const uint8_t *)bad[i], (uint32_t)strlen(bad[i]) };
			bool shared;

			ck_assert_msg(subscribe_rc((uint8_t)v, bad[i], 0) == MQTT_E_TOPIC_FILTER, "sub %s", bad[i]);
			ck_assert_msg(unsubscribe_rc((uint8_t)v, bad[i]) == MQTT_E_TOPIC_FILTER, "unsub %s", bad[i]);
			ck_assert_msg(mqtt_filter_check(&f, &shared) == MQTT_E_TOPIC_FILTER, "check %s", bad[i]);
		}
		for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			ck_assert_msg(subscribe_rc((uint8_t)v, good[i], 1) == MQTT_OK, "sub %s", good[i]);
			ck_assert_msg(unsubscribe_rc((uint8_t)v, good[i]) == MQTT_OK, "unsub %s", good[i]);
		}
		/* ill-formed UTF-8 in a filter is malformed as well */
		ck_assert_int_eq(subscribe_rc((uint8_t)v, "a/\xC0\x80", 0), MQTT_E_UTF8);
		ck_assert_int_eq(unsubscribe_rc((uint8_t)v, "a/\xC0\x80"), MQTT_E_UTF8);
		ck_assert_int_eq(unsubscribe_rc((uint8_t)v, "$share/\xFF/a"), MQTT_E_UTF8);
	}
	a = mqtt_err_answer(MQTT_E_TOPIC_FILTER, MQTT_V5, false);
	ck_assert_uint_eq(a.action, MQTT_ACT_DISCONNECT);
	ck_assert_uint_eq(a.code, MQTT_RC_MALFORMED);
	ck_assert_str_eq(a.text, "invalid topic filter");
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_TOPIC_FILTER, MQTT_V311, false).action, MQTT_ACT_CLOSE);
	ck_assert_int_eq(mqtt_err_reason(MQTT_E_TOPIC_FILTER), MQTT_RC_MALFORMED);
}
END_TEST

/* A bad filter anywhere in the list refuses the packet, after good entries too. */
START_TEST(test_MQTT_4_7_1_subscribe_bad_filter_later)
{
	bb_t b = { .n = 0 };

	bb_u16(&b, 1);
	bb_u8(&b, 0);
	bb_str(&b, "a/b");
	bb_u8(&b, 1);
	bb_str(&b, "c/#/d");
	bb_u8(&b, 1);
	ck_assert_int_eq(decode_bb(0x82, &b, MQTT_V5), MQTT_E_TOPIC_FILTER);
	b.n = 0;
	bb_u16(&b, 1);
	bb_str(&b, "a/b");
	bb_str(&b, "x+");
	ck_assert_int_eq(decode_bb(0xA2, &b, MQTT_V311), MQTT_E_TOPIC_FILTER);
}
END_TEST

/* SUBSCRIBE walk: the iterator returns what was validated. */
START_TEST(test_MQTT_3_8_3_subscribe_walk)
{
	bb_t b = { .n = 0 }, p = { .n = 0 };
	mqtt_subscribe_t s;
	mqtt_subopts_t o;
	mqtt_str_t filter;
	mqtt_iter_t it;
	mqtt_frame_t f;
	uint8_t pkt[128];
	size_t n;

	bb_u16(&b, 77);
	bb_u8(&p, MQTT_PROP_SUBSCRIPTION_ID);
	bb_vbi(&p, 300);
	bb_props(&b, &p);
	bb_str(&b, "a/b");
	bb_u8(&b, 0x1E);        /* rh 1, rap, nl, qos 2 */
	bb_str(&b, "$share/g/c");
	bb_u8(&b, 0x20);
	n = bb_packet(0x82, &b, pkt);
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, n), n, 0, &f), (int64_t)n);
	ck_assert_int_eq(mqtt_decode_subscribe(&f, MQTT_V5, &s), MQTT_OK);
	ck_assert_uint_eq(s.packet_id, 77);
	ck_assert_uint_eq(s.count, 2);
	ck_assert_uint_eq(s.props.n_sub_ids, 1);
	ck_assert_uint_eq(s.props.sub_ids[0], 300);
	mqtt_sub_iter(&s, &it);
	ck_assert(mqtt_sub_next(&it, &filter, &o));
	ck_assert_uint_eq(filter.len, 3);
	ck_assert_mem_eq(filter.p, "a/b", 3);
	ck_assert_uint_eq(o.qos, 2);
	ck_assert(o.no_local && o.retain_as_published);
	ck_assert_uint_eq(o.retain_handling, 1);
	ck_assert(mqtt_sub_next(&it, &filter, &o));
	ck_assert_uint_eq(filter.len, 10);
	ck_assert_uint_eq(o.qos, 0);
	ck_assert(!o.no_local && !o.retain_as_published);
	ck_assert_uint_eq(o.retain_handling, 2);
	ck_assert(!mqtt_sub_next(&it, &filter, &o));
	ck_assert(!mqtt_sub_next(&it, &filter, &o));
}
END_TEST

/* Decode a v5 PUBLISH (qos 0, topic "t") with the given property block bytes. */
static int
publish_props_rc(const bb_t *p, mqtt_publish_t *out)
{
	bb_t b;
	mqtt_frame_t f;
	static uint8_t pkt[1024];
	size_t n;

	publish_body(&b, MQTT_V5, "t", 0, 0, p);
	n = bb_packet(0x30, &b, pkt);
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, n), n, 0, &f), (int64_t)n);
	return mqtt_decode_publish(&f, MQTT_V5, out);
}

/* Decode a v5 packet of `type` with just a property block where one goes. */
static int
props_in(uint8_t type, const bb_t *p)
{
	bb_t b = { .n = 0 };

	switch (type) {
	case MQTT_CONNECT:
		bb_str(&b, "MQTT");
		bb_u8(&b, 5);
		bb_u8(&b, 2);
		bb_u16(&b, 0);
		bb_props(&b, p);
		bb_str(&b, "c");
		return decode_bb(0x10, &b, MQTT_V5);
	case MQTT_CONNACK:
		bb_u8(&b, 0);
		bb_u8(&b, 0);
		bb_props(&b, p);
		return decode_bb(0x20, &b, MQTT_V5);
	case MQTT_PUBACK:
		bb_u16(&b, 1);
		bb_u8(&b, 0);
		bb_props(&b, p);
		return decode_bb(0x40, &b, MQTT_V5);
	case MQTT_SUBSCRIBE:
		bb_u16(&b, 1);
		bb_props(&b, p);
		bb_str(&b, "a");
		bb_u8(&b, 0);
		return decode_bb(0x82, &b, MQTT_V5);
	case MQTT_DISCONNECT:
		bb_u8(&b, 0);
		bb_props(&b, p);
		return decode_bb(0xE0, &b, MQTT_V5);
	case MQTT_AUTH:
		bb_u8(&b, 0x18);
		bb_props(&b, p);
		return decode_bb(0xF0, &b, MQTT_V5);
	default:
		ck_abort_msg("props_in: type %u", type);
		return 0;
	}
}

/* MQTT 5 2.2.2.2: "A Control Packet which contains an Identifier which is not valid for its packet type, or
 * contains a value not of the specified data type, is a Malformed Packet" — unknown identifiers included. */
START_TEST(test_MQTT_2_2_2_2_property_not_allowed)
{
	bb_t p = { .n = 0 };
	mqtt_publish_t m;

	bb_u8(&p, MQTT_PROP_SESSION_EXPIRY);
	bb_u32(&p, 1);
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_E_MALFORMED);
	ck_assert_int_eq(props_in(MQTT_PUBACK, &p), MQTT_E_MALFORMED);
	ck_assert_int_eq(props_in(MQTT_CONNECT, &p), MQTT_OK);
	ck_assert_int_eq(props_in(MQTT_DISCONNECT, &p), MQTT_OK);
	p.n = 0;
	bb_u8(&p, MQTT_PROP_TOPIC_ALIAS);
	bb_u16(&p, 1);
	ck_assert_int_eq(props_in(MQTT_CONNECT, &p), MQTT_E_MALFORMED);
	ck_assert_int_eq(props_in(MQTT_CONNACK, &p), MQTT_E_MALFORMED);
	p.n = 0;
	bb_u8(&p, MQTT_PROP_MAXIMUM_QOS);
	bb_u8(&p, 1);
	ck_assert_int_eq(props_in(MQTT_CONNECT, &p), MQTT_E_MALFORMED);
	ck_assert_int_eq(props_in(MQTT_CONNACK, &p), MQTT_OK);
	p.n = 0;
	bb_u8(&p, 0x7F);        /* no such property */
	bb_u8(&p, 0);
	ck_assert_int_eq(props_in(MQTT_CONNACK, &p), MQTT_E_MALFORMED);
	p.n = 0;
	bb_u8(&p, 0x00);
	ck_assert_int_eq(props_in(MQTT_CONNACK, &p), MQTT_E_MALFORMED);
	ck_assert(mqtt_prop_allowed(MQTT_WILL_PROPS, MQTT_PROP_WILL_DELAY));
	ck_assert(!mqtt_prop_allowed(MQTT_PUBLISH, MQTT_PROP_WILL_DELAY));
	ck_assert(!mqtt_prop_allowed(MQTT_PINGREQ, MQTT_PROP_USER_PROPERTY));
	ck_assert(mqtt_prop_allowed(MQTT_AUTH, MQTT_PROP_AUTH_DATA));
	p.n = 0;
	bb_u8(&p, 0x80);        /* a multi-byte identifier: none is defined */
	bb_u8(&p, 0x01);
	bb_u8(&p, 0);
	ck_assert_int_eq(props_in(MQTT_CONNACK, &p), MQTT_E_MALFORMED);
	/* Receive Maximum belongs to CONNECT and CONNACK only */
	p.n = 0;
	bb_u8(&p, MQTT_PROP_RECEIVE_MAXIMUM);
	bb_u16(&p, 5);
	ck_assert_int_eq(props_in(MQTT_PUBACK, &p), MQTT_E_MALFORMED);
	ck_assert_int_eq(props_in(MQTT_SUBSCRIBE, &p), MQTT_E_MALFORMED);
	ck_assert_int_eq(props_in(MQTT_DISCONNECT, &p), MQTT_E_MALFORMED);
	ck_assert_int_eq(props_in(MQTT_AUTH, &p), MQTT_E_MALFORMED);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_MALFORMED, MQTT_V5, false).code, MQTT_RC_MALFORMED);
}
END_TEST

/* MQTT 5 2.2.2.2: "It is a Protocol Error to include [a property] more than once", user properties aside */
START_TEST(test_MQTT_2_2_2_2_duplicate_property)
{
	bb_t p = { .n = 0 };
	mqtt_publish_t m;
	mqtt_str_t k, v;
	mqtt_iter_t it;

	bb_u8(&p, MQTT_PROP_MESSAGE_EXPIRY);
	bb_u32(&p, 1);
	bb_u8(&p, MQTT_PROP_MESSAGE_EXPIRY);
	bb_u32(&p, 2);
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_E_PROPERTY);
	p.n = 0;
	bb_u8(&p, MQTT_PROP_CONTENT_TYPE);
	bb_str(&p, "a");
	bb_u8(&p, MQTT_PROP_CONTENT_TYPE);
	bb_str(&p, "a");
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_E_PROPERTY);
	/* user properties repeat, interleaved with others, and keep their order */
	p.n = 0;
	bb_u8(&p, MQTT_PROP_USER_PROPERTY);
	bb_str(&p, "k");
	bb_str(&p, "1");
	bb_u8(&p, MQTT_PROP_CONTENT_TYPE);
	bb_str(&p, "ct");
	bb_u8(&p, MQTT_PROP_USER_PROPERTY);
	bb_str(&p, "k");
	bb_str(&p, "2");
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_OK);
	mqtt_user_prop_iter(&m.props, &it);
	ck_assert(mqtt_user_prop_next(&it, &k, &v));
	ck_assert_mem_eq(v.p, "1", 1);
	ck_assert(mqtt_user_prop_next(&it, &k, &v));
	ck_assert_mem_eq(v.p, "2", 1);
	ck_assert(!mqtt_user_prop_next(&it, &k, &v));
	ck_assert_mem_eq(m.props.content_type.p, "ct", 2);
	/* subscription identifiers repeat in PUBLISH, not in SUBSCRIBE */
	p.n = 0;
	bb_u8(&p, MQTT_PROP_SUBSCRIPTION_ID);
	bb_vbi(&p, 5);
	bb_u8(&p, MQTT_PROP_SUBSCRIPTION_ID);
	bb_vbi(&p, 16384);
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_OK);
	ck_assert_uint_eq(m.props.n_sub_ids, 2);
	ck_assert_uint_eq(m.props.sub_ids[0], 5);
	ck_assert_uint_eq(m.props.sub_ids[1], 16384);
	ck_assert_int_eq(props_in(MQTT_SUBSCRIBE, &p), MQTT_E_PROPERTY);
}
END_TEST

/* More identifiers than MQTT_MAX_SUB_IDS: validated, the first ones kept. */
START_TEST(test_MQTT_3_3_4_sub_ids_overflow)
{
	bb_t p = { .n = 0 };
	mqtt_publish_t m;
	uint32_t i;

	for (i = 1; i <= MQTT_MAX_SUB_IDS + 3; i++) {
		bb_u8(&p, MQTT_PROP_SUBSCRIPTION_ID);
		bb_vbi(&p, i);
	}
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_OK);
	ck_assert_uint_eq(m.props.n_sub_ids, MQTT_MAX_SUB_IDS);
	ck_assert_uint_eq(m.props.sub_ids[MQTT_MAX_SUB_IDS - 1], MQTT_MAX_SUB_IDS);
	bb_u8(&p, MQTT_PROP_SUBSCRIPTION_ID);
	bb_vbi(&p, 0);
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_E_PROPERTY);
}
END_TEST

/* Values the spec calls a Protocol Error. */
START_TEST(test_MQTT_3_1_2_11_property_values)
{
	static const struct {
		uint8_t type, id, size;
		uint32_t value;
	} bad[] = {
		{ MQTT_CONNECT, MQTT_PROP_RECEIVE_MAXIMUM, 2, 0 },
		{ MQTT_CONNACK, MQTT_PROP_RECEIVE_MAXIMUM, 2, 0 },
		{ MQTT_CONNECT, MQTT_PROP_MAXIMUM_PACKET_SIZE, 4, 0 },
		{ MQTT_CONNECT, MQTT_PROP_REQUEST_PROBLEM_INFO, 1, 2 },
		{ MQTT_CONNECT, MQTT_PROP_REQUEST_RESPONSE_INFO, 1, 2 },
		{ MQTT_CONNACK, MQTT_PROP_MAXIMUM_QOS, 1, 2 },
		{ MQTT_CONNACK, MQTT_PROP_RETAIN_AVAILABLE, 1, 2 },
		{ MQTT_CONNACK, MQTT_PROP_WILDCARD_SUB_AVAILABLE, 1, 2 },
		{ MQTT_CONNACK, MQTT_PROP_SUB_ID_AVAILABLE, 1, 2 },
		{ MQTT_CONNACK, MQTT_PROP_SHARED_SUB_AVAILABLE, 1, 255 },
		{ MQTT_SUBSCRIBE, MQTT_PROP_SUBSCRIPTION_ID, 0, 0 },
	};
	bb_t p;
	mqtt_publish_t m;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.n = 0;
		bb_u8(&p, bad[i].id);
		if (bad[i].size == 1)
			bb_u8(&p, (uint8_t)bad[i].value);
		else if (bad[i].size == 2)
			bb_u16(&p, (uint16_t)bad[i].value);
		else if (bad[i].size == 4)
			bb_u32(&p, bad[i].value);
		else
			bb_vbi(&p, bad[i].value);
		ck_assert_msg(props_in(bad[i].type, &p) == MQTT_E_PROPERTY, "property 0x%02x", bad[i].id);
	}
	p.n = 0;
	bb_u8(&p, MQTT_PROP_TOPIC_ALIAS);
	bb_u16(&p, 0);
	/* Topic alias 0 decodes: the receiver answers it with 0x94 against its Topic Alias Maximum. */
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_OK);
	ck_assert_uint_eq(m.props.topic_alias, 0);
	ck_assert(m.props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS));
	p.n = 0;
	bb_u8(&p, MQTT_PROP_PAYLOAD_FORMAT);
	bb_u8(&p, 2);
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_E_PROPERTY);
	/* [MQTT-3.3.2-14]: response topic is a topic name */
	p.n = 0;
	bb_u8(&p, MQTT_PROP_RESPONSE_TOPIC);
	bb_str(&p, "reply/#");
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_E_PROPERTY);
	/* authentication data without a method */
	p.n = 0;
	bb_u8(&p, MQTT_PROP_AUTH_DATA);
	bb_bin(&p, "x", 1);
	ck_assert_int_eq(props_in(MQTT_AUTH, &p), MQTT_E_PROPERTY);
	bb_u8(&p, MQTT_PROP_AUTH_METHOD);
	bb_str(&p, "m");
	ck_assert_int_eq(props_in(MQTT_AUTH, &p), MQTT_OK);
	/* strings in properties are UTF-8 checked, user property keys and values too */
	p.n = 0;
	bb_u8(&p, MQTT_PROP_CONTENT_TYPE);
	bb_str(&p, "\xED\xA0\x80");
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_E_UTF8);
	p.n = 0;
	bb_u8(&p, MQTT_PROP_USER_PROPERTY);
	bb_str(&p, "k");
	bb_bin(&p, "a\0b", 3);
	ck_assert_int_eq(publish_props_rc(&p, &m), MQTT_E_UTF8);
}
END_TEST

/* The decoder exposes the payload format indicator; whether to refuse non-UTF-8 is the broker's call. */
START_TEST(test_MQTT_3_3_2_4_payload_format_not_enforced)
{
	bb_t p = { .n = 0 }, b = { .n = 0 };
	mqtt_publish_t m;
	mqtt_frame_t f;
	uint8_t pkt[64];
	size_t n;

	bb_u8(&p, MQTT_PROP_PAYLOAD_FORMAT);
	bb_u8(&p, 1);
	bb_str(&b, "t");
	bb_props(&b, &p);
	bb_raw(&b, "\xFF\xFE", 2);
	n = bb_packet(0x30, &b, pkt);
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, n), n, 0, &f), (int64_t)n);
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V5, &m), MQTT_OK);
	ck_assert_uint_eq(m.props.payload_format, 1);
	ck_assert_uint_eq(m.payload.len, 2);
}
END_TEST

/* A property block longer than the packet, or a value cut off inside its block. */
START_TEST(test_MQTT_2_2_2_1_property_length_overrun)
{
	static const uint8_t over[] = { 0x30, 0x05, 0x00, 0x01, 't', 0x05, 0x01 };
	static const uint8_t cut[] = { 0x30, 0x07, 0x00, 0x01, 't', 0x02, 0x02, 0x00, 0x00 };
	static const uint8_t badvbi[] = { 0x30, 0x08, 0x00, 0x01, 't', 0x80, 0x80, 0x80, 0x80, 0x01 };
	static const uint8_t ack_over[] = { 0x40, 0x04, 0x00, 0x01, 0x00, 0x09 };
	static const uint8_t subid_cut[] = { 0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x0B, 0x80 };
	static const uint8_t str_past_block[] = { 0x30, 0x0C, 0x00, 0x01, 't', 0x03, 0x03, 0x00, 0x05,
		'h', 'e', 'l', 'l', 'o' };
	static const uint8_t u32_past_block[] = { 0x30, 0x09, 0x00, 0x01, 't', 0x02, 0x02, 0x00,
		0x00, 0x00, 0x01 };
	static const uint8_t pair_past_block[] = { 0x30, 0x0D, 0x00, 0x01, 't', 0x06, 0x26, 0x00, 0x01, 'k', 0x00,
		0x02, 'v', 'x', 'y' };

	ck_assert_int_eq(decode_pkt(over, sizeof(over), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(cut, sizeof(cut), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(badvbi, sizeof(badvbi), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(ack_over, sizeof(ack_over), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(subid_cut, sizeof(subid_cut), MQTT_V5), MQTT_E_MALFORMED);
	/* a value whose length runs past its property block, though not past the packet: the payload after the
	 * block must not be read as the rest of the string */
	ck_assert_int_eq(decode_pkt(str_past_block, sizeof(str_past_block), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(u32_past_block, sizeof(u32_past_block), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(pair_past_block, sizeof(pair_past_block), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_MALFORMED, MQTT_V5, false).code, MQTT_RC_MALFORMED);
}
END_TEST

/* Bytes after the last field where the packet has none. */
START_TEST(test_MQTT_trailing_bytes)
{
	static const uint8_t puback3[] = { 0x40, 0x03, 0x00, 0x01, 0x00 };
	static const uint8_t puback5[] = { 0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00 };
	static const uint8_t disc3[] = { 0xE0, 0x01, 0x00 };
	static const uint8_t disc5[] = { 0xE0, 0x03, 0x00, 0x00, 0x00 };
	static const uint8_t ping[] = { 0xC0, 0x01, 0x00 };
	static const uint8_t connack3[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
	static const uint8_t connack5[] = { 0x20, 0x04, 0x00, 0x00, 0x00, 0x00 };
	static const uint8_t unsuback3[] = { 0xB0, 0x03, 0x00, 0x01, 0x00 };
	static const uint8_t auth5[] = { 0xF0, 0x03, 0x18, 0x00, 0x00 };

	ck_assert_int_eq(decode_pkt(puback3, sizeof(puback3), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(puback5, sizeof(puback5), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(disc3, sizeof(disc3), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(disc5, sizeof(disc5), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(ping, sizeof(ping), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(connack3, sizeof(connack3), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(connack5, sizeof(connack5), MQTT_V5), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(unsuback3, sizeof(unsuback3), MQTT_V311), MQTT_E_MALFORMED);
	ck_assert_int_eq(decode_pkt(auth5, sizeof(auth5), MQTT_V5), MQTT_E_MALFORMED);
}
END_TEST

/* MQTT 5 3.4.2.1 / 3.14.2.1 / 3.15.2.1: short forms, and reason codes that packet may carry. */
START_TEST(test_MQTT_3_4_2_1_ack_short_forms)
{
	static const uint8_t ack2[] = { 0x40, 0x02, 0x00, 0x05 };
	static const uint8_t ack3[] = { 0x50, 0x03, 0x00, 0x05, 0x10 };
	static const uint8_t ack_bad_rc[] = { 0x40, 0x03, 0x00, 0x05, 0x01 };
	static const uint8_t pubrel_92[] = { 0x62, 0x03, 0x00, 0x05, 0x92 };
	static const uint8_t pubrel_10[] = { 0x62, 0x03, 0x00, 0x05, 0x10 };
	static const uint8_t disc0[] = { 0xE0, 0x00 };
	static const uint8_t disc1[] = { 0xE0, 0x01, 0x04 };
	static const uint8_t disc_bad[] = { 0xE0, 0x01, 0x01 };
	static const uint8_t auth0[] = { 0xF0, 0x00 };
	static const uint8_t auth_bad[] = { 0xF0, 0x01, 0x80 };
	static const uint8_t suback_bad[] = { 0x90, 0x04, 0x00, 0x01, 0x00, 0x03 };
	static const uint8_t suback3_bad[] = { 0x90, 0x03, 0x00, 0x01, 0x87 };
	static const uint8_t suback_none[] = { 0x90, 0x03, 0x00, 0x01, 0x00 };
	static const uint8_t connack5_bad[] = { 0x20, 0x03, 0x00, 0x01, 0x00 };
	static const uint8_t connack3_sp[] = { 0x20, 0x02, 0x01, 0x05 };
	mqtt_ack_t a;
	mqtt_frame_t f;

	ck_assert_int_eq(mqtt_frame(guard_copy(ack2, sizeof(ack2)), sizeof(ack2), 0, &f), 4);
	ck_assert_int_eq(mqtt_decode_ack(&f, MQTT_V5, &a), MQTT_OK);
	ck_assert_uint_eq(a.packet_id, 5);
	ck_assert_uint_eq(a.reason, 0);
	ck_assert_int_eq(mqtt_frame(guard_copy(ack3, sizeof(ack3)), sizeof(ack3), 0, &f), 5);
	ck_assert_int_eq(mqtt_decode_ack(&f, MQTT_V5, &a), MQTT_OK);
	ck_assert_uint_eq(a.reason, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	ck_assert_int_eq(decode_pkt(ack_bad_rc, sizeof(ack_bad_rc), MQTT_V5), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(pubrel_92, sizeof(pubrel_92), MQTT_V5), MQTT_OK);
	ck_assert_int_eq(decode_pkt(pubrel_10, sizeof(pubrel_10), MQTT_V5), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(disc0, sizeof(disc0), MQTT_V5), MQTT_OK);
	ck_assert_int_eq(mqtt_frame(guard_copy(disc1, sizeof(disc1)), sizeof(disc1), 0, &f), 3);
	ck_assert_int_eq(mqtt_decode_disconnect(&f, MQTT_V5, &a), MQTT_OK);
	ck_assert_uint_eq(a.reason, MQTT_RC_DISCONNECT_WITH_WILL);
	ck_assert_int_eq(decode_pkt(disc_bad, sizeof(disc_bad), MQTT_V5), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(auth0, sizeof(auth0), MQTT_V5), MQTT_OK);
	ck_assert_int_eq(decode_pkt(auth_bad, sizeof(auth_bad), MQTT_V5), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(suback_bad, sizeof(suback_bad), MQTT_V5), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(suback3_bad, sizeof(suback3_bad), MQTT_V311), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(suback_none, sizeof(suback_none), MQTT_V5), MQTT_E_PROTOCOL);
	ck_assert_int_eq(decode_pkt(connack5_bad, sizeof(connack5_bad), MQTT_V5), MQTT_E_PROTOCOL);
	/* [MQTT-3.2.2-4]: session present only on success */
	ck_assert_int_eq(decode_pkt(connack3_sp, sizeof(connack3_sp), MQTT_V311), MQTT_E_PROTOCOL);
}
END_TEST

/* A packet decoder is only for its own type. */
START_TEST(test_MQTT_wrong_type)
{
	static const uint8_t ping[] = { 0xC0, 0x00 };
	mqtt_frame_t f;
	mqtt_connect_t c;
	mqtt_publish_t p;
	mqtt_ack_t a;
	mqtt_subscribe_t s;
	mqtt_suback_t sa;
	mqtt_connack_t ca;

	ck_assert_int_eq(mqtt_frame(guard_copy(ping, 2), 2, 0, &f), 2);
	ck_assert_int_eq(mqtt_decode_empty(&f), MQTT_OK);
	ck_assert_int_eq(mqtt_decode_connect(&f, &c), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_decode_connack(&f, MQTT_V5, &ca), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V5, &p), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_decode_ack(&f, MQTT_V5, &a), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_decode_subscribe(&f, MQTT_V5, &s), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_decode_unsubscribe(&f, MQTT_V5, &s), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V5, &sa), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_decode_disconnect(&f, MQTT_V5, &a), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_decode_auth(&f, &a), MQTT_E_MALFORMED);
}
END_TEST

static Suite *
decode_suite(void)
{
	Suite *s = suite_create("mqtt_decode");
	TCase *tc = tcase_create("header");

	tcase_add_test(tc, test_MQTT_2_1_3_1_reserved_flags);
	tcase_add_test(tc, test_MQTT_3_3_1_4_publish_qos3);
	tcase_add_test(tc, test_MQTT_3_3_1_2_dup_qos0);
	tcase_add_test(tc, test_MQTT_2_2_1_3_packet_id_zero);
	tcase_add_test(tc, test_MQTT_wrong_type);
	tcase_add_test(tc, test_MQTT_trailing_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("connect");
	tcase_add_test(tc, test_MQTT_3_1_2_2_protocol_version);
	tcase_add_test(tc, test_MQTT_3_1_2_3_reserved_flag);
	tcase_add_test(tc, test_MQTT_3_1_2_13_will_flags);
	tcase_add_test(tc, test_MQTT_3_1_2_22_password_without_username);
	tcase_add_test(tc, test_MQTT_3_1_2_1_protocol_name);
	tcase_add_test(tc, test_MQTT_1_5_3_1_client_id_utf8);
	tcase_add_test(tc, test_MQTT_1_5_3_2_client_id_null_char);
	tcase_add_test(tc, test_MQTT_3_1_3_8_empty_client_id);
	tcase_add_test(tc, test_MQTT_3_1_connect_trailing_bytes);
	tcase_add_test(tc, test_MQTT_3_1_connect_fields);
	suite_add_tcase(s, tc);

	tc = tcase_create("publish");
	tcase_add_test(tc, test_MQTT_3_3_2_2_topic_name_wildcards);
	tcase_add_test(tc, test_MQTT_3_3_2_1_empty_topic);
	tcase_add_test(tc, test_MQTT_3_3_2_4_payload_format_not_enforced);
	tcase_add_test(tc, test_MQTT_3_3_4_sub_ids_overflow);
	suite_add_tcase(s, tc);

	tc = tcase_create("subscribe");
	tcase_add_test(tc, test_MQTT_3_8_3_3_subscribe_no_filters);
	tcase_add_test(tc, test_MQTT_3_8_3_5_subopts_reserved_bits);
	tcase_add_test(tc, test_MQTT_3_8_3_1_subopts_qos3);
	tcase_add_test(tc, test_MQTT_3_8_3_1_retain_handling_3);
	tcase_add_test(tc, test_MQTT_3_8_3_4_no_local_shared);
	tcase_add_test(tc, test_MQTT_4_7_1_subscribe_filters);
	tcase_add_test(tc, test_MQTT_4_7_1_subscribe_bad_filter_later);
	tcase_add_test(tc, test_MQTT_3_8_3_subscribe_walk);
	suite_add_tcase(s, tc);

	tc = tcase_create("properties");
	tcase_add_test(tc, test_MQTT_2_2_2_2_property_not_allowed);
	tcase_add_test(tc, test_MQTT_2_2_2_2_duplicate_property);
	tcase_add_test(tc, test_MQTT_3_1_2_11_property_values);
	tcase_add_test(tc, test_MQTT_2_2_2_1_property_length_overrun);
	tcase_add_test(tc, test_MQTT_3_4_2_1_ack_short_forms);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(decode_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

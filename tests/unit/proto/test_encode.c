/*
 * test_encode.c — encoders: exact sizes, exact bytes for the fixed short forms, and encode -> decode round
 * trips of every packet type in 3.1.1 and 5 with every property the type allows. Also the error mappings.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static mqtt_str_t
lit(const char *s)
{
	mqtt_str_t r = { (const uint8_t *)s, (uint32_t)strlen(s) };

	return r;
}

/* The encoder wrote exactly `size` bytes; re-frame them from guarded memory for decoding. */
static void
reframe(const uint8_t *out, size_t n, uint32_t size, mqtt_frame_t *f)
{
	ck_assert_uint_gt(size, 0);
	ck_assert_uint_eq(n, size);
	ck_assert_int_eq(mqtt_frame(guard_copy(out, n), n, 0, f), (int64_t)n);
}

static void
assert_bytes(const uint8_t *out, size_t n, const uint8_t *want, size_t wn)
{
	ck_assert_uint_eq(n, wn);
	ck_assert_mem_eq(out, want, wn);
}

START_TEST(test_MQTT_3_1_connect_round_trip)
{
	static const uint8_t versions[] = { MQTT_V31, MQTT_V311, MQTT_V5 };
	uint8_t ubuf[64], wubuf[64];
	size_t i;

	for (i = 0; i < sizeof(versions); i++) {
		mqtt_connect_t c, d;
		mqtt_frame_t f;
		uint32_t size;
		uint8_t *out;
		size_t n;

		memset(&c, 0, sizeof(c));
		c.version = versions[i];
		c.clean_start = true;
		c.will = true;
		c.will_qos = 2;
		c.will_retain = true;
		c.has_username = true;
		c.has_password = true;
		c.keep_alive = 0xFFFF;
		c.client_id = lit("client-\xE2\x82\xAC");
		c.will_topic = lit("last/will");
		c.will_payload.p = (const uint8_t *)"\x00\x01\x02";
		c.will_payload.len = 3;
		c.username = lit("user");
		c.password = lit("pass");
		if (c.version == MQTT_V5) {
			fill_props(&c.props, MQTT_CONNECT, ubuf);
			fill_props(&c.will_props, MQTT_WILL_PROPS, wubuf);
		}
		size = mqtt_connect_size(&c);
		out = guard_out(size);
		ck_assert_uint_eq(mqtt_encode_connect(out, size - 1, &c), 0);
		n = mqtt_encode_connect(out, size, &c);
		reframe(out, n, size, &f);
		ck_assert_uint_eq(f.type, MQTT_CONNECT);
		ck_assert_int_eq(mqtt_decode_connect(&f, &d), MQTT_OK);
		ck_assert_uint_eq(d.version, c.version);
		ck_assert(d.clean_start && d.will && d.will_retain && d.has_username && d.has_password);
		ck_assert_uint_eq(d.will_qos, 2);
		ck_assert_uint_eq(d.keep_alive, 0xFFFF);
		assert_str_eq(d.client_id, c.client_id);
		assert_str_eq(d.will_topic, c.will_topic);
		assert_str_eq(d.will_payload, c.will_payload);
		assert_str_eq(d.username, c.username);
		assert_str_eq(d.password, c.password);
		assert_props_eq(&d.props, &c.props);
		assert_props_eq(&d.will_props, &c.will_props);
	}
}
END_TEST

/* The smallest CONNECT, byte for byte (3.1.1 section 3.1 example layout). */
START_TEST(test_MQTT_3_1_connect_bytes_v311)
{
	static const uint8_t want[] = { 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C,
		0x00, 0x01, 'c' };
	mqtt_connect_t c = { .version = MQTT_V311, .clean_start = true, .keep_alive = 60 };
	uint8_t out[64];

	c.client_id = lit("c");
	ck_assert_uint_eq(mqtt_connect_size(&c), sizeof(want));
	assert_bytes(out, mqtt_encode_connect(out, sizeof(out), &c), want, sizeof(want));
}
END_TEST

START_TEST(test_MQTT_3_2_connack_round_trip)
{
	static const uint8_t v3[] = { 0x20, 0x02, 0x01, 0x00 };
	static const uint8_t v3_refused[] = { 0x20, 0x02, 0x00, 0x05 };
	mqtt_connack_t c = { .session_present = true, .reason = 0 }, d;
	uint8_t ubuf[64], *out;
	mqtt_frame_t f;
	uint32_t size;

	ck_assert_uint_eq(mqtt_connack_size(MQTT_V311, &c), 4);
	out = guard_out(4);
	assert_bytes(out, mqtt_encode_connack(out, 4, MQTT_V311, &c), v3, sizeof(v3));
	c.session_present = false;
	c.reason = MQTT_V3_NOT_AUTHORIZED;
	assert_bytes(out, mqtt_encode_connack(out, 4, MQTT_V311, &c), v3_refused, sizeof(v3_refused));
	ck_assert_uint_eq(mqtt_encode_connack(out, 3, MQTT_V311, &c), 0);

	c.session_present = true;
	c.reason = 0;
	fill_props(&c.props, MQTT_CONNACK, ubuf);
	size = mqtt_connack_size(MQTT_V5, &c);
	out = guard_out(size);
	ck_assert_uint_eq(mqtt_encode_connack(out, size - 1, MQTT_V5, &c), 0);
	reframe(out, mqtt_encode_connack(out, size, MQTT_V5, &c), size, &f);
	ck_assert_int_eq(mqtt_decode_connack(&f, MQTT_V5, &d), MQTT_OK);
	ck_assert(d.session_present);
	ck_assert_uint_eq(d.reason, 0);
	assert_props_eq(&d.props, &c.props);
	/* an empty property set still has its length byte: 2 + 1 */
	memset(&c.props, 0, sizeof(c.props));
	ck_assert_uint_eq(mqtt_connack_size(MQTT_V5, &c), 5);
}
END_TEST

START_TEST(test_MQTT_3_3_publish_round_trip)
{
	static const uint8_t versions[] = { MQTT_V311, MQTT_V5 };
	uint8_t ubuf[64];
	size_t i;
	uint8_t qos;

	for (i = 0; i < sizeof(versions); i++) {
		for (qos = 0; qos <= 2; qos++) {
			mqtt_publish_t m, d;
			mqtt_frame_t f;
			uint32_t size;
			uint8_t *out;

			memset(&m, 0, sizeof(m));
			m.qos = qos;
			m.dup = qos > 0;
			m.retain = true;
			m.packet_id = qos > 0 ? 0xBEEF : 0;
			m.topic = lit("sensors/\xC3\xA9t\xC3\xA9/temp");
			m.payload.p = (const uint8_t *)"\x00\xFF payload";
			m.payload.len = 10;
			if (versions[i] == MQTT_V5)
				fill_props(&m.props, MQTT_PUBLISH, ubuf);
			size = mqtt_publish_size(versions[i], &m);
			out = guard_out(size);
			ck_assert_uint_eq(mqtt_encode_publish(out, size - 1, versions[i], &m), 0);
			reframe(out, mqtt_encode_publish(out, size, versions[i], &m), size, &f);
			ck_assert_uint_eq(f.flags, (qos > 0 ? 0x08 : 0) | qos << 1 | 1);
			ck_assert_int_eq(mqtt_decode_publish(&f, versions[i], &d), MQTT_OK);
			ck_assert_uint_eq(d.qos, qos);
			ck_assert_int_eq(d.dup, m.dup);
			ck_assert(d.retain);
			ck_assert_uint_eq(d.packet_id, m.packet_id);
			assert_str_eq(d.topic, m.topic);
			assert_str_eq(d.payload, m.payload);
			assert_props_eq(&d.props, &m.props);
		}
	}
}
END_TEST

/* Packets whose remaining length sits on each VBI boundary frame and decode. */
START_TEST(test_MQTT_1_5_5_packet_length_boundaries)
{
	static const uint32_t rems[] = { 127, 128, 16383, 16384 };
	static uint8_t payload[16384];
	size_t i;

	for (i = 0; i < sizeof(rems) / sizeof(rems[0]); i++) {
		mqtt_publish_t m = { .qos = 0 }, d;
		mqtt_frame_t f;
		uint32_t size;
		uint8_t *out;

		m.topic = lit("t");
		m.payload.p = payload;
		m.payload.len = rems[i] - 3;
		size = mqtt_publish_size(MQTT_V311, &m);
		ck_assert_uint_eq(size, 1 + (uint32_t)mqtt_vbi_size(rems[i]) + rems[i]);
		out = guard_out(size);
		reframe(out, mqtt_encode_publish(out, size, MQTT_V311, &m), size, &f);
		ck_assert_uint_eq(f.remaining, rems[i]);
		ck_assert_uint_eq(f.header_len, 1 + mqtt_vbi_size(rems[i]));
		ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &d), MQTT_OK);
		ck_assert_uint_eq(d.payload.len, rems[i] - 3);
	}
}
END_TEST

/* 3.1.1 acks are 4 bytes; MQTT 5 drops reason and property length when they carry nothing (3.4.2.1). */
START_TEST(test_MQTT_3_4_2_1_ack_forms)
{
	static const uint8_t types[] = { MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP };
	uint8_t ubuf[64];
	size_t i;

	for (i = 0; i < sizeof(types); i++) {
		uint8_t t = types[i], b0 = (uint8_t)(t << 4 | (t == MQTT_PUBREL ? 2 : 0));
		uint8_t reason = t == MQTT_PUBACK || t == MQTT_PUBREC ? MQTT_RC_NO_MATCHING_SUBSCRIBERS
			: MQTT_RC_PACKET_ID_NOT_FOUND;
		const uint8_t short_form[] = { b0, 0x02, 0x12, 0x34 };
		const uint8_t reason_form[] = { b0, 0x03, 0x12, 0x34, reason };
		mqtt_ack_t a = { .packet_id = 0x1234, .reason = 0 }, d;
		mqtt_frame_t f;
		uint32_t size;
		uint8_t *out;

		out = guard_out(4);
		ck_assert_uint_eq(mqtt_ack_size(MQTT_V311, &a), 4);
		assert_bytes(out, mqtt_encode_ack(out, 4, t, MQTT_V311, &a), short_form, 4);
		ck_assert_uint_eq(mqtt_encode_ack(out, 3, t, MQTT_V311, &a), 0);
		ck_assert_uint_eq(mqtt_ack_size(MQTT_V5, &a), 4);
		assert_bytes(out, mqtt_encode_ack(out, 4, t, MQTT_V5, &a), short_form, 4);
		/* a reason code is not 3.1.1's to carry */
		a.reason = reason;
		assert_bytes(out, mqtt_encode_ack(out, 4, t, MQTT_V311, &a), short_form, 4);
		out = guard_out(5);
		ck_assert_uint_eq(mqtt_ack_size(MQTT_V5, &a), 5);
		assert_bytes(out, mqtt_encode_ack(out, 5, t, MQTT_V5, &a), reason_form, 5);
		reframe(out, 5, 5, &f);
		ck_assert_int_eq(mqtt_decode_ack(&f, MQTT_V5, &d), MQTT_OK);
		ck_assert_uint_eq(d.reason, reason);
		ck_assert_uint_eq(d.packet_id, 0x1234);

		fill_props(&a.props, t, ubuf);
		size = mqtt_ack_size(MQTT_V5, &a);
		out = guard_out(size);
		ck_assert_uint_eq(mqtt_encode_ack(out, size - 1, t, MQTT_V5, &a), 0);
		reframe(out, mqtt_encode_ack(out, size, t, MQTT_V5, &a), size, &f);
		ck_assert_uint_eq(f.type, t);
		ck_assert_int_eq(mqtt_decode_ack(&f, MQTT_V5, &d), MQTT_OK);
		ck_assert_uint_eq(d.reason, reason);
		assert_props_eq(&d.props, &a.props);
		/* reason 0 with properties keeps the reason byte */
		a.reason = 0;
		out = guard_out(mqtt_ack_size(MQTT_V5, &a));
		reframe(out, mqtt_encode_ack(out, size, t, MQTT_V5, &a), size, &f);
		ck_assert_uint_eq(f.body[2], 0);
	}
}
END_TEST

START_TEST(test_MQTT_3_8_subscribe_round_trip)
{
	static const uint8_t versions[] = { MQTT_V311, MQTT_V5 };
	const mqtt_str_t filters[] = { lit("a/+/c"), lit("$share/grp/x/#"), lit("#") };
	const mqtt_subopts_t opts[] = {
		{ .qos = 2, .no_local = true, .retain_as_published = true, .retain_handling = 2 },
		{ .qos = 1, .no_local = false, .retain_as_published = false, .retain_handling = 1 },
		{ .qos = 0 },
	};
	uint8_t ubuf[64];
	size_t i;

	for (i = 0; i < sizeof(versions); i++) {
		uint8_t v = versions[i];
		mqtt_props_t p;
		mqtt_subscribe_t d;
		mqtt_subopts_t o;
		mqtt_str_t filter;
		mqtt_iter_t it;
		mqtt_frame_t f;
		uint32_t size, k;
		uint8_t *out;

		fill_props(&p, MQTT_SUBSCRIBE, ubuf);
		size = mqtt_subscribe_size(v, &p, filters, 3);
		out = guard_out(size);
		ck_assert_uint_eq(mqtt_encode_subscribe(out, size - 1, v, 42, &p, filters, opts, 3), 0);
		reframe(out, mqtt_encode_subscribe(out, size, v, 42, &p, filters, opts, 3), size, &f);
		ck_assert_uint_eq(f.flags, 0x2);
		ck_assert_int_eq(mqtt_decode_subscribe(&f, v, &d), MQTT_OK);
		ck_assert_uint_eq(d.packet_id, 42);
		ck_assert_uint_eq(d.count, 3);
		if (v == MQTT_V5)
			assert_props_eq(&d.props, &p);
		mqtt_sub_iter(&d, &it);
		for (k = 0; k < 3; k++) {
			ck_assert(mqtt_sub_next(&it, &filter, &o));
			assert_str_eq(filter, filters[k]);
			ck_assert_uint_eq(o.qos, opts[k].qos);
			/* 3.1.1 has only the QoS bits */
			ck_assert_int_eq(o.no_local, v == MQTT_V5 && opts[k].no_local);
			ck_assert_int_eq(o.retain_as_published, v == MQTT_V5 && opts[k].retain_as_published);
			ck_assert_uint_eq(o.retain_handling, v == MQTT_V5 ? opts[k].retain_handling : 0);
		}
		ck_assert(!mqtt_sub_next(&it, &filter, &o));

		fill_props(&p, MQTT_UNSUBSCRIBE, ubuf);
		size = mqtt_unsubscribe_size(v, &p, filters, 3);
		out = guard_out(size);
		ck_assert_uint_eq(mqtt_encode_unsubscribe(out, size - 1, v, 43, &p, filters, 3), 0);
		reframe(out, mqtt_encode_unsubscribe(out, size, v, 43, &p, filters, 3), size, &f);
		ck_assert_uint_eq(f.flags, 0x2);
		ck_assert_int_eq(mqtt_decode_unsubscribe(&f, v, &d), MQTT_OK);
		ck_assert_uint_eq(d.packet_id, 43);
		ck_assert_uint_eq(d.count, 3);
		if (v == MQTT_V5)
			assert_props_eq(&d.props, &p);
		mqtt_sub_iter(&d, &it);
		for (k = 0; k < 3; k++) {
			ck_assert(mqtt_unsub_next(&it, &filter));
			assert_str_eq(filter, filters[k]);
		}
		ck_assert(!mqtt_unsub_next(&it, &filter));
	}
	/* properties are optional for the caller */
	ck_assert_uint_eq(mqtt_subscribe_size(MQTT_V5, NULL, filters, 1), 2 + 2 + 1 + 2 + 5 + 1);
}
END_TEST

START_TEST(test_MQTT_3_9_suback_round_trip)
{
	static const uint8_t codes[] = { 0x00, 0x01, 0x02, 0x80 };
	static const uint8_t unsub_codes[] = { 0x00, 0x11 };
	static const uint8_t unsuback_v3[] = { 0xB0, 0x02, 0x00, 0x07 };
	static const uint8_t suback_v3[] = { 0x90, 0x06, 0x00, 0x07, 0x00, 0x01, 0x02, 0x80 };
	mqtt_suback_t s = { .packet_id = 7, .reasons = codes, .count = 4 }, d;
	uint8_t ubuf[64], *out;
	mqtt_frame_t f;
	uint32_t size;

	out = guard_out(8);
	ck_assert_uint_eq(mqtt_suback_size(MQTT_V311, &s), 8);
	assert_bytes(out, mqtt_encode_suback(out, 8, MQTT_SUBACK, MQTT_V311, &s), suback_v3, 8);
	reframe(out, 8, 8, &f);
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V311, &d), MQTT_OK);
	ck_assert_uint_eq(d.count, 4);
	ck_assert_mem_eq(d.reasons, codes, 4);

	/* 3.1.1 UNSUBACK: the packet id and nothing else, whatever reasons the caller had */
	out = guard_out(4);
	assert_bytes(out, mqtt_encode_suback(out, 4, MQTT_UNSUBACK, MQTT_V311, &s), unsuback_v3, 4);
	reframe(out, 4, 4, &f);
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V311, &d), MQTT_OK);
	ck_assert_uint_eq(d.count, 0);
	s.count = 0;
	ck_assert_uint_eq(mqtt_suback_size(MQTT_V311, &s), 4);
	s.count = 4;

	fill_props(&s.props, MQTT_SUBACK, ubuf);
	size = mqtt_suback_size(MQTT_V5, &s);
	out = guard_out(size);
	ck_assert_uint_eq(mqtt_encode_suback(out, size - 1, MQTT_SUBACK, MQTT_V5, &s), 0);
	reframe(out, mqtt_encode_suback(out, size, MQTT_SUBACK, MQTT_V5, &s), size, &f);
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V5, &d), MQTT_OK);
	ck_assert_uint_eq(d.packet_id, 7);
	ck_assert_uint_eq(d.count, 4);
	ck_assert_mem_eq(d.reasons, codes, 4);
	assert_props_eq(&d.props, &s.props);

	s.reasons = unsub_codes;
	s.count = 2;
	size = mqtt_suback_size(MQTT_V5, &s);
	out = guard_out(size);
	reframe(out, mqtt_encode_suback(out, size, MQTT_UNSUBACK, MQTT_V5, &s), size, &f);
	ck_assert_uint_eq(f.type, MQTT_UNSUBACK);
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V5, &d), MQTT_OK);
	ck_assert_uint_eq(d.count, 2);
	ck_assert_mem_eq(d.reasons, unsub_codes, 2);
}
END_TEST

/* DISCONNECT: 3.1.1 is 2 bytes; MQTT 5 short forms (3.14.2.1) and full form. AUTH likewise (3.15.2.1). */
START_TEST(test_MQTT_3_14_disconnect_and_auth)
{
	static const uint8_t d2[] = { 0xE0, 0x00 };
	static const uint8_t d3[] = { 0xE0, 0x01, 0x04 };
	static const uint8_t a2[] = { 0xF0, 0x00 };
	static const uint8_t a3[] = { 0xF0, 0x01, 0x18 };
	mqtt_ack_t d = { .reason = MQTT_RC_DISCONNECT_WITH_WILL }, r;
	uint8_t ubuf[64], *out;
	mqtt_frame_t f;
	uint32_t size;

	out = guard_out(2);
	ck_assert_uint_eq(mqtt_disconnect_size(MQTT_V311, &d), 2);
	assert_bytes(out, mqtt_encode_disconnect(out, 2, MQTT_V311, &d), d2, 2);
	ck_assert_uint_eq(mqtt_encode_disconnect(out, 1, MQTT_V311, &d), 0);
	out = guard_out(3);
	ck_assert_uint_eq(mqtt_disconnect_size(MQTT_V5, &d), 3);
	assert_bytes(out, mqtt_encode_disconnect(out, 3, MQTT_V5, &d), d3, 3);
	d.reason = 0;
	out = guard_out(2);
	assert_bytes(out, mqtt_encode_disconnect(out, 2, MQTT_V5, &d), d2, 2);
	assert_bytes(out, mqtt_encode_auth(out, 2, &d), a2, 2);
	d.reason = MQTT_RC_CONTINUE_AUTH;
	out = guard_out(3);
	assert_bytes(out, mqtt_encode_auth(out, 3, &d), a3, 3);

	d.reason = MQTT_RC_SERVER_SHUTTING_DOWN;
	fill_props(&d.props, MQTT_DISCONNECT, ubuf);
	size = mqtt_disconnect_size(MQTT_V5, &d);
	out = guard_out(size);
	ck_assert_uint_eq(mqtt_encode_disconnect(out, size - 1, MQTT_V5, &d), 0);
	reframe(out, mqtt_encode_disconnect(out, size, MQTT_V5, &d), size, &f);
	ck_assert_int_eq(mqtt_decode_disconnect(&f, MQTT_V5, &r), MQTT_OK);
	ck_assert_uint_eq(r.reason, MQTT_RC_SERVER_SHUTTING_DOWN);
	assert_props_eq(&r.props, &d.props);

	d.reason = MQTT_RC_REAUTHENTICATE;
	fill_props(&d.props, MQTT_AUTH, ubuf);
	size = mqtt_disconnect_size(MQTT_V5, &d);
	out = guard_out(size);
	ck_assert_uint_eq(mqtt_encode_auth(out, size - 1, &d), 0);
	reframe(out, mqtt_encode_auth(out, size, &d), size, &f);
	ck_assert_uint_eq(f.type, MQTT_AUTH);
	ck_assert_int_eq(mqtt_decode_auth(&f, &r), MQTT_OK);
	ck_assert_uint_eq(r.reason, MQTT_RC_REAUTHENTICATE);
	assert_props_eq(&r.props, &d.props);
}
END_TEST

START_TEST(test_MQTT_3_12_ping)
{
	static const uint8_t req[] = { 0xC0, 0x00 };
	static const uint8_t resp[] = { 0xD0, 0x00 };
	uint8_t *out = guard_out(2);
	mqtt_frame_t f;

	assert_bytes(out, mqtt_encode_empty(out, 2, MQTT_PINGREQ), req, 2);
	reframe(out, 2, 2, &f);
	ck_assert_int_eq(mqtt_decode_empty(&f), MQTT_OK);
	assert_bytes(out, mqtt_encode_empty(out, 2, MQTT_PINGRESP), resp, 2);
	reframe(out, 2, 2, &f);
	ck_assert_int_eq(mqtt_decode_empty(&f), MQTT_OK);
	ck_assert_uint_eq(mqtt_encode_empty(out, 1, MQTT_PINGREQ), 0);
}
END_TEST

/* Properties go out in ascending id order, each subscription id on its own, the user run at 0x26. */
START_TEST(test_MQTT_2_2_2_props_encoding_order)
{
	static const uint8_t user[] = { 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v' };
	static const uint8_t want[] = { 0x16,
		0x01, 0x01,
		0x03, 0x00, 0x02, 'c', 't',
		0x0B, 0x05,
		0x0B, 0x80, 0x01,
		0x23, 0x00, 0x09,
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v' };
	mqtt_props_t p;
	uint8_t out[64];

	memset(&p, 0, sizeof(p));
	p.present = MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY) | MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)
		| MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE)
		| MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
	p.payload_format = 1;
	p.content_type = lit("ct");
	p.sub_ids[0] = 5;
	p.sub_ids[1] = 128;
	p.n_sub_ids = 2;
	p.topic_alias = 9;
	p.user.p = user;
	p.user.len = sizeof(user);
	/* a set field without its bit is not written */
	p.message_expiry = 77;
	ck_assert_uint_eq(mqtt_props_size(&p), sizeof(want));
	ck_assert_uint_eq(mqtt_props_encode(out, sizeof(want) - 1, &p), 0);
	assert_bytes(out, mqtt_props_encode(out, sizeof(out), &p), want, sizeof(want));
	memset(&p, 0, sizeof(p));
	ck_assert_uint_eq(mqtt_props_size(&p), 1);
	ck_assert_uint_eq(mqtt_props_size(NULL), 1);
}
END_TEST

/* User properties interleaved with others: forwarding the decoded set must not repeat the others. */
START_TEST(test_MQTT_3_3_2_3_7_user_props_forwarded)
{
	bb_t b = { .n = 0 }, p = { .n = 0 };
	mqtt_publish_t m, d;
	mqtt_frame_t f;
	mqtt_iter_t it;
	mqtt_str_t k, v;
	uint8_t pkt[128], *out;
	uint32_t size;
	size_t n;

	bb_u8(&p, MQTT_PROP_USER_PROPERTY);
	bb_str(&p, "a");
	bb_str(&p, "1");
	bb_u8(&p, MQTT_PROP_MESSAGE_EXPIRY);
	bb_u32(&p, 10);
	bb_u8(&p, MQTT_PROP_USER_PROPERTY);
	bb_str(&p, "b");
	bb_str(&p, "2");
	bb_str(&b, "t");
	bb_props(&b, &p);
	n = bb_packet(0x30, &b, pkt);
	/* m's views point into pkt, which must outlive the guard region's next use below */
	ck_assert_int_eq(mqtt_frame(pkt, n, 0, &f), (int64_t)n);
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V5, &m), MQTT_OK);
	size = mqtt_publish_size(MQTT_V5, &m);
	ck_assert_uint_eq(size, n);
	out = guard_out(size);
	reframe(out, mqtt_encode_publish(out, size, MQTT_V5, &m), size, &f);
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V5, &d), MQTT_OK);
	ck_assert_uint_eq(d.props.message_expiry, 10);
	mqtt_user_prop_iter(&d.props, &it);
	ck_assert(mqtt_user_prop_next(&it, &k, &v));
	ck_assert_mem_eq(k.p, "a", 1);
	ck_assert(mqtt_user_prop_next(&it, &k, &v));
	ck_assert_mem_eq(k.p, "b", 1);
	ck_assert(!mqtt_user_prop_next(&it, &k, &v));
	/* and now the user run is contiguous */
	ck_assert_uint_eq(d.props.user.len, 2 * 7);
}
END_TEST

/* A field too long for its 2-byte length makes the packet unencodable rather than corrupt. */
START_TEST(test_MQTT_1_5_4_string_too_long)
{
	static uint8_t big[70000];
	mqtt_publish_t m = { .qos = 0 };
	mqtt_props_t p;
	uint8_t out[16];

	memset(big, 'a', sizeof(big));
	m.topic.p = big;
	m.topic.len = 65536;
	ck_assert_uint_eq(mqtt_publish_size(MQTT_V311, &m), 0);
	ck_assert_uint_eq(mqtt_encode_publish(out, sizeof(out), MQTT_V311, &m), 0);
	m.topic.len = 65535;
	ck_assert_uint_eq(mqtt_publish_size(MQTT_V311, &m), 1 + 3 + 2 + 65535);
	memset(&p, 0, sizeof(p));
	p.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
	p.reason_string.p = big;
	p.reason_string.len = 65536;
	ck_assert_uint_eq(mqtt_props_size(&p), 0);
	ck_assert_uint_eq(mqtt_props_encode(out, sizeof(out), &p), 0);
}
END_TEST

/* MQTT 3.1 (level 3) CONNACK: the first variable-header byte is reserved (3.1 has no Session Present flag), so
 * it is written as 0 and not read as a flag. 3.1.1 [MQTT-3.2.2-2] keeps the flag. */
START_TEST(test_MQTT_3_2_2_1_connack_v31_no_session_present)
{
	static const uint8_t v31[] = { 0x20, 0x02, 0x00, 0x00 };
	static const uint8_t v31_flag[] = { 0x20, 0x02, 0x01, 0x00 };
	mqtt_connack_t c = { .session_present = true, .reason = 0 }, d;
	mqtt_frame_t f;
	uint8_t *out;

	ck_assert_uint_eq(mqtt_connack_size(MQTT_V31, &c), 4);
	out = guard_out(4);
	assert_bytes(out, mqtt_encode_connack(out, 4, MQTT_V31, &c), v31, sizeof(v31));
	/* from a server that sets the bit anyway: no session is made up */
	ck_assert_int_eq(mqtt_frame(guard_copy(v31_flag, 4), 4, 0, &f), 4);
	ck_assert_int_eq(mqtt_decode_connack(&f, MQTT_V31, &d), MQTT_OK);
	ck_assert(!d.session_present);
	ck_assert_int_eq(mqtt_decode_connack(&f, MQTT_V311, &d), MQTT_OK);
	ck_assert(d.session_present);
}
END_TEST

static Suite *
encode_suite(void)
{
	Suite *s = suite_create("mqtt_encode");
	TCase *tc = tcase_create("packets");

	tcase_add_test(tc, test_MQTT_3_1_connect_round_trip);
	tcase_add_test(tc, test_MQTT_3_1_connect_bytes_v311);
	tcase_add_test(tc, test_MQTT_3_2_connack_round_trip);
	tcase_add_test(tc, test_MQTT_3_2_2_1_connack_v31_no_session_present);
	tcase_add_test(tc, test_MQTT_3_3_publish_round_trip);
	tcase_add_test(tc, test_MQTT_1_5_5_packet_length_boundaries);
	tcase_add_test(tc, test_MQTT_3_4_2_1_ack_forms);
	tcase_add_test(tc, test_MQTT_3_8_subscribe_round_trip);
	tcase_add_test(tc, test_MQTT_3_9_suback_round_trip);
	tcase_add_test(tc, test_MQTT_3_14_disconnect_and_auth);
	tcase_add_test(tc, test_MQTT_3_12_ping);
	suite_add_tcase(s, tc);
	tc = tcase_create("properties");
	tcase_add_test(tc, test_MQTT_2_2_2_props_encoding_order);
	tcase_add_test(tc, test_MQTT_3_3_2_3_7_user_props_forwarded);
	tcase_add_test(tc, test_MQTT_1_5_4_string_too_long);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(encode_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

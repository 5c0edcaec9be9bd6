/*
 * test-conn.c — a connection's whole input path (bytes in, framing, handlers, sessions, bytes out) on fake
 * I/O: protocol details clients rely on, the bounds on what one client can make the worker hold, and that
 * no error path (allocation failure included) drops an acknowledged message or leaves a connection open
 * that cannot be answered.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "sess.h"
#include "tclient.h"

static config_t cfg;

static void setup(void)
{
	config_defaults(&cfg);
}

static void start(void)
{
	fake_init(&cfg, 0, 1);
}

static void stop(void)
{
	fake_finish();
}

/* A subscriber with a persistent session on `filter` at QoS 1. */
static void subscriber(tcli_t *t, uint8_t version, const char *cid, const char *filter)
{
	mqtt_frame_t f;

	ck_assert_int_eq(tc_open(t, version, cid, false, version == MQTT_V5 ? 3600 : 0, NULL), 0);
	tc_subscribe(t, 1, filter, 1);
	ck_assert(tc_expect(t, MQTT_SUBACK, &f));
}

static bool next_publish(tcli_t *t, mqtt_publish_t *p)
{
	mqtt_frame_t f;

	return tc_expect(t, MQTT_PUBLISH, &f) && mqtt_decode_publish(&f, t->version, p) == 0;
}

static int disconnect_reason(tcli_t *t, mqtt_ack_t *d)
{
	mqtt_frame_t f;

	if (!tc_expect(t, MQTT_DISCONNECT, &f) || mqtt_decode_disconnect(&f, t->version, d) < 0)
		return -1;
	return d->reason;
}

START_TEST(test_MQTT_3_1_connack_has_no_session_present_flag)
{
	tcli_t t;

	start();
	ck_assert_int_eq(tc_open(&t, MQTT_V31, "v31-client", false, 0, NULL), 0);
	tc_close(&t);
	fake_input(fake_conn_find(t.id), "\xe0\x00", 2); /* DISCONNECT */
	fake_turn();
	/* The session is present now; 3.1 has no flag for it: the first byte stays 0. */
	memset(&t, 0, sizeof(t));
	t.version = MQTT_V31;
	t.c = fake_connect();
	t.id = t.c->id;
	{
		mqtt_connect_t cn = { .version = MQTT_V31, .keep_alive = 60,
			.client_id = { (const uint8_t *)"v31-client", 10 } };
		uint8_t buf[256];
		mqtt_frame_t f;

		tc_send_raw(&t, buf, mqtt_encode_connect(buf, sizeof(buf), &cn));
		ck_assert(tc_recv(&t, &f));
		ck_assert_uint_eq(f.type, MQTT_CONNACK);
		ck_assert_uint_eq(f.remaining, 2);
		ck_assert_uint_eq(f.body[0], 0);
		ck_assert_uint_eq(f.body[1], 0);
	}
	tc_close(&t);
	stop();
}
END_TEST

START_TEST(test_first_outbound_packet_id_is_1)
{
	tcli_t sub, pub;
	mqtt_publish_t p;

	for (int round = 0; round < 20; round++) {
		start();
		subscriber(&sub, MQTT_V311, "s", "a/b");
		ck_assert_int_eq(tc_open(&pub, MQTT_V311, "p", true, 0, NULL), 0);
		tc_publish(&pub, "a/b", "x", 1, 9);
		ck_assert(next_publish(&sub, &p));
		ck_assert_uint_eq(p.packet_id, 1);
		tc_close(&sub);
		tc_close(&pub);
		stop();
	}
}
END_TEST

START_TEST(test_MQTT_3_3_4_6_client_publish_with_subscription_id)
{
	tcli_t t;
	mqtt_publish_t p;
	mqtt_ack_t d;
	uint8_t buf[256];

	start();
	ck_assert_int_eq(tc_open(&t, MQTT_V5, "c", true, 0, NULL), 0);
	memset(&p, 0, sizeof(p));
	p.topic.p = (const uint8_t *)"a";
	p.topic.len = 1;
	p.props.present = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
	p.props.sub_ids[0] = 3;
	p.props.n_sub_ids = 1;
	tc_send_raw(&t, buf, mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p));
	ck_assert_int_eq(disconnect_reason(&t, &d), MQTT_RC_PROTOCOL_ERROR);
	ck_assert(!tc_alive(&t));
	tc_close(&t);
	stop();
}
END_TEST

static void wrong_kind_ack(uint8_t version, uint8_t ack)
{
	tcli_t sub, pub;
	mqtt_publish_t p;
	mqtt_ack_t d;

	start();
	subscriber(&sub, version, "s", "t");
	ck_assert_int_eq(tc_open(&pub, version, "p", true, 0, NULL), 0);
	tc_publish(&pub, "t", "m", 1, 1);
	ck_assert(next_publish(&sub, &p));
	tc_ack(&sub, ack, p.packet_id); /* PUBACK is due */
	if (version == MQTT_V5)
		ck_assert_int_eq(disconnect_reason(&sub, &d), MQTT_RC_PROTOCOL_ERROR);
	ck_assert(!tc_alive(&sub));
	tc_close(&sub);
	tc_close(&pub);
	stop();
}

START_TEST(test_wrong_kind_of_ack_is_a_protocol_violation)
{
	wrong_kind_ack(MQTT_V311, MQTT_PUBCOMP);
	wrong_kind_ack(MQTT_V311, MQTT_PUBREC);
	wrong_kind_ack(MQTT_V5, MQTT_PUBCOMP);
	wrong_kind_ack(MQTT_V5, MQTT_PUBREC);
}
END_TEST

START_TEST(test_unknown_packet_id_ack_is_ignored)
{
	tcli_t t;

	start();
	ck_assert_int_eq(tc_open(&t, MQTT_V5, "c", true, 0, NULL), 0);
	tc_ack(&t, MQTT_PUBACK, 77);
	tc_ack(&t, MQTT_PUBCOMP, 78);
	ck_assert(tc_alive(&t));
	tc_close(&t);
	stop();
}
END_TEST

START_TEST(test_no_matching_subscribers_0x10)
{
	tcli_t pub, sub;

	start();
	ck_assert_int_eq(tc_open(&pub, MQTT_V5, "p", true, 0, NULL), 0);
	tc_publish(&pub, "nobody/listens", "x", 1, 1);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	tc_publish(&pub, "nobody/listens", "x", 2, 2);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBREC, NULL), MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	subscriber(&sub, MQTT_V5, "s", "nobody/+");
	tc_publish(&pub, "nobody/listens", "x", 1, 3);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	tc_close(&pub);
	tc_close(&sub);
	stop();
}
END_TEST

/* Connect `cid` with a will on "will/<cid>" (delay 0), then take it over with clean_start `clean`. Returns
 * whether the watcher got the will. */
static bool will_on_takeover(uint8_t version, bool clean)
{
	tcli_t watch, a, b;
	mqtt_connect_t cn;
	mqtt_publish_t p;
	uint8_t buf[512];
	mqtt_frame_t f;
	bool got;

	start();
	subscriber(&watch, MQTT_V311, "watch", "will/#");
	memset(&cn, 0, sizeof(cn));
	cn.version = version;
	cn.keep_alive = 60;
	cn.client_id = (mqtt_str_t){ (const uint8_t *)"dev", 3 };
	cn.will = true;
	cn.will_qos = 1;
	cn.will_topic = (mqtt_str_t){ (const uint8_t *)"will/dev", 8 };
	cn.will_payload = (mqtt_str_t){ (const uint8_t *)"gone", 4 };
	if (version == MQTT_V5) {
		cn.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		cn.props.session_expiry = 600;
	}
	memset(&a, 0, sizeof(a));
	a.version = version;
	a.c = fake_connect();
	a.id = a.c->id;
	tc_send_raw(&a, buf, mqtt_encode_connect(buf, sizeof(buf), &cn));
	ck_assert(tc_expect(&a, MQTT_CONNACK, &f));
	ck_assert_int_eq(tc_open(&b, version, "dev", clean, version == MQTT_V5 ? 600 : 0, NULL), 0);
	ck_assert(!tc_alive(&a));
	got = next_publish(&watch, &p);
	tc_close(&watch);
	tc_close(&a);
	tc_close(&b);
	stop();
	return got;
}

START_TEST(test_will_on_takeover)
{
	/* MQTT 5: the session continues, so the will is cancelled as by a reconnect within the Will Delay. */
	ck_assert(!will_on_takeover(MQTT_V5, false));
	/* MQTT 5, clean start: the old session ended with its will. */
	ck_assert(will_on_takeover(MQTT_V5, true));
	/* 3.1.1: published whenever the connection ends without DISCONNECT [MQTT-3.1.2-8] (documented choice). */
	ck_assert(will_on_takeover(MQTT_V311, false));
}
END_TEST

START_TEST(test_MQTT_3_1_2_25_maximum_packet_size_respected)
{
	tcli_t sub, pub;
	mqtt_props_t props;
	mqtt_publish_t p;
	mqtt_frame_t f;
	mqtt_suback_t sa;

	cfg.max_subscriptions = 1;
	start();
	memset(&props, 0, sizeof(props));
	props.present = MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
	props.maximum_packet_size = 40;
	/* The CONNACK with ringmq's properties fits in 40 bytes. */
	ck_assert_int_eq(tc_open(&sub, MQTT_V5, "small", true, 0, &props), 0);
	tc_subscribe(&sub, 1, "big/#", 1);
	ck_assert(tc_expect(&sub, MQTT_SUBACK, &f));
	/* The second subscription is over the quota: its SUBACK would carry a reason string of 40 bytes and more;
	 * the string goes, the packet stays within the limit. */
	tc_subscribe(&sub, 2, "other/#", 1);
	ck_assert(tc_expect(&sub, MQTT_SUBACK, &f));
	ck_assert_uint_le(f.header_len + f.remaining, 40);
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V5, &sa), 0);
	ck_assert_uint_eq(sa.reasons[0], MQTT_RC_QUOTA_EXCEEDED);
	ck_assert(!(sa.props.present & MQTT_PROP_BIT(MQTT_PROP_REASON_STRING)));
	ck_assert_int_eq(tc_open(&pub, MQTT_V5, "p", true, 0, NULL), 0);
	tc_publish(&pub, "big/1", "a payload much too long for a forty byte packet limit....", 1, 1);
	tc_publish(&pub, "big/2", "ok", 1, 2);
	ck_assert(next_publish(&sub, &p));
	ck_assert_uint_eq(p.topic.len, 5);
	ck_assert_mem_eq(p.topic.p, "big/2", 5);
	ck_assert_uint_eq(W->st.dropped_too_large, 1);
	while (tc_recv(&sub, &f))
		ck_assert_uint_le(f.header_len + f.remaining, 40);
	tc_close(&sub);
	tc_close(&pub);
	stop();
}
END_TEST

START_TEST(test_connack_that_cannot_fit_closes)
{
	tcli_t t;
	mqtt_props_t props;

	start();
	memset(&props, 0, sizeof(props));
	props.present = MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
	props.maximum_packet_size = 8; /* a CONNACK with Maximum Packet Size and Topic Alias Maximum is bigger */
	ck_assert_int_eq(tc_open(&t, MQTT_V5, "tiny", true, 0, &props), -1);
	ck_assert(!tc_alive(&t));
	tc_close(&t);
	stop();
}
END_TEST

START_TEST(test_receive_maximum_exceeded_has_reason_string)
{
	tcli_t t;
	mqtt_ack_t d;

	cfg.receive_maximum = 2;
	start();
	ck_assert_int_eq(tc_open(&t, MQTT_V5, "c", true, 0, NULL), 0);
	/* QoS 2 PUBLISHes stay unacknowledged until PUBREL: the third is one too many. */
	tc_publish(&t, "a", "1", 2, 1);
	tc_publish(&t, "a", "2", 2, 2);
	tc_publish(&t, "a", "3", 2, 3);
	ck_assert_int_eq(disconnect_reason(&t, &d), MQTT_RC_RECEIVE_MAX_EXCEEDED);
	ck_assert(d.props.present & MQTT_PROP_BIT(MQTT_PROP_REASON_STRING));
	ck_assert_uint_gt(d.props.reason_string.len, 10);
	tc_close(&t);
	stop();
}
END_TEST

START_TEST(test_qos0_dropped_over_bound_then_disconnected_when_stalled)
{
	tcli_t sub, pub, witness;
	char payload[201];

	cfg.max_outbuf_qos0 = 4096;
	cfg.write_timeout_ms = 5000;
	start();
	ck_assert_int_eq(tc_open(&sub, MQTT_V311, "slow", true, 0, NULL), 0);
	tc_subscribe(&sub, 1, "flood", 0);
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "p", true, 0, NULL), 0);
	memset(payload, 'x', 200);
	payload[200] = '\0';
	/* The subscriber never reads: what it is sent stays queued in its output. */
	for (int i = 0; i < 1000; i++)
		tc_publish(&pub, "flood", payload, 0, 0);
	ck_assert_uint_le(sock_outq(&fake_conn_find(sub.id)->sk), 4096 + 256);
	ck_assert_uint_ge(W->st.dropped_qos0_outbuf, 900);
	/* Others are still served. */
	ck_assert_int_eq(tc_open(&witness, MQTT_V311, "w", true, 0, NULL), 0);
	ck_assert(tc_alive(&sub));
	fake_advance(6000);
	fake_advance(1000);
	ck_assert(!tc_alive(&sub));
	ck_assert_uint_ge(W->st.closed_outbuf, 1);
	tc_close(&sub);
	tc_close(&pub);
	tc_close(&witness);
	stop();
}
END_TEST

START_TEST(test_slow_reader_output_bounded_and_nothing_lost)
{
	tcli_t sub, pub;
	mqtt_publish_t p;
	char payload[8001], expect[16];
	uint16_t pid;
	int acked = 0;

	cfg.max_packet_size = 16384; /* output bound: max(max_outbuf, 2 * 16384 + 64 KiB) = 96 KiB */
	cfg.max_outbuf = 65536;
	start();
	subscriber(&sub, MQTT_V311, "slow", "big");
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "p", true, 0, NULL), 0);
	memset(payload, 'x', 8000);
	payload[8000] = '\0';
	for (int i = 0; i < 40; i++) {
		memcpy(payload, expect, (size_t)snprintf(expect, sizeof(expect), "%04d", i));
		tc_publish(&pub, "big", payload, 1, (uint16_t)(i + 1));
		while (tc_ack_reason(&pub, MQTT_PUBACK, &pid) == 0)
			acked++;
	}
	ck_assert_int_eq(acked, 40);
	/* The subscriber never reads: its output stops growing at half the bound, the rest waits in its
	 * session; it is disconnected once it has taken nothing for write_timeout_ms. */
	ck_assert_uint_le(sock_outq(&fake_conn_find(sub.id)->sk), 98304 / 2 + 8100);
	ck_assert(tc_alive(&sub));
	fake_advance(cfg.write_timeout_ms + 1000);
	fake_advance(1000);
	ck_assert(!tc_alive(&sub));
	ck_assert_uint_ge(W->st.closed_outbuf, 1);
	tc_close(&sub);
	ck_assert_int_eq(tc_open(&sub, MQTT_V311, "slow", false, 0, NULL), 0);
	for (int i = 0; i < 40; i++) {
		ck_assert_msg(next_publish(&sub, &p), "message %d of 40 missing", i);
		snprintf(expect, sizeof(expect), "%04d", i);
		ck_assert_mem_eq(p.payload.p, expect, 4);
		tc_ack(&sub, MQTT_PUBACK, p.packet_id);
	}
	tc_close(&sub);
	tc_close(&pub);
	stop();
}
END_TEST

/*
 * For every allocation a PUBLISH's handling makes: make exactly that one fail, and check the one thing that
 * must hold whatever fails — a PUBACK means the subscriber gets the message (now, or on reconnect because its
 * connection was closed), and a connection is never left open without its answer.
 */
START_TEST(test_allocation_failure_never_loses_an_acknowledged_message)
{
	for (long k = 1; k <= 60; k++) {
		tcli_t sub, pub;
		mqtt_publish_t p;
		bool acked, got;

		start();
		subscriber(&sub, MQTT_V311, "s", "t/#");
		ck_assert_int_eq(tc_open(&pub, MQTT_V311, "p", true, 0, NULL), 0);
		fake_fail_alloc_after(k);
		tc_publish(&pub, "t/1", "precious", 1, 1);
		fake_fail_alloc_after(0);
		acked = tc_ack_reason(&pub, MQTT_PUBACK, NULL) == 0;
		ck_assert_msg(acked || !tc_alive(&pub), "k=%ld: publisher neither answered nor closed", k);
		got = next_publish(&sub, &p);
		if (!got && !tc_alive(&sub)) {
			tc_close(&sub);
			ck_assert_int_eq(tc_open(&sub, MQTT_V311, "s", false, 0, NULL), 0);
			got = next_publish(&sub, &p);
		}
		if (acked)
			ck_assert_msg(got, "k=%ld: PUBACKed but never delivered", k);
		if (got)
			ck_assert_mem_eq(p.payload.p, "precious", 8);
		tc_close(&sub);
		tc_close(&pub);
		stop();
	}
}
END_TEST

START_TEST(test_pubrel_flood_without_reading_is_disconnected)
{
	tcli_t t, witness;
	uint8_t buf[4 * 1000];

	cfg.max_packet_size = 16384;
	cfg.max_outbuf = 65536; /* bound: 96 KiB */
	start();
	ck_assert_int_eq(tc_open(&t, MQTT_V311, "flood", true, 0, NULL), 0);
	for (int i = 0; i < 1000; i++)
		memcpy(buf + 4 * i, "\x62\x02\x00\x07", 4); /* PUBREL 7, an id nobody uses */
	/* Each PUBREL is answered by a PUBCOMP the client never reads: at the bound, it goes. */
	for (int i = 0; i < 40 && tc_alive(&t); i++) {
		conn_t *c = fake_conn_find(t.id);

		fake_input(c, buf, sizeof(buf));
		fake_turn();
		if (tc_alive(&t))
			ck_assert_uint_le(sock_outq(&fake_conn_find(t.id)->sk), 98304);
	}
	ck_assert(!tc_alive(&t));
	ck_assert_uint_eq(W->st.closed_outbuf, 1);
	ck_assert_int_eq(tc_open(&witness, MQTT_V311, "w", true, 0, NULL), 0);
	tc_close(&t);
	tc_close(&witness);
	stop();
}
END_TEST

START_TEST(test_topic_and_property_limits)
{
	tcli_t t;
	mqtt_ack_t d;
	mqtt_frame_t f;
	mqtt_suback_t sa;
	mqtt_publish_t p;
	uint8_t buf[4096], user[64];
	size_t n;

	cfg.max_topic_length = 16;
	cfg.max_topic_levels = 3;
	cfg.max_user_properties = 2;
	start();
	/* A filter over a limit is refused alone (0x8F); the others in the same SUBSCRIBE go through. */
	ck_assert_int_eq(tc_open(&t, MQTT_V5, "lim", true, 0, NULL), 0);
	tc_subscribe(&t, 1, "a/b/c/d", 1);
	ck_assert(tc_expect(&t, MQTT_SUBACK, &f));
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V5, &sa), 0);
	ck_assert_uint_eq(sa.reasons[0], MQTT_RC_TOPIC_FILTER_INVALID);
	tc_subscribe(&t, 2, "a/b/c", 1);
	ck_assert(tc_expect(&t, MQTT_SUBACK, &f));
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V5, &sa), 0);
	ck_assert_uint_eq(sa.reasons[0], 1);
	/* Three user properties where two are allowed: DISCONNECT 0x97. */
	memset(&p, 0, sizeof(p));
	p.topic = (mqtt_str_t){ (const uint8_t *)"a", 1 };
	n = 0;
	for (int i = 0; i < 3; i++) {
		user[n++] = MQTT_PROP_USER_PROPERTY;
		user[n++] = 0, user[n++] = 1, user[n++] = 'k';
		user[n++] = 0, user[n++] = 1, user[n++] = 'v';
	}
	p.props.present = MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
	p.props.user = (mqtt_str_t){ user, (uint32_t)n };
	tc_send_raw(&t, buf, mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p));
	ck_assert_int_eq(disconnect_reason(&t, &d), MQTT_RC_QUOTA_EXCEEDED);
	tc_close(&t);
	/* A topic name over the length: DISCONNECT 0x90. */
	ck_assert_int_eq(tc_open(&t, MQTT_V5, "lim2", true, 0, NULL), 0);
	tc_publish(&t, "a-topic-longer-than-16", "x", 0, 0);
	ck_assert_int_eq(disconnect_reason(&t, &d), MQTT_RC_TOPIC_NAME_INVALID);
	ck_assert_uint_eq(W->st.rejected_topic, 2);
	ck_assert_uint_eq(W->st.rejected_user_properties, 1);
	tc_close(&t);
	stop();
}
END_TEST

START_TEST(test_qos2_pending_bound)
{
	tcli_t t;
	mqtt_ack_t d;

	cfg.max_qos2_pending = 3;
	start();
	ck_assert_int_eq(tc_open(&t, MQTT_V5, "q2", true, 0, NULL), 0);
	for (uint16_t i = 1; i <= 3; i++) {
		tc_publish(&t, "q", "x", 2, i);
		ck_assert_int_eq(tc_ack_reason(&t, MQTT_PUBREC, NULL), MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	}
	/* A resend of one still pending is fine; a fourth id is one too many. */
	tc_publish(&t, "q", "x", 2, 2);
	ck_assert(tc_alive(&t));
	ck_assert_uint_eq(W->st.rejected_qos2_pending, 0);
	tc_publish(&t, "q", "x", 2, 4);
	ck_assert_int_eq(disconnect_reason(&t, &d), MQTT_RC_RECEIVE_MAX_EXCEEDED);
	ck_assert_uint_eq(W->st.rejected_qos2_pending, 1);
	tc_close(&t);
	stop();
}
END_TEST

START_TEST(test_connections_per_address)
{
	tcli_t a, b, c;

	cfg.max_connections_per_address = 2;
	start();
	ck_assert_int_eq(tc_open(&a, MQTT_V311, "a", true, 0, NULL), 0);
	ck_assert_int_eq(tc_open(&b, MQTT_V311, "b", true, 0, NULL), 0);
	/* Every fake connection comes from the same address: the third is closed before a byte is read. */
	ck_assert_int_eq(tc_open(&c, MQTT_V311, "c", true, 0, NULL), -1);
	ck_assert_uint_eq(W->st.rejected_address, 1);
	tc_close(&c);
	fake_input(fake_conn_find(b.id), "\xe0\x00", 2);
	fake_turn();
	ck_assert_int_eq(tc_open(&c, MQTT_V311, "c", true, 0, NULL), 0);
	tc_close(&a);
	tc_close(&b);
	tc_close(&c);
	stop();
}
END_TEST

START_TEST(test_max_subscriptions_0x97)
{
	tcli_t t;
	mqtt_frame_t f;
	mqtt_suback_t sa;
	char filter[32];

	cfg.max_subscriptions = 10;
	start();
	ck_assert_int_eq(tc_open(&t, MQTT_V311, "c", true, 0, NULL), 0);
	for (int i = 0; i < 12; i++) {
		snprintf(filter, sizeof(filter), "f/%d", i);
		tc_subscribe(&t, (uint16_t)(i + 1), filter, 1);
		ck_assert(tc_expect(&t, MQTT_SUBACK, &f));
		ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V311, &sa), 0);
		ck_assert_uint_eq(sa.reasons[0], i < 10 ? 1 : 0x80);
	}
	/* A repeated filter replaces, it does not count again. */
	tc_subscribe(&t, 20, "f/3", 0);
	ck_assert(tc_expect(&t, MQTT_SUBACK, &f));
	ck_assert_int_eq(mqtt_decode_suback(&f, MQTT_V311, &sa), 0);
	ck_assert_uint_eq(sa.reasons[0], 0);
	ck_assert_uint_eq(W->st.rejected_subscriptions, 2);
	tc_close(&t);
	stop();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("conn");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_MQTT_3_1_connack_has_no_session_present_flag);
	tcase_add_test(tc, test_first_outbound_packet_id_is_1);
	tcase_add_test(tc, test_MQTT_3_3_4_6_client_publish_with_subscription_id);
	tcase_add_test(tc, test_wrong_kind_of_ack_is_a_protocol_violation);
	tcase_add_test(tc, test_unknown_packet_id_ack_is_ignored);
	tcase_add_test(tc, test_no_matching_subscribers_0x10);
	tcase_add_test(tc, test_will_on_takeover);
	tcase_add_test(tc, test_MQTT_3_1_2_25_maximum_packet_size_respected);
	tcase_add_test(tc, test_connack_that_cannot_fit_closes);
	tcase_add_test(tc, test_receive_maximum_exceeded_has_reason_string);
	tcase_add_test(tc, test_qos0_dropped_over_bound_then_disconnected_when_stalled);
	tcase_add_test(tc, test_slow_reader_output_bounded_and_nothing_lost);
	tcase_add_test(tc, test_allocation_failure_never_loses_an_acknowledged_message);
	tcase_add_test(tc, test_max_subscriptions_0x97);
	tcase_add_test(tc, test_pubrel_flood_without_reading_is_disconnected);
	tcase_add_test(tc, test_topic_and_property_limits);
	tcase_add_test(tc, test_qos2_pending_bound);
	tcase_add_test(tc, test_connections_per_address);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

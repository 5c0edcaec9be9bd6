/*
 * test-sess.c — sessions over time: expiry is enforced, the offline queue bound drops the oldest and counts
 * it, a queue longer than 65535 messages wraps packet ids without colliding with ids in flight, and a will
 * with a delay is cancelled by a reconnect within it.
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

static void disconnect(tcli_t *t)
{
	fake_input(fake_conn_find(t->id), "\xe0\x00", 2);
	fake_turn();
	tc_close(t);
}

static bool session_present(tcli_t *t, uint8_t version, const char *cid, uint32_t expiry)
{
	mqtt_connect_t cn = { .version = version, .keep_alive = 60, .client_id = { (const uint8_t *)cid,
		(uint32_t)strlen(cid) } };
	mqtt_connack_t ack;
	mqtt_frame_t f;
	uint8_t buf[128];

	if (version == MQTT_V5) {
		cn.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		cn.props.session_expiry = expiry;
	}
	memset(t, 0, sizeof(*t));
	t->version = version;
	t->c = fake_connect();
	t->id = t->c->id;
	tc_send_raw(t, buf, mqtt_encode_connect(buf, sizeof(buf), &cn));
	ck_assert(tc_expect(t, MQTT_CONNACK, &f));
	ck_assert_int_eq(mqtt_decode_connack(&f, version, &ack), 0);
	return ack.session_present;
}

START_TEST(test_MQTT_3_1_2_23_session_expiry_enforced)
{
	tcli_t t;

	fake_init(&cfg, 0, 1);
	ck_assert(!session_present(&t, MQTT_V5, "exp", 10));
	disconnect(&t);
	fake_advance(5000);
	ck_assert(session_present(&t, MQTT_V5, "exp", 10));
	disconnect(&t);
	fake_advance(11000);
	fake_advance(1000);
	ck_assert_ptr_null(sess_find((const uint8_t *)"exp", 3));
	ck_assert(!session_present(&t, MQTT_V5, "exp", 10));
	tc_close(&t);
	fake_finish();
}
END_TEST

START_TEST(test_queue_bound_drops_oldest_and_counts)
{
	tcli_t sub, pub;
	mqtt_frame_t f;
	mqtt_publish_t p;
	char payload[16];

	cfg.max_queued = 5;
	fake_init(&cfg, 0, 1);
	ck_assert_int_eq(tc_open(&sub, MQTT_V311, "s", false, 0, NULL), 0);
	tc_subscribe(&sub, 1, "q", 1);
	disconnect(&sub);
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "p", true, 0, NULL), 0);
	for (int i = 0; i < 8; i++) {
		snprintf(payload, sizeof(payload), "%d", i);
		tc_publish(&pub, "q", payload, 1, (uint16_t)(i + 1));
	}
	ck_assert_uint_eq(W->st.dropped_queue_full, 3);
	ck_assert_uint_eq(sess_find((const uint8_t *)"s", 1)->dropped, 3);
	ck_assert(session_present(&sub, MQTT_V311, "s", 0));
	for (int i = 3; i < 8; i++) {
		ck_assert(tc_expect(&sub, MQTT_PUBLISH, &f));
		ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
		ck_assert_uint_eq(p.payload.p[0], (uint8_t)('0' + i));
	}
	tc_close(&sub);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_pid_wrap_over_long_offline_queue)
{
	tcli_t sub, pub;
	mqtt_frame_t f;
	mqtt_publish_t p;
	uint16_t held = 0;
	uint32_t n = 70000;
	uint8_t *buf = malloc(16 * 1000);

	cfg.max_queued = 100000;
	cfg.max_inflight = 10;
	fake_init(&cfg, 0, 1);
	ck_assert_int_eq(tc_open(&sub, MQTT_V311, "s", false, 0, NULL), 0);
	tc_subscribe(&sub, 1, "w", 1);
	ck_assert(tc_expect(&sub, MQTT_SUBACK, &f));
	/* One message stays unacknowledged from the first connection on. */
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "p", true, 0, NULL), 0);
	tc_publish(&pub, "w", "first", 1, 1);
	ck_assert(tc_expect(&sub, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	held = p.packet_id;
	disconnect(&sub);
	for (uint32_t sent = 0; sent < n;) {
		size_t len = 0;

		for (int i = 0; i < 1000; i++, sent++) {
			mqtt_publish_t q = { .qos = 1, .packet_id = (uint16_t)(sent % 60000 + 1),
				.topic = { (const uint8_t *)"w", 1 }, .payload = { (const uint8_t *)"m", 1 } };

			len += mqtt_encode_publish(buf + len, 16, MQTT_V311, &q);
		}
		tc_send_raw(&pub, buf, len);
		tc_close(&pub);
	}
	/* Drain the whole queue through a window of 10, never acknowledging `held`. */
	ck_assert(session_present(&sub, MQTT_V311, "s", 0));
	for (uint32_t got = 0; got < n + 1;) {
		ck_assert_msg(tc_expect(&sub, MQTT_PUBLISH, &f), "stalled after %u", got);
		ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
		got++;
		if (p.packet_id == held && got == 1)
			continue; /* the resend of the held one */
		ck_assert_uint_ne(p.packet_id, held);
		tc_ack(&sub, MQTT_PUBACK, p.packet_id);
	}
	free(buf);
	tc_close(&sub);
	fake_finish();
}
END_TEST

START_TEST(test_MQTT_3_1_3_9_will_delay_cancelled_by_reconnect)
{
	tcli_t watch, a;
	mqtt_connect_t cn = { .version = MQTT_V5, .keep_alive = 60, .client_id = { (const uint8_t *)"dev", 3 },
		.will = true, .will_qos = 0, .will_topic = { (const uint8_t *)"will", 4 },
		.will_payload = { (const uint8_t *)"gone", 4 } };
	mqtt_frame_t f;
	uint8_t buf[256];

	cn.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
	cn.props.session_expiry = 600;
	cn.will_props.present = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY);
	cn.will_props.will_delay = 30;
	fake_init(&cfg, 0, 1);
	ck_assert_int_eq(tc_open(&watch, MQTT_V311, "watch", true, 0, NULL), 0);
	tc_subscribe(&watch, 1, "will", 0);
	for (int round = 0; round < 2; round++) {
		memset(&a, 0, sizeof(a));
		a.version = MQTT_V5;
		a.c = fake_connect();
		a.id = a.c->id;
		tc_send_raw(&a, buf, mqtt_encode_connect(buf, sizeof(buf), &cn));
		ck_assert(tc_expect(&a, MQTT_CONNACK, &f));
		/* The connection drops without DISCONNECT. */
		a.c->sk.ops->on_eof(&a.c->sk, 0);
		fake_turn();
		tc_close(&a);
		fake_advance(round == 0 ? 10000 : 31000);
		fake_advance(1000);
	}
	/* Round 0 reconnected within the delay: one will only, from round 1. */
	ck_assert(tc_expect(&watch, MQTT_PUBLISH, &f));
	ck_assert(!tc_expect(&watch, MQTT_PUBLISH, &f));
	tc_close(&watch);
	fake_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sess");
	TCase *tc = tcase_create("sess");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_MQTT_3_1_2_23_session_expiry_enforced);
	tcase_add_test(tc, test_queue_bound_drops_oldest_and_counts);
	tcase_add_test(tc, test_pid_wrap_over_long_offline_queue);
	tcase_add_test(tc, test_MQTT_3_1_3_9_will_delay_cancelled_by_reconnect);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * test-sys.c — $SYS topics on worker 0 of 2: values pushed by the supervisor reach local subscribers of $SYS
 * filters as QoS 0, are kept retained for the next subscriber, never reach '#' or '+/...' [MQTT-4.7.2-1],
 * never go to the other worker; a malformed record is refused; clients cannot publish to $SYS.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "route.h"
#include "sys.h"
#include "tclient.h"

static config_t cfg;

static void setup(void)
{
	config_defaults(&cfg);
	fake_init(&cfg, 0, 2);
}

static void teardown(void)
{
	fake_finish();
}

static size_t put(uint8_t *p, const char *topic, const char *val)
{
	uint16_t tl = (uint16_t)strlen(topic), vl = (uint16_t)strlen(val);

	memcpy(p, &tl, 2);
	memcpy(p + 2, topic, tl);
	memcpy(p + 2 + tl, &vl, 2);
	memcpy(p + 4 + tl, val, vl);
	return 4u + tl + vl;
}

/* MF_PUB frames worker 0 sent to worker 1 (interest frames are acknowledged as they are seen). */
static int pubs_to_peer(void)
{
	uint8_t *out;
	size_t n = fake_chan_output(1, &out), off = 0;
	frame_hdr_t h;
	const uint8_t *body;
	int64_t r;
	int pubs = 0, want = 0;

	while ((r = frame_next(out + off, n - off, &h, &body)) > 0) {
		pubs += h.type == MF_PUB;
		want += (h.flags & MF_ACK_WANTED) != 0;
		off += (size_t)r;
	}
	free(out);
	if (want) {
		buf_t b = { 0 };

		frame_put(&b, MF_ACK, 0, 0, (uint32_t)want, 0);
		fake_chan_input(1, b.data, b.len);
		buf_finish(&b);
		fake_turn();
	}
	return pubs;
}

START_TEST(test_topic_names)
{
	ck_assert(sys_topic((const uint8_t *)"$SYS", 4));
	ck_assert(sys_topic((const uint8_t *)"$SYS/broker/uptime", 18));
	ck_assert(!sys_topic((const uint8_t *)"$SYSTEM/x", 9));
	ck_assert(!sys_topic((const uint8_t *)"SYS/x", 5));
	ck_assert(!sys_topic((const uint8_t *)"$SY", 3));
}
END_TEST

START_TEST(test_values_reach_sys_subscribers_only)
{
	tcli_t sys, hash, plus, later;
	mqtt_frame_t f;
	mqtt_publish_t p;
	uint8_t rec[256];
	size_t n = put(rec, "$SYS/broker/uptime", "7 seconds");

	n += put(rec + n, "$SYS/broker/clients/connected", "3");
	ck_assert_int_eq(tc_open(&sys, MQTT_V311, tc_id_on("s", 0, 2), true, 0, NULL), 0);
	ck_assert_int_eq(tc_open(&hash, MQTT_V311, tc_id_on("h", 0, 2), true, 0, NULL), 0);
	ck_assert_int_eq(tc_open(&plus, MQTT_V311, tc_id_on("p", 0, 2), true, 0, NULL), 0);
	tc_subscribe(&sys, 1, "$SYS/#", 1);
	tc_subscribe(&hash, 1, "#", 1);
	tc_subscribe(&plus, 1, "+/broker/uptime", 1);
	(void)pubs_to_peer(); /* worker 1 acknowledges the new interest: the SUBACKs leave */
	ck_assert(tc_expect(&sys, MQTT_SUBACK, &f));
	ck_assert(tc_expect(&hash, MQTT_SUBACK, &f));
	ck_assert(tc_expect(&plus, MQTT_SUBACK, &f));

	ck_assert_int_eq(sys_on_values(rec, n), 2);
	fake_turn();
	ck_assert(tc_expect(&sys, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert_uint_eq(p.qos, 0);
	ck_assert_mem_eq(p.topic.p, "$SYS/broker/uptime", 18);
	ck_assert_mem_eq(p.payload.p, "7 seconds", 9);
	ck_assert(tc_expect(&sys, MQTT_PUBLISH, &f));
	ck_assert(!tc_recv(&hash, &f));
	ck_assert(!tc_recv(&plus, &f));
	ck_assert_int_eq(pubs_to_peer(), 0);

	/* Retained: a later subscriber gets the last value after its SUBACK. */
	ck_assert_int_eq(tc_open(&later, MQTT_V311, tc_id_on("l", 0, 2), true, 0, NULL), 0);
	tc_subscribe(&later, 1, "$SYS/broker/+", 0);
	(void)pubs_to_peer();
	ck_assert(tc_expect(&later, MQTT_SUBACK, &f));
	fake_turn();
	ck_assert(tc_expect(&later, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert(p.retain);
	tc_close(&sys);
	tc_close(&hash);
	tc_close(&plus);
	tc_close(&later);
}
END_TEST

START_TEST(test_malformed_record)
{
	uint8_t rec[64];
	size_t n = put(rec, "$SYS/broker/uptime", "1 seconds");

	ck_assert_int_eq(sys_on_values(rec, n - 1), -EPROTO);
	n = put(rec, "not/sys", "x");
	ck_assert_int_eq(sys_on_values(rec, n), -EPROTO);
	ck_assert_uint_eq(route_retained_count(), 0);
}
END_TEST

START_TEST(test_clients_cannot_publish_sys)
{
	tcli_t c;
	uint16_t pid;

	ck_assert_int_eq(tc_open(&c, MQTT_V5, tc_id_on("c", 0, 2), true, 0, NULL), 0);
	tc_publish(&c, "$SYS/broker/uptime", "fake", 1, 9);
	ck_assert_int_eq(tc_ack_reason(&c, MQTT_PUBACK, &pid), MQTT_RC_NOT_AUTHORIZED);
	ck_assert_uint_eq(pid, 9);
	ck_assert_uint_eq(route_retained_count(), 0);
	tc_close(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sys");
	TCase *tc = tcase_create("sys");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_topic_names);
	tcase_add_test(tc, test_values_reach_sys_subscribers_only);
	tcase_add_test(tc, test_malformed_record);
	tcase_add_test(tc, test_clients_cannot_publish_sys);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * test-route.c — routing on worker 0 of 2: the other worker hears of a filter when its first local
 * subscriber comes and its last one goes (never while one remains, memory failures included), shared
 * groups, retained messages.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "route.h"
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

/* Interest frames worker 0 sent: +1 per SUB, -1 per UNSUB of `filter`; acks every frame that wants one. */
static int interest_delta(const char *filter, int *frames)
{
	uint8_t *out;
	size_t n = fake_chan_output(1, &out), off = 0, fl = strlen(filter);
	frame_hdr_t h;
	const uint8_t *body;
	int64_t r;
	int d = 0, want = 0;

	*frames = 0;
	while ((r = frame_next(out + off, n - off, &h, &body)) > 0) {
		if ((h.type == MF_SUB || h.type == MF_UNSUB) && h.body == fl && !memcmp(body, filter, fl)) {
			d += h.type == MF_SUB ? 1 : -1;
			(*frames)++;
		}
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
	return d;
}

static uint8_t suback(tcli_t *t)
{
	mqtt_frame_t f;
	mqtt_suback_t s;

	ck_assert(tc_expect(t, MQTT_SUBACK, &f));
	ck_assert_int_eq(mqtt_decode_suback(&f, t->version, &s), 0);
	return s.reasons[0];
}

START_TEST(test_interest_on_first_and_last_subscriber)
{
	tcli_t a, b;
	int frames;

	ck_assert_int_eq(tc_open(&a, MQTT_V311, tc_id_on("a", 0, 2), true, 0, NULL), 0);
	ck_assert_int_eq(tc_open(&b, MQTT_V311, tc_id_on("b", 0, 2), true, 0, NULL), 0);
	(void)interest_delta("x/+", &frames);
	tc_subscribe(&a, 1, "x/+", 1);
	ck_assert_int_eq(interest_delta("x/+", &frames), 1);
	ck_assert_uint_eq(suback(&a), 1);
	tc_subscribe(&b, 1, "x/+", 1);
	ck_assert_int_eq(interest_delta("x/+", &frames), 0);
	ck_assert_int_eq(frames, 0);
	ck_assert_uint_eq(suback(&b), 1);
	tc_unsubscribe(&a, 2, "x/+");
	ck_assert_int_eq(interest_delta("x/+", &frames), 0);
	ck_assert_int_eq(frames, 0);
	tc_unsubscribe(&b, 2, "x/+");
	ck_assert_int_eq(interest_delta("x/+", &frames), -1);
	tc_close(&a);
	tc_close(&b);
}
END_TEST

START_TEST(test_memory_failure_keeps_interest_consistent)
{
	tcli_t a, b;
	int frames, sum = 0;

	ck_assert_int_eq(tc_open(&a, MQTT_V311, tc_id_on("a", 0, 2), true, 0, NULL), 0);
	ck_assert_int_eq(tc_open(&b, MQTT_V311, tc_id_on("b", 0, 2), true, 0, NULL), 0);
	(void)interest_delta("y/#", &frames);
	/* Whichever allocation of the first subscription fails, the peer's view never goes negative and ends
	 * matching the truth. */
	for (long k = 1; k <= 12; k++) {
		uint8_t r;

		fake_fail_alloc_after(k);
		tc_subscribe(&a, (uint16_t)k, "y/#", 1);
		fake_fail_alloc_after(0);
		if (!tc_alive(&a))
			break;
		sum += interest_delta("y/#", &frames); /* acks what the SUBACK waits for */
		r = suback(&a);
		ck_assert_int_ge(sum, 0);
		ck_assert_int_eq(sum, r == 1 ? 1 : 0);
		if (r == 1)
			break;
	}
	tc_subscribe(&b, 1, "y/#", 1);
	sum += interest_delta("y/#", &frames);
	ck_assert_uint_eq(suback(&b), 1);
	ck_assert_int_eq(sum, 1);
	tc_unsubscribe(&b, 2, "y/#");
	sum += interest_delta("y/#", &frames);
	/* a may still hold it: then the peer must still know. */
	ck_assert_int_eq(sum, route_sub_count() > 0 ? 1 : 0);
	tc_close(&a);
	tc_close(&b);
}
END_TEST

START_TEST(test_shared_group_delivers_to_one_member)
{
	tcli_t a, b, pub;
	mqtt_frame_t f;
	int got = 0;

	ck_assert_int_eq(tc_open(&a, MQTT_V311, tc_id_on("a", 0, 2), true, 0, NULL), 0);
	ck_assert_int_eq(tc_open(&b, MQTT_V311, tc_id_on("b", 0, 2), true, 0, NULL), 0);
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, tc_id_on("p", 0, 2), true, 0, NULL), 0);
	tc_subscribe(&a, 1, "$share/g/s/#", 0);
	tc_subscribe(&b, 1, "$share/g/s/#", 0);
	for (int i = 0; i < 10; i++)
		tc_publish(&pub, "s/1", "m", 0, 0);
	while (tc_expect(&a, MQTT_PUBLISH, &f))
		got++;
	while (tc_expect(&b, MQTT_PUBLISH, &f))
		got++;
	ck_assert_int_eq(got, 10);
	tc_close(&a);
	tc_close(&b);
	tc_close(&pub);
}
END_TEST

START_TEST(test_retained_follows_suback)
{
	tcli_t pub, sub;
	mqtt_frame_t f;
	mqtt_publish_t p;
	uint8_t buf[64];
	mqtt_publish_t rp = { .retain = 1, .topic = { (const uint8_t *)"r/1", 3 },
		.payload = { (const uint8_t *)"kept", 4 } };

	ck_assert_int_eq(tc_open(&pub, MQTT_V311, tc_id_on("p", 0, 2), true, 0, NULL), 0);
	tc_send_raw(&pub, buf, mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &rp));
	ck_assert_uint_eq(route_retained_count(), 1);
	ck_assert_int_eq(tc_open(&sub, MQTT_V311, tc_id_on("s", 0, 2), true, 0, NULL), 0);
	tc_subscribe(&sub, 1, "r/#", 0);
	(void)interest_delta("r/#", &(int){ 0 });
	ck_assert(tc_recv(&sub, &f));
	ck_assert_uint_eq(f.type, MQTT_SUBACK);
	ck_assert(tc_recv(&sub, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert(p.retain);
	ck_assert_mem_eq(p.payload.p, "kept", 4);
	tc_close(&pub);
	tc_close(&sub);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("route");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_interest_on_first_and_last_subscriber);
	tcase_add_test(tc, test_memory_failure_keeps_interest_consistent);
	tcase_add_test(tc, test_shared_group_delivers_to_one_member);
	tcase_add_test(tc, test_retained_follows_suback);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

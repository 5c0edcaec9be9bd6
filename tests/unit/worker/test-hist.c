/*
 * test-hist.c — latency histograms: a span lands in the first bucket whose bound it does not exceed (bounds
 * inclusive, as Prometheus's le), past the last bound in +Inf; the sum is kept in microseconds; a zero stamp
 * is "not measured"; a QoS 1 PUBLISH counts one PUBACK latency and its subscriber's PUBACK one delivery latency.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "tclient.h"

static config_t cfg;

static void setup(void)
{
	config_defaults(&cfg);
	fake_init(&cfg, 0, 1);
}

static void teardown(void)
{
	fake_finish();
}

static uint64_t count(enum hist_id id)
{
	uint64_t n = 0;

	for (unsigned i = 0; i <= HIST_BUCKETS; i++)
		n += hist_get(id)->counts[i];
	return n;
}

START_TEST(test_buckets)
{
	hist_t before = *hist_get(HIST_E2E);
	const hist_t *h = hist_get(HIST_E2E);

	uint32_t first = hist_bounds_us[0], last = hist_bounds_us[HIST_BUCKETS - 1];

	ck_assert_uint_eq(first, 25);
	ck_assert_uint_eq(last, 10000000);
	hist_observe(HIST_E2E, 0);
	hist_observe(HIST_E2E, first);      /* le 0.000025: inclusive */
	hist_observe(HIST_E2E, first + 1);  /* the next bucket */
	hist_observe(HIST_E2E, last);       /* le 10 */
	hist_observe(HIST_E2E, last + 1);   /* +Inf */
	ck_assert_uint_eq(h->counts[0] - before.counts[0], 2);
	ck_assert_uint_eq(h->counts[1] - before.counts[1], 1);
	ck_assert_uint_eq(h->counts[HIST_BUCKETS - 1] - before.counts[HIST_BUCKETS - 1], 1);
	ck_assert_uint_eq(h->counts[HIST_BUCKETS] - before.counts[HIST_BUCKETS], 1);
	ck_assert_uint_eq(h->sum_us - before.sum_us, (uint64_t)first + first + 1 + last + last + 1);
	for (unsigned i = 1; i < HIST_BUCKETS; i++)
		ck_assert_uint_gt(hist_bounds_us[i], hist_bounds_us[i - 1]);
}
END_TEST

START_TEST(test_unmeasured_stamp)
{
	uint64_t n = count(HIST_PUBACK);

	hist_since(HIST_PUBACK, 0);
	ck_assert_uint_eq(count(HIST_PUBACK), n);
	hist_since(HIST_PUBACK, hist_stamp());
	ck_assert_uint_eq(count(HIST_PUBACK), n + 1);
	ck_assert_uint_ne(hist_stamp(), 0);
}
END_TEST

START_TEST(test_publish_counts_both)
{
	tcli_t pub, sub;
	mqtt_frame_t f;
	mqtt_publish_t p;
	uint64_t acks = count(HIST_PUBACK), e2e = count(HIST_E2E);

	ck_assert_int_eq(tc_open(&sub, MQTT_V311, "hist-sub", true, 0, NULL), 0);
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "hist-pub", true, 0, NULL), 0);
	tc_subscribe(&sub, 1, "h/#", 1);
	ck_assert(tc_expect(&sub, MQTT_SUBACK, &f));
	tc_publish(&pub, "h/1", "x", 1, 5);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	ck_assert_uint_eq(count(HIST_PUBACK), acks + 1);
	ck_assert(tc_expect(&sub, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert_uint_eq(count(HIST_E2E), e2e);
	tc_ack(&sub, MQTT_PUBACK, p.packet_id);
	ck_assert_uint_eq(count(HIST_E2E), e2e + 1);
	/* QoS 0 is measured by neither. */
	tc_publish(&pub, "h/0", "y", 0, 0);
	ck_assert(tc_expect(&sub, MQTT_PUBLISH, &f));
	ck_assert_uint_eq(count(HIST_PUBACK), acks + 1);
	tc_close(&pub);
	tc_close(&sub);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hist");
	TCase *tc = tcase_create("hist");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_buckets);
	tcase_add_test(tc, test_unmeasured_stamp);
	tcase_add_test(tc, test_publish_counts_both);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

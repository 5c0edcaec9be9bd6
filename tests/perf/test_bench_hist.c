/*
 * test_bench_hist.c — unit tests for the ringmq-bench histogram (bench_hist.c).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench_hist.h"

static hist_t *
new_hist(void)
{
	hist_t *h = malloc(sizeof(*h));

	ck_assert_ptr_nonnull(h);
	hist_init(h);
	return h;
}

START_TEST(test_empty)
{
	hist_t *h = new_hist();

	ck_assert_uint_eq(h->count, 0);
	ck_assert_uint_eq(hist_percentile(h, 50), 0);
	ck_assert_uint_eq(hist_percentile(h, 100), 0);
	ck_assert(hist_mean(h) == 0.0);
	free(h);
}
END_TEST

/* Every value maps into a bucket whose bounds contain it, buckets are contiguous and ordered. */
START_TEST(test_bucket_bounds)
{
	uint64_t vals[] = { 0, 1, 31, 32, 33, 63, 64, 65, 100, 1000, 123456789, UINT64_C(1) << 40,
		(UINT64_C(1) << 40) + 12345, UINT64_MAX / 3, UINT64_MAX };

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		size_t b = hist_bucket(vals[i]);

		ck_assert_uint_lt(b, HIST_BUCKETS);
		ck_assert_uint_le(hist_bucket_low(b), vals[i]);
		ck_assert_uint_ge(hist_bucket_high(b), vals[i]);
	}
	for (size_t b = 0; b + 1 < HIST_BUCKETS; b++)
		ck_assert_uint_eq(hist_bucket_high(b) + 1, hist_bucket_low(b + 1));
	ck_assert_uint_eq(hist_bucket(UINT64_MAX), HIST_BUCKETS - 1);
	ck_assert_uint_eq(hist_bucket_high(HIST_BUCKETS - 1), UINT64_MAX);
}
END_TEST

/* Relative bucket width is at most 1/32: the documented ~3% precision. */
START_TEST(test_precision)
{
	for (size_t b = HIST_SUB; b < HIST_BUCKETS; b++) {
		uint64_t lo = hist_bucket_low(b), hi = hist_bucket_high(b);

		ck_assert((double)(hi - lo) / (double)lo <= 1.0 / 32.0 + 1e-12);
	}
}
END_TEST

START_TEST(test_small_values_exact)
{
	hist_t *h = new_hist();

	for (uint64_t v = 1; v <= 20; v++)
		hist_record(h, v);
	ck_assert_uint_eq(h->count, 20);
	ck_assert_uint_eq(h->min, 1);
	ck_assert_uint_eq(h->max, 20);
	ck_assert_uint_eq(hist_percentile(h, 50), 10);
	ck_assert_uint_eq(hist_percentile(h, 95), 19);
	ck_assert_uint_eq(hist_percentile(h, 100), 20);
	ck_assert_uint_eq(hist_percentile(h, 0), 1);
	ck_assert(hist_mean(h) == 10.5);
	free(h);
}
END_TEST

/* Uniform 1..100000 µs in ns: percentiles within 3.2% of the exact ones. */
START_TEST(test_percentiles_uniform)
{
	hist_t *h = new_hist();
	double ps[] = { 50, 95, 99, 99.9 };

	for (uint64_t v = 1; v <= 100000; v++)
		hist_record(h, v * 1000);
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		double exact = ps[i] / 100.0 * 100000.0 * 1000.0;
		double got = (double)hist_percentile(h, ps[i]);

		ck_assert_msg(got >= exact * 0.999 && got <= exact * 1.032, "p%g: %g vs %g", ps[i], got, exact);
	}
	ck_assert_uint_eq(hist_percentile(h, 100), 100000000);
	ck_assert(hist_mean(h) == 50000.5 * 1000.0);
	free(h);
}
END_TEST

/* A percentile never exceeds max nor undercuts min, even inside a wide bucket. */
START_TEST(test_clamped)
{
	hist_t *h = new_hist();

	hist_record(h, 1000001);
	ck_assert_uint_eq(hist_percentile(h, 50), 1000001);
	ck_assert_uint_eq(hist_percentile(h, 99), 1000001);
	free(h);
}
END_TEST

START_TEST(test_merge)
{
	hist_t *a = new_hist(), *b = new_hist(), *all = new_hist();

	for (uint64_t v = 0; v < 5000; v++) {
		hist_record(v % 2 ? a : b, v * 37);
		hist_record(all, v * 37);
	}
	hist_merge(a, b);
	ck_assert_uint_eq(a->count, all->count);
	ck_assert_uint_eq(a->sum, all->sum);
	ck_assert_uint_eq(a->min, all->min);
	ck_assert_uint_eq(a->max, all->max);
	for (double p = 1; p < 100; p += 7)
		ck_assert_uint_eq(hist_percentile(a, p), hist_percentile(all, p));
	hist_init(b);
	hist_merge(a, b); /* empty source: no change, min stays */
	ck_assert_uint_eq(a->min, 0);
	free(a);
	free(b);
	free(all);
}
END_TEST

static Suite *
hist_suite(void)
{
	Suite *s = suite_create("bench-hist");
	TCase *tc = tcase_create("hist");

	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_bucket_bounds);
	tcase_add_test(tc, test_precision);
	tcase_add_test(tc, test_small_values_exact);
	tcase_add_test(tc, test_percentiles_uniform);
	tcase_add_test(tc, test_clamped);
	tcase_add_test(tc, test_merge);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hist_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

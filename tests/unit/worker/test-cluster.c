/*
 * test-cluster.c — the Kafka process's interest tables: edges of this node's own interest (first and last
 * worker), of the other nodes' union (first and last node), matching to node and worker masks, a worker or a
 * node going away, and the P.interest key format.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "fake_io.h"

#define F(s) (s), strlen(s)

static void setup(void)
{
	ck_assert_int_eq(cluster_init(1), 0);
}

static void teardown(void)
{
	cluster_finish();
}

START_TEST(test_own_edges)
{
	ck_assert_int_eq(cluster_worker_sub(0, F("a/+"), true), CLUSTER_FIRST);
	ck_assert_int_eq(cluster_worker_sub(1, F("a/+"), true), CLUSTER_NONE);
	ck_assert_int_eq(cluster_worker_sub(1, F("a/+"), true), CLUSTER_NONE); /* repeated */
	ck_assert_uint_eq(cluster_match_workers(F("a/x")), 3);
	ck_assert_uint_eq(cluster_match_workers(F("b/x")), 0);
	ck_assert_int_eq(cluster_worker_sub(0, F("a/+"), false), CLUSTER_NONE);
	ck_assert_int_eq(cluster_worker_sub(0, F("a/+"), false), CLUSTER_NONE); /* not there any more */
	ck_assert_uint_eq(cluster_match_workers(F("a/x")), 2);
	ck_assert_int_eq(cluster_worker_sub(1, F("a/+"), false), CLUSTER_LAST);
	ck_assert_uint_eq(cluster_own_count(), 0);
}
END_TEST

static int n_ended;
static void ended(const char *f, size_t len, void *ctx)
{
	(void)f;
	(void)len;
	(void)ctx;
	n_ended++;
}

START_TEST(test_worker_down_ends_only_its_last_filters)
{
	cluster_worker_sub(0, F("a/#"), true);
	cluster_worker_sub(0, F("b/#"), true);
	cluster_worker_sub(2, F("b/#"), true);
	n_ended = 0;
	cluster_worker_down(0, ended, NULL);
	ck_assert_int_eq(n_ended, 1); /* a/# was worker 0's alone */
	ck_assert_uint_eq(cluster_match_workers(F("b/1")), 4);
	ck_assert_uint_eq(cluster_own_count(), 1);
}
END_TEST

START_TEST(test_remote_union_and_self_ignored)
{
	ck_assert_int_eq(cluster_remote_sub(3, F("x/#"), true), CLUSTER_FIRST);
	ck_assert_int_eq(cluster_remote_sub(5, F("x/#"), true), CLUSTER_NONE);
	ck_assert_int_eq(cluster_remote_sub(1, F("y/#"), true), CLUSTER_NONE); /* our own record */
	ck_assert_uint_eq(cluster_match_nodes(F("x/1")), (1u << 3) | (1u << 5));
	ck_assert_uint_eq(cluster_match_nodes(F("y/1")), 0);
	ck_assert_uint_eq(cluster_match_nodes(F("$SYS/x")), 0);
	ck_assert_int_eq(cluster_remote_sub(3, F("x/#"), false), CLUSTER_NONE);
	n_ended = 0;
	cluster_remote_down(5, ended, NULL);
	ck_assert_int_eq(n_ended, 1);
	ck_assert_uint_eq(cluster_remote_count(), 0);
	ck_assert_int_eq(cluster_remote_sub(64, F("x"), true), CLUSTER_NONE); /* no such node */
}
END_TEST

START_TEST(test_interest_key)
{
	char k[64];
	const char *f;
	size_t n, fl;
	int node;

	n = cluster_interest_key(k, sizeof(k), 12, F("europe/ua/+"));
	ck_assert_uint_eq(n, 14);
	ck_assert(memcmp(k, "12/europe/ua/+", n) == 0);
	ck_assert(cluster_interest_parse(k, n, &node, &f, &fl));
	ck_assert_int_eq(node, 12);
	ck_assert_uint_eq(fl, 11);
	ck_assert(memcmp(f, "europe/ua/+", fl) == 0);
	ck_assert(!cluster_interest_parse(F("x/a"), &node, &f, &fl));
	ck_assert(!cluster_interest_parse(F("64/a"), &node, &f, &fl));
	ck_assert(!cluster_interest_parse(F("3/"), &node, &f, &fl));
	ck_assert(!cluster_interest_parse(F("3"), &node, &f, &fl));
	ck_assert_uint_eq(cluster_interest_key(k, 4, 12, F("abc")), 0);
}
END_TEST

START_TEST(test_allocation_failure_changes_nothing)
{
	for (long i = 1; i < 8; i++) {
		fake_fail_alloc_after(i);
		int rc = cluster_worker_sub(0, F("deep/filter/with/levels"), true);
		fake_fail_alloc_after(0);
		if (rc < 0) {
			ck_assert_uint_eq(cluster_match_workers(F("deep/filter/with/levels")), 0);
			ck_assert_uint_eq(cluster_own_count(), 0);
		} else {
			ck_assert_int_eq(rc, CLUSTER_FIRST);
			ck_assert_int_eq(cluster_worker_sub(0, F("deep/filter/with/levels"), false), CLUSTER_LAST);
		}
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cluster");
	TCase *tc = tcase_create("cluster");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_own_edges);
	tcase_add_test(tc, test_worker_down_ends_only_its_last_filters);
	tcase_add_test(tc, test_remote_union_and_self_ignored);
	tcase_add_test(tc, test_interest_key);
	tcase_add_test(tc, test_allocation_failure_changes_nothing);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

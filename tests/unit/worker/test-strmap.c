/*
 * test-strmap.c — the string map: puts, gets, deletes through long probe runs; replacing never fails (it
 * allocates nothing); and keys are hashed under a per-map random key, so the same key lands on unrelated
 * slots in two maps: a client cannot precompute IDs or topics that collide (hash flooding).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_io.h"
#include "strmap.h"

START_TEST(test_put_get_del_many)
{
	strmap_t m;
	char k[32];

	strmap_init(&m);
	for (uintptr_t i = 1; i <= 20000; i++) {
		int n = snprintf(k, sizeof(k), "client-%lu", (unsigned long)i);

		ck_assert_int_eq(strmap_put(&m, k, (size_t)n, (void *)i, NULL), 0);
	}
	ck_assert_uint_eq(m.count, 20000);
	for (uintptr_t i = 1; i <= 20000; i += 2) {
		int n = snprintf(k, sizeof(k), "client-%lu", (unsigned long)i);

		ck_assert_ptr_eq(strmap_del(&m, k, (size_t)n), (void *)i);
	}
	for (uintptr_t i = 1; i <= 20000; i++) {
		int n = snprintf(k, sizeof(k), "client-%lu", (unsigned long)i);

		ck_assert_ptr_eq(strmap_get(&m, k, (size_t)n), i % 2 ? NULL : (void *)i);
	}
	strmap_finish(&m);
}
END_TEST

START_TEST(test_replace_allocates_nothing)
{
	strmap_t m;
	void *old;

	strmap_init(&m);
	for (int i = 0; i < 11; i++) {
		char k[8];

		snprintf(k, sizeof(k), "k%d", i);
		ck_assert_int_eq(strmap_put(&m, k, strlen(k), (void *)1, NULL), 0);
	}
	/* 12 of 16 slots: a new key would grow the table; replacing must not even try. */
	int replaced, added;

	fake_fail_alloc_after(1);
	replaced = strmap_put(&m, "k3", 2, (void *)2, &old);
	fake_fail_alloc_after(1);
	added = strmap_put(&m, "new", 3, (void *)3, NULL);
	fake_fail_alloc_after(0); /* before any check: Check allocates too */
	ck_assert_int_eq(replaced, 0);
	ck_assert_ptr_eq(old, (void *)1);
	ck_assert_int_eq(added, -ENOMEM);
	ck_assert_ptr_eq(strmap_get(&m, "k3", 2), (void *)2);
	ck_assert_ptr_null(strmap_get(&m, "new", 3));
	strmap_finish(&m);
}
END_TEST

START_TEST(test_keyed_hash_differs_per_map)
{
	strmap_t a, b;
	int same = 0;

	strmap_init(&a);
	strmap_init(&b);
	for (int i = 0; i < 64; i++) {
		char k[16];
		int n = snprintf(k, sizeof(k), "dev-%d", i);

		strmap_put(&a, k, (size_t)n, (void *)1, NULL);
		strmap_put(&b, k, (size_t)n, (void *)1, NULL);
	}
	for (size_t i = 0; i < a.cap; i++)
		same += a.slots[i].key && b.slots[i].key && !strcmp(a.slots[i].key, b.slots[i].key);
	/* Unkeyed, every key would sit in the same slot in both maps. */
	ck_assert_int_lt(same, 32);
	strmap_finish(&a);
	strmap_finish(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("strmap");
	TCase *tc = tcase_create("strmap");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_put_get_del_many);
	tcase_add_test(tc, test_replace_allocates_nothing);
	tcase_add_test(tc, test_keyed_hash_differs_per_map);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * test-slot.c — CRC16/XMODEM slots must equal Redis Cluster's CLUSTER KEYSLOT (for keys without hash tags),
 * and the owner ranges must partition the slot space.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "slot.h"

#define S(x) x, sizeof(x) - 1

START_TEST(test_crc16_xmodem_check_value)
{
	ck_assert_uint_eq(slot_crc16(S("123456789")), 0x31C3);
	ck_assert_uint_eq(slot_crc16(S("")), 0);
	ck_assert_uint_eq(slot_crc16(S("foo")), 0xAF96);
}
END_TEST

START_TEST(test_slot_of_matches_redis_cluster_keyslot)
{
	ck_assert_uint_eq(slot_of(S("foo")), 12182);
	ck_assert_uint_eq(slot_of(S("bar")), 5061);
	ck_assert_uint_eq(slot_of(S("somekey")), 11058);
	ck_assert_uint_eq(slot_of(S("hello")), 866);
	ck_assert_uint_eq(slot_of(S("123456789")), 0x31C3 % SLOT_COUNT);
}
END_TEST

START_TEST(test_slot_of_ignores_hash_tags)
{
	/* Redis would hash only "user1" in both; we hash the whole ID so the slots differ. */
	ck_assert_uint_ne(slot_of(S("{user1}.a")), slot_of(S("{user1}.b")));
	ck_assert_uint_eq(slot_of(S("{user1}.a")), slot_crc16(S("{user1}.a")) % SLOT_COUNT);
}
END_TEST

START_TEST(test_slot_of_binary_ids)
{
	static const unsigned char id[] = { 0x00, 0xff, 0x10, 0x00 };

	ck_assert_uint_lt(slot_of(id, sizeof(id)), SLOT_COUNT);
	ck_assert_uint_ne(slot_crc16(id, 4), slot_crc16(id, 3));
}
END_TEST

START_TEST(test_owner_ranges_cover_every_slot_once)
{
	for (int n = 1; n <= 8; n++) {
		int seen[SLOT_COUNT];

		memset(seen, 0, sizeof(seen));
		ck_assert_uint_eq(slot_first(0, n), 0);
		ck_assert_uint_eq(slot_first(n, n), SLOT_COUNT);
		for (int k = 0; k < n; k++) {
			ck_assert_uint_eq(slot_first(k, n), (unsigned)(k * SLOT_COUNT / n));
			ck_assert_uint_lt(slot_first(k, n), slot_first(k + 1, n));
			for (unsigned s = slot_first(k, n); s < slot_first(k + 1, n); s++) {
				seen[s]++;
				ck_assert_int_eq(slot_owner((uint16_t)s, n), k);
			}
		}
		for (int s = 0; s < SLOT_COUNT; s++)
			ck_assert_int_eq(seen[s], 1);
	}
}
END_TEST

START_TEST(test_owner_uneven_split)
{
	/* 16384 / 3: 5461.33 — worker 0 gets [0, 5461), worker 1 [5461, 10922), worker 2 [10922, 16384). */
	ck_assert_uint_eq(slot_first(1, 3), 5461);
	ck_assert_uint_eq(slot_first(2, 3), 10922);
	ck_assert_int_eq(slot_owner(5460, 3), 0);
	ck_assert_int_eq(slot_owner(5461, 3), 1);
	ck_assert_int_eq(slot_owner(10921, 3), 1);
	ck_assert_int_eq(slot_owner(10922, 3), 2);
	ck_assert_int_eq(slot_owner(16383, 3), 2);
}
END_TEST

START_TEST(test_owner_large_worker_counts)
{
	static const int counts[] = { 64, 100, 1000, SLOT_COUNT };

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		int n = counts[i];

		for (unsigned s = 0; s < SLOT_COUNT; s++) {
			int k = slot_owner((uint16_t)s, n);

			ck_assert(k >= 0 && k < n);
			ck_assert_uint_le(slot_first(k, n), s);
			ck_assert_uint_gt(slot_first(k + 1, n), s);
		}
	}
}
END_TEST

START_TEST(test_owner_rejects_bad_arguments)
{
	ck_assert_int_eq(slot_owner(0, 0), -1);
	ck_assert_int_eq(slot_owner(0, -2), -1);
	ck_assert_int_eq(slot_owner(SLOT_COUNT, 4), -1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("slot");
	TCase *tc = tcase_create("slot");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_crc16_xmodem_check_value);
	tcase_add_test(tc, test_slot_of_matches_redis_cluster_keyslot);
	tcase_add_test(tc, test_slot_of_ignores_hash_tags);
	tcase_add_test(tc, test_slot_of_binary_ids);
	tcase_add_test(tc, test_owner_ranges_cover_every_slot_once);
	tcase_add_test(tc, test_owner_uneven_split);
	tcase_add_test(tc, test_owner_large_worker_counts);
	tcase_add_test(tc, test_owner_rejects_bad_arguments);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test-win.c — the outbound in-flight window: packet ids are never reused while in flight (across the 65535
 * wrap-around too), lookups stay correct through holes and compaction, and every operation is O(1) amortised
 * (a 60,000-entry window is filled and drained in one test well within the unit timeout).
 */
#include <check.h>
#include <stdlib.h>

#include "win.h"

static win_ent_t ent(uint16_t pid, uint64_t qseq)
{
	return (win_ent_t){ .pid = pid, .qseq = qseq, .qos = 1, .state = WIN_PUBACK };
}

START_TEST(test_first_pid_is_1)
{
	win_t w = { 0 };

	ck_assert_uint_eq(win_next_pid(&w), 1);
	win_finish(&w);
}
END_TEST

START_TEST(test_MQTT_2_2_1_3_pid_not_reused_while_in_flight_across_wrap)
{
	win_t w = { 0 };
	win_ent_t e = ent(5, 1), *f;

	/* Id 5 stays in flight while 70,000 others come and go: the allocator skips it every time around. */
	ck_assert_ptr_nonnull(win_add(&w, &e));
	for (uint32_t i = 0; i < 70000; i++) {
		uint16_t pid = win_next_pid(&w);
		win_ent_t x = ent(pid, i + 2);

		ck_assert_uint_ne(pid, 5);
		ck_assert_uint_ne(pid, 0);
		f = win_add(&w, &x);
		ck_assert_ptr_nonnull(f);
		win_del(&w, f);
	}
	f = win_find(&w, 5);
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(f->qseq, 1);
	ck_assert_uint_eq(win_count(&w), 1);
	/* The holes behind the stuck entry were compacted, not kept. */
	ck_assert_uint_lt(w.ents.len, 200);
	win_finish(&w);
}
END_TEST

START_TEST(test_duplicate_pid_refused)
{
	win_t w = { 0 };
	win_ent_t e = ent(7, 1);

	ck_assert_ptr_nonnull(win_add(&w, &e));
	e.qseq = 2;
	ck_assert_ptr_null(win_add(&w, &e));
	e.pid = 0;
	ck_assert_ptr_null(win_add(&w, &e));
	win_finish(&w);
}
END_TEST

START_TEST(test_out_of_order_acks_keep_send_order)
{
	win_t w = { 0 };
	uint32_t i = 0;
	win_ent_t *f;
	uint64_t expect[] = { 1, 3, 5, 7, 9 };
	size_t n = 0;

	for (uint16_t p = 1; p <= 10; p++) {
		win_ent_t e = ent(p, p);

		ck_assert_ptr_nonnull(win_add(&w, &e));
	}
	for (uint16_t p = 2; p <= 10; p += 2)
		win_del(&w, win_find(&w, p));
	while ((f = win_next(&w, &i))) {
		ck_assert_uint_lt(n, 5);
		ck_assert_uint_eq(f->qseq, expect[n++]);
	}
	ck_assert_uint_eq(n, 5);
	ck_assert_ptr_null(win_find(&w, 4));
	ck_assert_ptr_nonnull(win_find(&w, 9));
	win_finish(&w);
}
END_TEST

/* A drained window gives its memory back (thousands of idle sessions hold none), and ids go on from the last
 * one handed out: a reused id could be taken for the old message's acknowledgement. */
START_TEST(test_drained_window_holds_no_memory_and_ids_go_on)
{
	win_t w = { 0 };

	for (uint16_t pid = 1; pid <= 3; pid++) {
		win_ent_t e = ent(win_next_pid(&w), pid);

		ck_assert_uint_eq(e.pid, pid);
		ck_assert_ptr_nonnull(win_add(&w, &e));
	}
	win_del(&w, win_find(&w, 2));
	ck_assert_ptr_nonnull(w.ents.items);
	win_del(&w, win_find(&w, 1));
	win_del(&w, win_find(&w, 3));
	ck_assert_uint_eq(win_count(&w), 0);
	ck_assert_ptr_null(w.ents.items);
	ck_assert_ptr_null(w.tab);
	ck_assert_ptr_null(win_find(&w, 3));
	ck_assert_uint_eq(win_next_pid(&w), 4);
	{
		win_ent_t e = ent(4, 4);

		ck_assert_ptr_nonnull(win_add(&w, &e));
		ck_assert_uint_eq(win_find(&w, 4)->qseq, 4);
	}
	win_finish(&w);
}
END_TEST

START_TEST(test_full_window_has_no_free_pid)
{
	win_t w = { 0 };

	for (uint32_t p = 1; p <= 65535; p++) {
		win_ent_t e = ent((uint16_t)p, p);

		ck_assert_ptr_nonnull(win_add(&w, &e));
	}
	ck_assert_uint_eq(win_next_pid(&w), 0);
	win_del(&w, win_find(&w, 40000));
	ck_assert_uint_eq(win_next_pid(&w), 40000);
	win_finish(&w);
}
END_TEST

START_TEST(test_large_window_linear_time)
{
	win_t w = { 0 };

	/* 60,000 in flight, acknowledged in a scrambled order: quadratic code would take minutes here. */
	for (uint32_t i = 0; i < 60000; i++) {
		win_ent_t e = ent(win_next_pid(&w), i);

		ck_assert_ptr_nonnull(win_add(&w, &e));
	}
	for (uint32_t i = 0; i < 60000; i++) {
		uint16_t pid = (uint16_t)(((i * 7919u) % 60000u) + 1);
		win_ent_t *f = win_find(&w, pid);

		ck_assert_ptr_nonnull(f);
		win_del(&w, f);
	}
	ck_assert_uint_eq(win_count(&w), 0);
	ck_assert_uint_eq(w.ents.len, 0);
	win_finish(&w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("win");
	TCase *tc = tcase_create("win");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_first_pid_is_1);
	tcase_add_test(tc, test_MQTT_2_2_1_3_pid_not_reused_while_in_flight_across_wrap);
	tcase_add_test(tc, test_duplicate_pid_refused);
	tcase_add_test(tc, test_out_of_order_acks_keep_send_order);
	tcase_add_test(tc, test_full_window_has_no_free_pid);
	tcase_add_test(tc, test_drained_window_holds_no_memory_and_ids_go_on);
	tcase_add_test(tc, test_large_window_linear_time);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

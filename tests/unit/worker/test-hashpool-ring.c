/*
 * test-hashpool-ring.c — the hash pool's completions on a real io_uring (test-hashpool.c runs them on fake
 * I/O): the eventfd read armed by hashpool_init completes when a thread finishes a job, the done callbacks run
 * from loop_turn on this thread, the read is armed again for the next ones, and finish with the read still in
 * flight leaves nothing behind (the ring is torn down after it).
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hashpool.h"
#include "loop.h"
#include "worker.h"

wk_t *W;
static wk_t wk;
static config_t wcfg;
static pthread_t main_thread;
static int done_count, wrong_thread;

static int work(void *arg)
{
	return (int)(intptr_t)arg * 2;
}

static void done(void *arg, int result)
{
	done_count += result == (int)(intptr_t)arg * 2;
	wrong_thread += !pthread_equal(pthread_self(), main_thread);
}

static const hashpool_ops_t ops = { .work = work, .done = done };

START_TEST(test_completions_through_the_ring)
{
	config_defaults(&wcfg);
	memset(&wk, 0, sizeof(wk));
	wk.cfg = &wcfg;
	W = &wk;
	main_thread = pthread_self();
	ck_assert_int_eq(loop_init(&(loop_config_t){ .sq_entries = 64, .buf_count = 16, .buf_size = 4096,
		.tick_ms = 50 }), 0);
	ck_assert_int_eq(hashpool_init(2, 64), 0);
	for (int round = 0; round < 3; round++) {
		int want = done_count + 50;

		for (intptr_t i = 1; i <= 50; i++)
			ck_assert_int_eq(hashpool_submit(&ops, (void *)i, NULL), 0);
		for (int t = 0; t < 200 && done_count < want; t++)
			loop_turn(50);
		ck_assert_int_eq(done_count, want);
	}
	ck_assert_int_eq(wrong_thread, 0);
	hashpool_finish();
	loop_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hashpool-ring");
	TCase *tc = tcase_create("hashpool-ring");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_completions_through_the_ring);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

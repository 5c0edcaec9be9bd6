/*
 * test-hashpool.c — the per-worker hash pool: work runs on a pool thread and its completion comes back on the
 * worker thread through the eventfd read (fake_io_wait plays the ring), never from inside submit; a full queue
 * refuses at once (-EBUSY) instead of making a CONNECT wait; a cancelled job's callback is never called, whether
 * it was waiting, running or already done; finish joins the threads and drops what is left.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_io.h"
#include "hashpool.h"

static pthread_t main_thread;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int running, finished;

typedef struct job {
	int id;
	bool wait_gate;
	bool ran_off_main;
	int done_result;      /* -1: not called */
	bool dropped;
	bool done_on_main;
	hashpool_job_t *cancel_in_done; /* cancelled by this job's done callback */
} job_t;

static int work(void *arg)
{
	job_t *j = arg;

	j->ran_off_main = !pthread_equal(pthread_self(), main_thread);
	atomic_fetch_add(&running, 1);
	if (j->wait_gate) {
		pthread_mutex_lock(&gate_mu);
		while (!gate_open)
			pthread_cond_wait(&gate_cv, &gate_mu);
		pthread_mutex_unlock(&gate_mu);
	}
	atomic_fetch_add(&finished, 1);
	return 1000 + j->id;
}

static void done(void *arg, int result)
{
	job_t *j = arg;

	j->done_result = result;
	j->done_on_main = pthread_equal(pthread_self(), main_thread);
	if (j->cancel_in_done)
		hashpool_cancel(j->cancel_in_done);
}

static void drop(void *arg)
{
	((job_t *)arg)->dropped = true;
}

static const hashpool_ops_t ops = { .work = work, .done = done, .drop = drop };

static void open_gate(void)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static void wait_for(atomic_int *v, int n)
{
	for (int i = 0; i < 5000 && atomic_load(v) < n; i++)
		usleep(1000);
	ck_assert_int_ge(atomic_load(v), n);
}

/* Deliver completions until pred holds (or 5 s). */
static void run_until(bool (*pred)(void))
{
	for (int i = 0; i < 50 && !pred(); i++)
		fake_io_wait(100);
	ck_assert(pred());
}

static job_t jobs[16];

static bool all_six_done(void)
{
	for (int i = 0; i < 6; i++) {
		if (jobs[i].done_result < 0)
			return false;
	}
	return true;
}

static void setup(void)
{
	main_thread = pthread_self();
	gate_open = false;
	atomic_store(&running, 0);
	atomic_store(&finished, 0);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 16; i++) {
		jobs[i].id = i;
		jobs[i].done_result = -1;
	}
	fake_init(NULL, 0, 1);
	ck_assert_int_eq(hashpool_init(2, 4), 0);
}

static void teardown(void)
{
	open_gate();
	hashpool_finish();
	fake_finish();
}

START_TEST(test_completion_on_worker_thread_never_inside_submit)
{
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[0], NULL), 0);
	/* even once the work is over, nothing is called until the loop reads the eventfd */
	wait_for(&finished, 1);
	ck_assert_int_eq(jobs[0].done_result, -1);
	ck_assert_int_eq(fake_io_wait(1000), 1);
	ck_assert_int_eq(jobs[0].done_result, 1000);
	ck_assert(jobs[0].ran_off_main);
	ck_assert(jobs[0].done_on_main);
	ck_assert(!jobs[0].dropped);
	/* the read is armed again: a second job completes the same way */
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[1], NULL), 0);
	wait_for(&finished, 2);
	ck_assert_int_eq(fake_io_wait(1000), 1);
	ck_assert_int_eq(jobs[1].done_result, 1001);
}
END_TEST

START_TEST(test_full_queue_refused_at_once)
{
	for (int i = 0; i < 6; i++)
		jobs[i].wait_gate = true;
	/* two running (one per thread), four waiting: the queue holds four */
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[0], NULL), 0);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[1], NULL), 0);
	wait_for(&running, 2);
	for (int i = 2; i < 6; i++)
		ck_assert_int_eq(hashpool_submit(&ops, &jobs[i], NULL), 0);
	ck_assert_uint_eq(hashpool_waiting(), 4);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[6], NULL), -EBUSY);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[7], NULL), -EBUSY);
	open_gate();
	run_until(all_six_done);
	ck_assert_int_eq(jobs[6].done_result, -1);
	ck_assert(!jobs[6].dropped);
	/* room again */
	ck_assert_uint_eq(hashpool_waiting(), 0);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[6], NULL), 0);
}
END_TEST

START_TEST(test_cancel_waiting_job_dropped_at_once)
{
	hashpool_job_t *h;

	jobs[0].wait_gate = jobs[1].wait_gate = true;
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[0], NULL), 0);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[1], NULL), 0);
	wait_for(&running, 2);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[2], &h), 0);
	ck_assert_uint_eq(hashpool_waiting(), 1);
	hashpool_cancel(h);
	ck_assert(jobs[2].dropped);
	ck_assert_uint_eq(hashpool_waiting(), 0);
	open_gate();
	wait_for(&finished, 2);
	while (fake_io_wait(200) > 0)
		;
	ck_assert_int_eq(jobs[2].done_result, -1);
	ck_assert_int_eq(atomic_load(&running), 2); /* its work never ran */
}
END_TEST

START_TEST(test_cancel_running_job_dropped_when_its_work_returns)
{
	hashpool_job_t *h;

	jobs[0].wait_gate = true;
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[0], &h), 0);
	wait_for(&running, 1);
	hashpool_cancel(h);
	/* the work still holds its argument: not released yet */
	ck_assert(!jobs[0].dropped);
	open_gate();
	wait_for(&finished, 1);
	ck_assert_int_eq(fake_io_wait(1000), 1);
	ck_assert(jobs[0].dropped);
	ck_assert_int_eq(jobs[0].done_result, -1);
}
END_TEST

START_TEST(test_cancel_of_a_done_job_from_another_callback)
{
	hashpool_job_t *h0, *h1;

	ck_assert_int_eq(hashpool_submit(&ops, &jobs[0], &h0), 0);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[1], &h1), 0);
	wait_for(&finished, 2);
	usleep(10000);
	/* both are on the done list now; whichever is delivered first cancels the other */
	jobs[0].cancel_in_done = h1;
	jobs[1].cancel_in_done = h0;
	ck_assert_int_eq(fake_io_wait(1000), 1);
	ck_assert((jobs[0].done_result >= 0) != (jobs[1].done_result >= 0));
	ck_assert(jobs[0].dropped != jobs[1].dropped);
	ck_assert(jobs[0].dropped == (jobs[0].done_result < 0));
}
END_TEST

START_TEST(test_finish_joins_and_drops_what_is_left)
{
	jobs[0].wait_gate = jobs[1].wait_gate = true;
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[0], NULL), 0);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[1], NULL), 0);
	wait_for(&running, 2);
	for (int i = 2; i < 5; i++)
		ck_assert_int_eq(hashpool_submit(&ops, &jobs[i], NULL), 0);
	open_gate();
	hashpool_finish();
	for (int i = 0; i < 5; i++) {
		ck_assert(jobs[i].dropped);
		ck_assert_int_eq(jobs[i].done_result, -1);
	}
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[5], NULL), -ESHUTDOWN);
	/* and it starts again */
	ck_assert_int_eq(hashpool_init(1, 1), 0);
	ck_assert_int_eq(hashpool_submit(&ops, &jobs[5], NULL), 0);
	for (int i = 0; i < 50 && jobs[5].done_result < 0; i++)
		fake_io_wait(100);
	ck_assert_int_eq(jobs[5].done_result, 1005);
}
END_TEST

START_TEST(test_allocation_failure_refuses_the_job)
{
	int rc;

	fake_fail_alloc_after(1);
	rc = hashpool_submit(&ops, &jobs[0], NULL);
	fake_fail_alloc_after(0);
	ck_assert_int_eq(rc, -ENOMEM);
	ck_assert_uint_eq(hashpool_waiting(), 0);
	ck_assert_int_eq(fake_io_wait(50), 0);
	ck_assert_int_eq(jobs[0].done_result, -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hashpool");
	TCase *tc = tcase_create("hashpool");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_completion_on_worker_thread_never_inside_submit);
	tcase_add_test(tc, test_full_queue_refused_at_once);
	tcase_add_test(tc, test_cancel_waiting_job_dropped_at_once);
	tcase_add_test(tc, test_cancel_running_job_dropped_when_its_work_returns);
	tcase_add_test(tc, test_cancel_of_a_done_job_from_another_callback);
	tcase_add_test(tc, test_finish_joins_and_drops_what_is_left);
	tcase_add_test(tc, test_allocation_failure_refuses_the_job);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

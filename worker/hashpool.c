/*
 * hashpool.c — password hashing off the event loop (see hashpool.h).
 *
 * Jobs sit on one of two lists under the pool's mutex: waiting (for a thread) and done (for the worker
 * thread); a running job is on neither and only its state says so. Threads append to done and write 1 to the
 * eventfd; the worker thread's completion for the eventfd read takes done jobs one at a time under the lock,
 * so a done callback may submit or cancel other jobs (one still on the done list is simply unlinked).
 */
#include "hashpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define MAX_THREADS 64

enum state { WAITING, RUNNING, DONE };

struct hashpool_job {
	hashpool_job_t *prev, *next;
	const hashpool_ops_t *ops;
	void *arg;
	int result;
	enum state state;
	bool cancelled;
};

typedef struct jlist {
	hashpool_job_t *head, *tail;
} jlist_t;

static struct {
	bool up;
	bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	jlist_t waiting, done;
	unsigned n_waiting, queue;
	pthread_t threads[MAX_THREADS];
	unsigned n_threads;
	int efd;
	uint8_t kind;
	uint32_t gen;             /* of the armed read: a completion from before a re-init is ignored */
	bool armed;
} P = { .efd = -1 };

/* The read's destination outlives the pool: a read still in flight when the pool is finished may complete
 * into it at ring teardown. */
static uint64_t efd_value;

static void push(jlist_t *l, hashpool_job_t *j)
{
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static void unlink_job(jlist_t *l, hashpool_job_t *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->prev = j->next = NULL;
}

static hashpool_job_t *pop(jlist_t *l)
{
	hashpool_job_t *j = l->head;

	if (j)
		unlink_job(l, j);
	return j;
}

static void *thread_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&P.mu);
	for (;;) {
		hashpool_job_t *j;
		uint64_t one = 1;
		int r;

		while (!P.stop && !P.waiting.head)
			pthread_cond_wait(&P.cv, &P.mu);
		if (P.stop)
			break;
		j = pop(&P.waiting);
		P.n_waiting--;
		j->state = RUNNING;
		pthread_mutex_unlock(&P.mu);
		r = j->ops->work(j->arg);
		pthread_mutex_lock(&P.mu);
		j->result = r;
		j->state = DONE;
		push(&P.done, j);
		pthread_mutex_unlock(&P.mu);
		/* The counter cannot overflow (the worker reads it down), so the write does not block or fail. */
		if (write(P.efd, &one, sizeof(one)) < 0)
			log_error(errno, "hash pool: cannot signal a completion");
		pthread_mutex_lock(&P.mu);
	}
	pthread_mutex_unlock(&P.mu);
	return NULL;
}

static void on_read(uint64_t ud, struct io_uring_cqe *cqe);

static void arm(void)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_read(sqe, P.efd, &efd_value, sizeof(efd_value), 0);
	io_uring_sqe_set_data64(sqe, ud_make(P.kind, P.gen, 0));
	P.armed = true;
}

/* Take done jobs one at a time: a callback may cancel a job that is still on the list. */
static void drain(void)
{
	for (;;) {
		hashpool_job_t *j;

		pthread_mutex_lock(&P.mu);
		j = pop(&P.done);
		pthread_mutex_unlock(&P.mu);
		if (!j)
			return;
		if (j->cancelled) {
			if (j->ops->drop)
				j->ops->drop(j->arg);
		} else {
			j->ops->done(j->arg, j->result);
		}
		free(j);
	}
}

static void on_read(uint64_t ud, struct io_uring_cqe *cqe)
{
	if (!P.up || ud_gen(ud) != P.gen)
		return;
	P.armed = false;
	if (cqe->res < 0 && cqe->res != -EINTR && cqe->res != -EAGAIN) {
		if (cqe->res != -ECANCELED)
			log_error(-cqe->res, "hash pool: eventfd read failed; password checks stop completing");
		return;
	}
	drain();
	if (P.up && !P.armed)
		arm();
}

int hashpool_init(unsigned threads, unsigned queue)
{
	sigset_t all, old;
	int rc;

	if (P.up)
		return -EALREADY;
	if (threads < 1 || threads > MAX_THREADS || queue < 1)
		return -EINVAL;
	P.efd = eventfd(0, EFD_CLOEXEC);
	if (P.efd < 0) {
		rc = -errno;
		log_error(-rc, "hash pool: cannot create an eventfd");
		return rc;
	}
	pthread_mutex_init(&P.mu, NULL);
	pthread_cond_init(&P.cv, NULL);
	P.stop = false;
	P.queue = queue;
	P.n_waiting = 0;
	P.waiting = P.done = (jlist_t){ NULL, NULL };
	P.n_threads = 0;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < threads; i++) {
		rc = -pthread_create(&P.threads[i], NULL, thread_main, NULL);
		if (rc)
			break;
		P.n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	P.up = true;
	if (P.n_threads < threads) {
		log_error(-rc, "hash pool: cannot start thread %u of %u (auth_threads)", P.n_threads + 1, threads);
		hashpool_finish();
		return rc;
	}
	P.kind = loop_register("hashpool", on_read);
	P.gen = (P.gen + 1) & 0xffffff;
	arm();
	return 0;
}

void hashpool_finish(void)
{
	hashpool_job_t *j;

	if (!P.up)
		return;
	pthread_mutex_lock(&P.mu);
	P.stop = true;
	pthread_cond_broadcast(&P.cv);
	pthread_mutex_unlock(&P.mu);
	for (unsigned i = 0; i < P.n_threads; i++)
		pthread_join(P.threads[i], NULL);
	P.n_threads = 0;
	/* No thread is left: the lists are ours without the lock. */
	while ((j = pop(&P.waiting)) || (j = pop(&P.done))) {
		if (j->ops->drop)
			j->ops->drop(j->arg);
		free(j);
	}
	P.n_waiting = 0;
	if (P.armed)
		loop_cancel(ud_make(P.kind, P.gen, 0));
	P.armed = false;
	P.up = false;
	close(P.efd);
	P.efd = -1;
	pthread_cond_destroy(&P.cv);
	pthread_mutex_destroy(&P.mu);
}

int hashpool_submit(const hashpool_ops_t *ops, void *arg, hashpool_job_t **job)
{
	hashpool_job_t *j;
	bool full;

	if (!P.up)
		return -ESHUTDOWN;
	pthread_mutex_lock(&P.mu);
	full = P.n_waiting >= P.queue;
	pthread_mutex_unlock(&P.mu);
	/* Only this thread adds jobs: the count can only have gone down since. */
	if (full)
		return -EBUSY;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->ops = ops;
	j->arg = arg;
	j->state = WAITING;
	pthread_mutex_lock(&P.mu);
	push(&P.waiting, j);
	P.n_waiting++;
	pthread_cond_signal(&P.cv);
	pthread_mutex_unlock(&P.mu);
	if (job)
		*job = j;
	return 0;
}

void hashpool_cancel(hashpool_job_t *j)
{
	bool release = true;

	if (!j)
		return;
	pthread_mutex_lock(&P.mu);
	switch (j->state) {
	case WAITING:
		unlink_job(&P.waiting, j);
		P.n_waiting--;
		break;
	case DONE:
		unlink_job(&P.done, j);
		break;
	case RUNNING:
		/* Its thread puts it on the done list when the work returns; drain() drops it then. */
		j->cancelled = true;
		release = false;
		break;
	}
	pthread_mutex_unlock(&P.mu);
	if (release) {
		if (j->ops->drop)
			j->ops->drop(j->arg);
		free(j);
	}
}

unsigned hashpool_waiting(void)
{
	unsigned n;

	if (!P.up)
		return 0;
	pthread_mutex_lock(&P.mu);
	n = P.n_waiting;
	pthread_mutex_unlock(&P.mu);
	return n;
}

/*
 * hashpool.h — a small bounded thread pool per worker for work too slow for the event loop (password hashes:
 * milliseconds each, by design).
 *
 * A job's work function runs on one of the pool's threads; its completion comes back to the worker thread
 * through an eventfd whose read is kept armed on the worker's io_uring (a completion kind of its own), and its
 * done function is called there, from the loop, never from inside hashpool_submit. The queue of jobs waiting
 * for a thread is bounded: when it is full, hashpool_submit fails at once with -EBUSY (the client gets "server
 * busy" instead of every client waiting behind a flood of CONNECTs). A cancelled job's done function is not
 * called; if its work is already running it finishes (a hash cannot be interrupted) and is thrown away.
 *
 * The threads are created by hashpool_init, which must run in the worker process after fork (threads do not
 * cross fork), and joined by hashpool_finish. They block every signal: signals stay the worker thread's.
 * Everything but the work functions runs on the worker thread.
 *
 * On fake I/O (tests/fake) the eventfd read is captured by the fake loop; fake_io_wait() waits for it and
 * delivers the completion as the ring would.
 */
#ifndef RINGMQ_WORKER_HASHPOOL_H
#define RINGMQ_WORKER_HASHPOOL_H

#include <stdbool.h>

typedef struct hashpool_job hashpool_job_t;

typedef struct hashpool_ops {
	/* On a pool thread: must touch nothing but arg (and pure, thread-safe functions). Its return value is
	 * handed to done. */
	int (*work)(void *arg);
	/* On the worker thread, once work has returned, unless the job was cancelled. arg is the caller's again. */
	void (*done)(void *arg, int result);
	/* On the worker thread, for a job whose done will never be called (cancelled, or still outstanding at
	 * hashpool_finish): arg is the caller's again, to free. May be NULL. */
	void (*drop)(void *arg);
} hashpool_ops_t;

/* Start threads (1..64) with room for queue jobs waiting for them, and register with the loop. 0, or -errno
 * after one log line. Worker thread, after fork; once (again only after hashpool_finish). */
int hashpool_init(unsigned threads, unsigned queue);
/* Join the threads (running work finishes first), drop every job still outstanding (ops->drop), close the
 * eventfd. No-op when not initialised. */
void hashpool_finish(void);
/*
 * Queue work(arg); ops must outlive the job. On 0, *job (if job is not NULL) names it for hashpool_cancel until
 * done or drop is called. -EBUSY: the queue is full; -ENOMEM; -ESHUTDOWN: the pool is not running. On error
 * nothing is called and arg stays the caller's.
 */
int hashpool_submit(const hashpool_ops_t *ops, void *arg, hashpool_job_t **job);
/* done will not be called for job; drop(arg) is, now if the job has not started, else once its work returns.
 * The handle is invalid afterwards. */
void hashpool_cancel(hashpool_job_t *job);
/* Jobs waiting for a thread (not counting running ones). */
unsigned hashpool_waiting(void);

#endif

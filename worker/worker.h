/*
 * worker.h — entry point of one worker process.
 *
 * Called in the child right after fork() by the supervisor. The worker creates its own io_uring (a ring must
 * not cross fork), serves clients on listen_fd, talks to the supervisor over ctl_fd and to the other workers
 * over mesh_fds, and returns an exit status when told to shut down or when ctl_fd reaches EOF (supervisor gone).
 * It takes ownership of every fd in args; the supervisor has already closed every other inherited fd.
 */
#ifndef RINGMQ_WORKER_WORKER_H
#define RINGMQ_WORKER_WORKER_H

#include "config.h"

#define WORKER_MAX 256

typedef struct worker_args {
	int id;                      /* 0..n_workers-1 */
	int n_workers;
	int listen_fd;               /* SO_REUSEPORT TCP listener held by the supervisor, nonblocking */
	int ctl_fd;                  /* worker end of the control channel (chan.h) */
	int mesh_fds[WORKER_MAX];    /* SOCK_STREAM socketpair end to peer k; -1 for self */
	const config_t *cfg;
	unsigned restart_count;      /* 0 at first start: peers need no state dump */
} worker_args_t;

/* Start taking clients and tell the supervisor (once sessions are restored). Worker process only. */
void worker_serve(void);
/* Returns the process exit status (0 after a graceful shutdown). */
int worker_run(const worker_args_t *args);

#endif

/*
 * ctl.h — the worker's end of the supervisor control channel: handoffs in and out, mesh fds, peer deaths,
 * shutdown, and the JSON requests behind ringmqctl. Worker thread only.
 */
#ifndef RINGMQ_WORKER_CTL_H
#define RINGMQ_WORKER_CTL_H

#include "wk-t.h"

void ctl_init(void);
void ctl_on_poll(struct io_uring_cqe *cqe);
/* Move c (state CONN_HANDOFF, recv drained) to its owner worker. 0 when sent (caller frees c), -EAGAIN to retry
 * later, other -errno when it cannot be moved (caller closes c). */
int ctl_handoff(conn_t *c);
void ctl_flush(void);
void ctl_send_ready(void);

#endif

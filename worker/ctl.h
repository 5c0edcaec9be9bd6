/*
 * ctl.h — the worker's end of the supervisor control channel: handoffs in and out, mesh fds, peer deaths,
 * shutdown, and the JSON requests behind ringmqctl. Worker thread only.
 */
#ifndef RINGMQ_WORKER_CTL_H
#define RINGMQ_WORKER_CTL_H

struct conn;

/* Register with the loop and start reading the channel. */
void ctl_init(void);
/* Close what is half received (partial handoffs). */
void ctl_finish(void);
/*
 * Move c (state CONN_HANDOFF, receiving stopped) to its owner worker: the fd with the first record, the
 * bytes read so far (CONNECT and what followed) in as many records as they need; c->handoff_sent tracks
 * the progress. 0 when everything is sent (the caller releases its copy of the socket), -EAGAIN to go on
 * later (channel full), other -errno when it cannot be moved (the caller closes c).
 */
int ctl_handoff(struct conn *c);
void ctl_send_ready(void);
/* Call fn once the channel can take records again (after -EAGAIN); one pending call at a time. */
void ctl_when_writable(void (*fn)(void));

#endif

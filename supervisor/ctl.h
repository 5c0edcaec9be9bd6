/*
 * ctl.h — the control socket: a Unix stream socket where ringmqctl (or anything that speaks one line of
 * JSON) asks the running broker for status, workers, clients, stats, to kick a client or to shut down.
 *
 * Protocol: the client sends one JSON object on one line, the supervisor answers with one JSON object on one
 * line and closes. Requests that need worker data go out as CHAN_CTL_REQ records; the answer is built when
 * every worker concerned replied or after CTL_WORKER_TIMEOUT_MS, never by blocking the loop. The protocol is
 * described in docs/operations.md. Supervisor process only.
 */
#ifndef RINGMQ_SUPERVISOR_CTL_H
#define RINGMQ_SUPERVISOR_CTL_H

#include <stdint.h>

#define CTL_MAX_CONNS 64
#define CTL_LINE_MAX 8192
#define CTL_WORKER_TIMEOUT_MS 2000u
#define CTL_IO_TIMEOUT_MS 5000u

struct sup;
typedef struct ctl ctl_t;

/*
 * Create the socket at path: the parent directory is created (0755) if missing; an existing socket that
 * answers means another broker uses it (refused), one that does not is stale and removed. The socket is
 * chmod 0660 and registered with s->epfd. Returns 0 with *out set, or -1 after logging one line.
 */
int ctl_create(ctl_t **out, struct sup *s, const char *path);
/* Close every connection and the listener, unlink the socket. NULL is a no-op. */
void ctl_destroy(ctl_t *c);
/* An epoll event tagged SUP_EV_CTL_LISTEN or SUP_EV_CTL_CONN. */
void ctl_on_event(ctl_t *c, uint64_t tag, uint32_t events);
/* A CHAN_CTL_REPLY from worker k for request seq; payload is JSON (not NUL-terminated). */
void ctl_on_reply(ctl_t *c, int k, uint32_t seq, const char *payload, uint32_t len);
/* Worker k died: requests still waiting for it stop waiting and note the error. NULL is a no-op. */
void ctl_worker_down(ctl_t *c, int k);
/* Earliest monotonic ms at which ctl_on_timer has work, or UINT64_MAX. */
uint64_t ctl_next_deadline(const ctl_t *c);
/* Time out idle connections and requests whose workers did not answer. */
void ctl_on_timer(ctl_t *c, uint64_t now_ms);

#endif

/*
 * sendq.h — records the supervisor could not deliver to a worker's control channel yet.
 *
 * A record waits here when its target worker is down (a client handoff for a worker that is restarting) or
 * when the target's channel is full (-EAGAIN). Records for one target leave in the order they came in. The
 * queue is bounded in entries and in time: on overflow or expiry the record is dropped, its fd closed and
 * the drop logged. Supervisor process only.
 */
#ifndef RINGMQ_SUPERVISOR_SENDQ_H
#define RINGMQ_SUPERVISOR_SENDQ_H

#include <stdbool.h>
#include <stdint.h>

#include "worker.h"

#define SENDQ_MAX_ENTRIES 4096
#define SENDQ_TTL_MS 10000u

typedef struct sendq_item sendq_item_t;

typedef struct sendq {
	sendq_item_t *head, *tail;   /* oldest first; all entries share one TTL, so also soonest deadline */
	unsigned count;
	unsigned per_target[WORKER_MAX + 1];
} sendq_t;

void sendq_init(sendq_t *q);
/* Drop everything: close queued fds, free the records. */
void sendq_finish(sendq_t *q);
/*
 * Queue one record for worker target. On success the queue owns fd (may be -1) and copies the payload.
 * Returns 0, -ENOBUFS when SENDQ_MAX_ENTRIES are queued, or -ENOMEM; on failure the caller keeps fd.
 */
int sendq_push(sendq_t *q, int target, uint16_t type, int32_t worker, uint32_t seq, const void *payload,
	uint32_t len, int fd, uint64_t now_ms);
/* Records waiting for target. */
unsigned sendq_pending(const sendq_t *q, int target);
/*
 * Send target's records in order on ctl_fd until the channel is full. Returns 0 when none is left for
 * target, -EAGAIN when some still wait, -EPIPE/-ECONNRESET/-ENOTCONN when the worker's end is closed (the
 * records stay queued). A record the channel rejects for another reason is dropped and logged.
 */
int sendq_flush(sendq_t *q, int target, int ctl_fd);
/* Drop target's records (its process died), keeping client handoffs when keep_handoffs: the restarted
 * worker takes them. Returns the number dropped. */
unsigned sendq_drop(sendq_t *q, int target, bool keep_handoffs);
/* Drop records older than SENDQ_TTL_MS, closing their fds. Returns the number dropped and adds the client
 * handoffs among them to *handoffs; the caller logs (expiries come in bursts). */
unsigned sendq_expire(sendq_t *q, uint64_t now_ms, unsigned *handoffs);
/* Monotonic ms at which the oldest record expires, or UINT64_MAX when empty. */
uint64_t sendq_next_deadline(const sendq_t *q);

#endif

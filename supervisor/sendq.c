/*
 * sendq.c — bounded, per-target ordered queue of control records (see sendq.h).
 *
 * One doubly linked list in arrival order. The supervisor is not on the hot path and the queue holds at most
 * a few thousand records in the worst case (a worker restarting under a burst of handoffs), so flushing one
 * target walks the whole list rather than keeping a list per target.
 */
#include "sendq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "log.h"

struct sendq_item {
	sendq_item_t *prev, *next;
	uint64_t deadline_ms;
	int target;
	int fd;
	uint16_t type;
	int32_t worker;
	uint32_t seq;
	uint32_t len;
	unsigned char data[];
};

static const char *
type_name(uint16_t type)
{
	switch (type) {
	case CHAN_HANDOFF: return "client handoff";
	case CHAN_HANDOFF_MORE: return "client handoff data";
	case CHAN_MESH_FD: return "mesh socket";
	case CHAN_PEER_DOWN: return "peer-down notice";
	case CHAN_SHUTDOWN: return "shutdown request";
	case CHAN_CTL_REQ: return "control request";
	default: return "record";
	}
}

void
sendq_init(sendq_t *q)
{
	memset(q, 0, sizeof(*q));
}

static void
unlink_item(sendq_t *q, sendq_item_t *it)
{
	if (it->prev)
		it->prev->next = it->next;
	else
		q->head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		q->tail = it->prev;
	q->count--;
	q->per_target[it->target]--;
}

static void
free_item(sendq_item_t *it)
{
	if (it->fd >= 0)
		close(it->fd);
	free(it);
}

void
sendq_finish(sendq_t *q)
{
	sendq_item_t *it, *next;

	for (it = q->head; it; it = next) {
		next = it->next;
		free_item(it);
	}
	sendq_init(q);
}

int
sendq_push(sendq_t *q, int target, uint16_t type, int32_t worker, uint32_t seq, const void *payload,
	uint32_t len, int fd, uint64_t now_ms)
{
	sendq_item_t *it;

	if (q->count >= SENDQ_MAX_ENTRIES)
		return -ENOBUFS;
	it = malloc(sizeof(*it) + len);
	if (it == NULL)
		return -ENOMEM;
	it->deadline_ms = now_ms + SENDQ_TTL_MS;
	it->target = target;
	it->fd = fd;
	it->type = type;
	it->worker = worker;
	it->seq = seq;
	it->len = len;
	if (len)
		memcpy(it->data, payload, len);
	it->next = NULL;
	it->prev = q->tail;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->count++;
	q->per_target[target]++;
	return 0;
}

unsigned
sendq_pending(const sendq_t *q, int target)
{
	return q->per_target[target];
}

int
sendq_flush(sendq_t *q, int target, int ctl_fd)
{
	sendq_item_t *it, *next;
	int rc;

	for (it = q->head; it && q->per_target[target]; it = next) {
		next = it->next;
		if (it->target != target)
			continue;
		rc = chan_send(ctl_fd, it->type, it->worker, it->seq, it->data, it->len, it->fd);
		if (rc == -EAGAIN)
			return -EAGAIN;
		/* The worker is gone: its death (sendq_drop) decides what happens to the records. */
		if (rc == -EPIPE || rc == -ECONNRESET || rc == -ENOTCONN)
			return rc;
		if (rc < 0)
			log_warn(-rc, "dropping a queued %s for worker %d", type_name(it->type), target);
		unlink_item(q, it);
		free_item(it);
	}
	return 0;
}

unsigned
sendq_drop(sendq_t *q, int target, bool keep_handoffs)
{
	sendq_item_t *it, *next;
	unsigned n = 0;

	for (it = q->head; it && q->per_target[target]; it = next) {
		next = it->next;
		if (it->target != target || (keep_handoffs && (it->type == CHAN_HANDOFF ||
		    it->type == CHAN_HANDOFF_MORE)))
			continue;
		unlink_item(q, it);
		free_item(it);
		n++;
	}
	return n;
}

unsigned
sendq_expire(sendq_t *q, uint64_t now_ms, unsigned *handoffs)
{
	unsigned n = 0;

	while (q->head && q->head->deadline_ms <= now_ms) {
		sendq_item_t *it = q->head;

		*handoffs += it->type == CHAN_HANDOFF;
		unlink_item(q, it);
		free_item(it);
		n++;
	}
	return n;
}

uint64_t
sendq_next_deadline(const sendq_t *q)
{
	return q->head ? q->head->deadline_ms : UINT64_MAX;
}

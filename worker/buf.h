/*
 * buf.h — the worker's containers: growable byte buffers, double-buffered socket output queues, and rings of
 * fixed-size items. Allocation failure is returned, never fatal.
 */
#ifndef RINGMQ_WORKER_BUF_H
#define RINGMQ_WORKER_BUF_H

#include "wk-t.h"

/* Make room for n more bytes; returns a pointer to them, or NULL. Commit with b->len += used. */
uint8_t *buf_reserve(buf_t *b, size_t n);
int buf_append(buf_t *b, const void *p, size_t n);
void buf_finish(buf_t *b);

/* Room for n bytes at the end of the pending half of q; commit with q->pending.len += used. */
static inline uint8_t *outq_reserve(outq_t *q, size_t n) { return buf_reserve(&q->pending, n); }
/* Bytes queued and not yet written. */
static inline size_t outq_size(const outq_t *q) { return q->sending.len - q->off + q->pending.len; }
/* If nothing is being sent and something is pending: swap halves and queue one SEND SQE. Returns true if an
 * SQE was queued (the caller counts it as a reference). */
bool outq_start(outq_t *q, int fd, uint64_t ud);
/* Account a SEND completion of res bytes. Returns true if another SQE was queued for the rest. */
bool outq_sent(outq_t *q, int fd, uint64_t ud, int res);
void outq_finish(outq_t *q);

/* Rings: items of `size` bytes. ring_push returns the new slot or NULL on allocation failure. */
void *ring_push(ring_t *r, size_t size);
static inline void *ring_at(const ring_t *r, size_t size, uint32_t i)
{
	return (uint8_t *)r->items + (size_t)((r->head + i) & (r->cap - 1)) * size;
}
static inline void ring_pop(ring_t *r)
{
	r->head = (r->head + 1) & (r->cap - 1);
	r->len--;
}
/* Remove item i (0 = head), keeping order. */
void ring_remove(ring_t *r, size_t size, uint32_t i);
void ring_finish(ring_t *r);

#endif

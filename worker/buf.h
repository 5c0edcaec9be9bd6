/*
 * buf.h — the worker's containers: growable byte buffers, double-buffered socket output queues, rings of
 * fixed-size items. Pure memory: nothing here submits I/O. Allocation failure is returned, never fatal.
 */
#ifndef RINGMQ_WORKER_BUF_H
#define RINGMQ_WORKER_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. */
typedef struct buf {
	uint8_t *data;
	uint32_t len;
	uint32_t cap;
} buf_t;

/* Make room for n more bytes; returns a pointer to them, or NULL. Commit with b->len += used. */
uint8_t *buf_reserve(buf_t *b, size_t n);
int buf_append(buf_t *b, const void *p, size_t n);
void buf_finish(buf_t *b);

/*
 * Partial-frame carry-over for stream parsers: buf_carry_view() returns the bytes to parse — data itself
 * when nothing was carried, else the carried bytes with data appended (NULL on allocation failure).
 * After parsing `used` bytes of the view, buf_carry_keep() keeps the unparsed rest for the next read.
 * Returns 0 or -ENOMEM.
 */
const uint8_t *buf_carry_view(buf_t *carry, const uint8_t *data, size_t len, size_t *n);
int buf_carry_keep(buf_t *carry, const uint8_t *view, size_t n, size_t used);

/*
 * Output queue of a socket: `sending` belongs to one SEND in flight and must not move until it completes;
 * everything produced meanwhile is appended to `pending`. When nothing is in flight, outq_next() swaps
 * the halves and hands out the bytes to send.
 */
typedef struct outq {
	buf_t sending;
	buf_t pending;
	uint32_t off;        /* bytes of `sending` already written */
	bool inflight;       /* a SEND is outstanding on `sending` */
	bool lean;           /* give each half back once written (client sockets: an idle connection holds no
	                      * output memory); else keep it (a busy channel would reallocate every turn) */
} outq_t;

/* Room for n bytes at the end of the pending half; commit with q->pending.len += used. */
static inline uint8_t *outq_reserve(outq_t *q, size_t n) { return buf_reserve(&q->pending, n); }
/* Bytes queued and not yet written. */
static inline size_t outq_size(const outq_t *q) { return q->sending.len - q->off + q->pending.len; }
/* If no send is in flight and something is queued: the next bytes to send (marks the queue in flight).
 * Returns false when there is nothing to start. */
bool outq_next(outq_t *q, const uint8_t **p, size_t *len);
/* A send of `res` bytes completed (res <= 0: failed). Returns true if part of `sending` is left: call
 * outq_next() again to send it. */
bool outq_sent(outq_t *q, int res);
/* Forget everything queued. Only when no send is in flight (the kernel may still read `sending`). */
void outq_reset(outq_t *q);
void outq_finish(outq_t *q);

/* A ring of fixed-size items (FIFO with random access). */
typedef struct ring {
	void *items;
	uint32_t head;
	uint32_t len;
	uint32_t cap;              /* power of two */
} ring_t;

/* Append one item; returns its slot or NULL on allocation failure. */
void *ring_push(ring_t *r, size_t size);
/* Room for n items in all, so that pushes up to n cannot fail: 0, or -ENOMEM (r unchanged). */
int ring_reserve(ring_t *r, size_t size, uint32_t n);
static inline void *ring_at(const ring_t *r, size_t size, uint32_t i)
{
	return (uint8_t *)r->items + (size_t)((r->head + i) & (r->cap - 1)) * size;
}
static inline void ring_pop(ring_t *r)
{
	r->head = (r->head + 1) & (r->cap - 1);
	r->len--;
}
void ring_finish(ring_t *r);
/* Give the items back once the ring is empty, so a connection or session at rest holds no ring memory. A ring
 * that fills and empties with every message pays a malloc/free pair of a small block (malloc's thread cache). */
static inline void ring_trim(ring_t *r)
{
	if (!r->len && r->items)
		ring_finish(r);
}

#endif

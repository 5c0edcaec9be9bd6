/* buf.c — byte buffers, output queues, rings (see buf.h). */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"

uint8_t *buf_reserve(buf_t *b, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *p;

		while (cap < b->len + n)
			cap *= 2;
		if (cap > UINT32_MAX)
			return NULL;
		p = realloc(b->data, cap);
		if (!p)
			return NULL;
		b->data = p;
		b->cap = (uint32_t)cap;
	}
	return b->data + b->len;
}

int buf_append(buf_t *b, const void *p, size_t n)
{
	uint8_t *dst;

	if (n == 0)
		return 0;
	dst = buf_reserve(b, n);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, p, n);
	b->len += (uint32_t)n;
	return 0;
}

void buf_finish(buf_t *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void submit_send(outq_t *q, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_send(sqe, fd, q->sending.data + q->off, q->sending.len - q->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud);
	q->inflight = true;
}

bool outq_start(outq_t *q, int fd, uint64_t ud)
{
	buf_t tmp;

	if (q->inflight || !q->pending.len)
		return false;
	tmp = q->sending;
	q->sending = q->pending;
	q->pending = tmp;
	q->pending.len = 0;
	q->off = 0;
	/* A buffer that grew huge for one burst is given back rather than kept per connection forever. */
	if (q->pending.cap > 1u << 20) {
		buf_finish(&q->pending);
	}
	submit_send(q, fd, ud);
	return true;
}

bool outq_sent(outq_t *q, int fd, uint64_t ud, int res)
{
	q->inflight = false;
	if (res <= 0)
		return false;
	q->off += (uint32_t)res;
	if (q->off < q->sending.len) {
		submit_send(q, fd, ud);
		return true;
	}
	q->sending.len = 0;
	q->off = 0;
	return false;
}

void outq_finish(outq_t *q)
{
	buf_finish(&q->sending);
	buf_finish(&q->pending);
	q->off = 0;
	q->inflight = false;
}

void *ring_push(ring_t *r, size_t size)
{
	if (r->len == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 8;
		uint8_t *items = malloc((size_t)cap * size);

		if (!items)
			return NULL;
		/* Unwrap into the new array so head starts at 0. */
		for (uint32_t i = 0; i < r->len; i++)
			memcpy(items + (size_t)i * size, ring_at(r, size, i), size);
		free(r->items);
		r->items = items;
		r->head = 0;
		r->cap = cap;
	}
	r->len++;
	return ring_at(r, size, r->len - 1);
}

void ring_remove(ring_t *r, size_t size, uint32_t i)
{
	if (i == 0) {
		ring_pop(r);
		return;
	}
	for (uint32_t k = i; k + 1 < r->len; k++)
		memcpy(ring_at(r, size, k), ring_at(r, size, k + 1), size);
	r->len--;
}

void ring_finish(ring_t *r)
{
	free(r->items);
	memset(r, 0, sizeof(*r));
}

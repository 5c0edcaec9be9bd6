/* buf.c — byte buffers, output queues, rings (see buf.h). */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A buffer that grew past these for one burst is given back rather than kept per connection forever; the
 * output bound is larger so a busy mesh channel does not reallocate every turn. */
#define KEEP_MAX (64u << 10)
#define KEEP_OUT_MAX (256u << 10)

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

const uint8_t *buf_carry_view(buf_t *carry, const uint8_t *data, size_t len, size_t *n)
{
	if (!carry->len) {
		*n = len;
		return data;
	}
	if (buf_append(carry, data, len) < 0)
		return NULL;
	*n = carry->len;
	return carry->data;
}

int buf_carry_keep(buf_t *carry, const uint8_t *view, size_t n, size_t used)
{
	if (view == carry->data && carry->len) {
		memmove(carry->data, carry->data + used, n - used);
		carry->len = (uint32_t)(n - used);
		if (!carry->len && carry->cap > KEEP_MAX)
			buf_finish(carry);
		return 0;
	}
	return used < n ? buf_append(carry, view + used, n - used) : 0;
}

bool outq_next(outq_t *q, const uint8_t **p, size_t *len)
{
	if (q->inflight)
		return false;
	if (q->off >= q->sending.len) {
		buf_t tmp;

		if (!q->pending.len)
			return false;
		tmp = q->sending;
		q->sending = q->pending;
		q->pending = tmp;
		q->pending.len = 0;
		q->off = 0;
		if (q->pending.cap > KEEP_OUT_MAX || q->lean)
			buf_finish(&q->pending);
	}
	*p = q->sending.data + q->off;
	*len = q->sending.len - q->off;
	q->inflight = true;
	return true;
}

bool outq_sent(outq_t *q, int res)
{
	q->inflight = false;
	if (res <= 0)
		return false;
	q->off += (uint32_t)res;
	if (q->off < q->sending.len)
		return true;
	q->sending.len = 0;
	q->off = 0;
	if (q->sending.cap > KEEP_OUT_MAX || q->lean)
		buf_finish(&q->sending);
	return false;
}

void outq_reset(outq_t *q)
{
	q->sending.len = 0;
	q->off = 0;
	q->pending.len = 0;
	if (q->lean) {
		buf_finish(&q->sending);
		buf_finish(&q->pending);
	}
}

void outq_finish(outq_t *q)
{
	buf_finish(&q->sending);
	buf_finish(&q->pending);
	q->off = 0;
	q->inflight = false;
}

int ring_reserve(ring_t *r, size_t size, uint32_t n)
{
	uint32_t cap = r->cap ? r->cap : 8;
	uint8_t *items;

	if (n <= r->cap)
		return 0;
	while (cap < n) {
		if (cap > UINT32_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	items = malloc((size_t)cap * size);
	if (!items)
		return -ENOMEM;
	/* Unwrap into the new array so head starts at 0. */
	for (uint32_t i = 0; i < r->len; i++)
		memcpy(items + (size_t)i * size, ring_at(r, size, i), size);
	free(r->items);
	r->items = items;
	r->head = 0;
	r->cap = cap;
	return 0;
}

void *ring_push(ring_t *r, size_t size)
{
	if (r->len == r->cap && ring_reserve(r, size, r->cap ? r->cap * 2 : 8) < 0)
		return NULL;
	r->len++;
	return ring_at(r, size, r->len - 1);
}

void ring_finish(ring_t *r)
{
	free(r->items);
	memset(r, 0, sizeof(*r));
}

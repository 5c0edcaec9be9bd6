/* batch.c — FCALL arguments for one bucket, built an operation at a time (see batch.h). */
#include "batch.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slot.h"

batch_t *batch_create(uint32_t bucket)
{
	batch_t *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->offs = malloc(32 * sizeof(*b->offs));
	if (!b->offs) {
		free(b);
		return NULL;
	}
	b->offs[0] = 0;
	b->cap_args = 31;
	b->bucket = bucket;
	snprintf(b->key, sizeof(b->key), "rmq:{b%u}", bucket);
	b->slot = slot_of_key(b->key, strlen(b->key));
	return b;
}

void batch_destroy(batch_t *b)
{
	if (!b)
		return;
	buf_finish(&b->args);
	free(b->offs);
	free(b->ops);
	free(b);
}

void batch_arg(batch_t *b, const void *p, size_t len)
{
	if (b->failed_arg)
		return;
	if (b->argc == b->cap_args) {
		uint32_t cap = b->cap_args * 2 + 1;
		uint32_t *o = realloc(b->offs, (cap + 1) * sizeof(*o));

		if (!o) {
			b->failed_arg = true;
			return;
		}
		b->offs = o;
		b->cap_args = cap;
	}
	if (buf_append(&b->args, p, len) < 0) {
		b->failed_arg = true;
		return;
	}
	b->argc++;
	b->offs[b->argc] = b->args.len;
}

uint8_t *batch_space(batch_t *b, size_t len)
{
	uint8_t *p;

	batch_arg(b, "", 0);
	if (b->failed_arg)
		return NULL;
	p = buf_reserve(&b->args, len);
	if (!p) {
		b->failed_arg = true;
		return NULL;
	}
	b->args.len += (uint32_t)len;
	b->offs[b->argc] = b->args.len;
	return p;
}

void batch_num(batch_t *b, uint64_t v)
{
	char num[24];

	batch_arg(b, num, (size_t)snprintf(num, sizeof(num), "%" PRIu64, v));
}

void batch_op_begin(batch_t *b, char op, const char *cid, size_t cid_len)
{
	b->failed_arg = false;
	b->mark_argc = b->argc;
	b->mark_len = b->args.len;
	batch_arg(b, &op, 1);
	batch_arg(b, cid, cid_len);
}

batch_op_t *batch_op_end(batch_t *b)
{
	batch_op_t *o;

	if (!b->failed_arg && b->n_ops == b->cap_ops) {
		uint32_t cap = b->cap_ops ? b->cap_ops * 2 : 8;

		o = realloc(b->ops, cap * sizeof(*o));
		if (o) {
			b->ops = o;
			b->cap_ops = cap;
		} else {
			b->failed_arg = true;
		}
	}
	if (b->failed_arg) {
		/* The script reads arguments by position: a half-written operation would shift every later one. */
		b->argc = b->mark_argc;
		b->args.len = b->mark_len;
		b->failed_arg = false;
		return NULL;
	}
	o = &b->ops[b->n_ops++];
	memset(o, 0, sizeof(*o));
	o->op = *batch_arg_at(b, b->mark_argc, &(uint32_t){ 0 });
	o->arg = b->mark_argc;
	o->n_args = b->argc - b->mark_argc;
	return o;
}

batch_t *batch_split_one(const batch_t *b, uint32_t i)
{
	const batch_op_t *src = &b->ops[i];
	batch_t *n = batch_create(b->bucket);
	batch_op_t *o;

	if (!n)
		return NULL;
	n->failed_arg = false;
	n->mark_argc = 0;
	n->mark_len = 0;
	for (uint32_t a = 0; a < src->n_args; a++) {
		uint32_t len;
		const char *p = batch_arg_at(b, src->arg + a, &len);

		batch_arg(n, p, len);
	}
	o = batch_op_end(n);
	if (!o) {
		batch_destroy(n);
		return NULL;
	}
	o->load_gen = src->load_gen;
	o->w = src->w;
	return n;
}

int batch_reply_check(const batch_t *b, const redisReply *r)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != b->n_ops)
		return -EPROTO;
	for (size_t i = 0; i < r->elements; i++) {
		if (!r->element[i])
			return -EPROTO;
	}
	return 0;
}

/* --- the send queue ---------------------------------------------------------------------------------------- */

int batch_queue_init(batch_queue_t *q, uint32_t n_buckets)
{
	memset(q, 0, sizeof(*q));
	q->tail = &q->head;
	q->inflight = calloc(n_buckets, sizeof(*q->inflight));
	q->seen = calloc(n_buckets, sizeof(*q->seen));
	if (!q->inflight || !q->seen) {
		batch_queue_finish(q);
		return -ENOMEM;
	}
	q->n_buckets = n_buckets;
	return 0;
}

void batch_queue_finish(batch_queue_t *q)
{
	while (q->head) {
		batch_t *b = q->head;

		q->head = b->next;
		batch_destroy(b);
	}
	free(q->inflight);
	free(q->seen);
	memset(q, 0, sizeof(*q));
	q->tail = &q->head;
}

void batch_queue_push(batch_queue_t *q, batch_t *b, uint64_t at_ms)
{
	b->retry_at_ms = at_ms;
	b->next = NULL;
	*q->tail = b;
	q->tail = &b->next;
}

void batch_queue_retry(batch_queue_t *q, batch_t *b, uint64_t at_ms)
{
	b->retry_at_ms = at_ms;
	b->next = q->head;
	q->head = b;
	if (q->tail == &q->head)
		q->tail = &b->next;
}

/* A bucket out of range (never made by the store) is treated as its own order: it is never held. */
static bool ordered(const batch_queue_t *q, const batch_t *b)
{
	return !b->restore && b->bucket < q->n_buckets;
}

void batch_queue_pass(batch_queue_t *q, uint64_t now_ms, int (*send)(batch_t *b))
{
	batch_t **pp = &q->head;

	/* seen[] marks buckets met in this pass; a new pass number clears every mark at once. */
	if (++q->pass == 0) {
		memset(q->seen, 0, q->n_buckets * sizeof(*q->seen));
		q->pass = 1;
	}
	while (*pp) {
		batch_t *b = *pp, *next = b->next;
		bool ord = ordered(q, b), first = true, last = q->tail == &b->next;
		uint32_t bucket = b->bucket;
		int ret = -1;

		if (ord) {
			first = q->seen[bucket] != q->pass;
			q->seen[bucket] = q->pass;
		}
		if (first && b->retry_at_ms <= now_ms && !(ord && q->inflight[bucket]))
			ret = send(b); /* b may be gone when it answers 0 */
		if (ret < 0) {
			pp = &b->next;
			continue;
		}
		*pp = next;
		if (last)
			q->tail = pp;
		if (ret > 0 && ord)
			q->inflight[bucket] = 1;
	}
}

void batch_queue_answered(batch_queue_t *q, const batch_t *b)
{
	if (ordered(q, b))
		q->inflight[b->bucket] = 0;
}

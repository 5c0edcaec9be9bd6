/*
 * batch.h — the arguments of one FCALL ringmq_batch: the store operations of one Redis hash-tag bucket.
 *
 * The script reads the arguments positionally (op letter, client ID, then the op's own arguments), so an
 * operation is added whole or not at all: batch_op_begin() marks a rollback point, argument appends record
 * failure instead of returning it, and batch_op_end() either commits the operation or cuts the arguments
 * back to the mark. A batch can be split into single-operation batches (to find and set aside the one
 * operation Redis refuses). Pure memory; worker thread only.
 *
 * The batches waiting to be sent form a batch_queue_t that keeps each bucket's operations in the order they
 * were made: at most one batch of a bucket is in flight, a later one waits for its answer, and a batch sent
 * again (no answer, refused, split) goes before every later batch of its bucket. Otherwise a retried 'A'
 * (add a copy) could land after the 'D' that deleted the same copy, and an acknowledged message come back.
 */
#ifndef RINGMQ_WORKER_BATCH_H
#define RINGMQ_WORKER_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "waiter.h"

typedef struct batch_op {
	char op;                   /* the script's op letter */
	uint32_t arg;              /* index of its first argument (the letter); the client ID follows */
	uint32_t n_args;
	uint32_t load_gen;         /* 'L': the session's load generation when asked */
	waiter_t w;                /* who waits for it (WAITER_NONE: nobody) */
} batch_op_t;

typedef struct batch {
	struct batch *next;        /* batch_queue_t */
	char key[32];              /* "rmq:{bN}" */
	uint16_t slot;             /* Redis Cluster slot of key */
	uint32_t bucket;
	bool restore;              /* a ringmq_restore call, not ringmq_batch */
	bool adopt;                /* ... taking a dead node's sessions over (store_adopt) */
	bool failed_arg;           /* an argument of the operation being built could not be added */
	uint32_t attempts;         /* error replies so far */
	uint64_t retry_at_ms;
	buf_t args;                /* argument bytes, back to back */
	uint32_t *offs;            /* argc + 1 offsets into args */
	uint32_t argc;
	uint32_t cap_args;
	batch_op_t *ops;
	uint32_t n_ops;
	uint32_t cap_ops;
	uint32_t mark_argc;        /* rollback point of the operation being built */
	uint32_t mark_len;
	char okey[80];             /* the store's key for it among the batches still filling (okey_len 0: none) */
	uint8_t okey_len;
} batch_t;

typedef struct batch_queue {
	batch_t *head;
	batch_t **tail;
	uint8_t *inflight;         /* per bucket: one of its batches is in flight */
	uint32_t *seen;            /* per bucket: the last pass that met one of its batches */
	uint32_t n_buckets;
	uint32_t pass;
} batch_queue_t;

/* A new empty batch for bucket (key "rmq:{b<bucket>}"); NULL on allocation failure. */
batch_t *batch_create(uint32_t bucket);
void batch_destroy(batch_t *b);
/* Start an operation for client cid. */
void batch_op_begin(batch_t *b, char op, const char *cid, size_t cid_len);
void batch_arg(batch_t *b, const void *p, size_t len);
void batch_num(batch_t *b, uint64_t v);
/* Room for one argument of len bytes, filled by the caller (NULL on failure, recorded). */
uint8_t *batch_space(batch_t *b, size_t len);
/* Commit the operation (returns it) or, when an argument failed, cut it away (returns NULL). */
batch_op_t *batch_op_end(batch_t *b);
/* Argument idx. */
static inline const char *batch_arg_at(const batch_t *b, uint32_t idx, uint32_t *len)
{
	*len = b->offs[idx + 1] - b->offs[idx];
	return (const char *)b->args.data + b->offs[idx];
}
/* A batch holding only operation i of b (same bucket); NULL on allocation failure. */
batch_t *batch_split_one(const batch_t *b, uint32_t i);
/* Check an FCALL reply against b: 0 when it is an array with one result per operation, -EPROTO otherwise. */
struct redisReply;
int batch_reply_check(const batch_t *b, const struct redisReply *r);

/* An empty queue for buckets 0..n_buckets-1; -ENOMEM. batch_queue_finish destroys what still waits. */
int batch_queue_init(batch_queue_t *q, uint32_t n_buckets);
void batch_queue_finish(batch_queue_t *q);
/* A new batch, after everything queued; due at at_ms. */
void batch_queue_push(batch_queue_t *q, batch_t *b, uint64_t at_ms);
/* A batch to send again (or the parts of one, pushed last part first), before every later batch of its
 * bucket; due at at_ms. */
void batch_queue_retry(batch_queue_t *q, batch_t *b, uint64_t at_ms);
/*
 * One pass in queue order. For each batch due (retry_at_ms <= now_ms) that is the first of its bucket in the
 * queue while nothing of that bucket is in flight (restore calls: always), send(b) answers 1: sent, b leaves
 * the queue and its bucket is in flight until batch_queue_answered; 0: b left the queue otherwise (the caller
 * destroyed it); < 0: b stays in its place. Batches not due, or held by their bucket, stay.
 */
void batch_queue_pass(batch_queue_t *q, uint64_t now_ms, int (*send)(batch_t *b));
/* The answer (or the loss) of a sent batch came back: its bucket may send its next batch. */
void batch_queue_answered(batch_queue_t *q, const batch_t *b);

#endif

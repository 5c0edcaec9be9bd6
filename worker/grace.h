/*
 * grace.h — message copies whose Redis write is held back for a short grace (redis_write_grace_ms).
 *
 * A copy for an online subscriber is usually acknowledged by that subscriber within a millisecond or two.
 * Writing it to Redis and deleting it again right after costs two writes for nothing. So the store keeps such
 * a copy here first, with the waiter of whoever must not be answered before it is safe (the publisher's
 * PUBACK, the mesh ACK of a forwarded copy): if the subscriber acknowledges it before the grace ends, the copy
 * is forgotten and the waiter told "done" (the subscriber has it: nothing can be lost); otherwise the copy is
 * written as usual and the waiter is told when Redis holds it. Either way the publisher is answered only once
 * the subscriber or Redis holds the copy.
 *
 * This module is only the table: entries in due order (one grace for all, so insertion order) and a hash on
 * (session, sequence number). store.c decides what is held and writes what falls due. Worker thread only.
 */
#ifndef RINGMQ_WORKER_GRACE_H
#define RINGMQ_WORKER_GRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waiter.h"

struct msg;
struct sess;

typedef struct grace_ent {
	struct grace_ent *prev, *next; /* due order */
	struct grace_ent *hnext;   /* hash chain */
	const struct sess *s;
	struct msg *m;             /* one reference */
	uint64_t qseq;
	uint64_t due_ms;
	waiter_t w;                /* the issuer's copy (already counted on the waiter) */
	uint32_t subid;
	uint16_t pid;              /* 0: not sent yet */
	uint8_t state;             /* enum win_state when pid != 0 */
	uint8_t qos;
	uint8_t retain;
} grace_ent_t;

void grace_init(void);
/* Frees every entry left (their message references too, their waiters are not told). */
void grace_finish(void);
size_t grace_count(void);
/* A new entry for (s, qseq), last in due order; the caller fills the rest. NULL on allocation failure. */
grace_ent_t *grace_add(const struct sess *s, uint64_t qseq, uint64_t due_ms);
/* The entry of (s, qseq), or NULL. */
grace_ent_t *grace_find(const struct sess *s, uint64_t qseq);
/* The first entry in due order, or NULL. */
grace_ent_t *grace_first(void);
/* Unlink e (the caller then owns its message reference and waiter) and free it. */
void grace_del(grace_ent_t *e);

#endif

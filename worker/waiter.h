/*
 * waiter.h — who waits before answering: the rule "PUBACK only when every copy is durable" in a type.
 *
 * A waiter names one thing that must not be answered yet: a reply in a connection's ordered reply FIFO
 * (PUBACK, PUBREC, SUBACK...) or a frame received from another worker (its ack goes back only once what it
 * caused is durable). Whoever issues work for it — a store write, a frame to another worker — takes the
 * waiter by pointer, counts itself in `count`, keeps a copy, and later calls waiter_done(copy, ok). The
 * issuer then adds `count` to what its reply/frame waits for. ok = false means the work was refused for good
 * (a quarantined store operation, a message the other worker could not take): the reply is then not a
 * success. Worker thread only.
 */
#ifndef RINGMQ_WORKER_WAITER_H
#define RINGMQ_WORKER_WAITER_H

#include <stdbool.h>
#include <stdint.h>

enum waiter_kind {
	WAITER_NONE = 0,           /* nobody waits (will, retained replay, restore): issuers count nothing */
	WAITER_REPLY,              /* reply `seq` of the connection in socket slot idx, generation gen */
	WAITER_FRAME,              /* in-frame `seq` of peer idx, channel generation gen */
	WAITER_OWNER,              /* a session being let go (owner.c): release idx, generation gen */
	WAITER_KINDS
};

typedef struct waiter {
	uint8_t kind;
	uint32_t idx;
	uint32_t gen;
	uint64_t seq;
	uint32_t count;            /* units of work issued for it (by the issuers, on the caller's copy) */
	bool failed;               /* an issuer failed at once (nothing to wait for, but not a success) */
} waiter_t;

typedef void (*waiter_fn)(const waiter_t *w, bool ok);

/* The module that owns a kind resolves it (reply.c, mesh.c register at init). */
void waiter_register(enum waiter_kind kind, waiter_fn fn);
/* One unit of work issued for w completed. No-op for WAITER_NONE or a NULL w. */
void waiter_done(const waiter_t *w, bool ok);
/* An issuer could not even start its work: the reply must not be a success. NULL-safe. */
static inline void waiter_fail(waiter_t *w)
{
	if (w)
		w->failed = true;
}
/* Count one unit of work on w (NULL-safe) and return the copy the issuer keeps. */
static inline waiter_t waiter_take(waiter_t *w)
{
	waiter_t none = { .kind = WAITER_NONE };

	if (!w || w->kind == WAITER_NONE)
		return none;
	w->count++;
	return *w;
}

#endif

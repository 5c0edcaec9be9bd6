/*
 * store.h — the durable session store, seen from the session logic.
 *
 * Two implementations behind one interface: `memory` (the embedded default: every call is a no-op and
 * store_durable() is false, sessions live only in the worker) and `redis` (every persistent session's
 * metadata, subscriptions, queued and in-flight messages and QoS 2 receive state are written to Redis).
 *
 * Writes are queued per Redis hash-tag bucket and sent once per loop turn: one FCALL per bucket carries the
 * operations of all its clients (batch.h). A write someone must wait for (a message copy before the
 * publisher's PUBACK, a subscription before its SUBACK, a QoS 2 id before PUBREC) takes that someone's
 * waiter (waiter.h): the waiter is resolved when Redis has acknowledged the write, or with ok = false when
 * the operation was refused for good and set aside. A QoS 1 copy for a subscriber online here is first held
 * for redis_write_grace_ms (grace.h): if the subscriber acknowledges it meanwhile (store_msg_del) it is never
 * written and its waiter is resolved at once; otherwise it is written as above.
 *
 * Faults: a batch whose outcome is unknown (connection reset, timeout) is sent again (every operation is
 * idempotent) until Redis answers. A batch Redis refuses is retried a few times, then split into single
 * operations; one that is still refused is quarantined: logged, counted, its waiter failed — the rest of
 * the bucket keeps moving. Worker thread only.
 */
#ifndef RINGMQ_WORKER_STORE_H
#define RINGMQ_WORKER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waiter.h"

struct msg;
struct sess;
struct sub;

/* Set up the configured store; for redis, connect and start restoring this worker's sessions, then call
 * on_ready (at once for the memory store: store_ready() is then true on return). 0 or -errno (logged). */
int store_init(void (*on_ready)(void));
void store_finish(void);
/* True for a store that outlives the worker (redis). */
bool store_durable(void);
/* Sessions are restored (always true for the memory store). */
bool store_ready(void);
/* The restore is under way and may still bring client id's session: a CONNECT reads it first, on its own
 * (store_fetch), and the restore then leaves it alone. */
bool store_restore_pending(const char *id, size_t len);
/* The store can take writes now: always for memory; for redis, every master is connected (the readiness
 * probe: a worker whose Redis is down keeps its clients, but a new one should go to another node). */
bool store_reachable(void);
/* Too many writes in flight: stop reading clients until it drains. */
bool store_busy(void);
/* Writes in flight or queued (a graceful stop waits for them). */
size_t store_pending(void);

void store_sess_put(const struct sess *s);
void store_sess_offline(const struct sess *s);
void store_sess_del(const struct sess *s);
void store_sub_put(const struct sess *s, const struct sub *sub, waiter_t *w);
void store_sub_del(const struct sess *s, const char *filter, size_t len);
void store_msg_add(const struct sess *s, uint64_t qseq, const struct msg *m, uint8_t qos, uint8_t retain,
	uint32_t subid, waiter_t *w);
void store_msg_pid(const struct sess *s, uint64_t qseq, uint16_t pid, uint8_t state);
void store_msg_del(const struct sess *s, uint64_t qseq);
/* Copies of s held back for their grace (redis_write_grace_ms, grace.h) are written now: s goes offline, ends
 * or leaves this node, and what its subscriber has not acknowledged must be durable first. Call it before
 * anything is written or deleted for s that depends on them (an offline mark, a delete, a load). */
void store_sess_flush(const struct sess *s);
void store_rx_add(const struct sess *s, uint16_t pid, waiter_t *w);
void store_rx_del(const struct sess *s, uint16_t pid);
/* Load s's queue, window and QoS 2 state; calls sess_loaded() when done. */
void store_sess_load(struct sess *s);

/*
 * Ownership of sessions across the nodes of a cluster (owner.h). Answers come through the ops set with
 * store_set_owner_ops: claimed(prev) — the previous owner node, -1 when no session exists, -2 when the claim
 * failed; fetched(s) — the session read from Redis and restored into memory (NULL with ok: none exists).
 */
typedef struct store_owner_ops {
	void (*claimed)(const char *id, size_t len, int64_t prev);
	void (*fetched)(const char *id, size_t len, struct sess *s, bool ok);
} store_owner_ops_t;
void store_set_owner_ops(const store_owner_ops_t *ops);
/* Make this node the owner of client id's session (if one exists). */
void store_claim(const char *id, size_t len);
/* Read client id's session and subscriptions into memory. */
void store_fetch(const char *id, size_t len);
/* Take node `from`'s sessions of this worker's buckets over (it died): they are restored into memory with
 * their subscriptions and made this node's; done(from) follows. 0, or -EBUSY while an adoption runs. */
int store_adopt(int from, void (*done)(int from));
/* w is resolved when every operation queued so far for id's bucket is done. */
void store_barrier(const char *id, size_t len, waiter_t *w);

#endif

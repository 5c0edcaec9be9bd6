/*
 * store.h — the durable session store, seen from the session logic.
 *
 * Two implementations behind one interface: `memory` (the embedded default: every call is a no-op and
 * store_durable() is false, sessions live only in the worker) and `redis` (every persistent session's
 * metadata, subscriptions, queued and in-flight messages and QoS 2 receive state are written to Redis).
 *
 * Writes are queued per Redis hash-tag bucket and sent once per loop turn (store_flush): one FCALL per
 * bucket carries the operations of all its clients. Writes that someone must wait for (a message copy before
 * the publisher's PUBACK, a subscription before its SUBACK, a QoS 2 id before PUBREC) count against the
 * current waiter (W->wait); when Redis has acknowledged them, the waiter is resolved (the reply is written, or
 * the peer's frame is acknowledged). Failed batches are retried: every operation is idempotent.
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_STORE_H
#define RINGMQ_WORKER_STORE_H

#include "wk-t.h"

/* A message as loaded back from the store. */
typedef struct store_entry {
	uint64_t qseq;
	msg_t *m;                  /* one reference owned by the receiver */
	uint8_t qos;
	uint8_t retain;
	uint32_t subid;
	uint16_t pid;              /* 0: not sent yet */
	uint8_t state;             /* enum ifl_state when pid != 0 */
} store_entry_t;

/* Set up the configured store; for redis, connect and start restoring this worker's sessions (W->store_ready
 * becomes true when done). 0 or -errno (logged). */
int store_init(void);
void store_finish(void);
/* True for a store that outlives the worker (redis). */
bool store_durable(void);
/* Too many writes in flight: stop reading clients until it drains. */
bool store_busy(void);
/* Send the writes queued during this loop turn. */
void store_flush(void);
/* Writes in flight or queued (for a graceful stop). */
size_t store_pending(void);

void store_sess_put(const sess_t *s);
void store_sess_offline(const sess_t *s);
void store_sess_del(const sess_t *s);
void store_sub_put(const sess_t *s, const sub_t *sub);
void store_sub_del(const sess_t *s, const char *filter, size_t len);
void store_msg_add(const sess_t *s, uint64_t qseq, const msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid);
void store_msg_pid(const sess_t *s, uint64_t qseq, uint16_t pid, uint8_t state);
void store_msg_del(const sess_t *s, uint64_t qseq);
void store_rx_add(const sess_t *s, uint16_t pid);
void store_rx_del(const sess_t *s, uint16_t pid);
/* Load s's queue, window and QoS 2 state; calls sess_loaded() when done. */
void store_sess_load(sess_t *s);

/* Resolve one store write counted against waiter w (also used by mesh for peer frames). */
void store_waiter_done(const waiter_t *w);

#endif

/*
 * reply.h — a connection's ordered reply FIFO.
 *
 * MQTT wants PUBACKs in the order the PUBLISHes came [MQTT-4.6.0-2], and ringmq may answer a PUBLISH only
 * once every copy it made is durable (stored in Redis, or taken by the worker that owns the subscriber).
 * So every reply that may have to wait (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) takes a slot here, in
 * arrival order, with a count of what it waits for; the head is written as soon as its count is zero.
 * A reply whose work failed for good is not sent as a success: MQTT 5 gets reason 0x80 (unspecified error),
 * MQTT 3.1.1 has no negative PUBACK, so the connection is closed unanswered and the client sends again.
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_REPLY_H
#define RINGMQ_WORKER_REPLY_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "waiter.h"

struct conn;

typedef struct reply {
	uint8_t type;              /* MQTT packet type of the reply */
	uint8_t reason;
	uint16_t pid;
	bool failed;               /* some work it waited for was refused */
	uint32_t rx_us;            /* PUBACK/PUBREC: hist_stamp() of its PUBLISH (0: not measured) */
	uint32_t waiting;          /* units of work still outstanding */
	uint8_t *reasons;          /* SUBACK/UNSUBACK: one reason code per filter (heap), else NULL */
	uint32_t n_reasons;
	uint8_t *retained;         /* SUBACK: filters (u16 length + bytes) whose retained messages follow it */
	uint32_t retained_len;
} reply_t;

typedef struct replyq {
	ring_t items;              /* reply_t */
	uint64_t head_seq;         /* sequence number of the head */
} replyq_t;

/* Register the WAITER_REPLY kind. Once per worker. */
void reply_module_init(void);
/* Append a reply; returns its sequence number, or -1 on allocation failure. */
int64_t reply_push(struct conn *c, uint8_t type, uint16_t pid, uint8_t reason);
/* The waiter naming reply seq of c (give it to whatever the reply must wait for). */
waiter_t reply_waiter(const struct conn *c, uint64_t seq);
/* The reply waits for n more units of work (the count gathered on its waiter). */
void reply_wait(struct conn *c, uint64_t seq, uint32_t n);
/* The reply with sequence seq, or NULL if it was written already. */
reply_t *reply_get(struct conn *c, uint64_t seq);
/* Write every reply at the head whose work is complete. */
void reply_flush(struct conn *c);
/* Replies not written yet. */
static inline uint32_t reply_pending(const replyq_t *q) { return q->items.len; }
void reply_finish(replyq_t *q);

#endif

/* reply.c — the ordered reply FIFO of a connection (see reply.h). */
#include "reply.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "conn_send.h"
#include "hist.h"
#include "route.h"
#include "worker.h"

static void on_done(const waiter_t *w, bool ok)
{
	conn_t *c = conn_get(w->idx, w->gen);
	reply_t *r;

	if (!c || !(r = reply_get(c, w->seq)))
		return;
	if (r->waiting)
		r->waiting--;
	if (!ok)
		r->failed = true;
	reply_flush(c);
}

void reply_module_init(void)
{
	waiter_register(WAITER_REPLY, on_done);
}

int64_t reply_push(conn_t *c, uint8_t type, uint16_t pid, uint8_t reason)
{
	reply_t *r = ring_push(&c->replies.items, sizeof(reply_t));

	if (!r)
		return -1;
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->pid = pid;
	r->reason = reason;
	return (int64_t)(c->replies.head_seq + c->replies.items.len - 1);
}

waiter_t reply_waiter(const conn_t *c, uint64_t seq)
{
	return (waiter_t){ .kind = WAITER_REPLY, .idx = c->sk.idx, .gen = c->sk.gen, .seq = seq };
}

reply_t *reply_get(conn_t *c, uint64_t seq)
{
	replyq_t *q = &c->replies;

	if (seq < q->head_seq || seq - q->head_seq >= q->items.len)
		return NULL;
	return ring_at(&q->items, sizeof(reply_t), (uint32_t)(seq - q->head_seq));
}

void reply_wait(conn_t *c, uint64_t seq, uint32_t n)
{
	reply_t *r = reply_get(c, seq);

	if (r)
		r->waiting += n;
}

static void free_parts(reply_t *r)
{
	free(r->reasons);
	free(r->retained);
	r->reasons = NULL;
	r->retained = NULL;
}

/* Write one complete reply. Returns false when the connection was closed instead. */
static bool write_one(conn_t *c, reply_t *r)
{
	if (r->failed) {
		if (c->version != MQTT_V5 || r->type == MQTT_PUBCOMP) {
			/* 3.1.1 cannot say "not accepted": close unanswered so the client sends it again. */
			conn_fail(c, MQTT_E_CLOSE);
			return false;
		}
		if (r->reasons) {
			for (uint32_t i = 0; i < r->n_reasons; i++)
				r->reasons[i] = MQTT_RC_UNSPECIFIED;
		} else {
			r->reason = MQTT_RC_UNSPECIFIED;
		}
	}
	if (r->reasons) {
		if (conn_send_suback(c, r->type, r->pid, r->reasons, r->n_reasons) < 0)
			return false;
	} else if (conn_send_ack(c, r->type, r->pid, r->reason, NULL) < 0) {
		return false;
	}
	/* Retained messages follow their SUBACK [MQTT-3.3.1-9]. */
	for (uint32_t off = 0; !r->failed && off + 2 <= r->retained_len;) {
		uint16_t len;

		memcpy(&len, r->retained + off, 2);
		route_send_retained(c->sess, (const char *)r->retained + off + 2, len);
		off += 2u + len;
	}
	return true;
}

void reply_flush(conn_t *c)
{
	replyq_t *q = &c->replies;

	while (q->items.len) {
		reply_t *r = ring_at(&q->items, sizeof(reply_t), 0);
		reply_t done;

		if (r->waiting)
			break;
		done = *r;
		ring_pop(&q->items);
		q->head_seq++;
		if (done.type == MQTT_PUBACK && c->inflight_in)
			c->inflight_in--;
		if (c->state == CONN_ACTIVE && !c->aborted && write_one(c, &done) && done.rx_us && !done.failed)
			hist_since(HIST_PUBACK, done.rx_us);
		free_parts(&done);
	}
	/* Input held because too many replies were pending may flow again. */
	if (c->held)
		conn_release(c);
}

void reply_finish(replyq_t *q)
{
	while (q->items.len) {
		free_parts(ring_at(&q->items, sizeof(reply_t), 0));
		ring_pop(&q->items);
	}
	ring_finish(&q->items);
}

/* sess.c — MQTT sessions owned by this worker (see sess.h). */
#include "sess.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "conn_send.h"
#include "hist.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "route.h"
#include "store.h"
#include "strmap.h"
#include "worker.h"

static struct {
	strmap_t map;              /* client id -> sess_t* */
	uint64_t last_sweep_ms;
	/* Kept as they change, so that `ringmqctl stats` does not walk a million sessions per call. */
	uint64_t queued;           /* messages in every session's queue */
	size_t online;             /* sessions with a connection */
	uint32_t largest;          /* longest queue: raised as queues grow, looked up again at most every LARGEST_MS */
	uint64_t largest_at_ms;
} S;

#define LARGEST_MS 10000

static void tick(void);
static void drop_memory(sess_t *s);

void sess_module_init(void)
{
	memset(&S, 0, sizeof(S));
	strmap_init(&S.map);
	loop_on_tick(tick);
}

void sess_module_finish(void)
{
	strmap_entry_t *e;
	size_t pos = 0;

	/* Sessions end with the process here; the durable store keeps its copy. Freed in one pass and the map
	 * after: deleting from the map restarts its iteration, quadratic with a million restored sessions (the
	 * worker outlived the shutdown timeout). */
	while ((e = strmap_next(&S.map, &pos))) {
		sess_t *s = e->value;

		route_unsubscribe_all(s);
		drop_memory(s);
		msg_unref(s->will);
		free(s); /* the id lives in the same allocation */
	}
	strmap_finish(&S.map);
}

sess_t *sess_find(const uint8_t *id, size_t len)
{
	return strmap_get(&S.map, id, len);
}

sess_t *sess_next(size_t *pos)
{
	strmap_entry_t *e = strmap_next(&S.map, pos);

	return e ? e->value : NULL;
}

size_t sess_count(void)
{
	return S.map.count;
}

sess_t *sess_create(const uint8_t *id, size_t len)
{
	sess_t *s = calloc(1, sizeof(*s) + len + 1);

	if (!s)
		return NULL;
	s->id = s->idbuf;
	memcpy(s->id, id, len);
	s->id[len] = '\0';
	s->id_len = (uint16_t)len;
	s->next_qseq = 1;
	if (strmap_put(&S.map, id, len, s, NULL) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Drop the in-memory queue, window and QoS 2 ids (the store keeps them, or the session ends). */
static void drop_memory(sess_t *s)
{
	win_ent_t *f;
	uint32_t i = 0;

	S.queued -= s->queue.len;
	while (s->queue.len) {
		msg_unref(((qent_t *)ring_at(&s->queue, sizeof(qent_t), 0))->m);
		ring_pop(&s->queue);
	}
	ring_finish(&s->queue);
	while ((f = win_next(&s->win, &i)))
		msg_unref(f->m);
	win_finish(&s->win);
	s->n_unsent = 0;
	free(s->rx_bits);
	s->rx_bits = NULL;
	s->n_rx = 0;
}

void sess_destroy(sess_t *s)
{
	store_sess_flush(s);
	store_sess_del(s);
	route_unsubscribe_all(s);
	drop_memory(s);
	msg_unref(s->will);
	strmap_del(&S.map, s->id, s->id_len);
	free(s);
}

void sess_forget(sess_t *s)
{
	store_sess_flush(s);
	route_unsubscribe_all(s);
	drop_memory(s);
	msg_unref(s->will);
	strmap_del(&S.map, s->id, s->id_len);
	free(s);
}

void sess_set_expiry(sess_t *s, uint32_t expiry_s)
{
	s->expiry_s = expiry_s;
	s->expire_at_ms = 0;
}

void sess_set_will(sess_t *s, msg_t *will, uint32_t delay_s)
{
	msg_unref(s->will);
	s->will = will;
	s->will_delay_s = delay_s;
	s->will_at_ms = 0;
}

static bool online(const sess_t *s)
{
	return s->conn && conn_usable(s->conn) && !s->loading;
}

static uint32_t window(const sess_t *s)
{
	uint32_t w = W->cfg->max_inflight;

	if (s->conn && s->conn->recv_max_out < w)
		w = s->conn->recv_max_out;
	return w;
}

/* Remove an acknowledged (or discarded) entry; the caller released its message. */
static void ent_del(sess_t *s, win_ent_t *f)
{
	if (f->unsent)
		s->n_unsent--;
	win_del(&s->win, f);
}

enum { WRITTEN, DROPPED, NOT_WRITTEN };

/* Write a window entry on the current connection (DUP when it was sent on an earlier one). NOT_WRITTEN when
 * the connection cannot take it (closing): it stays unsent for the next connection. DROPPED: too large for
 * this client and discarded, as [MQTT-3.1.2-25] says (f is gone). */
static int write_ent(sess_t *s, win_ent_t *f, bool dup)
{
	int err;

	if (f->state == WIN_PUBCOMP) {
		err = conn_send_ack(s->conn, MQTT_PUBREL, f->pid, 0, NULL);
	} else {
		err = msg_send(s->conn, f->m, f->qos, f->retain, f->pid, f->subid, dup);
		if (err == -EMSGSIZE) {
			W->st.dropped_too_large++;
			store_msg_del(s, f->qseq);
			msg_unref(f->m);
			ent_del(s, f);
			return DROPPED;
		}
	}
	if (err < 0)
		return NOT_WRITTEN;
	if (f->unsent) {
		f->unsent = 0;
		s->n_unsent--;
	}
	return WRITTEN;
}

/* Enter one QoS>0 message in the window and send it. The caller checked the window has room and the
 * connection can take it. Returns false when it could not be entered (the message stays where it was). */
static bool send_ifl(sess_t *s, msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid, uint64_t qseq)
{
	win_ent_t e = { .m = m, .qseq = qseq, .subid = subid, .qos = qos, .retain = retain,
		.state = qos == 1 ? WIN_PUBACK : WIN_PUBREC, .unsent = 1 };
	win_ent_t *f;

	e.pid = win_next_pid(&s->win);
	f = e.pid ? win_add(&s->win, &e) : NULL;
	if (!f) {
		log_error(ENOMEM, "session '%s': cannot enter message %llu in the window: disconnecting", s->id,
			(unsigned long long)qseq);
		conn_abort(s->conn, MQTT_E_NOMEM);
		return false;
	}
	msg_ref(m);
	s->n_unsent++;
	/* The id goes to the store so a restarted broker resends with the same id (QoS 2 exactly once). If the
	 * write fails the connection is going: the entry stays unsent in the window for the next one. */
	store_msg_pid(s, qseq, e.pid, e.state);
	write_ent(s, f, false);
	return true;
}

/* The queue bound is hit: drop the oldest queued message, here and in the store, and count it (ringmqctl stats
 * and client <id>). */
static void drop_oldest(sess_t *s)
{
	qent_t *q = ring_at(&s->queue, sizeof(qent_t), 0);

	store_msg_del(s, q->qseq);
	msg_unref(q->m);
	ring_pop(&s->queue);
	S.queued--;
	s->dropped++;
	W->st.dropped_queue_full++;
	if (s->dropped == 1 || s->dropped % 1000 == 0)
		log_warn(0, "session '%s': offline queue full (%u), %llu oldest messages dropped so far", s->id,
			W->cfg->max_queued, (unsigned long long)s->dropped);
}

void sess_deliver(sess_t *s, msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid, waiter_t *w)
{
	uint64_t qseq;
	qent_t *q;

	if (msg_expired(m, loop_now())) {
		s->expired++;
		W->st.dropped_expired++;
		return;
	}
	if (qos == 0) {
		/* QoS 0 is not queued for offline sessions (as most brokers do by default). */
		if (online(s))
			msg_send(s->conn, m, 0, retain, 0, subid, false);
		return;
	}
	qseq = s->next_qseq++;
	/* A durable copy first: the publisher's reply waits for it (w), delivery does not. */
	store_msg_add(s, qseq, m, qos, retain, subid, w);
	if (s->cold)
		return; /* offline with a durable store: the store holds the queue */
	if (online(s) && !s->queue.len && !s->n_unsent && win_count(&s->win) < window(s) &&
	    conn_can_take(s->conn) && send_ifl(s, m, qos, retain, subid, qseq))
		return;
	if (s->queue.len >= W->cfg->max_queued)
		drop_oldest(s);
	q = ring_push(&s->queue, sizeof(qent_t));
	if (!q) {
		/* Not taken: the publisher must not be told it was (it sends again). */
		W->st.closed_nomem++;
		log_error(ENOMEM, "session '%s': message %llu could not be queued", s->id, (unsigned long long)qseq);
		waiter_fail(w);
		if (s->conn)
			conn_abort(s->conn, MQTT_E_NOMEM);
		return;
	}
	*q = (qent_t){ .m = msg_ref(m), .qseq = qseq, .qos = qos, .retain = retain, .subid = subid };
	S.queued++;
	if (s->queue.len > S.largest)
		S.largest = s->queue.len;
}

void sess_pump(sess_t *s)
{
	/* First what the window holds but this connection has not seen (after a reconnect), in order. */
	if (s->n_unsent) {
		uint32_t i = 0;
		win_ent_t *f;

		while (online(s) && s->n_unsent && conn_can_take(s->conn) && (f = win_next(&s->win, &i))) {
			int r = f->unsent ? write_ent(s, f, true) : WRITTEN;

			if (r == NOT_WRITTEN)
				return;
			if (r == DROPPED)
				i = 0; /* removing moved the entries: walk again from the start */
		}
		if (s->n_unsent)
			return;
	}
	while (online(s) && s->queue.len && win_count(&s->win) < window(s) && conn_can_take(s->conn)) {
		qent_t q = *(qent_t *)ring_at(&s->queue, sizeof(qent_t), 0);

		if (msg_expired(q.m, loop_now())) {
			s->expired++;
			W->st.dropped_expired++;
			store_msg_del(s, q.qseq);
		} else if (!send_ifl(s, q.m, q.qos, q.retain, q.subid, q.qseq)) {
			break; /* the connection is going: the message stays queued */
		}
		ring_pop(&s->queue);
		S.queued--;
		msg_unref(q.m);
	}
	ring_trim(&s->queue);
}

/* A new connection: everything in the window is resent on it ([MQTT-4.4.0-1], in the original order). */
static void mark_unsent(sess_t *s)
{
	uint32_t i = 0;
	win_ent_t *f;

	while ((f = win_next(&s->win, &i))) {
		if (!f->unsent) {
			f->unsent = 1;
			s->n_unsent++;
		}
	}
}

void sess_attach(conn_t *c, sess_t *s, bool resume)
{
	c->sess = s;
	s->conn = c;
	S.online++;
	s->expire_at_ms = 0;
	s->will_at_ms = 0;
	if (s->expiry_s > 0 && store_durable()) {
		s->stored = true;
		store_sess_put(s);
	}
	if (s->cold) {
		/* The queue and window are in the store: load them; deliveries meanwhile queue behind, and the
		 * client's own packets are held (conn.c) until the load is done. */
		s->cold = false;
		s->loading = true;
		s->load_gen++;
		route_sess_online(s, true);
		store_sess_load(s);
		return;
	}
	if (resume)
		mark_unsent(s);
	route_sess_online(s, true);
	sess_pump(s);
}

void sess_loaded(sess_t *s, bool ok, sess_entry_t *e, size_t n, const uint16_t *rx, size_t nrx)
{
	ring_t q = s->queue, nq = { 0 };
	conn_t *c = s->conn;

	s->loading = false;
	/* All the room first: a stored message that did not fit would stay in Redis, unseen by this session. */
	if (ok && ring_reserve(&nq, sizeof(qent_t), (uint32_t)(n + q.len)) < 0) {
		log_error(ENOMEM, "session '%s': no room for its %zu stored messages", s->id, n + q.len);
		ok = false;
	}
	if (!ok) {
		/* Nothing can be served without the stored state: the client retries, the session stays cold. */
		for (size_t i = 0; i < n; i++)
			msg_unref(e[i].m);
		if (c) {
			log_conn(LOG_WARN, c->id, 0, "session '%s' could not be loaded from the store: disconnecting",
				s->id);
			conn_abort(c, MQTT_E_UNAVAILABLE);
		}
		return;
	}
	/* What arrived while loading was written to the store after the load ran: it goes behind. */
	s->queue = nq;
	for (size_t i = 0; i < n; i++) {
		win_ent_t we = { .m = e[i].m, .qseq = e[i].qseq, .subid = e[i].subid, .pid = e[i].pid,
			.qos = e[i].qos, .state = e[i].state, .retain = e[i].retain };
		qent_t *x;

		if (e[i].qseq >= s->next_qseq)
			s->next_qseq = e[i].qseq + 1;
		if (we.pid && we.state >= WIN_PUBACK && we.state <= WIN_PUBCOMP) {
			if (we.state == WIN_PUBCOMP) {
				msg_unref(we.m);
				we.m = NULL;
			}
			if (win_add(&s->win, &we))
				continue;
			if (!we.m)
				continue; /* a duplicated id in the store: a PUBREL-state entry has nothing to resend */
			/* A duplicated id in the store: send this one again under a new id. */
		}
		x = ring_push(&s->queue, sizeof(qent_t)); /* never NULL: the room was reserved */
		*x = (qent_t){ .m = e[i].m, .qseq = e[i].qseq, .qos = e[i].qos, .retain = e[i].retain,
			.subid = e[i].subid };
	}
	for (uint32_t i = 0; i < q.len; i++)
		*(qent_t *)ring_push(&s->queue, sizeof(qent_t)) = *(qent_t *)ring_at(&q, sizeof(qent_t), i);
	ring_finish(&q);
	S.queued += s->queue.len;
	S.queued -= q.len;
	/* What was stored and what arrived during the load are each within the bound, not together. */
	while (s->queue.len > W->cfg->max_queued)
		drop_oldest(s);
	if (s->queue.len > S.largest)
		S.largest = s->queue.len;
	for (size_t i = 0; i < nrx; i++) {
		if (rx[i] && !sess_rx_has(s, rx[i]))
			sess_rx_add(s, rx[i], NULL);
	}
	if (c && conn_usable(c)) {
		mark_unsent(s);
		sess_pump(s);
		conn_release(c);
	}
}

static void publish_will(sess_t *s)
{
	msg_t *w = s->will;

	s->will = NULL;
	s->will_at_ms = 0;
	if (!w)
		return;
	route_publish(w, NULL);
	msg_unref(w);
}

void sess_detach(conn_t *c)
{
	sess_t *s = c->sess;

	c->sess = NULL;
	s->conn = NULL;
	S.online--;
	/* Copies held for their grace were not acknowledged on this connection: durable before anything else. */
	store_sess_flush(s);
	route_sess_online(s, false);
	if (c->graceful) {
		msg_unref(s->will);
		s->will = NULL;
	} else if (s->will) {
		uint32_t delay = s->will_delay_s < s->expiry_s ? s->will_delay_s : s->expiry_s;

		if (delay == 0)
			publish_will(s);
		else
			s->will_at_ms = loop_now() + (uint64_t)delay * 1000;
	}
	if (s->expiry_s == 0) {
		sess_destroy(s);
		return;
	}
	s->expire_at_ms = s->expiry_s == UINT32_MAX ? 0 : loop_now() + (uint64_t)s->expiry_s * 1000;
	if (store_durable()) {
		/* The store holds everything of an offline session: keep only subscriptions in memory. */
		store_sess_offline(s);
		drop_memory(s);
		s->cold = true;
		s->loading = false;
	}
}

/* The in-flight entry for pid, or why there is none usable: NULL with *err 0 (unknown id) or a protocol
 * error (the id waits for another kind of acknowledgement). */
static win_ent_t *ack_entry(sess_t *s, uint16_t pid, uint8_t want, uint8_t also, int *err)
{
	win_ent_t *f = win_find(&s->win, pid);

	*err = SESS_ACK_UNKNOWN;
	if (!f)
		return NULL;
	if (f->state != want && f->state != also) {
		*err = MQTT_E_PROTOCOL;
		return NULL;
	}
	*err = 0;
	return f;
}

int sess_on_puback(sess_t *s, uint16_t pid)
{
	int err;
	win_ent_t *f = ack_entry(s, pid, WIN_PUBACK, WIN_PUBACK, &err);

	if (!f)
		return err;
	if (!f->retain)
		hist_since(HIST_E2E, f->m->rx_us);
	store_msg_del(s, f->qseq);
	msg_unref(f->m);
	ent_del(s, f);
	sess_pump(s);
	return 0;
}

int sess_on_pubrec(sess_t *s, uint16_t pid, uint8_t reason)
{
	int err;
	win_ent_t *f = ack_entry(s, pid, WIN_PUBREC, WIN_PUBCOMP, &err);

	if (!f)
		return err;
	if (f->state == WIN_PUBCOMP)
		return 0; /* a repeated PUBREC: PUBREL again */
	if (!f->retain && reason < 0x80)
		hist_since(HIST_E2E, f->m->rx_us);
	msg_unref(f->m);
	f->m = NULL;
	if (reason >= 0x80) {
		/* The receiver refused it: the flow ends here [MQTT-4.3.3]. */
		store_msg_del(s, f->qseq);
		ent_del(s, f);
		sess_pump(s);
	} else {
		f->state = WIN_PUBCOMP;
		store_msg_pid(s, f->qseq, f->pid, WIN_PUBCOMP);
	}
	return 0;
}

int sess_on_pubcomp(sess_t *s, uint16_t pid)
{
	int err;
	win_ent_t *f = ack_entry(s, pid, WIN_PUBCOMP, WIN_PUBCOMP, &err);

	if (!f)
		return err;
	store_msg_del(s, f->qseq);
	ent_del(s, f);
	sess_pump(s);
	return 0;
}

bool sess_rx_has(const sess_t *s, uint16_t pid)
{
	return s->rx_bits && (s->rx_bits[pid >> 6] >> (pid & 63) & 1);
}

int sess_rx_add(sess_t *s, uint16_t pid, waiter_t *w)
{
	if (!s->rx_bits && !(s->rx_bits = calloc(65536 / 64, sizeof(uint64_t))))
		return -ENOMEM;
	if (sess_rx_has(s, pid))
		return 0;
	if (w)
		store_rx_add(s, pid, w);
	s->rx_bits[pid >> 6] |= UINT64_C(1) << (pid & 63);
	s->n_rx++;
	return 0;
}

bool sess_rx_del(sess_t *s, uint16_t pid)
{
	if (!sess_rx_has(s, pid))
		return false;
	store_rx_del(s, pid);
	s->rx_bits[pid >> 6] &= ~(UINT64_C(1) << (pid & 63));
	if (--s->n_rx == 0) {
		/* 8 KiB per session only while a QoS 2 flow is open. */
		free(s->rx_bits);
		s->rx_bits = NULL;
	}
	return true;
}

static void tick(void)
{
	sess_t *expired[256];
	size_t n = 0, pos = 0;
	sess_t *s;
	uint64_t now = loop_now();

	/* Wills and session expiry have 1 s resolution: scan once a second, not every tick. */
	if (now - S.last_sweep_ms < 1000)
		return;
	S.last_sweep_ms = now;
	while ((s = sess_next(&pos))) {
		if (s->conn)
			continue;
		if (s->will_at_ms && now >= s->will_at_ms)
			publish_will(s);
		if (s->expire_at_ms && now >= s->expire_at_ms && n < 256)
			expired[n++] = s;
	}
	for (size_t i = 0; i < n; i++) {
		log_debug("session '%s' expired", expired[i]->id);
		W->st.sessions_expired++;
		publish_will(expired[i]);
		sess_destroy(expired[i]);
	}
}

uint64_t sess_queued_total(uint32_t *largest)
{
	size_t pos = 0;
	sess_t *s;

	/* A queue that grows past the longest raises it at once; finding a shorter longest one after queues
	 * shrank needs a walk: done at most every LARGEST_MS, however often stats are asked. */
	if (!S.largest_at_ms || loop_now() - S.largest_at_ms >= LARGEST_MS) {
		S.largest_at_ms = loop_now();
		S.largest = 0;
		while ((s = sess_next(&pos))) {
			if (s->queue.len > S.largest)
				S.largest = s->queue.len;
		}
	}
	*largest = S.largest;
	return S.queued;
}

size_t sess_online_count(void)
{
	return S.online;
}

sess_t *sess_restore(const char *id, size_t len, uint8_t version, uint32_t expiry_s, uint64_t next_qseq,
	uint64_t expire_unix_ms)
{
	struct timespec ts;
	uint64_t now_unix;
	sess_t *s;

	if (sess_find((const uint8_t *)id, len))
		return NULL;
	s = sess_create((const uint8_t *)id, len);
	if (!s) {
		log_error(ENOMEM, "session '%.*s' not restored", (int)len, id);
		return NULL;
	}
	s->version = version;
	s->expiry_s = expiry_s;
	s->next_qseq = next_qseq ? next_qseq : 1;
	s->cold = true;
	s->stored = true;
	clock_gettime(CLOCK_REALTIME, &ts);
	now_unix = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (expire_unix_ms)
		s->expire_at_ms = loop_now() + (expire_unix_ms > now_unix ? expire_unix_ms - now_unix : 0);
	else if (s->expiry_s != UINT32_MAX)
		s->expire_at_ms = loop_now() + (uint64_t)s->expiry_s * 1000; /* was online when the broker stopped */
	return s;
}

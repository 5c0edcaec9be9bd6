/* sess.c — in-memory MQTT sessions (see sess.h). */
#include "sess.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "route.h"
#include "slot.h"
#include "store.h"

sess_t *sess_find(const uint8_t *id, size_t len)
{
	return strmap_get(&W->sessions, id, len);
}

sess_t *sess_create(const uint8_t *id, size_t len)
{
	sess_t *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = malloc(len + 1);
	if (!s->id)
		goto err_s;
	memcpy(s->id, id, len);
	s->id[len] = '\0';
	s->id_len = (uint16_t)len;
	if (strmap_put(&W->sessions, id, len, s, NULL) < 0)
		goto err_id;
	return s;

err_id:
	free(s->id);
err_s:
	free(s);
	return NULL;
}

void sess_destroy(sess_t *s)
{
	store_sess_del(s);
	route_unsubscribe_all(s);
	while (s->queue.len) {
		qent_t *q = ring_at(&s->queue, sizeof(qent_t), 0);

		msg_unref(q->m);
		ring_pop(&s->queue);
	}
	while (s->ifl.len) {
		ifl_t *f = ring_at(&s->ifl, sizeof(ifl_t), 0);

		msg_unref(f->m);
		ring_pop(&s->ifl);
	}
	ring_finish(&s->queue);
	ring_finish(&s->ifl);
	msg_unref(s->will);
	free(s->rx_pids);
	strmap_del(&W->sessions, s->id, s->id_len);
	free(s->id);
	free(s);
}

static uint32_t window(const sess_t *s)
{
	uint32_t w = W->cfg->max_inflight;

	if (s->conn && s->conn->recv_max_out < w)
		w = s->conn->recv_max_out;
	return w;
}

static bool pid_in_use(const sess_t *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->ifl.len; i++) {
		const ifl_t *f = ring_at(&s->ifl, sizeof(ifl_t), i);

		if (f->pid == pid)
			return true;
	}
	return false;
}

/* Next free packet id. The window is at most 65535 entries, so a free id always exists; ids still in flight
 * (also from before a reconnect) are skipped, never reused. */
static uint16_t next_pid(sess_t *s)
{
	do {
		s->next_pid = s->next_pid == 65535 ? 1 : s->next_pid + 1;
	} while (pid_in_use(s, s->next_pid));
	return s->next_pid;
}

/* Send one QoS>0 message into the window. The caller checked that the window has room. */
static void send_ifl(sess_t *s, msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid, uint64_t qseq)
{
	ifl_t *f = ring_push(&s->ifl, sizeof(ifl_t));
	int err;

	if (!f) {
		log_error(ENOMEM, "session '%s': message dropped", s->id);
		return;
	}
	f->qseq = qseq;
	f->pid = next_pid(s);
	/* The id goes to the store so a restarted broker resends with the same id (QoS 2 exactly once). */
	store_msg_pid(s, qseq, f->pid, qos == 1 ? IFL_PUBACK : IFL_PUBREC);
	f->m = msg_ref(m);
	f->qos = qos;
	f->retain = retain;
	f->subid = subid;
	f->state = qos == 1 ? IFL_PUBACK : IFL_PUBREC;
	err = msg_send(s->conn, m, qos, retain, f->pid, subid, false);
	if (err < 0) {
		/* Too large for this client: [MQTT-3.1.2-25] says discard, as if acknowledged. */
		W->st.dropped_too_large++;
		msg_unref(f->m);
		ring_remove(&s->ifl, sizeof(ifl_t), s->ifl.len - 1);
		store_msg_del(s, qseq);
	}
}

static bool online(const sess_t *s)
{
	return s->conn && s->conn->state == CONN_ACTIVE && !s->loading;
}

void sess_deliver(sess_t *s, msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid)
{
	qent_t *q;

	if (msg_expired(m, W->now_ms)) {
		s->expired++;
		W->st.dropped_expired++;
		return;
	}
	uint64_t qseq;

	if (qos == 0) {
		/* QoS 0 is not queued for offline sessions (as most brokers do by default). */
		if (online(s) && msg_send(s->conn, m, 0, retain, 0, subid, false) < 0)
			W->st.dropped_too_large++;
		return;
	}
	qseq = s->next_qseq++;
	/* A durable copy first: the publisher's PUBACK waits for it (W->wait), delivery does not. */
	store_msg_add(s, qseq, m, qos, retain, subid);
	if (s->cold)
		return; /* offline with a durable store: the store holds the queue */
	if (online(s) && !s->queue.len && s->ifl.len < window(s)) {
		send_ifl(s, m, qos, retain, subid, qseq);
		return;
	}
	if (s->queue.len >= W->cfg->max_queued) {
		/* The bound is hit: drop the oldest, count it (visible in ringmqctl stats and client <id>). */
		q = ring_at(&s->queue, sizeof(qent_t), 0);
		store_msg_del(s, q->qseq);
		msg_unref(q->m);
		ring_pop(&s->queue);
		s->dropped++;
		W->st.dropped_queue_full++;
		if (s->dropped == 1 || s->dropped % 1000 == 0)
			log_warn(0, "session '%s': offline queue full (%u), %llu oldest messages dropped so far", s->id,
				W->cfg->max_queued, (unsigned long long)s->dropped);
	}
	q = ring_push(&s->queue, sizeof(qent_t));
	if (!q) {
		log_error(ENOMEM, "session '%s': message dropped", s->id);
		return;
	}
	q->m = msg_ref(m);
	q->qseq = qseq;
	q->qos = qos;
	q->retain = retain;
	q->subid = subid;
}

void sess_pump(sess_t *s)
{
	while (online(s) && s->queue.len && s->ifl.len < window(s)) {
		qent_t q = *(qent_t *)ring_at(&s->queue, sizeof(qent_t), 0);

		ring_pop(&s->queue);
		if (msg_expired(q.m, W->now_ms)) {
			s->expired++;
			W->st.dropped_expired++;
			store_msg_del(s, q.qseq);
		} else {
			send_ifl(s, q.m, q.qos, q.retain, q.subid, q.qseq);
		}
		msg_unref(q.m);
	}
}

static void resend_window(sess_t *s, conn_t *c)
{
	/* [MQTT-4.4.0-1]: resend unacknowledged PUBLISH (DUP) and PUBREL, in the original order. */
	for (uint32_t i = 0; i < s->ifl.len; i++) {
		ifl_t *f = ring_at(&s->ifl, sizeof(ifl_t), i);

		if (f->state == IFL_PUBCOMP)
			conn_send_ack(c, MQTT_PUBREL, f->pid, 0);
		else if (msg_send(c, f->m, f->qos, f->retain, f->pid, f->subid, true) < 0)
			W->st.dropped_too_large++;
	}
}

void sess_attach(conn_t *c, sess_t *s, bool resume)
{
	c->sess = s;
	s->conn = c;
	s->expire_at_ms = 0;
	if (s->expiry_s > 0 && store_durable()) {
		s->stored = true;
		store_sess_put(s);
	}
	if (s->cold) {
		/* The queue and window are in the store: load them; deliveries meanwhile queue behind. */
		s->cold = false;
		s->loading = true;
		s->load_gen++;
		route_sess_online(s, true);
		store_sess_load(s);
		return;
	}
	if (resume) {
		resend_window(s, c);
	}
	route_sess_online(s, true);
	sess_pump(s);
}

/* Drop the in-memory queue and window of a session whose store keeps them. */
static void drop_memory(sess_t *s)
{
	while (s->queue.len) {
		msg_unref(((qent_t *)ring_at(&s->queue, sizeof(qent_t), 0))->m);
		ring_pop(&s->queue);
	}
	while (s->ifl.len) {
		msg_unref(((ifl_t *)ring_at(&s->ifl, sizeof(ifl_t), 0))->m);
		ring_pop(&s->ifl);
	}
	ring_finish(&s->queue);
	ring_finish(&s->ifl);
	s->n_rx = 0;
	s->cap_rx = 0;
	free(s->rx_pids);
	s->rx_pids = NULL;
}

void sess_loaded(sess_t *s, store_entry_t *e, size_t n, const uint16_t *rx, size_t nrx)
{
	ring_t q = s->queue;
	conn_t *c = s->conn;

	/* What arrived while loading was written to the store after the load ran: it goes behind. */
	memset(&s->queue, 0, sizeof(s->queue));
	s->loading = false;
	for (size_t i = 0; i < n; i++) {
		if (e[i].pid) {
			ifl_t *f = ring_push(&s->ifl, sizeof(ifl_t));

			if (!f) {
				msg_unref(e[i].m);
				continue;
			}
			*f = (ifl_t){ .m = e[i].m, .qseq = e[i].qseq, .subid = e[i].subid, .pid = e[i].pid,
				.qos = e[i].qos, .state = e[i].state, .retain = e[i].retain };
			if (f->state == IFL_PUBCOMP) {
				msg_unref(f->m);
				f->m = NULL;
			}
		} else {
			qent_t *x = ring_push(&s->queue, sizeof(qent_t));

			if (!x) {
				msg_unref(e[i].m);
				continue;
			}
			*x = (qent_t){ .m = e[i].m, .qseq = e[i].qseq, .qos = e[i].qos, .retain = e[i].retain,
				.subid = e[i].subid };
		}
		if (e[i].qseq >= s->next_qseq)
			s->next_qseq = e[i].qseq + 1;
	}
	for (uint32_t i = 0; i < q.len; i++) {
		qent_t *x = ring_push(&s->queue, sizeof(qent_t));

		if (x)
			*x = *(qent_t *)ring_at(&q, sizeof(qent_t), i);
		else
			msg_unref(((qent_t *)ring_at(&q, sizeof(qent_t), i))->m);
	}
	ring_finish(&q);
	for (size_t i = 0; i < nrx; i++) {
		if (!sess_rx_has(s, rx[i]))
			sess_rx_add_loaded(s, rx[i]);
	}
	if (c && c->state == CONN_ACTIVE) {
		resend_window(s, c);
		sess_pump(s);
		conn_resume_input(c);
	}
}

static void publish_will(sess_t *s)
{
	msg_t *w = s->will;

	s->will = NULL;
	s->will_at_ms = 0;
	if (!w)
		return;
	/* A will is published as if by a new publisher: re-base its expiry clock to now. */
	route_publish(w, NULL, 0);
	msg_unref(w);
}

void sess_detach(conn_t *c)
{
	sess_t *s = c->sess;

	c->sess = NULL;
	s->conn = NULL;
	route_sess_online(s, false);
	if (c->graceful) {
		msg_unref(s->will);
		s->will = NULL;
	} else if (s->will) {
		uint32_t delay = s->will_delay_s < s->expiry_s ? s->will_delay_s : s->expiry_s;

		if (delay == 0)
			publish_will(s);
		else
			s->will_at_ms = W->now_ms + (uint64_t)delay * 1000;
	}
	if (s->expiry_s == 0) {
		sess_destroy(s);
		return;
	}
	s->expire_at_ms = s->expiry_s == UINT32_MAX ? 0 : W->now_ms + (uint64_t)s->expiry_s * 1000;
	if (store_durable()) {
		/* The store holds everything of an offline session: keep only subscriptions in memory. */
		store_sess_offline(s);
		drop_memory(s);
		s->cold = true;
		s->loading = false;
	}
}

static ifl_t *find_ifl(sess_t *s, uint16_t pid, uint8_t state, uint32_t *idx)
{
	for (uint32_t i = 0; i < s->ifl.len; i++) {
		ifl_t *f = ring_at(&s->ifl, sizeof(ifl_t), i);

		if (f->pid == pid && f->state == state) {
			*idx = i;
			return f;
		}
	}
	return NULL;
}

uint8_t sess_on_puback(sess_t *s, uint16_t pid)
{
	uint32_t i;
	ifl_t *f = find_ifl(s, pid, IFL_PUBACK, &i);

	if (!f)
		return MQTT_RC_PACKET_ID_NOT_FOUND;
	store_msg_del(s, f->qseq);
	msg_unref(f->m);
	ring_remove(&s->ifl, sizeof(ifl_t), i);
	sess_pump(s);
	return 0;
}

uint8_t sess_on_pubrec(sess_t *s, uint16_t pid, uint8_t reason)
{
	uint32_t i;
	ifl_t *f = find_ifl(s, pid, IFL_PUBREC, &i);

	if (!f)
		return find_ifl(s, pid, IFL_PUBCOMP, &i) ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND;
	msg_unref(f->m);
	f->m = NULL;
	if (reason >= 0x80) {
		/* The receiver refused it: the flow ends here [MQTT-4.3.3]. */
		store_msg_del(s, f->qseq);
		ring_remove(&s->ifl, sizeof(ifl_t), i);
		sess_pump(s);
	} else {
		f->state = IFL_PUBCOMP;
		store_msg_pid(s, f->qseq, f->pid, IFL_PUBCOMP);
	}
	return 0;
}

uint8_t sess_on_pubcomp(sess_t *s, uint16_t pid)
{
	uint32_t i;
	ifl_t *f = find_ifl(s, pid, IFL_PUBCOMP, &i);

	if (!f)
		return MQTT_RC_PACKET_ID_NOT_FOUND;
	store_msg_del(s, f->qseq);
	ring_remove(&s->ifl, sizeof(ifl_t), i);
	sess_pump(s);
	return 0;
}

bool sess_rx_has(const sess_t *s, uint16_t pid)
{
	for (uint16_t i = 0; i < s->n_rx; i++) {
		if (s->rx_pids[i] == pid)
			return true;
	}
	return false;
}

int sess_rx_add(sess_t *s, uint16_t pid)
{
	/* Durable before the PUBREC goes out (W->wait): a resent PUBLISH after a crash is not delivered twice. */
	store_rx_add(s, pid);
	return sess_rx_add_loaded(s, pid);
}

int sess_rx_add_loaded(sess_t *s, uint16_t pid)
{
	if (s->n_rx == s->cap_rx) {
		uint32_t cap = s->cap_rx ? (uint32_t)s->cap_rx * 2 : 8;
		uint16_t *p;

		if (cap > 65535)
			cap = 65535;
		if (cap == s->cap_rx)
			return -1;
		p = realloc(s->rx_pids, cap * sizeof(*p));
		if (!p)
			return -1;
		s->rx_pids = p;
		s->cap_rx = (uint16_t)cap;
	}
	s->rx_pids[s->n_rx++] = pid;
	return 0;
}

bool sess_rx_del(sess_t *s, uint16_t pid)
{
	for (uint16_t i = 0; i < s->n_rx; i++) {
		if (s->rx_pids[i] == pid) {
			store_rx_del(s, pid);
			s->rx_pids[i] = s->rx_pids[--s->n_rx];
			return true;
		}
	}
	return false;
}

void sess_tick(void)
{
	static uint64_t last;
	sess_t *expired[256];
	size_t n = 0, pos = 0;
	strmap_entry_t *e;

	/* Wills and session expiry have 1 s resolution: scan once a second, not every tick. */
	if (W->now_ms - last < 1000)
		return;
	last = W->now_ms;
	while ((e = strmap_next(&W->sessions, &pos))) {
		sess_t *s = e->value;

		if (s->conn)
			continue;
		if (s->will_at_ms && W->now_ms >= s->will_at_ms)
			publish_will(s);
		if (s->expire_at_ms && W->now_ms >= s->expire_at_ms && n < 256)
			expired[n++] = s;
	}
	for (size_t i = 0; i < n; i++) {
		log_debug("session '%s' expired", expired[i]->id);
		publish_will(expired[i]);
		sess_destroy(expired[i]);
	}
}

uint64_t sess_queued_total(void)
{
	uint64_t total = 0;
	size_t pos = 0;
	strmap_entry_t *e;

	while ((e = strmap_next(&W->sessions, &pos)))
		total += ((sess_t *)e->value)->queue.len;
	return total;
}

static uint64_t meta_num(const struct redisReply *meta, const char *field, uint64_t def)
{
	for (size_t i = 0; i + 1 < meta->elements; i += 2) {
		if (strcmp(meta->element[i]->str, field) == 0)
			return strtoull(meta->element[i + 1]->str, NULL, 10);
	}
	return def;
}

void sess_restore(const char *id, size_t len, const struct redisReply *meta, const struct redisReply *subs)
{
	struct timespec ts;
	uint64_t now_unix, x;
	sess_t *s;

	if (slot_owner(slot_of(id, len), W->n) != W->id || meta->type != REDIS_REPLY_ARRAY)
		return; /* another worker's client sharing the bucket */
	if (sess_find((const uint8_t *)id, len))
		return;
	s = sess_create((const uint8_t *)id, len);
	if (!s) {
		log_error(ENOMEM, "session '%.*s' not restored", (int)len, id);
		return;
	}
	s->version = (uint8_t)meta_num(meta, "v", MQTT_V311);
	s->expiry_s = (uint32_t)meta_num(meta, "e", UINT32_MAX);
	s->next_qseq = meta_num(meta, "h", 1);
	s->cold = true;
	s->stored = true;
	clock_gettime(CLOCK_REALTIME, &ts);
	now_unix = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	x = meta_num(meta, "x", 0);
	if (x)
		s->expire_at_ms = W->now_ms + (x > now_unix ? x - now_unix : 0);
	else if (s->expiry_s != UINT32_MAX)
		s->expire_at_ms = W->now_ms + (uint64_t)s->expiry_s * 1000; /* was online when the broker stopped */
	for (size_t i = 0; subs->type == REDIS_REPLY_ARRAY && i + 1 < subs->elements; i += 2) {
		mqtt_str_t filter = { (const uint8_t *)subs->element[i]->str, (uint32_t)subs->element[i]->len };
		unsigned qos, nl, rap, rh, subid;
		mqtt_subopts_t o;
		uint32_t waiting;
		bool retained, shared;

		if (sscanf(subs->element[i + 1]->str, "%u,%u,%u,%u,%u", &qos, &nl, &rap, &rh, &subid) != 5 || qos > 2 ||
		    mqtt_filter_check(&filter, &shared) != MQTT_OK) {
			log_warn(0, "session '%s': stored subscription '%s' is damaged: skipped", s->id,
				subs->element[i]->str);
			continue;
		}
		o = (mqtt_subopts_t){ .qos = (uint8_t)qos, .no_local = nl, .retain_as_published = rap,
			.retain_handling = (uint8_t)rh };
		route_subscribe(s, filter, &o, subid, NULL, 0, &waiting, &retained);
	}
}

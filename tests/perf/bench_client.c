/*
 * bench_client.c — the MQTT client side of one ringmq-bench connection: what it sends (CONNECT, SUBSCRIBE,
 * PUBLISH, acks, DISCONNECT) encoded with the proto library into the connection's pending output, and what it
 * receives, framed and decoded in place, with the per-pair accounting of every PUBACK and delivery.
 *
 * Payload layout (BENCH_PAYLOAD_HDR bytes, native byte order, the rest zero padding): send time
 * (CLOCK_MONOTONIC ns, u64), pair index (u32), sequence (u32), run id (u32), magic (u32).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_engine.h"
#include "mqtt.h"

uint8_t *
cli_obuf_reserve(obuf_t *b, uint32_t n)
{
	if (b->len + n > b->cap) {
		uint32_t cap = b->cap ? b->cap : 256;
		uint8_t *p;

		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL)
			return NULL;
		b->p = p;
		b->cap = cap;
	}
	return b->p + b->len;
}

/* --- output -------------------------------------------------------------------------------------------- */

static void
queue_bytes_done(bconn_thread_t *t, conn_t *c, size_t n, int64_t now)
{
	c->pend.len += (uint32_t)n;
	c->last_tx = now;
	eng_mark_dirty(t, c);
}

static void
queue_ack(bconn_thread_t *t, conn_t *c, uint8_t type, uint16_t pid, int64_t now)
{
	mqtt_ack_t a = { .packet_id = pid };
	uint32_t sz = mqtt_ack_size(t->cfg->version, &a);
	uint8_t *p;

	if (c->close_after_send)
		return; /* nothing may follow our DISCONNECT: the broker will redeliver */
	p = cli_obuf_reserve(&c->pend, sz);
	if (p != NULL)
		queue_bytes_done(t, c, mqtt_encode_ack(p, sz, type, t->cfg->version, &a), now);
}

void
cli_queue_empty(bconn_thread_t *t, conn_t *c, uint8_t type, int64_t now)
{
	uint8_t *p;

	if (c->close_after_send)
		return;
	p = cli_obuf_reserve(&c->pend, 2);
	if (p != NULL)
		queue_bytes_done(t, c, mqtt_encode_empty(p, 2, type), now);
}

void
cli_queue_disconnect(bconn_thread_t *t, conn_t *c, bool end_session, int64_t now)
{
	mqtt_ack_t d = { .reason = 0 };
	uint32_t sz;
	uint8_t *p;

	if (end_session && t->cfg->version == MQTT_V5) {
		/* Lowering the expiry to 0 at DISCONNECT is allowed (only 0 -> non-zero is not): the broker frees
		 * the session at once instead of keeping it for session_expiry seconds. */
		d.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		d.props.session_expiry = 0;
	}
	sz = mqtt_disconnect_size(t->cfg->version, &d);
	p = cli_obuf_reserve(&c->pend, sz);
	if (p != NULL)
		queue_bytes_done(t, c, mqtt_encode_disconnect(p, sz, t->cfg->version, &d), now);
}

void
cli_queue_connect(bconn_thread_t *t, conn_t *c, int64_t now)
{
	static const char kind[] = { [ROLE_SUB] = 's', [ROLE_PUB] = 'p', [ROLE_CYC] = 'c' };
	const bench_cfg_t *cfg = t->cfg;
	uint32_t i = global_pair(t, c->local);
	mqtt_connect_t m;
	char id[96], user[256], pass[256];
	int n;
	uint32_t sz;
	uint8_t *p;

	memset(&m, 0, sizeof(m));
	n = snprintf(id, sizeof(id), "%s-%c%u", cfg->client_prefix, kind[c->role], i);
	if (c->role == ROLE_PUB && cfg->place_workers > 0)
		n = baddr_placed_id(id, sizeof(id), cfg->client_prefix, i, cfg->place_workers, cfg->place_shift);
	m.version = cfg->version;
	m.clean_start = c->role != ROLE_SUB;
	if (cfg->username != NULL) {
		m.has_username = true;
		m.username.p = (const uint8_t *)user;
		m.username.len = (uint32_t)bench_subst(user, sizeof(user), cfg->username, i);
	}
	if (cfg->password != NULL) {
		m.has_password = true;
		m.password.p = (const uint8_t *)pass;
		m.password.len = (uint32_t)bench_subst(pass, sizeof(pass), cfg->password, i);
	}
	m.keep_alive = cfg->keepalive;
	m.client_id.p = (const uint8_t *)id;
	m.client_id.len = (uint32_t)n;
	if (c->role == ROLE_SUB && cfg->version == MQTT_V5) {
		m.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		m.props.session_expiry = cfg->session_expiry;
	}
	sz = mqtt_connect_size(&m);
	p = cli_obuf_reserve(&c->pend, sz);
	if (p != NULL)
		queue_bytes_done(t, c, mqtt_encode_connect(p, sz, &m), now);
}

static void
queue_subscribe(bconn_thread_t *t, conn_t *c, int64_t now)
{
	char topic[256];
	mqtt_str_t f;
	mqtt_subopts_t o = { .qos = t->cfg->qos };
	mqtt_props_t props = { 0 };
	uint32_t sz;
	uint8_t *p;
	uint16_t pid;

	f.len = (uint32_t)bench_topic(topic, sizeof(topic), t->cfg->sub_topic, global_pair(t, c->local));
	f.p = (const uint8_t *)topic;
	pid = ++c->next_pid ? c->next_pid : ++c->next_pid;
	sz = mqtt_subscribe_size(t->cfg->version, &props, &f, 1);
	p = cli_obuf_reserve(&c->pend, sz);
	if (p != NULL)
		queue_bytes_done(t, c, mqtt_encode_subscribe(p, sz, t->cfg->version, pid, &props, &f, &o, 1), now);
}

/* --- received packets ---------------------------------------------------------------------------------- */

static void
proto_error(bconn_thread_t *t, conn_t *c)
{
	atomic_fetch_add_explicit(&t->prog.proto_errors, 1, memory_order_relaxed);
	eng_close(t, c, WHY_ERROR);
}

/* BENCH_MODE_CONNECT: a CONNACK ends a cycle; DISCONNECT, close, and the engine reconnects at once. */
static void
cycle_done(bconn_thread_t *t, conn_t *c, int64_t now)
{
	uint64_t ns = (uint64_t)(now - c->t_begin);
	bool resumed = c->tls != NULL && c->tls->resumed;

	t->cur.cycles++;
	t->cur.resumed += resumed;
	hist_record(&t->cur.connack, ns);
	if (in_window(t, now)) {
		t->window.cycles++;
		t->window.resumed += resumed;
		hist_record(&t->window.connack, ns);
	}
	cli_queue_disconnect(t, c, false, now);
	c->close_after_send = true;
	c->again = true;
}

static void
on_connack(bconn_thread_t *t, conn_t *c, const mqtt_frame_t *f, int64_t now)
{
	mqtt_connack_t ca;

	if (c->state != CS_CONNACK || mqtt_decode_connack(f, t->cfg->version, &ca) != MQTT_OK) {
		proto_error(t, c);
		return;
	}
	if (ca.reason != 0) {
		atomic_store_explicit(&t->prog.last_errno, ECONNREFUSED, memory_order_relaxed);
		atomic_fetch_add_explicit(&t->prog.refused, 1, memory_order_relaxed);
		eng_close(t, c, WHY_CONNFAIL);
		return;
	}
	if (c->role == ROLE_CYC) {
		cycle_done(t, c, now);
		return;
	}
	if (c->role == ROLE_PUB) {
		eng_set_ready(t, c);
		return;
	}
	if (c->subscribed && ca.session_present) {
		eng_set_ready(t, c);
		return;
	}
	if (c->subscribed)
		atomic_fetch_add_explicit(&t->prog.session_lost, 1, memory_order_relaxed);
	c->state = CS_SUBACK;
	queue_subscribe(t, c, now);
}

static void
on_suback(bconn_thread_t *t, conn_t *c, const mqtt_frame_t *f)
{
	mqtt_suback_t sa;

	if (c->state != CS_SUBACK || mqtt_decode_suback(f, t->cfg->version, &sa) != MQTT_OK || sa.count < 1) {
		proto_error(t, c);
		return;
	}
	if (sa.reasons[0] >= 0x80)
		atomic_fetch_add_explicit(&t->prog.sub_refused, 1, memory_order_relaxed);
	c->subscribed = true;
	eng_set_ready(t, c);
}

static void
account_receive(bconn_thread_t *t, conn_t *c, mqtt_str_t pl, int64_t now)
{
	uint64_t ts;
	uint32_t pair, seq, run, magic;
	bstat_pair_t *p;
	uint32_t before;
	enum bstat_rx r;

	if (pl.len < BENCH_PAYLOAD_HDR) {
		t->foreign++;
		return;
	}
	memcpy(&ts, pl.p, 8);
	memcpy(&pair, pl.p + 8, 4);
	memcpy(&seq, pl.p + 12, 4);
	memcpy(&run, pl.p + 16, 4);
	memcpy(&magic, pl.p + 20, 4);
	/* Another pair's message (a wider --sub-topic) would touch another thread's accounting: count only. */
	if (magic != BENCH_MAGIC || run != t->cfg->run_id || pair != global_pair(t, c->local)) {
		t->foreign++;
		return;
	}
	p = &t->pairs[c->local];
	before = p->outstanding;
	r = bstat_on_receive(p, seq);
	t->outstanding -= before - p->outstanding;
	if (r == BSTAT_RX_NEW || r == BSTAT_RX_OOO) {
		uint64_t lat = now > (int64_t)ts ? (uint64_t)(now - (int64_t)ts) : 0;

		t->cur.received++;
		if (c->reconnects > 0)
			c->rx_reconn++;
		hist_record(&t->cur.e2e, lat);
		if (in_window(t, (int64_t)ts)) {
			t->window.received++;
			hist_record(&t->window.e2e, lat);
		}
	}
}

static void
on_publish(bconn_thread_t *t, conn_t *c, const mqtt_frame_t *f, int64_t now)
{
	mqtt_publish_t pb;

	if (c->role != ROLE_SUB || mqtt_decode_publish(f, t->cfg->version, &pb) != MQTT_OK) {
		proto_error(t, c);
		return;
	}
	if (pb.qos == 1)
		queue_ack(t, c, MQTT_PUBACK, pb.packet_id, now);
	else if (pb.qos == 2)
		queue_ack(t, c, MQTT_PUBREC, pb.packet_id, now);
	account_receive(t, c, pb.payload, now);
}

static void
on_puback(bconn_thread_t *t, conn_t *c, const mqtt_frame_t *f, int64_t now)
{
	mqtt_ack_t a;
	bstat_pair_t *p = &t->pairs[c->local];
	uint32_t k, before;
	inflight_t e;

	if (c->role != ROLE_PUB || mqtt_decode_ack(f, t->cfg->version, &a) != MQTT_OK) {
		proto_error(t, c);
		return;
	}
	/* Brokers acknowledge in order; a miss (or a duplicate ack) falls back to a scan of the window. */
	for (k = 0; k < c->inf_n; k++) {
		e = c->inf[(c->inf_head + k) % c->inf_cap];
		if (e.seq % PID_SPACE + 1 == a.packet_id)
			break;
	}
	if (k == c->inf_n) {
		proto_error(t, c);
		return;
	}
	if (k == 0) {
		c->inf_head = (c->inf_head + 1) % c->inf_cap;
	} else {
		for (uint32_t m = k; m + 1 < c->inf_n; m++)
			c->inf[(c->inf_head + m) % c->inf_cap] = c->inf[(c->inf_head + m + 1) % c->inf_cap];
	}
	c->inf_n--;
	t->inflight--;
	if (f->type == MQTT_PUBREC)
		queue_ack(t, c, MQTT_PUBREL, a.packet_id, now);
	if (a.reason >= 0x80)
		return; /* refused by the broker (MQTT 5): not its responsibility, not lost */
	before = p->outstanding;
	if (bstat_on_ack(p, e.seq) == 0) {
		uint64_t lat = (uint64_t)(now - e.ts);

		t->outstanding += p->outstanding - before;
		t->cur.acked++;
		hist_record(&t->cur.ack, lat);
		if (in_window(t, e.ts)) {
			t->window.acked++;
			hist_record(&t->window.ack, lat);
		}
	}
}

static void
handle_packet(bconn_thread_t *t, conn_t *c, const mqtt_frame_t *f, int64_t now)
{
	mqtt_ack_t a;

	switch (f->type) {
	case MQTT_CONNACK:
		on_connack(t, c, f, now);
		break;
	case MQTT_SUBACK:
		on_suback(t, c, f);
		break;
	case MQTT_PUBLISH:
		on_publish(t, c, f, now);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
		on_puback(t, c, f, now);
		break;
	case MQTT_PUBREL:
		if (mqtt_decode_ack(f, t->cfg->version, &a) != MQTT_OK) {
			proto_error(t, c);
			break;
		}
		queue_ack(t, c, MQTT_PUBCOMP, a.packet_id, now);
		break;
	case MQTT_PUBCOMP:
	case MQTT_PINGRESP:
	case MQTT_UNSUBACK:
		break;
	case MQTT_DISCONNECT:
		eng_close(t, c, WHY_ERROR);
		break;
	default:
		proto_error(t, c);
		break;
	}
}

/* Parse complete packets from buf; returns bytes consumed, or -1 when the connection was closed. */
static int64_t
parse(bconn_thread_t *t, conn_t *c, const uint8_t *buf, size_t len, int64_t now)
{
	size_t off = 0;

	while (off < len) {
		mqtt_frame_t f;
		int64_t r = mqtt_frame(buf + off, len - off, 0, &f);

		if (r == 0)
			break;
		if (r < 0) {
			proto_error(t, c);
			return -1;
		}
		handle_packet(t, c, &f, now);
		if (c->state == CS_CLOSING || c->state == CS_DOWN)
			return -1;
		off += (size_t)r;
	}
	return (int64_t)off;
}

static bool
spill_append(conn_t *c, const uint8_t *data, size_t len)
{
	if (c->spill_len + len > c->spill_cap) {
		size_t cap = c->spill_cap ? c->spill_cap : 512;
		uint8_t *p;

		while (cap < c->spill_len + len)
			cap *= 2;
		p = realloc(c->spill, cap);
		if (p == NULL)
			return false;
		c->spill = p;
		c->spill_cap = (uint32_t)cap;
	}
	memcpy(c->spill + c->spill_len, data, len);
	c->spill_len += (uint32_t)len;
	return true;
}

void
cli_on_data(bconn_thread_t *t, conn_t *c, const uint8_t *data, size_t len, int64_t now)
{
	int64_t used;

	if (c->state == CS_CLOSING || c->state == CS_DOWN)
		return;
	if (c->spill_len > 0) {
		if (!spill_append(c, data, len)) {
			eng_close(t, c, WHY_ERROR);
			return;
		}
		used = parse(t, c, c->spill, c->spill_len, now);
		if (used < 0)
			return;
		memmove(c->spill, c->spill + used, c->spill_len - (size_t)used);
		c->spill_len -= (uint32_t)used;
		if (c->spill_len == 0 && c->spill_cap > 4096) {
			free(c->spill);
			c->spill = NULL;
			c->spill_cap = 0;
		}
		return;
	}
	used = parse(t, c, data, len, now);
	if (used >= 0 && (size_t)used < len && !spill_append(c, data + used, len - (size_t)used))
		eng_close(t, c, WHY_ERROR);
}

void
cli_publish(bconn_thread_t *t, uint32_t j, int64_t now)
{
	const bench_cfg_t *cfg = t->cfg;
	conn_t *c = &t->conns[2 * j + 1];
	bstat_pair_t *p = &t->pairs[j];
	char topic[256];
	mqtt_publish_t m;
	uint32_t seq, pair = global_pair(t, j), run = cfg->run_id, magic = BENCH_MAGIC, sz;
	uint64_t ts = (uint64_t)now;
	uint8_t *buf;

	if (c->state != CS_READY || c->close_after_send || (cfg->qos > 0 && c->inf_n >= cfg->max_inflight)) {
		atomic_fetch_add_explicit(&t->prog.skipped, 1, memory_order_relaxed);
		return;
	}
	if (cfg->qos > 0 && c->inf_n == c->inf_cap) {
		uint32_t cap = c->inf_cap ? c->inf_cap * 2 : 4;
		inflight_t *ni = malloc(cap * sizeof(*ni));

		if (ni == NULL)
			return;
		for (uint32_t k = 0; k < c->inf_n; k++)
			ni[k] = c->inf[(c->inf_head + k) % c->inf_cap];
		free(c->inf);
		c->inf = ni;
		c->inf_cap = cap;
		c->inf_head = 0;
	}
	memset(&m, 0, sizeof(m));
	m.qos = cfg->qos;
	m.topic.len = (uint32_t)bench_topic(topic, sizeof(topic), cfg->pub_topic, pair);
	m.topic.p = (const uint8_t *)topic;
	m.payload.p = t->scratch;
	m.payload.len = cfg->payload;
	seq = p->sent;
	m.packet_id = cfg->qos > 0 ? (uint16_t)(seq % PID_SPACE + 1) : 0;
	sz = mqtt_publish_size(cfg->version, &m);
	buf = cli_obuf_reserve(&c->pend, sz);
	if (buf == NULL)
		return;
	memcpy(t->scratch, &ts, 8);
	memcpy(t->scratch + 8, &pair, 4);
	memcpy(t->scratch + 12, &seq, 4);
	memcpy(t->scratch + 16, &run, 4);
	memcpy(t->scratch + 20, &magic, 4);
	queue_bytes_done(t, c, mqtt_encode_publish(buf, sz, cfg->version, &m), now);
	bstat_on_send(p);
	if (cfg->qos > 0) {
		c->inf[(c->inf_head + c->inf_n) % c->inf_cap] = (inflight_t){ .seq = seq, .ts = now };
		c->inf_n++;
		t->inflight++;
	}
	t->cur.sent++;
	if (in_window(t, now))
		t->window.sent++;
}

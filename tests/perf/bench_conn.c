/*
 * bench_conn.c — ringmq-bench client engine: threads, io_uring, connection lifecycle, schedule (see
 * bench_conn.h; the MQTT side of a connection is bench_client.c).
 *
 * One io_uring per thread. Every socket has one multishot recv armed on the thread's provided buffer ring;
 * bytes are parsed in place with mqtt_frame() and only a trailing partial packet is copied into the
 * connection's spill buffer, so an idle connection costs no receive memory. Output is appended to the
 * connection's `pend` buffer during a loop turn and flushed with one send per connection at the top of the
 * next turn (docs/STYLE.md 10); while a send is in flight new output keeps accumulating in `pend`.
 *
 * Connection lifetime (docs/STYLE.md 8): every SQE holds a reference; closing shuts the socket down (and cancels a
 * pending connect) and the slot is only reset, and possibly reconnected, when the last completion is in.
 * The generation in user_data drops completions that would still arrive for an older socket.
 *
 * TLS (bench_conn_tls.c) sits between the ring and the MQTT side; a plain connection pays one branch on `tls`
 * per receive and per flush.
 */
#include "bench_conn.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_engine.h"
#include "mqtt.h"

int64_t
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static inline uint64_t
mkud(enum op op, uint32_t gen, uint32_t idx)
{
	return ((uint64_t)op << 56) | ((uint64_t)(gen & 0xffffff) << 32) | idx;
}

static size_t
subst(char *buf, size_t cap, const char *pattern, uint32_t i, bool percent_i)
{
	size_t n = 0;
	char num[16];
	int k;

	/* Only "%d" (and "%i" where allowed) and "%%": the pattern comes from the command line and must not reach
	 * printf. */
	for (const char *s = pattern; *s != '\0'; s++) {
		if (s[0] == '%' && (s[1] == 'd' || (percent_i && s[1] == 'i'))) {
			k = snprintf(num, sizeof(num), "%u", i);
			for (int m = 0; m < k; m++)
				if (n + 1 < cap)
					buf[n++] = num[m];
			s++;
			continue;
		}
		if (s[0] == '%' && s[1] == '%')
			s++;
		if (n + 1 < cap)
			buf[n++] = *s;
	}
	if (cap > 0)
		buf[n] = '\0';
	return n;
}

size_t
bench_topic(char *buf, size_t cap, const char *pattern, uint32_t i)
{
	return subst(buf, cap, pattern, i, false);
}

size_t
bench_subst(char *buf, size_t cap, const char *pattern, uint32_t i)
{
	return subst(buf, cap, pattern, i, true);
}

/* --- interval counters -------------------------------------------------------------------------------- */

void
bconn_interval_init(bconn_interval_t *iv)
{
	iv->sent = iv->acked = iv->received = 0;
	iv->cycles = iv->resumed = 0;
	hist_init(&iv->e2e);
	hist_init(&iv->ack);
	hist_init(&iv->handshake);
	hist_init(&iv->connack);
}

void
bconn_interval_merge(bconn_interval_t *dst, const bconn_interval_t *src)
{
	dst->sent += src->sent;
	dst->acked += src->acked;
	dst->received += src->received;
	dst->cycles += src->cycles;
	dst->resumed += src->resumed;
	hist_merge(&dst->e2e, &src->e2e);
	hist_merge(&dst->ack, &src->ack);
	hist_merge(&dst->handshake, &src->handshake);
	hist_merge(&dst->connack, &src->connack);
}

void
bconn_take_interval(bconn_thread_t *t, bconn_interval_t *out)
{
	pthread_mutex_lock(&t->mu);
	bconn_interval_merge(out, &t->shared_iv);
	bconn_interval_init(&t->shared_iv);
	pthread_mutex_unlock(&t->mu);
}

static void
publish_interval(bconn_thread_t *t)
{
	if (t->cur.sent == 0 && t->cur.acked == 0 && t->cur.received == 0 && t->cur.cycles == 0 &&
	    t->cur.handshake.count == 0)
		return;
	pthread_mutex_lock(&t->mu);
	bconn_interval_merge(&t->shared_iv, &t->cur);
	pthread_mutex_unlock(&t->mu);
	bconn_interval_init(&t->cur);
}

static struct io_uring_sqe *
get_sqe(bconn_thread_t *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);

	while (sqe == NULL) {
		/* SQ full: hand what we have to the kernel now rather than fail the operation. */
		io_uring_submit(&t->ring);
		sqe = io_uring_get_sqe(&t->ring);
	}
	return sqe;
}

void
eng_mark_dirty(bconn_thread_t *t, conn_t *c)
{
	if (!c->dirty) {
		c->dirty = true;
		t->dirty[t->ndirty++] = (uint32_t)(c - t->conns);
	}
}

void
eng_submit_send(bconn_thread_t *t, conn_t *c, uint32_t ci)
{
	struct io_uring_sqe *sqe = get_sqe(t);

	io_uring_prep_send(sqe, c->fd, c->out.p + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, mkud(OP_SEND, c->gen, ci));
	c->refs++;
	c->send_busy = true;
}

/* The close reason when the server ends a connection: expected once our DISCONNECT is out. */
enum why
eng_why_eof(const conn_t *c)
{
	if (!c->close_after_send)
		return WHY_ERROR;
	return c->offline ? WHY_OFFLINE : WHY_STOP;
}

static void
flush_sends(bconn_thread_t *t)
{
	for (uint32_t k = 0; k < t->ndirty; k++) {
		conn_t *c = &t->conns[t->dirty[k]];
		obuf_t tmp;

		c->dirty = false;
		if (c->state == CS_DOWN || c->state == CS_CLOSING || c->state == CS_CONNECTING)
			continue;
		if (c->tls != NULL) {
			eng_tls_flush(t, c, t->dirty[k]);
			continue;
		}
		if (c->send_busy || c->pend.len == 0)
			continue;
		tmp = c->out;
		c->out = c->pend;
		c->pend = tmp;
		c->pend.len = c->pend.off = 0;
		eng_submit_send(t, c, t->dirty[k]);
	}
	t->ndirty = 0;
}

/* --- connection lifecycle ------------------------------------------------------------------------------ */

static void
enqueue_connect(bconn_thread_t *t, conn_t *c, int64_t at)
{
	if (c->queued)
		return;
	c->queued = true;
	c->retry_at = at;
	t->cq[(t->cq_head + t->cq_n) % t->nconns] = (uint32_t)(c - t->conns);
	t->cq_n++;
}

void
eng_set_ready(bconn_thread_t *t, conn_t *c)
{
	c->state = CS_READY;
	if (c->counted_pending) {
		c->counted_pending = false;
		t->pending--;
	}
	atomic_fetch_add_explicit(c->role == ROLE_SUB ? &t->prog.subs_ready : &t->prog.pubs_ready, 1,
		memory_order_relaxed);
	if (c->lost) {
		c->lost = false;
		c->reconnects++;
		atomic_fetch_add_explicit(c->role == ROLE_SUB ? &t->prog.reconnects_sub : &t->prog.reconnects_pub, 1,
			memory_order_relaxed);
	}
}

/* Last reference gone: release the socket and decide whether to come back. */
static void
finalize(bconn_thread_t *t, conn_t *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->tls != NULL)
		btls_end(c->tls);
	c->gen++;
	c->state = CS_DOWN;
	c->send_busy = false;
	c->close_after_send = false;
	c->out.len = c->out.off = 0;
	c->pend.len = c->pend.off = 0;
	free(c->spill);
	c->spill = NULL;
	c->spill_len = c->spill_cap = 0;
	/* With several brokers the clients of a dead node must not all hit the next one in the same instant. */
	if (!t->stopping && !c->offline)
		enqueue_connect(t, c, c->again ? bench_now() : bench_now() + (t->cfg->brokers.n > 1 ?
			baddr_backoff_ns(&t->rng) : RETRY_NS));
	c->again = false;
}

void
eng_close(bconn_thread_t *t, conn_t *c, enum why why)
{
	bool lost = (why == WHY_ERROR || why == WHY_CONNFAIL) && !t->stopping && !c->offline;

	if (c->state == CS_DOWN || c->state == CS_CLOSING)
		return;
	/* A lost client tries the next broker; an --offline subscriber comes back to its session's node. */
	if (lost) {
		c->addr = (uint8_t)baddr_next(c->addr, t->cfg->brokers.n);
		if (c->state == CS_READY)
			c->lost = true;
	}
	if (why == WHY_ERROR && !t->stopping)
		atomic_fetch_add_explicit(&t->prog.disconnects, 1, memory_order_relaxed);
	if (why == WHY_CONNFAIL)
		atomic_fetch_add_explicit(&t->prog.connect_errors, 1, memory_order_relaxed);
	if (c->state == CS_READY)
		atomic_fetch_sub_explicit(c->role == ROLE_SUB ? &t->prog.subs_ready : &t->prog.pubs_ready, 1,
			memory_order_relaxed);
	if (c->counted_pending) {
		c->counted_pending = false;
		t->pending--;
	}
	if (c->state == CS_CONNECTING) {
		/* shutdown() does not abort a connect in progress: cancel it. */
		struct io_uring_sqe *sqe = get_sqe(t);

		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, mkud(OP_CANCEL, 0, 0));
	}
	c->state = CS_CLOSING;
	/* Unacked PUBLISHes of a publisher die with its clean session: never acked, so never "lost". At the stop
	 * they stay in t->inflight: the report's "unacked at end". */
	if (!t->stopping) {
		t->inflight -= c->inf_n;
		if (c->inf_n > 0)
			atomic_fetch_add_explicit(&t->prog.unacked_on_disconnect, c->inf_n, memory_order_relaxed);
	}
	c->inf_n = 0;
	c->inf_head = 0;
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	if (c->refs == 0)
		finalize(t, c);
}

static void
start_connect(bconn_thread_t *t, conn_t *c, uint32_t ci, int64_t now)
{
	const bench_cfg_t *cfg = t->cfg;
	struct io_uring_sqe *sqe;
	int one = 1;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg->src_spread) {
		/* One source address per 4096 sockets' worth of ephemeral ports: with NO_PORT the port is picked
		 * at connect() for the full 4-tuple, so each 127.0.x.y source has its own ~28k ports. */
		uint32_t g = c->role == ROLE_CYC ? global_pair(t, c->local) + c->ncycles * t->cfg->pairs
						 : global_pair(t, c->local) * 2 + c->role;
		uint32_t x = g % SRC_ADDRS + 1;
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr = htonl(0x7f000000u | x);
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			goto err_fd;
	}
	c->fd = fd;
	c->state = CS_CONNECTING;
	c->ncycles++;
	c->t_begin = now;
	c->deadline = now + cfg->connect_timeout_ns;
	c->counted_pending = true;
	t->pending++;
	sqe = get_sqe(t);
	io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&cfg->brokers.a[c->addr].sa,
		sizeof(cfg->brokers.a[c->addr].sa));
	io_uring_sqe_set_data64(sqe, mkud(OP_CONNECT, c->gen, ci));
	c->refs++;
	return;

err_fd:
	close(fd);
err:
	atomic_store_explicit(&t->prog.last_errno, errno, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->prog.connect_errors, 1, memory_order_relaxed);
	c->queued = false;
	enqueue_connect(t, c, now + RETRY_NS);
}

static void
arm_recv(bconn_thread_t *t, conn_t *c, uint32_t ci)
{
	struct io_uring_sqe *sqe = get_sqe(t);

	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BR_GID;
	io_uring_sqe_set_data64(sqe, mkud(OP_RECV, c->gen, ci));
	c->refs++;
}

static void
run_connect_queue(bconn_thread_t *t, int64_t now)
{
	if (t->rate > 0) {
		double burst = t->rate / 100.0 > 1.0 ? t->rate / 100.0 : 1.0;

		t->tokens += (double)(now - t->tokens_at) * t->rate / 1e9;
		if (t->tokens > burst)
			t->tokens = burst;
	}
	t->tokens_at = now;
	while (t->cq_n > 0 && t->pending < t->max_pending && (t->rate <= 0 || t->tokens >= 1.0)) {
		uint32_t ci = t->cq[t->cq_head];
		conn_t *c = &t->conns[ci];

		if (c->retry_at > now)
			break;
		t->cq_head = (t->cq_head + 1) % t->nconns;
		t->cq_n--;
		c->queued = false;
		if (c->state != CS_DOWN || c->offline || t->stopping)
			continue;
		t->tokens -= 1.0;
		start_connect(t, c, ci, now);
	}
}

/* --- completions --------------------------------------------------------------------------------------- */

static void
recycle_buf(bconn_thread_t *t, uint16_t bid)
{
	io_uring_buf_ring_add(t->br, t->bufs + (size_t)bid * BR_SIZE, BR_SIZE, bid,
		io_uring_buf_ring_mask(BR_ENTRIES), 0);
	io_uring_buf_ring_advance(t->br, 1);
}

static void
on_cqe(bconn_thread_t *t, struct io_uring_cqe *cqe, int64_t now)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum op op = (enum op)(ud >> 56);
	uint32_t gen = (uint32_t)(ud >> 32) & 0xffffff;
	uint32_t ci = (uint32_t)ud;
	conn_t *c;
	int res = cqe->res;

	if (op == OP_TIMER) {
		t->timer_fired = true;
		return;
	}
	if (op == OP_CANCEL)
		return;
	c = &t->conns[ci];
	if (op == OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER)) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);

		if (res > 0 && (c->gen & 0xffffff) == gen) {
			if (c->tls != NULL)
				eng_tls_on_data(t, c, t->bufs + (size_t)bid * BR_SIZE, (size_t)res, now);
			else
				cli_on_data(t, c, t->bufs + (size_t)bid * BR_SIZE, (size_t)res, now);
		}
		recycle_buf(t, bid);
	}
	if ((c->gen & 0xffffff) != gen)
		return; /* cannot happen while refs gate finalize(); kept as the docs/STYLE.md 8 guard */
	switch (op) {
	case OP_CONNECT:
		c->refs--;
		if (c->state != CS_CONNECTING)
			break;
		if (res < 0) {
			atomic_store_explicit(&t->prog.last_errno, -res, memory_order_relaxed);
			eng_close(t, c, WHY_CONNFAIL);
			break;
		}
		arm_recv(t, c, ci);
		if (c->tls != NULL) {
			c->state = CS_TLS;
			if (btls_begin(t->cfg->tls_addr[c->addr], c->tls) < 0)
				eng_tls_fail(t, c);
			else
				eng_mark_dirty(t, c); /* the ClientHello */
			break;
		}
		c->state = CS_CONNACK;
		cli_queue_connect(t, c, now);
		break;
	case OP_RECV:
		if (!(cqe->flags & IORING_CQE_F_MORE))
			c->refs--;
		if ((res == 0 || (res < 0 && res != -ENOBUFS)) && c->state == CS_TLS) {
			/* The server hung up on our handshake (a plain listener, or a TLS error without alert). */
			c->tls->err = 0;
			c->tls->verify = 0;
			eng_tls_fail(t, c);
		} else if (res == 0 || (res < 0 && res != -ENOBUFS)) {
			eng_close(t, c, res == 0 ? eng_why_eof(c) : WHY_ERROR);
		} else if (!(cqe->flags & IORING_CQE_F_MORE) && c->state != CS_CLOSING && c->state != CS_DOWN) {
			arm_recv(t, c, ci); /* -ENOBUFS (buffers were returned above) or the kernel ended it */
		}
		break;
	case OP_SEND:
		c->refs--;
		c->send_busy = false;
		if (res < 0) {
			eng_close(t, c, WHY_ERROR);
			break;
		}
		c->out.off += (uint32_t)res;
		if (c->out.off < c->out.len && c->state != CS_CLOSING) {
			eng_submit_send(t, c, ci);
			break;
		}
		c->out.len = c->out.off = 0;
		if (c->pend.len > 0 || (c->tls != NULL && btls_pending(c->tls) > 0))
			eng_mark_dirty(t, c);
		else if (c->close_after_send)
			eng_close(t, c, c->offline ? WHY_OFFLINE : WHY_STOP);
		break;
	default:
		break;
	}
	if (c->state == CS_CLOSING && c->refs == 0)
		finalize(t, c);
}

/* --- schedule and timers ------------------------------------------------------------------------------- */

static void
run_schedule(bconn_thread_t *t, int64_t now)
{
	double n = (double)t->cfg->pairs;
	int64_t t_end = t->t_win1;

	while (!t->sched_done && t->npairs > 0) {
		double frac = (double)(global_pair(t, t->sched_j) - t->cfg->first_pair) / n;
		int64_t when = t->t_start + (int64_t)(((double)t->sched_round + frac) * t->period);

		if (when >= t_end) {
			t->sched_done = true;
			break;
		}
		if (when > now)
			break;
		cli_publish(t, t->sched_j, now);
		if (++t->sched_j == t->npairs) {
			t->sched_j = 0;
			t->sched_round++;
		}
	}
}

static void
go_offline(bconn_thread_t *t, int64_t now)
{
	for (uint32_t j = 0; j < t->npairs; j++) {
		conn_t *c = &t->conns[2 * j];

		c->offline = true;
		if (c->state == CS_READY) {
			cli_queue_disconnect(t, c, false, now);
			c->close_after_send = true;
		} else {
			eng_close(t, c, WHY_OFFLINE);
		}
	}
}

static void
go_online(bconn_thread_t *t, int64_t now)
{
	for (uint32_t j = 0; j < t->npairs; j++) {
		conn_t *c = &t->conns[2 * j];

		c->offline = false;
		if (c->state == CS_DOWN)
			enqueue_connect(t, c, now);
		/* still CS_CLOSING: finalize() queues it now that offline is false */
	}
}

static void
begin_stop(bconn_thread_t *t, int64_t now)
{
	t->stopping = true;
	t->stop_deadline = now + STOP_NS;
	for (uint32_t ci = 0; ci < t->nconns; ci++) {
		conn_t *c = &t->conns[ci];

		if (c->state == CS_READY) {
			cli_queue_disconnect(t, c, c->role == ROLE_SUB, now);
			c->close_after_send = true;
		} else {
			eng_close(t, c, WHY_STOP);
		}
	}
}

static void
housekeeping(bconn_thread_t *t, int64_t now)
{
	int64_t idle = (int64_t)t->cfg->keepalive * NS_PER_SEC / 2;

	for (uint32_t ci = 0; ci < t->nconns; ci++) {
		conn_t *c = &t->conns[ci];

		if ((c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_CONNACK ||
		     c->state == CS_SUBACK) &&
		    now > c->deadline) {
			atomic_store_explicit(&t->prog.last_errno, ETIMEDOUT, memory_order_relaxed);
			eng_close(t, c, WHY_CONNFAIL);
		} else if (c->state == CS_READY && idle > 0 && now - c->last_tx > idle) {
			cli_queue_empty(t, c, MQTT_PINGREQ, now);
		}
	}
}

static void
tick(bconn_thread_t *t, int64_t now)
{
	int ph = atomic_load_explicit(&t->sh->phase, memory_order_acquire);

	if (ph != t->phase) {
		if (ph >= BENCH_PH_PUBS && t->phase < BENCH_PH_PUBS)
			for (uint32_t j = 0; j < t->npairs; j++)
				enqueue_connect(t, &t->conns[2 * j + 1], now);
		if (ph >= BENCH_PH_RUN && t->t_start == 0) {
			int64_t s = atomic_load(&t->sh->t_start);
			const bench_cfg_t *cfg = t->cfg;

			t->t_win0 = s + cfg->warmup_ns;
			t->t_win1 = t->t_win0 + cfg->duration_ns;
			t->t_off0 = t->t_win0 + (cfg->duration_ns - cfg->offline_ns) / 2;
			t->t_off1 = t->t_off0 + cfg->offline_ns;
			t->t_start = s;
		}
		if (ph == BENCH_PH_STOP && !t->stopping)
			begin_stop(t, now);
		t->phase = ph;
	}
	if (t->t_start != 0 && !t->stopping) {
		run_schedule(t, now);
		if (t->cfg->offline_ns > 0 && !t->off_begun && now >= t->t_off0) {
			t->off_begun = true;
			go_offline(t, now);
		}
		if (t->off_begun && !t->off_ended && now >= t->t_off1) {
			t->off_ended = true;
			go_online(t, now);
		}
	}
	if (!t->stopping)
		run_connect_queue(t, now);
	if (now >= t->next_house) {
		t->next_house = now + HOUSE_NS;
		housekeeping(t, now);
	}
	if (now >= t->next_snap) {
		t->next_snap = now + SNAP_NS;
		publish_interval(t);
	}
	/* Every tick: the main thread's drain decision must not see a stale zero. */
	atomic_store_explicit(&t->prog.inflight, t->inflight, memory_order_relaxed);
	atomic_store_explicit(&t->prog.outstanding, t->outstanding, memory_order_relaxed);
}

static void
arm_timer(bconn_thread_t *t)
{
	struct io_uring_sqe *sqe = get_sqe(t);

	io_uring_prep_timeout(sqe, &t->tick, 0, 0);
	io_uring_sqe_set_data64(sqe, mkud(OP_TIMER, 0, 0));
}

static bool
all_down(const bconn_thread_t *t)
{
	for (uint32_t ci = 0; ci < t->nconns; ci++)
		if (t->conns[ci].state != CS_DOWN)
			return false;
	return true;
}

/* --- setup --------------------------------------------------------------------------------------------- */

static int
setup_ring(bconn_thread_t *t)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg = { 0 };
	int r;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = RING_ENTRIES * 4;
	r = io_uring_queue_init_params(RING_ENTRIES, &t->ring, &p);
	if (r == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		r = io_uring_queue_init_params(RING_ENTRIES, &t->ring, &p);
	}
	if (r < 0)
		return r;
	t->ring_ok = true;
	/* liburing 2.3 has no io_uring_setup_buf_ring(): map and register the ring ourselves (docs/STYLE.md 11). */
	t->br_len = BR_ENTRIES * sizeof(struct io_uring_buf);
	t->br = mmap(NULL, t->br_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (t->br == MAP_FAILED) {
		t->br = NULL;
		return -errno;
	}
	io_uring_buf_ring_init(t->br);
	reg.ring_addr = (uint64_t)(uintptr_t)t->br;
	reg.ring_entries = BR_ENTRIES;
	reg.bgid = BR_GID;
	r = io_uring_register_buf_ring(&t->ring, &reg, 0);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < BR_ENTRIES; i++)
		io_uring_buf_ring_add(t->br, t->bufs + (size_t)i * BR_SIZE, BR_SIZE, (unsigned short)i,
			io_uring_buf_ring_mask(BR_ENTRIES), (int)i);
	io_uring_buf_ring_advance(t->br, BR_ENTRIES);
	return 0;
}

static void *
thread_main(void *arg)
{
	bconn_thread_t *t = arg;
	int64_t now;
	int r;

	r = setup_ring(t);
	if (r < 0) {
		fprintf(stderr, "ringmq-bench: thread %u: cannot set up io_uring: %s%s\n", t->idx, strerror(-r),
			r == -EPERM || r == -ENOSYS ? " (io_uring blocked by seccomp or sysctl?)" : "");
		atomic_store(&t->sh->abort, true);
		return NULL;
	}
	now = bench_now();
	t->tokens_at = now;
	t->tokens = 1.0;
	t->next_house = now + HOUSE_NS;
	t->next_snap = now + SNAP_NS;
	t->phase = BENCH_PH_SUBS;
	if (t->cfg->mode == BENCH_MODE_CONNECT) {
		for (uint32_t ci = 0; ci < t->nconns; ci++)
			enqueue_connect(t, &t->conns[ci], now);
	} else {
		for (uint32_t j = 0; j < t->npairs; j++)
			enqueue_connect(t, &t->conns[2 * j], now);
	}
	arm_timer(t);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		flush_sends(t);
		r = io_uring_submit_and_wait(&t->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			fprintf(stderr, "ringmq-bench: thread %u: io_uring_submit_and_wait: %s\n", t->idx,
				strerror(-r));
			atomic_store(&t->sh->abort, true);
			break;
		}
		now = bench_now();
		io_uring_for_each_cqe(&t->ring, head, cqe) {
			on_cqe(t, cqe, now);
			n++;
		}
		io_uring_cq_advance(&t->ring, n);
		if (t->timer_fired) {
			t->timer_fired = false;
			tick(t, now);
			arm_timer(t);
		}
		if (t->stopping && (all_down(t) || now > t->stop_deadline))
			break;
	}
	publish_interval(t);
	atomic_store(&t->prog.inflight, t->inflight);
	atomic_store(&t->prog.outstanding, t->outstanding);
	return NULL;
}

bconn_thread_t *
bconn_create(const bench_cfg_t *cfg, bench_shared_t *sh, uint32_t idx)
{
	bconn_thread_t *t = calloc(1, sizeof(*t));
	uint32_t share;
	bool connect_mode;

	if (t == NULL)
		return NULL;
	t->cfg = cfg;
	t->sh = sh;
	t->idx = idx;
	share = cfg->pairs / cfg->threads + (idx < cfg->pairs % cfg->threads ? 1 : 0);
	connect_mode = cfg->mode == BENCH_MODE_CONNECT;
	t->npairs = connect_mode ? 0 : share;
	t->nconns = connect_mode ? share : 2 * share;
	t->rate = cfg->connect_rate / cfg->threads;
	t->max_pending = cfg->max_pending / cfg->threads ? cfg->max_pending / cfg->threads : 1;
	t->period = 1e9 / cfg->rate;
	t->tick.tv_nsec = cfg->tick_us ? (long long)cfg->tick_us * 1000 : TICK_NS;
	pthread_mutex_init(&t->mu, NULL);
	bconn_interval_init(&t->cur);
	bconn_interval_init(&t->window);
	bconn_interval_init(&t->shared_iv);
	t->pairs = calloc(t->npairs ? t->npairs : 1, sizeof(*t->pairs));
	t->conns = calloc(t->nconns ? t->nconns : 1, sizeof(*t->conns));
	t->cq = calloc(t->nconns ? t->nconns : 1, sizeof(*t->cq));
	t->dirty = calloc(t->nconns ? t->nconns : 1, sizeof(*t->dirty));
	t->scratch = calloc(1, cfg->payload);
	t->bufs = aligned_alloc(4096, (size_t)BR_ENTRIES * BR_SIZE);
	if (!t->pairs || !t->conns || !t->cq || !t->dirty || !t->scratch || !t->bufs)
		goto err;
	if (cfg->tls != NULL) {
		t->tls_states = calloc(t->nconns ? t->nconns : 1, sizeof(*t->tls_states));
		t->plain = malloc(PLAIN_SIZE);
		if (!t->tls_states || !t->plain)
			goto err;
	}
	for (uint32_t j = 0; j < t->npairs; j++)
		bstat_pair_init(&t->pairs[j]);
	t->rng = (cfg->run_id ^ (idx * 0x9e3779b9u)) | 1;
	for (uint32_t ci = 0; ci < t->nconns; ci++) {
		conn_t *c = &t->conns[ci];
		uint32_t i;

		c->fd = -1;
		c->local = connect_mode ? ci : ci / 2;
		c->role = connect_mode ? ROLE_CYC : (uint8_t)(ci % 2);
		i = global_pair(t, c->local);
		c->addr = (uint8_t)(c->role == ROLE_SUB ? baddr_sub_index(i, cfg->sub_offset, cfg->brokers.n)
							: baddr_pub_index(i, cfg->brokers.n));
		if (t->tls_states != NULL) {
			btls_init(&t->tls_states[ci]);
			t->conns[ci].tls = &t->tls_states[ci];
		}
	}
	return t;

err:
	bconn_destroy(t);
	errno = ENOMEM;
	return NULL;
}

void
bconn_destroy(bconn_thread_t *t)
{
	if (t == NULL)
		return;
	if (t->ring_ok)
		io_uring_queue_exit(&t->ring);
	if (t->br != NULL)
		munmap(t->br, t->br_len);
	for (uint32_t ci = 0; t->conns != NULL && ci < t->nconns; ci++) {
		conn_t *c = &t->conns[ci];

		if (c->fd >= 0)
			close(c->fd);
		if (c->tls != NULL)
			btls_finish(c->tls);
		free(c->spill);
		free(c->out.p);
		free(c->pend.p);
		free(c->inf);
	}
	for (uint32_t j = 0; t->pairs != NULL && j < t->npairs; j++)
		bstat_pair_finish(&t->pairs[j]);
	free(t->pairs);
	free(t->conns);
	free(t->cq);
	free(t->dirty);
	free(t->scratch);
	free(t->bufs);
	free(t->tls_states);
	free(t->plain);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

int
bconn_start(bconn_thread_t *t)
{
	int r = pthread_create(&t->tid, NULL, thread_main, t);

	t->started = r == 0;
	return r;
}

void
bconn_join(bconn_thread_t *t)
{
	if (t->started)
		pthread_join(t->tid, NULL);
	t->started = false;
}

const bconn_progress_t *
bconn_progress(const bconn_thread_t *t)
{
	return &t->prog;
}

const bconn_interval_t *
bconn_window(const bconn_thread_t *t)
{
	return &t->window;
}

uint32_t
bconn_npairs(const bconn_thread_t *t)
{
	return t->npairs;
}

const bstat_pair_t *
bconn_pair(const bconn_thread_t *t, uint32_t j)
{
	return &t->pairs[j];
}

void
bconn_pair_info(const bconn_thread_t *t, uint32_t j, bconn_pair_info_t *out)
{
	const conn_t *s = &t->conns[2 * j], *p = &t->conns[2 * j + 1];

	out->pub_addr = p->addr;
	out->sub_addr = s->addr;
	out->reconnects_pub = p->reconnects;
	out->reconnects_sub = s->reconnects;
	out->received_after_reconnect = s->rx_reconn;
}

uint64_t
bconn_foreign(const bconn_thread_t *t)
{
	return t->foreign;
}

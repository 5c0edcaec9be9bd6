/* conn.c — client connections: accept, input framing, output with bounds, close, timeouts (see conn.h). */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "addrlimit.h"
#include "auth.h"
#include "conn_send.h"
#include "ctl.h"
#include "handle.h"
#include "log.h"
#include "loop.h"
#include "mesh.h"
#include "owner.h"
#include "relay.h"
#include "route.h"
#include "sess.h"
#include "store.h"
#include "tls.h"
#include "worker.h"

/* Input held longer than this (bytes) stops receiving until it is parsed. */
#define HOLD_MAX (64u << 10)

static struct {
	uint8_t kind_accept;
	bool accept_armed[2];      /* [0] the plain listener, [1] the TLS one */
	bool accepting;
	conn_t *live;
	conn_t *aborts;
	conn_t *tls_dirty;         /* TLS connections with plaintext to encrypt at the flush */
	uint32_t n_conns;
	uint32_t n_active;
	uint64_t next_id;
	uint64_t last_sweep_ms;
} C;

static const sock_ops_t conn_ops;
static const sock_ops_t relay_ops;

static inline conn_t *of_sock(sock_t *s)
{
	return (conn_t *)s; /* sk is the first member */
}

static void tls_out(conn_t *c);

/* --- accept ---------------------------------------------------------------------------------------------- */

static void arm_accept(void)
{
	int fds[2] = { W->listen_fd, W->tls_listen_fd };

	for (uint32_t i = 0; i < 2; i++) {
		struct io_uring_sqe *sqe;

		if (!C.accepting || C.accept_armed[i] || fds[i] < 0 || (i == 1 && !tls_enabled()))
			continue;
		sqe = loop_sqe();
		io_uring_prep_multishot_accept(sqe, fds[i], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		io_uring_sqe_set_data64(sqe, ud_make(C.kind_accept, 0, i));
		C.accept_armed[i] = true;
	}
}

static void on_accept(uint64_t ud, struct io_uring_cqe *cqe)
{
	uint32_t i = ud_idx(ud) & 1;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		C.accept_armed[i] = false;
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED)
			log_warn(-cqe->res, "accept failed");
	} else if (!C.accepting) {
		close(cqe->res);
	} else if (W->cfg->max_connections && C.n_conns >= 2 * (uint64_t)W->cfg->max_connections + 64) {
		/* The limit proper is checked at CONNECT by the owner worker (sessions it serves); sockets are capped
		 * here only against floods of connections that never send CONNECT. Nothing can be said in MQTT yet. */
		W->st.rejected_max_conn++;
		close(cqe->res);
	} else if (i == 1) {
		conn_adopt_tls(cqe->res);
	} else {
		conn_adopt(cqe->res, NULL, 0);
	}
	arm_accept();
}

void conn_start_accepting(void)
{
	C.accepting = true;
	arm_accept();
}

bool conn_accepting(void)
{
	return C.accepting;
}

void conn_stop_accepting(void)
{
	C.accepting = false;
	/* A multishot accept holds its listener: the loop does not end before its last completion (busy()),
	 * so once this process exits nothing keeps accepting on the port behind the kernel's asynchronous ring
	 * teardown. */
	for (uint32_t i = 0; i < 2; i++) {
		if (C.accept_armed[i])
			loop_cancel(ud_make(C.kind_accept, 0, i));
	}
}

/* --- adoption -------------------------------------------------------------------------------------------- */

static void set_addr(conn_t *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getpeername(c->sk.fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(c->addr, sizeof(c->addr), "%s:%d", host, port);
}

static void process(conn_t *c, const uint8_t *data, size_t len);

/* A connection around socket fd (-1: none, relay back side), in the live list; NULL on failure (fd closed). */
static conn_t *new_conn(int fd, const sock_ops_t *ops, bool paused)
{
	conn_t *c = calloc(1, sizeof(*c));

	if (!c || sock_open(&c->sk, fd, ops, paused) < 0) {
		log_error(ENOMEM, "cannot take a new connection");
		free(c);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	/* Thousands of connections each get a message now and then: none keeps an output buffer between them. */
	c->sk.out.lean = true;
	c->id = ((uint64_t)W->id << 48) | ++C.next_id;
	c->created_ms = loop_now();
	c->last_rx_ms = loop_now();
	c->last_tx_ms = loop_now();
	c->recv_max_out = 65535;
	c->relay_peer = -1;
	c->next = C.live;
	if (C.live)
		C.live->prev = c;
	C.live = c;
	C.n_conns++;
	return c;
}

/* The per-address limits (addrlimit.h) for a socket that lives here: false when c was closed for them. */
static bool admit(conn_t *c)
{
	char host[sizeof(c->addr)];
	char *colon;

	snprintf(host, sizeof(host), "%s", c->addr);
	if ((colon = strrchr(host, ':')))
		*colon = '\0';
	if (addrlimit_admit(host)) {
		c->addr_counted = true;
		return true;
	}
	log_conn(LOG_INFO, c->id, 0, "%s: too many connections from this address: closing", c->addr);
	c->aborted = true;
	conn_close(c, 0);
	return false;
}

static void release_addr(conn_t *c)
{
	char host[sizeof(c->addr)];
	char *colon;

	if (!c->addr_counted)
		return;
	snprintf(host, sizeof(host), "%s", c->addr);
	if ((colon = strrchr(host, ':')))
		*colon = '\0';
	addrlimit_release(host);
}

conn_t *conn_adopt(int fd, const uint8_t *data, size_t len)
{
	int one = 1;
	conn_t *c = new_conn(fd, &conn_ops, false);

	if (!c)
		return NULL;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_addr(c);
	if (!admit(c))
		return NULL;
	log_conn(LOG_DEBUG, c->id, 0, "accepted from %s", c->addr);
	if (len)
		process(c, data, len);
	return c;
}

conn_t *conn_adopt_tls(int fd)
{
	int one = 1;
	conn_t *c = new_conn(fd, &conn_ops, false);

	if (!c)
		return NULL;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_addr(c);
	if (!admit(c))
		return NULL;
	c->tls = tls_create();
	if (!c->tls) {
		log_error(ENOMEM, "cannot start TLS for %s", c->addr);
		c->aborted = true;
		conn_close(c, 0);
		return NULL;
	}
	log_conn(LOG_DEBUG, c->id, 0, "accepted from %s (TLS)", c->addr);
	return c;
}

conn_t *conn_adopt_relay(int peer, uint64_t link, const char *addr, const char *cert_cn)
{
	conn_t *c = new_conn(-1, &relay_ops, false);

	if (!c)
		return NULL;
	c->relay_back = true;
	c->relay_peer = (int16_t)peer;
	c->relay_link = link;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	if (cert_cn && !(c->cert_cn = strdup(cert_cn))) {
		c->relay_peer = -1;
		conn_close(c, 0);
		return NULL;
	}
	log_conn(LOG_DEBUG, c->id, 0, "relayed from worker %d for %s (link c%llu)", peer, c->addr,
		(unsigned long long)link);
	return c;
}

conn_t *conn_get(uint32_t idx, uint32_t gen)
{
	sock_t *s = sock_get(idx, gen);

	return s && (s->ops == &conn_ops || s->ops == &relay_ops) ? of_sock(s) : NULL;
}

static void on_free(sock_t *s)
{
	conn_t *c = of_sock(s);

	release_addr(c);
	/* A relay's back side says it is gone only now: its last bytes went out before this. */
	if (c->relay_back)
		relay_closed(c);
	else
		relay_forget(c);
	if (c->tls_dirty) {
		for (conn_t **pp = &C.tls_dirty; *pp; pp = &(*pp)->next_tls) {
			if (*pp == c) {
				*pp = c->next_tls;
				break;
			}
		}
	}
	tls_destroy(c->tls);
	buf_finish(&c->tls_plain);
	free(c->cert_cn);
	acl_unref(c->acl);
	free(c->username);
	reply_finish(&c->replies);
	if (c->alias_in) {
		for (uint32_t i = 0; i <= W->cfg->topic_alias_maximum; i++)
			free(c->alias_in[i].topic);
		free(c->alias_in);
	}
	if (c->alias_out) {
		for (uint32_t i = 0; i <= c->alias_max_out; i++)
			free(c->alias_out[i].topic);
		free(c->alias_out);
	}
	buf_finish(&c->rbuf);
	if (c->in_abort_list) {
		for (conn_t **pp = &C.aborts; *pp; pp = &(*pp)->next_abort) {
			if (*pp == c) {
				*pp = c->next_abort;
				break;
			}
		}
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		C.live = c->next;
	if (c->next)
		c->next->prev = c->prev;
	C.n_conns--;
	free(c);
}

/* --- input ----------------------------------------------------------------------------------------------- */

/* Why c's input may not be parsed now. */
static bool must_hold(const conn_t *c)
{
	return c->state == CONN_AUTH || (c->state == CONN_ACTIVE && ((c->sess && sess_loading(c->sess)) ||
		reply_pending(&c->replies) >= W->cfg->max_pending_replies));
}

static bool pressure;

/* Receive unless something says not to: a handoff in progress, too much held input, or the store / the
 * mesh being behind (then every client stops being read as its next bytes arrive: TCP pushes back). */
static void update_recv(conn_t *c)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_HANDOFF || (c->held && c->rbuf.len > HOLD_MAX) || c->relay_paused ||
	    (pressure && c->state == CONN_ACTIVE)) {
		if (!c->sk.paused)
			W->st.paused_input += !pressure;
		sock_pause(&c->sk);
	} else {
		sock_resume(&c->sk);
	}
}

/* Plaintext of a TLS connection, or bytes relayed from another worker. */
/* The handshake is done: count it and take the certificate's CN, before any plaintext is parsed (a client's
 * CONNECT often arrives in the same read as its Finished, and authentication needs the CN). */
static void tls_established(conn_t *c)
{
	if (c->tls_established)
		return;
	c->tls_established = true;
	W->st.tls_handshakes++;
	W->st.tls_resumed += tls_resumed(c->tls);
	if (*tls_peer_cn(c->tls) && !c->cert_cn)
		c->cert_cn = strdup(tls_peer_cn(c->tls));
}

static void on_plain(void *ctx, const uint8_t *p, size_t n)
{
	conn_t *c = ctx;

	tls_established(c);
	if (c->state == CONN_RELAY)
		relay_front_input(c, p, n);
	else
		process(c, p, n);
}

static void tls_data(conn_t *c, const uint8_t *p, size_t n)
{
	bool was_ready = tls_ready(c->tls);
	int ev = tls_input(c->tls, p, n, on_plain, c);

	if (ev < 0) {
		W->st.tls_failed += !was_ready;
		log_conn(LOG_INFO, c->id, 0, "%s: TLS %s: %s", c->addr, was_ready ? "error" : "handshake failed",
			tls_error(c->tls));
		tls_out(c); /* the alert */
		conn_close(c, 0);
		return;
	}
	if (ev == TLS_READY)
		tls_established(c);
	tls_out(c);
	if (ev == TLS_CLOSED)
		conn_close(c, 0);
}

void conn_input(conn_t *c, const uint8_t *p, size_t n)
{
	c->last_rx_ms = loop_now();
	W->st.bytes_in += n;
	if (c->tls)
		tls_data(c, p, n);
	else
		process(c, p, n);
	update_recv(c);
}

static void on_data(sock_t *s, const uint8_t *p, size_t n)
{
	conn_input(of_sock(s), p, n);
}

void conn_relay_pause(conn_t *c, bool paused)
{
	c->relay_paused = paused;
	update_recv(c);
}

static void on_eof(sock_t *s, int err)
{
	conn_t *c = of_sock(s);

	log_conn(LOG_DEBUG, c->id, err < 0 ? -err : 0, "connection closed by peer");
	if (c->state == CONN_HANDOFF)
		c->state = CONN_NEW; /* gone before it could move: nothing to hand over */
	if (err < 0 && c->state == CONN_ACTIVE) {
		/* A send or receive error: nothing more can be written, the rest of the output goes. */
		c->aborted = true;
	}
	conn_close(c, MQTT_RC_SUCCESS);
}

static void on_sent(sock_t *s, size_t n)
{
	conn_t *c = of_sock(s);

	W->st.bytes_out += n;
	c->last_tx_ms = loop_now();
	/* Room again for messages held back while the client was slow. */
	if (c->sess && conn_can_take(c))
		sess_pump(c->sess);
}

static void handoff_step(conn_t *c);

static void on_recv_stopped(sock_t *s)
{
	conn_t *c = of_sock(s);

	if (c->state == CONN_HANDOFF)
		handoff_step(c);
}

static const sock_ops_t conn_ops = {
	.on_data = on_data,
	.on_eof = on_eof,
	.on_sent = on_sent,
	.on_recv_stopped = on_recv_stopped,
	.on_free = on_free,
};

static void relay_flush_out(sock_t *s)
{
	conn_t *c = of_sock(s);
	size_t n = c->sk.out.pending.len;

	relay_back_flush(c);
	on_sent(s, n);
}

static void relay_pause_in(sock_t *s, bool paused)
{
	relay_back_pause(of_sock(s), paused);
}

/* The back side of a relay: no descriptor, its bytes travel the mesh (relay.h). */
static const sock_ops_t relay_ops = {
	.on_data = on_data,
	.on_eof = on_eof,
	.on_free = on_free,
	.on_flush = relay_flush_out,
	.on_pause = relay_pause_in,
};

static void start_handoff(conn_t *c)
{
	c->state = CONN_HANDOFF;
	c->handoff_sent = 0;
	if (c->sk.recv_armed)
		sock_pause(&c->sk); /* on_recv_stopped continues once no byte can be in flight */
	else
		handoff_step(c);
}

/* Move the connection to its owner: fd and bytes through the control channel, in chunks. */
static void handoff_step(conn_t *c)
{
	int ret = ctl_handoff(c);

	if (ret == -EAGAIN) {
		/* The channel is full: try again as soon as it has room (the sweep retries too). */
		ctl_when_writable(conn_handoff_retry);
		return;
	}
	if (ret < 0) {
		W->st.handoffs_failed++;
		log_conn(LOG_WARN, c->id, -ret, "%s: cannot hand the connection to worker %d: closing", c->addr,
			c->handoff_to);
		c->state = CONN_NEW;
		c->aborted = true;
		conn_close(c, MQTT_RC_SUCCESS);
		return;
	}
	if (c->handoff_sent < c->rbuf.len)
		return;
	/* Everything is on its way with the fd: our copy of the socket goes, without a byte written. */
	c->state = CONN_CLOSING;
	sock_close(&c->sk, false);
}

static void process(conn_t *c, const uint8_t *data, size_t len)
{
	const uint8_t *p;
	size_t n, off = 0;
	bool handoff = false;

	if (c->state == CONN_CLOSING || c->aborted)
		return;
	if (c->state == CONN_RELAY) {
		relay_front_input(c, data, len);
		return;
	}
	if (c->state == CONN_HANDOFF) {
		/* Bytes that were in flight while receiving stopped: they travel with the CONNECT. */
		if (buf_append(&c->rbuf, data, len) < 0)
			conn_fail(c, MQTT_E_NOMEM);
		return;
	}
	p = buf_carry_view(&c->rbuf, data, len, &n);
	if (!p) {
		conn_fail(c, MQTT_E_NOMEM);
		return;
	}
	while (off < n && c->state != CONN_CLOSING && !c->aborted) {
		mqtt_frame_t f;
		int64_t r;
		int err;

		if (must_hold(c)) {
			conn_hold(c);
			break;
		}
		r = mqtt_frame(p + off, n - off, W->cfg->max_packet_size, &f);
		if (r == 0)
			break;
		if (r < 0) {
			conn_fail(c, (int)r);
			return;
		}
		if (f.type == MQTT_PUBLISH && c->state == CONN_ACTIVE && !route_complete()) {
			/* The trie is partial while sessions are restored: not routed (nor acknowledged) before
			 * conn_routing_complete. */
			if (!c->held)
				W->st.publishes_held++;
			conn_hold(c);
			break;
		}
		err = handle_packet(c, &f);
		if (err == HANDLE_HANDOFF) {
			/* Keep CONNECT and everything after it: the owner worker parses them again. */
			handoff = true;
			break;
		}
		if (err == HANDLE_AUTH) {
			/* CONNECT stays first in the input: parsed again once authentication answers. */
			conn_hold(c);
			break;
		}
		if (err < 0) {
			conn_fail(c, err);
			return;
		}
		off += (size_t)r;
	}
	if (c->state == CONN_CLOSING)
		return;
	if (buf_carry_keep(&c->rbuf, p, n, off) < 0) {
		conn_fail(c, MQTT_E_NOMEM);
		return;
	}
	if (!c->rbuf.len)
		buf_finish(&c->rbuf); /* no partial packet left: an idle connection keeps no input buffer */
	if (handoff && c->tls) {
		/* The TLS session cannot move with the fd: keep it here and relay the MQTT bytes to the owner. */
		int ret = relay_open(c);

		if (ret < 0) {
			log_conn(LOG_WARN, c->id, -ret, "%s: cannot relay to worker %d: closing", c->addr, c->handoff_to);
			conn_close(c, 0);
			return;
		}
		c->state = CONN_RELAY;
	} else if (handoff) {
		start_handoff(c);
	}
}

void conn_hold(conn_t *c)
{
	c->held = true;
}

void conn_release(conn_t *c)
{
	if (!c->held || must_hold(c) || c->state != CONN_ACTIVE)
		return;
	c->held = false;
	if (c->rbuf.len)
		process(c, NULL, 0);
	update_recv(c);
}

void conn_routing_complete(void)
{
	for (conn_t *c = C.live, *next; c; c = next) {
		next = c->next;
		if (c->held)
			conn_release(c);
	}
}

void conn_auth_resume(conn_t *c)
{
	if (c->state != CONN_NEW)
		return;
	c->held = false;
	process(c, NULL, 0);
	update_recv(c);
}

void conn_drain(conn_t *c)
{
	uint8_t buf[16384];
	ssize_t n;

	/* Our single thread is the only reader right now: io_uring's multishot recv runs only inside
	 * io_uring_enter, so these bytes are the next ones in the stream. */
	while (conn_usable(c) && !c->held && c->sk.fd >= 0 &&
	       (n = recv(c->sk.fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		conn_input(c, buf, (size_t)n);
}

/* --- output ---------------------------------------------------------------------------------------------- */

static uint32_t outbuf_limit(void)
{
	uint64_t min = 2 * (uint64_t)W->cfg->max_packet_size + 65536;

	return W->cfg->max_outbuf > min ? W->cfg->max_outbuf : (uint32_t)(min > UINT32_MAX ? UINT32_MAX : min);
}

/* Output queued for c: on the socket, and (TLS) plaintext not encrypted yet. */
static size_t queued(const conn_t *c)
{
	return sock_outq(&c->sk) + c->tls_plain.len;
}

uint8_t *conn_reserve(conn_t *c, size_t n)
{
	uint8_t *p;

	if (c->aborted || c->state == CONN_CLOSING)
		return NULL;
	if (queued(c) + n > outbuf_limit()) {
		W->st.closed_outbuf++;
		log_conn(LOG_INFO, c->id, 0, "%s takes its output too slowly (%zu bytes queued): disconnecting",
			c->addr, queued(c));
		conn_abort(c, MQTT_E_QUOTA);
		return NULL;
	}
	/* TLS: plaintext gathers for the turn and is encrypted once, at the flush (fewer, fuller records). */
	p = c->tls ? buf_reserve(&c->tls_plain, n) : sock_reserve(&c->sk, n);
	if (!p) {
		W->st.closed_nomem++;
		log_conn(LOG_ERR, c->id, ENOMEM, "%s: no memory for %zu output bytes: disconnecting", c->addr, n);
		conn_abort(c, MQTT_E_NOMEM);
	}
	return p;
}

void conn_commit(conn_t *c, size_t n)
{
	if (!c->tls) {
		sock_commit(&c->sk, n);
		return;
	}
	c->tls_plain.len += (uint32_t)n;
	if (!c->tls_dirty) {
		c->tls_dirty = true;
		c->next_tls = C.tls_dirty;
		C.tls_dirty = c;
	}
}

/* Move the TLS engine's ciphertext (handshake messages, records, alerts) to the socket. */
static void tls_out(conn_t *c)
{
	size_t n;

	while ((n = tls_pending_out(c->tls))) {
		uint8_t *p = sock_reserve(&c->sk, n);

		if (!p) {
			W->st.closed_nomem++;
			conn_abort(c, MQTT_E_NOMEM);
			return;
		}
		sock_commit(&c->sk, tls_take_out(c->tls, p, n));
	}
}

/* Encrypt what a TLS connection wrote this turn. */
static void tls_encrypt(conn_t *c)
{
	if (c->tls_plain.len && !c->aborted) {
		if (tls_write(c->tls, c->tls_plain.data, c->tls_plain.len) < 0) {
			log_conn(LOG_INFO, c->id, 0, "%s: TLS: %s", c->addr, tls_error(c->tls));
			conn_abort(c, MQTT_E_CLOSE);
		}
		tls_out(c);
	}
	buf_finish(&c->tls_plain); /* encrypted: an idle connection keeps no plaintext buffer */
}

static void flush_tls(void)
{
	while (C.tls_dirty) {
		conn_t *c = C.tls_dirty;

		C.tls_dirty = c->next_tls;
		c->tls_dirty = false;
		tls_encrypt(c);
	}
}

bool conn_can_take(const conn_t *c)
{
	return conn_usable(c) && queued(c) < outbuf_limit() / 2;
}

bool conn_qos0_room(conn_t *c, size_t n)
{
	if (queued(c) + n <= W->cfg->max_outbuf_qos0)
		return true;
	W->st.dropped_qos0_outbuf++;
	return false;
}

/* --- failure and close ----------------------------------------------------------------------------------- */

void conn_fail(conn_t *c, int err)
{
	mqtt_answer_t a = mqtt_err_answer(err, c->version, c->state == CONN_NEW || c->state == CONN_AUTH);

	if (c->state == CONN_CLOSING)
		return;
	/* Refusals of a well-formed request (no memory, a limit, authentication) are counted where they happen. */
	W->st.protocol_errors += err != MQTT_E_NOMEM && err != MQTT_E_QUOTA && err != MQTT_E_BAD_AUTH &&
		err != MQTT_E_NOT_AUTHORIZED && err != MQTT_E_BUSY && err != MQTT_E_UNAVAILABLE;
	log_conn(LOG_INFO, c->id, 0, "%s: %s (reason 0x%02x)", c->addr, a.text, a.code);
	if (!c->aborted) {
		if (a.action == MQTT_ACT_CONNACK) {
			mqtt_connack_t ack;

			memset(&ack, 0, sizeof(ack));
			ack.reason = a.code;
			if (c->version == MQTT_V5)
				conn_send_reason_string(c, &ack.props, a.text);
			conn_send_connack(c, &ack);
		} else if (a.action == MQTT_ACT_DISCONNECT) {
			conn_send_disconnect(c, a.code, a.text);
		}
	}
	conn_close(c, a.code);
}

void conn_abort(conn_t *c, int err)
{
	if (c->aborted || c->state == CONN_CLOSING)
		return;
	c->aborted = true;
	c->close_reason = (uint8_t)(err == MQTT_E_QUOTA ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED);
	/* What is queued is dropped: a client that does not read, or that we cannot answer, gets no more. */
	sock_close(&c->sk, false);
	if (!c->in_abort_list) {
		c->in_abort_list = true;
		c->next_abort = C.aborts;
		C.aborts = c;
	}
}

void conn_close(conn_t *c, uint8_t reason)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_ACTIVE) {
		C.n_active--;
		W->st.disconnects++;
	}
	if (!c->close_reason)
		c->close_reason = reason;
	if (c->state == CONN_AUTH) {
		auth_cancel(c);
		owner_cancel(c);
	}
	if (c->state == CONN_RELAY)
		relay_closed(c);
	c->state = CONN_CLOSING;
	if (c->sess)
		sess_detach(c);
	if (c->tls && !c->aborted) {
		/* The last records and close_notify go before the socket closes. */
		tls_encrypt(c);
		tls_shutdown(c->tls);
		tls_out(c);
	}
	sock_close(&c->sk, !c->aborted);
}

/* Aborted connections are closed here, at the start of the flush, where no handler is running. */
static void flush_aborts(void)
{
	while (C.aborts) {
		conn_t *c = C.aborts;

		C.aborts = c->next_abort;
		c->in_abort_list = false;
		conn_close(c, c->close_reason);
	}
}

/* --- timeouts -------------------------------------------------------------------------------------------- */

static void sweep(void)
{
	uint64_t now = loop_now();

	/* Keepalive and CONNECT timeouts have 1 s resolution: walk the connections once a second, not per tick. */
	if (now - C.last_sweep_ms < 1000)
		return;
	C.last_sweep_ms = now;
	for (conn_t *c = C.live, *next; c; c = next) {
		next = c->next;
		switch (c->state) {
		case CONN_NEW:
		case CONN_AUTH: {
			/* For TLS one timeout covers TCP, the TLS handshake and CONNECT; for everyone it covers
			 * authentication too: a credential store that does not answer in time gets the client "server
			 * unavailable" rather than a connection that never ends. */
			uint32_t limit = c->tls ? W->cfg->tls_handshake_timeout_ms : W->cfg->connect_timeout_ms;

			if (now - c->created_ms > limit && c->state == CONN_AUTH) {
				log_conn(LOG_INFO, c->id, 0, "%s: not authenticated in %u ms", c->addr, limit);
				W->st.auth_unavailable++;
				W->st.closed_connect_timeout++;
				conn_fail(c, MQTT_E_UNAVAILABLE);
			} else if (now - c->created_ms > limit) {
				log_conn(LOG_INFO, c->id, 0, "%s sent no %sCONNECT in %u ms: closing", c->addr,
					c->tls && !tls_ready(c->tls) ? "TLS handshake and " : "", limit);
				W->st.tls_failed += c->tls && !tls_ready(c->tls);
				W->st.closed_connect_timeout++;
				conn_close(c, MQTT_RC_SUCCESS);
			}
			break;
		}
		case CONN_ACTIVE:
			/* [MQTT-3.1.2-24]: one and a half times the keep alive without a packet. */
			if (c->keepalive && now - c->last_rx_ms > (uint64_t)c->keepalive * 1500) {
				log_conn(LOG_INFO, c->id, 0, "keep alive timeout (%us)", c->keepalive);
				conn_send_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, NULL);
				conn_close(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
			} else if (sock_outq(&c->sk) && now - c->last_tx_ms > W->cfg->write_timeout_ms) {
				W->st.closed_outbuf++;
				log_conn(LOG_INFO, c->id, 0, "%s took no output for %u ms (%zu bytes queued): disconnecting",
					c->addr, W->cfg->write_timeout_ms, sock_outq(&c->sk));
				conn_abort(c, MQTT_E_QUOTA);
			}
			break;
		case CONN_HANDOFF:
			if (!c->sk.recv_armed)
				handoff_step(c); /* the control channel was full: try again */
			break;
		default:
			break;
		}
	}
	flush_aborts();
}

void conn_stop_all(void)
{
	conn_stop_accepting();
	for (conn_t *c = C.live; c; c = c->next) {
		if (c->state == CONN_ACTIVE)
			conn_send_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
		if (c->state != CONN_HANDOFF)
			conn_close(c, MQTT_RC_SERVER_SHUTTING_DOWN);
	}
}

uint32_t conn_count(void)
{
	return C.n_conns;
}

uint32_t conn_active_count(void)
{
	return C.n_active;
}

void conn_revoke(uint64_t cred)
{
	for (conn_t *c = C.live, *next; c; c = next) {
		next = c->next;
		if (!auth_cred_revoked(cred, c->cred) || !conn_usable(c))
			continue;
		W->st.auth_revoked++;
		log_conn(LOG_INFO, c->id, 0, "%s: credential changed or deleted: disconnecting", c->addr);
		conn_send_disconnect(c, MQTT_RC_NOT_AUTHORIZED, "credential changed or deleted");
		conn_close(c, MQTT_RC_NOT_AUTHORIZED);
	}
}

void conn_rules_changed(void)
{
	for (conn_t *c = C.live; c; c = c->next) {
		if (conn_usable(c) && c->sess)
			handle_recheck_subscriptions(c);
	}
}

void conn_activated(conn_t *c)
{
	c->state = CONN_ACTIVE;
	C.n_active++;
	W->st.connects++;
}

void conn_handoff_retry(void)
{
	for (conn_t *c = C.live, *next; c; c = next) {
		next = c->next;
		if (c->state == CONN_HANDOFF && !c->sk.recv_armed)
			handoff_step(c);
	}
}

/* --- back-pressure --------------------------------------------------------------------------------------- */

static void check_pressure(void)
{
	bool now = store_busy() || mesh_busy();

	if (now == pressure)
		return;
	pressure = now;
	if (pressure)
		return; /* each connection stops as its next bytes arrive (update_recv) */
	for (conn_t *c = C.live; c; c = c->next) {
		if (c->sk.paused)
			update_recv(c);
	}
}

static bool busy(void)
{
	return C.n_conns > 0 || C.accept_armed[0] || C.accept_armed[1];
}

static void flush(void)
{
	flush_aborts();
	flush_tls();
	flush_aborts(); /* encryption may have failed */
	check_pressure();
}

void conn_module_init(void)
{
	C.kind_accept = loop_register("accept", on_accept);
	loop_on_flush(flush, LOOP_ORDER_CONN);
	loop_on_tick(sweep);
	loop_on_drain(busy);
}

/* conn.c — client connections: accept, receive, parse, output, close, timers (see conn.h). */
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

#include "buf.h"
#include "ctl.h"
#include "handle.h"
#include "log.h"
#include "loop.h"
#include "route.h"
#include "sess.h"
#include "store.h"

/* A closing connection whose peer does not read gets this long to take its last bytes. */
#define CLOSE_LINGER_MS 2000

static void arm_accept(void)
{
	struct io_uring_sqe *sqe;

	if (W->stopping || W->accept_armed)
		return;
	sqe = loop_sqe();
	io_uring_prep_multishot_accept(sqe, W->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(UD_ACCEPT, 0, 0));
	W->accept_armed = true;
}

void conn_on_accept(struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		W->accept_armed = false;
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED)
			log_warn(-cqe->res, "accept failed");
	} else if (W->stopping) {
		close(cqe->res);
	} else if (W->cfg->max_connections && W->n_conns >= 2 * (uint64_t)W->cfg->max_connections + 64) {
		/* The limit proper is checked at CONNECT by the owner worker (sessions it serves); sockets are capped
		 * here only against floods of connections that never send CONNECT. Nothing can be said in MQTT yet. */
		W->st.rejected_max_conn++;
		close(cqe->res);
	} else {
		conn_adopt(cqe->res, NULL, 0);
	}
	if (!W->accept_armed)
		arm_accept();
}

static int alloc_idx(uint32_t *idx)
{
	if (!W->n_free) {
		uint32_t cap = W->conns_cap ? W->conns_cap * 2 : 1024;
		conn_t **conns = realloc(W->conns, cap * sizeof(*conns));
		uint32_t *gen, *fr;

		if (!conns)
			return -ENOMEM;
		W->conns = conns;
		gen = realloc(W->conn_gen, cap * sizeof(*gen));
		if (!gen)
			return -ENOMEM;
		W->conn_gen = gen;
		fr = realloc(W->free_idx, cap * sizeof(*fr));
		if (!fr)
			return -ENOMEM;
		W->free_idx = fr;
		for (uint32_t i = cap; i > W->conns_cap; i--) {
			W->conns[i - 1] = NULL;
			W->conn_gen[i - 1] = 0;
			W->free_idx[W->n_free++] = i - 1;
		}
		W->conns_cap = cap;
	}
	*idx = W->free_idx[--W->n_free];
	return 0;
}

static void set_addr(conn_t *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
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

static void mark_dirty(conn_t *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->next_dirty = W->dirty;
	W->dirty = c;
}

static void arm_recv(conn_t *c)
{
	if (c->recv_armed || c->paused || c->state == CONN_CLOSING || c->state == CONN_HANDOFF)
		return;
	loop_arm_recv(c->fd, ud_make(UD_RECV, c->gen, c->idx));
	c->recv_armed = true;
	c->refs++;
}

static void process(conn_t *c, const uint8_t *data, size_t len);

conn_t *conn_adopt(int fd, const uint8_t *data, size_t len)
{
	int one = 1;
	uint32_t idx;
	conn_t *c;

	c = calloc(1, sizeof(*c));
	if (!c || alloc_idx(&idx) < 0) {
		log_error(ENOMEM, "cannot take a new connection");
		free(c);
		close(fd);
		return NULL;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->idx = idx;
	c->gen = ++W->conn_gen[idx] & 0xffffff;
	c->id = ((uint64_t)W->id << 48) | ++W->next_conn_id;
	c->created_ms = W->now_ms;
	c->last_rx_ms = W->now_ms;
	c->recv_max_out = 65535;
	W->conns[idx] = c;
	W->n_conns++;
	c->next = W->live;
	if (W->live)
		W->live->prev = c;
	W->live = c;
	set_addr(c);
	log_conn(LOG_DEBUG, c->id, 0, "accepted from %s", c->addr);
	if (len)
		process(c, data, len);
	arm_recv(c);
	return c;
}

conn_t *conn_get(uint32_t idx, uint32_t gen)
{
	conn_t *c;

	if (idx >= W->conns_cap)
		return NULL;
	c = W->conns[idx];
	if (!c || c->gen != gen)
		return NULL;
	return c;
}

static void conn_free(conn_t *c)
{
	pend_t *p;

	close(c->fd);
	while (c->pend.len) {
		p = ring_at(&c->pend, sizeof(pend_t), 0);
		free(p->packet);
		free(p->retained);
		ring_pop(&c->pend);
	}
	ring_finish(&c->pend);
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
	outq_finish(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		W->live = c->next;
	if (c->next)
		c->next->prev = c->prev;
	W->conns[c->idx] = NULL;
	W->free_idx[W->n_free++] = c->idx;
	W->n_conns--;
	free(c);
}

/* Free once closed, idle and out of the flush list. Returns true if freed. */
static bool try_free(conn_t *c)
{
	if (c->state != CONN_CLOSING || c->refs || c->dirty)
		return false;
	if (outq_size(&c->out) && !c->out.inflight) {
		mark_dirty(c);
		return false;
	}
	if (outq_size(&c->out))
		return false;
	conn_free(c);
	return true;
}

void conn_on_recv(uint32_t idx, uint32_t gen, struct io_uring_cqe *cqe)
{
	conn_t *c = conn_get(idx, gen);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int bid = -1;

	if (cqe->flags & IORING_CQE_F_BUFFER)
		bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	if (!c) {
		if (bid >= 0)
			loop_buf_return((uint16_t)bid);
		return;
	}
	if (cqe->res > 0 && bid >= 0) {
		if (c->state != CONN_CLOSING) {
			c->last_rx_ms = W->now_ms;
			W->st.bytes_in += (uint64_t)cqe->res;
			process(c, loop_buf((uint16_t)bid), (size_t)cqe->res);
		}
	}
	if (bid >= 0)
		loop_buf_return((uint16_t)bid);
	if (more && !c->paused && c->state == CONN_ACTIVE && store_busy()) {
		/* Flow control: the store is behind, so stop reading; TCP pushes back on the client. */
		struct io_uring_sqe *sqe = loop_sqe();

		c->paused = true;
		io_uring_prep_cancel64(sqe, ud_make(UD_RECV, c->gen, c->idx), 0);
		io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, 0, 0));
	}
	if (!more) {
		c->recv_armed = false;
		c->refs--;
		if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED)) {
			if (c->state == CONN_HANDOFF) {
				/* The client went away before we could move it: nothing to hand over. */
				c->state = CONN_NEW;
			}
			log_conn(LOG_DEBUG, c->id, cqe->res < 0 ? -cqe->res : 0, "connection closed by peer");
			conn_close(c, MQTT_RC_SUCCESS);
		} else if (c->state == CONN_HANDOFF) {
			mark_dirty(c);
		} else {
			/* -ENOBUFS ends a multishot recv: buffers are back by now, so re-arm. */
			arm_recv(c);
		}
	}
	try_free(c);
}

void conn_on_send(uint32_t idx, uint32_t gen, struct io_uring_cqe *cqe)
{
	conn_t *c = conn_get(idx, gen);

	if (!c)
		return;
	c->refs--;
	if (cqe->res < 0) {
		log_conn(LOG_DEBUG, c->id, -cqe->res, "send failed");
		/* Nothing more can be written: drop what is queued so the connection can go. */
		c->out.inflight = false;
		c->out.sending.len = 0;
		c->out.off = 0;
		c->out.pending.len = 0;
		conn_close(c, MQTT_RC_SUCCESS);
	} else {
		W->st.bytes_out += (uint64_t)cqe->res;
		if (outq_sent(&c->out, c->fd, ud_make(UD_SEND, c->gen, c->idx), cqe->res))
			c->refs++;
		else if (c->out.pending.len)
			mark_dirty(c);
	}
	try_free(c);
}

uint8_t *conn_reserve(conn_t *c, size_t n)
{
	return outq_reserve(&c->out, n);
}

void conn_commit(conn_t *c, size_t n)
{
	c->out.pending.len += (uint32_t)n;
	mark_dirty(c);
}

void conn_send_ack(conn_t *c, uint8_t type, uint16_t pid, uint8_t reason)
{
	mqtt_ack_t a;
	uint8_t *p;
	size_t n;

	memset(&a, 0, sizeof(a));
	a.packet_id = pid;
	a.reason = reason;
	n = mqtt_ack_size(c->version, &a);
	p = conn_reserve(c, n);
	if (!p)
		return;
	conn_commit(c, mqtt_encode_ack(p, n, type, c->version, &a));
}

void conn_send_disconnect(conn_t *c, uint8_t reason, const char *reason_string)
{
	mqtt_ack_t d;
	uint8_t *p;
	size_t n;

	/* MQTT 3.1.1 has no server-to-client DISCONNECT. */
	if (c->version != MQTT_V5)
		return;
	memset(&d, 0, sizeof(d));
	d.reason = reason;
	if (reason_string && c->problem_info) {
		d.props.present |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
		d.props.reason_string.p = (const uint8_t *)reason_string;
		d.props.reason_string.len = (uint32_t)strlen(reason_string);
	}
	n = mqtt_disconnect_size(c->version, &d);
	p = conn_reserve(c, n);
	if (!p)
		return;
	conn_commit(c, mqtt_encode_disconnect(p, n, c->version, &d));
	c->close_reason = reason;
}

static uint8_t err_reason(int err)
{
	switch (err) {
	case CONN_E_RECV_MAX: return MQTT_RC_RECEIVE_MAX_EXCEEDED;
	case CONN_E_ALIAS: return MQTT_RC_TOPIC_ALIAS_INVALID;
	case CONN_E_NOMEM: return MQTT_RC_QUOTA_EXCEEDED;
	case CONN_E_SESSION_EXPIRY:
	case CONN_E_UNEXPECTED: return MQTT_RC_PROTOCOL_ERROR;
	case CONN_E_AUTH: return MQTT_RC_BAD_AUTH_METHOD;
	case CONN_E_UNAVAILABLE: return MQTT_RC_SERVER_UNAVAILABLE;
	case CONN_E_BUSY: return MQTT_RC_QUOTA_EXCEEDED;
	default: return mqtt_err_reason(err);
	}
}

void conn_fail(conn_t *c, int err)
{
	uint8_t reason = err_reason(err);

	W->st.protocol_errors++;
	log_conn(LOG_INFO, c->id, 0, "%s: %s (reason 0x%02x)", c->addr,
		err <= CONN_E_CLOSE ? "protocol violation" : mqtt_err_str(err), reason);
	if (err == CONN_E_CLOSE) {
		conn_close(c, MQTT_RC_SUCCESS);
		return;
	}
	if (c->state == CONN_NEW) {
		/* Errors before CONNACK are answered with a CONNACK where the version allows it. */
		mqtt_connack_t ack;
		uint8_t *p;
		size_t n;
		int v3;

		memset(&ack, 0, sizeof(ack));
		if (c->version == MQTT_V5) {
			ack.reason = reason;
		} else if (c->version && (err == CONN_E_UNAVAILABLE || err == CONN_E_BUSY)) {
			ack.reason = MQTT_V3_SERVER_UNAVAILABLE;
		} else if (c->version && (v3 = mqtt_err_connack_v3(err)) > 0) {
			ack.reason = (uint8_t)v3;
		} else {
			conn_close(c, reason);
			return;
		}
		n = mqtt_connack_size(c->version, &ack);
		p = conn_reserve(c, n);
		if (p)
			conn_commit(c, mqtt_encode_connack(p, n, c->version, &ack));
	} else {
		conn_send_disconnect(c, reason, mqtt_err_str(err));
	}
	conn_close(c, reason);
}

void conn_close(conn_t *c, uint8_t reason)
{
	struct io_uring_sqe *sqe;

	if (c->state == CONN_CLOSING)
		return;
	if (c->state != CONN_HANDOFF)
		W->st.disconnects += c->sess != NULL;
	if (c->state == CONN_ACTIVE)
		W->n_active--;
	c->state = CONN_CLOSING;
	c->created_ms = W->now_ms; /* reused as the linger start */
	if (c->sess)
		sess_detach(c);
	if (c->recv_armed) {
		sqe = loop_sqe();
		io_uring_prep_cancel64(sqe, ud_make(UD_RECV, c->gen, c->idx), 0);
		io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, 0, 0));
	}
	mark_dirty(c);
}

static void start_handoff(conn_t *c)
{
	struct io_uring_sqe *sqe;

	c->state = CONN_HANDOFF;
	if (c->recv_armed) {
		sqe = loop_sqe();
		io_uring_prep_cancel64(sqe, ud_make(UD_RECV, c->gen, c->idx), 0);
		io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, 0, 0));
	} else {
		mark_dirty(c);
	}
}

static void process(conn_t *c, const uint8_t *data, size_t len)
{
	const uint8_t *p;
	size_t n, off = 0;
	bool handoff = false;

	if (c->state == CONN_HANDOFF) {
		if (buf_append(&c->rbuf, data, len) < 0)
			conn_close(c, MQTT_RC_SUCCESS);
		return;
	}
	if (c->rbuf.len) {
		if (buf_append(&c->rbuf, data, len) < 0) {
			conn_fail(c, CONN_E_NOMEM);
			return;
		}
		p = c->rbuf.data;
		n = c->rbuf.len;
	} else {
		p = data;
		n = len;
	}
	while (off < n && c->state != CONN_CLOSING) {
		mqtt_frame_t f;
		int64_t r;
		int err;

		/* A session still loading from the store cannot judge a resent QoS 2 PUBLISH or an ack: hold the
		 * client's next packets until sess_loaded() calls conn_resume_input(). */
		if (c->state == CONN_ACTIVE && c->sess && c->sess->loading)
			break;
		r = mqtt_frame(p + off, n - off, W->cfg->max_packet_size, &f);

		if (r == 0)
			break;
		if (r < 0) {
			conn_fail(c, (int)r);
			return;
		}
		err = handle_packet(c, &f);
		if (err == CONN_HANDOFF_NEEDED) {
			/* Keep CONNECT and everything after it: the owner worker parses them again. */
			handoff = true;
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
	if (p == c->rbuf.data) {
		memmove(c->rbuf.data, c->rbuf.data + off, n - off);
		c->rbuf.len = (uint32_t)(n - off);
		if (!c->rbuf.len && c->rbuf.cap > 65536)
			buf_finish(&c->rbuf);
	} else if (off < n && buf_append(&c->rbuf, p + off, n - off) < 0) {
		conn_fail(c, CONN_E_NOMEM);
		return;
	}
	if (handoff)
		start_handoff(c);
}

void conn_flush_all(void)
{
	while (W->dirty) {
		conn_t *c = W->dirty;

		W->dirty = c->next_dirty;
		c->dirty = false;
		if (c->state == CONN_HANDOFF) {
			if (!c->recv_armed && ctl_handoff(c) == 0) {
				c->state = CONN_CLOSING;
				c->out.pending.len = 0;
				try_free(c);
			}
			continue;
		}
		if (outq_start(&c->out, c->fd, ud_make(UD_SEND, c->gen, c->idx)))
			c->refs++;
		try_free(c);
	}
}

void conn_tick(void)
{
	static uint64_t last;
	uint64_t now = W->now_ms;

	/* Keepalive and CONNECT timeouts have 1 s resolution: walk the connections once a second, not per tick
	 * (100k idle devices would otherwise cost 400k visits a second). */
	if (now - last < 1000 && !W->stopping)
		return;
	last = now;

	for (conn_t *c = W->live, *next; c; c = next) {
		next = c->next;
		switch (c->state) {
		case CONN_NEW:
			if (now - c->created_ms > W->cfg->connect_timeout_ms) {
				log_conn(LOG_INFO, c->id, 0, "%s sent no CONNECT in %u ms: closing", c->addr,
					W->cfg->connect_timeout_ms);
				conn_close(c, MQTT_RC_SUCCESS);
			}
			break;
		case CONN_ACTIVE:
			/* [MQTT-3.1.2-24]: one and a half times the keep alive without a packet. */
			if (c->keepalive && now - c->last_rx_ms > (uint64_t)c->keepalive * 1500) {
				log_conn(LOG_INFO, c->id, 0, "keep alive timeout (%us)", c->keepalive);
				conn_send_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, NULL);
				conn_close(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
			}
			break;
		case CONN_HANDOFF:
			mark_dirty(c); /* retry a handoff the control channel refused */
			break;
		case CONN_CLOSING:
			if (now - c->created_ms > CLOSE_LINGER_MS)
				shutdown(c->fd, SHUT_RDWR);
			break;
		}
	}
}

void conn_resume_input(conn_t *c)
{
	if (c->rbuf.len && c->state == CONN_ACTIVE)
		process(c, NULL, 0);
}

void conn_drain(conn_t *c)
{
	uint8_t buf[16384];
	ssize_t n;

	/* Our single thread is the only reader right now: io_uring's multishot recv runs only inside
	 * io_uring_enter, so these bytes are the next ones in the stream. */
	while (c->state == CONN_ACTIVE && (n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		c->last_rx_ms = W->now_ms;
		W->st.bytes_in += (uint64_t)n;
		process(c, buf, (size_t)n);
	}
}

void conn_resume_all(void)
{
	for (conn_t *c = W->live; c; c = c->next) {
		if (c->paused) {
			c->paused = false;
			arm_recv(c);
		}
	}
}

bool conn_all_closed(void)
{
	return W->n_conns == 0;
}

void conn_stop_all(void)
{
	struct io_uring_sqe *sqe;

	if (W->accept_armed) {
		sqe = loop_sqe();
		io_uring_prep_cancel64(sqe, ud_make(UD_ACCEPT, 0, 0), 0);
		io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, 0, 0));
	}
	for (conn_t *c = W->live; c; c = c->next) {
		if (c->state == CONN_ACTIVE)
			conn_send_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
		if (c->state != CONN_HANDOFF)
			conn_close(c, MQTT_RC_SERVER_SHUTTING_DOWN);
	}
}


void conn_start_accepting(void)
{
	arm_accept();
}

void conn_pend_flush(conn_t *c)
{
	while (c->pend.len) {
		pend_t *p = ring_at(&c->pend, sizeof(pend_t), 0);

		if (p->waiting)
			break;
		if (c->state == CONN_ACTIVE) {
			if (p->packet) {
				uint8_t *dst = conn_reserve(c, p->packet_len);

				if (dst) {
					memcpy(dst, p->packet, p->packet_len);
					conn_commit(c, p->packet_len);
				}
			} else {
				conn_send_ack(c, p->type, p->pid, p->reason);
			}
			for (uint32_t off = 0; off + 2 <= p->retained_len;) {
				uint16_t len;

				memcpy(&len, p->retained + off, 2);
				route_send_retained(c->sess, (const char *)p->retained + off + 2, len);
				off += 2u + len;
			}
		}
		free(p->retained);
		if (p->type == MQTT_PUBACK && c->inflight_in)
			c->inflight_in--;
		free(p->packet);
		ring_pop(&c->pend);
		c->pend_seq++;
	}
}

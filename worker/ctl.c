/* ctl.c — supervisor control channel, worker side (see ctl.h and common/chan.h). */
#include "ctl.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "auth.h"
#include "conn.h"
#include "conn_send.h"
#include "log.h"
#include "loop.h"
#include "mesh.h"
#include "route.h"
#include "sess.h"
#include "store.h"
#include "hist.h"
#include "sys.h"
#include "tls.h"
#include "worker.h"

/* A handoff whose bytes come in several records: held until the last one is here. */
typedef struct inbound {
	struct inbound *next;
	uint64_t conn_id;
	int fd;
	uint32_t total;
	uint64_t deadline_ms;
	buf_t data;
} inbound_t;

static struct {
	uint8_t kind;
	uint8_t kind_out;
	bool armed;
	bool out_armed;
	void (*on_writable)(void);
	inbound_t *inbound;
	uint8_t payload[CHAN_MAX_PAYLOAD];
} K;

static void on_poll(uint64_t ud, struct io_uring_cqe *cqe);

static void arm(void)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_poll_multishot(sqe, W->ctl_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(K.kind, 0, 0));
	K.armed = true;
}

static void tick(void)
{
	sys_report(); /* an interest change the full channel did not take */
	/* A handoff whose remaining bytes never came (the sender died): the client reconnects. */
	for (inbound_t **pp = &K.inbound; *pp;) {
		inbound_t *in = *pp;

		if (loop_now() < in->deadline_ms) {
			pp = &in->next;
			continue;
		}
		log_warn(0, "handoff of connection c%llu incomplete (%u of %u bytes): closing it",
			(unsigned long long)in->conn_id, in->data.len, in->total);
		W->st.handoffs_failed++;
		*pp = in->next;
		close(in->fd);
		buf_finish(&in->data);
		free(in);
	}
}

static void on_writable(uint64_t ud, struct io_uring_cqe *cqe)
{
	void (*fn)(void) = K.on_writable;

	(void)ud;
	(void)cqe;
	K.out_armed = false;
	K.on_writable = NULL;
	if (fn)
		fn();
}

void ctl_when_writable(void (*fn)(void))
{
	struct io_uring_sqe *sqe;

	K.on_writable = fn;
	if (K.out_armed)
		return;
	sqe = loop_sqe();
	io_uring_prep_poll_add(sqe, W->ctl_fd, POLLOUT);
	io_uring_sqe_set_data64(sqe, ud_make(K.kind_out, 0, 0));
	K.out_armed = true;
}

void ctl_init(void)
{
	K.kind = loop_register("ctl", on_poll);
	K.kind_out = loop_register("ctl-out", on_writable);
	loop_on_tick(tick);
	arm();
}

void ctl_finish(void)
{
	while (K.inbound) {
		inbound_t *in = K.inbound;

		K.inbound = in->next;
		close(in->fd);
		buf_finish(&in->data);
		free(in);
	}
}

void ctl_send_ready(void)
{
	if (chan_send(W->ctl_fd, CHAN_READY, W->id, 0, NULL, 0, -1) < 0)
		log_warn(errno, "cannot tell the supervisor we are ready");
}

int ctl_handoff(conn_t *c)
{
	const size_t room = CHAN_MAX_PAYLOAD - sizeof(chan_handoff_t);

	/* The first record carries the fd; the rest follow in order through the same supervisor queue. */
	do {
		size_t n = c->rbuf.len - c->handoff_sent < room ? c->rbuf.len - c->handoff_sent : room;
		chan_handoff_t h = { .conn_id = c->id, .data_len = (uint32_t)n, .total_len = c->rbuf.len,
			.offset = c->handoff_sent };
		bool first = c->handoff_sent == 0;
		int ret;

		memcpy(K.payload, &h, sizeof(h));
		memcpy(K.payload + sizeof(h), c->rbuf.data + c->handoff_sent, n);
		ret = chan_send(W->ctl_fd, first ? CHAN_HANDOFF : CHAN_HANDOFF_MORE, c->handoff_to, 0, K.payload,
			(uint32_t)(sizeof(h) + n), first ? c->sk.fd : -1);
		if (ret < 0)
			return ret;
		if (first) {
			W->st.handoffs_out++;
			log_conn(LOG_DEBUG, c->id, 0, "handed over to worker %d (%u bytes)", c->handoff_to, c->rbuf.len);
		}
		c->handoff_sent += (uint32_t)n;
	} while (c->handoff_sent < c->rbuf.len);
	return 0;
}

/* --- requests -------------------------------------------------------------------------------------------- */

static json_t *client_json(const sess_t *s)
{
	const conn_t *c = s->conn;

	return json_pack("{s:s%, s:b, s:s, s:i, s:i, s:I, s:i, s:i, s:i, s:I, s:I}",
		"id", s->id, (size_t)s->id_len,
		"connected", c != NULL,
		"addr", c ? c->addr : "",
		"version", (int)s->version,
		"keepalive", c ? (int)c->keepalive : 0,
		"expiry", (json_int_t)s->expiry_s,
		"subscriptions", (int)s->n_subs,
		"queued", (int)s->queue.len,
		"inflight", (int)win_count(&s->win),
		"dropped", (json_int_t)s->dropped,
		"expired", (json_int_t)s->expired);
}

static json_t *stats_json(void)
{
	uint64_t online, subs, queued, held = 0;
	uint32_t largest;
	json_t *o = json_object();

	if (!o)
		return NULL;
	/* Counters kept as they change: a million sessions are not walked per call (polling stats during a
	 * restore starved it). */
	online = sess_online_count();
	subs = route_local_sub_count();
	queued = sess_queued_total(&largest);
	for (int k = 0; k < W->n_peers; k++)
		held += k == W->id ? 0 : mesh_outstanding(k);
#define GAUGE(name, v) json_object_set_new(o, name, json_integer((json_int_t)(v)))
	GAUGE("connections", online);
	GAUGE("sockets", conn_count());
	GAUGE("sessions", sess_count());
	GAUGE("subscriptions", subs);
	GAUGE("retained", route_retained_count());
	GAUGE("queued", queued);
	GAUGE("queued_largest_session", largest);
	GAUGE("store_pending", store_pending());
	GAUGE("mesh_outstanding", held);
#undef GAUGE
	/* Every counter of wk_stats_t, by its own name: a counter added there is reported here. */
#define COUNTER(name) json_object_set_new(o, #name, json_integer((json_int_t)W->st.name));
	WK_STATS(COUNTER)
#undef COUNTER
	return o;
}

static json_t *answer(const char *req, size_t len)
{
	json_error_t jerr;
	json_t *in = json_loadb(req, len, 0, &jerr);
	json_t *out = json_pack("{s:i}", "worker", W->id);
	const char *cmd = NULL, *id = NULL;

	if (!in || json_unpack(in, "{s:s, s?:s}", "cmd", &cmd, "id", &id) < 0) {
		json_object_set_new(out, "error", json_string("bad request"));
	} else if (strcmp(cmd, "clients") == 0) {
		json_t *arr = json_array();
		size_t pos = 0;
		sess_t *s;

		while ((s = sess_next(&pos)))
			json_array_append_new(arr, client_json(s));
		json_object_set_new(out, "clients", arr);
	} else if (strcmp(cmd, "client") == 0 || strcmp(cmd, "kick") == 0) {
		sess_t *s = id ? sess_find((const uint8_t *)id, strlen(id)) : NULL;

		if (cmd[1] == 'l') {
			if (s)
				json_object_set_new(out, "client", client_json(s));
			else
				json_object_set_new(out, "error", json_string("no such client"));
		} else {
			bool kicked = s && s->conn;

			if (kicked) {
				conn_t *c = s->conn;

				log_conn(LOG_INFO, c->id, 0, "client '%s' kicked by the operator", s->id);
				conn_send_disconnect(c, MQTT_RC_ADMIN_ACTION, "kicked by the operator");
				conn_close(c, MQTT_RC_ADMIN_ACTION);
			}
			json_object_set_new(out, "kicked", json_boolean(kicked));
		}
	} else if (strcmp(cmd, "stats") == 0) {
		json_object_set_new(out, "stats", stats_json());
		/* The supervisor's metrics gather asks for the latency histograms too (hist.h). */
		if (json_is_true(json_object_get(in, "metrics")))
			json_object_set_new(out, "hist", hist_json());
	} else {
		json_object_set_new(out, "error", json_string("unknown command"));
	}
	json_decref(in);
	return out;
}

static void reply(uint32_t seq, json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;

	if (text && len > CHAN_MAX_PAYLOAD) {
		/* A client list too long for one record: say so rather than send a cut JSON document. */
		free(text);
		text = strdup("{\"error\":\"reply too large; ask per worker\"}");
		len = text ? strlen(text) : 0;
	}
	if (text) {
		/* The supervisor drains its side promptly; a full buffer here means it is stuck, so a poll of a few
		 * ms is the bounded wait. */
		for (int tries = 0; tries < 100; tries++) {
			int ret = chan_send(W->ctl_fd, CHAN_CTL_REPLY, W->id, seq, text, (uint32_t)len, -1);
			struct pollfd p = { .fd = W->ctl_fd, .events = POLLOUT };

			if (ret != -EAGAIN)
				break;
			poll(&p, 1, 10);
		}
	}
	free(text);
	json_decref(obj);
}

/* --- records --------------------------------------------------------------------------------------------- */

static void on_handoff(const chan_hdr_t *h, int fd)
{
	chan_handoff_t ho;
	inbound_t *in, **pp;

	if (h->len < sizeof(ho)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	memcpy(&ho, K.payload, sizeof(ho));
	if (ho.data_len != h->len - sizeof(ho) || (uint64_t)ho.offset + ho.data_len > ho.total_len ||
	    (h->type == CHAN_HANDOFF) != (fd >= 0) || (h->type == CHAN_HANDOFF && ho.offset != 0)) {
		log_warn(0, "malformed handoff record dropped");
		if (fd >= 0)
			close(fd);
		return;
	}
	if (h->type == CHAN_HANDOFF) {
		if (loop_stopping()) {
			close(fd);
			return;
		}
		W->st.handoffs_in++;
		if (ho.data_len == ho.total_len) {
			conn_adopt(fd, K.payload + sizeof(ho), ho.data_len);
			return;
		}
		in = calloc(1, sizeof(*in));
		if (!in || buf_append(&in->data, K.payload + sizeof(ho), ho.data_len) < 0) {
			log_error(ENOMEM, "cannot take a handoff of %u bytes", ho.total_len);
			free(in);
			close(fd);
			return;
		}
		in->conn_id = ho.conn_id;
		in->fd = fd;
		in->total = ho.total_len;
		in->deadline_ms = loop_now() + W->cfg->connect_timeout_ms;
		in->next = K.inbound;
		K.inbound = in;
		return;
	}
	for (pp = &K.inbound; *pp && (*pp)->conn_id != ho.conn_id; pp = &(*pp)->next)
		;
	in = *pp;
	if (!in || ho.offset != in->data.len || ho.total_len != in->total)
		return; /* its first part was dropped (or this one is out of place): the fd is closed or will be */
	if (buf_append(&in->data, K.payload + sizeof(ho), ho.data_len) < 0) {
		log_error(ENOMEM, "cannot take a handoff of %u bytes", ho.total_len);
		in->deadline_ms = 0; /* the tick closes it */
		return;
	}
	if (in->data.len < in->total)
		return;
	*pp = in->next;
	conn_adopt(in->fd, in->data.data, in->data.len);
	buf_finish(&in->data);
	free(in);
}

static void on_record(const chan_hdr_t *h, int fd)
{
	switch (h->type) {
	case CHAN_HANDOFF:
	case CHAN_HANDOFF_MORE:
		on_handoff(h, fd);
		break;
	case CHAN_MESH_FD:
		if (fd < 0 || h->worker < 0 || h->worker >= W->n_peers || h->worker == W->id) {
			if (fd >= 0)
				close(fd);
			break;
		}
		mesh_set_fd(h->worker, fd);
		break;
	case CHAN_PEER_DOWN:
		if (h->worker >= 0 && h->worker < W->n_peers && h->worker != W->id)
			mesh_peer_down(h->worker);
		break;
	case CHAN_SHUTDOWN:
		worker_stop("shutting down");
		break;
	case CHAN_RELOAD:
		/* Each part logs what it could not load and keeps its previous state. */
		(void)tls_reload();
		auth_reload();
		conn_rules_changed();
		break;
	case CHAN_TLS_KEY:
		if (h->len == TLS_TICKET_KEY_LEN)
			tls_set_ticket_key(K.payload);
		break;
	case CHAN_SYS:
		if (sys_on_values(K.payload, h->len) < 0)
			log_warn(0, "malformed $SYS record from the supervisor dropped");
		break;
	case CHAN_CTL_REQ:
		reply(h->seq, answer((const char *)K.payload, h->len));
		break;
	case CHAN_PING: {
		/* Answered here, by the loop itself: a loop that is stuck does not answer, which is the point. A full
		 * channel means the supervisor is not reading: nothing to do, its own watchdog is systemd's. */
		chan_pong_t p = { .flags = (conn_accepting() ? CHAN_PONG_SERVING : 0) |
			(store_reachable() ? CHAN_PONG_STORE_UP : 0) };

		(void)chan_send(W->ctl_fd, CHAN_PONG, W->id, h->seq, &p, sizeof(p), -1);
		break;
	}
	default:
		if (fd >= 0)
			close(fd);
		break;
	}
}

static void on_poll(uint64_t ud, struct io_uring_cqe *cqe)
{
	chan_hdr_t h;
	int fd, ret;

	(void)ud;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		K.armed = false;
	for (;;) {
		ret = chan_recv(W->ctl_fd, &h, K.payload, &fd);
		if (ret == -EAGAIN)
			break;
		if (ret == -EPIPE) {
			/* The supervisor is gone: nobody can restart or reach us; stop like a shutdown. */
			worker_stop("control channel closed: supervisor gone");
			return;
		}
		if (ret < 0) {
			log_warn(-ret, "bad control record dropped");
			continue;
		}
		on_record(&h, fd);
	}
	if (!K.armed && !loop_stopping())
		arm();
}

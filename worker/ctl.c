/* ctl.c — supervisor control channel, worker side (see ctl.h and common/chan.h). */
#include "ctl.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "mesh.h"
#include "route.h"
#include "sess.h"
#include "store.h"

static uint8_t payload[CHAN_MAX_PAYLOAD];

static void arm(void)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_poll_multishot(sqe, W->ctl_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(UD_CTL, 0, 0));
	W->ctl_armed = true;
}

void ctl_init(void)
{
	arm();
}

void ctl_send_ready(void)
{
	if (chan_send(W->ctl_fd, CHAN_READY, W->id, 0, NULL, 0, -1) < 0)
		log_warn(errno, "cannot tell the supervisor we are ready");
}

int ctl_handoff(conn_t *c)
{
	chan_handoff_t h = { .conn_id = c->id, .data_len = c->rbuf.len };
	size_t len = sizeof(h) + c->rbuf.len;
	int ret;

	if (len > CHAN_MAX_PAYLOAD) {
		log_conn(LOG_WARN, c->id, 0, "CONNECT of %u bytes too large to hand over: closing", c->rbuf.len);
		return -EMSGSIZE;
	}
	memcpy(payload, &h, sizeof(h));
	memcpy(payload + sizeof(h), c->rbuf.data, c->rbuf.len);
	ret = chan_send(W->ctl_fd, CHAN_HANDOFF, c->handoff_to, 0, payload, (uint32_t)len, c->fd);
	if (ret == 0) {
		W->st.handoffs_out++;
		log_conn(LOG_DEBUG, c->id, 0, "handed over to worker %d", c->handoff_to);
	}
	return ret;
}

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
		"inflight", (int)s->ifl.len,
		"dropped", (json_int_t)s->dropped,
		"expired", (json_int_t)s->expired);
}

static json_t *stats_json(void)
{
	uint64_t online = 0, subs = 0;
	size_t pos = 0;
	strmap_entry_t *e;

	while ((e = strmap_next(&W->sessions, &pos))) {
		sess_t *s = e->value;

		online += s->conn != NULL;
		subs += s->n_subs;
	}
	json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		" s:I, s:I, s:I}",
		"connections", (json_int_t)online,
		"sockets", (json_int_t)W->n_conns,
		"sessions", (json_int_t)W->sessions.count,
		"subscriptions", (json_int_t)subs,
		"retained", (json_int_t)route_retained_count(),
		"queued", (json_int_t)sess_queued_total(),
		"msgs_in", (json_int_t)W->st.msgs_in,
		"msgs_out", (json_int_t)W->st.msgs_out,
		"bytes_in", (json_int_t)W->st.bytes_in,
		"bytes_out", (json_int_t)W->st.bytes_out,
		"dropped_queue_full", (json_int_t)W->st.dropped_queue_full,
		"dropped_expired", (json_int_t)W->st.dropped_expired,
		"dropped_too_large", (json_int_t)W->st.dropped_too_large,
		"dropped_no_subscriber", (json_int_t)W->st.dropped_no_peer,
		"handoffs_out", (json_int_t)W->st.handoffs_out,
		"handoffs_in", (json_int_t)W->st.handoffs_in,
		"connects", (json_int_t)W->st.connects,
		"protocol_errors", (json_int_t)W->st.protocol_errors,
		"rejected_max_conn", (json_int_t)W->st.rejected_max_conn);

	/* The store's own counters: a bound hit or a failing Redis must be visible, not silent. */
	if (o) {
		json_object_set_new(o, "store_ops", json_integer((json_int_t)W->st.store_ops));
		json_object_set_new(o, "store_batches", json_integer((json_int_t)W->st.store_batches));
		json_object_set_new(o, "store_errors", json_integer((json_int_t)W->st.store_errors));
		json_object_set_new(o, "store_dropped", json_integer((json_int_t)W->st.store_dropped));
		json_object_set_new(o, "store_quarantined", json_integer((json_int_t)W->st.store_quarantined));
		json_object_set_new(o, "store_pending", json_integer((json_int_t)store_pending()));
		json_object_set_new(o, "paused_reads", json_integer((json_int_t)W->st.paused_reads));
	}
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
		strmap_entry_t *e;

		while ((e = strmap_next(&W->sessions, &pos)))
			json_array_append_new(arr, client_json(e->value));
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

static void on_record(const chan_hdr_t *h, int fd)
{
	switch (h->type) {
	case CHAN_HANDOFF: {
		chan_handoff_t ho;

		if (fd < 0 || h->len < sizeof(ho)) {
			if (fd >= 0)
				close(fd);
			break;
		}
		memcpy(&ho, payload, sizeof(ho));
		if (ho.data_len != h->len - sizeof(ho) || W->stopping) {
			close(fd);
			break;
		}
		W->st.handoffs_in++;
		conn_adopt(fd, payload + sizeof(ho), ho.data_len);
		break;
	}
	case CHAN_MESH_FD:
		if (fd < 0 || h->worker < 0 || h->worker >= W->n || h->worker == W->id) {
			if (fd >= 0)
				close(fd);
			break;
		}
		log_info("new channel to worker %d", h->worker);
		mesh_set_fd(h->worker, fd, true);
		break;
	case CHAN_PEER_DOWN:
		if (h->worker >= 0 && h->worker < W->n && h->worker != W->id)
			mesh_peer_down(h->worker);
		break;
	case CHAN_SHUTDOWN:
		if (!W->stopping) {
			log_info("shutting down: %u connections to close", W->n_conns);
			W->stopping = true;
			conn_stop_all();
		}
		break;
	case CHAN_CTL_REQ:
		reply(h->seq, answer((const char *)payload, h->len));
		break;
	default:
		if (fd >= 0)
			close(fd);
		break;
	}
}

void ctl_on_poll(struct io_uring_cqe *cqe)
{
	chan_hdr_t h;
	int fd, ret;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		W->ctl_armed = false;
	for (;;) {
		ret = chan_recv(W->ctl_fd, &h, payload, &fd);
		if (ret == -EAGAIN)
			break;
		if (ret == -EPIPE) {
			/* The supervisor is gone: nobody can restart or reach us; stop like a shutdown. */
			if (!W->stopping) {
				log_warn(0, "control channel closed: supervisor gone, stopping");
				W->stopping = true;
				conn_stop_all();
			}
			return;
		}
		if (ret < 0) {
			log_warn(-ret, "bad control record dropped");
			continue;
		}
		on_record(&h, fd);
	}
	if (!W->ctl_armed)
		arm();
}

void ctl_flush(void)
{
}

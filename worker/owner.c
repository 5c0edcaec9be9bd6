/* owner.c — sessions owned by one node of a cluster at a time (see owner.h). */
#include "owner.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "conn_send.h"
#include "frame.h"
#include "log.h"
#include "mesh.h"
#include "route.h"
#include "sess.h"
#include "store.h"
#include "strmap.h"
#include "worker.h"

/* A CONNECT waiting for its session to be claimed, handed over and read. */
typedef struct claim {
	conn_t *c;                 /* NULL once the connection went: the answers still come and end the claim */
	char *id;
	size_t len;
} claim_t;

/* A session being let go for another node: answered once the store has done its writes. */
typedef struct release {
	uint32_t gen;
	bool used;
	int to;                    /* the node that claimed it */
	buf_t body;                /* id NUL filters (NUL-separated): the MF_RELEASED body */
} release_t;

static struct {
	strmap_t claims;           /* client id -> claim_t */
	release_t *rel;
	uint32_t n_rel;
} O;

static int kproc(void)
{
	return W->n; /* the Kafka process's mesh index */
}

bool owner_needed(void)
{
	return W->n_peers > W->n && store_durable();
}

static void claim_end(claim_t *cl)
{
	strmap_del(&O.claims, cl->id, cl->len);
	free(cl->id);
	free(cl);
}

/* The session is here (or none exists): the CONNECT goes on. */
static void claim_done(claim_t *cl, int err)
{
	conn_t *c = cl->c;

	claim_end(cl);
	if (!c)
		return;
	c->claiming = false;
	c->state = CONN_NEW;
	if (err < 0) {
		conn_fail(c, err);
		return;
	}
	c->claimed = true;
	conn_auth_resume(c);
}

static void on_claimed(const char *id, size_t len, int64_t prev)
{
	claim_t *cl = strmap_get(&O.claims, id, len);
	uint8_t *d;

	log_debug("session '%.*s': claimed (previous owner %lld)", (int)len, id, (long long)prev);
	if (!cl)
		return;
	if (prev == -2) {
		log_warn(0, "session '%.*s' could not be claimed (Redis refused): the client is told to come back",
			(int)len, id);
		claim_done(cl, MQTT_E_UNAVAILABLE);
		return;
	}
	if (prev < 0) {
		claim_done(cl, 0); /* no session anywhere: a new one is made here */
		return;
	}
	if (prev == (int64_t)W->cfg->node_id) {
		store_fetch(id, len);
		return;
	}
	/* The previous owner lets it go first, so that nothing it still writes is missed here. */
	d = mesh_frame(kproc(), MF_HANDOVER, len, (uint32_t)prev, 0);
	if (!d) {
		claim_done(cl, MQTT_E_UNAVAILABLE);
		return;
	}
	memcpy(d, id, len);
}

static void on_fetched(const char *id, size_t len, sess_t *s, bool ok)
{
	claim_t *cl = strmap_get(&O.claims, id, len);

	(void)s;
	if (cl)
		claim_done(cl, ok ? 0 : MQTT_E_UNAVAILABLE);
}

int owner_claim(conn_t *c, const uint8_t *id, size_t len)
{
	claim_t *cl = strmap_get(&O.claims, id, len);

	if (cl) {
		/* Two CONNECTs for one client while its session moves: the later one wins, as in a takeover. */
		if (cl->c) {
			cl->c->claiming = false;
			conn_close(cl->c, MQTT_RC_SESSION_TAKEN_OVER);
		}
		cl->c = c;
		c->claiming = true;
		return 0;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl || !(cl->id = malloc(len ? len : 1))) {
		free(cl);
		return MQTT_E_NOMEM;
	}
	memcpy(cl->id, id, len);
	cl->len = len;
	cl->c = c;
	if (strmap_put(&O.claims, id, len, cl, NULL) < 0) {
		free(cl->id);
		free(cl);
		return MQTT_E_NOMEM;
	}
	c->claiming = true;
	/* Outside a cluster there is nobody to claim from: the session is only read (a CONNECT during the
	 * restore: store_restore_pending). */
	if (owner_needed())
		store_claim((const char *)id, len);
	else
		store_fetch((const char *)id, len);
	return 0;
}

void owner_cancel(conn_t *c)
{
	strmap_entry_t *e;
	size_t pos = 0;

	if (!c->claiming)
		return;
	c->claiming = false;
	while ((e = strmap_next(&O.claims, &pos))) {
		claim_t *cl = e->value;

		if (cl->c == c) {
			cl->c = NULL;
			return;
		}
	}
}

/* --- letting a session go ------------------------------------------------------------------------------ */

static release_t *rel_new(uint32_t *idx)
{
	for (uint32_t i = 0; i < O.n_rel; i++) {
		if (!O.rel[i].used) {
			*idx = i;
			return &O.rel[i];
		}
	}
	{
		uint32_t n = O.n_rel ? O.n_rel * 2 : 8;
		release_t *r = realloc(O.rel, n * sizeof(*r));

		if (!r)
			return NULL;
		memset(r + O.n_rel, 0, (n - O.n_rel) * sizeof(*r));
		O.rel = r;
		*idx = O.n_rel;
		O.n_rel = n;
		return &O.rel[*idx];
	}
}

static void rel_send(release_t *r)
{
	uint8_t *d = mesh_frame(kproc(), MF_RELEASED, r->body.len, (uint32_t)r->to, 0);

	if (d)
		memcpy(d, r->body.data, r->body.len);
	else
		log_warn(0, "the Kafka process is down: a session hand-over is answered by its timeout");
	buf_finish(&r->body);
	r->used = false;
	r->gen++;
}

static void on_released(const waiter_t *w, bool ok)
{
	release_t *r;

	(void)ok;
	if (w->idx >= O.n_rel || !O.rel[w->idx].used || O.rel[w->idx].gen != w->gen)
		return;
	r = &O.rel[w->idx];
	rel_send(r);
}

/* Node `to` claimed session id: close its connection here, forget it, answer once the store is done with it. */
static void release(const char *id, size_t len, int to)
{
	sess_t *s = sess_find((const uint8_t *)id, len);
	uint32_t idx;
	release_t *r = rel_new(&idx);
	waiter_t w;
	uint8_t zero = 0;

	if (!r) {
		log_error(ENOMEM, "session '%.*s' cannot be handed over: its new node waits for the timeout", (int)len, id);
		return;
	}
	r->used = true;
	r->to = to;
	memset(&r->body, 0, sizeof(r->body));
	if (buf_append(&r->body, id, len) < 0 || buf_append(&r->body, &zero, 1) < 0) {
		r->used = false;
		buf_finish(&r->body);
		return;
	}
	if (s) {
		if (s->conn) {
			conn_t *c = s->conn;

			log_conn(LOG_INFO, c->id, 0, "session '%.*s' taken over by node %d", (int)len, id, to);
			if (c->version == MQTT_V5)
				c->graceful = true; /* the session continues: its will is cancelled, as in a takeover */
			conn_send_disconnect(c, MQTT_RC_SESSION_TAKEN_OVER, "session taken over on another node");
			conn_close(c, MQTT_RC_SESSION_TAKEN_OVER);
		}
		/* Its filters go with the answer: the Kafka process keeps routing them to the new node while the other
		 * nodes learn of its interest. */
		for (sub_t *sub = s->subs; sub; sub = sub->next) {
			if (buf_append(&r->body, sub->filter + sub->match_off, sub->filter_len - sub->match_off) < 0 ||
			    buf_append(&r->body, &zero, 1) < 0)
				break;
		}
		sess_forget(s);
	}
	w = (waiter_t){ .kind = WAITER_OWNER, .idx = idx, .gen = r->gen };
	store_barrier(id, len, &w);
	if (!w.count)
		rel_send(r);
}

static void adopted(int from)
{
	(void)mesh_frame(kproc(), MF_ADOPTED, 0, (uint32_t)from, 0);
}

/* Node `from` died: its sessions of our slots become ours (then the Kafka process reads its inbox). */
static void adopt(int from)
{
	if (!store_durable() || store_adopt(from, adopted) < 0)
		adopted(from);
}

int owner_on_frame(int k, const frame_hdr_t *h, const uint8_t *body)
{
	claim_t *cl;

	(void)k;
	if (h->type == MF_RELEASE) {
		release((const char *)body, h->body, (int)h->a);
		return 0;
	}
	if (h->type == MF_ADOPT) {
		adopt((int)h->a);
		return 0;
	}
	if (h->type == MF_HANDED) {
		cl = strmap_get(&O.claims, body, h->body);
		if (cl)
			store_fetch(cl->id, cl->len);
		return 0;
	}
	return -EPROTO;
}

static const store_owner_ops_t store_ops = { .claimed = on_claimed, .fetched = on_fetched };

void owner_init(void)
{
	strmap_init(&O.claims);
	waiter_register(WAITER_OWNER, on_released);
	store_set_owner_ops(&store_ops);
}

void owner_finish(void)
{
	strmap_entry_t *e;
	size_t pos;

	for (pos = 0; (e = strmap_next(&O.claims, &pos)); pos = 0) {
		claim_t *cl = e->value;

		claim_end(cl);
	}
	strmap_finish(&O.claims);
	for (uint32_t i = 0; i < O.n_rel; i++)
		buf_finish(&O.rel[i].body);
	free(O.rel);
	memset(&O, 0, sizeof(O));
}

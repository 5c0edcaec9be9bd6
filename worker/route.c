/* route.c — subscription trie, peer interest, shared groups, retained messages (see route.h). */
#include "route.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "mesh.h"
#include "msg.h"
#include "sess.h"
#include "store.h"
#include "strmap.h"
#include "sys.h"
#include "trie.h"
#include "worker.h"

/* Trie values are tagged by their low bits: every real pointer stored is at least 4-byte aligned. */
#define TAG_PEER 1u
#define TAG_GROUP 2u
#define TAG_MASK 3u

static inline void *peer_marker(int k) { return (void *)(((uintptr_t)k << 2) | TAG_PEER); }

typedef struct hit {
	sess_t *s;
	uint32_t subid;
	uint8_t qos;
	uint8_t retain;
} hit_t;

typedef struct match {
	const msg_t *m;
	bool local_only;
	bool any;                  /* some subscription matched (local, peer, group) */
	bool failed;               /* a match could not be recorded (memory): the publisher must not get success */
	bool peers[WORKER_MAX + 1];
	uint32_t n_groups;
} match_t;

static struct {
	trie_t *trie;              /* local subs (sub_t*), peer interest (tagged), groups (tagged) */
	strmap_t filters;          /* local filter -> reference count (uintptr_t) */
	strmap_t retained;         /* topic -> msg_t* */
	strmap_t groups;           /* key -> group_t* */
	strmap_t interest[WORKER_MAX + 1]; /* per peer: filter -> epoch in which the peer announced it */
	uintptr_t epoch[WORKER_MAX + 1];
	bool synced[WORKER_MAX + 1];  /* peer k has announced its whole interest once (its MF_SYNC) */
	bool complete;             /* ... every peer has, and our own sessions are restored: see route_complete */
	uint64_t started_ms;
	uint64_t local_subs;       /* subscriptions of our sessions (stats) */
	msg_t **deferred;          /* wills published before routing was complete, in order (routed then) */
	uint32_t n_deferred, cap_deferred;
	uint32_t match_epoch;
	/* Scratch for one match: grows to the largest fan-out seen, reused for every publish. */
	hit_t *hits;
	uint32_t n_hits, cap_hits;
	group_t **ghits;
	uint32_t cap_ghits;
} R;

#define hits R.hits
#define n_hits R.n_hits
#define cap_hits R.cap_hits
#define ghits R.ghits
#define cap_ghits R.cap_ghits

int route_init(void)
{
	R.started_ms = loop_now();
	R.complete = false;
	memset(R.synced, 0, sizeof(R.synced));
	R.trie = trie_create();
	if (!R.trie)
		return -ENOMEM;
	strmap_init(&R.filters);
	strmap_init(&R.retained);
	strmap_init(&R.groups);
	for (int k = 0; k < W->n_peers; k++) {
		strmap_init(&R.interest[k]);
		R.epoch[k] = 1;
	}
	return 0;
}

static void group_free(group_t *g)
{
	free(g->members);
	free(g->peer_members);
	free(g->peer_online);
	free(g->key);
	free(g);
}

void route_finish(void)
{
	size_t pos = 0;
	strmap_entry_t *e;

	while ((e = strmap_next(&R.retained, &pos)))
		msg_unref(e->value);
	for (uint32_t i = 0; i < R.n_deferred; i++)
		msg_unref(R.deferred[i]);
	free(R.deferred);
	pos = 0;
	while ((e = strmap_next(&R.groups, &pos)))
		group_free(e->value);
	strmap_finish(&R.retained);
	strmap_finish(&R.groups);
	strmap_finish(&R.filters);
	for (int k = 0; k < W->n_peers; k++)
		strmap_finish(&R.interest[k]);
	trie_destroy(R.trie);
	free(hits);
	free(ghits);
	memset(&R, 0, sizeof(R));
}

static bool add_hit(sub_t *sub, const msg_t *m)
{
	sess_t *s = sub->sess;
	uint8_t qos = sub->opts.qos < m->qos ? sub->opts.qos : m->qos;
	uint8_t retain = sub->opts.retain_as_published ? m->retain : 0;
	hit_t *h;

	/* [MQTT-3.8.3-3] no local: not back to the connection that published it. */
	if (sub->opts.no_local && s->conn && s->conn->id == m->origin)
		return true;
	if (s->match_epoch == R.match_epoch) {
		/* Overlapping subscriptions: one copy, at the highest QoS granted [MQTT-3.3.4-2] — unless both carry
		 * different subscription identifiers: then one copy each, with its own id [MQTT-3.3.4-5]. */
		h = &hits[s->match_slot];
		if (!(h->subid && sub->subid && h->subid != sub->subid)) {
			if (qos > h->qos)
				h->qos = qos;
			h->retain |= retain;
			if (!h->subid)
				h->subid = sub->subid;
			return true;
		}
	}
	if (n_hits == cap_hits) {
		uint32_t cap = cap_hits ? cap_hits * 2 : 64;
		hit_t *p = realloc(hits, cap * sizeof(*p));

		if (!p)
			return false;
		hits = p;
		cap_hits = cap;
	}
	if (s->match_epoch != R.match_epoch) {
		s->match_epoch = R.match_epoch;
		s->match_slot = n_hits;
	}
	hits[n_hits++] = (hit_t){ .s = s, .subid = sub->subid, .qos = qos, .retain = retain };
	return true;
}

static bool on_match(void *value, void *ctx)
{
	match_t *mt = ctx;
	uintptr_t v = (uintptr_t)value;

	mt->any = true;
	switch (v & TAG_MASK) {
	case TAG_PEER:
		mt->peers[v >> 2] = true;
		return true;
	case TAG_GROUP:
		if (mt->local_only)
			return true;
		if (mt->n_groups == cap_ghits) {
			uint32_t cap = cap_ghits ? cap_ghits * 2 : 16;
			group_t **p = realloc(ghits, cap * sizeof(*p));

			if (!p) {
				mt->failed = true;
				return false;
			}
			ghits = p;
			cap_ghits = cap;
		}
		ghits[mt->n_groups++] = (group_t *)(v & ~(uintptr_t)TAG_MASK);
		return true;
	default:
		if (((sub_t *)value)->group)
			return true;
		if (!add_hit(value, mt->m)) {
			mt->failed = true;
			return false;
		}
		return true;
	}
}

static void match(match_t *mt, msg_t *m)
{
	memset(mt, 0, sizeof(*mt));
	mt->m = m;
	R.match_epoch++;
	n_hits = 0;
}

static void deliver_hits(msg_t *m, waiter_t *w)
{
	for (uint32_t i = 0; i < n_hits; i++)
		sess_deliver(hits[i].s, m, hits[i].qos, hits[i].retain, hits[i].subid, w);
}

/* One member of g on this worker: an online one round-robin, else an offline persistent one to queue it. */
static sub_t *group_pick_member(group_t *g)
{
	for (uint32_t i = 0; i < g->n_members; i++) {
		sub_t *sub = g->members[(g->rr + i) % g->n_members];

		if (sub->sess->conn) {
			g->rr = (g->rr + i + 1) % g->n_members;
			return sub;
		}
	}
	return g->n_members ? g->members[g->rr++ % g->n_members] : NULL;
}

static int group_pick_worker(group_t *g)
{
	for (int pass = 0; pass < 2; pass++) {
		const uint32_t *count = pass == 0 ? g->peer_online : g->peer_members;

		for (int i = 0; i < W->n_peers; i++) {
			int k = (int)((g->rr_worker + (uint32_t)i) % (uint32_t)W->n_peers);

			if (count[k] && (k == W->id || mesh_up(k))) {
				g->rr_worker = (uint32_t)k + 1;
				return k;
			}
		}
	}
	return -1;
}

static void deliver_group_local(group_t *g, msg_t *m, waiter_t *w)
{
	sub_t *sub = group_pick_member(g);

	if (!sub) {
		W->st.dropped_no_subscriber++;
		return;
	}
	sess_deliver(sub->sess, m, sub->opts.qos < m->qos ? sub->opts.qos : m->qos, 0, sub->subid, w);
}

/* A will (nobody waits for it) published while routing is incomplete waits for route_check_complete: routed
 * now it could miss sessions not restored yet. Clients' PUBLISHes are held before this, in conn.c. */
static bool defer(msg_t *m)
{
	if (R.n_deferred == R.cap_deferred) {
		uint32_t cap = R.cap_deferred ? R.cap_deferred * 2 : 16;
		msg_t **d = cap <= 1u << 20 ? realloc(R.deferred, cap * sizeof(*d)) : NULL;

		if (!d)
			return false; /* routed now, against the partial trie */
		R.deferred = d;
		R.cap_deferred = cap;
	}
	R.deferred[R.n_deferred++] = msg_ref(m);
	return true;
}

bool route_publish(msg_t *m, waiter_t *w)
{
	match_t mt;
	waiter_t *ack = m->qos > 0 ? w : NULL;

	if (!R.complete && !w && defer(m))
		return true;

	match(&mt, m);
	trie_match(R.trie, msg_topic(m), m->topic_len, on_match, &mt);
	if (mt.failed) {
		/* Some subscribers would silently miss it: deliver nothing, fail the publisher (it sends again). */
		log_error(ENOMEM, "message on '%.*s' not routed", (int)m->topic_len, msg_topic(m));
		waiter_fail(w);
		return true;
	}
	deliver_hits(m, w);
	if (m->retain)
		route_retain_store(m);
	for (int k = 0; k < W->n_peers; k++) {
		uint8_t flags = 0;

		if (k == W->id)
			continue;
		if (mt.peers[k])
			flags |= MESH_DELIVER;
		if (m->retain && mesh_up(k))
			flags |= MESH_RETAIN_STORE;
		if (flags)
			mesh_send_pub(k, m, flags, NULL, 0, mt.peers[k] ? ack : NULL);
	}
	for (uint32_t i = 0; i < mt.n_groups; i++) {
		group_t *g = ghits[i];
		int k = group_pick_worker(g);

		if (k == W->id)
			deliver_group_local(g, m, w);
		else if (k >= 0)
			mesh_send_pub(k, m, MESH_GROUP, g->key, g->key_len, ack);
	}
	return mt.any;
}

void route_deliver_local(msg_t *m, waiter_t *w)
{
	match_t mt;

	match(&mt, m);
	mt.local_only = true;
	trie_match(R.trie, msg_topic(m), m->topic_len, on_match, &mt);
	if (mt.failed) {
		log_error(ENOMEM, "message on '%.*s' from another worker not delivered", (int)m->topic_len,
			msg_topic(m));
		waiter_fail(w);
		return;
	}
	deliver_hits(m, w);
}

void route_deliver_group(msg_t *m, const char *key, size_t len, waiter_t *w)
{
	group_t *g = strmap_get(&R.groups, key, len);

	if (g)
		deliver_group_local(g, m, w);
	else
		W->st.dropped_no_subscriber++;
}

void route_retain_store(msg_t *m)
{
	void *old = NULL;

	if (!m->payload_len) {
		/* [MQTT-3.3.1-6]: an empty retained message clears the topic. */
		msg_unref(strmap_del(&R.retained, msg_topic(m), m->topic_len));
		return;
	}
	if (m->src_part) {
		/* Kept apart from the Kafka record it came in: a later replay is a message of its own, not a
		 * re-delivery of that record (which the store would skip). */
		msg_t hdr = *m, *copy;

		hdr.src_part = 0;
		hdr.src_off = 0;
		copy = msg_create_raw(&hdr, m->data);
		if (!copy) {
			log_error(ENOMEM, "retained message for '%.*s' not stored", (int)m->topic_len, msg_topic(m));
			return;
		}
		m = copy;
	} else {
		m = msg_ref(m);
	}
	if (strmap_put(&R.retained, msg_topic(m), m->topic_len, m, &old) < 0) {
		log_error(ENOMEM, "retained message for '%.*s' not stored", (int)m->topic_len, msg_topic(m));
		msg_unref(m);
		return;
	}
	msg_unref(old);
}

/* --- groups ---------------------------------------------------------------------------------------------- */

static group_t *group_get(const char *key, size_t len, bool create)
{
	group_t *g = strmap_get(&R.groups, key, len);
	const char *slash;

	if (g || !create)
		return g;
	slash = memchr(key, '/', len);
	if (!slash)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->key = malloc(len + 1);
	/* One count per peer: the workers, and the Kafka process standing for the other nodes' members. */
	g->peer_members = calloc((size_t)W->n_peers, sizeof(uint32_t));
	g->peer_online = calloc((size_t)W->n_peers, sizeof(uint32_t));
	if (!g->key || !g->peer_members || !g->peer_online)
		goto err;
	memcpy(g->key, key, len);
	g->key[len] = '\0';
	g->key_len = (uint16_t)len;
	g->filter_off = (uint16_t)(slash - key + 1);
	if (strmap_put(&R.groups, key, len, g, NULL) < 0)
		goto err;
	if (trie_insert(R.trie, g->key + g->filter_off, len - g->filter_off, (void *)((uintptr_t)g | TAG_GROUP)) < 0) {
		strmap_del(&R.groups, key, len);
		goto err;
	}
	return g;
err:
	group_free(g);
	return NULL;
}

static void group_maybe_free(group_t *g)
{
	for (int k = 0; k < W->n_peers; k++) {
		if (g->peer_members[k])
			return;
	}
	trie_remove(R.trie, g->key + g->filter_off, g->key_len - g->filter_off, (void *)((uintptr_t)g | TAG_GROUP));
	strmap_del(&R.groups, g->key, g->key_len);
	group_free(g);
}

static uint32_t group_local_online(const group_t *g)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < g->n_members; i++)
		n += g->members[i]->sess->conn != NULL;
	return n;
}

/* Tell every peer our member counts for g; their acks are counted on w. */
static void group_broadcast(group_t *g, waiter_t *w)
{
	g->peer_members[W->id] = g->n_members;
	g->peer_online[W->id] = group_local_online(g);
	for (int k = 0; k < W->n_peers; k++) {
		if (k != W->id && mesh_up(k))
			mesh_send_group(k, g->key, g->key_len, g->n_members, g->peer_online[W->id], w);
	}
}

void route_peer_group(int k, const char *key, size_t len, uint32_t members, uint32_t online)
{
	group_t *g = group_get(key, len, members > 0);

	if (!g)
		return;
	g->peer_members[k] = members;
	g->peer_online[k] = online;
	group_maybe_free(g);
}

void route_sess_online(sess_t *s, bool online)
{
	(void)online;
	for (sub_t *sub = s->subs; sub; sub = sub->next) {
		if (sub->group)
			group_broadcast(sub->group, NULL);
	}
}

/* --- subscriptions --------------------------------------------------------------------------------------- */

/* Count one more local subscriber of filter f; peers learn of a filter when its first subscriber comes
 * (their acks counted on w). -ENOMEM leaves everything as it was. */
static int filter_add(const char *f, size_t len, waiter_t *w)
{
	void **n = strmap_ref(&R.filters, f, len);

	if (n) {
		*n = (void *)((uintptr_t)*n + 1);
		return 0;
	}
	if (strmap_put(&R.filters, f, len, (void *)(uintptr_t)1, NULL) < 0)
		return -ENOMEM;
	sys_filter_added(f, len);
	for (int k = 0; k < W->n_peers; k++) {
		if (k != W->id && mesh_up(k))
			mesh_send_sub(k, f, len, true, w);
	}
	return 0;
}

/* One local subscriber of f fewer; peers learn when the last one goes. Never fails. */
static void filter_del(const char *f, size_t len)
{
	void **n = strmap_ref(&R.filters, f, len);

	if (!n)
		return;
	if ((uintptr_t)*n > 1) {
		*n = (void *)((uintptr_t)*n - 1);
		return;
	}
	strmap_del(&R.filters, f, len);
	sys_filter_removed(f, len);
	for (int k = 0; k < W->n_peers; k++) {
		if (k != W->id && mesh_up(k))
			mesh_send_sub(k, f, len, false, NULL);
	}
}

static void send_retained(sess_t *s, const sub_t *sub)
{
	const char *f = sub->filter + sub->match_off;
	size_t flen = sub->filter_len - sub->match_off;
	size_t pos = 0;
	strmap_entry_t *e;

	while ((e = strmap_next(&R.retained, &pos))) {
		msg_t *m = e->value;

		if (mqtt_topic_match((const uint8_t *)f, flen, m->data, m->topic_len))
			sess_deliver(s, m, sub->opts.qos < m->qos ? sub->opts.qos : m->qos, 1, sub->subid, NULL);
	}
}

void route_send_retained(sess_t *s, const char *filter, size_t len)
{
	for (sub_t *sub = s->subs; sub; sub = sub->next) {
		if (sub->filter_len == len && memcmp(sub->filter, filter, len) == 0) {
			send_retained(s, sub);
			return;
		}
	}
}

uint8_t route_subscribe(sess_t *s, mqtt_str_t filter, const mqtt_subopts_t *opts, uint32_t subid, waiter_t *w,
	bool *retained)
{
	mqtt_str_t group, inner;
	bool shared;
	sub_t *sub;
	bool existed = false;

	*retained = false;
	shared = mqtt_share_parse(filter, &group, &inner) == 1;
	if (!shared)
		inner = filter;
	for (sub = s->subs; sub; sub = sub->next) {
		if (sub->filter_len == filter.len && memcmp(sub->filter, filter.p, filter.len) == 0)
			break;
	}
	if (sub) {
		/* [MQTT-3.8.4-3]: a repeated filter replaces the options of the existing subscription. */
		existed = true;
		sub->opts = *opts;
		sub->subid = subid;
	} else {
		if (W->cfg->max_subscriptions && s->n_subs >= W->cfg->max_subscriptions) {
			W->st.rejected_subscriptions++;
			return MQTT_RC_QUOTA_EXCEEDED;
		}
		sub = calloc(1, sizeof(*sub) + filter.len + 1);
		if (!sub)
			return MQTT_RC_UNSPECIFIED;
		sub->sess = s;
		sub->opts = *opts;
		sub->subid = subid;
		sub->filter_len = (uint16_t)filter.len;
		sub->match_off = (uint16_t)(inner.p - filter.p);
		memcpy(sub->filter, filter.p, filter.len);
		if (shared) {
			/* Group key "<group>/<filter>": the text after "$share/". */
			const char *key = sub->filter + 7;
			size_t klen = filter.len - 7;
			group_t *g = group_get(key, klen, true);
			sub_t **mem;

			if (!g)
				goto err_sub;
			if (g->n_members == g->cap_members) {
				uint32_t cap = g->cap_members ? g->cap_members * 2 : 4;

				mem = realloc(g->members, cap * sizeof(*mem));
				if (!mem) {
					group_maybe_free(g);
					goto err_sub;
				}
				g->members = mem;
				g->cap_members = cap;
			}
			g->members[g->n_members++] = sub;
			sub->group = g;
			group_broadcast(g, w);
		} else {
			if (trie_insert(R.trie, sub->filter, filter.len, sub) < 0)
				goto err_sub;
			if (filter_add(sub->filter, filter.len, w) < 0) {
				/* The reference count could not be kept: undo, so peers never lose interest we still
				 * have (an UNSUB sent while local subscribers remain). */
				trie_remove(R.trie, sub->filter, filter.len, sub);
				goto err_sub;
			}
		}
		sub->next = s->subs;
		s->subs = sub;
		s->n_subs++;
		R.local_subs++;
	}
	/* Retained messages: not for shared subscriptions; retain handling 1 only for a new subscription. */
	*retained = !shared && (opts->retain_handling == 0 || (opts->retain_handling == 1 && !existed));
	store_sub_put(s, sub, w); /* durable before the SUBACK */
	return opts->qos;

err_sub:
	free(sub);
	return MQTT_RC_UNSPECIFIED;
}

static void sub_remove(sess_t *s, sub_t *sub)
{
	if (sub->group) {
		group_t *g = sub->group;

		for (uint32_t i = 0; i < g->n_members; i++) {
			if (g->members[i] == sub) {
				g->members[i] = g->members[--g->n_members];
				break;
			}
		}
		group_broadcast(g, NULL);
		group_maybe_free(g);
	} else {
		trie_remove(R.trie, sub->filter, sub->filter_len, sub);
		filter_del(sub->filter, sub->filter_len);
	}
	s->n_subs--;
	R.local_subs--;
	free(sub);
}

uint8_t route_unsubscribe(sess_t *s, mqtt_str_t filter)
{
	for (sub_t **pp = &s->subs; *pp; pp = &(*pp)->next) {
		sub_t *sub = *pp;

		if (sub->filter_len == filter.len && memcmp(sub->filter, filter.p, filter.len) == 0) {
			*pp = sub->next;
			store_sub_del(s, sub->filter, sub->filter_len);
			sub_remove(s, sub);
			return 0;
		}
	}
	return MQTT_RC_NO_SUBSCRIPTION_EXISTED;
}

void route_unsubscribe_all(sess_t *s)
{
	while (s->subs) {
		sub_t *sub = s->subs;

		s->subs = sub->next;
		sub_remove(s, sub);
	}
}

/* --- peers ----------------------------------------------------------------------------------------------- */

void route_peer_sub(int k, const char *filter, size_t len, bool add)
{
	strmap_t *in = &R.interest[k];
	void **e = strmap_ref(in, filter, len);

	if (add) {
		if (e) {
			*e = (void *)R.epoch[k]; /* announced again in this epoch */
			return;
		}
		if (strmap_put(in, filter, len, (void *)R.epoch[k], NULL) < 0) {
			log_error(ENOMEM, "interest of worker %d in '%.*s' lost", k, (int)len, filter);
			return;
		}
		if (trie_insert(R.trie, filter, len, peer_marker(k)) < 0) {
			strmap_del(in, filter, len);
			log_error(ENOMEM, "interest of worker %d in '%.*s' lost", k, (int)len, filter);
		}
	} else if (e) {
		strmap_del(in, filter, len);
		trie_remove(R.trie, filter, len, peer_marker(k));
	}
}

void route_peer_resync(int k)
{
	R.epoch[k]++;
	if (!R.epoch[k])
		R.epoch[k] = 1;
}

bool route_complete(void)
{
	return R.complete;
}

void route_check_complete(void)
{
	if (R.complete || !store_ready())
		return;
	for (int k = 0; k < W->n_peers; k++) {
		if (k != W->id && mesh_up(k) && !R.synced[k])
			return;
	}
	R.complete = true;
	if (W->n_peers > 1 || store_durable())
		log_info("routing complete (sessions restored, every worker's interest known) %" PRIu64 " ms after "
			"start; %" PRIu64 " publishers and %u wills were held until now", loop_now() - R.started_ms,
			W->st.publishes_held, R.n_deferred);
	for (uint32_t i = 0; i < R.n_deferred; i++) {
		route_publish(R.deferred[i], NULL);
		msg_unref(R.deferred[i]);
	}
	free(R.deferred);
	R.deferred = NULL;
	R.n_deferred = R.cap_deferred = 0;
	conn_routing_complete();
}

void route_peer_synced(int k)
{
	strmap_t *in = &R.interest[k];
	strmap_entry_t *e;
	size_t pos = 0;

	R.synced[k] = true;
	route_check_complete();

	/* Filters the restarted peer did not announce again belonged to sessions that died with it. */
	while ((e = strmap_next(in, &pos))) {
		if ((uintptr_t)e->value != R.epoch[k]) {
			trie_remove(R.trie, e->key, e->len, peer_marker(k));
			strmap_del(in, e->key, e->len);
			pos = 0;
		}
	}
}

size_t route_peer_interest_count(int k)
{
	return R.interest[k].count;
}

void route_peer_down(int k, bool keep_interest)
{
	strmap_t *in = &R.interest[k];
	group_t *empty[256];
	size_t pos = 0, n = 0;
	strmap_entry_t *e;

	if (!keep_interest) {
		while ((e = strmap_next(in, &pos)))
			trie_remove(R.trie, e->key, e->len, peer_marker(k));
		strmap_finish(in);
		strmap_init(in);
	}
	do {
		n = 0;
		pos = 0;
		while ((e = strmap_next(&R.groups, &pos)) && n < 256) {
			group_t *g = e->value;

			g->peer_members[k] = 0;
			g->peer_online[k] = 0;
			if (!g->n_members)
				empty[n++] = g;
		}
		for (size_t i = 0; i < n; i++)
			group_maybe_free(empty[i]);
	} while (n == 256);
}

void route_peer_up(int k)
{
	size_t pos = 0;
	strmap_entry_t *e;
	int lowest = -1;

	while ((e = strmap_next(&R.filters, &pos)))
		mesh_send_sub(k, e->key, e->len, true, NULL);
	pos = 0;
	while ((e = strmap_next(&R.groups, &pos))) {
		group_t *g = e->value;

		if (g->n_members)
			mesh_send_group(k, g->key, g->key_len, g->n_members, group_local_online(g), NULL);
	}
	if (k >= W->n)
		return; /* the Kafka process: retained messages stay in the node (each node keeps its own) */
	/* Every worker holds every retained message; one of them (the lowest live one) refills a new peer. */
	for (int j = 0; j < W->n; j++) {
		if (j != k && (j == W->id || mesh_up(j))) {
			lowest = j;
			break;
		}
	}
	if (lowest != W->id)
		return;
	pos = 0;
	while ((e = strmap_next(&R.retained, &pos))) {
		/* $SYS values are each worker's own copy of the supervisor's (sys.h), not replicated. */
		if (!sys_topic((const uint8_t *)e->key, e->len))
			mesh_send_pub(k, e->value, MESH_RETAIN_STORE, NULL, 0, NULL);
	}
}

size_t route_retained_count(void)
{
	return R.retained.count;
}

uint64_t route_local_sub_count(void)
{
	return R.local_subs;
}

size_t route_sub_count(void)
{
	return trie_count(R.trie);
}

/* route.c — subscription trie, peer interest, shared groups, retained messages (see route.h). */
#include "route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mesh.h"
#include "msg.h"
#include "sess.h"
#include "store.h"

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
	bool peers[WORKER_MAX];
	group_t **groups;
	uint32_t n_groups;
} match_t;

/* Scratch for one match: grows to the largest fan-out seen, reused for every publish. */
static hit_t *hits;
static uint32_t n_hits, cap_hits;
static group_t **ghits;
static uint32_t cap_ghits;

int route_init(void)
{
	W->trie = trie_create();
	if (!W->trie)
		return -ENOMEM;
	strmap_init(&W->filters);
	strmap_init(&W->retained);
	strmap_init(&W->groups);
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

	while ((e = strmap_next(&W->retained, &pos)))
		msg_unref(e->value);
	pos = 0;
	while ((e = strmap_next(&W->groups, &pos)))
		group_free(e->value);
	strmap_finish(&W->retained);
	strmap_finish(&W->groups);
	strmap_finish(&W->filters);
	trie_destroy(W->trie);
	free(hits);
	free(ghits);
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
	if (s->match_epoch == W->match_epoch) {
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
	if (s->match_epoch != W->match_epoch) {
		s->match_epoch = W->match_epoch;
		s->match_slot = n_hits;
	}
	hits[n_hits++] = (hit_t){ .s = s, .subid = sub->subid, .qos = qos, .retain = retain };
	return true;
}

static bool on_match(void *value, void *ctx)
{
	match_t *mt = ctx;
	uintptr_t v = (uintptr_t)value;

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

			if (!p)
				return true;
			ghits = p;
			cap_ghits = cap;
		}
		ghits[mt->n_groups++] = (group_t *)(v & ~(uintptr_t)TAG_MASK);
		return true;
	default:
		if (((sub_t *)value)->group)
			return true;
		return add_hit(value, mt->m);
	}
}

static void match(match_t *mt, msg_t *m)
{
	memset(mt, 0, sizeof(*mt));
	mt->m = m;
	W->match_epoch++;
	n_hits = 0;
}

static void deliver_hits(msg_t *m)
{
	for (uint32_t i = 0; i < n_hits; i++)
		sess_deliver(hits[i].s, m, hits[i].qos, hits[i].retain, hits[i].subid);
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

		for (int i = 0; i < W->n; i++) {
			int k = (int)((g->rr_worker + (uint32_t)i) % (uint32_t)W->n);

			if (count[k] && (k == W->id || mesh_up(k))) {
				g->rr_worker = (uint32_t)k + 1;
				return k;
			}
		}
	}
	return -1;
}

static void deliver_group_local(group_t *g, msg_t *m)
{
	sub_t *sub = group_pick_member(g);

	if (!sub) {
		W->st.dropped_no_peer++;
		return;
	}
	sess_deliver(sub->sess, m, sub->opts.qos < m->qos ? sub->opts.qos : m->qos, 0, sub->subid);
}

uint32_t route_publish(msg_t *m, conn_t *c, uint64_t seq)
{
	match_t mt;
	uint32_t waiting = 0;
	bool want_ack = c && m->qos > 0;

	match(&mt, m);
	trie_match(W->trie, msg_topic(m), m->topic_len, on_match, &mt);
	deliver_hits(m);
	if (m->retain)
		route_retain_store(m);
	for (int k = 0; k < W->n; k++) {
		uint8_t flags = 0;

		if (k == W->id || !mesh_up(k))
			continue;
		if (mt.peers[k])
			flags |= MESH_DELIVER;
		if (m->retain)
			flags |= MESH_RETAIN_STORE;
		if (!flags)
			continue;
		mesh_send_pub(k, m, flags, NULL, 0, want_ack && mt.peers[k] ? c : NULL, seq);
		waiting += want_ack && mt.peers[k];
	}
	for (uint32_t i = 0; i < mt.n_groups; i++) {
		group_t *g = ghits[i];
		int k = group_pick_worker(g);

		if (k == W->id) {
			deliver_group_local(g, m);
		} else if (k >= 0) {
			mesh_send_pub(k, m, MESH_GROUP, g->key, g->key_len, want_ack ? c : NULL, seq);
			waiting += want_ack;
		}
	}
	return waiting;
}

void route_deliver_local(msg_t *m)
{
	match_t mt;

	match(&mt, m);
	mt.local_only = true;
	trie_match(W->trie, msg_topic(m), m->topic_len, on_match, &mt);
	deliver_hits(m);
}

void route_deliver_group(msg_t *m, const char *key, size_t len)
{
	group_t *g = strmap_get(&W->groups, key, len);

	if (g)
		deliver_group_local(g, m);
	else
		W->st.dropped_no_peer++;
}

void route_retain_store(msg_t *m)
{
	void *old = NULL;

	if (!m->payload_len) {
		/* [MQTT-3.3.1-6]: an empty retained message clears the topic. */
		msg_unref(strmap_del(&W->retained, msg_topic(m), m->topic_len));
		return;
	}
	if (strmap_put(&W->retained, msg_topic(m), m->topic_len, msg_ref(m), &old) < 0) {
		msg_unref(m);
		log_error(ENOMEM, "retained message for '%.*s' not stored", (int)m->topic_len, msg_topic(m));
		return;
	}
	msg_unref(old);
}

/* --- groups ---------------------------------------------------------------------------------------------- */

static group_t *group_get(const char *key, size_t len, bool create)
{
	group_t *g = strmap_get(&W->groups, key, len);
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
	g->peer_members = calloc((size_t)W->n, sizeof(uint32_t));
	g->peer_online = calloc((size_t)W->n, sizeof(uint32_t));
	if (!g->key || !g->peer_members || !g->peer_online)
		goto err;
	memcpy(g->key, key, len);
	g->key[len] = '\0';
	g->key_len = (uint16_t)len;
	g->filter_off = (uint16_t)(slash - key + 1);
	if (strmap_put(&W->groups, key, len, g, NULL) < 0)
		goto err;
	if (trie_insert(W->trie, g->key + g->filter_off, len - g->filter_off, (void *)((uintptr_t)g | TAG_GROUP)) < 0) {
		strmap_del(&W->groups, key, len);
		goto err;
	}
	return g;
err:
	group_free(g);
	return NULL;
}

static void group_maybe_free(group_t *g)
{
	for (int k = 0; k < W->n; k++) {
		if (g->peer_members[k])
			return;
	}
	trie_remove(W->trie, g->key + g->filter_off, g->key_len - g->filter_off, (void *)((uintptr_t)g | TAG_GROUP));
	strmap_del(&W->groups, g->key, g->key_len);
	group_free(g);
}

static uint32_t group_local_online(const group_t *g)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < g->n_members; i++)
		n += g->members[i]->sess->conn != NULL;
	return n;
}

/* Tell every peer our member counts for g; with c, the reply seq of c waits for their acks. */
static uint32_t group_broadcast(group_t *g, conn_t *c, uint64_t seq)
{
	uint32_t waiting = 0;

	g->peer_members[W->id] = g->n_members;
	g->peer_online[W->id] = group_local_online(g);
	for (int k = 0; k < W->n; k++) {
		if (k == W->id || !mesh_up(k))
			continue;
		mesh_send_group(k, g->key, g->key_len, g->n_members, g->peer_online[W->id], c, seq);
		waiting += c != NULL;
	}
	return waiting;
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
			group_broadcast(sub->group, NULL, 0);
	}
}

/* --- subscriptions --------------------------------------------------------------------------------------- */

static uint32_t filter_ref(const char *f, size_t len, int delta, conn_t *c, uint64_t seq)
{
	uintptr_t n = (uintptr_t)strmap_get(&W->filters, f, len);
	uint32_t waiting = 0;

	n = (uintptr_t)((intptr_t)n + delta);
	if (n)
		strmap_put(&W->filters, f, len, (void *)n, NULL);
	else
		strmap_del(&W->filters, f, len);
	/* Peers learn of a filter when its first local subscriber comes and its last one goes. */
	if ((delta > 0 && n == 1) || (delta < 0 && n == 0)) {
		for (int k = 0; k < W->n; k++) {
			if (k == W->id || !mesh_up(k))
				continue;
			mesh_send_sub(k, f, len, delta > 0, delta > 0 ? c : NULL, seq);
			waiting += delta > 0 && c;
		}
	}
	return waiting;
}

static void send_retained(sess_t *s, const sub_t *sub)
{
	const char *f = sub->filter + sub->match_off;
	size_t flen = sub->filter_len - sub->match_off;
	size_t pos = 0;
	strmap_entry_t *e;

	while ((e = strmap_next(&W->retained, &pos))) {
		msg_t *m = e->value;

		if (mqtt_topic_match((const uint8_t *)f, flen, m->data, m->topic_len))
			sess_deliver(s, m, sub->opts.qos < m->qos ? sub->opts.qos : m->qos, 1, sub->subid);
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

uint8_t route_subscribe(sess_t *s, mqtt_str_t filter, const mqtt_subopts_t *opts, uint32_t subid, conn_t *c,
	uint64_t seq, uint32_t *waiting, bool *retained)
{
	mqtt_str_t group, inner;
	bool shared;
	sub_t *sub;
	bool existed = false;

	*waiting = 0;
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
			*waiting = group_broadcast(g, c, seq);
		} else {
			if (trie_insert(W->trie, sub->filter, filter.len, sub) < 0)
				goto err_sub;
			*waiting = filter_ref(sub->filter, filter.len, 1, c, seq);
		}
		sub->next = s->subs;
		s->subs = sub;
		s->n_subs++;
	}
	/* Retained messages: not for shared subscriptions; retain handling 1 only for a new subscription. */
	*retained = !shared && (opts->retain_handling == 0 || (opts->retain_handling == 1 && !existed));
	store_sub_put(s, sub); /* durable before the SUBACK (W->wait) */
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
		group_broadcast(g, NULL, 0);
		group_maybe_free(g);
	} else {
		trie_remove(W->trie, sub->filter, sub->filter_len, sub);
		filter_ref(sub->filter, sub->filter_len, -1, NULL, 0);
	}
	s->n_subs--;
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
	strmap_t *in = &W->peers[k].interest;

	if (add) {
		if (strmap_get(in, filter, len))
			return;
		if (strmap_put(in, filter, len, (void *)1, NULL) < 0 ||
		    trie_insert(W->trie, filter, len, peer_marker(k)) < 0)
			log_error(ENOMEM, "interest of worker %d in '%.*s' lost", k, (int)len, filter);
	} else if (strmap_del(in, filter, len)) {
		trie_remove(W->trie, filter, len, peer_marker(k));
	}
}

void route_peer_down(int k)
{
	strmap_t *in = &W->peers[k].interest;
	group_t *empty[256];
	size_t pos = 0, n = 0;
	strmap_entry_t *e;

	while ((e = strmap_next(in, &pos)))
		trie_remove(W->trie, e->key, e->len, peer_marker(k));
	strmap_finish(in);
	strmap_init(in);
	do {
		n = 0;
		pos = 0;
		while ((e = strmap_next(&W->groups, &pos)) && n < 256) {
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

	while ((e = strmap_next(&W->filters, &pos)))
		mesh_send_sub(k, e->key, e->len, true, NULL, 0);
	pos = 0;
	while ((e = strmap_next(&W->groups, &pos))) {
		group_t *g = e->value;

		if (g->n_members)
			mesh_send_group(k, g->key, g->key_len, g->n_members, group_local_online(g), NULL, 0);
	}
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
	while ((e = strmap_next(&W->retained, &pos)))
		mesh_send_pub(k, e->value, MESH_RETAIN_STORE, NULL, 0, NULL, 0);
}

size_t route_retained_count(void)
{
	return W->retained.count;
}

size_t route_sub_count(void)
{
	return trie_count(W->trie);
}

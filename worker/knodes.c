/* knodes.c — the other nodes, as the Kafka process sees them (see knodes.h). */
#include "knodes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster.h"
#include "frame.h"
#include "kafka.h"
#include "kproc.h"
#include "log.h"
#include "loop.h"
#include "strmap.h"
#include "trie.h"
#include "worker.h"

/* How long a node that let a session go keeps routing its filters to the new node (and keeps announcing them):
 * long enough for every node to read the new node's interest. */
#define GRACE_MS 10000

/* A filter that stays routed after its interest moved: to node `to` (proxy) or as our own (deferred
 * withdrawal), until `until`. */
typedef struct lingering {
	int to;                    /* node, or -1: our own interest, withdrawn at `until` */
	uint64_t until;
	uint16_t len;
	char filter[];
} lingering_t;

/* How long a claim waits for the previous node to let a session go: at most 3 s, and well under the node
 * timeout. A previous node that died does not answer; the claim must end (the session loaded here, its
 * interest announced) before the dead node is adopted, so that the adopter, reading the dead node's inbox,
 * finds where the session went and forwards its records there. */
static uint32_t handover_timeout_ms(void)
{
	uint32_t t = W->cfg->kafka_node_timeout_ms / 3;

	return t < 3000 ? t : 3000;
}

static struct {
	int self;
	uint64_t seen_ms[CLUSTER_MAX_NODES];  /* last heartbeat of each node (0: never) */
	uint64_t echo_since;       /* our own heartbeats have come back without a gap since then */
	strmap_t handovers;        /* session id -> (void *)deadline: hand-overs we wait for */
	strmap_t real;             /* "<node>/<filter>" pairs other nodes announced themselves */
	trie_t *proxy;             /* filter -> node + 1: routed to a node that just took a session over */
	lingering_t **lingers;
	size_t n_lingers, cap_lingers;
	/* adoption of dead nodes: 0 none, 1 workers restoring its sessions, 2 reading its inbox */
	uint8_t adopt_stage[CLUSTER_MAX_NODES];
	int adopt_waiting[CLUSTER_MAX_NODES];
} N;

int knodes_init(int self, int n_workers)
{
	(void)n_workers;
	memset(&N, 0, sizeof(N));
	N.self = self;
	strmap_init(&N.handovers);
	strmap_init(&N.real);
	N.proxy = trie_create();
	return N.proxy ? 0 : -ENOMEM;
}

void knodes_finish(void)
{
	strmap_finish(&N.handovers);
	strmap_finish(&N.real);
	trie_destroy(N.proxy);
	for (size_t i = 0; i < N.n_lingers; i++)
		free(N.lingers[i]);
	free(N.lingers);
	memset(&N, 0, sizeof(N));
}

void knodes_heartbeat(int node, bool present)
{
	uint64_t now = loop_clock_ms();

	if (node < 0 || node >= CLUSTER_MAX_NODES)
		return;
	if (node == N.self && present && (!N.seen_ms[node] || now - N.seen_ms[node] > 2 * KNODES_HEARTBEAT_MS))
		N.echo_since = now;
	N.seen_ms[node] = present ? now : 0;
}

static bool fresh(int node, uint64_t now)
{
	return N.seen_ms[node] && now - N.seen_ms[node] < W->cfg->kafka_node_timeout_ms;
}

/* Silence means death only when the nodes' partition is seen to work: our own heartbeats come back, and have
 * for a whole timeout. A Kafka leader change or outage stalls every node's heartbeats alike; when the
 * partition resumes, the others' get a full timeout to arrive before anyone is judged. */
static bool judging(uint64_t now)
{
	return N.seen_ms[N.self] && now - N.seen_ms[N.self] <= 2 * KNODES_HEARTBEAT_MS &&
		now - N.echo_since >= W->cfg->kafka_node_timeout_ms;
}

bool knodes_alive(int node)
{
	uint64_t now = loop_clock_ms();

	if (node < 0 || node >= CLUSTER_MAX_NODES || !N.seen_ms[node])
		return false;
	return node == N.self || fresh(node, now) || !judging(now);
}

bool knodes_known(int node)
{
	return node >= 0 && node < CLUSTER_MAX_NODES && N.seen_ms[node];
}

/* --- lingering routes ------------------------------------------------------------------------------------ */

static bool proxied(int node, const char *f, size_t len)
{
	for (size_t i = 0; i < N.n_lingers; i++) {
		lingering_t *g = N.lingers[i];

		if (g->to == node && g->len == len && memcmp(g->filter, f, len) == 0)
			return true;
	}
	return false;
}

static void linger_add(int to, const char *f, size_t len)
{
	lingering_t *g;

	if (N.n_lingers == N.cap_lingers) {
		size_t cap = N.cap_lingers ? N.cap_lingers * 2 : 16;
		lingering_t **a = realloc(N.lingers, cap * sizeof(*a));

		if (!a)
			goto nomem;
		N.lingers = a;
		N.cap_lingers = cap;
	}
	g = malloc(sizeof(*g) + len);
	if (!g)
		goto nomem;
	g->to = to;
	g->until = loop_clock_ms() + GRACE_MS;
	g->len = (uint16_t)len;
	memcpy(g->filter, f, len);
	N.lingers[N.n_lingers++] = g;
	return;
nomem:
	log_error(ENOMEM, "filter '%.*s' not kept routed for node %d", (int)len, f, to);
}

static void produce_own(const char *f, size_t len, bool add, void *opaque)
{
	char key[70000];
	size_t klen = cluster_interest_key(key, sizeof(key), N.self, f, len);

	if (!klen || kafka_produce(KT_INTEREST, -1, key, klen, add ? "1" : NULL, add ? 1 : 0, opaque) < 0)
		log_warn(0, "interest in '%.*s' not %s", (int)len, f, add ? "announced" : "withdrawn");
}

/* Lingering entries whose time is up: a proxy ends unless the node announced the filter itself meanwhile; a
 * deferred withdrawal happens unless a worker wants the filter again. */
static void linger_expire(void)
{
	uint64_t now = loop_clock_ms();
	char key[70000];

	for (size_t i = 0; i < N.n_lingers;) {
		lingering_t *g = N.lingers[i];

		if (g->until > now) {
			i++;
			continue;
		}
		if (g->to < 0) {
			if (!cluster_worker_has(g->filter, g->len))
				produce_own(g->filter, g->len, false, NULL);
		} else {
			size_t klen = cluster_interest_key(key, sizeof(key), g->to, g->filter, g->len);

			trie_remove(N.proxy, g->filter, g->len, (void *)(uintptr_t)(g->to + 1));
			N.lingers[i] = N.lingers[--N.n_lingers];
			if (!proxied(g->to, g->filter, g->len) && !(klen && strmap_get(&N.real, key, klen)) &&
			    cluster_remote_sub(g->to, g->filter, g->len, false) == CLUSTER_LAST)
				kproc_tell_workers(g->filter, g->len, false);
			free(g);
			continue;
		}
		N.lingers[i] = N.lingers[--N.n_lingers];
		free(g);
	}
}

typedef struct mask_ctx {
	uint64_t mask;
} mask_ctx_t;

static bool proxy_bit(void *value, void *ctx)
{
	uintptr_t node = (uintptr_t)value - 1;

	if (node < CLUSTER_MAX_NODES)
		((mask_ctx_t *)ctx)->mask |= UINT64_C(1) << node;
	return true;
}


bool knodes_interest(int node, const char *key, size_t klen, const char *filter, size_t flen, bool present)
{
	if (present) {
		(void)strmap_put(&N.real, key, klen, (void *)1, NULL);
		return false;
	}
	strmap_del(&N.real, key, klen);
	return proxied(node, filter, flen); /* still routed there for a while: the lingering entry ends it */
}

void knodes_withdraw_later(const char *filter, size_t len)
{
	linger_add(-1, filter, len);
}

unsigned knodes_forward(int from, const char *topic, size_t tlen, const void *val, size_t vlen, void *opaque)
{
	mask_ctx_t mc = { 0 };
	unsigned n = 0;

	if (N.n_lingers)
		trie_match(N.proxy, topic, tlen, proxy_bit, &mc);
	/* A record of an adopted inbox was meant for the dead node's sessions. Those still its own are restored
	 * here; those whose clients came back on another node before the adoption are there now, and that node's
	 * interest says so: the record goes to every live node with interest (a duplicate where a copy went
	 * straight there too; a loss otherwise). */
	if (from != N.self) {
		uint64_t m = cluster_match_nodes(topic, tlen) & ~(UINT64_C(1) << from);

		for (int j = 0; j < CLUSTER_MAX_NODES; j++)
			if ((m & (UINT64_C(1) << j)) && knodes_alive(j))
				mc.mask |= UINT64_C(1) << j;
	}
	for (int j = 0; j < CLUSTER_MAX_NODES; j++) {
		if ((mc.mask & (UINT64_C(1) << j)) && j != N.self &&
		    kafka_produce(KT_INBOX, krec_partition(j), NULL, 0, val, vlen, opaque) == 0)
			n++;
	}
	return n;
}

static void handed(const char *id, size_t len)
{
	/* id may be the map's own key (a hand-over that timed out): use it before the entry goes. */
	kproc_send_owner(id, len, MF_HANDED, 0);
	strmap_del(&N.handovers, id, len);
}

/* "Let session id go for node origin" reaches the worker owning it; "it was let go" reaches the worker waiting. */
void knodes_record(const krec_t *r)
{
	const char *id = (const char *)r->body;

	if (r->kind == KREC_HANDOVER) {
		kproc_send_owner(id, r->body_len, MF_RELEASE, r->origin);
		return;
	}
	if (strmap_get(&N.handovers, id, r->body_len))
		handed(id, r->body_len);
}

static int produce_handover(int kind, int to, const char *id, size_t len, void *opaque)
{
	uint8_t rec[KREC_HDR_SIZE + 65536];
	size_t n = krec_note_encode(rec, sizeof(rec), (uint8_t)kind, (uint32_t)N.self, id, len);

	return n ? kafka_produce(KT_INBOX, krec_partition(to), NULL, 0, rec, n, opaque) : -EINVAL;
}

/* A worker claimed session id, owned by node `prev`: ask prev to let it go, unless prev is gone. */
void knodes_handover(int prev, const char *id, size_t len)
{
	if (prev == N.self || !knodes_alive(prev) ||
	    produce_handover(KREC_HANDOVER, prev, id, len, NULL) < 0 ||
	    strmap_put(&N.handovers, id, len, (void *)(uintptr_t)(loop_clock_ms() + handover_timeout_ms()), NULL) < 0) {
		handed(id, len);
		return;
	}
}

/* A worker let session id go for node `to`: tell `to`, and keep the session's filters routed there (from our
 * publishers and from what still reaches our inbox) until every node has read `to`'s own interest. */
void knodes_released(int to, const uint8_t *body, size_t n)
{
	const char *id = (const char *)body;
	size_t len = strnlen(id, n), off;

	if (len == n || to < 0 || to >= CLUSTER_MAX_NODES)
		return;
	(void)produce_handover(KREC_HANDED, to, id, len, NULL);
	for (off = len + 1; off < n;) {
		const char *f = (const char *)body + off;
		size_t flen = strnlen(f, n - off);

		if (flen && trie_insert(N.proxy, f, flen, (void *)(uintptr_t)(to + 1)) >= 0) {
			linger_add(to, f, flen);
			if (cluster_remote_sub(to, f, flen, true) == CLUSTER_FIRST)
				kproc_tell_workers(f, flen, true);
		}
		off += flen + 1;
	}
}

/* --- adoption of dead nodes ----------------------------------------------------------------------------- */

static void withdraw_for(const char *f, size_t len, void *ctx)
{
	int node = (int)(intptr_t)ctx;
	char key[70000];
	size_t klen = cluster_interest_key(key, sizeof(key), node, f, len);

	/* On the dead node's behalf: every node (us too, when the tombstone comes back) forgets it. */
	if (klen)
		(void)kafka_produce(KT_INTEREST, -1, key, klen, NULL, 0, NULL);
}

void knodes_adopted(int node)
{
	if (node < 0 || node >= CLUSTER_MAX_NODES || N.adopt_stage[node] != 1 || --N.adopt_waiting[node] > 0)
		return;
	/* Its sessions are ours and announced by our workers: now what was sent to it, from where it stopped. */
	N.adopt_stage[node] = 2;
	if (kafka_adopt(node) < 0)
		log_error(0, "cluster: node %d's inbox cannot be read: messages sent to it stay there until it returns",
			node);
	cluster_each_remote_of(node, withdraw_for, (void *)(intptr_t)node);
	log_info("cluster: node %d adopted: its sessions are served here, its inbox is read here", node);
}

/* A node whose heartbeats stopped is adopted by the lowest-numbered live node; one that is back is left to
 * itself again. */
static void watch_nodes(void)
{
	int lowest = -1;

	if (!kafka_caught_up())
		return;
	for (int j = 0; j < CLUSTER_MAX_NODES && lowest < 0; j++)
		if (j == N.self || knodes_alive(j))
			lowest = j;
	for (int j = 0; j < CLUSTER_MAX_NODES; j++) {
		if (j == N.self || !N.seen_ms[j])
			continue;
		if (fresh(j, loop_clock_ms())) {
			if (N.adopt_stage[j]) {
				log_info("cluster: node %d is back: its inbox is its own again", j);
				kafka_unadopt(j);
				N.adopt_stage[j] = 0;
			}
			continue;
		}
		if (N.adopt_stage[j] || lowest != N.self || knodes_alive(j))
			continue;
		log_warn(0, "cluster: node %d silent for %u ms: adopting its sessions and its inbox", j,
			W->cfg->kafka_node_timeout_ms);
		N.adopt_stage[j] = 1;
		N.adopt_waiting[j] = (int)kproc_send_all(MF_ADOPT, (uint32_t)j);
		if (!N.adopt_waiting[j]) {
			N.adopt_waiting[j] = 1;
			knodes_adopted(j);
		}
	}
}

void knodes_tick(void)
{
	uint64_t now = loop_clock_ms();
	strmap_entry_t *e;
	size_t pos = 0;

	linger_expire();
	watch_nodes();
	while ((e = strmap_next(&N.handovers, &pos))) {
		if ((uintptr_t)e->value > now)
			continue;
		log_warn(0, "session '%.*s': its previous node did not let it go within %u ms: taken without it",
			(int)e->len, e->key, handover_timeout_ms());
		handed(e->key, e->len);
		pos = 0; /* the map changed */
	}
}

static void count_one(const char *f, size_t len, void *ctx)
{
	(void)f;
	(void)len;
	(*(size_t *)ctx)++;
}

json_t *knodes_json(void)
{
	json_t *nodes = json_array();
	uint64_t now = loop_clock_ms();

	for (int j = 0; j < CLUSTER_MAX_NODES; j++) {
		size_t filters = 0;

		if (!N.seen_ms[j])
			continue;
		/* What the node owns, as routing sees it: the filters its sessions hold. */
		if (j == N.self)
			filters = cluster_own_count();
		else
			cluster_each_remote_of(j, count_one, &filters);
		json_array_append_new(nodes, json_pack("{s:i, s:I, s:b, s:b, s:b, s:I}", "node", j, "heartbeat_age_ms",
			(json_int_t)(now - N.seen_ms[j]), "alive", knodes_alive(j), "self", j == N.self,
			"adopted_here", N.adopt_stage[j] != 0, "filters", (json_int_t)filters));
	}
	return nodes;
}

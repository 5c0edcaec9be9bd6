/* cluster.c — the Kafka process's interest tables (see cluster.h). */
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "trie.h"

/* A table: (filter, member) pairs in a trie for matching, and per filter the number of members. */
typedef struct table {
	trie_t *trie;              /* values: (void *)(member + 1) */
	strmap_t count;            /* filter -> (void *)(uintptr_t)members */
} table_t;

typedef struct cgroup {
	uint32_t members[64];      /* per worker */
	uint32_t online[64];
	uint8_t node[CLUSTER_MAX_NODES];  /* other nodes' states: 0, 1 (members), 2 (online members) */
	uint8_t state;             /* this node's */
	uint32_t rr_node, rr_worker;
} cgroup_t;

static struct {
	int self;
	table_t own;               /* members: workers */
	table_t remote;            /* members: nodes */
	strmap_t groups;           /* key -> cgroup_t */
} C;

static int table_init(table_t *t)
{
	strmap_init(&t->count);
	t->trie = trie_create();
	return t->trie ? 0 : -ENOMEM;
}

static void table_finish(table_t *t)
{
	trie_destroy(t->trie);
	strmap_finish(&t->count);
	memset(t, 0, sizeof(*t));
}

int cluster_init(int self)
{
	memset(&C, 0, sizeof(C));
	C.self = self;
	strmap_init(&C.groups);
	if (table_init(&C.own) < 0 || table_init(&C.remote) < 0) {
		cluster_finish();
		return -ENOMEM;
	}
	return 0;
}

void cluster_finish(void)
{
	strmap_entry_t *e;
	size_t pos = 0;

	table_finish(&C.own);
	table_finish(&C.remote);
	while ((e = strmap_next(&C.groups, &pos)))
		free(e->value);
	strmap_finish(&C.groups);
}

static cgroup_t *group(const char *key, size_t len, bool create)
{
	cgroup_t *g = strmap_get(&C.groups, key, len);

	if (g || !create)
		return g;
	g = calloc(1, sizeof(*g));
	if (g && strmap_put(&C.groups, key, len, g, NULL) < 0) {
		free(g);
		g = NULL;
	}
	return g;
}

/* A group with nobody anywhere goes. */
static void group_maybe_free(cgroup_t *g, const char *key, size_t len)
{
	if (g->state)
		return;
	for (int j = 0; j < CLUSTER_MAX_NODES; j++)
		if (g->node[j])
			return;
	strmap_del(&C.groups, key, len);
	free(g);
}

int cluster_group_worker(int k, const char *key, size_t len, uint32_t members, uint32_t online)
{
	cgroup_t *g = group(key, len, members > 0);
	uint32_t m = 0, o = 0;
	uint8_t state;

	if (!g || k < 0 || k >= 64)
		return members > 0 && !g ? -2 : -1;
	g->members[k] = members;
	g->online[k] = online;
	for (int i = 0; i < 64; i++) {
		m += g->members[i];
		o += g->online[i];
	}
	state = o ? 2 : m ? 1 : 0;
	if (state == g->state)
		return -1;
	g->state = state;
	group_maybe_free(g, key, len);
	return state;
}

bool cluster_group_remote(int node, const char *key, size_t len, int state)
{
	cgroup_t *g = group(key, len, state > 0);

	if (!g || node == C.self || node < 0 || node >= CLUSTER_MAX_NODES || g->node[node] == state)
		return false;
	g->node[node] = (uint8_t)state;
	group_maybe_free(g, key, len);
	return true;
}

void cluster_group_counts(const char *key, size_t len, uint32_t *nodes, uint32_t *online)
{
	cgroup_t *g = group(key, len, false);

	*nodes = *online = 0;
	for (int j = 0; g && j < CLUSTER_MAX_NODES; j++) {
		*nodes += g->node[j] > 0;
		*online += g->node[j] == 2;
	}
}

int cluster_group_state(const char *key, size_t len)
{
	cgroup_t *g = group(key, len, false);

	return g ? g->state : 0;
}

void cluster_each_group(void (*fn)(const char *key, size_t len, uint32_t nodes, uint32_t online, void *ctx),
	void *ctx)
{
	strmap_entry_t *e;
	size_t pos = 0;

	while ((e = strmap_next(&C.groups, &pos))) {
		uint32_t nodes, online;

		cluster_group_counts(e->key, e->len, &nodes, &online);
		if (nodes)
			fn(e->key, e->len, nodes, online, ctx);
	}
}

static void count_one(const char *key, size_t len, uint32_t nodes, uint32_t online, void *ctx)
{
	(void)key;
	(void)len;
	(void)nodes;
	(void)online;
	(*(size_t *)ctx)++;
}

static void count_nodes(const char *key, size_t len, uint32_t nodes, uint32_t online, void *ctx)
{
	(void)key;
	(void)len;
	(void)online;
	*(size_t *)ctx += nodes;
}

size_t cluster_group_remote_nodes(void)
{
	size_t n = 0;

	cluster_each_group(count_nodes, &n);
	return n;
}

size_t cluster_group_remote_count(void)
{
	size_t n = 0;

	cluster_each_group(count_one, &n);
	return n;
}

int cluster_group_pick_node(const char *key, size_t len)
{
	cgroup_t *g = group(key, len, false);

	for (int want = 2; g && want >= 1; want--) {
		for (int i = 0; i < CLUSTER_MAX_NODES; i++) {
			int j = (int)((g->rr_node + (uint32_t)i) % CLUSTER_MAX_NODES);

			if (g->node[j] >= want) {
				g->rr_node = (uint32_t)j + 1;
				return j;
			}
		}
	}
	return -1;
}

int cluster_group_pick_worker(const char *key, size_t len)
{
	cgroup_t *g = group(key, len, false);

	for (int pass = 0; g && pass < 2; pass++) {
		const uint32_t *count = pass == 0 ? g->online : g->members;

		for (int i = 0; i < 64; i++) {
			int k = (int)((g->rr_worker + (uint32_t)i) % 64);

			if (count[k]) {
				g->rr_worker = (uint32_t)k + 1;
				return k;
			}
		}
	}
	return -1;
}

/* Add or remove (filter, member); the edge of the filter's member count. */
static int table_set(table_t *t, int member, const char *filter, size_t len, bool add)
{
	void *v = (void *)(uintptr_t)(member + 1);
	void **slot = strmap_ref(&t->count, filter, len);
	uintptr_t n = slot ? (uintptr_t)*slot : 0;
	int rc;

	if (add) {
		rc = trie_insert(t->trie, filter, len, v);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return CLUSTER_NONE; /* already there */
		if (slot) {
			*slot = (void *)(n + 1);
			return CLUSTER_NONE;
		}
		if (strmap_put(&t->count, filter, len, (void *)(uintptr_t)1, NULL) < 0) {
			trie_remove(t->trie, filter, len, v);
			return -ENOMEM;
		}
		return CLUSTER_FIRST;
	}
	if (trie_remove(t->trie, filter, len, v) < 0 || !slot)
		return CLUSTER_NONE;
	if (n > 1) {
		*slot = (void *)(n - 1);
		return CLUSTER_NONE;
	}
	strmap_del(&t->count, filter, len);
	return CLUSTER_LAST;
}

typedef struct collect {
	uintptr_t value;
	char **filters;
	size_t *lens;
	size_t n, cap;
	bool failed;
} collect_t;

static bool collect_one(const char *filter, size_t len, void *value, void *ctx)
{
	collect_t *c = ctx;

	if ((uintptr_t)value != c->value)
		return true;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		char **f = realloc(c->filters, cap * sizeof(*f));
		size_t *l = f ? realloc(c->lens, cap * sizeof(*l)) : NULL;

		if (f)
			c->filters = f;
		if (!l) {
			c->failed = true;
			return false;
		}
		c->lens = l;
		c->cap = cap;
	}
	c->filters[c->n] = malloc(len ? len : 1);
	if (!c->filters[c->n]) {
		c->failed = true;
		return false;
	}
	memcpy(c->filters[c->n], filter, len);
	c->lens[c->n++] = len;
	return true;
}

/* Remove every pair of member; fn gets each filter whose count drops to zero. Allocation failure while
 * collecting leaves what could not be collected in place (it is retried by the next call). */
static void table_drop_member(table_t *t, int member, void (*fn)(const char *, size_t, void *), void *ctx)
{
	collect_t c = { .value = (uintptr_t)(member + 1) };

	trie_walk(t->trie, collect_one, &c);
	for (size_t i = 0; i < c.n; i++) {
		if (table_set(t, member, c.filters[i], c.lens[i], false) == CLUSTER_LAST && fn)
			fn(c.filters[i], c.lens[i], ctx);
		free(c.filters[i]);
	}
	free(c.filters);
	free(c.lens);
}

typedef struct mask_ctx {
	uint64_t mask;
} mask_ctx_t;

static bool add_bit(void *value, void *ctx)
{
	uintptr_t m = (uintptr_t)value - 1;

	if (m < 64)
		((mask_ctx_t *)ctx)->mask |= UINT64_C(1) << m;
	return true;
}

static uint64_t table_match(const table_t *t, const char *topic, size_t len)
{
	mask_ctx_t mc = { 0 };

	trie_match(t->trie, topic, len, add_bit, &mc);
	return mc.mask;
}

int cluster_worker_sub(int k, const char *filter, size_t len, bool add)
{
	if (k < 0 || k >= 64)
		return CLUSTER_NONE;
	return table_set(&C.own, k, filter, len, add);
}

void cluster_worker_down(int k, void (*fn)(const char *filter, size_t len, void *ctx), void *ctx)
{
	table_drop_member(&C.own, k, fn, ctx);
}

bool cluster_worker_has(const char *filter, size_t len)
{
	return strmap_get(&C.own.count, filter, len) != NULL;
}

uint64_t cluster_match_workers(const char *topic, size_t len)
{
	return table_match(&C.own, topic, len);
}

int cluster_remote_sub(int node, const char *filter, size_t len, bool add)
{
	if (node == C.self || node < 0 || node >= CLUSTER_MAX_NODES)
		return CLUSTER_NONE;
	return table_set(&C.remote, node, filter, len, add);
}

void cluster_remote_down(int node, void (*fn)(const char *filter, size_t len, void *ctx), void *ctx)
{
	table_drop_member(&C.remote, node, fn, ctx);
}

uint64_t cluster_match_nodes(const char *topic, size_t len)
{
	return table_match(&C.remote, topic, len);
}

static void each(const table_t *t, void (*fn)(const char *, size_t, void *), void *ctx)
{
	strmap_entry_t *e;
	size_t pos = 0;

	while ((e = strmap_next(&t->count, &pos)))
		fn(e->key, e->len, ctx);
}

void cluster_each_remote(void (*fn)(const char *filter, size_t len, void *ctx), void *ctx)
{
	each(&C.remote, fn, ctx);
}

typedef struct of_ctx {
	uintptr_t value;
	void (*fn)(const char *, size_t, void *);
	void *ctx;
} of_ctx_t;

static bool of_one(const char *filter, size_t len, void *value, void *ctx)
{
	of_ctx_t *o = ctx;

	if ((uintptr_t)value == o->value)
		o->fn(filter, len, o->ctx);
	return true;
}

void cluster_each_remote_of(int node, void (*fn)(const char *filter, size_t len, void *ctx), void *ctx)
{
	of_ctx_t o = { .value = (uintptr_t)(node + 1), .fn = fn, .ctx = ctx };

	trie_walk(C.remote.trie, of_one, &o);
}

void cluster_each_own(void (*fn)(const char *filter, size_t len, void *ctx), void *ctx)
{
	each(&C.own, fn, ctx);
}

size_t cluster_own_count(void)
{
	return C.own.count.count;
}

size_t cluster_remote_count(void)
{
	return C.remote.count.count;
}

size_t cluster_interest_key(char *out, size_t cap, int node, const char *filter, size_t len)
{
	int n = snprintf(out, cap, "%d/", node);

	if (n < 0 || (size_t)n + len > cap)
		return 0;
	memcpy(out + n, filter, len);
	return (size_t)n + len;
}

bool cluster_interest_parse(const char *key, size_t len, int *node, const char **filter, size_t *flen)
{
	int v = 0;
	size_t i = 0;

	for (; i < len && i < 3 && key[i] >= '0' && key[i] <= '9'; i++)
		v = v * 10 + (key[i] - '0');
	if (i == 0 || i >= len || key[i] != '/' || v >= CLUSTER_MAX_NODES || i + 1 >= len)
		return false;
	*node = v;
	*filter = key + i + 1;
	*flen = len - i - 1;
	return true;
}

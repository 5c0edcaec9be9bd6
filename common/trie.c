/*
 * trie.c — MQTT subscription trie.
 *
 * One node per filter level. Ordinary children are not stored in the parent: every node sits in a single
 * per-trie hash table keyed by (parent, level text), so a level with 100k children costs the same one lookup as a
 * level with one, and a node with a single child (the common deep chain) needs no child table of its own. Each
 * node also keeps a doubly linked list of its ordinary children, for trie_walk and O(1) unlinking. '+' and
 * '#' children hang off dedicated pointers because every match step tries them.
 *
 * Values: one value is stored inline (most filters have one subscriber per worker); two or more live in an
 * open-addressing pointer set, so a filter with 100k subscribers still inserts and removes in O(1).
 *
 * Level hashing is keyed with a per-trie random seed (SipHash-1-3): filters come from clients, and an
 * unkeyed hash would let one client fill a bucket and slow every publish on the worker.
 *
 * Depth: filters deeper than TRIE_MAX_LEVELS are refused, so the trie is at most that deep and the
 * recursion in trie_match/trie_walk (one frame per level actually present in the trie) is bounded whatever
 * the topic length.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trie.h"
#include "siphash.h"

typedef struct node node_t;

struct node {
	node_t *parent;
	node_t *hnext;              /* hash chain in trie->buckets */
	node_t *first;              /* ordinary children */
	node_t *prev, *next;        /* siblings under parent->first */
	node_t *plus, *hash;        /* the '+' and '#' children */
	union {
		void *one;          /* nval == 1 */
		void **set;         /* nval >= 2: open addressing, vcap slots, NULL = empty */
	} v;
	uint32_t nval, vcap;
	uint32_t hval;              /* hash of (parent, level): kept for rehashing */
	uint32_t len;               /* level length */
	char seg[];                 /* level text, not NUL-terminated */
};

struct trie {
	node_t root;
	node_t **buckets;
	size_t nbuckets;            /* power of two */
	size_t nnodes;              /* nodes in buckets (ordinary children only) */
	size_t nalloc;              /* all allocated nodes, '+'/'#' included; root excluded */
	size_t count;               /* (filter, value) pairs */
	size_t max_len;             /* longest filter ever inserted: sizes trie_walk's buffer */
	siphash_key_t key;          /* per-trie: filter levels are client-chosen */
};

#define MIN_BUCKETS 64
#define VSET_MIN 4

/* ---- hashing ---- */

static uint32_t
level_hash(const trie_t *t, const node_t *parent, const char *seg, size_t len)
{
	uint64_t h = siphash13(&t->key, seg, len);

	/* The parent pointer is not attacker-chosen; a multiplicative mix spreads it over the high bits. */
	h ^= (uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ULL;
	return (uint32_t)(h ^ (h >> 32));
}

static inline size_t
ptr_hash(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32);
}

/* ---- node table ---- */

static node_t *
lookup(const trie_t *t, const node_t *parent, const char *seg, size_t len)
{
	uint32_t h = level_hash(t, parent, seg, len);
	node_t *n;

	for (n = t->buckets[h & (t->nbuckets - 1)]; n != NULL; n = n->hnext)
		if (n->hval == h && n->parent == parent && n->len == len && memcmp(n->seg, seg, len) == 0)
			return n;
	return NULL;
}

/* Best effort: on allocation failure the table keeps its size and chains just get longer. */
static void
rehash(trie_t *t, size_t nb)
{
	node_t **nbk = calloc(nb, sizeof(*nbk));

	if (nbk == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		node_t *n = t->buckets[i], *next;

		for (; n != NULL; n = next) {
			next = n->hnext;
			n->hnext = nbk[n->hval & (nb - 1)];
			nbk[n->hval & (nb - 1)] = n;
		}
	}
	free(t->buckets);
	t->buckets = nbk;
	t->nbuckets = nb;
}

static void
table_add(trie_t *t, node_t *n)
{
	node_t **b = &t->buckets[n->hval & (t->nbuckets - 1)];

	n->hnext = *b;
	*b = n;
	if (++t->nnodes > t->nbuckets)
		rehash(t, t->nbuckets * 2);
}

static void
table_del(trie_t *t, node_t *n)
{
	node_t **pp = &t->buckets[n->hval & (t->nbuckets - 1)];

	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	/* Shrink lazily (at 1/8 load) so a subscribe/unsubscribe pair at a boundary does not rehash twice. */
	if (--t->nnodes < t->nbuckets / 8 && t->nbuckets > MIN_BUCKETS)
		rehash(t, t->nbuckets / 2);
}

/* ---- value sets ---- */

static bool
vset_has(const node_t *n, const void *value)
{
	size_t mask, i;

	if (n->nval == 0)
		return false;
	if (n->vcap == 0)
		return n->v.one == value;
	mask = n->vcap - 1;
	for (i = ptr_hash(value) & mask; n->v.set[i] != NULL; i = (i + 1) & mask)
		if (n->v.set[i] == value)
			return true;
	return false;
}

static void
vset_put(void **set, size_t cap, void *value)
{
	size_t i;

	for (i = ptr_hash(value) & (cap - 1); set[i] != NULL; i = (i + 1) & (cap - 1))
		;
	set[i] = value;
}

/* Move the values into a set of cap slots (cap 0: back to inline, nval must be 1). */
static int
vset_resize(node_t *n, uint32_t cap)
{
	void **set;

	if (cap == 0) {
		void *only = NULL;

		for (uint32_t i = 0; i < n->vcap; i++)
			if (n->v.set[i] != NULL)
				only = n->v.set[i];
		free(n->v.set);
		n->v.one = only;
		n->vcap = 0;
		return 0;
	}
	set = calloc(cap, sizeof(*set));
	if (set == NULL)
		return -ENOMEM;
	if (n->vcap == 0) {
		if (n->nval == 1)
			vset_put(set, cap, n->v.one);
	} else {
		for (uint32_t i = 0; i < n->vcap; i++)
			if (n->v.set[i] != NULL)
				vset_put(set, cap, n->v.set[i]);
		free(n->v.set);
	}
	n->v.set = set;
	n->vcap = cap;
	return 0;
}

/* Caller checked the value is absent. */
static int
vset_add(node_t *n, void *value)
{
	if (n->nval == 0) {
		n->v.one = value;
		n->nval = 1;
		return 0;
	}
	/* Keep load at most 3/4 so probe runs stay short. */
	if (n->vcap == 0 || (n->nval + 1) * 4 > n->vcap * 3) {
		uint32_t cap = n->vcap == 0 ? VSET_MIN : n->vcap * 2;

		if (cap == 0 || vset_resize(n, cap) < 0)
			return -ENOMEM;
	}
	vset_put(n->v.set, n->vcap, value);
	n->nval++;
	return 0;
}

/* Returns false when value is absent. */
static bool
vset_del(node_t *n, const void *value)
{
	size_t mask, i, j;

	if (n->nval == 0)
		return false;
	if (n->vcap == 0) {
		if (n->v.one != value)
			return false;
		n->v.one = NULL;
		n->nval = 0;
		return true;
	}
	mask = n->vcap - 1;
	for (i = ptr_hash(value) & mask; n->v.set[i] != value; i = (i + 1) & mask)
		if (n->v.set[i] == NULL)
			return false;
	/*
	 * Backward-shift deletion (no tombstones): move later members of the probe run into the hole when their
	 * home slot does not lie cyclically in (hole, their position].
	 */
	for (j = (i + 1) & mask; n->v.set[j] != NULL; j = (j + 1) & mask) {
		size_t home = ptr_hash(n->v.set[j]) & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			n->v.set[i] = n->v.set[j];
			i = j;
		}
	}
	n->v.set[i] = NULL;
	n->nval--;
	/* Shrinking is best effort: failure leaves a sparse but valid set. */
	if (n->nval == 1)
		vset_resize(n, 0);
	else if (n->vcap > VSET_MIN && n->nval * 8 <= n->vcap)
		(void)vset_resize(n, n->vcap / 2);
	return true;
}

static bool
vset_each(const node_t *n, trie_match_fn fn, void *ctx)
{
	if (n->nval == 0)
		return true;
	if (n->vcap == 0)
		return fn(n->v.one, ctx);
	for (uint32_t i = 0; i < n->vcap; i++)
		if (n->v.set[i] != NULL && !fn(n->v.set[i], ctx))
			return false;
	return true;
}

/* ---- nodes ---- */

static node_t *
node_new(const char *seg, size_t len, node_t *parent)
{
	node_t *n = calloc(1, sizeof(*n) + len);

	if (n == NULL)
		return NULL;
	memcpy(n->seg, seg, len);
	n->len = (uint32_t)len;
	n->parent = parent;
	return n;
}

static bool
node_empty(const node_t *n)
{
	return n->nval == 0 && n->first == NULL && n->plus == NULL && n->hash == NULL;
}

/* Child of parent for one filter level, created when `create`. */
static node_t *
child(trie_t *t, node_t *parent, const char *seg, size_t len, bool create)
{
	node_t *n, **slot = NULL;

	if (len == 1 && seg[0] == '+')
		slot = &parent->plus;
	else if (len == 1 && seg[0] == '#')
		slot = &parent->hash;
	if (slot != NULL) {
		if (*slot == NULL && create) {
			*slot = node_new(seg, len, parent);
			if (*slot != NULL)
				t->nalloc++;
		}
		return *slot;
	}

	n = lookup(t, parent, seg, len);
	if (n != NULL || !create)
		return n;
	n = node_new(seg, len, parent);
	if (n == NULL)
		return NULL;
	n->hval = level_hash(t, parent, seg, len);
	n->next = parent->first;
	if (parent->first != NULL)
		parent->first->prev = n;
	parent->first = n;
	table_add(t, n);
	t->nalloc++;
	return n;
}

/* Free n and its now-empty ancestors, stopping at the root or the first node still in use. */
static void
prune(trie_t *t, node_t *n)
{
	while (n != &t->root && node_empty(n)) {
		node_t *p = n->parent;

		if (p->plus == n) {
			p->plus = NULL;
		} else if (p->hash == n) {
			p->hash = NULL;
		} else {
			if (n->prev != NULL)
				n->prev->next = n->next;
			else
				p->first = n->next;
			if (n->next != NULL)
				n->next->prev = n->prev;
			table_del(t, n);
		}
		free(n);
		t->nalloc--;
		n = p;
	}
}

/* Node for filter, or NULL when absent (create false) or out of memory (create true). */
static node_t *
find(trie_t *t, const char *filter, size_t len, bool create)
{
	node_t *n = &t->root;
	size_t pos = 0;

	for (;;) {
		const char *slash = memchr(filter + pos, '/', len - pos);
		size_t end = slash != NULL ? (size_t)(slash - filter) : len;
		node_t *c = child(t, n, filter + pos, end - pos, create);

		if (c == NULL) {
			if (create)
				prune(t, n);
			return NULL;
		}
		n = c;
		if (slash == NULL)
			return n;
		pos = end + 1;
	}
}

static size_t
count_levels(const char *s, size_t len)
{
	size_t levels = 1;

	for (const char *p = s; (p = memchr(p, '/', len - (size_t)(p - s))) != NULL; p++)
		levels++;
	return levels;
}

/* ---- API ---- */

trie_t *
trie_create(void)
{
	trie_t *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->nbuckets = MIN_BUCKETS;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (t->buckets == NULL) {
		free(t);
		return NULL;
	}
	siphash_key_random(&t->key);
	return t;
}

static void
free_subtree(node_t *n)
{
	/* Depth is bounded by TRIE_MAX_LEVELS; the sibling list is iterated, not recursed. */
	for (node_t *c = n->first, *next; c != NULL; c = next) {
		next = c->next;
		free_subtree(c);
		free(c);
	}
	if (n->plus != NULL) {
		free_subtree(n->plus);
		free(n->plus);
	}
	if (n->hash != NULL) {
		free_subtree(n->hash);
		free(n->hash);
	}
	if (n->vcap != 0)
		free(n->v.set);
}

void
trie_destroy(trie_t *t)
{
	if (t == NULL)
		return;
	free_subtree(&t->root);
	free(t->buckets);
	free(t);
}

int
trie_insert(trie_t *t, const char *filter, size_t len, void *value)
{
	node_t *n;

	if (value == NULL || count_levels(filter, len) > TRIE_MAX_LEVELS)
		return -EINVAL;
	n = find(t, filter, len, true);
	if (n == NULL)
		return -ENOMEM;
	if (vset_has(n, value))
		return 1;
	if (vset_add(n, value) < 0) {
		prune(t, n);
		return -ENOMEM;
	}
	t->count++;
	if (len > t->max_len)
		t->max_len = len;
	return 0;
}

int
trie_remove(trie_t *t, const char *filter, size_t len, void *value)
{
	node_t *n = find(t, filter, len, false);

	if (n == NULL || !vset_del(n, value))
		return -ENOENT;
	t->count--;
	prune(t, n);
	return 0;
}

typedef struct match_ctx {
	const trie_t *t;
	const char *topic;
	size_t len;
	trie_match_fn fn;
	void *ctx;
} match_ctx_t;

/*
 * n has matched the topic levels before pos; pos > len means every level is consumed. One frame per trie
 * level, so the depth is bounded by TRIE_MAX_LEVELS + 1 no matter how many levels the topic has.
 */
static bool
match(const match_ctx_t *m, const node_t *n, size_t pos)
{
	/* [MQTT-4.7.2-1]: a '$' topic is not matched by a first-level wildcard. */
	bool wild = !(n == &m->t->root && m->len > 0 && m->topic[0] == '$');
	const char *slash;
	const node_t *c;
	size_t end, next;

	/* "a/#" matches "a" as well as everything below it [MQTT-4.7.1-2]. */
	if (wild && n->hash != NULL && !vset_each(n->hash, m->fn, m->ctx))
		return false;
	if (pos > m->len)
		return vset_each(n, m->fn, m->ctx);

	slash = memchr(m->topic + pos, '/', m->len - pos);
	end = slash != NULL ? (size_t)(slash - m->topic) : m->len;
	next = slash != NULL ? end + 1 : m->len + 1;

	/* A level with no children needs no hashing: the common case for leaf-heavy tries. */
	if (n->first != NULL) {
		c = lookup(m->t, n, m->topic + pos, end - pos);
		if (c != NULL && !match(m, c, next))
			return false;
	}
	if (wild && n->plus != NULL && !match(m, n->plus, next))
		return false;
	return true;
}

bool
trie_match(const trie_t *t, const char *topic, size_t len, trie_match_fn fn, void *ctx)
{
	match_ctx_t m = { t, topic, len, fn, ctx };

	return match(&m, &t->root, 0);
}

bool
trie_each_exact(const trie_t *t, const char *filter, size_t len, trie_match_fn fn, void *ctx)
{
	/* find() with create == false never modifies the trie. */
	const node_t *n = find((trie_t *)t, filter, len, false);

	return n == NULL || vset_each(n, fn, ctx);
}

typedef struct walk_ctx {
	char *buf;
	trie_walk_fn fn;
	void *ctx;
} walk_ctx_t;

static bool
walk(walk_ctx_t *w, const node_t *n, size_t pos)
{
	if (n->parent != NULL) {
		if (n->parent->parent != NULL)
			w->buf[pos++] = '/';
		memcpy(w->buf + pos, n->seg, n->len);
		pos += n->len;
		w->buf[pos] = '\0';
		if (n->vcap == 0) {
			if (n->nval == 1 && !w->fn(w->buf, pos, n->v.one, w->ctx))
				return false;
		} else {
			for (uint32_t i = 0; i < n->vcap; i++)
				if (n->v.set[i] != NULL && !w->fn(w->buf, pos, n->v.set[i], w->ctx))
					return false;
		}
	}
	for (const node_t *c = n->first; c != NULL; c = c->next)
		if (!walk(w, c, pos))
			return false;
	if (n->plus != NULL && !walk(w, n->plus, pos))
		return false;
	if (n->hash != NULL && !walk(w, n->hash, pos))
		return false;
	return true;
}

bool
trie_walk(const trie_t *t, trie_walk_fn fn, void *ctx)
{
	walk_ctx_t w = { NULL, fn, ctx };
	bool ok;

	if (t->count == 0)
		return true;
	/* Every stored filter is at most max_len bytes, so one buffer serves the whole walk. */
	w.buf = malloc(t->max_len + 1);
	if (w.buf == NULL)
		return false;
	ok = walk(&w, &t->root, 0);
	free(w.buf);
	return ok;
}

size_t
trie_count(const trie_t *t)
{
	return t->count;
}

size_t
trie_node_count(const trie_t *t)
{
	return t->nalloc;
}

/*
 * trie.h — MQTT subscription trie: topic filters (levels split on '/') mapped to opaque values.
 *
 * One filter may hold many values (one per subscriber record); a (filter, value) pair is stored once.
 * Matching follows MQTT: '+' matches exactly one level, '#' the parent level and everything below, and a
 * topic whose first level starts with '$' is not matched by a filter whose first level is '+' or '#'
 * [MQTT-4.7.2-1]. Filters are not validated here (proto/ does that). Not thread-safe: each worker owns its
 * own trie. No allocation during trie_match().
 */
#ifndef RINGMQ_COMMON_TRIE_H
#define RINGMQ_COMMON_TRIE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct trie trie_t;

/*
 * Deepest filter accepted by trie_insert (levels = number of '/' + 1). Bounding the trie's depth bounds the
 * recursion of trie_match/trie_walk; topics may be deeper (they simply stop matching past this depth, except
 * through '#').
 */
#define TRIE_MAX_LEVELS 256

/* Returns NULL on allocation failure. trie_destroy(NULL) is a no-op; values are not freed. */
trie_t *trie_create(void);
void trie_destroy(trie_t *t);

/*
 * Add value under filter (bytes copied; the caller keeps filter). value must not be NULL. Returns 0 when
 * added, 1 when the pair was already present, -ENOMEM (trie unchanged), or -EINVAL for a NULL value or a
 * filter of more than TRIE_MAX_LEVELS levels.
 */
int trie_insert(trie_t *t, const char *filter, size_t len, void *value);
/* Remove the pair. Returns 0, or -ENOENT when absent. Empty nodes are freed. */
int trie_remove(trie_t *t, const char *filter, size_t len, void *value);

/* Called once per (matching filter, value). Return false to stop the walk. */
typedef bool (*trie_match_fn)(void *value, void *ctx);
/*
 * Call fn for every value whose filter matches topic name `topic` (a value stored under several matching
 * filters is reported once per filter; order unspecified). fn must not modify the trie. Never allocates.
 * Returns false if fn stopped the walk.
 */
bool trie_match(const trie_t *t, const char *topic, size_t len, trie_match_fn fn, void *ctx);

/* Call fn for every value stored under exactly `filter` (no wildcard expansion). fn must not modify the trie.
 * Returns false if fn stopped the walk. */
bool trie_each_exact(const trie_t *t, const char *filter, size_t len, trie_match_fn fn, void *ctx);
/*
 * Visit every stored (filter, value); the filter string is passed NUL-terminated and valid during the call.
 * fn must not modify the trie. Allocates one buffer of the longest filter's size: returns false if fn
 * stopped the walk or that allocation failed.
 */
typedef bool (*trie_walk_fn)(const char *filter, size_t len, void *value, void *ctx);
bool trie_walk(const trie_t *t, trie_walk_fn fn, void *ctx);

/* Number of (filter, value) pairs stored. */
size_t trie_count(const trie_t *t);
/* Number of allocated level nodes (root excluded): 0 once every filter is removed. For stats and tests. */
size_t trie_node_count(const trie_t *t);

#endif

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

/* Returns NULL on allocation failure. trie_destroy(NULL) is a no-op; values are not freed. */
trie_t *trie_create(void);
void trie_destroy(trie_t *t);

/* Add value under filter. Returns 0 when added, 1 when the pair was already present, -ENOMEM. */
int trie_insert(trie_t *t, const char *filter, size_t len, void *value);
/* Remove the pair. Returns 0, or -ENOENT when absent. Empty nodes are freed. */
int trie_remove(trie_t *t, const char *filter, size_t len, void *value);

/* Called once per (matching filter, value). Return false to stop the walk. */
typedef bool (*trie_match_fn)(void *value, void *ctx);
/* Call fn for every value whose filter matches topic name `topic`. Returns false if fn stopped the walk. */
bool trie_match(const trie_t *t, const char *topic, size_t len, trie_match_fn fn, void *ctx);

/* Call fn for every value stored under exactly `filter` (no wildcard expansion). */
bool trie_each_exact(const trie_t *t, const char *filter, size_t len, trie_match_fn fn, void *ctx);
/* Visit every stored (filter, value); the filter string is passed NUL-terminated and valid during the call. */
typedef bool (*trie_walk_fn)(const char *filter, size_t len, void *value, void *ctx);
bool trie_walk(const trie_t *t, trie_walk_fn fn, void *ctx);

/* Number of (filter, value) pairs stored. */
size_t trie_count(const trie_t *t);

#endif

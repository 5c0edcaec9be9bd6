/*
 * strmap.h — string-keyed hash map (open addressing, linear probing, tombstone-free backward-shift delete).
 *
 * Keys are copied into the map; values are opaque pointers the caller owns. Used by a single worker for
 * sessions by client ID, filter reference counts, retained messages and shared groups — keys clients
 * choose — so keys are hashed with SipHash under a per-map random key: a client cannot compute colliding
 * IDs or topics to turn the linear probes quadratic. Not thread-safe.
 */
#ifndef RINGMQ_WORKER_STRMAP_H
#define RINGMQ_WORKER_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "siphash.h"

typedef struct strmap_entry {
	char *key;       /* NULL = empty slot; owned by the map */
	uint32_t len;
	uint32_t hash;
	void *value;
} strmap_entry_t;

typedef struct strmap {
	strmap_entry_t *slots;
	size_t cap;      /* power of two, 0 before first insert */
	size_t count;
	siphash_key_t key;
} strmap_t;

void strmap_init(strmap_t *m);
/* Frees the keys and the table, not the values. */
void strmap_finish(strmap_t *m);
/* Empty the map (keys freed), keeping its table and hash key for reuse. */
void strmap_clear(strmap_t *m);
void *strmap_get(const strmap_t *m, const void *key, size_t len);
/* The value slot of key, or NULL: updating it in place cannot fail. */
void **strmap_ref(const strmap_t *m, const void *key, size_t len);
/* Insert or replace. Returns 0, or -ENOMEM (the map is then unchanged; replacing never fails).
 * *old (if not NULL) receives the replaced value or NULL. */
int strmap_put(strmap_t *m, const void *key, size_t len, void *value, void **old);
/* Remove; returns the removed value or NULL. */
void *strmap_del(strmap_t *m, const void *key, size_t len);
/* Iterate: start with *pos = 0; returns the next entry or NULL. The map must not change while iterating
 * except through strmap_del of the returned entry's key, after which iteration must restart. */
strmap_entry_t *strmap_next(const strmap_t *m, size_t *pos);

#endif

/*
 * pg_cache.h — what the PostgreSQL credential store (pg.c) remembers: credentials decoded from rows, and a
 * bounded per-worker cache of answers, found and not found, keyed by the lookup key.
 *
 * An answer (pg_ent_t) is reference-counted: the cache holds one reference while the answer is cached, and
 * every lookup waiting to deliver it holds one, so an answer dropped from the cache (least recently used, or
 * invalidated) stays valid for whoever still has to deliver it. An invalidated answer is marked stale: a holder
 * must ask PostgreSQL again rather than deliver it.
 *
 * The cache is a least-recently-used list over a strmap (SipHash-keyed: the keys are client IDs and user names
 * clients choose). Pure memory, no I/O. Worker thread only.
 */
#ifndef RINGMQ_WORKER_PG_CACHE_H
#define RINGMQ_WORKER_PG_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg.h"
#include "strmap.h"

typedef struct pg_ent {
	pg_cred_t cred;                /* id, password_hash (owned), acl (one reference owned; NULL: no rules) */
	bool found;                    /* false: "no such credential" (cred is zero) */
	bool stale;                    /* invalidated: ask PostgreSQL again instead of delivering it */
	bool cached;                   /* in the cache (holds the cache's reference) */
	uint32_t refs;
	struct pg_ent *prev, *next;    /* least-recently-used list, most recent first; only while cached */
	char *key;                     /* the cache key, only while cached */
	size_t key_len;
} pg_ent_t;

typedef struct pg_cache {
	strmap_t map;                  /* key -> pg_ent_t * */
	pg_ent_t *head, *tail;
	size_t count, max;
} pg_cache_t;

/* A "not found" answer (one reference), or NULL on allocation failure. */
pg_ent_t *pg_ent_not_found(void);
/*
 * Decode one row of the lookup statement: the id (decimal text), the password hash (NULL: none) and the rules
 * (JSON arrays of strings, as array_to_json gives them; NULL counts as empty). A rule that is not a string, or
 * that acl_add refuses as a topic filter, is skipped with a log line naming the credential; a row with any
 * rule gets a rule set (possibly empty, so that a credential whose rules are all invalid is not given the
 * defaults' freedom), a row without rules gets none (acl NULL: the defaults apply).
 * Returns 0 with *out (one reference), -EINVAL for a row that is not shaped as expected (bad id, JSON that is
 * not an array; logged), -ENOMEM.
 */
int pg_ent_decode(const char *id, const char *password_hash, const char *pub_json, size_t pub_len,
	const char *sub_json, size_t sub_len, pg_ent_t **out);
pg_ent_t *pg_ent_ref(pg_ent_t *e);
/* NULL-safe; frees the answer with its last reference. */
void pg_ent_unref(pg_ent_t *e);

/* An empty cache of at most max answers (max >= 1). */
void pg_cache_init(pg_cache_t *c, size_t max);
/* Drop every answer (holders keep theirs) and free the table. */
void pg_cache_finish(pg_cache_t *c);
/* The cached answer for key, made most recently used; no reference taken. NULL when not cached. */
pg_ent_t *pg_cache_get(pg_cache_t *c, const char *key, size_t len);
/* Cache e under key (the cache takes its own reference), replacing an answer cached under the same key and
 * dropping the least recently used answer when full. 0, or -ENOMEM (nothing changed). */
int pg_cache_put(pg_cache_t *c, const char *key, size_t len, pg_ent_t *e);
/* A credential changed: drop (and mark stale) its answers and every "not found" answer, since an insert or a
 * change of keys may have made any of them wrong. */
void pg_cache_drop_id(pg_cache_t *c, uint64_t id);
/* Drop and mark stale every answer (reconnect: notifications may have been missed; TRUNCATE). */
void pg_cache_clear(pg_cache_t *c);

#endif

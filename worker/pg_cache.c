/* pg_cache.c — credentials decoded from rows, and the per-worker cache of answers (see pg_cache.h). */
#include "pg_cache.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "log.h"

pg_ent_t *pg_ent_ref(pg_ent_t *e)
{
	e->refs++;
	return e;
}

void pg_ent_unref(pg_ent_t *e)
{
	if (!e || --e->refs)
		return;
	free((char *)e->cred.password_hash);
	acl_unref(e->cred.acl);
	free(e->key);
	free(e);
}

pg_ent_t *pg_ent_not_found(void)
{
	pg_ent_t *e = calloc(1, sizeof(*e));

	if (e)
		e->refs = 1;
	return e;
}

/* Strict decimal, 1..INT64_MAX (a bigserial). */
static bool parse_id(const char *s, uint64_t *id)
{
	uint64_t v = 0;

	if (!s || !*s || strlen(s) > 19)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (!v || v > INT64_MAX)
		return false;
	*id = v;
	return true;
}

/* Add the rules of one JSON array; *acl is created with the first element. 0, -EINVAL, -ENOMEM. */
static int add_rules(acl_t **acl, uint64_t id, unsigned access, const char *json, size_t len)
{
	const char *what = access == ACL_PUB ? "publish" : "subscribe";
	json_error_t jerr;
	json_t *arr, *v;
	size_t i;
	int err = 0;

	if (!json)
		return 0;
	arr = json_loadb(json, len, 0, &jerr);
	if (!json_is_array(arr)) {
		log_error(0, "PostgreSQL credential %llu: %s rules are not a JSON array (%s): credential refused",
			(unsigned long long)id, what, arr ? "wrong type" : jerr.text);
		json_decref(arr);
		return -EINVAL;
	}
	json_array_foreach(arr, i, v) {
		const char *rule = json_string_value(v);
		int ret;

		if (!*acl && !(*acl = acl_create())) {
			err = -ENOMEM;
			break;
		}
		if (!rule) {
			log_warn(0, "PostgreSQL credential %llu: %s rule %zu is not a string: ignored",
				(unsigned long long)id, what, i + 1);
			continue;
		}
		ret = acl_add(*acl, access, rule, json_string_length(v));
		if (ret == -ENOMEM) {
			err = ret;
			break;
		}
		if (ret < 0)
			log_warn(0, "PostgreSQL credential %llu: %s rule '%.200s' is not a valid topic filter: ignored",
				(unsigned long long)id, what, rule);
	}
	json_decref(arr);
	return err;
}

int pg_ent_decode(const char *id, const char *password_hash, const char *pub_json, size_t pub_len,
	const char *sub_json, size_t sub_len, pg_ent_t **out)
{
	pg_ent_t *e;
	acl_t *acl = NULL;
	uint64_t v;
	int err;

	*out = NULL;
	if (!parse_id(id, &v)) {
		log_error(0, "PostgreSQL credential lookup returned an id that is not a positive integer: refused");
		return -EINVAL;
	}
	if ((err = add_rules(&acl, v, ACL_PUB, pub_json, pub_len)) < 0 ||
		(err = add_rules(&acl, v, ACL_SUB, sub_json, sub_len)) < 0) {
		acl_unref(acl);
		return err;
	}
	e = calloc(1, sizeof(*e));
	if (!e || (password_hash && !(e->cred.password_hash = strdup(password_hash)))) {
		free(e);
		acl_unref(acl);
		return -ENOMEM;
	}
	e->refs = 1;
	e->found = true;
	e->cred.id = v;
	e->cred.acl = acl;
	*out = e;
	return 0;
}

void pg_cache_init(pg_cache_t *c, size_t max)
{
	memset(c, 0, sizeof(*c));
	strmap_init(&c->map);
	c->max = max ? max : 1;
}

static void unlink_lru(pg_cache_t *c, pg_ent_t *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void push_front(pg_cache_t *c, pg_ent_t *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
}

/* Take e out of the cache; stale says whether holders may still deliver it. */
static void drop(pg_cache_t *c, pg_ent_t *e, bool stale)
{
	strmap_del(&c->map, e->key, e->key_len);
	unlink_lru(c, e);
	c->count--;
	e->cached = false;
	e->stale |= stale;
	free(e->key);
	e->key = NULL;
	e->key_len = 0;
	pg_ent_unref(e);
}

void pg_cache_finish(pg_cache_t *c)
{
	pg_cache_clear(c);
	strmap_finish(&c->map);
}

pg_ent_t *pg_cache_get(pg_cache_t *c, const char *key, size_t len)
{
	pg_ent_t *e = strmap_get(&c->map, key, len);

	if (e && e != c->head) {
		unlink_lru(c, e);
		push_front(c, e);
	}
	return e;
}

int pg_cache_put(pg_cache_t *c, const char *key, size_t len, pg_ent_t *e)
{
	pg_ent_t *old;
	char *k;

	if (e->cached)
		return 0;
	k = malloc(len ? len : 1);
	if (!k)
		return -ENOMEM;
	memcpy(k, key, len);
	old = strmap_get(&c->map, key, len);
	if (old) {
		/* A newer answer for the same key (two lookups were in flight): it replaces the older one. */
		drop(c, old, false);
	} else if (c->count >= c->max) {
		drop(c, c->tail, false);
	}
	if (strmap_put(&c->map, key, len, e, NULL) < 0) {
		free(k);
		return -ENOMEM;
	}
	e->key = k;
	e->key_len = len;
	e->cached = true;
	pg_ent_ref(e);
	push_front(c, e);
	c->count++;
	return 0;
}

void pg_cache_drop_id(pg_cache_t *c, uint64_t id)
{
	for (pg_ent_t *e = c->head, *next; e; e = next) {
		next = e->next;
		if (!e->found || e->cred.id == id)
			drop(c, e, true);
	}
}

void pg_cache_clear(pg_cache_t *c)
{
	while (c->head)
		drop(c, c->head, true);
}

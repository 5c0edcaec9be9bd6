/* strmap.c — string-keyed open-addressing hash map (see strmap.h). */
#include "strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t hash_bytes(const strmap_t *m, const void *key, size_t len)
{
	return (uint32_t)siphash13(&m->key, key, len);
}

void strmap_init(strmap_t *m)
{
	memset(m, 0, sizeof(*m));
	siphash_key_random(&m->key);
}

void strmap_finish(strmap_t *m)
{
	siphash_key_t key = m->key;

	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
	m->key = key;
}

void strmap_clear(strmap_t *m)
{
	if (!m->count)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		free(m->slots[i].key);
		m->slots[i].key = NULL;
	}
	m->count = 0;
}

static size_t find(const strmap_t *m, const void *key, size_t len, uint32_t h)
{
	size_t mask = m->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const strmap_entry_t *e = &m->slots[i];

		if (!e->key)
			return i;
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
			return i;
	}
}

void *strmap_get(const strmap_t *m, const void *key, size_t len)
{
	void **v = strmap_ref(m, key, len);

	return v ? *v : NULL;
}

void **strmap_ref(const strmap_t *m, const void *key, size_t len)
{
	size_t i;

	if (!m->cap)
		return NULL;
	i = find(m, key, len, hash_bytes(m, key, len));
	return m->slots[i].key ? &m->slots[i].value : NULL;
}

static int grow(strmap_t *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	strmap_entry_t *old = m->slots;
	size_t ocap = m->cap;

	m->slots = calloc(ncap, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (old[i].key)
			m->slots[find(m, old[i].key, old[i].len, old[i].hash)] = old[i];
	}
	free(old);
	return 0;
}

int strmap_put(strmap_t *m, const void *key, size_t len, void *value, void **old)
{
	uint32_t h = hash_bytes(m, key, len);
	strmap_entry_t *e;
	char *k;

	if (old)
		*old = NULL;
	if (m->cap) {
		e = &m->slots[find(m, key, len, h)];
		if (e->key) {
			if (old)
				*old = e->value;
			e->value = value;
			return 0;
		}
	}
	k = malloc(len + 1);
	if (!k)
		return -ENOMEM;
	/* Keep the load under 3/4 so probe runs stay short. */
	if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0) {
		free(k);
		return -ENOMEM;
	}
	e = &m->slots[find(m, key, len, h)];
	memcpy(k, key, len);
	k[len] = '\0';
	e->key = k;
	e->len = (uint32_t)len;
	e->hash = h;
	e->value = value;
	m->count++;
	return 0;
}

void *strmap_del(strmap_t *m, const void *key, size_t len)
{
	size_t mask, i, j;
	void *value;

	if (!m->cap)
		return NULL;
	mask = m->cap - 1;
	i = find(m, key, len, hash_bytes(m, key, len));
	if (!m->slots[i].key)
		return NULL;
	value = m->slots[i].value;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->count--;
	/* Backward-shift: move later members of the probe run into the hole so lookups never need tombstones. */
	for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
	return value;
}

strmap_entry_t *strmap_next(const strmap_t *m, size_t *pos)
{
	while (*pos < m->cap) {
		strmap_entry_t *e = &m->slots[(*pos)++];

		if (e->key)
			return e;
	}
	return NULL;
}

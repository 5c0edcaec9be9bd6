/* authcache.c — successful password checks remembered per worker (see authcache.h). */
#include "authcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "strmap.h"

typedef struct entry {
	uint64_t cred;
	uint8_t hash_sum[32];      /* SHA-256 of the stored hash string */
	uint8_t mac[32];           /* HMAC-SHA256(key, password) */
	struct entry *prev, *next; /* most recently used first */
} entry_t;

static struct {
	uint32_t max;
	uint32_t count;
	uint8_t key[32];
	strmap_t map;              /* 8-byte credential id -> entry_t */
	entry_t *mru, *lru;
} K;

int authcache_init(uint32_t max)
{
	memset(&K, 0, sizeof(K));
	strmap_init(&K.map);
	if (!max)
		return 0;
	if (RAND_bytes(K.key, sizeof(K.key)) != 1)
		return -EIO;
	K.max = max;
	return 0;
}

static void unlink_entry(entry_t *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		K.mru = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		K.lru = e->prev;
	e->prev = e->next = NULL;
}

static void push_front(entry_t *e)
{
	e->next = K.mru;
	if (K.mru)
		K.mru->prev = e;
	else
		K.lru = e;
	K.mru = e;
}

static void drop(entry_t *e)
{
	strmap_del(&K.map, &e->cred, sizeof(e->cred));
	unlink_entry(e);
	K.count--;
	OPENSSL_cleanse(e, sizeof(*e));
	free(e);
}

void authcache_clear(void)
{
	while (K.lru)
		drop(K.lru);
}

void authcache_finish(void)
{
	authcache_clear();
	strmap_finish(&K.map);
	OPENSSL_cleanse(K.key, sizeof(K.key));
	K.max = 0;
}

static bool digests(const char *hash, const uint8_t *pw, size_t len, uint8_t sum[32], uint8_t mac[32])
{
	unsigned int n = 32;

	return EVP_Digest(hash, strlen(hash), sum, NULL, EVP_sha256(), NULL) == 1 &&
		HMAC(EVP_sha256(), K.key, sizeof(K.key), pw ? pw : (const uint8_t *)"", len, mac, &n) != NULL;
}

bool authcache_hit(uint64_t cred, const char *hash, const uint8_t *password, size_t len)
{
	entry_t *e;
	uint8_t sum[32], mac[32];
	bool hit;

	if (!K.max || !(e = strmap_get(&K.map, &cred, sizeof(cred))) || !digests(hash, password, len, sum, mac))
		return false;
	hit = CRYPTO_memcmp(sum, e->hash_sum, 32) == 0 && CRYPTO_memcmp(mac, e->mac, 32) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	if (hit && e != K.mru) {
		unlink_entry(e);
		push_front(e);
	}
	return hit;
}

void authcache_put(uint64_t cred, const char *hash, const uint8_t *password, size_t len)
{
	entry_t *e;

	if (!K.max)
		return;
	e = strmap_get(&K.map, &cred, sizeof(cred));
	if (e) {
		unlink_entry(e);
	} else {
		if (K.count >= K.max)
			drop(K.lru);
		e = calloc(1, sizeof(*e));
		if (!e)
			return; /* only a cache: the next CONNECT pays the check */
		e->cred = cred;
		if (strmap_put(&K.map, &e->cred, sizeof(e->cred), e, NULL) < 0) {
			free(e);
			return;
		}
		K.count++;
	}
	push_front(e);
	if (!digests(hash, password, len, e->hash_sum, e->mac))
		drop(e);
}

void authcache_forget(uint64_t cred)
{
	entry_t *e = K.max ? strmap_get(&K.map, &cred, sizeof(cred)) : NULL;

	if (e)
		drop(e);
}

size_t authcache_count(void)
{
	return K.count;
}

/*
 * siphash.h — SipHash-1-3, the keyed hash for every table whose keys clients choose (client IDs, topics,
 * filter levels): without the key, a client cannot compute collisions and flood one bucket.
 *
 * Pure functions; any thread. The key is made once per table (or per process) by siphash_key_random().
 */
#ifndef RINGMQ_COMMON_SIPHASH_H
#define RINGMQ_COMMON_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct siphash_key {
	uint64_t k0, k1;
} siphash_key_t;

/* SipHash-1-3 of len bytes at p under key k. */
uint64_t siphash13(const siphash_key_t *k, const void *p, size_t len);
/* Fill k from getrandom(); without entropy (early boot) a per-process value that clients still cannot see. */
void siphash_key_random(siphash_key_t *k);

#endif

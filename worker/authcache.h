/*
 * authcache.h — password checks that succeeded, remembered per worker, so that a client reconnecting with the
 * password it used before does not pay a bcrypt or PBKDF2 check again.
 *
 * A password hash is slow on purpose (bcrypt cost 10: about 50 ms of a core): a fleet of devices reconnecting
 * after a network blip would otherwise queue behind the hash pool for minutes. An entry holds, for one
 * credential, a SHA-256 of its stored hash (a changed hash never matches) and an HMAC-SHA256 of the password
 * under a key drawn at start-up and never leaving the worker's memory: no password is kept, and a wrong password
 * never matches, so guesses still pay the full check. Entries go with their credential's revocation (NOTIFY,
 * reload) and the least recently used goes first when `auth_cache_size` entries are held (0: off).
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_AUTHCACHE_H
#define RINGMQ_WORKER_AUTHCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* max entries (0: the cache is off: every call below does nothing). 0, or -ENOMEM / -EIO (no random key). */
int authcache_init(uint32_t max);
void authcache_finish(void);
/* Did password verify against stored hash for credential cred before (and nothing changed since)? */
bool authcache_hit(uint64_t cred, const char *hash, const uint8_t *password, size_t len);
/* password verified against hash for cred: remember it. */
void authcache_put(uint64_t cred, const char *hash, const uint8_t *password, size_t len);
/* Credential cred changed or went. */
void authcache_forget(uint64_t cred);
/* Every credential may have changed. */
void authcache_clear(void);
size_t authcache_count(void);

#endif

/*
 * pwfile.h — password files in mosquitto_passwd format, and checking a password against a stored hash.
 *
 * A file holds one "user:hash" line per user; blank lines and lines starting with '#' are skipped, as
 * mosquitto does. Hash formats understood (the same functions check the hashes PostgreSQL credentials carry):
 *   $7$<iterations>$<base64 salt>$<base64 hash>  PBKDF2-HMAC-SHA512, 64-byte hash (mosquitto 2.0's default;
 *                                                mosquitto_passwd writes 101 iterations and a 12-byte salt)
 *   $6$<base64 salt>$<base64 hash>               base64(SHA-512(password || salt)) (mosquitto 1.x) — NOT
 *                                                crypt(3)'s SHA-crypt, which shares the prefix
 *   $2a$ / $2b$ / $2y$                           bcrypt, checked with libcrypt's crypt_rn
 * Hashes costlier than PWFILE_MAX_ITERATIONS / bcrypt cost PWFILE_MAX_BCRYPT_COST are refused as malformed:
 * every CONNECT pays the cost, and one such line would stall a worker's hash pool.
 *
 * Pure functions (no global state; OpenSSL 3 and crypt_rn are thread-safe): the verification runs on the hash
 * pool's threads, the loader in a worker, and pwfile_hash in ringmqctl. Any process, any thread.
 */
#ifndef RINGMQ_COMMON_PWFILE_H
#define RINGMQ_COMMON_PWFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What pwfile_hash uses by default: about 8 ms of one core per CONNECT (the figure in docs/operations.md).
 * mosquitto_passwd's 101 barely slows an offline attack; OWASP's 210,000 for PBKDF2-HMAC-SHA512 would make a
 * 2-thread pool verify ~25 CONNECTs a second. ringmqctl passwd --iterations chooses another count. */
#define PWFILE_ITERATIONS 20000u
#define PWFILE_MAX_ITERATIONS 5000000u
#define PWFILE_MAX_BCRYPT_COST 16
/* The longest hash pwfile_hash writes, NUL included ("$7$5000000$" + 16 + "$" + 88). */
#define PWFILE_HASH_MAX 128

typedef struct pwfile pwfile_t;

/*
 * Parse a password file's text (len bytes, need not be NUL-terminated). `name` prefixes error lines
 * ("NAME:LINE: ..."). Returns 0 and a new pwfile_t in *out, or -EINVAL (a line that is not "user:hash", an
 * unknown or malformed hash, a user listed twice) / -ENOMEM after writing one line to err (errlen bytes).
 */
int pwfile_parse(const char *text, size_t len, const char *name, pwfile_t **out, char *err, size_t errlen);
/* Read and parse the file at path: as pwfile_parse, plus -errno when it cannot be read (the line says so). */
int pwfile_load(const char *path, pwfile_t **out, char *err, size_t errlen);
/* NULL-safe. */
void pwfile_free(pwfile_t *pf);
size_t pwfile_count(const pwfile_t *pf);
/* The stored hash of user (len bytes), or NULL. Valid until pwfile_free. O(log n). */
const char *pwfile_find(const pwfile_t *pf, const void *user, size_t len);
/* Entry i (0 <= i < count) in byte order of the user names: its name (NUL-terminated, *ulen bytes) and
 * hash. false when i is out of range. */
bool pwfile_get(const pwfile_t *pf, size_t i, const char **user, size_t *ulen, const char **hash);

/* Is hash (NUL-terminated) in a format pwfile_verify understands, within the cost bounds? */
bool pwfile_hash_valid(const char *hash);
/*
 * Check password (len bytes, any bytes) against hash, in constant time for a given hash. 0 when it matches,
 * -EACCES when it does not, -EINVAL for a hash pwfile_hash_valid refuses, -ENOMEM. Any thread.
 */
int pwfile_verify(const char *hash, const void *password, size_t len);
/*
 * Write the line "user:$7$<iterations>$<salt>$<hash>" (no newline) for user (NUL-terminated) and password
 * (len bytes) into out (outlen bytes): PBKDF2-HMAC-SHA512 with a fresh 12-byte random salt, as mosquitto 2.0
 * writes it. iterations 0 means PWFILE_ITERATIONS. Returns the line's length, or -EINVAL (user empty or
 * holding ':', '\n' or '\r'; iterations above PWFILE_MAX_ITERATIONS), -ENOSPC (out too small), -EIO (no
 * randomness / OpenSSL failed).
 */
int pwfile_hash(const char *user, const void *password, size_t len, unsigned iterations, char *out,
	size_t outlen);

#endif

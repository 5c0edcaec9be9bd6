/*
 * pg.h — PostgreSQL credential store on the worker's io_uring (libpq in nonblocking mode: PQsocket polled
 * through the ring, prepared statements, never a blocking call after start-up).
 *
 * A credential row (schema: scripts/pg/NNN_*.sql) matches a client by client ID, user name, both, or certificate
 * CN (config `pg_match`); it carries a password hash (bcrypt `$2a$`/`$2b$`, or PBKDF2-SHA512) and the
 * credential's publish and subscribe rules. Lookups are cached per worker; the cache is invalidated through
 * LISTEN/NOTIFY (a trigger notifies every change with the credential id), and pg_on_change listeners hear of
 * each changed or deleted id. Unreachable at start: one log line naming `pg_conninfo` and the fix, then
 * retries with backoff; lookups meanwhile fail with -EAGAIN (the client gets "server unavailable").
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_PG_H
#define RINGMQ_WORKER_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;

typedef struct pg_cred {
	uint64_t id;
	const char *password_hash;     /* NULL: no password (certificate-only credential) */
	struct acl *acl;               /* the credential's rules (the callee keeps its reference; acl_ref to keep) */
} pg_cred_t;

/* err 0 with cred NULL: no such credential; -EAGAIN: the store cannot answer now; -ENOMEM. */
typedef void (*pg_cred_fn)(void *ctx, int err, const pg_cred_t *cred);

/* Connect (asynchronously) with conninfo; register with the loop. 0 or -errno, logged: -EINVAL (a conninfo
 * that does not parse), -EHOSTUNREACH (a host name that does not resolve now). */
int pg_init(const char *conninfo);
void pg_finish(void);
bool pg_ready(void);
/* Look a client up; cb is called exactly once, later (never from inside pg_lookup), unless cancelled. Keys
 * that are NULL are not used. 0, or -ENOMEM. */
int pg_lookup(const char *client_id, const char *username, const char *cert_cn, pg_cred_fn cb, void *ctx);
void pg_cancel(void *ctx);
/* Called for every credential id that changed or was deleted (after the cache dropped it); with
 * PG_CHANGED_ALL when any credential may have changed (the table was truncated). */
#define PG_CHANGED_ALL UINT64_MAX
void pg_on_change(void (*fn)(uint64_t id));

#endif

/*
 * pg_conninfo.h — pg_conninfo made ready for PQconnectStartParams, once, at worker start-up (pg.c).
 *
 * The connection string is parsed with libpq's own parser (PQconninfoParse: key=value or postgresql:// URI) and
 * completed:
 *   - host names are resolved now (getaddrinfo: this may block, which start-up may and a reconnect on the
 *     worker's loop must not): every address of every name becomes a host/hostaddr/port entry, so libpq still
 *     tries them in turn without resolving anything, and keeps the name for TLS verification and .pgpass.
 *     Socket directories and numeric addresses need nothing; so does a conninfo that sets hostaddr itself.
 *     A name that later points elsewhere takes a worker restart;
 *   - defaults the conninfo may override: application_name (ringmqd-w<id>, seen in pg_stat_activity) and TCP
 *     keepalives that notice a dead server in about a minute (30 s idle, 3 probes 10 s apart) rather than the
 *     kernel's two hours — notifications are lost while a dead connection looks alive — and gssencmode disable
 *     (libpq's "prefer" asks a Kerberos KDC for a ticket, blocking, whenever a credential cache exists);
 *   - client_encoding UTF8, always: keys are compared as UTF-8 text.
 * Errors are logged in one line naming pg_conninfo. libpq quotes the text it cannot parse, which may be a piece
 * of the password: only quoted words that are libpq keywords are kept. Any process, not thread-safe.
 */
#ifndef RINGMQ_WORKER_PG_CONNINFO_H
#define RINGMQ_WORKER_PG_CONNINFO_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_params {
	char **keys, **vals;           /* NULL-terminated lists for PQconnectStartParams (expand_dbname 0), owned */
	uint32_t connect_timeout_ms;   /* the conninfo's connect_timeout; 0 when it sets none */
} pg_params_t;

/* Build *p from conninfo. 0; -EINVAL (does not parse: logged); -EHOSTUNREACH (a host name does not resolve
 * now: logged); -ENOMEM. On failure *p holds nothing to free. */
int pg_params_build(pg_params_t *p, const char *conninfo, const char *application_name);
/* NULL-safe; leaves *p empty. */
void pg_params_free(pg_params_t *p);
/* The value of key in *p, NULL when not set (for tests and logs). */
const char *pg_params_get(const pg_params_t *p, const char *key);
/* libpq's message about a conninfo it could not parse, one line, with quoted words that are not libpq keywords
 * (or "=") replaced by "...". */
void pg_conninfo_redact(const char *msg, char *out, size_t size);

#endif

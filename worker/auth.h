/*
 * auth.h — who a client is, decided at CONNECT, and what it may do.
 *
 * Providers are tried in the configured order (`auth_order`, e.g. "file,pg,cert"): a password file
 * (mosquitto_passwd format, reloadable), PostgreSQL credentials (pg.h), the CN of a verified client
 * certificate. The first provider that knows the client decides; a client no provider knows is refused unless
 * `allow_anonymous` (default: true only when no provider is configured). Password hashes (bcrypt via libcrypt,
 * PBKDF2-SHA512 via OpenSSL) are checked off the event loop in a small bounded thread pool per worker whose
 * completions come back through an eventfd on the ring; when the pool's queue is full the client gets "server
 * busy" rather than stalling every other client. Failures are logged (address, client ID, reason; never the
 * password), counted, and rate-limited per source address.
 *
 * The result carries the client's rules (acl.h) and the name `%u` stands for in them. Worker thread only.
 */
#ifndef RINGMQ_WORKER_AUTH_H
#define RINGMQ_WORKER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;

typedef struct auth_identity {
	const uint8_t *client_id;
	size_t client_id_len;
	const uint8_t *username;       /* NULL when the CONNECT has none */
	size_t username_len;
	const uint8_t *password;       /* NULL when the CONNECT has none */
	size_t password_len;
	const char *cert_cn;           /* CN of a verified client certificate, NULL without one */
	const char *addr;              /* "ip:port", for logs and per-address limits */
} auth_identity_t;

typedef struct auth_result {
	int err;                       /* 0, or a negative enum mqtt_err: MQTT_E_BAD_AUTH (wrong or missing
	                                * password, unknown user), MQTT_E_NOT_AUTHORIZED (known but refused:
	                                * anonymous not allowed, certificate without a credential), MQTT_E_BUSY
	                                * (hash pool full, address rate-limited), MQTT_E_UNAVAILABLE (the
	                                * credential store cannot answer) */
	struct acl *acl;               /* the client's own rules (a reference: acl_unref), NULL: defaults only */
	char username[256];            /* what %u stands for: the CONNECT's user name, or the certificate CN
	                                * with tls_identity = cn; empty when none */
	uint64_t cred;                 /* the credential's id (a change or deletion disconnects its clients);
	                                * 0 for none */
} auth_result_t;

/* Called exactly once per started authentication (never from inside auth_start), unless cancelled first.
 * res is valid during the call only; take the acl reference by setting res->acl to NULL. */
typedef void (*auth_done_fn)(void *ctx, auth_result_t *res);

/* Set up the providers from the configuration (W->cfg) and register with the loop. 0 or -errno after one log
 * line naming the key and the fix. Worker start-up only. */
int auth_init(void);
void auth_finish(void);
/* Is any check needed at all? (false: every client is accepted with the default rules, synchronously) */
bool auth_enabled(void);
/* Start authenticating id (copied). 0: done(ctx, ...) follows later. Negative enum mqtt_err when it cannot
 * start (then done is never called). */
int auth_start(const auth_identity_t *id, auth_done_fn done, void *ctx);
/* The client went away: done(ctx) will not be called. */
void auth_cancel(void *ctx);
/* A credential changed or was deleted (PostgreSQL NOTIFY, password file reload): fn(cred) is called so the
 * clients that authenticated with it are disconnected. One listener (conn.c). */
void auth_on_revoked(void (*fn)(uint64_t cred));
/* Reload the password file and the ACL file (SIGHUP, ringmqctl reload). */
void auth_reload(void);

/* The default rules from the configuration (acl_file defaults and pattern rules), for clients without their
 * own; NULL when none is configured (everything allowed except publishing to $-topics). */
const struct acl *auth_default_acl(void);

#endif

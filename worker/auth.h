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
 *
 * Providers (each takes part only when configured, and must then be named in auth_order):
 *   file  password_file is set. Knows a client whose CONNECT user name is in the file; checks its password.
 *         Rules: the user's acl_file section. Credential id: a hash of the user name (top bit set).
 *   pg    pg_conninfo is set. Looks the client up by pg_match (a key the client lacks skips the provider);
 *         a row found decides: with pg_match = cert_cn (or username when the name is a certificate CN) the
 *         certificate is the proof and the password is not checked; otherwise the row's hash must match (a
 *         row without one: MQTT_E_NOT_AUTHORIZED). Rules: the row's. %u: the name the row was found by
 *         ("" with pg_match = client_id). Credential id: the row's id.
 *   cert  tls_identity = cn and tls_client_auth optional or required. Knows a client with a verified
 *         certificate: accepted, no password. Rules: the acl_file section of the CN. Id: as for file.
 *         With pg_match = cert_cn, "cert" may be left out of auth_order: then only certificates with a row
 *         get in, and one without is MQTT_E_NOT_AUTHORIZED (so is any certificate no provider took).
 * With tls_identity = cn, a verified certificate's CN replaces the CONNECT user name everywhere (and the
 * password file is not consulted for it, as mosquitto's use_identity_as_username). A user name or password
 * no provider knows is MQTT_E_BAD_AUTH (after a hash check's worth of time, so that unknown names cannot be
 * told from known ones by timing). A client without either is anonymous: allowed or MQTT_E_NOT_AUTHORIZED by
 * allow_anonymous (auto: allowed unless a provider is configured); its rules are the acl_file
 * lines before any "user" (mosquitto's rule), its credential id one shared by all anonymous clients. When no
 * provider is configured, user names and passwords are ignored (nobody could check them: an unchecked name
 * must not select a user's rules) and every client is anonymous. User names over 255 bytes are refused.
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

/* Set up the providers from the configuration (W->cfg), load password_file and acl_file, start the hash pool
 * (only when a provider checks passwords) and pg, register with the loop. 0 or -errno after one log line naming
 * the key and the fix (a bad line of either file: "FILE:LINE: ..."). Worker start-up only, after fork. */
int auth_init(void);
/* Authentications still under way end without their callbacks; threads joined, files freed. Before
 * loop_finish. */
void auth_finish(void);
/* Is any check needed at all? (false: every client is accepted with the default rules, synchronously, and
 * auth_default_acl() is NULL). True when a provider is configured, anonymous clients are refused, or an
 * acl_file gives anonymous clients rules of their own. */
bool auth_enabled(void);
/* Start authenticating id (copied). 0: done(ctx, ...) follows later — within the same loop turn when no
 * password check or lookup is needed. Negative enum mqtt_err when it cannot start (then done is never called):
 * MQTT_E_BUSY when the source address is over auth_fail_limit, MQTT_E_NOMEM, MQTT_E_UNAVAILABLE before
 * auth_init. A second auth_start with a ctx still pending cancels the first. */
int auth_start(const auth_identity_t *id, auth_done_fn done, void *ctx);
/* The client went away: done(ctx) will not be called. */
void auth_cancel(void *ctx);
/* A credential changed or was deleted (PostgreSQL NOTIFY, password file reload): fn(cred) is called so the
 * clients that authenticated with it are disconnected. One listener (conn.c). A reload also revokes the users
 * whose acl_file section changed (and the anonymous id when the anonymous rules did): clients keep the rules
 * they connected with, so they reconnect to get the new ones. */
void auth_on_revoked(void (*fn)(uint64_t cred));
/* Does a revocation fn(revoked) concern a client authenticated with credential cred? (Not only equality: a
 * truncated credential table revokes every PostgreSQL credential at once.) */
bool auth_cred_revoked(uint64_t revoked, uint64_t cred);
/* Reload the password file and the ACL file (SIGHUP, ringmqctl reload). A file that does not load is logged
 * ("FILE:LINE: ...") and the previous contents stay. */
void auth_reload(void);

/* The default rules from the configuration (the acl_file's pattern lines), for every client besides its own;
 * NULL when no acl_file is configured (everything allowed except publishing to $-topics). Valid until the next
 * auth_reload: read it at each check, do not keep it (a reload applies new patterns to everyone at once). */
const struct acl *auth_default_acl(void);

#endif

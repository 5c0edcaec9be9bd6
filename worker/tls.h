/*
 * tls.h — TLS on the worker's own loop: OpenSSL with memory BIOs between the connection's socket (ciphertext,
 * received and sent through the ring) and the MQTT code (plaintext). No blocking socket, no OpenSSL I/O.
 *
 * One SSL_CTX per worker, built after fork from the tls_* configuration; a reload builds a new one and swaps it
 * in (connections keep the context they started with, by reference). Session tickets are encrypted with keys
 * the supervisor makes and gives every worker (the current and the previous one), so a session resumes
 * whichever worker accepts the reconnect. Worker thread only.
 */
#ifndef RINGMQ_WORKER_TLS_H
#define RINGMQ_WORKER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* One ticket key: name (16 bytes), AES-256 key (32), HMAC-SHA256 key (32). */
#define TLS_TICKET_KEY_LEN 80

typedef struct tls tls_t;

/* Build the context from W->cfg (certificate, key, CAs, CRL, versions, ciphers, groups, client
 * authentication) and install the ticket key. 0, or -EINVAL after one log line naming the key and the
 * problem (a file that cannot be read, a key that does not match its certificate...). Nothing to do when
 * tls_port is 0. */
int tls_module_init(const uint8_t *ticket_key);
void tls_module_finish(void);
bool tls_enabled(void);
/* Build a new context from the files (certificates renewed, CRL updated) and use it for new connections.
 * 0, or -EINVAL (logged; the current context stays). */
int tls_reload(void);
/* A new ticket key from the supervisor: it encrypts new tickets, the one before it still decrypts. */
void tls_set_ticket_key(const uint8_t *key);

/* A server-side TLS state for one accepted connection; NULL on allocation failure. */
tls_t *tls_create(void);
void tls_destroy(tls_t *t);

enum tls_event {
	TLS_OK = 0,                /* progress (maybe none: more bytes needed) */
	TLS_READY = 1,             /* the handshake completed during this call */
	TLS_CLOSED = 2,            /* the peer sent close_notify */
};

/*
 * Ciphertext from the peer: handshake progress and plaintext, handed to plain(ctx, p, n) as it is decrypted
 * (may be called several times). Returns an enum tls_event, or -EPROTO when the handshake failed or a record
 * did not authenticate (the reason is logged at debug level and given by tls_error()), -ENOMEM.
 */
int tls_input(tls_t *t, const uint8_t *p, size_t n, void (*plain)(void *ctx, const uint8_t *p, size_t n),
	void *ctx);
/* Encrypt n plaintext bytes (after the handshake). 0, -EPROTO, -ENOMEM. */
int tls_write(tls_t *t, const uint8_t *p, size_t n);
/* Send close_notify. */
void tls_shutdown(tls_t *t);
/* Ciphertext waiting to go to the peer (handshake messages, records, alerts). */
size_t tls_pending_out(const tls_t *t);
/* Move up to cap bytes of it to out; returns how many. */
size_t tls_take_out(tls_t *t, uint8_t *out, size_t cap);
bool tls_ready(const tls_t *t);
bool tls_resumed(const tls_t *t);
/* The CN of the verified client certificate ("" without one); valid while t lives. */
const char *tls_peer_cn(const tls_t *t);
/* Why the last call failed, for a log line. */
const char *tls_error(const tls_t *t);

#endif

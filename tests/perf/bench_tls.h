/*
 * bench_tls.h — TLS client connections for ringmq-bench, over memory BIOs.
 *
 * OpenSSL never sees a socket here: the engine (bench_conn.c) receives ciphertext on its io_uring and hands it
 * to btls_feed(); the handshake and SSL_read run over that memory; whatever TLS wants to send (handshake
 * messages, records, alerts, close_notify) accumulates in an outgoing memory BIO that the engine drains with
 * btls_take() into the buffer it submits with its own send. Nothing blocks, and the loop stays one
 * io_uring_submit_and_wait per turn.
 *
 * A btls_ctx_t (one SSL_CTX) is made once, before the engine threads start, and shared by them read-only. A
 * btls_t is one client's TLS state: it outlives its connections, so the session of the last connection can
 * resume the next one (--tls-resume). A btls_t is used by one thread at a time (the engine thread that owns
 * the connection).
 */
#ifndef RINGMQ_BENCH_TLS_H
#define RINGMQ_BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
typedef struct btls_ctx btls_ctx_t;

typedef struct btls_opts {
	const char *cafile;      /* CAs that may sign the server's certificate; NULL: the system's default store */
	const char *certfile;    /* client certificate chain (PEM) for mutual TLS, or NULL */
	const char *keyfile;     /* its private key (PEM); NULL: certfile holds it too */
	const char *server_name; /* what the server certificate must match: an IP address (SAN IP) or a DNS name
	                            (SAN DNS, also sent as SNI); NULL: no name check */
	bool insecure;           /* do not verify the server at all */
	bool resume;             /* keep each client's session and offer it on the next connection */
	int version;             /* 0: TLS 1.2 or 1.3; 12 or 13: only that version */
} btls_opts_t;

typedef struct btls {
	SSL *ssl;                /* NULL between connections */
	SSL_SESSION *sess;       /* last session the server gave this client (resume), owned */
	bool done;               /* handshake complete */
	bool resumed;            /* ... and it resumed sess */
	bool closed;             /* the server sent close_notify */
	bool notified;           /* we queued our close_notify */
	unsigned long err;       /* first OpenSSL error of a failure (ERR_* packed code), 0: none */
	long verify;             /* X509_V_* result when verification failed, else 0 */
} btls_t;

/*
 * Make the shared context: loads the CAs and the client certificate/key, checks that the key matches the
 * certificate. Returns NULL after writing one line to err (errlen bytes) naming the file or the problem.
 * Main thread, before the engine threads start.
 */
btls_ctx_t *btls_ctx_create(const btls_opts_t *o, char *err, size_t errlen);
/* Free the context; every btls_t made from it must have been finished. NULL is a no-op. */
void btls_ctx_destroy(btls_ctx_t *x);

/* A btls_t is caller-owned memory: init zeroes it, finish frees the connection state and the saved session. */
void btls_init(btls_t *c);
void btls_finish(btls_t *c);

/*
 * Start a connection's TLS: a new SSL on a pair of memory BIOs, the saved session offered when the context
 * resumes, and the ClientHello queued (btls_pending() > 0 after it). Returns 0, or -1 (c->err set) when
 * OpenSSL cannot allocate. c must not have a connection in progress (btls_end() first).
 */
int btls_begin(btls_ctx_t *x, btls_t *c);
/* End the connection's TLS state (SSL and BIOs freed); the saved session stays for the next btls_begin(). */
void btls_end(btls_t *c);

/* Ciphertext received from the network: appended to what OpenSSL reads next. 0, or -1 when out of memory. */
int btls_feed(btls_t *c, const void *p, size_t n);
/*
 * Advance the handshake with what was fed: 1 complete (c->resumed says how), 0 needs more input (output may be
 * pending), -1 failed (c->err, c->verify set; the connection is over). Idempotent once complete.
 */
int btls_handshake(btls_t *c);
/*
 * Decrypt application data into buf: > 0 bytes read, 0 nothing more in what was fed, -1 the connection is
 * over: a TLS error (c->err) or the server's close_notify (c->closed). Call until it returns <= 0: one call
 * returns at most one record. Session tickets are taken here, silently. Handshake complete only.
 */
long btls_read(btls_t *c, void *buf, size_t cap);
/* Encrypt all n bytes of plaintext into the outgoing BIO (it grows: never partial). 0 or -1. Handshake complete
 * only. */
int btls_write(btls_t *c, const void *p, size_t n);
/* Queue our close_notify once (nothing may be written after it). */
void btls_close_notify(btls_t *c);
/* Ciphertext waiting to be sent, and take up to cap bytes of it into dst (returns the count). */
size_t btls_pending(const btls_t *c);
size_t btls_take(btls_t *c, void *dst, size_t cap);

/* One line describing a failure (err and verify as left in a btls_t), for reports. */
void btls_describe(unsigned long err, long verify, char *buf, size_t n);

#endif

/*
 * bench_tls.c — TLS client connections over memory BIOs (see bench_tls.h).
 *
 * Two BIO_s_mem per connection: `rbio` holds ciphertext received and not yet read by OpenSSL (its EOF return is
 * -1, so an empty BIO means "want read", never end of stream), `wbio` what OpenSSL wrote and the engine has not
 * yet taken. A memory BIO grows as needed, so SSL_write never returns short and never wants to write.
 *
 * Resumption: the context keeps no session cache of its own (SSL_SESS_CACHE_NO_INTERNAL_STORE); its new-session
 * callback hands every session the server issues — at the end of a TLS 1.2 handshake, or in a TLS 1.3
 * NewSessionTicket read later with the application data — to the btls_t of that connection, which keeps the
 * latest and offers it on its next btls_begin().
 */
#include "bench_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct btls_ctx {
	SSL_CTX *ctx;
	bool resume;
	char sni[256];           /* server name sent as SNI ("" for an IP address or no name) */
};

static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	btls_t *c = SSL_get_app_data(ssl);

	if (c == NULL)
		return 0;
	SSL_SESSION_free(c->sess);
	c->sess = sess;
	return 1; /* we keep the reference */
}

static void
errline(char *err, size_t errlen, const char *what, const char *file)
{
	char e[256];

	ERR_error_string_n(ERR_peek_last_error(), e, sizeof(e));
	snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", e);
	ERR_clear_error();
}

btls_ctx_t *
btls_ctx_create(const btls_opts_t *o, char *err, size_t errlen)
{
	btls_ctx_t *x = calloc(1, sizeof(*x));
	X509_VERIFY_PARAM *vp;
	struct in6_addr ip6;
	struct in_addr ip4;
	bool is_ip;

	if (x == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	x->ctx = SSL_CTX_new(TLS_client_method());
	if (x->ctx == NULL) {
		errline(err, errlen, "SSL_CTX_new", NULL);
		goto err;
	}
	x->resume = o->resume;
	if (!SSL_CTX_set_min_proto_version(x->ctx, o->version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(x->ctx, o->version == 12 ? TLS1_2_VERSION : 0)) {
		errline(err, errlen, "TLS version", NULL);
		goto err;
	}
	/* An idle benchmark client should not hold two 17 KB record buffers: thousands of them are open at once. */
	SSL_CTX_set_mode(x->ctx, SSL_MODE_RELEASE_BUFFERS);
	if (o->resume) {
		SSL_CTX_set_session_cache_mode(x->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(x->ctx, on_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(x->ctx, SSL_SESS_CACHE_OFF);
	}
	if (!o->insecure) {
		if (o->cafile != NULL ? !SSL_CTX_load_verify_locations(x->ctx, o->cafile, NULL)
				      : !SSL_CTX_set_default_verify_paths(x->ctx)) {
			errline(err, errlen, "cannot load CA certificates", o->cafile ? o->cafile : "(system default)");
			goto err;
		}
		SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER, NULL);
	}
	if (o->server_name != NULL && !o->insecure) {
		is_ip = inet_pton(AF_INET, o->server_name, &ip4) == 1 || inet_pton(AF_INET6, o->server_name, &ip6) == 1;
		vp = SSL_CTX_get0_param(x->ctx);
		if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(vp, o->server_name)
			  : !X509_VERIFY_PARAM_set1_host(vp, o->server_name, 0)) {
			errline(err, errlen, "server name", o->server_name);
			goto err;
		}
		if (!is_ip)
			snprintf(x->sni, sizeof(x->sni), "%s", o->server_name);
	}
	if (o->certfile != NULL) {
		const char *key = o->keyfile != NULL ? o->keyfile : o->certfile;

		if (!SSL_CTX_use_certificate_chain_file(x->ctx, o->certfile)) {
			errline(err, errlen, "cannot load client certificate", o->certfile);
			goto err;
		}
		if (!SSL_CTX_use_PrivateKey_file(x->ctx, key, SSL_FILETYPE_PEM)) {
			errline(err, errlen, "cannot load client key", key);
			goto err;
		}
		if (!SSL_CTX_check_private_key(x->ctx)) {
			errline(err, errlen, "client key does not match the certificate", key);
			goto err;
		}
	}
	return x;

err:
	btls_ctx_destroy(x);
	return NULL;
}

void
btls_ctx_destroy(btls_ctx_t *x)
{
	if (x == NULL)
		return;
	SSL_CTX_free(x->ctx);
	free(x);
}

void
btls_init(btls_t *c)
{
	memset(c, 0, sizeof(*c));
}

void
btls_end(btls_t *c)
{
	SSL_free(c->ssl); /* frees both BIOs */
	c->ssl = NULL;
	c->done = c->resumed = c->closed = c->notified = false;
}

void
btls_finish(btls_t *c)
{
	btls_end(c);
	SSL_SESSION_free(c->sess);
	c->sess = NULL;
}

/* Record why the connection failed: the first error of the queue is the cause, later ones are consequences. */
static void
failed(btls_t *c)
{
	c->err = ERR_peek_error();
	if (c->ssl != NULL && SSL_get_verify_result(c->ssl) != X509_V_OK)
		c->verify = SSL_get_verify_result(c->ssl);
	ERR_clear_error();
}

int
btls_begin(btls_ctx_t *x, btls_t *c)
{
	BIO *rbio = NULL, *wbio = NULL;

	ERR_clear_error();
	c->err = 0;
	c->verify = 0;
	c->ssl = SSL_new(x->ctx);
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || rbio == NULL || wbio == NULL)
		goto err;
	BIO_set_mem_eof_return(rbio, -1); /* BIO_s_mem's default, but the design depends on it */
	SSL_set_bio(c->ssl, rbio, wbio); /* the SSL owns them from here */
	rbio = wbio = NULL;
	SSL_set_app_data(c->ssl, c);
	SSL_set_connect_state(c->ssl);
	if (x->sni[0] != '\0' && !SSL_set_tlsext_host_name(c->ssl, x->sni))
		goto err;
	if (x->resume && c->sess != NULL && !SSL_set_session(c->ssl, c->sess))
		goto err;
	if (btls_handshake(c) < 0)
		return -1;
	return 0;

err:
	BIO_free(rbio);
	BIO_free(wbio);
	failed(c);
	btls_end(c);
	return -1;
}

int
btls_feed(btls_t *c, const void *p, size_t n)
{
	if (n > 0 && BIO_write(SSL_get_rbio(c->ssl), p, (int)n) != (int)n) {
		failed(c);
		return -1;
	}
	return 0;
}

int
btls_handshake(btls_t *c)
{
	int r;

	if (c->done)
		return 1;
	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->done = true;
		c->resumed = SSL_session_reused(c->ssl) == 1;
		return 1;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		failed(c);
		return -1;
	}
}

long
btls_read(btls_t *c, void *buf, size_t cap)
{
	int r;

	ERR_clear_error();
	r = SSL_read(c->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (r > 0)
		return r;
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		c->closed = true;
		return -1;
	default:
		failed(c);
		return -1;
	}
}

int
btls_write(btls_t *c, const void *p, size_t n)
{
	size_t done = 0;

	ERR_clear_error();
	if (c->notified)
		return -1;
	/* SSL_write_ex writes everything to a memory BIO in one call; loop anyway rather than trust that. */
	while (done < n) {
		size_t w = 0;

		if (!SSL_write_ex(c->ssl, (const char *)p + done, n - done, &w)) {
			failed(c);
			return -1;
		}
		done += w;
	}
	return 0;
}

void
btls_close_notify(btls_t *c)
{
	if (c->notified || c->ssl == NULL || !c->done)
		return;
	c->notified = true;
	ERR_clear_error();
	SSL_shutdown(c->ssl); /* returns 0: we do not wait for the server's; it only queues ours */
	ERR_clear_error();
}

size_t
btls_pending(const btls_t *c)
{
	return c->ssl != NULL ? BIO_ctrl_pending(SSL_get_wbio(c->ssl)) : 0;
}

size_t
btls_take(btls_t *c, void *dst, size_t cap)
{
	int r;

	if (c->ssl == NULL || cap == 0)
		return 0;
	r = BIO_read(SSL_get_wbio(c->ssl), dst, cap > INT32_MAX ? INT32_MAX : (int)cap);
	return r > 0 ? (size_t)r : 0;
}

void
btls_describe(unsigned long err, long verify, char *buf, size_t n)
{
	if (verify != 0) {
		snprintf(buf, n, "certificate verification: %s", X509_verify_cert_error_string(verify));
	} else if (err != 0) {
		ERR_error_string_n(err, buf, n);
	} else {
		snprintf(buf, n, "connection closed during the handshake");
	}
}

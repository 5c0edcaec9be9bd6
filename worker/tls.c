/* tls.c — TLS over memory BIOs on the worker's loop (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "worker.h"

struct tls {
	SSL *ssl;
	BIO *rbio;                 /* ciphertext from the peer, written by us, read by OpenSSL */
	BIO *wbio;                 /* ciphertext to the peer, written by OpenSSL, read by us */
	bool ready;
	char cn[256];
	char err[160];
};

static struct {
	SSL_CTX *ctx;
	uint8_t keys[2][TLS_TICKET_KEY_LEN]; /* [0] current, [1] previous */
	bool have_prev;
} T;

bool tls_enabled(void)
{
	return T.ctx != NULL;
}

/* The last OpenSSL error as text (the queue is cleared). */
static const char *ossl_error(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	if (!e)
		snprintf(buf, cap, "unknown error");
	else
		ERR_error_string_n(e, buf, cap);
	ERR_clear_error();
	return buf;
}

/*
 * Session tickets: encrypt with the current key, decrypt with whichever key named the ticket. Returns 1 (ok),
 * 2 (ok, but renew: made with the previous key), 0 (unknown key: full handshake), -1 (error).
 */
static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx,
	int enc)
{
	const uint8_t *key = NULL;
	OSSL_PARAM params[3];
	int renew = 1;

	if (enc) {
		key = T.keys[0];
		memcpy(name, key, 16);
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) <= 0)
			return -1;
	} else if (!memcmp(name, T.keys[0], 16)) {
		key = T.keys[0];
		/* TLS 1.3 tickets are for one use: without a fresh one after each resumption, every other
		 * reconnect is a full handshake. TLS 1.2 clients may offer the same ticket again. */
		renew = SSL_version(ssl) >= TLS1_3_VERSION ? 2 : 1;
	} else if (T.have_prev && !memcmp(name, T.keys[1], 16)) {
		key = T.keys[1];
		renew = 2;
	} else {
		return 0;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)(key + 48), 32);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_CTX_set_params(hctx, params))
		return -1;
	if (enc)
		return EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, key + 16, iv) ? 1 : -1;
	return EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, key + 16, iv) ? renew : -1;
}

/* Build a context from the configuration; NULL after one log line. */
static SSL_CTX *ctx_build(void)
{
	const config_t *cfg = W->cfg;
	char e[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int verify = SSL_VERIFY_NONE;

	if (!ctx) {
		log_error(0, "tls: cannot create a context: %s", ossl_error(e, sizeof(e)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, strcmp(cfg->tls_min_version, "1.3") == 0 ? TLS1_3_VERSION :
		TLS1_2_VERSION);
	/* No renegotiation, no compression; release buffers of idle connections (many IoT clients idle). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
		SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (!*cfg->tls_certfile || !*cfg->tls_keyfile) {
		log_error(0, "tls: tls_port is %u but tls_certfile / tls_keyfile are not set: set both (PEM files)",
			cfg->tls_port);
		goto err;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_certfile) != 1) {
		log_error(0, "tls: tls_certfile %s: %s", cfg->tls_certfile, ossl_error(e, sizeof(e)));
		goto err;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_keyfile, SSL_FILETYPE_PEM) != 1) {
		log_error(0, "tls: tls_keyfile %s: %s", cfg->tls_keyfile, ossl_error(e, sizeof(e)));
		goto err;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_error(0, "tls: tls_keyfile %s does not match tls_certfile %s", cfg->tls_keyfile, cfg->tls_certfile);
		goto err;
	}
	if (*cfg->tls_ciphers && SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		log_error(0, "tls: tls_ciphers '%s': no usable cipher", cfg->tls_ciphers);
		goto err;
	}
	if (*cfg->tls_ciphersuites && SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
		log_error(0, "tls: tls_ciphersuites '%s': no usable suite", cfg->tls_ciphersuites);
		goto err;
	}
	if (*cfg->tls_groups && SSL_CTX_set1_groups_list(ctx, cfg->tls_groups) != 1) {
		log_error(0, "tls: tls_groups '%s': %s", cfg->tls_groups, ossl_error(e, sizeof(e)));
		goto err;
	}
	if (strcmp(cfg->tls_client_auth, "none") != 0) {
		X509_STORE *store;

		if (!*cfg->tls_cafile && !*cfg->tls_capath) {
			log_error(0, "tls: tls_client_auth is %s but neither tls_cafile nor tls_capath is set",
				cfg->tls_client_auth);
			goto err;
		}
		if (SSL_CTX_load_verify_locations(ctx, *cfg->tls_cafile ? cfg->tls_cafile : NULL,
		    *cfg->tls_capath ? cfg->tls_capath : NULL) != 1) {
			log_error(0, "tls: tls_cafile/tls_capath: %s", ossl_error(e, sizeof(e)));
			goto err;
		}
		if (*cfg->tls_cafile) {
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_cafile);

			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
		}
		if (*cfg->tls_crlfile) {
			store = SSL_CTX_get_cert_store(ctx);
			if (X509_STORE_load_file(store, cfg->tls_crlfile) != 1) {
				log_error(0, "tls: tls_crlfile %s: %s", cfg->tls_crlfile, ossl_error(e, sizeof(e)));
				goto err;
			}
			X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
		}
		verify = SSL_VERIFY_PEER;
		if (strcmp(cfg->tls_client_auth, "required") == 0)
			verify |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	}
	SSL_CTX_set_verify(ctx, verify, NULL);
	/* Every worker has the same ticket keys: a session resumes on whichever worker accepts it. A session id
	 * context is required for resumption with client certificates. */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ringmq", 6);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1) {
		log_error(0, "tls: cannot install the session ticket callback: %s", ossl_error(e, sizeof(e)));
		goto err;
	}
	return ctx;
err:
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_module_init(const uint8_t *ticket_key)
{
	if (!W->cfg->tls_port)
		return 0;
	memcpy(T.keys[0], ticket_key, TLS_TICKET_KEY_LEN);
	T.ctx = ctx_build();
	if (!T.ctx)
		return -EINVAL;
	log_debug("tls: context ready (%s)", W->cfg->tls_certfile);
	return 0;
}

void tls_module_finish(void)
{
	SSL_CTX_free(T.ctx);
	OPENSSL_cleanse(T.keys, sizeof(T.keys));
	memset(&T, 0, sizeof(T));
}

int tls_reload(void)
{
	SSL_CTX *ctx;

	if (!T.ctx)
		return 0;
	ctx = ctx_build();
	if (!ctx)
		return -EINVAL;
	/* Connections hold their own reference to the old context. */
	SSL_CTX_free(T.ctx);
	T.ctx = ctx;
	log_info("tls: certificates reloaded (%s)", W->cfg->tls_certfile);
	return 0;
}

void tls_set_ticket_key(const uint8_t *key)
{
	if (!memcmp(key, T.keys[0], TLS_TICKET_KEY_LEN))
		return;
	memcpy(T.keys[1], T.keys[0], TLS_TICKET_KEY_LEN);
	T.have_prev = true;
	memcpy(T.keys[0], key, TLS_TICKET_KEY_LEN);
}

tls_t *tls_create(void)
{
	tls_t *t;

	if (!T.ctx)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ssl = SSL_new(T.ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		SSL_free(t->ssl);
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		free(t);
		return NULL;
	}
	/* An empty memory BIO says "retry" rather than "end of file". */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_accept_state(t->ssl);
	return t;
}

void tls_destroy(tls_t *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* frees the BIOs too */
	free(t);
}

static void note_cn(tls_t *t)
{
	X509 *peer = SSL_get0_peer_certificate(t->ssl);

	t->cn[0] = '\0';
	if (peer && SSL_get_verify_result(t->ssl) == X509_V_OK)
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, t->cn, sizeof(t->cn));
}

static int fail(tls_t *t, int code)
{
	char e[128];
	long v = SSL_get_verify_result(t->ssl);

	if (code == SSL_ERROR_SSL && v != X509_V_OK)
		snprintf(t->err, sizeof(t->err), "certificate refused: %s", X509_verify_cert_error_string(v));
	else if (code == SSL_ERROR_SSL)
		snprintf(t->err, sizeof(t->err), "%s", ossl_error(e, sizeof(e)));
	else
		snprintf(t->err, sizeof(t->err), "TLS error %d", code);
	ERR_clear_error();
	return -EPROTO;
}

int tls_input(tls_t *t, const uint8_t *p, size_t n, void (*plain)(void *ctx, const uint8_t *p, size_t n),
	void *ctx)
{
	uint8_t buf[16384];
	int ev = TLS_OK;

	if (n && BIO_write(t->rbio, p, (int)n) != (int)n)
		return -ENOMEM;
	if (!t->ready) {
		int r = SSL_do_handshake(t->ssl), code;

		if (r != 1) {
			code = SSL_get_error(t->ssl, r);
			return code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE ? TLS_OK : fail(t, code);
		}
		t->ready = true;
		note_cn(t);
		ev = TLS_READY;
	}
	for (;;) {
		int r = SSL_read(t->ssl, buf, sizeof(buf)), code;

		if (r > 0) {
			plain(ctx, buf, (size_t)r);
			continue;
		}
		code = SSL_get_error(t->ssl, r);
		if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
			return ev;
		if (code == SSL_ERROR_ZERO_RETURN)
			return TLS_CLOSED;
		return fail(t, code);
	}
}

int tls_write(tls_t *t, const uint8_t *p, size_t n)
{
	while (n) {
		size_t w = 0;
		int r = SSL_write_ex(t->ssl, p, n, &w);

		if (r != 1)
			return fail(t, SSL_get_error(t->ssl, r));
		p += w;
		n -= w;
	}
	return 0;
}

void tls_shutdown(tls_t *t)
{
	if (t->ready)
		(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
}

size_t tls_pending_out(const tls_t *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t tls_take_out(tls_t *t, uint8_t *out, size_t cap)
{
	int r = BIO_read(t->wbio, out, (int)(cap > INT32_MAX ? INT32_MAX : cap));

	return r > 0 ? (size_t)r : 0;
}

bool tls_ready(const tls_t *t)
{
	return t->ready;
}

bool tls_resumed(const tls_t *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

const char *tls_peer_cn(const tls_t *t)
{
	return t->cn;
}

const char *tls_error(const tls_t *t)
{
	return t->err[0] ? t->err : "no error";
}

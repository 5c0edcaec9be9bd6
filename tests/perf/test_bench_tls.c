/*
 * test_bench_tls.c — unit tests for ringmq-bench's TLS plumbing (bench_tls.c): a btls_t client, driven the
 * way the engine drives it (ciphertext in with btls_feed, out with btls_take, never a socket inside OpenSSL's
 * client), against an independent in-process OpenSSL server on the other end of a socketpair (blocking SSL on
 * the fd, in a thread). Certificates come from scripts/gen-certs ($GEN_CERTS), made once in a temporary
 * directory before the tests run.
 *
 * Pinned: a handshake and a 100 KB echo across many records; the same fed one byte at a time (partial records);
 * server verification by CA and by name (IP SAN, DNS SAN, mismatch, unknown CA, --tls-insecure); mutual TLS with
 * and without a client certificate in TLS 1.2 and 1.3; session resumption in TLS 1.2 and 1.3 only when asked
 * for; the server's close_notify; context errors name the file.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_tls.h"

static char certs[256];

static const char *
cert(const char *name)
{
	static char paths[8][512];
	static unsigned next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", certs, name);
	return p;
}

/* --- the server ------------------------------------------------------------------------------------------ */

typedef struct server {
	int fd;
	int version;             /* 0: 1.2 or 1.3; 12 / 13 */
	bool need_cert;          /* require a client certificate signed by the test CA */
	bool close_after_echo;   /* send close_notify after the first echo */
	SSL_CTX *ctx;            /* kept across connections for resumption (tickets are keyed per context) */
	/* results */
	int accepted;            /* 1 ok, -1 the handshake failed */
	bool reused;
	char peer_cn[64];
	size_t echoed;
	pthread_t th;
} server_t;

static SSL_CTX *
server_ctx(const server_t *sv)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(ctx, cert("server.pem")), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, cert("server.key"), SSL_FILETYPE_PEM), 1);
	if (sv->version == 12)
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	if (sv->need_cert) {
		ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, cert("ca.pem"), NULL), 1);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"bench-test", 10);
	return ctx;
}

static void *
server_main(void *arg)
{
	server_t *sv = arg;
	SSL *ssl = SSL_new(sv->ctx);
	char buf[16384];
	int n;

	SSL_set_fd(ssl, sv->fd);
	if (SSL_accept(ssl) != 1) {
		sv->accepted = -1;
		goto out;
	}
	sv->accepted = 1;
	sv->reused = SSL_session_reused(ssl) == 1;
	X509 *peer = SSL_get1_peer_certificate(ssl);

	if (peer != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, sv->peer_cn,
			sizeof(sv->peer_cn));
		X509_free(peer);
	}
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
		if (SSL_write(ssl, buf, n) != n)
			break;
		sv->echoed += (size_t)n;
		if (sv->close_after_echo)
			break;
	}
	SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	ERR_clear_error();
	shutdown(sv->fd, SHUT_RDWR);
	close(sv->fd);
	return NULL;
}

/* Start a server on one end of a new socketpair; returns the client's end (nonblocking). */
static int
server_start(server_t *sv)
{
	int sp[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	sv->fd = sp[1];
	sv->accepted = 0;
	sv->reused = false;
	sv->peer_cn[0] = '\0';
	sv->echoed = 0;
	if (sv->ctx == NULL)
		sv->ctx = server_ctx(sv);
	ck_assert_int_eq(pthread_create(&sv->th, NULL, server_main, sv), 0);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	return sp[0];
}

static void
server_join(server_t *sv)
{
	pthread_join(sv->th, NULL);
}

static void
server_free(server_t *sv)
{
	SSL_CTX_free(sv->ctx);
	sv->ctx = NULL;
}

/* --- the client, driven like the engine drives it ------------------------------------------------------- */

/* Send every pending byte; then wait (up to 5 s) for input and feed it in pieces of `chunk` bytes, calling
 * step() after each piece. Returns step()'s first non-zero result, or -2 on EOF / timeout. */
typedef int (*step_fn)(btls_t *c, void *arg);

static int
pump(btls_t *c, int fd, size_t chunk, step_fn step, void *arg)
{
	uint8_t out[4096], in[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		size_t n;
		ssize_t r;
		int s;

		while ((n = btls_take(c, out, sizeof(out))) > 0) {
			size_t off = 0;

			while (off < n) {
				r = write(fd, out + off, n - off);
				if (r < 0 && errno == EAGAIN) {
					struct pollfd w = { .fd = fd, .events = POLLOUT };

					poll(&w, 1, 5000);
					continue;
				}
				if (r <= 0)
					return -2;
				off += (size_t)r;
			}
		}
		if ((s = step(c, arg)) != 0)
			return s;
		if (btls_pending(c) > 0)
			continue;
		if (poll(&p, 1, 5000) <= 0)
			return -2;
		r = read(fd, in, sizeof(in));
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r <= 0)
			return -2;
		for (ssize_t off = 0; off < r; off += (ssize_t)chunk) {
			size_t k = (size_t)(r - off) < chunk ? (size_t)(r - off) : chunk;

			ck_assert_int_eq(btls_feed(c, in + off, k), 0);
			if ((s = step(c, arg)) != 0)
				return s;
		}
	}
}

static int
step_handshake(btls_t *c, void *arg)
{
	(void)arg;
	return btls_handshake(c); /* 1 done, -1 failed, 0 go on */
}

typedef struct sink {
	uint8_t *buf;
	size_t len;
	size_t want;
} sink_t;

static int
step_read(btls_t *c, void *arg)
{
	sink_t *k = arg;
	long n;

	while ((n = btls_read(c, k->buf + k->len, k->want + 1 - k->len)) > 0)
		k->len += (size_t)n;
	if (n < 0)
		return -1;
	return k->len >= k->want ? 1 : 0;
}

/* Handshake, then echo `len` bytes through the server; returns 1 when they came back identical. */
static int
echo(btls_t *c, int fd, size_t len, size_t chunk)
{
	uint8_t *msg = malloc(len), *back = malloc(len + 1);
	sink_t k = { back, 0, len };
	int r;

	for (size_t i = 0; i < len; i++)
		msg[i] = (uint8_t)(i * 7 + 3);
	ck_assert_int_eq(btls_write(c, msg, len), 0);
	ck_assert_uint_gt(btls_pending(c), len); /* records cost more than their plaintext */
	r = pump(c, fd, chunk, step_read, &k);
	if (r == 1 && (k.len != len || memcmp(msg, back, len) != 0))
		r = 0;
	free(msg);
	free(back);
	return r;
}

static btls_ctx_t *
client_ctx(const char *ca, const char *name, const char *crt, const char *key, bool resume, int version)
{
	btls_opts_t o = { .cafile = ca ? cert(ca) : NULL, .server_name = name, .certfile = crt ? cert(crt) : NULL,
		.keyfile = key ? cert(key) : NULL, .resume = resume, .version = version };
	char err[512];
	btls_ctx_t *x = btls_ctx_create(&o, err, sizeof(err));

	ck_assert_msg(x != NULL, "btls_ctx_create: %s", err);
	return x;
}

/* One connection: handshake (chunked), optional echo, our close_notify; returns the handshake result. */
static int
connect_once(btls_ctx_t *x, btls_t *c, server_t *sv, size_t echo_len, size_t chunk)
{
	int fd = server_start(sv);
	int r;

	ck_assert_int_eq(btls_begin(x, c), 0);
	ck_assert_uint_gt(btls_pending(c), 0); /* the ClientHello */
	r = pump(c, fd, chunk, step_handshake, NULL);
	if (r == 1 && echo_len > 0)
		ck_assert_int_eq(echo(c, fd, echo_len, chunk), 1);
	if (r == 1) {
		uint8_t out[4096];
		size_t n;

		btls_close_notify(c);
		/* The server may be gone already (it closes after a failed or finished echo): best effort. */
		while ((n = btls_take(c, out, sizeof(out))) > 0)
			if (send(fd, out, n, MSG_NOSIGNAL) != (ssize_t)n)
				break;
	}
	close(fd);
	server_join(sv);
	btls_end(c);
	return r;
}

/* --- tests -------------------------------------------------------------------------------------------------- */

START_TEST(test_handshake_echo)
{
	server_t sv = { 0 };
	btls_ctx_t *x = client_ctx("ca.pem", "127.0.0.1", NULL, NULL, false, 0);
	btls_t c;

	btls_init(&c);
	ck_assert_int_eq(connect_once(x, &c, &sv, 100000, 4096), 1);
	ck_assert_int_eq(sv.accepted, 1);
	ck_assert_uint_eq(sv.echoed, 100000);
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}
END_TEST

START_TEST(test_byte_by_byte)
{
	server_t sv = { 0 };
	btls_ctx_t *x = client_ctx("ca.pem", "localhost", NULL, NULL, false, 0);
	btls_t c;

	btls_init(&c);
	ck_assert_int_eq(connect_once(x, &c, &sv, 20000, 1), 1);
	ck_assert_uint_eq(sv.echoed, 20000);
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}
END_TEST

START_TEST(test_verify_name_mismatch)
{
	server_t sv = { 0 };
	btls_ctx_t *x = client_ctx("ca.pem", "example.com", NULL, NULL, false, 0);
	btls_t c;
	char why[256];

	btls_init(&c);
	ck_assert_int_eq(connect_once(x, &c, &sv, 0, 4096), -1);
	ck_assert_int_eq(c.verify, X509_V_ERR_HOSTNAME_MISMATCH);
	btls_describe(c.err, c.verify, why, sizeof(why));
	ck_assert_ptr_nonnull(strstr(why, "hostname mismatch"));
	ck_assert_int_eq(sv.accepted, -1);
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}
END_TEST

START_TEST(test_verify_ip_mismatch)
{
	server_t sv = { 0 };
	btls_ctx_t *x = client_ctx("ca.pem", "127.0.0.2", NULL, NULL, false, 0);
	btls_t c;

	btls_init(&c);
	ck_assert_int_eq(connect_once(x, &c, &sv, 0, 4096), -1);
	ck_assert_int_eq(c.verify, X509_V_ERR_IP_ADDRESS_MISMATCH);
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}
END_TEST

START_TEST(test_verify_unknown_ca)
{
	server_t sv = { 0 };
	btls_ctx_t *x = client_ctx("rogue-ca.pem", "127.0.0.1", NULL, NULL, false, 0);
	btls_opts_t o = { .cafile = cert("rogue-ca.pem"), .insecure = true };
	char err[256];
	btls_t c;

	btls_init(&c);
	ck_assert_int_eq(connect_once(x, &c, &sv, 0, 4096), -1);
	ck_assert_int_eq(c.verify, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	btls_ctx_destroy(x);
	/* --tls-insecure: the same server is accepted */
	x = btls_ctx_create(&o, err, sizeof(err));
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(connect_once(x, &c, &sv, 100, 4096), 1);
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}
END_TEST

static void
mtls(int version)
{
	server_t sv = { .need_cert = true, .version = version };
	btls_ctx_t *x = client_ctx("ca.pem", "127.0.0.1", "client-client1.pem", "client-client1.key", false, 0);
	btls_t c;
	int fd, r;

	btls_init(&c);
	ck_assert_int_eq(connect_once(x, &c, &sv, 1000, 4096), 1);
	ck_assert_str_eq(sv.peer_cn, "client1");
	btls_ctx_destroy(x);

	/* No certificate: TLS 1.2 fails in the handshake; TLS 1.3 completes our side and the server's alert comes
	 * with the first read (the engine then counts a failed connect). */
	x = client_ctx("ca.pem", "127.0.0.1", NULL, NULL, false, 0);
	fd = server_start(&sv);
	ck_assert_int_eq(btls_begin(x, &c), 0);
	r = pump(&c, fd, 4096, step_handshake, NULL);
	if (version == 12) {
		ck_assert_int_eq(r, -1);
	} else {
		uint8_t buf[16];
		sink_t k = { buf, 0, 1 };

		ck_assert_int_eq(r, 1);
		ck_assert_int_eq(btls_write(&c, "x", 1), 0);
		ck_assert_int_eq(pump(&c, fd, 4096, step_read, &k), -1);
		ck_assert(!c.closed);
	}
	ck_assert_uint_ne(c.err, 0);
	close(fd);
	server_join(&sv);
	ck_assert_int_eq(sv.accepted, -1);
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}

START_TEST(test_mtls_12)
{
	mtls(12);
}
END_TEST

START_TEST(test_mtls_13)
{
	mtls(13);
}
END_TEST

static void
resume(int version, bool with_cert)
{
	server_t sv = { .version = version, .need_cert = with_cert };
	const char *crt = with_cert ? "client-client2.pem" : NULL, *key = with_cert ? "client-client2.key" : NULL;
	btls_ctx_t *x = client_ctx("ca.pem", "127.0.0.1", crt, key, true, 0);
	btls_t c;

	btls_init(&c);
	/* The echo makes the client read after the handshake: TLS 1.3 tickets arrive there. */
	ck_assert_int_eq(connect_once(x, &c, &sv, 10, 4096), 1);
	ck_assert(!c.resumed && !sv.reused);
	ck_assert_ptr_nonnull(c.sess);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(connect_once(x, &c, &sv, 10, 4096), 1);
		ck_assert_msg(sv.reused, "connection %d not resumed (TLS %d)", i + 2, version);
		if (with_cert)
			ck_assert_str_eq(sv.peer_cn, "client2"); /* the identity survives resumption */
	}
	btls_finish(&c);
	btls_ctx_destroy(x);

	/* Without --tls-resume nothing is kept: every handshake is a full one. */
	x = client_ctx("ca.pem", "127.0.0.1", crt, key, false, 0);
	btls_init(&c);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(connect_once(x, &c, &sv, 10, 4096), 1);
		ck_assert(!sv.reused);
		ck_assert_ptr_null(c.sess);
	}
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}

START_TEST(test_resume_13)
{
	resume(13, false);
}
END_TEST

START_TEST(test_resume_12)
{
	resume(12, false);
}
END_TEST

START_TEST(test_resume_mtls)
{
	resume(13, true);
	resume(12, true);
}
END_TEST

START_TEST(test_version_pin)
{
	server_t sv = { 0 };
	btls_ctx_t *x = client_ctx("ca.pem", "127.0.0.1", NULL, NULL, false, 12);
	btls_t c;
	int fd;

	btls_init(&c);
	fd = server_start(&sv);
	ck_assert_int_eq(btls_begin(x, &c), 0);
	ck_assert_int_eq(pump(&c, fd, 4096, step_handshake, NULL), 1);
	ck_assert_int_eq(SSL_version(c.ssl), TLS1_2_VERSION);
	close(fd);
	server_join(&sv);
	btls_finish(&c);
	btls_ctx_destroy(x);
	/* A client that wants 1.3 only and a server that stops at 1.2 do not agree. */
	x = client_ctx("ca.pem", "127.0.0.1", NULL, NULL, false, 13);
	server_free(&sv);
	sv.version = 12;
	ck_assert_int_eq(connect_once(x, &c, &sv, 0, 4096), -1);
	ck_assert_uint_ne(c.err, 0);
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}
END_TEST

START_TEST(test_server_close_notify)
{
	server_t sv = { .close_after_echo = true };
	btls_ctx_t *x = client_ctx("ca.pem", "127.0.0.1", NULL, NULL, false, 0);
	uint8_t buf[64];
	sink_t k = { buf, 0, 32 }; /* wants more than the echo: only the close_notify ends the wait */
	btls_t c;
	int fd;

	btls_init(&c);
	fd = server_start(&sv);
	ck_assert_int_eq(btls_begin(x, &c), 0);
	ck_assert_int_eq(pump(&c, fd, 4096, step_handshake, NULL), 1);
	ck_assert_int_eq(btls_write(&c, "hello", 5), 0);
	ck_assert_int_eq(pump(&c, fd, 4096, step_read, &k), -1);
	ck_assert(c.closed);
	ck_assert_uint_eq(k.len, 5);
	ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
	close(fd);
	server_join(&sv);
	btls_finish(&c);
	btls_ctx_destroy(x);
	server_free(&sv);
}
END_TEST

START_TEST(test_ctx_errors)
{
	btls_opts_t o = { .cafile = "/nonexistent/ca.pem" };
	char err[512];

	ck_assert_ptr_null(btls_ctx_create(&o, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/ca.pem"));
	o.cafile = cert("ca.pem");
	o.certfile = cert("client-client1.pem");
	o.keyfile = cert("client-client2.key");
	ck_assert_ptr_null(btls_ctx_create(&o, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "client-client2.key")); /* OpenSSL already refuses it at load */
	o.keyfile = "/nonexistent/key.pem";
	ck_assert_ptr_null(btls_ctx_create(&o, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/key.pem"));
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("bench-tls");
	TCase *tc = tcase_create("memory-bio");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_handshake_echo);
	tcase_add_test(tc, test_byte_by_byte);
	tcase_add_test(tc, test_verify_name_mismatch);
	tcase_add_test(tc, test_verify_ip_mismatch);
	tcase_add_test(tc, test_verify_unknown_ca);
	tcase_add_test(tc, test_mtls_12);
	tcase_add_test(tc, test_mtls_13);
	tcase_add_test(tc, test_resume_13);
	tcase_add_test(tc, test_resume_12);
	tcase_add_test(tc, test_resume_mtls);
	tcase_add_test(tc, test_version_pin);
	tcase_add_test(tc, test_server_close_notify);
	tcase_add_test(tc, test_ctx_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	const char *gen = getenv("GEN_CERTS");
	char cmd[1024];
	SRunner *sr;
	int failed;

	if (gen == NULL) {
		fprintf(stderr, "test-bench-tls: GEN_CERTS (scripts/gen-certs) is not set: run through meson test\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN); /* the server thread may write to a client that has gone */
	snprintf(certs, sizeof(certs), "/tmp/bench-tls-test.XXXXXX");
	if (mkdtemp(certs) == NULL) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	snprintf(cmd, sizeof(cmd), "'%s' --quiet '%s'", gen, certs);
	if (system(cmd) != 0) {
		fprintf(stderr, "test-bench-tls: %s failed\n", cmd);
		return EXIT_FAILURE;
	}
	sr = srunner_create(tls_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certs);
	if (system(cmd) != 0)
		fprintf(stderr, "test-bench-tls: could not remove %s\n", certs);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

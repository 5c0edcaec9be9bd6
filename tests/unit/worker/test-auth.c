/*
 * test-auth.c — authentication at CONNECT on fake I/O, the hash pool's threads real: the password file
 * (mosquitto_passwd's own hashes, tests/unit/common/pwfile-mosquitto.txt), PostgreSQL credentials from a fake
 * table (tests/fake/pg_fake.c: found, not found, store down -> "unavailable"), certificates, anonymous clients
 * and their acl_file rules; the pool full -> "server busy"; a client gone mid-check never called back; the
 * per-address failure limit and its bounded table; reloads revoking changed credentials; never the password
 * in a log line.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "auth.h"
#include "fake_io.h"
#include "hashpool.h"
#include "mqtt.h"
#include "pg_fake.h"
#include "pwfile.h"

static config_t cfg;
static char fixture[200];
static char dir[64];

typedef struct got {
	int calls;
	auth_result_t res;
	acl_t *acl;
} got_t;

static void done_cb(void *ctx, auth_result_t *res)
{
	got_t *g = ctx;

	g->calls++;
	g->res = *res;
	g->acl = res->acl;
	res->acl = NULL;
}

static void got_free(got_t *g)
{
	acl_unref(g->acl);
	memset(g, 0, sizeof(*g));
}

static uint64_t revoked[64];
static int n_revoked;

static void on_revoked(uint64_t cred)
{
	revoked[n_revoked++] = cred;
}

static bool was_revoked(uint64_t cred)
{
	for (int i = 0; i < n_revoked; i++) {
		if (revoked[i] == cred)
			return true;
	}
	return false;
}

static void setup(void)
{
	const char *src = getenv("RINGMQ_SRCDIR");

	snprintf(fixture, sizeof(fixture), "%s/tests/unit/common/pwfile-mosquitto.txt", src ? src : ".");
	snprintf(dir, sizeof(dir), "/tmp/test-auth-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	config_defaults(&cfg);
	pg_fake_reset();
	n_revoked = 0;
}

static void teardown(void)
{
	char cmd[128];

	auth_finish();
	fake_finish();
	pg_fake_reset();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void up(void)
{
	fake_init(&cfg, 0, 1);
	ck_assert_int_eq(auth_init(), 0);
	auth_on_revoked(on_revoked);
}

static char *write_file(const char *name, const char *text)
{
	static char path[4][128];
	static int k;
	char *p = path[k++ % 4];
	FILE *f;

	snprintf(p, 128, "%s/%s", dir, name);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* A password file line for user with a fast hash (101 iterations, as mosquitto_passwd). */
static const char *line(const char *user, const char *pw)
{
	static char buf[8][PWFILE_HASH_MAX + 64];
	static int k;
	char *b = buf[k++ % 8];
	int n = pwfile_hash(user, pw, strlen(pw), 101, b, sizeof(buf[0]) - 1);

	ck_assert_int_gt(n, 0);
	strcat(b, "\n");
	return b;
}

static int start(got_t *g, const char *cid, const char *user, const char *pw, const char *cn, const char *addr)
{
	auth_identity_t id = {
		.client_id = (const uint8_t *)cid, .client_id_len = strlen(cid),
		.username = (const uint8_t *)user, .username_len = user ? strlen(user) : 0,
		.password = (const uint8_t *)pw, .password_len = pw ? strlen(pw) : 0,
		.cert_cn = cn, .addr = addr ? addr : "192.0.2.1:40000",
	};

	return auth_start(&id, done_cb, g);
}

/* Run the loop (lookups answered, hash completions delivered) until g is called back, for at most 5 s. */
static void settle(got_t *g)
{
	for (int i = 0; i < 500 && !g->calls; i++) {
		pg_fake_answer();
		fake_turn();
		if (!g->calls)
			fake_io_wait(10);
	}
	ck_assert_int_eq(g->calls, 1);
}

/* Start and settle; returns the error. */
static int auth(got_t *g, const char *cid, const char *user, const char *pw, const char *cn)
{
	got_free(g);
	ck_assert_int_eq(start(g, cid, user, pw, cn, NULL), 0);
	ck_assert_int_eq(g->calls, 0); /* never from inside auth_start */
	settle(g);
	return g->res.err;
}

START_TEST(test_file_provider_ok_wrong_unknown)
{
	got_t g = { 0 };

	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", fixture);
	up();
	ck_assert(auth_enabled());
	/* mosquitto_passwd's $7$, $6$ and a bcrypt line */
	ck_assert_int_eq(auth(&g, "c1", "alice", "secret", NULL), 0);
	ck_assert_str_eq(g.res.username, "alice");
	ck_assert(g.res.cred >> 63);
	ck_assert_ptr_null(g.acl);
	uint64_t alice = g.res.cred;
	ck_assert_int_eq(auth(&g, "c1", "carol", "hunter2", NULL), 0);
	ck_assert_int_eq(auth(&g, "c1", "gina", "correct horse", NULL), 0);
	ck_assert_uint_ne(g.res.cred, alice);
	ck_assert_int_eq(auth(&g, "c1", "alice", "secret", NULL), 0);
	ck_assert_uint_eq(g.res.cred, alice); /* stable */
	/* refusals */
	ck_assert_int_eq(auth(&g, "c1", "alice", "Secret", NULL), MQTT_E_BAD_AUTH);
	ck_assert_str_eq(g.res.username, "");
	ck_assert_uint_eq(g.res.cred, 0);
	ck_assert_int_eq(auth(&g, "c1", "alice", NULL, NULL), MQTT_E_BAD_AUTH);
	ck_assert_int_eq(auth(&g, "c1", "zed", "secret", NULL), MQTT_E_BAD_AUTH);
	ck_assert_int_eq(auth(&g, "c1", "zed", NULL, NULL), MQTT_E_BAD_AUTH);
	ck_assert_int_eq(auth(&g, "c1", NULL, "secret", NULL), MQTT_E_BAD_AUTH);
	/* allow_anonymous auto with a password file: refused */
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, NULL), MQTT_E_NOT_AUTHORIZED);
	ck_assert_uint_eq(W->st.auth_ok, 4);
	ck_assert_uint_eq(W->st.auth_failed, 6);
	got_free(&g);
}
END_TEST

START_TEST(test_unknown_user_takes_a_hash_check)
{
	got_t g = { 0 };

	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", fixture);
	up();
	/* A known user with a wrong password and an unknown one both wait for the pool: neither answers in the
	 * turn it started in. */
	ck_assert_int_eq(start(&g, "c1", "nobody", "guess", NULL, NULL), 0);
	fake_turn();
	ck_assert_int_eq(g.calls, 0);
	settle(&g);
	ck_assert_int_eq(g.res.err, MQTT_E_BAD_AUTH);
	got_free(&g);
	/* without a password there is nothing to check: at once */
	ck_assert_int_eq(start(&g, "c1", "nobody", NULL, NULL, NULL), 0);
	fake_turn();
	ck_assert_int_eq(g.calls, 1);
	got_free(&g);
}
END_TEST

START_TEST(test_anonymous_rules_from_acl_file)
{
	got_t g = { 0 };

	snprintf(cfg.acl_file, sizeof(cfg.acl_file), "%s",
		write_file("acl", "topic read public/#\nuser alice\ntopic alice/#\npattern write dev/%c\n"));
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", write_file("pw", line("alice", "pw")));
	snprintf(cfg.allow_anonymous, sizeof(cfg.allow_anonymous), "true");
	up();
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, NULL), 0);
	ck_assert_str_eq(g.res.username, "");
	ck_assert_uint_ne(g.res.cred, 0);
	ck_assert(acl_can_subscribe(g.acl, auth_default_acl(), "c1", 2, "", 0, "public/x", 8));
	ck_assert(acl_can_publish(g.acl, auth_default_acl(), "c1", 2, "", 0, "dev/c1", 6));
	ck_assert(!acl_can_publish(g.acl, auth_default_acl(), "c1", 2, "", 0, "alice/x", 7));
	/* alice: her section and the patterns, not the anonymous lines */
	ck_assert_int_eq(auth(&g, "c2", "alice", "pw", NULL), 0);
	ck_assert(acl_can_publish(g.acl, auth_default_acl(), "c2", 2, "alice", 5, "alice/x", 7));
	ck_assert(acl_can_publish(g.acl, auth_default_acl(), "c2", 2, "alice", 5, "dev/c2", 6));
	ck_assert(!acl_can_subscribe(g.acl, auth_default_acl(), "c2", 2, "alice", 5, "public/x", 8));
	got_free(&g);
}
END_TEST

START_TEST(test_without_providers_credentials_pick_no_rules)
{
	got_t g = { 0 };

	up();
	ck_assert(!auth_enabled());
	ck_assert_ptr_null(auth_default_acl());
	auth_finish();
	fake_finish();
	snprintf(cfg.acl_file, sizeof(cfg.acl_file), "%s",
		write_file("acl", "topic read public/#\nuser alice\ntopic alice/#\n"));
	up();
	ck_assert(auth_enabled());
	/* anyone may say "alice": with nobody to check it, the client is anonymous */
	ck_assert_int_eq(auth(&g, "c1", "alice", "whatever", NULL), 0);
	ck_assert_str_eq(g.res.username, "");
	ck_assert(!acl_can_publish(g.acl, auth_default_acl(), "c1", 2, "", 0, "alice/x", 7));
	ck_assert(acl_can_subscribe(g.acl, auth_default_acl(), "c1", 2, "", 0, "public/x", 8));
	got_free(&g);
	auth_finish();
	fake_finish();
	/* allow_anonymous = false with no provider: nobody gets in */
	cfg.acl_file[0] = '\0';
	snprintf(cfg.allow_anonymous, sizeof(cfg.allow_anonymous), "false");
	up();
	ck_assert(auth_enabled());
	ck_assert_int_eq(auth(&g, "c1", "alice", "whatever", NULL), MQTT_E_NOT_AUTHORIZED);
	got_free(&g);
}
END_TEST

START_TEST(test_pg_found_not_found_unavailable)
{
	got_t g = { 0 };
	acl_t *rules = acl_create();
	char h[PWFILE_HASH_MAX + 64];

	ck_assert_int_eq(acl_add(rules, ACL_PUB, "bob/#", 5), 0);
	ck_assert_int_gt(pwfile_hash("bob", "pw", 2, 101, h, sizeof(h)), 0);
	pg_fake_add(7, NULL, "bob", NULL, h + 4, rules);
	pg_fake_add(8, NULL, "dev", NULL, NULL, rules); /* certificate only */
	acl_unref(rules);
	snprintf(cfg.pg_conninfo, sizeof(cfg.pg_conninfo), "host=db");
	up();
	ck_assert_str_eq(pg_fake_conninfo(), "host=db");
	/* the lookup is asynchronous; then the hash runs in the pool */
	ck_assert_int_eq(start(&g, "c1", "bob", "pw", NULL, NULL), 0);
	ck_assert_uint_eq(pg_fake_pending(), 1);
	settle(&g);
	ck_assert_int_eq(g.res.err, 0);
	ck_assert_uint_eq(g.res.cred, 7);
	ck_assert_str_eq(g.res.username, "bob");
	ck_assert(acl_can_publish(g.acl, auth_default_acl(), "c1", 2, "bob", 3, "bob/x", 5));
	ck_assert(!acl_can_publish(g.acl, auth_default_acl(), "c1", 2, "bob", 3, "eve/x", 5));
	/* the same password again: remembered (authcache.h), answered without the pool in the next turn */
	got_free(&g);
	ck_assert_int_eq(start(&g, "c2", "bob", "pw", NULL, NULL), 0);
	pg_fake_answer();
	fake_turn();
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.res.err, 0);
	ck_assert_uint_eq(W->st.auth_cache_hits, 1);
	/* a wrong one still pays the full check */
	ck_assert_int_eq(auth(&g, "c1", "bob", "pW", NULL), MQTT_E_BAD_AUTH);
	ck_assert_uint_eq(W->st.auth_cache_hits, 1);
	ck_assert_int_eq(auth(&g, "c1", "eve", "pw", NULL), MQTT_E_BAD_AUTH);
	/* an unknown user with a password waits for a bcrypt check as a known one would (a decoy hash): not answered
	 * in the turn PostgreSQL's "no such row" arrives */
	got_free(&g);
	ck_assert_int_eq(start(&g, "c1", "eve", "pw", NULL, NULL), 0);
	pg_fake_answer();
	fake_turn();
	ck_assert_int_eq(g.calls, 0);
	settle(&g);
	ck_assert_int_eq(g.res.err, MQTT_E_BAD_AUTH);
	ck_assert_int_eq(auth(&g, "c1", "dev", "pw", NULL), MQTT_E_NOT_AUTHORIZED);
	pg_fake_down(true);
	ck_assert_int_eq(auth(&g, "c1", "bob", "pw", NULL), MQTT_E_UNAVAILABLE);
	ck_assert_uint_eq(W->st.auth_unavailable, 1);
	pg_fake_down(false);
	ck_assert_int_eq(auth(&g, "c1", "bob", "pw", NULL), 0);
	/* a NOTIFY reaches the revocation listener, and the remembered check goes with it */
	uint64_t hits = W->st.auth_cache_hits;
	pg_fake_change(7);
	ck_assert(was_revoked(7));
	pg_fake_add(7, NULL, "bob", NULL, h + 4, NULL); /* the row back, the same hash: checked in full again */
	ck_assert_int_eq(auth(&g, "c1", "bob", "pw", NULL), 0);
	ck_assert_uint_eq(W->st.auth_cache_hits, hits);
	got_free(&g);
}
END_TEST

START_TEST(test_order_file_then_pg)
{
	got_t g = { 0 };
	char h[PWFILE_HASH_MAX + 64];

	ck_assert_int_gt(pwfile_hash("bob", "pg-pw", 5, 101, h, sizeof(h)), 0);
	pg_fake_add(9, NULL, "bob", NULL, h + 4, NULL);
	pg_fake_add(10, NULL, "alice", NULL, h + 4, NULL);
	snprintf(cfg.pg_conninfo, sizeof(cfg.pg_conninfo), "host=db");
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", write_file("pw", line("alice", "file-pw")));
	snprintf(cfg.auth_order, sizeof(cfg.auth_order), "file, pg");
	up();
	/* alice is in the file: the file decides, pg is not asked */
	ck_assert_int_eq(auth(&g, "c1", "alice", "pg-pw", NULL), MQTT_E_BAD_AUTH);
	ck_assert_int_eq(auth(&g, "c1", "alice", "file-pw", NULL), 0);
	ck_assert_uint_ne(g.res.cred, 10);
	/* bob is not: pg decides */
	ck_assert_int_eq(auth(&g, "c1", "bob", "pg-pw", NULL), 0);
	ck_assert_uint_eq(g.res.cred, 9);
	got_free(&g);
}
END_TEST

START_TEST(test_bad_configuration_refused_at_start)
{
	static const char *orders[] = { "file,ldap", "file,,pg", "pg,pg" };

	for (size_t i = 0; i < 3; i++) {
		snprintf(cfg.auth_order, sizeof(cfg.auth_order), "%s", orders[i]);
		fake_init(&cfg, 0, 1);
		ck_assert_int_eq(auth_init(), -EINVAL);
		fake_finish();
	}
	/* password_file set, "file" not in the order */
	snprintf(cfg.auth_order, sizeof(cfg.auth_order), "pg");
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", fixture);
	fake_init(&cfg, 0, 1);
	ck_assert_int_eq(auth_init(), -EINVAL);
	fake_finish();
	/* a password file that does not load */
	snprintf(cfg.auth_order, sizeof(cfg.auth_order), "file");
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", write_file("pw", "alice:plain\n"));
	fake_init(&cfg, 0, 1);
	ck_assert_int_eq(auth_init(), -EINVAL);
	fake_finish();
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s/none", dir);
	fake_init(&cfg, 0, 1);
	ck_assert_int_eq(auth_init(), -ENOENT);
	/* teardown finishes this one */
}
END_TEST

START_TEST(test_certificates_alone_refuse_anonymous)
{
	got_t g = { 0 };

	/* tls_identity = cn with client certificates is a provider: with allow_anonymous auto, a client with neither
	 * a certificate nor a password is refused, one with a verified certificate gets in */
	snprintf(cfg.tls_client_auth, sizeof(cfg.tls_client_auth), "optional");
	snprintf(cfg.tls_identity, sizeof(cfg.tls_identity), "cn");
	up();
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, NULL), MQTT_E_NOT_AUTHORIZED);
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, "dev7"), 0);
	ck_assert_str_eq(g.res.username, "dev7");
	got_free(&g);
}
END_TEST

START_TEST(test_certificate_identity)
{
	got_t g = { 0 };
	char h[PWFILE_HASH_MAX + 64];

	snprintf(cfg.tls_client_auth, sizeof(cfg.tls_client_auth), "optional");
	snprintf(cfg.tls_identity, sizeof(cfg.tls_identity), "cn");
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", write_file("pw", line("dev1", "pw")));
	snprintf(cfg.acl_file, sizeof(cfg.acl_file), "%s", write_file("acl", "user dev1\ntopic dev1/#\n"));
	up();
	/* the CN is the user name; no password needed, the CONNECT's user name is not used */
	ck_assert_int_eq(auth(&g, "c1", "root", NULL, "dev1"), 0);
	ck_assert_str_eq(g.res.username, "dev1");
	ck_assert(acl_can_publish(g.acl, auth_default_acl(), "c1", 2, "dev1", 4, "dev1/x", 6));
	/* without a certificate the file decides; with nothing, the client is anonymous: refused, as a provider is
	 * configured (certificates alone would do: see test_certificates_alone_refuse_anonymous) */
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, NULL), MQTT_E_NOT_AUTHORIZED);
	ck_assert_int_eq(auth(&g, "c1", "dev1", "pw", NULL), 0);
	uint64_t by_pw = g.res.cred;
	ck_assert_int_eq(auth(&g, "c1", "dev1", "bad", NULL), MQTT_E_BAD_AUTH);
	ck_assert_int_eq(auth(&g, "c1", "root", NULL, "dev1"), 0);
	ck_assert_uint_eq(g.res.cred, by_pw); /* one name, one credential id */
	got_free(&g);
	auth_finish();
	fake_finish();
	/* pg_match = cert_cn: the certificate finds the row, whose rules apply; no row: refused */
	cfg.password_file[0] = '\0';
	snprintf(cfg.tls_identity, sizeof(cfg.tls_identity), "none");
	snprintf(cfg.pg_conninfo, sizeof(cfg.pg_conninfo), "host=db");
	snprintf(cfg.pg_match, sizeof(cfg.pg_match), "cert_cn");
	ck_assert_int_gt(pwfile_hash("x", "pw", 2, 101, h, sizeof(h)), 0);
	pg_fake_add(21, NULL, NULL, "sensor-9", h + 2, NULL);
	up();
	ck_assert_int_eq(auth(&g, "c1", "someone", NULL, "sensor-9"), 0);
	ck_assert_uint_eq(g.res.cred, 21);
	ck_assert_str_eq(g.res.username, ""); /* tls_identity none: the CN is not %u, the CONNECT name unchecked */
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, "sensor-0"), MQTT_E_NOT_AUTHORIZED);
	ck_assert_int_eq(auth(&g, "c1", "someone", "pw", NULL), MQTT_E_BAD_AUTH);
	got_free(&g);
	auth_finish();
	fake_finish();
	/* certificates through pg only ("cert" not in the order): a certificate without a row stays out even
	 * where anonymous clients get in */
	snprintf(cfg.tls_identity, sizeof(cfg.tls_identity), "cn");
	snprintf(cfg.auth_order, sizeof(cfg.auth_order), "pg");
	snprintf(cfg.allow_anonymous, sizeof(cfg.allow_anonymous), "true");
	up();
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, "sensor-0"), MQTT_E_NOT_AUTHORIZED);
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, NULL), 0);
	ck_assert_int_eq(auth(&g, "c1", NULL, NULL, "sensor-9"), 0);
	ck_assert_str_eq(g.res.username, "sensor-9"); /* tls_identity cn: the CN is %u */
	ck_assert_uint_eq(g.res.cred, 21);
	got_free(&g);
}
END_TEST

START_TEST(test_pool_full_is_server_busy)
{
	got_t a = { 0 }, b = { 0 }, c = { 0 };
	char text[3 * (PWFILE_HASH_MAX + 64)] = "";
	char h[PWFILE_HASH_MAX + 64];

	/* slow hashes (a million iterations, ~0.4 s) keep the one thread busy */
	for (int i = 0; i < 3; i++) {
		const char *u = i == 0 ? "u0" : i == 1 ? "u1" : "u2";

		ck_assert_int_gt(pwfile_hash(u, "pw", 2, 1000000, h, sizeof(h)), 0);
		strcat(text, h);
		strcat(text, "\n");
	}
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", write_file("pw", text));
	cfg.auth_threads = 1;
	cfg.auth_queue = 1;
	up();
	ck_assert_int_eq(start(&a, "c0", "u0", "pw", NULL, NULL), 0);
	for (int i = 0; i < 1000 && hashpool_waiting() != 0; i++)
		usleep(1000);
	ck_assert_int_eq(start(&b, "c1", "u1", "pw", NULL, NULL), 0); /* waits: the queue holds one */
	ck_assert_int_eq(start(&c, "c2", "u2", "pw", NULL, NULL), 0); /* no room */
	fake_turn();
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.res.err, MQTT_E_BUSY);
	ck_assert_uint_eq(W->st.auth_busy, 1);
	settle(&a);
	settle(&b);
	ck_assert_int_eq(a.res.err, 0);
	ck_assert_int_eq(b.res.err, 0);
	got_free(&a);
	got_free(&b);
	got_free(&c);
}
END_TEST

START_TEST(test_cancelled_client_never_called_back)
{
	got_t a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	char h[PWFILE_HASH_MAX + 64];

	ck_assert_int_gt(pwfile_hash("pgbob", "pw", 2, 101, h, sizeof(h)), 0);
	pg_fake_add(7, NULL, "pgbob", NULL, h + 6, NULL);
	snprintf(cfg.pg_conninfo, sizeof(cfg.pg_conninfo), "host=db");
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", fixture);
	snprintf(cfg.allow_anonymous, sizeof(cfg.allow_anonymous), "true");
	up();
	/* in the pool */
	ck_assert_int_eq(start(&a, "c1", "alice", "secret", NULL, NULL), 0);
	auth_cancel(&a);
	/* waiting for PostgreSQL */
	ck_assert_int_eq(start(&b, "c2", "pgbob", "pw", NULL, NULL), 0);
	ck_assert_uint_eq(pg_fake_pending(), 1);
	auth_cancel(&b);
	ck_assert_uint_eq(pg_fake_pending(), 0);
	/* answered already, not yet delivered */
	ck_assert_int_eq(start(&c, "c3", NULL, NULL, NULL, NULL), 0);
	auth_cancel(&c);
	/* a live one to wait for */
	ck_assert_int_eq(start(&d, "c4", "alice", "secret", NULL, NULL), 0);
	settle(&d);
	for (int i = 0; i < 20; i++)
		fake_io_wait(10);
	ck_assert_int_eq(a.calls + b.calls + c.calls, 0);
	auth_cancel(&d); /* after the callback: nothing */
	/* gone while the check runs, at worker exit: auth_finish drops it */
	ck_assert_int_eq(start(&a, "c1", "alice", "secret", NULL, NULL), 0);
	got_free(&d);
}
END_TEST

START_TEST(test_failure_limit_per_address)
{
	got_t g = { 0 };

	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", fixture);
	cfg.auth_fail_limit = 3;
	up();
	for (int i = 0; i < 3; i++) {
		got_free(&g);
		ck_assert_int_eq(start(&g, "c1", "alice", NULL, NULL, "198.51.100.7:1000"), 0);
		settle(&g);
		ck_assert_int_eq(g.res.err, MQTT_E_BAD_AUTH);
	}
	/* the fourth from that address (any port) is refused before anything is checked, even a good one */
	got_free(&g);
	ck_assert_int_eq(start(&g, "c1", "alice", "secret", NULL, "198.51.100.7:2000"), MQTT_E_BUSY);
	ck_assert_uint_eq(W->st.auth_rate_limited, 1);
	/* another address is not */
	ck_assert_int_eq(auth(&g, "c1", "alice", "secret", NULL), 0);
	/* a minute later it may try again */
	fake_advance(60001);
	got_free(&g);
	ck_assert_int_eq(start(&g, "c1", "alice", "secret", NULL, "198.51.100.7:3000"), 0);
	settle(&g);
	ck_assert_int_eq(g.res.err, 0);
	/* IPv6, bracketed */
	for (int i = 0; i < 3; i++) {
		got_free(&g);
		ck_assert_int_eq(start(&g, "c1", "x", NULL, NULL, "[2001:db8::1]:1"), 0);
		settle(&g);
	}
	got_free(&g);
	ck_assert_int_eq(start(&g, "c1", "x", NULL, NULL, "[2001:db8::1]:9"), MQTT_E_BUSY);
	ck_assert_int_eq(start(&g, "c1", "x", NULL, NULL, "[2001:db8::2]:9"), 0);
	settle(&g);
	got_free(&g);
}
END_TEST

START_TEST(test_failure_table_bounded_oldest_forgotten)
{
	got_t g = { 0 };
	char addr[64];

	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", fixture);
	cfg.auth_fail_limit = 3;
	up();
	for (int i = 0; i < 2; i++) {
		got_free(&g);
		ck_assert_int_eq(start(&g, "c1", "alice", NULL, NULL, "203.0.113.1:1"), 0);
		settle(&g);
	}
	/* 4096 other addresses fail once each: the first one is pushed out of the table */
	for (int i = 0; i < 4096; i++) {
		got_free(&g);
		snprintf(addr, sizeof(addr), "10.%d.%d.1:5", i / 256, i % 256);
		ck_assert_int_eq(start(&g, "c1", "alice", NULL, NULL, addr), 0);
		fake_turn();
	}
	got_free(&g);
	ck_assert_int_eq(start(&g, "c1", "alice", NULL, NULL, "203.0.113.1:1"), 0);
	settle(&g);
	got_free(&g);
	/* counted from zero again: not refused after its third failure overall */
	ck_assert_int_eq(start(&g, "c1", "alice", NULL, NULL, "203.0.113.1:1"), 0);
	settle(&g);
	got_free(&g);
}
END_TEST

START_TEST(test_reload_revokes_changed_and_deleted)
{
	got_t g = { 0 };
	uint64_t u1, u2, u3, anon;
	char text[4096], keep[PWFILE_HASH_MAX + 64];
	char *pw, *acl;

	snprintf(keep, sizeof(keep), "%s", line("u3", "c")); /* the same line again: a new salt would be a change */
	snprintf(text, sizeof(text), "%s%s%s", line("u1", "a"), line("u2", "b"), keep);
	pw = write_file("pw", text);
	acl = write_file("acl", "topic read pub/#\nuser u3\ntopic u3/#\nuser u1\ntopic u1/#\n");
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", pw);
	snprintf(cfg.acl_file, sizeof(cfg.acl_file), "%s", acl);
	snprintf(cfg.allow_anonymous, sizeof(cfg.allow_anonymous), "true");
	up();
	ck_assert_int_eq(auth(&g, "c", "u1", "a", NULL), 0);
	u1 = g.res.cred;
	ck_assert_int_eq(auth(&g, "c", "u2", "b", NULL), 0);
	u2 = g.res.cred;
	ck_assert_int_eq(auth(&g, "c", "u3", "c", NULL), 0);
	u3 = g.res.cred;
	ck_assert_int_eq(auth(&g, "c", NULL, NULL, NULL), 0);
	anon = g.res.cred;
	/* u1 changes password, u2 is deleted, u3 stays, u4 is new */
	snprintf(text, sizeof(text), "%s%s%s", line("u1", "a2"), keep, line("u4", "d"));
	write_file("pw", text);
	auth_reload();
	ck_assert_int_eq(n_revoked, 2);
	ck_assert(was_revoked(u1) && was_revoked(u2) && !was_revoked(u3));
	ck_assert_int_eq(auth(&g, "c", "u1", "a", NULL), MQTT_E_BAD_AUTH);
	ck_assert_int_eq(auth(&g, "c", "u1", "a2", NULL), 0);
	ck_assert_int_eq(auth(&g, "c", "u4", "d", NULL), 0);
	/* u3's rules change, u1's do not; the anonymous ones do */
	n_revoked = 0;
	write_file("acl", "topic read pub/+\nuser u1\ntopic u1/#\nuser u3\ntopic read u3/#\n");
	auth_reload();
	ck_assert_int_eq(n_revoked, 2);
	ck_assert(was_revoked(u3) && was_revoked(anon) && !was_revoked(u1));
	/* files that do not load leave everything as it was, and revoke nothing */
	n_revoked = 0;
	write_file("pw", "u1:not-a-hash\n");
	write_file("acl", "topic read a/#/b\n");
	auth_reload();
	ck_assert_int_eq(n_revoked, 0);
	ck_assert_int_eq(auth(&g, "c", "u1", "a2", NULL), 0);
	ck_assert(acl_can_subscribe(g.acl, auth_default_acl(), "c", 1, "u1", 2, "u1/x", 4));
	got_free(&g);
}
END_TEST

START_TEST(test_password_changed_during_the_check)
{
	got_t g = { 0 };
	char text[4096];

	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", write_file("pw", line("u1", "old")));
	up();
	ck_assert_int_eq(start(&g, "c", "u1", "old", NULL, NULL), 0);
	/* the hash may well be done, but its completion is only read after the reload */
	snprintf(text, sizeof(text), "%s", line("u1", "new"));
	write_file("pw", text);
	auth_reload();
	ck_assert_int_eq(n_revoked, 1);
	settle(&g);
	ck_assert_int_eq(g.res.err, MQTT_E_BAD_AUTH);
	got_free(&g);
}
END_TEST

START_TEST(test_long_user_name_refused_not_cut)
{
	got_t g = { 0 };
	char user[300];

	memset(user, 'u', sizeof(user) - 1);
	user[sizeof(user) - 1] = '\0';
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", fixture);
	up();
	ck_assert_int_eq(auth(&g, "c", user, "pw", NULL), MQTT_E_BAD_AUTH);
	got_free(&g);
}
END_TEST

START_TEST(test_failure_logged_without_the_password)
{
	got_t g = { 0 };
	char path[128], buf[4096] = "";
	int fd, saved;
	ssize_t n;

	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s", fixture);
	up();
	snprintf(path, sizeof(path), "%s/log", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	saved = dup(2);
	dup2(fd, 2);
	got_free(&g);
	ck_assert_int_eq(start(&g, "sensor-17", "alice", "Tr0ub4dor&3", NULL, "198.51.100.9:4242"), 0);
	settle(&g);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	ck_assert_msg(strstr(buf, "198.51.100.9:4242") && strstr(buf, "sensor-17") && strstr(buf, "wrong password"),
		"log: %s", buf);
	ck_assert_ptr_null(strstr(buf, "Tr0ub4dor"));
	ck_assert_int_eq(strchr(buf, '\n') - buf, (long)strlen(buf) - 1); /* one line */
	got_free(&g);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_file_provider_ok_wrong_unknown);
	tcase_add_test(tc, test_unknown_user_takes_a_hash_check);
	tcase_add_test(tc, test_anonymous_rules_from_acl_file);
	tcase_add_test(tc, test_without_providers_credentials_pick_no_rules);
	tcase_add_test(tc, test_pg_found_not_found_unavailable);
	tcase_add_test(tc, test_order_file_then_pg);
	tcase_add_test(tc, test_bad_configuration_refused_at_start);
	tcase_add_test(tc, test_certificate_identity);
	tcase_add_test(tc, test_certificates_alone_refuse_anonymous);
	tcase_add_test(tc, test_pool_full_is_server_busy);
	tcase_add_test(tc, test_cancelled_client_never_called_back);
	tcase_add_test(tc, test_failure_limit_per_address);
	tcase_add_test(tc, test_failure_table_bounded_oldest_forgotten);
	tcase_add_test(tc, test_reload_revokes_changed_and_deleted);
	tcase_add_test(tc, test_password_changed_during_the_check);
	tcase_add_test(tc, test_long_user_name_refused_not_cut);
	tcase_add_test(tc, test_failure_logged_without_the_password);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

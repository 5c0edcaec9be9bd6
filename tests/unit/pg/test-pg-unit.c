/*
 * test-pg-unit.c — the PostgreSQL credential store's parts that need no server: answers and their cache
 * (worker/pg_cache.c: rows decoded as input, the LRU bound, invalidation by id, the references that keep an
 * answer alive for whoever still has to deliver it) and the connection string (worker/pg_conninfo.c: host names
 * resolved at start-up, defaults, errors that never show the password). Leaks show under the ASan build.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "acl.h"
#include "log.h"
#include "pg_cache.h"
#include "pg_conninfo.h"

static pg_ent_t *decode_ok(const char *id, const char *hash, const char *pub, const char *sub)
{
	pg_ent_t *e = NULL;
	int err = pg_ent_decode(id, hash, pub, pub ? strlen(pub) : 0, sub, sub ? strlen(sub) : 0, &e);

	ck_assert_msg(err == 0, "decode %s: %d", id, err);
	ck_assert_ptr_nonnull(e);
	return e;
}

START_TEST(test_decode_row)
{
	pg_ent_t *e = decode_ok("42", "$2b$10$abc", "[\"a/#\",\"dev/%c/+\"]", "[\"b/#\"]");

	ck_assert(e->found);
	ck_assert_uint_eq(e->cred.id, 42);
	ck_assert_str_eq(e->cred.password_hash, "$2b$10$abc");
	ck_assert_ptr_nonnull(e->cred.acl);
	ck_assert_uint_eq(acl_count(e->cred.acl), 3);
	pg_ent_unref(e);

	/* No password (certificate-only), rules NULL: no rule set at all, the defaults apply. */
	e = decode_ok("9223372036854775807", NULL, NULL, "[]");
	ck_assert_uint_eq(e->cred.id, 9223372036854775807ull);
	ck_assert_ptr_null(e->cred.password_hash);
	ck_assert_ptr_null(e->cred.acl);
	pg_ent_unref(e);
}
END_TEST

/* A credential whose rules are all unusable gets an empty rule set, not "no rules" (which means defaults). */
START_TEST(test_decode_invalid_rules_are_skipped_not_widened)
{
	pg_ent_t *e = decode_ok("7", "h", "[\"a/#/b\", 5, null, \"ok/+\"]", "[\"x+\"]");

	ck_assert_ptr_nonnull(e->cred.acl);
	ck_assert_uint_eq(acl_count(e->cred.acl), 1);
	pg_ent_unref(e);
	e = decode_ok("8", "h", "[\"#/a\"]", "[]");
	ck_assert_ptr_nonnull(e->cred.acl);
	ck_assert_uint_eq(acl_count(e->cred.acl), 0);
	pg_ent_unref(e);
}
END_TEST

START_TEST(test_decode_refuses_malformed_rows)
{
	static const char *const bad_ids[] = { "", "0", "-1", "12a", " 1", "9223372036854775808",
		"18446744073709551616", "99999999999999999999" };
	pg_ent_t *e = (pg_ent_t *)1;

	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		ck_assert_int_eq(pg_ent_decode(bad_ids[i], NULL, "[]", 2, "[]", 2, &e), -EINVAL);
		ck_assert_ptr_null(e);
	}
	ck_assert_int_eq(pg_ent_decode(NULL, NULL, "[]", 2, "[]", 2, &e), -EINVAL);
	ck_assert_int_eq(pg_ent_decode("1", NULL, "{\"a\":1}", 7, "[]", 2, &e), -EINVAL);
	ck_assert_int_eq(pg_ent_decode("1", NULL, "[]", 2, "[\"a\"", 4, &e), -EINVAL);
	ck_assert_int_eq(pg_ent_decode("1", NULL, "\"a/#\"", 5, "[]", 2, &e), -EINVAL);
	ck_assert_ptr_null(e);
}
END_TEST

START_TEST(test_cache_lru_bound)
{
	pg_cache_t c;
	char key[16], id[16];

	pg_cache_init(&c, 3);
	for (int i = 1; i <= 3; i++) {
		pg_ent_t *e;

		snprintf(key, sizeof(key), "k%d", i);
		snprintf(id, sizeof(id), "%d", i);
		e = decode_ok(id, NULL, NULL, NULL);
		ck_assert_int_eq(pg_cache_put(&c, key, strlen(key), e), 0);
		pg_ent_unref(e);
	}
	/* k1 used: k2 is now the least recently used and goes when k4 comes. */
	ck_assert_ptr_nonnull(pg_cache_get(&c, "k1", 2));
	{
		pg_ent_t *e = pg_ent_not_found();

		ck_assert_int_eq(pg_cache_put(&c, "k4", 2, e), 0);
		pg_ent_unref(e);
	}
	ck_assert_uint_eq(c.count, 3);
	ck_assert_ptr_null(pg_cache_get(&c, "k2", 2));
	ck_assert_uint_eq(pg_cache_get(&c, "k1", 2)->cred.id, 1);
	ck_assert_uint_eq(pg_cache_get(&c, "k3", 2)->cred.id, 3);
	ck_assert(!pg_cache_get(&c, "k4", 2)->found);
	/* Binary keys: "a\0b" and "a\0c" are different keys. */
	{
		pg_ent_t *a = decode_ok("10", NULL, NULL, NULL), *b = decode_ok("11", NULL, NULL, NULL);

		ck_assert_int_eq(pg_cache_put(&c, "a\0b", 3, a), 0);
		ck_assert_int_eq(pg_cache_put(&c, "a\0c", 3, b), 0);
		ck_assert_uint_eq(pg_cache_get(&c, "a\0b", 3)->cred.id, 10);
		ck_assert_uint_eq(pg_cache_get(&c, "a\0c", 3)->cred.id, 11);
		pg_ent_unref(a);
		pg_ent_unref(b);
	}
	pg_cache_finish(&c);
}
END_TEST

/* A newer answer for a key replaces the older one; the older stays valid for its holder, and is not stale. */
START_TEST(test_cache_replace_same_key)
{
	pg_cache_t c;
	pg_ent_t *old = decode_ok("1", "old", NULL, NULL), *new = decode_ok("1", "new", NULL, NULL);

	pg_cache_init(&c, 10);
	ck_assert_int_eq(pg_cache_put(&c, "u", 1, old), 0);
	ck_assert_int_eq(pg_cache_put(&c, "u", 1, new), 0);
	ck_assert_uint_eq(c.count, 1);
	ck_assert_str_eq(pg_cache_get(&c, "u", 1)->cred.password_hash, "new");
	ck_assert(!old->cached && !old->stale);
	ck_assert_str_eq(old->cred.password_hash, "old");
	pg_ent_unref(old);
	pg_ent_unref(new);
	pg_cache_finish(&c);
}
END_TEST

/* A NOTIFY for an id drops its answers and every "not found" (an insert may have made one wrong); answers held
 * by lookups waiting for delivery survive, marked stale. */
START_TEST(test_cache_drop_id_and_negatives)
{
	pg_cache_t c;
	pg_ent_t *a = decode_ok("1", "a", "[\"a/#\"]", NULL), *b = decode_ok("2", "b", NULL, NULL);
	pg_ent_t *none = pg_ent_not_found(), *held;

	pg_cache_init(&c, 10);
	ck_assert_int_eq(pg_cache_put(&c, "alice", 5, a), 0);
	ck_assert_int_eq(pg_cache_put(&c, "bob", 3, b), 0);
	ck_assert_int_eq(pg_cache_put(&c, "carol", 5, none), 0);
	held = pg_ent_ref(pg_cache_get(&c, "alice", 5));
	pg_ent_unref(a);
	pg_ent_unref(b);
	pg_ent_unref(none);

	pg_cache_drop_id(&c, 1);
	ck_assert_uint_eq(c.count, 1);
	ck_assert_ptr_null(pg_cache_get(&c, "alice", 5));
	ck_assert_ptr_null(pg_cache_get(&c, "carol", 5));
	ck_assert_ptr_nonnull(pg_cache_get(&c, "bob", 3));
	ck_assert(held->stale && !held->cached);
	ck_assert_uint_eq(acl_count(held->cred.acl), 1);
	pg_ent_unref(held);

	held = pg_ent_ref(pg_cache_get(&c, "bob", 3));
	pg_cache_clear(&c);
	ck_assert_uint_eq(c.count, 0);
	ck_assert(held->stale);
	pg_ent_unref(held);
	pg_cache_finish(&c);
}
END_TEST

/* ---- the connection string ---- */

static pg_params_t params(const char *conninfo)
{
	pg_params_t p;

	ck_assert_msg(pg_params_build(&p, conninfo, "ringmqd-w3") == 0, "%s", conninfo);
	return p;
}

START_TEST(test_conninfo_defaults_and_overrides)
{
	pg_params_t p = params("host=127.0.0.1 port=5433 dbname=creds user=broker");

	ck_assert_str_eq(pg_params_get(&p, "host"), "127.0.0.1");
	ck_assert_ptr_null(pg_params_get(&p, "hostaddr"));
	ck_assert_str_eq(pg_params_get(&p, "port"), "5433");
	ck_assert_str_eq(pg_params_get(&p, "dbname"), "creds");
	ck_assert_str_eq(pg_params_get(&p, "application_name"), "ringmqd-w3");
	ck_assert_str_eq(pg_params_get(&p, "keepalives_idle"), "30");
	ck_assert_str_eq(pg_params_get(&p, "gssencmode"), "disable");
	ck_assert_str_eq(pg_params_get(&p, "client_encoding"), "UTF8");
	ck_assert_uint_eq(p.connect_timeout_ms, 0);
	pg_params_free(&p);

	/* The conninfo's own choices win, except the encoding keys are compared in. */
	p = params("host=/run/postgresql application_name=mine keepalives_idle=5 client_encoding=LATIN1 "
		"connect_timeout=7");
	ck_assert_str_eq(pg_params_get(&p, "host"), "/run/postgresql");
	ck_assert_ptr_null(pg_params_get(&p, "hostaddr"));
	ck_assert_str_eq(pg_params_get(&p, "application_name"), "mine");
	ck_assert_str_eq(pg_params_get(&p, "keepalives_idle"), "5");
	ck_assert_str_eq(pg_params_get(&p, "client_encoding"), "UTF8");
	ck_assert_uint_eq(p.connect_timeout_ms, 7000);
	pg_params_free(&p);
}
END_TEST

/* Names are resolved once, here: libpq gets hostaddr and resolves nothing on a reconnect. */
START_TEST(test_conninfo_resolves_host_names)
{
	pg_params_t p = params("host=localhost port=5433");
	const char *host = pg_params_get(&p, "host"), *addr = pg_params_get(&p, "hostaddr");

	ck_assert_ptr_nonnull(host);
	ck_assert_ptr_nonnull(addr);
	ck_assert_msg(!strncmp(host, "localhost", 9) && strstr(addr, "127.0.0.1"), "%s / %s", host, addr);
	ck_assert_str_eq(pg_params_get(&p, "port"), strchr(host, ',') ? "5433,5433" : "5433");
	pg_params_free(&p);

	/* A list: sockets and numbers as they are, names expanded, ports following their host. */
	p = params("postgresql://broker:pw@%2Frun%2Fpg:1,localhost:2,10.0.0.1:3/creds");
	host = pg_params_get(&p, "host");
	addr = pg_params_get(&p, "hostaddr");
	ck_assert_msg(!strncmp(host, "/run/pg,localhost", 17) && !strncmp(addr, ",", 1) && strstr(addr, "127.0.0.1")
		&& strstr(host, ",10.0.0.1") && strstr(pg_params_get(&p, "port"), ",3"), "%s / %s / %s", host, addr,
		pg_params_get(&p, "port"));
	ck_assert_str_eq(pg_params_get(&p, "password"), "pw");
	ck_assert_str_eq(pg_params_get(&p, "dbname"), "creds");
	pg_params_free(&p);

	/* hostaddr given: nothing to resolve, even a name that would not resolve. */
	p = params("host=db.invalid hostaddr=10.0.0.1");
	ck_assert_str_eq(pg_params_get(&p, "host"), "db.invalid");
	ck_assert_str_eq(pg_params_get(&p, "hostaddr"), "10.0.0.1");
	pg_params_free(&p);
}
END_TEST

START_TEST(test_conninfo_refused)
{
	pg_params_t p;

	/* (A name that does not resolve is refused too: test-pg, which may use the network.) */
	ck_assert_int_eq(pg_params_build(&p, "password=se cret", "x"), -EINVAL);
	ck_assert_ptr_null(p.keys);
	ck_assert_int_eq(pg_params_build(&p, "hots=db", "x"), -EINVAL);
	ck_assert_int_eq(pg_params_build(&p, "postgresql://[::1", "x"), -EINVAL);
	pg_params_free(NULL);
}
END_TEST

START_TEST(test_conninfo_errors_never_show_the_password)
{
	char out[256];

	pg_conninfo_redact("missing \"=\" after \"cret\" in connection info string\n", out, sizeof(out));
	ck_assert_str_eq(out, "missing \"=\" after \"...\" in connection info string");
	pg_conninfo_redact("invalid connection option \"s3cret\"\n", out, sizeof(out));
	ck_assert_str_eq(out, "invalid connection option \"...\"");
	pg_conninfo_redact("invalid sslmode value: \"x\" for \"sslmode\"", out, sizeof(out));
	ck_assert_str_eq(out, "invalid sslmode value: \"...\" for \"sslmode\"");
	pg_conninfo_redact("unterminated quoted string \"abc", out, sizeof(out));
	ck_assert_str_eq(out, "unterminated quoted string \"abc");
	/* A long message is cut, never overrun. */
	{
		char small[20];

		pg_conninfo_redact("\"host\" \"host\" \"host\" \"host\" \"host\" \"host\"", small, sizeof(small));
		ck_assert_uint_lt(strlen(small), sizeof(small));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pg-unit");
	TCase *tc = tcase_create("cache");
	SRunner *sr;
	int failed;

	log_init(LOG_ERR);
	/* libpq's environment defaults would change what the connection strings mean. */
	unsetenv("PGHOST");
	unsetenv("PGHOSTADDR");
	unsetenv("PGPORT");
	tcase_add_test(tc, test_decode_row);
	tcase_add_test(tc, test_decode_invalid_rules_are_skipped_not_widened);
	tcase_add_test(tc, test_decode_refuses_malformed_rows);
	tcase_add_test(tc, test_cache_lru_bound);
	tcase_add_test(tc, test_cache_replace_same_key);
	tcase_add_test(tc, test_cache_drop_id_and_negatives);
	tcase_add_test(tc, test_conninfo_defaults_and_overrides);
	tcase_add_test(tc, test_conninfo_resolves_host_names);
	tcase_add_test(tc, test_conninfo_refused);
	tcase_add_test(tc, test_conninfo_errors_never_show_the_password);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

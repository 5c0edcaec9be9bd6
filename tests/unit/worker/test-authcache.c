/*
 * test-authcache.c — remembered password checks: a hit needs the same credential, the same stored hash and the
 * same password; revocation and eviction forget; off means off; nothing of the password is kept in clear.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "authcache.h"
#include "fake_io.h"

#define PW(s) (const uint8_t *)(s), strlen(s)

START_TEST(test_hit_needs_same_credential_hash_and_password)
{
	ck_assert_int_eq(authcache_init(16), 0);
	ck_assert(!authcache_hit(7, "$2b$10$h1", PW("secret")));
	authcache_put(7, "$2b$10$h1", PW("secret"));
	ck_assert(authcache_hit(7, "$2b$10$h1", PW("secret")));
	ck_assert(!authcache_hit(7, "$2b$10$h1", PW("Secret")));   /* a wrong password never matches */
	ck_assert(!authcache_hit(7, "$2b$10$h1", PW("secre")));
	ck_assert(!authcache_hit(7, "$2b$10$h2", PW("secret")));   /* the stored hash changed */
	ck_assert(!authcache_hit(8, "$2b$10$h1", PW("secret")));   /* another credential */
	ck_assert(!authcache_hit(7, "$2b$10$h1", NULL, 0));
	/* a newer check replaces the entry */
	authcache_put(7, "$2b$10$h2", PW("other"));
	ck_assert(!authcache_hit(7, "$2b$10$h1", PW("secret")));
	ck_assert(authcache_hit(7, "$2b$10$h2", PW("other")));
	ck_assert_uint_eq(authcache_count(), 1);
	authcache_finish();
}
END_TEST

START_TEST(test_forget_clear_and_least_recently_used_eviction)
{
	ck_assert_int_eq(authcache_init(3), 0);
	for (uint64_t id = 1; id <= 3; id++)
		authcache_put(id, "h", PW("pw"));
	ck_assert(authcache_hit(1, "h", PW("pw")));       /* 1 is now the most recently used: 2 goes next */
	authcache_put(4, "h", PW("pw"));
	ck_assert_uint_eq(authcache_count(), 3);
	ck_assert(!authcache_hit(2, "h", PW("pw")));
	ck_assert(authcache_hit(1, "h", PW("pw")));
	ck_assert(authcache_hit(3, "h", PW("pw")));
	authcache_forget(3);
	ck_assert(!authcache_hit(3, "h", PW("pw")));
	authcache_forget(99);                              /* unknown: nothing happens */
	ck_assert_uint_eq(authcache_count(), 2);
	authcache_clear();
	ck_assert_uint_eq(authcache_count(), 0);
	ck_assert(!authcache_hit(1, "h", PW("pw")));
	authcache_finish();
}
END_TEST

START_TEST(test_off)
{
	ck_assert_int_eq(authcache_init(0), 0);
	authcache_put(1, "h", PW("pw"));
	ck_assert(!authcache_hit(1, "h", PW("pw")));
	ck_assert_uint_eq(authcache_count(), 0);
	authcache_forget(1);
	authcache_finish();
}
END_TEST

START_TEST(test_allocation_failure_only_forgets)
{
	ck_assert_int_eq(authcache_init(8), 0);
	fake_fail_alloc_after(1);           /* the entry itself */
	authcache_put(1, "h", PW("pw"));
	fake_fail_alloc_after(0);
	ck_assert(!authcache_hit(1, "h", PW("pw")));
	authcache_put(1, "h", PW("pw"));
	ck_assert(authcache_hit(1, "h", PW("pw")));
	authcache_forget(1);
	fake_fail_alloc_after(2);           /* the map's table or key copy */
	authcache_put(1, "h", PW("pw"));
	fake_fail_alloc_after(0);
	ck_assert(!authcache_hit(1, "h", PW("pw")));
	ck_assert_uint_eq(authcache_count(), 0);
	authcache_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("authcache");
	TCase *tc = tcase_create("authcache");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_hit_needs_same_credential_hash_and_password);
	tcase_add_test(tc, test_forget_clear_and_least_recently_used_eviction);
	tcase_add_test(tc, test_off);
	tcase_add_test(tc, test_allocation_failure_only_forgets);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

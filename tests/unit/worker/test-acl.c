/*
 * test-acl.c — topic rules: %c / %u substitution and the identities that must never be substituted (a client
 * choosing "+", "a/#", "x/y", "$SYS" or nothing as its ID or user name to widen its rules), SUBSCRIBE filters
 * that must lie within a rule ("a/#" allows "a/+/c", "a/+" does not allow "a/#"), '$'-topics, shared
 * subscriptions checked on their inner filter, deny rules over allowing ones, and the defaults.
 */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "fake_io.h"

#define RW (ACL_PUB | ACL_SUB)

static acl_t *rules(unsigned access, const char *p1, ...)
{
	acl_t *a = acl_create();
	va_list ap;

	ck_assert_ptr_nonnull(a);
	va_start(ap, p1);
	for (const char *p = p1; p; p = va_arg(ap, const char *))
		ck_assert_int_eq(acl_add(a, access, p, strlen(p)), 0);
	va_end(ap);
	return a;
}

static bool pub(const acl_t *own, const acl_t *def, const char *id, const char *user, const char *topic)
{
	return acl_can_publish(own, def, id, strlen(id), user, user ? strlen(user) : 0, topic, strlen(topic));
}

static bool sub(const acl_t *own, const acl_t *def, const char *id, const char *user, const char *filter)
{
	return acl_can_subscribe(own, def, id, strlen(id), user, user ? strlen(user) : 0, filter, strlen(filter));
}

START_TEST(test_no_rules_allow_all_but_publishing_to_dollar_topics)
{
	ck_assert(pub(NULL, NULL, "c", NULL, "a/b"));
	ck_assert(!pub(NULL, NULL, "c", NULL, "$SYS/x"));
	ck_assert(!pub(NULL, NULL, "c", NULL, "$share/g/x"));
	ck_assert(sub(NULL, NULL, "c", NULL, "#"));
	ck_assert(sub(NULL, NULL, "c", NULL, "$SYS/#"));
	ck_assert(sub(NULL, NULL, "c", NULL, "$share/g/a/+"));
	/* not filters at all */
	ck_assert(!sub(NULL, NULL, "c", NULL, "a/#/b"));
	ck_assert(!sub(NULL, NULL, "c", NULL, "$share//a"));
	ck_assert(!sub(NULL, NULL, "c", NULL, "$share/g"));
}
END_TEST

START_TEST(test_empty_rule_set_allows_nothing)
{
	acl_t *none = acl_create();

	ck_assert(!pub(none, NULL, "c", "u", "a"));
	ck_assert(!sub(NULL, none, "c", "u", "a"));
	acl_unref(none);
}
END_TEST

START_TEST(test_dollar_publish_refused_even_when_a_rule_allows_it)
{
	acl_t *a = rules(RW, "$SYS/#", "#", NULL);

	ck_assert(!pub(a, NULL, "c", NULL, "$SYS/broker/x"));
	ck_assert(sub(a, NULL, "c", NULL, "$SYS/broker/+"));
	acl_unref(a);
}
END_TEST

START_TEST(test_substitution_of_client_id_and_user)
{
	acl_t *a = rules(RW, "dev/%c/#", "users/%u/in", "dev-%c/x", "100%/%x", NULL);

	ck_assert_uint_eq(acl_count(a), 4);
	ck_assert(pub(a, NULL, "d1", "bob", "dev/d1/temp"));
	ck_assert(pub(a, NULL, "d1", "bob", "dev/d1"));
	ck_assert(!pub(a, NULL, "d1", "bob", "dev/d2/temp"));
	ck_assert(sub(a, NULL, "d1", "bob", "dev/d1/+"));
	ck_assert(!sub(a, NULL, "d1", "bob", "dev/+/temp"));
	ck_assert(pub(a, NULL, "d1", "bob", "users/bob/in"));
	ck_assert(!pub(a, NULL, "d1", "bob", "users/alice/in"));
	ck_assert(pub(a, NULL, "d1", "bob", "dev-d1/x"));
	ck_assert(!pub(a, NULL, "d2", "bob", "dev-d1/x"));
	/* only %c and %u are placeholders */
	ck_assert(pub(a, NULL, "d1", "bob", "100%/%x"));
	acl_unref(a);
}
END_TEST

START_TEST(test_identity_with_wildcard_or_slash_never_substituted)
{
	acl_t *a = rules(RW, "dev/%c", "dev/%c/cmd", "home/%u/#", "%c/#", NULL);

	/* "+" as an ID would turn dev/%c into dev/+ */
	ck_assert(!sub(a, NULL, "+", NULL, "dev/+"));
	ck_assert(!sub(a, NULL, "+", NULL, "dev/x"));
	/* "a/#" as an ID would turn dev/%c into dev/a/# */
	ck_assert(!sub(a, NULL, "a/#", NULL, "dev/a/#"));
	ck_assert(!sub(a, NULL, "a/#", NULL, "dev/a/b"));
	ck_assert(!sub(a, NULL, "#", NULL, "dev/#"));
	/* "x/y" adds a level */
	ck_assert(!pub(a, NULL, "x/y", NULL, "dev/x/y/cmd"));
	ck_assert(!pub(a, NULL, "x/y", NULL, "dev/x/y"));
	/* a user name with a wildcard */
	ck_assert(!sub(a, NULL, "c", "+", "home/+/#"));
	ck_assert(!sub(a, NULL, "c", "#", "home/#"));
	/* no user name: "home/%u/#" is not "home//#" */
	ck_assert(!pub(a, NULL, "c", NULL, "home//x"));
	ck_assert(!pub(a, NULL, "c", "", "home//x"));
	/* an ID starting with '$' at the start of a rule would give it $SYS */
	ck_assert(!sub(a, NULL, "$SYS", NULL, "$SYS/#"));
	ck_assert(!sub(a, NULL, "$SYS", NULL, "$SYS/broker"));
	/* the same rules for well-behaved identities */
	ck_assert(sub(a, NULL, "d1", "bob", "dev/d1"));
	ck_assert(pub(a, NULL, "d1", "bob", "home/bob/lamp"));
	ck_assert(sub(a, NULL, "d1", "bob", "d1/#"));
	/* '$' inside an identity is harmless elsewhere */
	ck_assert(pub(a, NULL, "a$b", "bob", "dev/a$b"));
	acl_unref(a);
}
END_TEST

START_TEST(test_filter_within_rule)
{
	acl_t *hash = rules(ACL_SUB, "a/#", NULL), *plus = rules(ACL_SUB, "a/+", NULL);
	acl_t *all = rules(ACL_SUB, "#", NULL), *lead = rules(ACL_SUB, "+/x", NULL);

	ck_assert(sub(hash, NULL, "c", NULL, "a/+/c"));
	ck_assert(sub(hash, NULL, "c", NULL, "a/#"));
	ck_assert(sub(hash, NULL, "c", NULL, "a"));
	ck_assert(sub(hash, NULL, "c", NULL, "a/b/c/d"));
	ck_assert(sub(hash, NULL, "c", NULL, "a/+/#"));
	ck_assert(!sub(hash, NULL, "c", NULL, "+/b"));
	ck_assert(!sub(hash, NULL, "c", NULL, "#"));
	ck_assert(!sub(hash, NULL, "c", NULL, "b"));

	ck_assert(sub(plus, NULL, "c", NULL, "a/b"));
	ck_assert(sub(plus, NULL, "c", NULL, "a/+"));
	ck_assert(!sub(plus, NULL, "c", NULL, "a/#"));
	ck_assert(!sub(plus, NULL, "c", NULL, "a"));
	ck_assert(!sub(plus, NULL, "c", NULL, "a/b/c"));
	ck_assert(!sub(plus, NULL, "c", NULL, "+/b"));

	/* a leading wildcard never reaches '$'-topics [MQTT-4.7.2-1], so it does not allow them either */
	ck_assert(sub(all, NULL, "c", NULL, "#"));
	ck_assert(sub(all, NULL, "c", NULL, "+/x/#"));
	ck_assert(!sub(all, NULL, "c", NULL, "$SYS/#"));
	ck_assert(!sub(all, NULL, "c", NULL, "$SYS"));
	ck_assert(sub(lead, NULL, "c", NULL, "a/x"));
	ck_assert(!sub(lead, NULL, "c", NULL, "$SYS/x"));

	acl_unref(hash);
	/* a publish-only rule allows no subscription */
	hash = rules(ACL_PUB, "#", NULL);
	ck_assert(!sub(hash, NULL, "c", NULL, "a"));
	acl_unref(hash);
	acl_unref(plus);
	acl_unref(all);
	acl_unref(lead);
}
END_TEST

START_TEST(test_shared_subscription_checked_on_inner_filter)
{
	acl_t *a = rules(ACL_SUB, "a/#", NULL);

	ck_assert(sub(a, NULL, "c", NULL, "$share/g/a/b"));
	ck_assert(sub(a, NULL, "c", NULL, "$share/g/a/#"));
	ck_assert(!sub(a, NULL, "c", NULL, "$share/g/b"));
	ck_assert(!sub(a, NULL, "c", NULL, "$share/g/#"));
	ck_assert(!sub(a, NULL, "c", NULL, "$share/a/b"));
	ck_assert(!sub(a, NULL, "c", NULL, "$share/+/a"));
	acl_unref(a);
}
END_TEST

START_TEST(test_read_write_bits)
{
	acl_t *r = rules(ACL_SUB, "in/#", NULL), *w = rules(ACL_PUB, "out/#", NULL);

	ck_assert(sub(r, w, "c", NULL, "in/x"));
	ck_assert(!pub(r, w, "c", NULL, "in/x"));
	ck_assert(pub(r, w, "c", NULL, "out/x"));
	ck_assert(!sub(r, w, "c", NULL, "out/x"));
	acl_unref(r);
	acl_unref(w);
}
END_TEST

START_TEST(test_own_and_defaults_add_up)
{
	acl_t *own = rules(RW, "x/#", NULL), *def = rules(RW, "y/%c", NULL);

	ck_assert(pub(own, def, "c", NULL, "x/1"));
	ck_assert(pub(own, def, "c", NULL, "y/c"));
	ck_assert(!pub(own, def, "c", NULL, "z"));
	ck_assert(sub(NULL, def, "c", NULL, "y/c"));
	ck_assert(!sub(NULL, def, "c", NULL, "x/1"));
	acl_unref(own);
	acl_unref(def);
}
END_TEST

START_TEST(test_deny_wins_over_allow)
{
	acl_t *own = rules(RW, "a/#", NULL), *def = rules(ACL_DENY | RW, "a/secret", NULL);

	ck_assert(pub(own, def, "c", NULL, "a/x"));
	ck_assert(!pub(own, def, "c", NULL, "a/secret"));
	/* a filter that could receive the denied topic is refused */
	ck_assert(!sub(own, def, "c", NULL, "a/#"));
	ck_assert(!sub(own, def, "c", NULL, "a/+"));
	ck_assert(!sub(own, def, "c", NULL, "$share/g/a/+"));
	ck_assert(sub(own, def, "c", NULL, "a/x"));
	ck_assert(sub(own, def, "c", NULL, "a/secret/x"));
	ck_assert(sub(own, def, "c", NULL, "a/+/x"));
	acl_unref(def);
	/* a deny on one access leaves the other */
	def = rules(ACL_DENY | ACL_PUB, "a/ro", NULL);
	ck_assert(!pub(own, def, "c", NULL, "a/ro"));
	ck_assert(sub(own, def, "c", NULL, "a/ro"));
	acl_unref(def);
	acl_unref(own);
}
END_TEST

START_TEST(test_deny_with_unsubstitutable_identity_covers_everyone)
{
	acl_t *a = rules(RW, "#", NULL);

	ck_assert_int_eq(acl_add(a, ACL_DENY | RW, "private/%u/#", 12), 0);
	ck_assert_int_eq(acl_add(a, ACL_DENY | RW, "box-%c/x", 8), 0);
	ck_assert(!pub(a, NULL, "c", "bob", "private/bob/x"));
	ck_assert(pub(a, NULL, "c", "bob", "private/alice/x"));
	/* no user name, or a wildcard as one: the deny is private/+/# */
	ck_assert(!pub(a, NULL, "c", NULL, "private/alice/x"));
	ck_assert(!pub(a, NULL, "c", "+", "private/alice/x"));
	ck_assert(!sub(a, NULL, "c", "#", "private/+/x"));
	ck_assert(pub(a, NULL, "c", NULL, "public/x"));
	/* inside a level: the whole level */
	ck_assert(!pub(a, NULL, "c/d", "bob", "box-q/x"));
	ck_assert(!pub(a, NULL, "c", "bob", "box-c/x"));
	ck_assert(pub(a, NULL, "c", "bob", "box-q/x"));
	acl_unref(a);
}
END_TEST

START_TEST(test_add_refuses_what_is_not_a_filter)
{
	acl_t *a = acl_create();

	ck_assert_int_eq(acl_add(a, RW, "a/#/b", 5), -EINVAL);
	ck_assert_int_eq(acl_add(a, RW, "a+", 2), -EINVAL);
	ck_assert_int_eq(acl_add(a, RW, "", 0), -EINVAL);
	ck_assert_int_eq(acl_add(a, RW, "%c#", 3), -EINVAL);
	ck_assert_int_eq(acl_add(a, 0, "a", 1), -EINVAL);
	ck_assert_int_eq(acl_add(a, ACL_DENY, "a", 1), -EINVAL);
	ck_assert_int_eq(acl_add(a, RW, "a\0b", 3), -EINVAL);
	ck_assert_uint_eq(acl_count(a), 0);
	ck_assert_int_eq(acl_add(a, RW, "%c", 2), 0);
	ck_assert_int_eq(acl_add(a, RW, "a/%u/+/#", 8), 0);
	ck_assert_uint_eq(acl_count(a), 2);
	ck_assert_ptr_eq(acl_ref(a), a);
	acl_unref(a);
	ck_assert_uint_eq(acl_count(a), 2);
	acl_unref(a);
	acl_unref(NULL);
}
END_TEST

START_TEST(test_long_identity_expanded_on_heap_and_allocation_failure_refuses)
{
	static char id[3000], topic[3100];
	acl_t *a = rules(RW, "dev/%c/#", NULL), *d = rules(ACL_DENY | ACL_PUB, "dev/%c/lock", NULL);
	bool ok, allowed;

	memset(id, 'i', sizeof(id) - 1);
	snprintf(topic, sizeof(topic), "dev/%s/t", id);
	ck_assert(pub(a, NULL, id, NULL, topic));
	/* the expansion of a long rule cannot be allocated: refused, never allowed by default */
	fake_fail_alloc_after(1);
	ok = pub(a, NULL, id, NULL, topic);
	fake_fail_alloc_after(0);
	ck_assert(!ok);
	/* nor can a deny be skipped by running out of memory */
	snprintf(topic, sizeof(topic), "dev/%s/lock", id);
	fake_fail_alloc_after(1);
	allowed = pub(a, d, id, NULL, topic);
	fake_fail_alloc_after(0);
	ck_assert(!allowed);
	acl_unref(a);
	acl_unref(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("acl");
	TCase *tc = tcase_create("acl");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_no_rules_allow_all_but_publishing_to_dollar_topics);
	tcase_add_test(tc, test_empty_rule_set_allows_nothing);
	tcase_add_test(tc, test_dollar_publish_refused_even_when_a_rule_allows_it);
	tcase_add_test(tc, test_substitution_of_client_id_and_user);
	tcase_add_test(tc, test_identity_with_wildcard_or_slash_never_substituted);
	tcase_add_test(tc, test_filter_within_rule);
	tcase_add_test(tc, test_shared_subscription_checked_on_inner_filter);
	tcase_add_test(tc, test_read_write_bits);
	tcase_add_test(tc, test_own_and_defaults_add_up);
	tcase_add_test(tc, test_deny_wins_over_allow);
	tcase_add_test(tc, test_deny_with_unsubstitutable_identity_covers_everyone);
	tcase_add_test(tc, test_add_refuses_what_is_not_a_filter);
	tcase_add_test(tc, test_long_identity_expanded_on_heap_and_allocation_failure_refuses);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

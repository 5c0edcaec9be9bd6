/*
 * test-aclfile.c — mosquitto's acl_file syntax: anonymous topic lines (before any "user"), user sections,
 * patterns for everyone, access words, filters with spaces, comments; a bad line is named by file and line
 * (the worker logs it and keeps its previous rules); digests tell whose rules a reload changed.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aclfile.h"
#include "fake_io.h"

static aclfile_t *parse_ok(const char *text)
{
	aclfile_t *af;
	char err[256] = "";
	int rc = aclfile_parse(text, strlen(text), "acl", &af, err, sizeof(err));

	ck_assert_msg(rc == 0, "%s", err);
	return af;
}

/* As the worker checks a client: its own rules (its section, or the anonymous ones) and the patterns. */
static bool pub(const aclfile_t *af, const char *id, const char *user, const char *topic)
{
	const acl_t *own = user ? aclfile_user(af, user, strlen(user)) : aclfile_anonymous(af);

	return acl_can_publish(own, aclfile_patterns(af), id, strlen(id), user, user ? strlen(user) : 0, topic,
		strlen(topic));
}

static bool sub(const aclfile_t *af, const char *id, const char *user, const char *filter)
{
	const acl_t *own = user ? aclfile_user(af, user, strlen(user)) : aclfile_anonymous(af);

	return acl_can_subscribe(own, aclfile_patterns(af), id, strlen(id), user, user ? strlen(user) : 0, filter,
		strlen(filter));
}

static const char sample[] =
	"# mosquitto-style ACL\n"
	"topic read public/#\n"
	"\n"
	"   # an indented comment\n"
	"user alice\n"
	"topic readwrite alice/#\n"
	"topic write alerts\r\n"
	"topic deny alice/secret\n"
	"pattern read devices/%c/cmd\n"
	"pattern write devices/%u/state\n"
	"user bob smith\n"
	"topic rooms/big hall/#\n"
	"user carol\n"
	"user alice\n"
	"topic read extra/+\n";

START_TEST(test_sections_and_patterns)
{
	aclfile_t *af = parse_ok(sample);

	/* anonymous: the topic lines before the first user, and the patterns */
	ck_assert(sub(af, "c1", NULL, "public/news"));
	ck_assert(!pub(af, "c1", NULL, "public/news"));
	ck_assert(sub(af, "c1", NULL, "devices/c1/cmd"));
	ck_assert(!pub(af, "c1", NULL, "devices//state"));
	/* alice: her section (both "user alice" parts), the patterns, not the anonymous lines */
	ck_assert(pub(af, "c2", "alice", "alice/x"));
	ck_assert(sub(af, "c2", "alice", "alice/#") == false); /* alice/secret is denied: alice/# could get it */
	ck_assert(sub(af, "c2", "alice", "alice/x/#"));
	ck_assert(!pub(af, "c2", "alice", "alice/secret"));
	ck_assert(pub(af, "c2", "alice", "alerts"));
	ck_assert(!sub(af, "c2", "alice", "alerts"));
	ck_assert(sub(af, "c2", "alice", "extra/x"));
	ck_assert(!sub(af, "c2", "alice", "public/news"));
	ck_assert(pub(af, "c2", "alice", "devices/alice/state"));
	ck_assert(sub(af, "c2", "alice", "devices/c2/cmd"));
	/* a user name with a space, a filter with one (no access word: readwrite) */
	ck_assert(pub(af, "c3", "bob smith", "rooms/big hall/temp"));
	ck_assert(sub(af, "c3", "bob smith", "rooms/big hall/+"));
	/* carol has an empty section, dave none: patterns only */
	ck_assert(pub(af, "c4", "carol", "devices/carol/state"));
	ck_assert(!pub(af, "c4", "carol", "alice/x"));
	ck_assert_ptr_null(aclfile_user(af, "dave", 4));
	ck_assert(!sub(af, "c5", "dave", "public/news"));
	ck_assert(sub(af, "c5", "dave", "devices/c5/cmd"));
	aclfile_free(af);
}
END_TEST

START_TEST(test_users_listed_in_order)
{
	aclfile_t *af = parse_ok(sample);
	size_t len;
	const char *u;

	u = aclfile_user_at(af, 0, &len);
	ck_assert(len == 5 && memcmp(u, "alice", 5) == 0);
	u = aclfile_user_at(af, 1, &len);
	ck_assert(len == 9 && memcmp(u, "bob smith", 9) == 0);
	u = aclfile_user_at(af, 2, &len);
	ck_assert(len == 5 && memcmp(u, "carol", 5) == 0);
	ck_assert_ptr_null(aclfile_user_at(af, 3, &len));
	aclfile_free(af);
}
END_TEST

START_TEST(test_errors_name_file_and_line)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "topic read a\nuser\n", "acl:2: 'user' without a name" },
		{ "topic a\nfoo bar\n", "acl:2: unknown keyword 'foo' (expected topic, pattern or user)" },
		{ "# c\n\ntopic\n", "acl:3: 'topic' without a topic filter" },
		{ "topic read\n", "acl:1: no topic filter after 'read'" },
		{ "pattern deny  \n", "acl:1: no topic filter after 'deny'" },
		{ "topic read a/#/b\n", "acl:1: 'a/#/b' is not a valid topic filter" },
		{ "user u\ntopic write a+\n", "acl:2: 'a+' is not a valid topic filter" },
		{ "topic read devices/%c\n", "acl:1: %c and %u are substituted in 'pattern' lines only" },
		{ "pattern read x/%c#\n", "acl:1: 'x/%c#' is not a valid topic filter" },
		{ "topic read a\0b\n", "acl:1: NUL byte in the line" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		aclfile_t *af = (aclfile_t *)1;
		char err[256] = "";
		size_t len = strlen(cases[i].text);
		int rc;

		if (strstr(cases[i].want, "NUL"))
			len = 15;
		rc = aclfile_parse(cases[i].text, len, "acl", &af, err, sizeof(err));
		ck_assert_int_eq(rc, -EINVAL);
		ck_assert_ptr_null(af);
		ck_assert_msg(strcmp(err, cases[i].want) == 0, "case %zu: got '%s'", i, err);
	}
}
END_TEST

START_TEST(test_access_word_alone_is_not_a_topic_but_spaces_are)
{
	aclfile_t *af = parse_ok("topic my topic/x\ntopic readwrite read only/#\n");

	ck_assert(pub(af, "c", NULL, "my topic/x"));
	ck_assert(sub(af, "c", NULL, "read only/a"));
	aclfile_free(af);
}
END_TEST

START_TEST(test_digest_changes_with_rules)
{
	aclfile_t *a = parse_ok("topic read p\nuser u1\ntopic read a\nuser u2\ntopic read b\nuser u3\n");
	aclfile_t *b = parse_ok("# reordered users, same rules\ntopic read p\nuser u2\ntopic read b\nuser u1\n"
				"topic read a\n");
	aclfile_t *c = parse_ok("topic read q\nuser u1\ntopic write a\nuser u2\ntopic read b\n");

	ck_assert_uint_ne(aclfile_digest(a, "u1", 2), 0);
	ck_assert_uint_eq(aclfile_digest(a, "u1", 2), aclfile_digest(b, "u1", 2));
	ck_assert_uint_eq(aclfile_digest(a, "u2", 2), aclfile_digest(b, "u2", 2));
	/* an empty section is no section */
	ck_assert_uint_eq(aclfile_digest(a, "u3", 2), 0);
	ck_assert_uint_eq(aclfile_digest(a, "nobody", 6), 0);
	/* read -> write is a change; the anonymous rules have their own digest */
	ck_assert_uint_ne(aclfile_digest(a, "u1", 2), aclfile_digest(c, "u1", 2));
	ck_assert_uint_eq(aclfile_digest(a, "u2", 2), aclfile_digest(c, "u2", 2));
	ck_assert_uint_eq(aclfile_digest(a, NULL, 0), aclfile_digest(b, NULL, 0));
	ck_assert_uint_ne(aclfile_digest(a, NULL, 0), aclfile_digest(c, NULL, 0));
	aclfile_free(a);
	aclfile_free(b);
	aclfile_free(c);
}
END_TEST

START_TEST(test_rules_outlive_the_file)
{
	aclfile_t *af = parse_ok("user u\ntopic read a\n");
	acl_t *own = acl_ref(aclfile_user(af, "u", 1));

	aclfile_free(af);
	ck_assert(acl_can_subscribe(own, NULL, "c", 1, "u", 1, "a", 1));
	acl_unref(own);
}
END_TEST

START_TEST(test_load_missing_file_and_allocation_failures)
{
	aclfile_t *af;
	char err[256];

	ck_assert_int_eq(aclfile_load("/nonexistent/acl", &af, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "/nonexistent/acl: cannot read: No such file or directory");
	/* every allocation of a parse failing in turn: -ENOMEM, nothing leaked (ASan build) */
	for (long n = 1;; n++) {
		int rc;

		fake_fail_alloc_after(n);
		rc = aclfile_parse(sample, sizeof(sample) - 1, "acl", &af, err, sizeof(err));
		fake_fail_alloc_after(0);
		if (rc == 0) {
			aclfile_free(af);
			break;
		}
		ck_assert_int_eq(rc, -ENOMEM);
		ck_assert_ptr_null(af);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("aclfile");
	TCase *tc = tcase_create("aclfile");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_sections_and_patterns);
	tcase_add_test(tc, test_users_listed_in_order);
	tcase_add_test(tc, test_errors_name_file_and_line);
	tcase_add_test(tc, test_access_word_alone_is_not_a_topic_but_spaces_are);
	tcase_add_test(tc, test_digest_changes_with_rules);
	tcase_add_test(tc, test_rules_outlive_the_file);
	tcase_add_test(tc, test_load_missing_file_and_allocation_failures);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

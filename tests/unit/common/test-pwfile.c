/*
 * test-pwfile.c — password files as mosquitto_passwd writes them, checked without mosquitto's code:
 * pwfile-mosquitto.txt was written by the real mosquitto_passwd 2.0.11 ($7$ PBKDF2 and $6$ SHA-512 lines) and
 * libxcrypt (bcrypt lines), with the passwords its header lists; when /usr/bin/mosquitto_passwd is installed,
 * a file it writes now is checked too. Plus: what pwfile_hash writes, and the errors a bad file gets (file and
 * line named, so the worker can log them and keep its previous users).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pwfile.h"

static char fixture[4096];

static void setup(void)
{
	const char *src = getenv("RINGMQ_SRCDIR");

	snprintf(fixture, sizeof(fixture), "%s/tests/unit/common/pwfile-mosquitto.txt", src ? src : ".");
}

static pwfile_t *parse(const char *text, char *err, size_t errlen, int *rc)
{
	pwfile_t *pf = NULL;

	*rc = pwfile_parse(text, strlen(text), "pw", &pf, err, errlen);
	return pf;
}

static int check(const pwfile_t *pf, const char *user, const char *pw, size_t len)
{
	const char *h = pwfile_find(pf, user, strlen(user));

	ck_assert_msg(h != NULL, "user %s missing", user);
	return pwfile_verify(h, pw, len);
}

START_TEST(test_mosquitto_passwd_fixture_verifies)
{
	pwfile_t *pf;
	char err[512], longpw[201];
	int rc;

	rc = pwfile_load(fixture, &pf, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(pwfile_count(pf), 9);
	memset(longpw, 'x', 200);
	/* PBKDF2 ($7$), mosquitto 2.0's default */
	ck_assert_int_eq(check(pf, "alice", "secret", 6), 0);
	ck_assert_int_eq(check(pf, "alice", "secreT", 6), -EACCES);
	ck_assert_int_eq(check(pf, "alice", "secret", 5), -EACCES);
	ck_assert_int_eq(check(pf, "bob", "pä ss:w", strlen("pä ss:w")), 0);
	ck_assert_int_eq(check(pf, "dave", "", 0), 0);
	ck_assert_int_eq(check(pf, "dave", "x", 1), -EACCES);
	ck_assert_int_eq(check(pf, "émile ü", longpw, 200), 0);
	ck_assert_int_eq(check(pf, "émile ü", longpw, 199), -EACCES);
	/* SHA-512 ($6$), mosquitto 1.x: base64(sha512(password || salt)), not crypt(3) */
	ck_assert_int_eq(check(pf, "carol", "hunter2", 7), 0);
	ck_assert_int_eq(check(pf, "carol", "hunter3", 7), -EACCES);
	ck_assert_int_eq(check(pf, "frank", "sp ace", 6), 0);
	/* bcrypt through libcrypt */
	ck_assert_int_eq(check(pf, "gina", "correct horse", 13), 0);
	ck_assert_int_eq(check(pf, "gina", "correct horsE", 13), -EACCES);
	ck_assert_int_eq(check(pf, "hugo", "tr0ub4dor", 9), 0);
	ck_assert_int_eq(check(pf, "ines", "tr0ub4dor", 9), 0);
	/* A NUL byte ends a C string: the part before it must not pass for the password. */
	ck_assert_int_eq(check(pf, "ines", "tr0ub4dor\0junk", 14), -EACCES);
	pwfile_free(pf);
}
END_TEST

START_TEST(test_mosquitto_passwd_binary_verifies)
{
	const char *bin = "/usr/bin/mosquitto_passwd";
	char dir[] = "/tmp/test-pwfile-XXXXXX", path[128], err[512];
	const char *users[][3] = { { "sha512-pbkdf2", "u1", "Tr1cky pässword!" }, { "sha512", "u2", "o:t h$er" } };
	pwfile_t *pf;

	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "test-pwfile: %s not installed (Debian package mosquitto): live check skipped\n", bin);
		return;
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pw", dir);
	for (int i = 0; i < 2; i++) {
		pid_t pid = fork();
		int st;

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			if (i == 0)
				execl(bin, bin, "-H", users[i][0], "-c", "-b", path, users[i][1], users[i][2], (char *)NULL);
			else
				execl(bin, bin, "-H", users[i][0], "-b", path, users[i][1], users[i][2], (char *)NULL);
			_exit(127);
		}
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	ck_assert_msg(pwfile_load(path, &pf, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(check(pf, "u1", users[0][2], strlen(users[0][2])), 0);
	ck_assert_int_eq(check(pf, "u2", users[1][2], strlen(users[1][2])), 0);
	ck_assert_int_eq(check(pf, "u1", users[1][2], strlen(users[1][2])), -EACCES);
	ck_assert(strncmp(pwfile_find(pf, "u1", 2), "$7$", 3) == 0);
	ck_assert(strncmp(pwfile_find(pf, "u2", 2), "$6$", 3) == 0);
	pwfile_free(pf);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(test_hash_writes_a_mosquitto_7_line)
{
	char a[256], b[256], err[256];
	pwfile_t *pf;
	int n, rc;

	n = pwfile_hash("zoe", "pw", 2, 0, a, sizeof(a));
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq((size_t)n, strlen(a));
	/* "zoe:$7$20000$" + 16 characters of salt + "$" + 88 of hash */
	ck_assert(strncmp(a, "zoe:$7$20000$", 13) == 0);
	ck_assert_uint_eq(strlen(a), 13 + 16 + 1 + 88);
	pf = parse(a, err, sizeof(err), &rc);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_int_eq(check(pf, "zoe", "pw", 2), 0);
	ck_assert_int_eq(check(pf, "zoe", "pW", 2), -EACCES);
	pwfile_free(pf);
	/* a fresh salt each time */
	ck_assert_int_gt(pwfile_hash("zoe", "pw", 2, 0, b, sizeof(b)), 0);
	ck_assert_str_ne(a, b);
	ck_assert_int_gt(pwfile_hash("zoe", "pw", 2, 101, b, sizeof(b)), 0);
	ck_assert(strncmp(b, "zoe:$7$101$", 11) == 0);
	ck_assert_int_eq(pwfile_verify(b + 4, "pw", 2), 0);
}
END_TEST

START_TEST(test_hash_refuses_names_that_break_the_file)
{
	char out[256];

	ck_assert_int_eq(pwfile_hash("", "pw", 2, 0, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(pwfile_hash("a:b", "pw", 2, 0, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(pwfile_hash("a\nb:$7$...", "pw", 2, 0, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(pwfile_hash("a\r", "pw", 2, 0, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(pwfile_hash("a", "pw", 2, PWFILE_MAX_ITERATIONS + 1, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(pwfile_hash("a", "pw", 2, 0, out, 40), -ENOSPC);
}
END_TEST

START_TEST(test_parse_errors_name_the_line)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "# ok\nalice:secret\n", "pw:2: user 'alice': not a password hash" },
		{ "\n\nnocolon\n", "pw:3: not a \"user:hash\" line" },
		{ ":$7$101$da/ymTHuf5W8QCzN$" "JIQGSbyTiQSPeaPWo3r4CWnglTeghRQSqZlMubVdeDERJUF2giEvlcxwK23C/CjxP0b35X56jiwKMvMv0155ww==\n",
			"pw:1: not a \"user:hash\" line" },
		{ "a:$7$0$da/ymTHuf5W8QCzN$" "JIQGSbyTiQSPeaPWo3r4CWnglTeghRQSqZlMubVdeDERJUF2giEvlcxwK23C/CjxP0b35X56jiwKMvMv0155ww==\n",
			"pw:1: user 'a'" },
		{ "a:$7$5000001$da/ymTHuf5W8QCzN$" "JIQGSbyTiQSPeaPWo3r4CWnglTeghRQSqZlMubVdeDERJUF2giEvlcxwK23C/CjxP0b35X56jiwKMvMv0155ww==\n",
			"pw:1: user 'a'" },
		/* hash one byte short, bad base64, missing padding */
		{ "a:$7$101$da/ymTHuf5W8QCzN$" "JIQGSbyTiQSPeaPWo3r4CWnglTeghRQSqZlMubVdeDERJUF2giEvlcxwK23C/CjxP0b35X56jiwKMvMv015w\n",
			"pw:1: user 'a'" },
		{ "a:$7$101$da/ymTHuf5W8QCzN$" "JIQGSbyTiQSPeaPWo3r4CWnglTeghRQSqZlMubVdeDERJUF2giEvlcxwK23C/CjxP0b35X56jiwKMvMv0155w.==\n",
			"pw:1: user 'a'" },
		{ "a:$7$101$da/ymTHuf5W8QCzN$" "JIQGSbyTiQSPeaPWo3r4CWnglTeghRQSqZlMubVdeDERJUF2giEvlcxwK23C/CjxP0b35X56jiwKMvMv0155ww\n",
			"pw:1: user 'a'" },
		/* crypt(3)'s SHA-crypt shares the $6$ prefix, not the format (this one has no '.' that would give
		 * it away: 86 characters decode to 64 bytes, but unpadded) */
		{ "a:$6$c6tbE/L6lLXARYbL$" "WDS0jGlbrvg3enm7W9ALHVYQS0UFcy6XpTqTru/mZlzebsbxQBfTxAfKGAb2F3BtvhuIADWp/AiWdhEDCzMVe0\n",
			"pw:1: user 'a'" },
		{ "a:$2b$31$68lf/kP1dH.Ymzm36GpIAeuOLxNiGRmvfZBajx3KqZdKvFPNW9tXG\n", "pw:1: user 'a'" },
		{ "a:$2b$05$68lf/kP1dH.Ymzm36GpIAeuOLxNiGRmvfZBajx3KqZdKvFPNW9tX\n", "pw:1: user 'a'" },
		{ "a:$1$abc$def\n", "pw:1: user 'a'" },
		{ "b:$2b$05$68lf/kP1dH.Ymzm36GpIAeuOLxNiGRmvfZBajx3KqZdKvFPNW9tXG\n"
		  "a:$2b$05$68lf/kP1dH.Ymzm36GpIAeuOLxNiGRmvfZBajx3KqZdKvFPNW9tXG\n"
		  "b:$2b$05$68lf/kP1dH.Ymzm36GpIAeuOLxNiGRmvfZBajx3KqZdKvFPNW9tXG\n",
			"pw:3: user 'b' is already on line 1" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "";
		int rc;
		pwfile_t *pf = parse(cases[i].text, err, sizeof(err), &rc);

		ck_assert_ptr_null(pf);
		ck_assert_int_eq(rc, -EINVAL);
		ck_assert_msg(strstr(err, cases[i].want) == err, "case %zu: '%s' does not start with '%s'", i, err,
			cases[i].want);
	}
}
END_TEST

START_TEST(test_parse_accepts_crlf_comments_blank_lines)
{
	const char *text = "# users\r\n\r\n   \r\n"
			   "gina:$2b$05$68lf/kP1dH.Ymzm36GpIAeuOLxNiGRmvfZBajx3KqZdKvFPNW9tXG  \r\n"
			   "ab:$6$QDravhvoaN3wr2XY$Yieb14gaosNx/W2AS+sovkojKSmT3maxQHfoO69maKmHrYGYadIzynM9jINHFF1uRYeDnrZgVWmZfh/TkgfWMg==";
	const char *u, *h;
	size_t ulen;
	char err[256];
	int rc;
	pwfile_t *pf = parse(text, err, sizeof(err), &rc);

	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(pwfile_count(pf), 2);
	ck_assert_int_eq(check(pf, "gina", "correct horse", 13), 0);
	ck_assert_int_eq(check(pf, "ab", "hunter2", 7), 0);
	/* lookups are by exact bytes: no prefix, no longer name */
	ck_assert_ptr_null(pwfile_find(pf, "a", 1));
	ck_assert_ptr_null(pwfile_find(pf, "abc", 3));
	ck_assert_ptr_null(pwfile_find(pf, "gina", 3));
	ck_assert(pwfile_get(pf, 0, &u, &ulen, &h));
	ck_assert_str_eq(u, "ab");
	ck_assert(pwfile_get(pf, 1, &u, &ulen, &h));
	ck_assert_str_eq(u, "gina");
	ck_assert_uint_eq(ulen, 4);
	ck_assert(!pwfile_get(pf, 2, &u, &ulen, &h));
	pwfile_free(pf);
	pf = parse("", err, sizeof(err), &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(pwfile_count(pf), 0);
	ck_assert_ptr_null(pwfile_find(pf, "a", 1));
	pwfile_free(pf);
}
END_TEST

START_TEST(test_load_missing_file_says_why)
{
	pwfile_t *pf = (pwfile_t *)1;
	char err[256];

	ck_assert_int_eq(pwfile_load("/nonexistent/pw", &pf, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_null(pf);
	ck_assert_str_eq(err, "/nonexistent/pw: cannot read: No such file or directory");
	ck_assert_int_eq(pwfile_load("/", &pf, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_verify_refuses_unknown_formats)
{
	ck_assert_int_eq(pwfile_verify("secret", "secret", 6), -EINVAL);
	ck_assert_int_eq(pwfile_verify("", "", 0), -EINVAL);
	ck_assert_int_eq(pwfile_verify(NULL, "", 0), -EINVAL);
	ck_assert(!pwfile_hash_valid("$7$101$$"));
	ck_assert(!pwfile_hash_valid("$7$$da/ymTHuf5W8QCzN$x"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pwfile");
	TCase *tc = tcase_create("pwfile");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_mosquitto_passwd_fixture_verifies);
	tcase_add_test(tc, test_mosquitto_passwd_binary_verifies);
	tcase_add_test(tc, test_hash_writes_a_mosquitto_7_line);
	tcase_add_test(tc, test_hash_refuses_names_that_break_the_file);
	tcase_add_test(tc, test_parse_errors_name_the_line);
	tcase_add_test(tc, test_parse_accepts_crlf_comments_blank_lines);
	tcase_add_test(tc, test_load_missing_file_says_why);
	tcase_add_test(tc, test_verify_refuses_unknown_formats);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

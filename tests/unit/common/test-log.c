/*
 * test-log.c — line format, level filtering, journald prefix, truncation. stderr is redirected to a pipe so
 * the test also sees that each line arrives as one write.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int saved_stderr = -1;
static int pipe_rd = -1;

/* Runs in the forked test process (checked fixture): redirecting stderr cannot leak into other tests. */
static void
setup(void)
{
	int p[2];

	unsetenv("JOURNAL_STREAM");
	ck_assert_int_eq(pipe(p), 0);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	saved_stderr = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	pipe_rd = p[0];
}

static void
teardown(void)
{
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	close(pipe_rd);
}

/* Everything logged so far. */
static const char *
captured(void)
{
	static char buf[65536];
	ssize_t n, total = 0;

	while ((n = read(pipe_rd, buf + total, sizeof(buf) - 1 - (size_t)total)) > 0)
		total += n;
	buf[total] = '\0';
	return buf;
}

static void
assert_matches(const char *s, const char *re)
{
	regex_t r;

	ck_assert_int_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&r, s, 0, NULL, 0) == 0, "'%s' does not match /%s/", s, re);
	regfree(&r);
}

START_TEST(test_line_format_iso8601_ms_role_level)
{
	log_init(LOG_INFO);
	log_set_role("w3");
	log_info("listening on %s:%d", "0.0.0.0", 1883);
	assert_matches(captured(),
	               "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z w3 INFO "
	               "listening on 0\\.0\\.0\\.0:1883\n$");
}
END_TEST

START_TEST(test_errno_appended_as_strerror)
{
	log_init(LOG_INFO);
	log_set_role("sup");
	log_error(ENOENT, "open %s", "/x");
	assert_matches(captured(), " sup ERROR open /x: No such file or directory\n$");
}
END_TEST

START_TEST(test_level_filtering)
{
	log_init(LOG_WARN);
	log_info("hidden");
	log_debug("hidden");
	log_warn(0, "shown");
	assert_matches(captured(), "^[^\n]* WARN shown\n$");
}
END_TEST

START_TEST(test_arguments_not_evaluated_below_level)
{
	int calls = 0;

	log_init(LOG_INFO);
	log_debug("%d", ++calls);
	ck_assert_int_eq(calls, 0);
	log_info("%d", ++calls);
	ck_assert_int_eq(calls, 1);
	captured();
}
END_TEST

START_TEST(test_journal_stream_uses_syslog_priority)
{
	setenv("JOURNAL_STREAM", "x", 1);
	log_init(LOG_DEBUG);
	log_set_role("w0");
	log_error(0, "e");
	log_warn(0, "w");
	log_info("i");
	log_debug("d");
	ck_assert_str_eq(captured(), "<3>w0 ERROR e\n<4>w0 WARN w\n<6>w0 INFO i\n<7>w0 DEBUG d\n");
}
END_TEST

START_TEST(test_journal_stream_for_another_stream_is_ignored)
{
	/* An inherited JOURNAL_STREAM naming some other file must not switch format. */
	setenv("JOURNAL_STREAM", "1:1", 1);
	log_init(LOG_INFO);
	log_info("x");
	assert_matches(captured(), "^[0-9]{4}-.* INFO x\n$");
}
END_TEST

START_TEST(test_log_conn_prefixes_connection_id)
{
	log_init(LOG_INFO);
	log_set_role("w1");
	log_conn(LOG_INFO, 42ULL, 0, "CONNECT from %s", "dev1");
	log_conn(LOG_WARN, 43ULL, EPIPE, "send");
	assert_matches(captured(), " w1 INFO c42 CONNECT from dev1\n[^\n]* w1 WARN c43 send: Broken pipe\n$");
}
END_TEST

START_TEST(test_long_line_truncated_to_one_line)
{
	static char big[10000];
	const char *out;

	memset(big, 'a', sizeof(big) - 1);
	log_init(LOG_INFO);
	log_info("%s", big);
	out = captured();
	ck_assert_uint_le(strlen(out), 2048);
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	assert_matches(out, "aaa\\.\\.\\.\n$");
}
END_TEST

START_TEST(test_embedded_newline_cannot_forge_lines)
{
	const char *out;

	log_init(LOG_INFO);
	log_info("id=%s", "evil\n2024-01-01T00:00:00.000Z sup ERROR forged");
	out = captured();
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
}
END_TEST

START_TEST(test_errno_preserved)
{
	log_init(LOG_INFO);
	errno = EAGAIN;
	log_error(ENOMEM, "x");
	ck_assert_int_eq(errno, EAGAIN);
	captured();
}
END_TEST

START_TEST(test_level_parse)
{
	ck_assert_int_eq(log_level_parse("error"), LOG_ERR);
	ck_assert_int_eq(log_level_parse("warn"), LOG_WARN);
	ck_assert_int_eq(log_level_parse("warning"), LOG_WARN);
	ck_assert_int_eq(log_level_parse("INFO"), LOG_INFO);
	ck_assert_int_eq(log_level_parse("debug"), LOG_DEBUG);
	ck_assert_int_eq(log_level_parse("verbose"), -1);
	ck_assert_int_eq(log_level_parse(""), -1);
	ck_assert_int_eq(log_level_parse(NULL), -1);
}
END_TEST

START_TEST(test_role_truncated)
{
	log_init(LOG_INFO);
	log_set_role("a-very-long-role-name-indeed");
	log_info("x");
	assert_matches(captured(), " a-very-long-rol INFO x\n$");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_line_format_iso8601_ms_role_level);
	tcase_add_test(tc, test_errno_appended_as_strerror);
	tcase_add_test(tc, test_level_filtering);
	tcase_add_test(tc, test_arguments_not_evaluated_below_level);
	tcase_add_test(tc, test_journal_stream_uses_syslog_priority);
	tcase_add_test(tc, test_journal_stream_for_another_stream_is_ignored);
	tcase_add_test(tc, test_log_conn_prefixes_connection_id);
	tcase_add_test(tc, test_long_line_truncated_to_one_line);
	tcase_add_test(tc, test_embedded_newline_cannot_forge_lines);
	tcase_add_test(tc, test_errno_preserved);
	tcase_add_test(tc, test_level_parse);
	tcase_add_test(tc, test_role_truncated);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	/* The fixture redirects stderr; without fork the redirection and log state would leak between tests. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

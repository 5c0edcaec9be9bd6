/*
 * test-config.c — sources and their precedence (defaults < file < RINGMQ_* < --flags), argv compaction, and
 * the exact one-line error for each kind of bad input. Each test runs in its own forked process (Check's
 * default), so setenv/unsetenv do not leak between tests.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

extern char **environ;

static char tmp_path[64];

static void
setup(void)
{
	/* Drop any RINGMQ_* from the caller's environment: they would override what the tests expect. */
	for (;;) {
		char **e, name[128];

		for (e = environ; *e != NULL && strncmp(*e, "RINGMQ_", 7) != 0; e++)
			;
		if (*e == NULL)
			break;
		snprintf(name, sizeof(name), "%.*s", (int)(strchr(*e, '=') - *e), *e);
		unsetenv(name);
	}
	tmp_path[0] = '\0';
}

static void
teardown(void)
{
	if (tmp_path[0] != '\0')
		unlink(tmp_path);
}

/* Write a config file; its path is tmp_path. */
static const char *
write_file(const char *text)
{
	int fd;

	if (tmp_path[0] != '\0')
		unlink(tmp_path);
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/ringmq-test-XXXXXX");
	fd = mkstemp(tmp_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return tmp_path;
}

/* argv as main() gets it: NULL-terminated, modifiable. */
#define ARGV(...) char *argv[] = { "ringmqd", __VA_ARGS__, NULL }; int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1
#define ARGV0() char *argv[] = { "ringmqd", NULL }; int argc = 1

START_TEST(test_defaults_as_documented_in_config_h)
{
	config_t c;

	config_defaults(&c);
	ck_assert_str_eq(c.listen_host, "0.0.0.0");
	ck_assert_uint_eq(c.port, 1883);
	ck_assert_int_eq(c.workers, 0);
	ck_assert_str_eq(c.log_level, "info");
	ck_assert_uint_eq(c.max_connections, 100000);
	ck_assert_uint_eq(c.max_packet_size, 1048576);
	ck_assert_uint_eq(c.receive_maximum, 65535);
	ck_assert_uint_eq(c.max_inflight, 100);
	ck_assert_uint_eq(c.max_queued, 10000);
	ck_assert_uint_eq(c.max_keepalive, 65535);
	ck_assert_uint_eq(c.max_session_expiry, 4294967295U);
	ck_assert_uint_eq(c.topic_alias_maximum, 64);
	ck_assert_uint_eq(c.connect_timeout_ms, 10000);
	ck_assert_uint_eq(c.shutdown_timeout_ms, 5000);
	ck_assert_uint_eq(c.restart_backoff_ms, 100);
	ck_assert_uint_eq(c.buf_ring_entries, 128);
	ck_assert_uint_eq(c.buf_size, 4096);
	ck_assert_uint_eq(c.ring_entries, 4096);
}
END_TEST

START_TEST(test_control_socket_default_by_uid)
{
	config_t c;
	char want[108];

	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	config_defaults(&c);
	if (getuid() == 0) {
		ck_assert_str_eq(c.control_socket, "/run/ringmq/ringmq.sock");
		return;
	}
	ck_assert_str_eq(c.control_socket, "/run/user/1000/ringmq.sock");
	unsetenv("XDG_RUNTIME_DIR");
	config_defaults(&c);
	snprintf(want, sizeof(want), "/tmp/ringmq-%u.sock", (unsigned)getuid());
	ck_assert_str_eq(c.control_socket, want);
}
END_TEST

START_TEST(test_no_sources_gives_defaults)
{
	config_t c, d;
	char err[256];
	ARGV0();

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), 0);
	config_defaults(&d);
	ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
	ck_assert_int_eq(argc, 1);
}
END_TEST

START_TEST(test_precedence_file_env_argv)
{
	config_t c;
	char err[256];
	const char *path = write_file("port = 1000;\nworkers = 3;\nbuf_size = 8192;\nlisten_host = \"127.0.0.1\";\n");

	setenv("RINGMQ_CONFIG", path, 1);
	setenv("RINGMQ_PORT", "2000", 1);
	setenv("RINGMQ_WORKERS", "5", 1);
	{
		ARGV("--port=3000");

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), 0);
		ck_assert_uint_eq(c.port, 3000);        /* argv beats env and file */
		ck_assert_int_eq(c.workers, 5);         /* env beats file */
		ck_assert_uint_eq(c.buf_size, 8192);    /* file beats default */
		ck_assert_str_eq(c.listen_host, "127.0.0.1");
		ck_assert_uint_eq(c.ring_entries, 4096); /* default */
		ck_assert_int_eq(argc, 1);
	}
	unsetenv("RINGMQ_PORT");
	{
		ARGV0();

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), 0);
		ck_assert_uint_eq(c.port, 1000);
	}
}
END_TEST

START_TEST(test_config_flag_forms_and_beats_env_path)
{
	config_t c;
	char err[256];
	const char *path = write_file("port = 1111;\n");

	setenv("RINGMQ_CONFIG", "/nonexistent/ringmq.conf", 1);
	{
		ARGV("--config", (char *)path);

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), 0);
		ck_assert_uint_eq(c.port, 1111);
		ck_assert_int_eq(argc, 1);
	}
	{
		char flag[128];
		ARGV(flag);

		snprintf(flag, sizeof(flag), "--config=%s", path);
		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), 0);
		ck_assert_uint_eq(c.port, 1111);
		ck_assert_int_eq(argc, 1);
	}
}
END_TEST

START_TEST(test_flag_spellings_dash_underscore_separate_value)
{
	config_t c;
	char err[256];
	ARGV("--max-packet-size", "500", "--max_inflight=7", "--log-level=debug", "--control_socket", "/tmp/x.sock");

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.max_packet_size, 500);
	ck_assert_uint_eq(c.max_inflight, 7);
	ck_assert_str_eq(c.log_level, "debug");
	ck_assert_str_eq(c.control_socket, "/tmp/x.sock");
	ck_assert_int_eq(argc, 1);
	ck_assert_ptr_null(argv[1]);
}
END_TEST

START_TEST(test_unknown_flags_left_in_argv)
{
	config_t c;
	char err[256];
	ARGV("--foreground", "--port", "1884", "extra", "--help", "--", "--port=1");

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.port, 1884);  /* "--port=1" after "--" is not ours */
	ck_assert_int_eq(argc, 6);
	ck_assert_str_eq(argv[0], "ringmqd");
	ck_assert_str_eq(argv[1], "--foreground");
	ck_assert_str_eq(argv[2], "extra");
	ck_assert_str_eq(argv[3], "--help");
	ck_assert_str_eq(argv[4], "--");
	ck_assert_str_eq(argv[5], "--port=1");
	ck_assert_ptr_null(argv[6]);
}
END_TEST

START_TEST(test_file_types_strings_and_int64)
{
	config_t c;
	char err[256];
	const char *path = write_file("# comment\nlog_level = \"warn\";\nmax_session_expiry = 4294967295;\n"
	                              "max_connections = \"0\";\n");
	ARGV("--config", (char *)path);

	ck_assert_msg(config_load(&c, &argc, argv, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.log_level, "warn");
	ck_assert_uint_eq(c.max_session_expiry, 4294967295U);
	ck_assert_uint_eq(c.max_connections, 0);
}
END_TEST

START_TEST(test_file_large_integers_not_wrapped)
{
	config_t c;
	char err[256], want[256];
	/* libconfig 1.5 wraps these to 32 bits; we must see the real numbers. */
	const char *path = write_file("max_session_expiry = 3000000000;\nport = 0x10;\nmax_connections : 4294967296 ;\n");
	ARGV("--config", (char *)path);

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "config: max_connections: '4294967296' is out of range 0..4294967295 (from %s:3)",
	         path);
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(c.max_session_expiry, 3000000000U);
	ck_assert_uint_eq(c.port, 16);
}
END_TEST

START_TEST(test_error_out_of_range_from_flag)
{
	config_t c;
	char err[256];
	ARGV("--max-packet-size=1");

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: max_packet_size: '1' is out of range 2..268435460 (from --max-packet-size)");
}
END_TEST

START_TEST(test_error_not_a_number_from_env)
{
	config_t c;
	char err[256];
	ARGV0();

	setenv("RINGMQ_PORT", "abc", 1);
	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: port: 'abc' is not a number (from RINGMQ_PORT)");
	setenv("RINGMQ_PORT", "12x", 1);
	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: port: '12x' is not a number (from RINGMQ_PORT)");
	setenv("RINGMQ_PORT", "", 1);
	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: port: '' is not a number (from RINGMQ_PORT)");
}
END_TEST

START_TEST(test_error_negative_and_overflow_are_out_of_range)
{
	config_t c;
	char err[256];

	{
		ARGV("--port=-1");

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
		ck_assert_str_eq(err, "config: port: '-1' is out of range 0..65535 (from --port)");
	}
	{
		ARGV("--max-queued=99999999999999999999999");

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
		ck_assert_str_eq(err, "config: max_queued: '99999999999999999999999' is out of range 0..4294967295 "
		                 "(from --max-queued)");
	}
}
END_TEST

START_TEST(test_error_buf_ring_entries_power_of_two)
{
	config_t c;
	char err[256];
	ARGV("--buf-ring-entries", "1000");

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: buf_ring_entries: '1000' is not a power of two (from --buf-ring-entries)");
}
END_TEST

/* Fewer than 16 receive buffers would end the multishot recvs of a busy worker all the time; more than 32768
 * is past what a provided-buffer ring registers. Both are refused with the range, not silently clamped. */
START_TEST(test_error_buf_ring_entries_range)
{
	config_t c;
	char err[256];

	{
		ARGV("--buf-ring-entries", "8");

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
		ck_assert_str_eq(err, "config: buf_ring_entries: '8' is out of range 16..32768 (from --buf-ring-entries)");
	}
	{
		ARGV("--buf-ring-entries", "65536");

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
		ck_assert_str_eq(err, "config: buf_ring_entries: '65536' is out of range 16..32768 "
		                 "(from --buf-ring-entries)");
	}
	{
		ARGV("--buf-ring-entries", "16");

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), 0);
		ck_assert_uint_eq(c.buf_ring_entries, 16);
	}
}
END_TEST

START_TEST(test_error_bad_log_level)
{
	config_t c;
	char err[256];
	ARGV("--log-level=loud");

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: log_level: 'loud' is not one of error, warn, info, debug (from --log-level)");
}
END_TEST

START_TEST(test_error_string_too_long)
{
	config_t c;
	char err[512], host[100];
	ARGV(host);

	snprintf(host, sizeof(host), "--listen-host=%070d", 0);
	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "config: listen_host: '000"));
	ck_assert_ptr_nonnull(strstr(err, "' is too long (at most 63 bytes) (from --listen-host)"));
}
END_TEST

START_TEST(test_error_missing_flag_value)
{
	config_t c;
	char err[256];
	ARGV("--port");

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: port: missing value (from --port)");
}
END_TEST

START_TEST(test_error_file_syntax_with_line)
{
	config_t c;
	char err[256], want[256];
	const char *path = write_file("port = 1883;\nworkers = 2;\nthis is not valid\n");
	ARGV("--config", (char *)path);

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "config: %s:3: syntax error", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_error_file_unknown_key_suggests)
{
	config_t c;
	char err[256], want[256];
	const char *path = write_file("prot = 1883;\n");
	ARGV("--config", (char *)path);

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "config: unknown key 'prot' in %s (did you mean 'port'?)", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_error_file_unknown_key_without_suggestion)
{
	config_t c;
	char err[256], want[256];
	const char *path = write_file("zzzzzzzz = 1;\n");
	ARGV("--config", (char *)path);

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "config: unknown key 'zzzzzzzz' in %s", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_error_file_value_names_file_and_line)
{
	config_t c;
	char err[256], want[256];
	const char *path = write_file("port = 1883;\n\nreceive_maximum = 0;\n");
	ARGV("--config", (char *)path);

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "config: receive_maximum: '0' is out of range 1..65535 (from %s:3)", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_error_file_wrong_type)
{
	config_t c;
	char err[256], want[256];

	{
		const char *path = write_file("listen_host = 5;\n");
		ARGV("--config", (char *)path);

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "config: listen_host: expected a string (from %s:1)", path);
		ck_assert_str_eq(err, want);
	}
	{
		const char *p2 = write_file("port = 1.5;\n");
		ARGV("--config", (char *)p2);

		ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "config: port: expected an integer (from %s:1)", p2);
		ck_assert_str_eq(err, want);
	}
}
END_TEST

START_TEST(test_error_file_cannot_open)
{
	config_t c;
	char err[256];
	ARGV("--config=/nonexistent/ringmq.conf");

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: /nonexistent/ringmq.conf: No such file or directory");
}
END_TEST

START_TEST(test_error_env_config_cannot_open)
{
	config_t c;
	char err[256];
	ARGV0();

	setenv("RINGMQ_CONFIG", "/nonexistent/env.conf", 1);
	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: /nonexistent/env.conf: No such file or directory");
}
END_TEST

START_TEST(test_error_truncated_to_errlen)
{
	config_t c;
	char err[16];
	ARGV("--max-packet-size=1");

	ck_assert_int_eq(config_load(&c, &argc, argv, err, sizeof(err)), -1);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
}
END_TEST

/* config_load_text: the file path's parser, from memory, on top of what *cfg already holds. */
START_TEST(test_load_text_from_memory)
{
	config_t cfg;
	char err[256];

	config_defaults(&cfg);
	cfg.port = 7;
	ck_assert_int_eq(config_load_text(&cfg, "workers = 3;\nmax_connections = 4294967295;\n", "mem", err,
		sizeof(err)), 0);
	ck_assert_int_eq(cfg.workers, 3);
	ck_assert_uint_eq(cfg.max_connections, 4294967295u);
	ck_assert_uint_eq(cfg.port, 7);
	ck_assert_int_eq(config_load_text(&cfg, "\nport = 70000;", "mem", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: port: '70000' is out of range 0..65535 (from mem:2)");
	ck_assert_int_eq(config_load_text(&cfg, "port = ", "mem", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "config: mem:1: "));
	ck_assert_int_eq(config_load_text(&cfg, "", "mem", err, sizeof(err)), 0);
}
END_TEST

/* Found by fuzz-config: a value with a newline made the "one line" error two lines. */
START_TEST(test_error_stays_one_line)
{
	char *argv[] = { "ringmqd", "--port", "12\n34\t", NULL };
	int argc = 3;
	config_t cfg;
	char err[256];

	ck_assert_int_eq(config_load(&cfg, &argc, argv, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: port: '12?34?' is not a number (from --port)");
	config_defaults(&cfg);
	ck_assert_int_eq(config_load_text(&cfg, "store = \"a\\nb\";", "x\ny.conf", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: store: 'a?b' is not one of memory, redis (from x?y.conf:1)");
}
END_TEST

START_TEST(test_print_help_lists_every_key_with_current_value)
{
	config_t c;
	char *out = NULL;
	size_t len = 0;
	FILE *fp;

	config_defaults(&c);
	c.port = 1999;
	fp = open_memstream(&out, &len);
	ck_assert_ptr_nonnull(fp);
	config_print_help(&c, fp);
	fclose(fp);
	ck_assert_ptr_nonnull(strstr(out, "  --port=VALUE "));
	ck_assert_ptr_nonnull(strstr(out, "(default: 1999)\n"));
	ck_assert_ptr_nonnull(strstr(out, "  --max-packet-size=VALUE "));
	ck_assert_ptr_nonnull(strstr(out, "(default: 1048576)\n"));
	ck_assert_ptr_nonnull(strstr(out, "  --listen-host=VALUE "));
	ck_assert_ptr_nonnull(strstr(out, "(default: 0.0.0.0)\n"));
	ck_assert_ptr_nonnull(strstr(out, "  --ring-entries=VALUE "));
	ck_assert_ptr_nonnull(strstr(out, "  --config=PATH "));
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults_as_documented_in_config_h);
	tcase_add_test(tc, test_control_socket_default_by_uid);
	tcase_add_test(tc, test_no_sources_gives_defaults);
	tcase_add_test(tc, test_precedence_file_env_argv);
	tcase_add_test(tc, test_config_flag_forms_and_beats_env_path);
	tcase_add_test(tc, test_flag_spellings_dash_underscore_separate_value);
	tcase_add_test(tc, test_unknown_flags_left_in_argv);
	tcase_add_test(tc, test_file_types_strings_and_int64);
	tcase_add_test(tc, test_file_large_integers_not_wrapped);
	tcase_add_test(tc, test_load_text_from_memory);
	tcase_add_test(tc, test_error_stays_one_line);
	tcase_add_test(tc, test_error_out_of_range_from_flag);
	tcase_add_test(tc, test_error_not_a_number_from_env);
	tcase_add_test(tc, test_error_negative_and_overflow_are_out_of_range);
	tcase_add_test(tc, test_error_buf_ring_entries_power_of_two);
	tcase_add_test(tc, test_error_buf_ring_entries_range);
	tcase_add_test(tc, test_error_bad_log_level);
	tcase_add_test(tc, test_error_string_too_long);
	tcase_add_test(tc, test_error_missing_flag_value);
	tcase_add_test(tc, test_error_file_syntax_with_line);
	tcase_add_test(tc, test_error_file_unknown_key_suggests);
	tcase_add_test(tc, test_error_file_unknown_key_without_suggestion);
	tcase_add_test(tc, test_error_file_value_names_file_and_line);
	tcase_add_test(tc, test_error_file_wrong_type);
	tcase_add_test(tc, test_error_file_cannot_open);
	tcase_add_test(tc, test_error_env_config_cannot_open);
	tcase_add_test(tc, test_error_truncated_to_errlen);
	tcase_add_test(tc, test_print_help_lists_every_key_with_current_value);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

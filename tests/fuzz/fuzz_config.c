/*
 * fuzz_config.c — common/config.c under libFuzzer: the config file parser (libconfig plus our own literal
 * reading and range checks) and the command-line flag path, which shares the value parser with the
 * environment.
 *
 * Input: one selector byte, then the rest. Selector bit 0 clear: the rest is a config file's text, given to
 * config_load_text(). Set: the rest is an argument list, NUL-separated, given to config_load() as argv[1..]
 * (any --config flag is dropped: it would open files). Inputs holding libconfig's "@include" are skipped for the
 * same reason.
 *
 * The oracle: the result is 0 or -1 with one "config: ..." line; on success every value is within its key's
 * range (as config.h documents them), every string field is terminated inside its buffer, and loading the same
 * input again gives the same configuration; config_load() hands back only arguments it was given, in order.
 */
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"

#define MAX_ARGS 64

/*
 * libconfig 1.5 (Debian bookworm) leaks the string token it has just scanned when the parser then fails on it
 * ('a"x";' or 'x"y' + newline + '"': 64 bytes, from strbuf_append). That is libconfig's, not ours, and harmless
 * to the broker (a bad config file ends start-up); leaks whose stack is inside libconfig are not reported, ours
 * still are. Read by LeakSanitizer at exit, in the libFuzzer binary and in the ASan replay alike.
 */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

extern char **environ;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* A RINGMQ_* variable in the fuzzer's environment would override what the input says. */
	for (;;) {
		char **e, name[128];

		for (e = environ; *e != NULL && strncmp(*e, "RINGMQ_", 7) != 0; e++)
			;
		if (*e == NULL)
			break;
		snprintf(name, sizeof(name), "%.*s", (int)(strchr(*e, '=') - *e), *e);
		unsetenv(name);
	}
	(void)argc;
	(void)argv;
	return 0;
}

static void
check_terminated(const char *s, size_t size)
{
	FUZZ_CHECK(memchr(s, '\0', size) != NULL);
}

/* What a successful load guarantees (the ranges of config.c's key table). */
static void
check_config(const config_t *c)
{
	check_terminated(c->listen_host, sizeof(c->listen_host));
	check_terminated(c->control_socket, sizeof(c->control_socket));
	check_terminated(c->log_level, sizeof(c->log_level));
	check_terminated(c->store, sizeof(c->store));
	check_terminated(c->redis_addrs, sizeof(c->redis_addrs));
	check_terminated(c->redis_user, sizeof(c->redis_user));
	check_terminated(c->redis_password, sizeof(c->redis_password));
	FUZZ_CHECK(c->workers >= 0 && c->workers <= 1024);
	FUZZ_CHECK(c->max_packet_size >= 2 && c->max_packet_size <= 268435460);
	FUZZ_CHECK(c->receive_maximum >= 1 && c->max_inflight >= 1);
	FUZZ_CHECK(c->connect_timeout_ms >= 1 && c->connect_timeout_ms <= 3600000);
	FUZZ_CHECK(c->shutdown_timeout_ms <= 3600000);
	FUZZ_CHECK(c->restart_backoff_ms >= 1 && c->restart_backoff_ms <= 60000);
	FUZZ_CHECK(c->buf_ring_entries >= 16 && c->buf_ring_entries <= 32768);
	FUZZ_CHECK((c->buf_ring_entries & (c->buf_ring_entries - 1)) == 0);
	FUZZ_CHECK(c->buf_size >= 64 && c->buf_size <= 16777216);
	FUZZ_CHECK(c->ring_entries >= 1 && c->ring_entries <= 32768);
	FUZZ_CHECK(strcmp(c->store, "memory") == 0 || strcmp(c->store, "redis") == 0);
	/* any spelling the logger takes ("warning", "DEBUG"): it parses the field again at start-up */
	FUZZ_CHECK(log_level_parse(c->log_level) >= 0);
	FUZZ_CHECK(c->redis_db >= 0 && c->redis_db <= 65535);
	FUZZ_CHECK(c->redis_timeout_ms >= 10 && c->redis_timeout_ms <= 600000);
	FUZZ_CHECK(c->redis_buckets >= 1 && c->redis_buckets <= 16384);
	FUZZ_CHECK(c->redis_batching <= 1);
	FUZZ_CHECK(c->redis_max_pending >= 1 && c->redis_max_pending <= 100000000);
	FUZZ_CHECK(c->message_ttl >= 1);
}

static void
check_err(int rc, const char *err)
{
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc < 0)
		FUZZ_CHECK(strncmp(err, "config: ", 8) == 0 && strchr(err, '\n') == NULL);
}

static void
fuzz_text(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[512], err2[512];
	config_t a, b;
	int rc, rc2;

	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	/* memset first: config_defaults() leaves padding alone, and the structs are compared whole below */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	config_defaults(&a);
	config_defaults(&b);
	rc = config_load_text(&a, text, "fuzz.conf", err, sizeof(err));
	check_err(rc, err);
	rc2 = config_load_text(&b, text, "fuzz.conf", err2, sizeof(err2));
	FUZZ_CHECK(rc == rc2);
	if (rc == 0) {
		check_config(&a);
		FUZZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	} else {
		FUZZ_CHECK(strcmp(err, err2) == 0);
	}
	free(text);
}

static void
fuzz_args(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *given[MAX_ARGS + 2], *argv[MAX_ARGS + 2], err[512];
	size_t off = 0;
	int argc = 1, n, i, j;
	config_t c;

	FUZZ_CHECK(buf != NULL);
	memcpy(buf, data, size);
	buf[size] = '\0';
	given[0] = "ringmqd";
	while (off <= size && argc <= MAX_ARGS) {
		char *a = buf + off;

		off += strlen(a) + 1;
		if (strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '='))
			continue;
		given[argc++] = a;
	}
	given[argc] = NULL;
	memcpy(argv, given, sizeof(given));
	n = argc;
	memset(&c, 0, sizeof(c));
	i = config_load(&c, &n, argv, err, sizeof(err));
	check_err(i, err);
	if (i == 0) {
		check_config(&c);
		/* what is left is a subsequence of what was given, argv[0] first, NULL-terminated */
		FUZZ_CHECK(n >= 1 && n <= argc && argv[n] == NULL && argv[0] == given[0]);
		for (i = 1, j = 1; i < n; i++) {
			while (j < argc && given[j] != argv[i])
				j++;
			FUZZ_CHECK(j < argc);
			j++;
		}
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* "@include" makes libconfig open the file it names: not something to let a fuzzer pick */
	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	if (data[0] & 1)
		fuzz_args(data + 1, size - 1);
	else
		fuzz_text(data + 1, size - 1);
	return 0;
}

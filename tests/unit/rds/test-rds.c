/*
 * test-rds.c — the worker's Redis client (worker/rds.c) against real redis-server processes.
 *
 * Each test builds a minimal worker (a wk_t with default config and its own io_uring) and drives the loop a
 * turn at a time (loop_turn: flush hooks, submit-and-wait, completions to their handlers).
 * Servers are forked from the test process with PR_SET_PDEATHSIG, killed at the end of each test and by an
 * atexit handler, so a failing or crashing test leaves no redis-server behind. Skipped (77) without
 * redis-server/redis-cli in PATH.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "rds.h"
#include "slot.h"
#include "worker.h"

/* ---- redis-server processes ---- */

typedef struct server {
	bool used;
	pid_t pid;
	int port;
	char dir[PATH_MAX];
} server_t;

#define MAX_SERVERS 8
/* Static storage: the teardown (and atexit) must still find them after the test function returned. */
static server_t pool[MAX_SERVERS];

static server_t *srv_new(void)
{
	for (int i = 0; i < MAX_SERVERS; i++)
		if (!pool[i].used) {
			memset(&pool[i], 0, sizeof(pool[i]));
			pool[i].used = true;
			return &pool[i];
		}
	ck_abort_msg("too many servers");
	return NULL;
}

static bool port_free(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, ok;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)port);
	ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* A port p with p and p + 10000 (the cluster bus) free. */
static int pick_port(void)
{
	static unsigned seed;

	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (int i = 0; i < 1000; i++) {
		int p = 20000 + (int)(rand_r(&seed) % 25000);

		if (port_free(p) && port_free(p + 10000))
			return p;
	}
	ck_abort_msg("no free port");
	return -1;
}

static bool port_open(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	sa.sin_port = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Start redis-server on s->port (kept across restarts) in s->dir, with extra arguments (NULL-terminated). */
static void server_start_v(server_t *s, const char **extra)
{
	const char *argv[64];
	char port[16];
	int argc = 0;

	if (!s->dir[0]) {
		snprintf(s->dir, sizeof(s->dir), "/tmp/ringmq-rds-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(s->dir));
	}
	if (!s->port)
		s->port = pick_port();
	snprintf(port, sizeof(port), "%d", s->port);
	argv[argc++] = "redis-server";
	argv[argc++] = "--port";
	argv[argc++] = port;
	argv[argc++] = "--bind";
	argv[argc++] = "127.0.0.1";
	argv[argc++] = "--save";
	argv[argc++] = "";
	argv[argc++] = "--appendonly";
	argv[argc++] = "no";
	argv[argc++] = "--logfile";
	argv[argc++] = "redis.log";
	for (int i = 0; extra && extra[i] && argc < 62; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (chdir(s->dir) < 0)
			_exit(127);
		dup2(devnull, 0);
		dup2(devnull, 1);
		execvp("redis-server", (char **)argv);
		_exit(127);
	}
	for (int i = 0; i < 500 && !port_open(s->port); i++)
		sleep_ms(10);
	ck_assert_msg(port_open(s->port), "redis-server on port %d did not start (see %s/redis.log)", s->port,
		s->dir);
}

#define server_start(s, ...) do { const char *ex_[] = { __VA_ARGS__ }; server_start_v((s), ex_); } while (0)

/* Kill (SIGKILL: a crash, as far as clients can tell) and reap; the directory stays for a restart. */
static void server_kill(server_t *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

static void server_stop(server_t *s)
{
	char cmd[PATH_MAX + 16];

	server_kill(s);
	if (s->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", s->dir);
		s->dir[0] = 0;
	}
	s->port = 0;
	s->used = false;
}

static void stop_all_servers(void)
{
	for (int i = 0; i < MAX_SERVERS; i++)
		if (pool[i].used)
			server_stop(&pool[i]);
}

/* Run redis-cli with printf-formatted arguments; returns its stdout (static buffer). */
static const char *cli(const char *fmt, ...)
{
	static char out[65536];
	char cmd[4096];
	va_list ap;
	size_t n;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	pclose(f);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = 0;
	return out;
}

/* ---- a minimal worker and its loop ---- */

static wk_t wk;
static config_t wcfg;

static void worker_setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	config_defaults(&wcfg);
	wcfg.ring_entries = 256;
	wcfg.buf_ring_entries = 16;
	wcfg.buf_size = 4096;
	memset(&wk, 0, sizeof(wk));
	wk.cfg = &wcfg;
	W = &wk;
	ck_assert_int_eq(loop_init(&(loop_config_t){ .sq_entries = wcfg.ring_entries,
		.buf_count = wcfg.buf_ring_entries, .buf_size = wcfg.buf_size, .tick_ms = 250 }), 0);
}

static void worker_teardown(void)
{
	rds_finish();
	loop_finish();
	stop_all_servers();
}

/* One loop turn: flush, submit and wait (at most 20 ms), dispatch the completions. */
static void turn(void)
{
	loop_turn(20);
}

static bool pump_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
	uint64_t end = loop_clock_ms() + (uint64_t)timeout_ms;

	while (!cond(arg)) {
		if (loop_clock_ms() > end)
			return false;
		turn();
	}
	return true;
}

static void pump_for(int ms)
{
	uint64_t end = loop_clock_ms() + (uint64_t)ms;

	while (loop_clock_ms() < end)
		turn();
}

static bool is_ready(void *arg)
{
	(void)arg;
	return rds_ready();
}

static bool none_pending(void *arg)
{
	(void)arg;
	return rds_pending() == 0;
}

static void init_client(const char *addrs, const char *user, const char *password, int db, enum rds_mode mode)
{
	rds_config_t c = { .addrs = addrs, .user = user, .password = password, .db = db, .mode = mode };

	ck_assert_int_eq(rds_init(&c), 0);
}

/* ---- one command, synchronously ---- */

typedef struct res {
	bool done;
	int err;
	int type;
	long long integer;
	size_t elements;
	char str[512];
} res_t;

static void res_cb(void *ctx, const struct redisReply *r, int err)
{
	res_t *res = ctx;

	ck_assert_msg(!res->done, "callback called twice");
	res->done = true;
	res->err = err;
	ck_assert(err ? r == NULL : r != NULL);
	if (!r)
		return;
	res->type = r->type;
	res->integer = r->integer;
	res->elements = r->elements;
	if (r->str)
		snprintf(res->str, sizeof(res->str), "%.*s", (int)r->len, r->str);
}

static bool res_done(void *arg)
{
	return ((res_t *)arg)->done;
}

/* Issue argv (NULL-terminated) routed by the slot of argv[key_arg] (or slot 0), wait for the outcome. */
static res_t run(int key_arg, const char *a0, ...)
{
	const char *argv[32];
	int argc = 0;
	res_t r;
	va_list ap;

	memset(&r, 0, sizeof(r));
	argv[argc++] = a0;
	va_start(ap, a0);
	while (argc < 31 && (argv[argc] = va_arg(ap, const char *)))
		argc++;
	va_end(ap);
	ck_assert_int_eq(rds_command(key_arg > 0 ? rds_key_slot(argv[key_arg], strlen(argv[key_arg])) : 0, argc,
		argv, NULL, res_cb, &r), 0);
	ck_assert_msg(pump_until(res_done, &r, 10000), "no reply to %s", a0);
	return r;
}

#define ck_assert_reply_str(r, s) do { res_t r_ = (r); ck_assert_int_eq(r_.err, 0); \
	ck_assert_msg(!strcmp(r_.str, (s)), "reply '%s' (type %d), expected '%s'", r_.str, r_.type, (s)); } while (0)

/* ---- tests ---- */

START_TEST(test_key_slot_hash_tags)
{
#define KS(k) rds_key_slot(k, sizeof(k) - 1)
	ck_assert_uint_eq(KS("foo"), 12182);
	ck_assert_uint_eq(KS("{user1000}.following"), KS("user1000"));
	ck_assert_uint_eq(KS("{user1000}.followers"), KS("user1000"));
	ck_assert_uint_eq(KS("foo{}{bar}"), slot_crc16("foo{}{bar}", 10) % SLOT_COUNT);  /* empty tag: whole key */
	ck_assert_uint_eq(KS("foo{{bar}}zap"), KS("{bar"));                              /* up to the first '}' */
	ck_assert_uint_eq(KS("foo{bar}{zap}"), KS("bar"));                               /* first tag only */
	ck_assert_uint_eq(KS("{"), slot_crc16("{", 1) % SLOT_COUNT);
#undef KS
}
END_TEST

/* Pipelined SET then GET of 10,000 keys: every callback once, in command order, with the right value. */
static int seq_next, seq_bad;

static void seq_cb(void *ctx, const struct redisReply *r, int err)
{
	int i = (int)(intptr_t)ctx;
	char want[32];

	if (i != seq_next++ || err || !r)
		seq_bad++;
	else if (i < 10000 && (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK")))
		seq_bad++;
	else if (i >= 10000) {
		snprintf(want, sizeof(want), "v%d", i - 10000);
		if (r->type != REDIS_REPLY_STRING || strcmp(r->str, want))
			seq_bad++;
	}
}

START_TEST(test_pipeline_10000_in_order)
{
	server_t *s = srv_new();
	char key[32], val[32];

	server_start(s, NULL);
	snprintf(key, sizeof(key), "127.0.0.1:%d", s->port);
	init_client(key, NULL, NULL, 0, RDS_AUTO);
	ck_assert(pump_until(is_ready, NULL, 5000));
	seq_next = seq_bad = 0;
	for (int i = 0; i < 20000; i++) {
		const char *argv[3];
		int k = i % 10000;

		snprintf(key, sizeof(key), "key:%d", k);
		snprintf(val, sizeof(val), "v%d", k);
		argv[0] = i < 10000 ? "SET" : "GET";
		argv[1] = key;
		argv[2] = val;
		ck_assert_int_eq(rds_command(rds_key_slot(key, strlen(key)), i < 10000 ? 3 : 2, argv, NULL, seq_cb,
			(void *)(intptr_t)i), 0);
	}
	ck_assert_uint_eq(rds_pending(), 20000);
	ck_assert(pump_until(none_pending, NULL, 20000));
	ck_assert_int_eq(seq_next, 20000);
	ck_assert_int_eq(seq_bad, 0);
	ck_assert_str_eq(cli("redis-cli -p %d dbsize", s->port), "10000");
}
END_TEST

static const char LIB1[] = "#!lua name=rtest\n"
	"redis.register_function('rt_echo', function(keys, args) return args[1] end)\n"
	"redis.register_function('rt_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)\n";
static const char LIB2[] = "#!lua name=rtest2\n"
	"redis.register_function('rt_two', function(keys, args) return 2 end)\n";

/* FUNCTION LOAD in the handshake, FCALL; FUNCTION FLUSH behind our back: reload and retry transparently. */
START_TEST(test_function_load_fcall_and_reload)
{
	server_t *s = srv_new();
	char addr[32];
	res_t r[3];

	server_start(s, NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
	init_client(addr, NULL, NULL, 0, RDS_STANDALONE);
	ck_assert_int_eq(rds_function_register(LIB1, sizeof(LIB1) - 1), 0);   /* before connect: handshake */
	ck_assert(pump_until(is_ready, NULL, 5000));
	ck_assert_reply_str(run(0, "FCALL", "rt_echo", "0", "hello", NULL), "hello");
	ck_assert_reply_str(run(3, "FCALL", "rt_set", "1", "fk", "fv", NULL), "OK");
	ck_assert_reply_str(run(1, "GET", "fk", NULL), "fv");

	ck_assert_int_eq(rds_function_register(LIB2, sizeof(LIB2) - 1), 0);   /* while up: sent at once */
	ck_assert_int_eq(run(0, "FCALL", "rt_two", "0", NULL).integer, 2);

	ck_assert_str_eq(cli("redis-cli -p %d function flush", s->port), "OK");
	ck_assert_str_eq(cli("redis-cli -p %d function list", s->port), "");
	/* Three pipelined FCALLs all hit "Function not found": one reload, three transparent retries. */
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 3; i++) {
		const char *argv[] = { "FCALL", "rt_echo", "0", i == 0 ? "a" : i == 1 ? "b" : "c" };

		ck_assert_int_eq(rds_command(0, 4, argv, NULL, res_cb, &r[i]), 0);
	}
	ck_assert(pump_until(none_pending, NULL, 5000));
	ck_assert_reply_str(r[0], "a");
	ck_assert_reply_str(r[1], "b");
	ck_assert_reply_str(r[2], "c");
	ck_assert_ptr_nonnull(strstr(cli("redis-cli -p %d function list", s->port), "rtest2"));
	/* A function that does not exist anywhere: retried once, then the error reaches the caller. */
	{
		res_t e = run(0, "FCALL", "no_such_fn", "0", NULL);

		ck_assert_int_eq(e.err, 0);
		ck_assert_int_eq(e.type, REDIS_REPLY_ERROR);
		ck_assert_ptr_nonnull(strstr(e.str, "Function not found"));
	}
	ck_assert_uint_eq(rds_pending(), 0);
}
END_TEST

static int cancelled;

static void cancel_cb(void *ctx, const struct redisReply *r, int err)
{
	(void)ctx;
	(void)r;
	if (err == -ECANCELED)
		cancelled++;
}

/* AUTH with requirepass, a wrong password (not ready, commands wait), ACL users, SELECT. */
START_TEST(test_auth_acl_select)
{
	server_t *s = srv_new();
	char addr[32];
	const char *ping[] = { "PING" };

	server_start(s, "--requirepass", "s3cret", NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);

	init_client(addr, NULL, "wrong", 0, RDS_STANDALONE);
	ck_assert(!pump_until(is_ready, NULL, 700));
	cancelled = 0;
	ck_assert_int_eq(rds_command(0, 1, ping, NULL, cancel_cb, NULL), 0);
	pump_for(300);
	ck_assert_uint_eq(rds_pending(), 1);           /* queued, never sent to an unauthenticated connection */
	rds_finish();
	ck_assert_int_eq(cancelled, 1);

	init_client(addr, NULL, "s3cret", 0, RDS_STANDALONE);
	ck_assert(pump_until(is_ready, NULL, 5000));
	ck_assert_reply_str(run(0, "PING", NULL), "PONG");
	ck_assert_reply_str(run(0, "ACL", "SETUSER", "alice", "on", ">pw", "~*", "+@all", NULL), "OK");
	rds_finish();

	init_client(addr, "alice", "pw", 3, RDS_STANDALONE);
	ck_assert(pump_until(is_ready, NULL, 5000));
	ck_assert_reply_str(run(0, "ACL", "WHOAMI", NULL), "alice");
	ck_assert_reply_str(run(1, "SET", "indb3", "yes", NULL), "OK");
	ck_assert_str_eq(cli("redis-cli -p %d --user alice --pass pw --no-auth-warning -n 3 get indb3", s->port), "yes");
	ck_assert_str_eq(cli("redis-cli -p %d --user alice --pass pw --no-auth-warning -n 0 exists indb3", s->port), "0");
}
END_TEST

/* Redis killed mid-stream: every command gets exactly one callback (reply or -ECONNRESET); commands issued
 * while it is down stay queued (up to max_pending, then -EAGAIN) and succeed after it restarts. */
static server_t *victim;
static int ms_ok, ms_reset, ms_other, ms_calls;

static void ms_cb(void *ctx, const struct redisReply *r, int err)
{
	(void)ctx;
	ms_calls++;
	if (!err && r && r->type == REDIS_REPLY_STATUS)
		ms_ok++;
	else if (err == -ECONNRESET)
		ms_reset++;
	else
		ms_other++;
	if (ms_calls == 100 && victim)
		server_kill(victim);
}

START_TEST(test_kill_midstream_reconnect)
{
	server_t *s = srv_new();
	char addr[32], key[32];
	static char big[1000];
	rds_config_t c = { 0 };
	uint64_t t0;

	memset(big, 'x', sizeof(big) - 1);
	server_start(s, NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
	c.addrs = addr;
	c.max_pending = 20000;
	ck_assert_int_eq(rds_init(&c), 0);
	ck_assert(pump_until(is_ready, NULL, 5000));

	victim = s;
	ms_ok = ms_reset = ms_other = ms_calls = 0;
	for (int i = 0; i < 20000; i++) {
		const char *argv[] = { "SET", key, big };

		snprintf(key, sizeof(key), "big:%d", i);
		ck_assert_int_eq(rds_command(0, 3, argv, NULL, ms_cb, NULL), 0);
	}
	ck_assert(pump_until(none_pending, NULL, 10000));
	victim = NULL;
	ck_assert_int_eq(ms_calls, 20000);
	ck_assert_int_eq(ms_other, 0);
	ck_assert_int_ge(ms_ok, 100);
	ck_assert_int_gt(ms_reset, 0);
	ck_assert(!rds_ready());

	/* Down: new commands are queued, not failed; beyond max_pending they are refused. */
	ms_ok = ms_reset = ms_other = ms_calls = 0;
	for (int i = 0; i < 20000; i++) {
		const char *argv[] = { "SET", key, "v" };

		snprintf(key, sizeof(key), "later:%d", i);
		ck_assert_int_eq(rds_command(0, 3, argv, NULL, ms_cb, NULL), 0);
	}
	{
		const char *argv[] = { "PING" };

		ck_assert_int_eq(rds_command(0, 1, argv, NULL, ms_cb, NULL), -EAGAIN);
	}
	pump_for(500);
	ck_assert_int_eq(ms_calls, 0);
	ck_assert_uint_eq(rds_pending(), 20000);

	server_start(s, NULL);
	t0 = loop_clock_ms();
	ck_assert(pump_until(is_ready, NULL, 8000));
	ck_assert_uint_le(loop_clock_ms() - t0, 5500);     /* backoff is capped at 5 s */
	ck_assert(pump_until(none_pending, NULL, 10000));
	ck_assert_int_eq(ms_ok, 20000);
	ck_assert_int_eq(ms_calls, 20000);
	ck_assert_str_eq(cli("redis-cli -p %d dbsize", s->port), "20000");
}
END_TEST

/* Nobody listening at start: commands wait; the server appears; they complete. */
START_TEST(test_unreachable_then_up)
{
	server_t *s = srv_new();
	char addr[32];
	res_t r;
	const char *argv[] = { "SET", "early", "bird" };

	s->port = pick_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
	init_client(addr, NULL, NULL, 0, RDS_AUTO);
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(rds_command(rds_key_slot("early", 5), 3, argv, NULL, res_cb, &r), 0);
	pump_for(800);
	ck_assert(!r.done);
	ck_assert(!rds_ready());
	server_start(s, NULL);
	ck_assert(pump_until(res_done, &r, 8000));
	ck_assert_reply_str(r, "OK");
	ck_assert(rds_ready());
}
END_TEST

/* A command not answered within command_timeout_ms: -ETIMEDOUT, the pipeline behind it -ECONNRESET, the
 * connection is reset and later commands work. */
START_TEST(test_command_timeout)
{
	server_t *s = srv_new();
	char addr[32];
	rds_config_t c = { 0 };
	res_t slow, behind;
	const char *sleep_argv[] = { "DEBUG", "SLEEP", "1.5" };
	const char *ping[] = { "PING" };

	server_start(s, "--enable-debug-command", "yes", NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
	c.addrs = addr;
	c.command_timeout_ms = 300;
	c.mode = RDS_STANDALONE;
	ck_assert_int_eq(rds_init(&c), 0);
	ck_assert(pump_until(is_ready, NULL, 5000));
	memset(&slow, 0, sizeof(slow));
	memset(&behind, 0, sizeof(behind));
	ck_assert_int_eq(rds_command(0, 3, sleep_argv, NULL, res_cb, &slow), 0);
	ck_assert_int_eq(rds_command(0, 1, ping, NULL, res_cb, &behind), 0);
	ck_assert(pump_until(res_done, &behind, 3000));
	ck_assert(slow.done);
	ck_assert_int_eq(slow.err, -ETIMEDOUT);
	ck_assert_int_eq(behind.err, -ECONNRESET);
	pump_for(1600);   /* until the server wakes up: the PING must not time out behind the sleep */
	ck_assert_reply_str(run(0, "PING", NULL), "PONG");
	ck_assert(rds_ready());
}
END_TEST

/* ---- cluster ---- */

typedef struct cnode {
	char id[64];
	int port;
	int lo[8], hi[8], nr;
} cnode_t;

/* Parse CLUSTER NODES as seen from `port`: masters with their slot ranges. */
static int cluster_nodes(int port, cnode_t *out, int max)
{
	char buf[65536], *line, *save = NULL;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", cli("redis-cli -p %d cluster nodes", port));
	for (line = strtok_r(buf, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
		char id[64], addr[128], flags[128], *tok, *s2 = NULL;
		int field = 0;
		cnode_t *c = &out[n];

		memset(c, 0, sizeof(*c));
		if (sscanf(line, "%63s %127s %127s", id, addr, flags) != 3 || !strstr(flags, "master"))
			continue;
		snprintf(c->id, sizeof(c->id), "%s", id);
		c->port = atoi(strchr(addr, ':') + 1);
		for (tok = strtok_r(line, " ", &s2); tok; tok = strtok_r(NULL, " ", &s2), field++) {
			int lo, hi;

			if (field < 8 || tok[0] == '[' || c->nr >= 8)
				continue;
			if (sscanf(tok, "%d-%d", &lo, &hi) == 2) {
			} else if (sscanf(tok, "%d", &lo) == 1) {
				hi = lo;
			} else {
				continue;
			}
			c->lo[c->nr] = lo;
			c->hi[c->nr++] = hi;
		}
		n++;
	}
	return n;
}

static int owner_port(int any_port, int slot)
{
	cnode_t nodes[8];
	int n = cluster_nodes(any_port, nodes, 8);

	for (int i = 0; i < n; i++)
		for (int r = 0; r < nodes[i].nr; r++)
			if (slot >= nodes[i].lo[r] && slot <= nodes[i].hi[r])
				return nodes[i].port;
	return -1;
}

static const char *node_id(int port)
{
	static char id[64];

	snprintf(id, sizeof(id), "%s", cli("redis-cli -p %d cluster myid", port));
	return id;
}

static long errorstat_moved(int port)
{
	const char *s = strstr(cli("redis-cli -p %d info errorstats", port), "errorstat_MOVED:count=");

	return s ? atol(s + strlen("errorstat_MOVED:count=")) : 0;
}

static int cl_bad, cl_calls;

static void cl_cb(void *ctx, const struct redisReply *r, int err)
{
	const char *want = ctx;

	cl_calls++;
	if (err || !r)
		cl_bad++;
	else if (want && (r->type != REDIS_REPLY_STRING || strcmp(r->str, want)))
		cl_bad++;
	else if (!want && r->type != REDIS_REPLY_STATUS)
		cl_bad++;
}

/* Three masters: keys spread over all; a slot migrated (ASK while migrating, MOVED after) transparently. */
START_TEST(test_cluster_spread_ask_moved)
{
	server_t *s[3] = { srv_new(), srv_new(), srv_new() };
	char addrs[128], create[512], key[64];
	static char vals[3000][16];
	int slot, from, to, other;
	char from_id[64], to_id[64];
	long moved_before;

	for (int i = 0; i < 3; i++)
		server_start(s[i], "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000", NULL);
	snprintf(create, sizeof(create), "redis-cli --cluster create 127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d "
		"--cluster-replicas 0 --cluster-yes 2>&1", s[0]->port, s[1]->port, s[2]->port);
	ck_assert_ptr_nonnull(strstr(cli("%s", create), "All 16384 slots covered"));
	for (int i = 0; i < 3; i++) {
		int k;

		for (k = 0; k < 500 && !strstr(cli("redis-cli -p %d cluster info", s[i]->port), "cluster_state:ok"); k++)
			sleep_ms(20);
		ck_assert_int_lt(k, 500);
	}

	/* One seed is enough: the topology comes from CLUSTER SLOTS (auto-detected). */
	snprintf(addrs, sizeof(addrs), "127.0.0.1:%d", s[1]->port);
	init_client(addrs, NULL, NULL, 0, RDS_AUTO);
	ck_assert(pump_until(is_ready, NULL, 5000));

	cl_bad = cl_calls = 0;
	for (int i = 0; i < 3000; i++) {
		const char *argv[3] = { "SET", key, vals[i] };

		snprintf(key, sizeof(key), "ck:%d", i);
		snprintf(vals[i], sizeof(vals[i]), "cv%d", i);
		ck_assert_int_eq(rds_command(rds_key_slot(key, strlen(key)), 3, argv, NULL, cl_cb, NULL), 0);
	}
	ck_assert(pump_until(none_pending, NULL, 10000));
	for (int i = 0; i < 3000; i++) {
		const char *argv[2] = { "GET", key };

		snprintf(key, sizeof(key), "ck:%d", i);
		ck_assert_int_eq(rds_command(rds_key_slot(key, strlen(key)), 2, argv, NULL, cl_cb, vals[i]), 0);
	}
	ck_assert(pump_until(none_pending, NULL, 10000));
	ck_assert_int_eq(cl_calls, 6000);
	ck_assert_int_eq(cl_bad, 0);
	for (int i = 0; i < 3; i++) {
		int n = atoi(cli("redis-cli -p %d dbsize", s[i]->port));

		ck_assert_int_gt(n, 500);   /* ~1000 each: the keys really are spread */
	}
	/* No redirections at all so far: we routed every key to its owner. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(errorstat_moved(s[i]->port), 0);

	/* Migrate the slot of {mig}: 20 keys written through us, then IMPORTING/MIGRATING. */
	slot = rds_key_slot("{mig}", 5);
	from = owner_port(s[0]->port, slot);
	ck_assert_int_gt(from, 0);
	to = from == s[0]->port ? s[1]->port : s[0]->port;
	other = (s[0]->port != from && s[0]->port != to) ? s[0]->port : (s[1]->port != from && s[1]->port != to) ?
		s[1]->port : s[2]->port;
	for (int i = 0; i < 20; i++) {
		char k[32], v[32];

		snprintf(k, sizeof(k), "{mig}:%d", i);
		snprintf(v, sizeof(v), "m%d", i);
		ck_assert_reply_str(run(1, "SET", k, v, NULL), "OK");
	}
	snprintf(from_id, sizeof(from_id), "%s", node_id(from));
	snprintf(to_id, sizeof(to_id), "%s", node_id(to));
	ck_assert_str_eq(cli("redis-cli -p %d cluster setslot %d importing %s", to, slot, from_id), "OK");
	ck_assert_str_eq(cli("redis-cli -p %d cluster setslot %d migrating %s", from, slot, to_id), "OK");
	/* Move half the keys: those answer ASK from the old owner; we follow with ASKING once. */
	ck_assert_str_eq(cli("redis-cli -p %d migrate 127.0.0.1 %d \"\" 0 5000 keys {mig}:0 {mig}:1 {mig}:2 "
		"{mig}:3 {mig}:4 {mig}:5 {mig}:6 {mig}:7 {mig}:8 {mig}:9", from, to), "OK");
	ck_assert_reply_str(run(1, "GET", "{mig}:3", NULL), "m3");     /* ASK -> new owner */
	ck_assert_reply_str(run(1, "GET", "{mig}:15", NULL), "m15");   /* still on the old owner */

	/* Finish the migration: the old owner now answers MOVED; we update the map and resend. */
	ck_assert_str_eq(cli("redis-cli -p %d migrate 127.0.0.1 %d \"\" 0 5000 keys {mig}:10 {mig}:11 {mig}:12 "
		"{mig}:13 {mig}:14 {mig}:15 {mig}:16 {mig}:17 {mig}:18 {mig}:19", from, to), "OK");
	ck_assert_str_eq(cli("redis-cli -p %d cluster setslot %d node %s", to, slot, to_id), "OK");
	ck_assert_str_eq(cli("redis-cli -p %d cluster setslot %d node %s", from, slot, to_id), "OK");
	ck_assert_str_eq(cli("redis-cli -p %d cluster setslot %d node %s", other, slot, to_id), "OK");
	moved_before = errorstat_moved(from);
	ck_assert_reply_str(run(1, "GET", "{mig}:7", NULL), "m7");
	ck_assert_int_eq(errorstat_moved(from), moved_before + 1);
	/* Now routed straight to the new owner: a pipeline of 100 commands for that slot, no more MOVED. */
	cl_bad = cl_calls = 0;
	for (int i = 0; i < 100; i++) {
		static char want[20][16];
		const char *argv[2] = { "GET", key };

		snprintf(key, sizeof(key), "{mig}:%d", i % 20);
		snprintf(want[i % 20], sizeof(want[0]), "m%d", i % 20);
		ck_assert_int_eq(rds_command(slot, 2, argv, NULL, cl_cb, want[i % 20]), 0);
	}
	ck_assert(pump_until(none_pending, NULL, 5000));
	ck_assert_int_eq(cl_calls, 100);
	ck_assert_int_eq(cl_bad, 0);
	ck_assert_int_eq(errorstat_moved(from), moved_before + 1);
	ck_assert_str_eq(cli("redis-cli -p %d cluster countkeysinslot %d", to, slot), "20");
	ck_assert(rds_ready());

	/* A master goes down: the other masters keep answering, its commands wait (topology refreshed meanwhile);
	 * it restarts with its nodes.conf and the waiting command gets an answer (OK, or CLUSTERDOWN while the
	 * restarted master rejoins: either way a reply, not a transport error). */
	{
		server_t *down = s[0]->port == other ? s[0] : s[1]->port == other ? s[1] : s[2];
		char up_key[32] = "", down_key[32] = "";
		const char *argv[3] = { "SET", down_key, "back" };
		res_t w;

		for (int i = 0; !up_key[0] || !down_key[0]; i++) {
			char k[32];
			int owner;

			snprintf(k, sizeof(k), "dk:%d", i);
			owner = owner_port(to, rds_key_slot(k, strlen(k)));
			if (owner == other && !down_key[0])
				snprintf(down_key, sizeof(down_key), "%s", k);
			else if (owner != other && !up_key[0])
				snprintf(up_key, sizeof(up_key), "%s", k);
		}
		server_kill(down);
		pump_for(200);
		ck_assert(!rds_ready());
		ck_assert_reply_str(run(1, "SET", up_key, "still", NULL), "OK");
		memset(&w, 0, sizeof(w));
		ck_assert_int_eq(rds_command(rds_key_slot(down_key, strlen(down_key)), 3, argv, NULL, res_cb, &w), 0);
		pump_for(1200);
		ck_assert(!w.done);
		server_start(down, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000", NULL);
		ck_assert(pump_until(res_done, &w, 10000));
		ck_assert_int_eq(w.err, 0);
		ck_assert_msg(!strcmp(w.str, "OK") || !strncmp(w.str, "CLUSTERDOWN", 11), "reply '%s'", w.str);
		ck_assert(pump_until(is_ready, NULL, 5000));
	}
}
END_TEST

static bool have_program(const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

int main(void)
{
	Suite *s = suite_create("rds");
	TCase *unit = tcase_create("unit");
	TCase *tc = tcase_create("redis");
	SRunner *sr;
	int failed;

	log_init(LOG_INFO);
	log_set_role("test");
	atexit(stop_all_servers);
	tcase_add_test(unit, test_key_slot_hash_tags);
	suite_add_tcase(s, unit);
	if (!have_program("redis-server") || !have_program("redis-cli")) {
		fprintf(stderr, "redis-server/redis-cli not installed: skipping (apt-get install redis-server)\n");
		return 77;
	}
	tcase_add_checked_fixture(tc, worker_setup, worker_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_pipeline_10000_in_order);
	tcase_add_test(tc, test_function_load_fcall_and_reload);
	tcase_add_test(tc, test_auth_acl_select);
	tcase_add_test(tc, test_kill_midstream_reconnect);
	tcase_add_test(tc, test_unreachable_then_up);
	tcase_add_test(tc, test_command_timeout);
	tcase_add_test(tc, test_cluster_spread_ask_moved);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

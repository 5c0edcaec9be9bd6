/*
 * test-sock.c — the socket reference discipline on a real io_uring: a closed socket is released (fd closed,
 * owner told to free) only after its last SQE has completed, also when it is closed with a send in flight to a
 * peer that reads nothing (the send's buffer must stay valid until then); completions for a released slot are
 * dropped; a paused socket opened with data waiting delivers nothing until it is resumed; a lean socket (a
 * client's) holds no output buffer once its bytes are written, and one re-grown for a large write sends it intact.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "sock.h"
#include "worker.h"

wk_t *W;
static wk_t wk;
static config_t wcfg;

typedef struct owner {
	sock_t sk;
	size_t got;
	int eof;
	bool freed;
	bool stopped;
} owner_t;

static void on_data(sock_t *s, const uint8_t *p, size_t n)
{
	(void)p;
	((owner_t *)s)->got += n;
}

static void on_eof(sock_t *s, int err)
{
	((owner_t *)s)->eof = err ? err : 1;
}

static void on_stopped(sock_t *s)
{
	((owner_t *)s)->stopped = true;
}

static void on_free(sock_t *s)
{
	((owner_t *)s)->freed = true;
}

static const sock_ops_t ops = { .on_data = on_data, .on_eof = on_eof, .on_recv_stopped = on_stopped,
	.on_free = on_free };

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	config_defaults(&wcfg);
	memset(&wk, 0, sizeof(wk));
	wk.cfg = &wcfg;
	W = &wk;
	ck_assert_int_eq(loop_init(&(loop_config_t){ .sq_entries = 64, .buf_count = 16, .buf_size = 4096,
		.tick_ms = 50 }), 0);
	sock_module_init();
}

static void teardown(void)
{
	loop_finish();
	sock_module_finish();
}

static void pair(int sv[2])
{
	int small = 4096;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

START_TEST(test_close_with_send_in_flight_waits_for_it)
{
	owner_t *o = calloc(1, sizeof(*o));
	int sv[2], fd;
	uint8_t *p;
	char drain[65536];

	pair(sv);
	fd = sv[0];
	ck_assert_int_eq(sock_open(&o->sk, fd, &ops, false), 0);
	/* 1 MiB to a peer that reads nothing: the send stays in flight. */
	p = sock_reserve(&o->sk, 1 << 20);
	memset(p, 'x', 1 << 20);
	sock_commit(&o->sk, 1 << 20);
	for (int i = 0; i < 5; i++)
		loop_turn(10);
	ck_assert(o->sk.out.inflight);
	sock_close(&o->sk, false);
	for (int i = 0; i < 5; i++)
		loop_turn(10);
	/* Not released: the kernel still holds the send's buffer. */
	ck_assert(!o->freed);
	ck_assert(fd_open(fd));
	ck_assert_uint_eq(sock_count(), 1);
	/* The peer reads: the send completes, and only now is the socket released. */
	for (int i = 0; i < 400 && !o->freed; i++) {
		while (read(sv[1], drain, sizeof(drain)) > 0)
			;
		loop_turn(10);
	}
	ck_assert(o->freed);
	ck_assert_uint_eq(sock_count(), 0);
	close(sv[1]);
	free(o);
}
END_TEST

START_TEST(test_linger_ends_a_flushing_close_to_a_dead_reader)
{
	owner_t *o = calloc(1, sizeof(*o));
	int sv[2];
	uint8_t *p;

	pair(sv);
	ck_assert_int_eq(sock_open(&o->sk, sv[0], &ops, false), 0);
	p = sock_reserve(&o->sk, 1 << 20);
	memset(p, 'y', 1 << 20);
	sock_commit(&o->sk, 1 << 20);
	sock_close(&o->sk, true);
	/* The peer never reads: after SOCK_LINGER_MS the socket is shut down and released. */
	for (int i = 0; i < 600 && !o->freed; i++)
		loop_turn(10);
	ck_assert(o->freed);
	close(sv[1]);
	free(o);
}
END_TEST

START_TEST(test_paused_open_reads_nothing_until_resumed)
{
	owner_t *o = calloc(1, sizeof(*o));
	int sv[2];

	pair(sv);
	ck_assert_int_eq(write(sv[1], "waiting", 7), 7);
	ck_assert_int_eq(sock_open(&o->sk, sv[0], &ops, true), 0);
	for (int i = 0; i < 5; i++)
		loop_turn(10);
	ck_assert_uint_eq(o->got, 0);
	sock_resume(&o->sk);
	for (int i = 0; i < 50 && !o->got; i++)
		loop_turn(10);
	ck_assert_uint_eq(o->got, 7);
	sock_close(&o->sk, false);
	for (int i = 0; i < 50 && !o->freed; i++)
		loop_turn(10);
	ck_assert(o->freed);
	close(sv[1]);
	free(o);
}
END_TEST

/* Read everything the peer has for us within a few turns. */
static size_t read_all(int fd, uint8_t *dst, size_t want)
{
	size_t got = 0;

	for (int i = 0; i < 2000 && got < want; i++) {
		ssize_t n;

		while (got < want && (n = read(fd, dst + got, want - got)) > 0)
			got += (size_t)n;
		loop_turn(1);
	}
	return got;
}

START_TEST(test_lean_output_released_when_drained_and_regrown_intact)
{
	owner_t *o = calloc(1, sizeof(*o));
	size_t big = 300 * 1024;
	uint8_t *want = malloc(big), *got = malloc(big);
	int sv[2];

	pair(sv);
	ck_assert_int_eq(sock_open(&o->sk, sv[0], &ops, false), 0);
	o->sk.out.lean = true;
	/* A small packet: once written, neither half of the output queue keeps a buffer. */
	ck_assert_int_eq(sock_write(&o->sk, "hello", 5), 0);
	ck_assert_uint_eq(read_all(sv[1], got, 5), 5);
	ck_assert_mem_eq(got, "hello", 5);
	for (int i = 0; i < 50 && o->sk.out.inflight; i++)
		loop_turn(1);
	ck_assert(!o->sk.out.inflight);
	ck_assert_ptr_null(o->sk.out.sending.data);
	ck_assert_ptr_null(o->sk.out.pending.data);
	/* A large one (many partial sends to a small socket buffer) after the release: every byte arrives in order,
	 * including what was queued behind it while it was in flight. */
	for (size_t i = 0; i < big; i++)
		want[i] = (uint8_t)(i * 7 + i / 251);
	ck_assert_int_eq(sock_write(&o->sk, want, big - 1000), 0);
	loop_turn(1);
	ck_assert_int_eq(sock_write(&o->sk, want + big - 1000, 1000), 0);
	ck_assert_uint_eq(read_all(sv[1], got, big), big);
	ck_assert_mem_eq(got, want, big);
	for (int i = 0; i < 50 && (o->sk.out.inflight || sock_outq(&o->sk)); i++)
		loop_turn(1);
	ck_assert_uint_eq(sock_outq(&o->sk), 0);
	ck_assert_ptr_null(o->sk.out.sending.data);
	ck_assert_ptr_null(o->sk.out.pending.data);
	sock_close(&o->sk, false);
	for (int i = 0; i < 50 && !o->freed; i++)
		loop_turn(10);
	ck_assert(o->freed);
	close(sv[1]);
	free(want);
	free(got);
	free(o);
}
END_TEST

START_TEST(test_peer_close_is_eof)
{
	owner_t *o = calloc(1, sizeof(*o));
	int sv[2];

	pair(sv);
	ck_assert_int_eq(sock_open(&o->sk, sv[0], &ops, false), 0);
	close(sv[1]);
	for (int i = 0; i < 50 && !o->eof; i++)
		loop_turn(10);
	ck_assert_int_eq(o->eof, 1);
	sock_close(&o->sk, false);
	for (int i = 0; i < 50 && !o->freed; i++)
		loop_turn(10);
	ck_assert(o->freed);
	free(o);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sock");
	TCase *tc = tcase_create("sock");
	SRunner *sr;
	int failed;

	log_init(LOG_ERR);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_close_with_send_in_flight_waits_for_it);
	tcase_add_test(tc, test_linger_ends_a_flushing_close_to_a_dead_reader);
	tcase_add_test(tc, test_paused_open_reads_nothing_until_resumed);
	tcase_add_test(tc, test_peer_close_is_eof);
	tcase_add_test(tc, test_lean_output_released_when_drained_and_regrown_intact);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

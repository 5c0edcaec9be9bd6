/*
 * test_bench_addr.c — unit tests for ringmq-bench's --brokers list (bench_addr.c): what parses, what is refused
 * and why, which address each end of a pair starts on, where a lost client goes next, the backoff bounds.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench_addr.h"
#include "slot.h"

static baddr_list_t list;
static char err[256];

static int
parse(const char *s)
{
	err[0] = '\0';
	memset(&list, 0xa5, sizeof(list));
	return baddr_parse(&list, s, err, sizeof(err));
}

START_TEST(test_one)
{
	ck_assert_int_eq(parse("127.0.0.1:1883"), 0);
	ck_assert_uint_eq(list.n, 1);
	ck_assert_int_eq(list.a[0].sa.sin_family, AF_INET);
	ck_assert_uint_eq(ntohs(list.a[0].sa.sin_port), 1883);
	ck_assert_uint_eq(ntohl(list.a[0].sa.sin_addr.s_addr), 0x7f000001u);
	ck_assert_str_eq(list.a[0].host, "127.0.0.1");
}
END_TEST

START_TEST(test_several)
{
	ck_assert_int_eq(parse("127.0.0.1:1,10.1.2.3:65535,192.168.0.9:8883"), 0);
	ck_assert_uint_eq(list.n, 3);
	ck_assert_uint_eq(ntohs(list.a[0].sa.sin_port), 1);
	ck_assert_uint_eq(ntohs(list.a[1].sa.sin_port), 65535);
	ck_assert_uint_eq(ntohs(list.a[2].sa.sin_port), 8883);
	ck_assert_str_eq(list.a[1].host, "10.1.2.3");
	ck_assert_str_eq(list.a[2].host, "192.168.0.9");
}
END_TEST

/* BADDR_MAX items are fine, one more is refused. */
START_TEST(test_max)
{
	char s[BADDR_MAX * 24 + 32];
	size_t n = 0;

	for (int i = 0; i < BADDR_MAX; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "%s127.0.0.%d:%d", i ? "," : "", i + 1, 1000 + i);
	ck_assert_int_eq(parse(s), 0);
	ck_assert_uint_eq(list.n, BADDR_MAX);
	ck_assert_uint_eq(ntohs(list.a[BADDR_MAX - 1].sa.sin_port), 1000 + BADDR_MAX - 1);
	snprintf(s + n, sizeof(s) - n, ",127.0.1.1:1");
	ck_assert_int_eq(parse(s), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "more than"));
}
END_TEST

/* Each refusal names the reason; none of them passes as a list. */
START_TEST(test_bad)
{
	static const struct {
		const char *in;
		const char *why;
	} cases[] = {
		{ "127.0.0.1", "no port" },
		{ "127.0.0.1:", "no port" },
		{ "127.0.0.1:1883,127.0.0.2", "no port" },
		{ "127.0.0.1:0", "1..65535" },
		{ "127.0.0.1:65536", "1..65535" },
		{ "127.0.0.1:99999999999999999999", "1..65535" },
		{ "127.0.0.1:-1", "1..65535" },
		{ "127.0.0.1:+1", "1..65535" },
		{ "127.0.0.1: 1", "1..65535" },
		{ "127.0.0.1:1x", "1..65535" },
		{ "", "empty" },
		{ ",127.0.0.1:1", "empty" },
		{ "127.0.0.1:1,", "empty" },
		{ "127.0.0.1:1,,127.0.0.2:2", "empty" },
		{ ":1883", "IPv4" },
		{ "localhost:1883", "IPv4" },
		{ "::1:1883", "IPv4" },
		{ "256.0.0.1:1883", "IPv4" },
		{ " 127.0.0.1:1883", "IPv4" },
		{ "127.0.0.1:1883:1", "1..65535" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(parse(cases[i].in) == -EINVAL, "'%s' was accepted", cases[i].in);
		ck_assert_msg(strstr(err, cases[i].why) != NULL, "'%s': error '%s' does not say '%s'", cases[i].in,
			err, cases[i].why);
	}
}
END_TEST

START_TEST(test_single)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(1234) };

	sa.sin_addr.s_addr = htonl(0x0a000001u);
	baddr_single(&list, &sa);
	ck_assert_uint_eq(list.n, 1);
	ck_assert_uint_eq(ntohs(list.a[0].sa.sin_port), 1234);
	ck_assert_str_eq(list.a[0].host, "10.0.0.1");
}
END_TEST

/* Offset 1 over 3 nodes: every pair's subscriber is on the node after its publisher's. */
START_TEST(test_mapping_cross)
{
	static const uint32_t pub[] = { 0, 1, 2, 0, 1, 2, 0 };
	static const uint32_t sub[] = { 1, 2, 0, 1, 2, 0, 1 };

	for (uint32_t i = 0; i < 7; i++) {
		ck_assert_uint_eq(baddr_pub_index(i, 3), pub[i]);
		ck_assert_uint_eq(baddr_sub_index(i, 1, 3), sub[i]);
		ck_assert_uint_ne(baddr_pub_index(i, 3), baddr_sub_index(i, 1, 3));
	}
}
END_TEST

START_TEST(test_mapping_same_and_single)
{
	for (uint32_t i = 0; i < 10; i++) {
		ck_assert_uint_eq(baddr_sub_index(i, 0, 2), baddr_pub_index(i, 2));
		ck_assert_uint_eq(baddr_pub_index(i, 2), i % 2);
		/* One address: everything there, whatever the offset. */
		ck_assert_uint_eq(baddr_pub_index(i, 1), 0);
		ck_assert_uint_eq(baddr_sub_index(i, 1, 1), 0);
		ck_assert_uint_eq(baddr_sub_index(i, 7, 1), 0);
	}
	ck_assert_uint_eq(baddr_sub_index(5, 4, 4), 1); /* offset n is offset 0 */
	ck_assert_uint_eq(baddr_sub_index(UINT32_MAX, 1, 3), (uint32_t)((UINT32_MAX + 1ull) % 3));
}
END_TEST

START_TEST(test_next)
{
	ck_assert_uint_eq(baddr_next(0, 3), 1);
	ck_assert_uint_eq(baddr_next(1, 3), 2);
	ck_assert_uint_eq(baddr_next(2, 3), 0);
	ck_assert_uint_eq(baddr_next(0, 1), 0);
}
END_TEST

/* Always inside the bounds, and actually jittered (not one value for everyone). */
START_TEST(test_backoff)
{
	uint32_t rng = 0;
	int64_t lo = INT64_MAX, hi = 0;

	for (int i = 0; i < 10000; i++) {
		int64_t b = baddr_backoff_ns(&rng);

		ck_assert_int_ge(b, BADDR_BACKOFF_MIN);
		ck_assert_int_lt(b, BADDR_BACKOFF_MAX);
		lo = b < lo ? b : lo;
		hi = b > hi ? b : hi;
	}
	ck_assert_uint_ne(rng, 0);
	ck_assert_int_lt(lo, BADDR_BACKOFF_MIN + (BADDR_BACKOFF_MAX - BADDR_BACKOFF_MIN) / 10);
	ck_assert_int_gt(hi, BADDR_BACKOFF_MAX - (BADDR_BACKOFF_MAX - BADDR_BACKOFF_MIN) / 10);
}
END_TEST

START_TEST(test_placed_id)
{
	char id[96], sub[96];
	int workers, n, owner, crossed = 0;

	for (workers = 1; workers <= 8; workers++) {
		for (uint32_t i = 0; i < 2000; i++) {
			snprintf(sub, sizeof(sub), "rmqbtest-s%u", i);
			owner = slot_owner(slot_of(sub, strlen(sub)), workers);
			for (int shift = 0; shift < 2; shift++) {
				n = baddr_placed_id(id, sizeof(id), "rmqbtest", i, workers, shift);
				ck_assert_int_eq(n, (int)strlen(id));
				ck_assert_int_eq(strncmp(id, "rmqbtest-p", 10), 0);
				ck_assert_int_eq(slot_owner(slot_of(id, (size_t)n), workers), (owner + shift) % workers);
			}
			/* The default ids of the pair, for the record: at 2 workers every 4-digit pair crosses. */
			if (workers == 2 && i >= 1000) {
				n = snprintf(id, sizeof(id), "rmqbtest-p%u", i);
				crossed += slot_owner(slot_of(id, (size_t)n), 2) != owner;
			}
		}
	}
	ck_assert_int_eq(crossed, 1000); /* not the 1/2 of independent ids (bench_addr.h) */
	/* Deterministic, so a reconnecting publisher keeps its session's worker. */
	n = baddr_placed_id(id, sizeof(id), "x", 7, 4, 1);
	ck_assert_int_eq(baddr_placed_id(sub, sizeof(sub), "x", 7, 4, 1), n);
	ck_assert_str_eq(id, sub);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("bench_addr");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_one);
	tcase_add_test(tc, test_several);
	tcase_add_test(tc, test_max);
	tcase_add_test(tc, test_bad);
	tcase_add_test(tc, test_single);
	tcase_add_test(tc, test_mapping_cross);
	tcase_add_test(tc, test_mapping_same_and_single);
	tcase_add_test(tc, test_next);
	tcase_add_test(tc, test_backoff);
	tcase_add_test(tc, test_placed_id);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

/*
 * test_bench_stats.c — unit tests for ringmq-bench's per-pair accounting (bench_stats.c): lost, duplicates,
 * out of order, across an --offline style redelivery.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench_stats.h"

static void
send_n(bstat_pair_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		bstat_on_send(p);
}

START_TEST(test_bits)
{
	bstat_bits_t b = { 0 };
	bool was;

	ck_assert(!bstat_bits_get(&b, 0));
	ck_assert(!bstat_bits_get(&b, 1000000));
	ck_assert(bstat_bits_set(&b, 5, &was));
	ck_assert(!was);
	ck_assert(bstat_bits_set(&b, 5, &was));
	ck_assert(was);
	ck_assert(bstat_bits_set(&b, 100000, &was)); /* grows */
	ck_assert(!was);
	ck_assert(bstat_bits_get(&b, 5));
	ck_assert(bstat_bits_get(&b, 100000));
	ck_assert(!bstat_bits_get(&b, 99999));
	ck_assert_uint_eq(bstat_bits_andnot(&b, NULL, 100001), 2);
	ck_assert_uint_eq(bstat_bits_andnot(&b, NULL, 100000), 1); /* n is exclusive */
	free(b.w);
}
END_TEST

START_TEST(test_sequences)
{
	bstat_pair_t p;

	bstat_pair_init(&p);
	ck_assert_uint_eq(bstat_on_send(&p), 0);
	ck_assert_uint_eq(bstat_on_send(&p), 1);
	ck_assert_uint_eq(p.sent, 2);
	bstat_pair_finish(&p);
}
END_TEST

/* Everything acked and received in order: nothing lost, nothing odd. */
START_TEST(test_clean_run)
{
	bstat_pair_t p;
	bstat_totals_t t = { 0 };

	bstat_pair_init(&p);
	for (uint32_t i = 0; i < 1000; i++) {
		uint32_t s = bstat_on_send(&p);

		ck_assert_int_eq(bstat_on_ack(&p, s), 0);
		ck_assert_int_eq(bstat_on_receive(&p, s), BSTAT_RX_NEW);
	}
	ck_assert_uint_eq(p.outstanding, 0);
	ck_assert_uint_eq(bstat_pair_lost(&p), 0);
	ck_assert_uint_eq(bstat_pair_missing(&p), 0);
	bstat_totals_add(&t, &p);
	ck_assert_uint_eq(t.sent, 1000);
	ck_assert_uint_eq(t.acked, 1000);
	ck_assert_uint_eq(t.received, 1000);
	ck_assert_uint_eq(t.lost, 0);
	ck_assert_uint_eq(t.pairs_lossy, 0);
	bstat_pair_finish(&p);
}
END_TEST

/* Delivery before the PUBACK (common: the broker forwards, then acks) is not outstanding at any time. */
START_TEST(test_receive_before_ack)
{
	bstat_pair_t p;

	bstat_pair_init(&p);
	send_n(&p, 1);
	ck_assert_int_eq(bstat_on_receive(&p, 0), BSTAT_RX_NEW);
	ck_assert_int_eq(bstat_on_ack(&p, 0), 0);
	ck_assert_uint_eq(p.outstanding, 0);
	ck_assert_uint_eq(bstat_pair_lost(&p), 0);
	bstat_pair_finish(&p);
}
END_TEST

/* Lost = PUBACKed and never received; unacked and unreceived is only "missing". */
START_TEST(test_lost)
{
	bstat_pair_t p;
	bstat_totals_t t = { 0 };
	uint32_t seqs[4];

	bstat_pair_init(&p);
	send_n(&p, 10);
	for (uint32_t s = 0; s < 10; s++)
		if (s != 9)
			ck_assert_int_eq(bstat_on_ack(&p, s), 0);
	for (uint32_t s = 0; s < 10; s++)
		if (s != 3 && s != 7 && s != 9)
			bstat_on_receive(&p, s);
	ck_assert_uint_eq(p.outstanding, 2);
	ck_assert_uint_eq(bstat_pair_lost(&p), 2);
	ck_assert_uint_eq(bstat_pair_missing(&p), 3);
	ck_assert_uint_eq(bstat_pair_lost_list(&p, seqs, 4), 2);
	ck_assert_uint_eq(seqs[0], 3);
	ck_assert_uint_eq(seqs[1], 7);
	bstat_totals_add(&t, &p);
	ck_assert_uint_eq(t.lost, 2);
	ck_assert_uint_eq(t.missing, 3);
	ck_assert_uint_eq(t.pairs_lossy, 1);
	/* A late delivery (after --offline) clears the loss. */
	ck_assert_int_eq(bstat_on_receive(&p, 7), BSTAT_RX_OOO);
	ck_assert_uint_eq(p.outstanding, 1);
	ck_assert_uint_eq(bstat_pair_lost(&p), 1);
	bstat_pair_finish(&p);
}
END_TEST

/* QoS 1 redelivery with DUP: counted once as received, then as duplicates, never as out of order. */
START_TEST(test_duplicates)
{
	bstat_pair_t p;

	bstat_pair_init(&p);
	send_n(&p, 5);
	for (uint32_t s = 0; s < 5; s++) {
		bstat_on_ack(&p, s);
		ck_assert_int_eq(bstat_on_receive(&p, s), BSTAT_RX_NEW);
	}
	ck_assert_int_eq(bstat_on_receive(&p, 3), BSTAT_RX_DUP);
	ck_assert_int_eq(bstat_on_receive(&p, 4), BSTAT_RX_DUP);
	ck_assert_int_eq(bstat_on_receive(&p, 3), BSTAT_RX_DUP);
	ck_assert_uint_eq(p.received, 5);
	ck_assert_uint_eq(p.dups, 3);
	ck_assert_uint_eq(p.ooo, 0);
	ck_assert_uint_eq(p.outstanding, 0);
	ck_assert_int_eq(bstat_on_ack(&p, 2), -EALREADY);
	ck_assert_uint_eq(p.acked, 5);
	bstat_pair_finish(&p);
}
END_TEST

/* Out of order: first receipt of a sequence below the highest seen. */
START_TEST(test_out_of_order)
{
	bstat_pair_t p;

	bstat_pair_init(&p);
	send_n(&p, 6);
	ck_assert_int_eq(bstat_on_receive(&p, 0), BSTAT_RX_NEW);
	ck_assert_int_eq(bstat_on_receive(&p, 2), BSTAT_RX_NEW); /* a gap is not disorder */
	ck_assert_int_eq(bstat_on_receive(&p, 1), BSTAT_RX_OOO);
	ck_assert_int_eq(bstat_on_receive(&p, 5), BSTAT_RX_NEW);
	ck_assert_int_eq(bstat_on_receive(&p, 3), BSTAT_RX_OOO);
	ck_assert_int_eq(bstat_on_receive(&p, 4), BSTAT_RX_OOO);
	ck_assert_int_eq(bstat_on_receive(&p, 4), BSTAT_RX_DUP);
	ck_assert_uint_eq(p.ooo, 3);
	ck_assert_uint_eq(p.dups, 1);
	ck_assert_uint_eq(p.received, 6);
	bstat_pair_finish(&p);
}
END_TEST

/* Sequences never sent (another run's session, a broker inventing messages) are rejected and counted. */
START_TEST(test_bogus)
{
	bstat_pair_t p;

	bstat_pair_init(&p);
	send_n(&p, 2);
	ck_assert_int_eq(bstat_on_receive(&p, 2), BSTAT_RX_BOGUS);
	ck_assert_int_eq(bstat_on_ack(&p, 7), -EINVAL);
	ck_assert_uint_eq(p.bogus, 2);
	ck_assert_uint_eq(p.received, 0);
	ck_assert_uint_eq(p.acked, 0);
	bstat_pair_finish(&p);
}
END_TEST

/* --offline: the subscriber is away while the publisher keeps going; the queue arrives later, with the
 * in-flight one redelivered (DUP), interleaved with new messages. Exact accounting across 100k messages. */
START_TEST(test_offline_redelivery)
{
	bstat_pair_t p;
	bstat_totals_t t = { 0 }, t2 = { 0 };

	bstat_pair_init(&p);
	for (uint32_t s = 0; s < 100000; s++) {
		bstat_on_send(&p);
		bstat_on_ack(&p, s);
		if (s < 40000 || s >= 60000)
			bstat_on_receive(&p, s);
	}
	ck_assert_uint_eq(p.outstanding, 20000);
	bstat_on_receive(&p, 39999); /* the in-flight one, redelivered */
	for (uint32_t s = 40000; s < 60000; s++)
		ck_assert_int_eq(bstat_on_receive(&p, s), BSTAT_RX_OOO);
	ck_assert_uint_eq(p.outstanding, 0);
	ck_assert_uint_eq(bstat_pair_lost(&p), 0);
	ck_assert_uint_eq(p.dups, 1);
	ck_assert_uint_eq(p.ooo, 20000);
	bstat_totals_add(&t, &p);
	bstat_totals_merge(&t2, &t);
	bstat_totals_merge(&t2, &t);
	ck_assert_uint_eq(t2.pairs, 2);
	ck_assert_uint_eq(t2.sent, 200000);
	ck_assert_uint_eq(t2.received, 200000);
	ck_assert_uint_eq(t2.lost, 0);
	bstat_pair_finish(&p);
}
END_TEST

static Suite *
stats_suite(void)
{
	Suite *s = suite_create("bench-stats");
	TCase *tc = tcase_create("accounting");

	tcase_add_test(tc, test_bits);
	tcase_add_test(tc, test_sequences);
	tcase_add_test(tc, test_clean_run);
	tcase_add_test(tc, test_receive_before_ack);
	tcase_add_test(tc, test_lost);
	tcase_add_test(tc, test_duplicates);
	tcase_add_test(tc, test_out_of_order);
	tcase_add_test(tc, test_bogus);
	tcase_add_test(tc, test_offline_redelivery);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(stats_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

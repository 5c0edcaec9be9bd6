/*
 * test-batch.c — FCALL arguments are built an operation at a time: an operation whose arguments cannot all
 * be added is cut away whole (the script reads by position), a batch splits into single operations, and a
 * reply is accepted only with one result per operation.
 */
#include <check.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "fake_io.h"

static batch_op_t *add(batch_t *b, char op, const char *cid, const char *arg)
{
	batch_op_begin(b, op, cid, strlen(cid));
	if (arg)
		batch_arg(b, arg, strlen(arg));
	return batch_op_end(b);
}

static void assert_arg(const batch_t *b, uint32_t i, const char *want)
{
	uint32_t len;
	const char *p = batch_arg_at(b, i, &len);

	ck_assert_uint_eq(len, strlen(want));
	ck_assert_mem_eq(p, want, len);
}

START_TEST(test_operations_positional)
{
	batch_t *b = batch_create(7);

	ck_assert_str_eq(b->key, "rmq:{b7}");
	ck_assert_ptr_nonnull(add(b, 'D', "c1", "12"));
	ck_assert_ptr_nonnull(add(b, 'X', "c2", NULL));
	ck_assert_uint_eq(b->n_ops, 2);
	ck_assert_uint_eq(b->argc, 5);
	assert_arg(b, 0, "D");
	assert_arg(b, 1, "c1");
	assert_arg(b, 2, "12");
	assert_arg(b, 3, "X");
	assert_arg(b, 4, "c2");
	ck_assert_uint_eq(b->ops[1].arg, 3);
	ck_assert_uint_eq(b->ops[1].n_args, 2);
	batch_destroy(b);
}
END_TEST

START_TEST(test_failed_argument_cuts_the_whole_operation)
{
	batch_t *b = batch_create(1);
	char big[600];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_ptr_nonnull(add(b, 'D', "c1", "1"));
	/* The third argument's allocation fails: nothing of the operation stays. */
	batch_op_begin(b, 'A', "c2", 2);
	batch_num(b, 5);
	fake_fail_alloc_after(1);
	batch_arg(b, big, strlen(big));
	fake_fail_alloc_after(0);
	batch_num(b, 100);
	ck_assert_ptr_null(batch_op_end(b));
	ck_assert_uint_eq(b->n_ops, 1);
	ck_assert_uint_eq(b->argc, 3);
	/* And the next operation lands where the script expects it. */
	ck_assert_ptr_nonnull(add(b, 'X', "c3", NULL));
	assert_arg(b, 3, "X");
	assert_arg(b, 4, "c3");
	batch_destroy(b);
}
END_TEST

START_TEST(test_split_one_copies_operation_and_waiter)
{
	batch_t *b = batch_create(3), *one;
	batch_op_t *o;

	add(b, 'D', "c1", "1");
	o = add(b, 'I', "c2", "44");
	o->w = (waiter_t){ .kind = WAITER_REPLY, .idx = 9, .gen = 2, .seq = 77 };
	one = batch_split_one(b, 1);
	ck_assert_ptr_nonnull(one);
	ck_assert_str_eq(one->key, b->key);
	ck_assert_uint_eq(one->n_ops, 1);
	assert_arg(one, 0, "I");
	assert_arg(one, 1, "c2");
	assert_arg(one, 2, "44");
	ck_assert_uint_eq(one->ops[0].w.seq, 77);
	batch_destroy(one);
	batch_destroy(b);
}
END_TEST

START_TEST(test_reply_must_have_one_result_per_operation)
{
	batch_t *b = batch_create(0);
	redisReply *r;

	add(b, 'D', "a", "1");
	add(b, 'D', "b", "2");
	r = fake_resp_parse("*2\r\n:0\r\n:0\r\n");
	ck_assert_int_eq(batch_reply_check(b, r), 0);
	freeReplyObject(r);
	r = fake_resp_parse("*1\r\n:0\r\n");
	ck_assert_int_eq(batch_reply_check(b, r), -EPROTO);
	freeReplyObject(r);
	r = fake_resp_parse(":2\r\n");
	ck_assert_int_eq(batch_reply_check(b, r), -EPROTO);
	freeReplyObject(r);
	ck_assert_int_eq(batch_reply_check(b, NULL), -EPROTO);
	batch_destroy(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("batch");
	TCase *tc = tcase_create("batch");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_operations_positional);
	tcase_add_test(tc, test_failed_argument_cuts_the_whole_operation);
	tcase_add_test(tc, test_split_one_copies_operation_and_waiter);
	tcase_add_test(tc, test_reply_must_have_one_result_per_operation);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

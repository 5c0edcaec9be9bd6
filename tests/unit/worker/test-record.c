/*
 * test-record.c — stored records: a blob decodes to the message it was made from; damaged, truncated,
 * overflowing or expired blobs are told apart and never read past; load and restore replies of the wrong
 * type or shape are refused without being dereferenced.
 */
#include <check.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "fake_io.h"
#include "msg.h"
#include "record.h"

static msg_t *make(const char *topic, const char *payload)
{
	msg_t hdr = { .qos = 2, .topic_len = (uint16_t)strlen(topic), .payload_len = (uint32_t)strlen(payload) };
	uint8_t data[512];

	memcpy(data, topic, hdr.topic_len);
	memcpy(data + hdr.topic_len, payload, hdr.payload_len);
	return msg_create_raw(&hdr, data);
}

START_TEST(test_blob_round_trip)
{
	msg_t *m = make("a/b", "payload"), *d;
	uint8_t blob[256], qos, retain;
	uint32_t subid;
	size_t n = record_blob_size(m);
	int err;

	record_blob_encode(blob, m, 1, 1, 42, 5000);
	d = record_blob_decode(blob, n, 1000, 77, &qos, &retain, &subid, &err);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(err, 0);
	ck_assert_uint_eq(qos, 1);
	ck_assert_uint_eq(retain, 1);
	ck_assert_uint_eq(subid, 42);
	ck_assert_uint_eq(d->expire_at_ms, 77 + 4000);
	ck_assert_uint_eq(msg_data_len(d), msg_data_len(m));
	ck_assert_mem_eq(d->data, m->data, msg_data_len(m));
	msg_unref(d);
	msg_unref(m);
}
END_TEST

START_TEST(test_qblob_round_trip_and_size)
{
	msg_t *m = make("a/b", "payload"), *d;
	uint8_t blob[256], qos, retain;
	uint32_t subid;
	size_t n = record_qblob_size(m, 300, 5000);
	int err;

	/* 3 fixed bytes, subid 300 in two varint bytes, six one-byte lengths, 5000 in two: 13 + the data */
	ck_assert_uint_eq(n, 13 + msg_data_len(m));
	ck_assert_uint_lt(n, record_blob_size(m));
	record_qblob_encode(blob, m, 2, 1, 300, 5000);
	d = record_blob_decode(blob, n, 1000, 77, &qos, &retain, &subid, &err);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(err, 0);
	ck_assert_uint_eq(qos, 2);
	ck_assert_uint_eq(retain, 1);
	ck_assert_uint_eq(subid, 300);
	ck_assert_uint_eq(d->expire_at_ms, 77 + 4000);
	ck_assert_mem_eq(d->data, m->data, msg_data_len(m));
	msg_unref(d);
	/* the previous layout is still read (queues written before the upgrade) */
	record_blob_encode(blob, m, 1, 0, 7, 5000);
	d = record_blob_decode(blob, record_blob_size(m), 1000, 0, &qos, &retain, &subid, &err);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(subid, 7);
	msg_unref(d);
	msg_unref(m);
}
END_TEST

START_TEST(test_qblob_damage_detected)
{
	msg_t *m = make("a/b", "payload");
	uint8_t blob[256], qos, retain;
	uint32_t subid;
	size_t n = record_qblob_size(m, 0, 5000);
	int err;

	record_qblob_encode(blob, m, 1, 0, 0, 5000);
	for (size_t cut = 0; cut < n; cut++) {
		ck_assert_ptr_null(record_blob_decode(blob, cut, 1000, 0, &qos, &retain, &subid, &err));
		ck_assert_int_eq(err, -EINVAL);
	}
	blob[1] |= 3; /* QoS 3 */
	ck_assert_ptr_null(record_blob_decode(blob, n, 1000, 0, &qos, &retain, &subid, &err));
	record_qblob_encode(blob, m, 1, 0, 0, 5000);
	blob[4] = 0xff; /* the topic length runs on past the header: never read as data */
	ck_assert_ptr_null(record_blob_decode(blob, n, 1000, 0, &qos, &retain, &subid, &err));
	memset(blob + 3, 0xff, 12); /* a varint longer than 64 bits */
	ck_assert_ptr_null(record_blob_decode(blob, n, 1000, 0, &qos, &retain, &subid, &err));
	ck_assert_int_eq(err, -EINVAL);
	record_qblob_encode(blob, m, 1, 0, 0, 5000);
	ck_assert_ptr_null(record_blob_decode(blob, n, 6000, 0, &qos, &retain, &subid, &err));
	ck_assert_int_eq(err, -ETIME);
	msg_unref(m);
}
END_TEST

START_TEST(test_blob_damage_detected)
{
	msg_t *m = make("a/b", "payload");
	uint8_t blob[256], qos, retain;
	uint32_t subid;
	size_t n = record_blob_size(m);
	record_blob_hdr_t *h = (record_blob_hdr_t *)blob;
	int err;

	record_blob_encode(blob, m, 1, 0, 0, 5000);
	for (size_t cut = 0; cut < n; cut++) {
		ck_assert_ptr_null(record_blob_decode(blob, cut, 1000, 0, &qos, &retain, &subid, &err));
		ck_assert_int_eq(err, -EINVAL);
	}
	ck_assert_ptr_null(record_blob_decode(blob, 1000, 0, 0, &qos, &retain, &subid, &err));
	h->user_len = UINT32_MAX; /* lengths that wrap around in 32 bits */
	h->payload_len = (uint32_t)(n - sizeof(*h) - 3 + 1);
	ck_assert_ptr_null(record_blob_decode(blob, n, 1000, 0, &qos, &retain, &subid, &err));
	ck_assert_int_eq(err, -EINVAL);
	record_blob_encode(blob, m, 3, 0, 0, 5000); /* QoS 3 */
	ck_assert_ptr_null(record_blob_decode(blob, n, 1000, 0, &qos, &retain, &subid, &err));
	record_blob_encode(blob, m, 1, 0, 0, 5000);
	ck_assert_ptr_null(record_blob_decode(blob, n, 6000, 0, &qos, &retain, &subid, &err));
	ck_assert_int_eq(err, -ETIME);
	msg_unref(m);
}
END_TEST

START_TEST(test_load_reply_shapes)
{
	static const char *bad[] = { ":1\r\n", "$-1\r\n", "*3\r\n*0\r\n*0\r\n*0\r\n",
		"*4\r\n*0\r\n*1\r\n$1\r\n1\r\n*0\r\n*0\r\n", "*4\r\n*0\r\n*0\r\n*0\r\n:1\r\n",
		"*4\r\n*0\r\n*2\r\n:1\r\n:2\r\n*0\r\n*0\r\n" };
	record_load_t l;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		redisReply *r = fake_resp_parse(bad[i]);

		ck_assert_msg(record_decode_load(r, 0, 0, &l) == -EPROTO, "shape %zu accepted", i);
		freeReplyObject(r);
	}
	{
		/* Well-formed but useless entries are skipped or listed, never fatal. */
		redisReply *r = fake_resp_parse("*4\r\n*0\r\n*4\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\n5\r\n$3\r\nbad\r\n"
			"*2\r\n$1\r\n5\r\n$7\r\n70000,9\r\n*3\r\n$1\r\n7\r\n$1\r\n0\r\n$5\r\nhello\r\n");

		ck_assert_int_eq(record_decode_load(r, 0, 0, &l), 0);
		ck_assert_uint_eq(l.n, 0);
		ck_assert_uint_eq(l.n_damaged, 1);
		ck_assert_uint_eq(l.damaged[0], 5);
		ck_assert_uint_eq(l.nrx, 1);
		ck_assert_uint_eq(l.rx[0], 7);
		record_load_finish(&l);
		freeReplyObject(r);
	}
}
END_TEST

START_TEST(test_session_record_shapes)
{
	record_sess_t rs;
	mqtt_str_t f;
	mqtt_subopts_t o;
	uint32_t id;
	redisReply *r = fake_resp_parse("*3\r\n$2\r\nid\r\n*6\r\n$1\r\nv\r\n$1\r\n5\r\n$1\r\ne\r\n$2\r\n60\r\n$1\r\nh\r\n$2\r\n12\r\n"
		"*4\r\n$3\r\na/b\r\n$9\r\n2,1,1,2,9\r\n$3\r\na/#\r\n$7\r\n1,0,0,0\r\n");

	ck_assert_int_eq(record_decode_sess(r, &rs), 0);
	ck_assert_uint_eq(rs.version, 5);
	ck_assert_uint_eq(rs.expiry_s, 60);
	ck_assert_uint_eq(rs.next_qseq, 12);
	ck_assert_int_eq(record_decode_sub(&rs, 0, &f, &o, &id), 0);
	ck_assert_uint_eq(o.qos, 2);
	ck_assert(o.no_local);
	ck_assert_uint_eq(o.retain_handling, 2);
	ck_assert_uint_eq(id, 9);
	ck_assert_int_eq(record_decode_sub(&rs, 1, &f, &o, &id), -EPROTO);
	ck_assert_int_eq(record_decode_sub(&rs, 2, &f, &o, &id), -ENOENT);
	freeReplyObject(r);
	r = fake_resp_parse("*3\r\n$0\r\n\r\n*0\r\n*0\r\n"); /* empty id */
	ck_assert_int_eq(record_decode_sess(r, &rs), -EPROTO);
	freeReplyObject(r);
	r = fake_resp_parse("*3\r\n:1\r\n*0\r\n*0\r\n");
	ck_assert_int_eq(record_decode_sess(r, &rs), -EPROTO);
	freeReplyObject(r);
	ck_assert_int_eq(record_decode_sess(NULL, &rs), -EPROTO);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("record");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_blob_round_trip);
	tcase_add_test(tc, test_blob_damage_detected);
	tcase_add_test(tc, test_qblob_round_trip_and_size);
	tcase_add_test(tc, test_qblob_damage_detected);
	tcase_add_test(tc, test_load_reply_shapes);
	tcase_add_test(tc, test_session_record_shapes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

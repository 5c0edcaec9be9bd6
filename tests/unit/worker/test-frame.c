/*
 * test-frame.c — worker-to-worker frames: what is put is read back whole, frames split anywhere reassemble,
 * and headers that cannot be right are refused instead of read past.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "msg.h"

static msg_t *make_msg(const char *topic, const char *payload)
{
	size_t tl = strlen(topic), pl = strlen(payload);
	msg_t hdr = { .qos = 1, .topic_len = (uint16_t)tl, .payload_len = (uint32_t)pl };
	uint8_t data[256];

	memcpy(data, topic, tl);
	memcpy(data + tl, payload, pl);
	return msg_create_raw(&hdr, data);
}

START_TEST(test_pub_round_trip_with_group)
{
	buf_t b = { 0 };
	msg_t *m = make_msg("europe/ua/kyiv/7/0", "62 bytes of telemetry");
	frame_hdr_t h;
	const uint8_t *body, *data;
	const char *group;
	msg_t hdr;

	ck_assert_int_eq(frame_put_pub(&b, m, MF_ACK_WANTED | 4, "g/a/+", 5), 0);
	ck_assert_uint_eq(b.len % 8, 0);
	ck_assert_int_eq(frame_next(b.data, b.len, &h, &body), (int64_t)b.len);
	ck_assert_uint_eq(h.type, MF_PUB);
	ck_assert_uint_eq(h.flags, MF_ACK_WANTED | 4);
	ck_assert_int_eq(frame_get_pub(&h, body, &hdr, &data, &group), 0);
	ck_assert_uint_eq(hdr.topic_len, m->topic_len);
	ck_assert_mem_eq(data, m->data, msg_data_len(m));
	ck_assert_mem_eq(group, "g/a/+", 5);
	msg_unref(m);
	buf_finish(&b);
}
END_TEST

START_TEST(test_split_anywhere_needs_more)
{
	buf_t b = { 0 };
	frame_hdr_t h;
	const uint8_t *body;

	ck_assert_ptr_nonnull(frame_put(&b, MF_ACK, 0, 0, 42, 0));
	ck_assert_ptr_nonnull(frame_put(&b, MF_SUB, 0, 5, 0, 0));
	memcpy(b.data + b.len - 8, "a/b/c", 5);
	for (size_t cut = 0; cut < 24; cut++)
		ck_assert_int_eq(frame_next(b.data, cut, &h, &body), 0);
	ck_assert_int_eq(frame_next(b.data, b.len, &h, &body), 24);
	ck_assert_uint_eq(h.a, 42);
	ck_assert_int_eq(frame_next(b.data + 24, b.len - 24, &h, &body), 32);
	ck_assert_mem_eq(body, "a/b/c", 5);
	buf_finish(&b);
}
END_TEST

START_TEST(test_bad_headers_refused)
{
	frame_hdr_t h = { .len = 8, .type = MF_ACK }, x;
	const uint8_t *body;

	ck_assert_int_eq(frame_next((uint8_t *)&h, sizeof(h), &x, &body), -EPROTO);
	h.len = 30; /* not 8-aligned */
	ck_assert_int_eq(frame_next((uint8_t *)&h, sizeof(h), &x, &body), -EPROTO);
	h.len = 32;
	h.body = 9; /* body past the frame */
	ck_assert_int_eq(frame_next((uint8_t *)&h, sizeof(h), &x, &body), -EPROTO);
	h.len = FRAME_MAX + 8;
	h.body = 0;
	ck_assert_int_eq(frame_next((uint8_t *)&h, sizeof(h), &x, &body), -EPROTO);
}
END_TEST

START_TEST(test_pub_lengths_must_agree)
{
	buf_t b = { 0 };
	msg_t *m = make_msg("t", "p");
	frame_hdr_t h;
	const uint8_t *body, *data;
	const char *group;
	msg_t hdr;

	ck_assert_int_eq(frame_put_pub(&b, m, 1, NULL, 0), 0);
	frame_next(b.data, b.len, &h, &body);
	((msg_t *)body)->payload_len = 1000; /* claims more than the frame holds */
	ck_assert_int_eq(frame_get_pub(&h, body, &hdr, &data, &group), -EPROTO);
	msg_unref(m);
	buf_finish(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("frame");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_pub_round_trip_with_group);
	tcase_add_test(tc, test_split_anywhere_needs_more);
	tcase_add_test(tc, test_bad_headers_refused);
	tcase_add_test(tc, test_pub_lengths_must_agree);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

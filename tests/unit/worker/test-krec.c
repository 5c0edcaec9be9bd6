/*
 * test-krec.c — inbox records between nodes: a message record decodes to the message, its flags, origin and
 * shared-group key; hand-over notes carry their client id; the header is little-endian on every host; short,
 * foreign, unknown or inconsistent records are refused without being read past; node i's inbox is partition i.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "fake_io.h"
#include "krec.h"
#include "msg.h"
#include "record.h"

static msg_t *make(const char *topic, const char *payload, uint8_t qos, uint8_t retain)
{
	msg_t hdr = { .qos = qos, .retain = retain, .topic_len = (uint16_t)strlen(topic),
		.payload_len = (uint32_t)strlen(payload) };
	uint8_t data[512];

	memcpy(data, topic, hdr.topic_len);
	memcpy(data + hdr.topic_len, payload, hdr.payload_len);
	return msg_create_raw(&hdr, data);
}

START_TEST(test_msg_round_trip)
{
	msg_t *m = make("europe/ua/kyiv/7/0", "sixty-two bytes, more or less", 1, 1), *d;
	uint8_t rec[512], qos, retain;
	uint32_t subid;
	size_t n = krec_msg_size(m, 5);
	krec_t r;
	int err;

	ck_assert_uint_le(n, sizeof(rec));
	krec_msg_encode(rec, 42, 0x5, "g/a/b", 5, m, 10000);
	ck_assert_int_eq(krec_parse(rec, n, &r), 0);
	ck_assert_uint_eq(r.kind, KREC_MSG);
	ck_assert_uint_eq(r.flags, 0x5);
	ck_assert_uint_eq(r.origin, 42);
	ck_assert_uint_eq(r.group_len, 5);
	ck_assert_mem_eq(r.group, "g/a/b", 5);
	ck_assert_uint_eq(r.body_len, record_blob_size(m));
	d = record_blob_decode(r.body, r.body_len, 1000, 0, &qos, &retain, &subid, &err);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(qos, 1);
	ck_assert_uint_eq(retain, 1);
	ck_assert_uint_eq(msg_data_len(d), msg_data_len(m));
	ck_assert_mem_eq(d->data, m->data, msg_data_len(m));
	msg_unref(d);
	msg_unref(m);
}
END_TEST

START_TEST(test_header_is_little_endian)
{
	uint8_t rec[64];
	size_t n = krec_note_encode(rec, sizeof(rec), KREC_HANDOVER, 0x01020304, "dev-1", 5);
	static const uint8_t want[16] = { 0x31, 0x52, 0x4b, 0x52, KREC_HANDOVER, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0 };

	ck_assert_uint_eq(n, KREC_HDR_SIZE + 5);
	ck_assert_mem_eq(rec, want, sizeof(want));
	ck_assert_mem_eq(rec + KREC_HDR_SIZE, "dev-1", 5);
}
END_TEST

START_TEST(test_notes)
{
	uint8_t rec[64];
	krec_t r;
	size_t n = krec_note_encode(rec, sizeof(rec), KREC_HANDED, 3, "client-x", 8);

	ck_assert_int_eq(krec_parse(rec, n, &r), 0);
	ck_assert_uint_eq(r.kind, KREC_HANDED);
	ck_assert_uint_eq(r.origin, 3);
	ck_assert_uint_eq(r.body_len, 8);
	ck_assert_mem_eq(r.body, "client-x", 8);
	/* a note must name a client, and fit */
	n = krec_note_encode(rec, sizeof(rec), KREC_HANDOVER, 3, "", 0);
	ck_assert_int_eq(krec_parse(rec, n, &r), -EBADMSG);
	ck_assert_uint_eq(krec_note_encode(rec, KREC_HDR_SIZE + 3, KREC_HANDOVER, 3, "abcd", 4), 0);
}
END_TEST

START_TEST(test_damaged_refused)
{
	msg_t *m = make("t", "p", 1, 0);
	uint8_t rec[256], bad[256];
	size_t n = krec_msg_size(m, 3);
	krec_t r;

	krec_msg_encode(rec, 1, 0, "grp", 3, m, 5000);
	/* every truncation inside the header, and a group key longer than the record */
	for (size_t cut = 0; cut < KREC_HDR_SIZE + 3; cut++)
		ck_assert_int_eq(krec_parse(rec, cut, &r), -EBADMSG);
	memcpy(bad, rec, n);
	bad[0] ^= 1; /* not ours */
	ck_assert_int_eq(krec_parse(bad, n, &r), -EBADMSG);
	memcpy(bad, rec, n);
	bad[4] = 9; /* unknown kind */
	ck_assert_int_eq(krec_parse(bad, n, &r), -EBADMSG);
	memcpy(bad, rec, n);
	bad[6] = 0xff; /* group key length beyond the record */
	bad[7] = 0xff;
	ck_assert_int_eq(krec_parse(bad, n, &r), -EBADMSG);
	/* a blob cut short is left to record_blob_decode, which refuses it */
	ck_assert_int_eq(krec_parse(rec, n - 1, &r), 0);
	ck_assert_uint_eq(r.body_len, record_blob_size(m) - 1);
	msg_unref(m);
}
END_TEST

START_TEST(test_partition_mapping)
{
	for (int i = 0; i < CLUSTER_MAX_NODES; i++)
		ck_assert_int_eq(krec_partition(i), i);
	ck_assert_int_eq(krec_partition(-1), -1);
	ck_assert_int_eq(krec_partition(CLUSTER_MAX_NODES), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("krec");
	TCase *tc = tcase_create("krec");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_msg_round_trip);
	tcase_add_test(tc, test_header_is_little_endian);
	tcase_add_test(tc, test_notes);
	tcase_add_test(tc, test_damaged_refused);
	tcase_add_test(tc, test_partition_mapping);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

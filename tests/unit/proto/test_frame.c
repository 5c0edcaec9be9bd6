/*
 * test_frame.c — fixed header framing and variable byte integers (MQTT 5 sections 1.5.5, 2.1).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* [MQTT-1.5.5-1]: every boundary of the 1..4 byte encodings, both ways. */
START_TEST(test_MQTT_1_5_5_vbi_boundaries)
{
	static const struct {
		uint32_t v;
		int n;
		uint8_t enc[4];
	} cases[] = {
		{ 0, 1, { 0x00 } },
		{ 127, 1, { 0x7F } },
		{ 128, 2, { 0x80, 0x01 } },
		{ 16383, 2, { 0xFF, 0x7F } },
		{ 16384, 3, { 0x80, 0x80, 0x01 } },
		{ 2097151, 3, { 0xFF, 0xFF, 0x7F } },
		{ 2097152, 4, { 0x80, 0x80, 0x80, 0x01 } },
		{ 268435455, 4, { 0xFF, 0xFF, 0xFF, 0x7F } },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t buf[4];
		uint32_t v = 0xDEADBEEF;
		const uint8_t *g;

		ck_assert_int_eq(mqtt_vbi_size(cases[i].v), cases[i].n);
		ck_assert_int_eq(mqtt_vbi_encode(buf, cases[i].v), cases[i].n);
		ck_assert_mem_eq(buf, cases[i].enc, (size_t)cases[i].n);
		g = guard_copy(cases[i].enc, (size_t)cases[i].n);
		ck_assert_int_eq(mqtt_vbi_decode(g, (size_t)cases[i].n, &v), cases[i].n);
		ck_assert_uint_eq(v, cases[i].v);
		/* one byte short: need more, never a read past the end */
		g = guard_copy(cases[i].enc, (size_t)cases[i].n - 1);
		ck_assert_int_eq(mqtt_vbi_decode(g, (size_t)cases[i].n - 1, &v), 0);
	}
	ck_assert_int_eq(mqtt_vbi_size(268435456), 0);
	{
		uint8_t buf[4];

		ck_assert_int_eq(mqtt_vbi_encode(buf, 268435456), 0);
	}
}
END_TEST

/* A fifth byte is malformed, and known to be as soon as the fourth has its continuation bit. */
START_TEST(test_MQTT_1_5_5_vbi_five_bytes)
{
	static const uint8_t five[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0x01 };
	static const uint8_t pkt[] = { 0x30, 0x80, 0x80, 0x80, 0x80, 0x01 };
	mqtt_frame_t f;
	uint32_t v;
	const uint8_t *g;

	g = guard_copy(five, 5);
	ck_assert_int_lt(mqtt_vbi_decode(g, 5, &v), 0);
	g = guard_copy(five, 4);
	ck_assert_int_lt(mqtt_vbi_decode(g, 4, &v), 0);
	g = guard_copy(pkt, sizeof(pkt));
	ck_assert_int_eq(mqtt_frame(g, sizeof(pkt), 0, &f), MQTT_E_MALFORMED);
	g = guard_copy(pkt, 5);
	ck_assert_int_eq(mqtt_frame(g, 5, 0, &f), MQTT_E_MALFORMED);
}
END_TEST

/* Non-minimal encodings bind the sender only; the decoder takes them. */
START_TEST(test_MQTT_1_5_5_1_vbi_non_minimal_accepted)
{
	static const uint8_t enc[] = { 0x80, 0x80, 0x00 };
	uint32_t v = 1;
	const uint8_t *g = guard_copy(enc, sizeof(enc));

	ck_assert_int_eq(mqtt_vbi_decode(g, sizeof(enc), &v), 3);
	ck_assert_uint_eq(v, 0);
}
END_TEST

START_TEST(test_MQTT_2_1_frame_complete)
{
	static const uint8_t pkt[] = { 0x32, 0x03, 'a', 'b', 'c', 0x99 };
	mqtt_frame_t f;
	const uint8_t *g = guard_copy(pkt, sizeof(pkt));

	/* one byte of the next packet after it: only this packet is consumed */
	ck_assert_int_eq(mqtt_frame(g, sizeof(pkt), 0, &f), 5);
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	ck_assert_uint_eq(f.flags, 0x2);
	ck_assert_uint_eq(f.header_len, 2);
	ck_assert_uint_eq(f.remaining, 3);
	ck_assert_ptr_eq(f.body, g + 2);
	ck_assert_int_eq(mqtt_frame(g + 5, 1, 0, &f), 0);
}
END_TEST

/* Every prefix of a packet (including a partial length field) needs more; the whole one frames. */
START_TEST(test_MQTT_2_1_frame_every_prefix)
{
	uint8_t pkt[2 + 5 + 200];
	mqtt_frame_t f;
	size_t total, i;

	pkt[0] = 0x30;
	pkt[1] = 0x80 | (200 & 0x7F);
	pkt[2] = 200 >> 7;
	memset(pkt + 3, 'x', 200);
	total = 203;
	for (i = 0; i < total; i++) {
		const uint8_t *g = guard_copy(pkt, i);

		ck_assert_int_eq(mqtt_frame(g, i, 0, &f), 0);
	}
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, total), total, 0, &f), (int64_t)total);
	ck_assert_uint_eq(f.header_len, 3);
	ck_assert_uint_eq(f.remaining, 200);
	ck_assert_int_eq(mqtt_frame(NULL, 0, 0, &f), 0);
}
END_TEST

/* [MQTT-2.1.3] type 0 is reserved */
START_TEST(test_MQTT_2_1_2_reserved_type_zero)
{
	static const uint8_t pkt[] = { 0x00, 0x00 };
	mqtt_frame_t f;

	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, 2), 2, 0, &f), MQTT_E_MALFORMED);
	ck_assert_int_eq(mqtt_frame(guard_copy(pkt, 1), 1, 0, &f), MQTT_E_MALFORMED);
}
END_TEST

/* [MQTT-3.1.2-24]: refuse an oversize packet from its header, before the body arrives. */
START_TEST(test_MQTT_3_1_2_24_maximum_packet_size)
{
	static const uint8_t hdr[] = { 0x30, 0xFF, 0xFF, 0xFF, 0x7F };
	static const uint8_t small[] = { 0x30, 0x08, 0, 1, 't', 'a', 'b', 'c', 'd', 'e' };
	mqtt_frame_t f;

	ck_assert_int_eq(mqtt_frame(guard_copy(hdr, 5), 5, 1024, &f), MQTT_E_TOO_LARGE);
	ck_assert_int_eq(mqtt_frame(guard_copy(hdr, 5), 5, 0, &f), 0);
	/* total 10 bytes: exactly at the limit is fine, one under the limit is not */
	ck_assert_int_eq(mqtt_frame(guard_copy(small, 10), 10, 10, &f), 10);
	ck_assert_int_eq(mqtt_frame(guard_copy(small, 2), 2, 9, &f), MQTT_E_TOO_LARGE);
	ck_assert_int_eq(mqtt_frame(guard_copy(small, 2), 2, 10, &f), 0);
}
END_TEST

/* Largest legal remaining length frames with a 5-byte header. */
START_TEST(test_MQTT_1_5_5_frame_max_remaining)
{
	static const uint8_t hdr[] = { 0x30, 0xFF, 0xFF, 0xFF, 0x7F };
	mqtt_frame_t f;

	ck_assert_int_eq(mqtt_frame(guard_copy(hdr, 5), 5, 0, &f), 0);
	ck_assert_int_eq(mqtt_frame(guard_copy(hdr, 5), 5, 268435460, &f), 0);
	ck_assert_int_eq(mqtt_frame(guard_copy(hdr, 5), 5, 268435459, &f), MQTT_E_TOO_LARGE);
}
END_TEST

static Suite *
frame_suite(void)
{
	Suite *s = suite_create("mqtt_frame");
	TCase *tc = tcase_create("vbi");

	tcase_add_test(tc, test_MQTT_1_5_5_vbi_boundaries);
	tcase_add_test(tc, test_MQTT_1_5_5_vbi_five_bytes);
	tcase_add_test(tc, test_MQTT_1_5_5_1_vbi_non_minimal_accepted);
	suite_add_tcase(s, tc);
	tc = tcase_create("frame");
	tcase_add_test(tc, test_MQTT_2_1_frame_complete);
	tcase_add_test(tc, test_MQTT_2_1_frame_every_prefix);
	tcase_add_test(tc, test_MQTT_2_1_2_reserved_type_zero);
	tcase_add_test(tc, test_MQTT_3_1_2_24_maximum_packet_size);
	tcase_add_test(tc, test_MQTT_1_5_5_frame_max_remaining);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

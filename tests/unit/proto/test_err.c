/*
 * test_err.c — mqtt_err_answer(): every error, in MQTT 5, 3.1.1 and 3.1, before and after CONNACK, and the
 * invariants that keep the table honest (each code valid in the packet that carries it).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { C = MQTT_ACT_CONNACK, D = MQTT_ACT_DISCONNECT, X = MQTT_ACT_CLOSE };

static const struct {
	int err;
	uint8_t v5_before, v5_before_code;
	uint8_t v5_after, v5_after_code;
	uint8_t v3_before, v3_before_code;
} expect[] = {
	{ MQTT_E_MALFORMED, C, 0x81, D, 0x81, X, 0 },
	{ MQTT_E_PROTOCOL, C, 0x82, D, 0x82, X, 0 },
	{ MQTT_E_TOO_LARGE, C, 0x95, D, 0x95, X, 0 },
	{ MQTT_E_UTF8, C, 0x81, D, 0x81, X, 0 },
	{ MQTT_E_TOPIC_NAME, C, 0x90, D, 0x90, X, 0 },
	{ MQTT_E_TOPIC_FILTER, C, 0x81, D, 0x81, X, 0 },
	{ MQTT_E_VERSION, C, 0x84, D, 0x82, C, 1 },
	{ MQTT_E_CLIENT_ID, C, 0x85, D, 0x82, C, 2 },
	{ MQTT_E_PROPERTY, C, 0x82, D, 0x82, X, 0 },
	{ MQTT_E_PACKET_ID, C, 0x82, D, 0x82, X, 0 },
	{ MQTT_E_QOS, C, 0x81, D, 0x81, X, 0 },
	{ MQTT_E_NOSPACE, C, 0x83, D, 0x83, X, 0 },
	{ MQTT_E_RECEIVE_MAX, C, 0x82, D, 0x93, X, 0 },
	{ MQTT_E_TOPIC_ALIAS, C, 0x82, D, 0x94, X, 0 },
	{ MQTT_E_QUOTA, C, 0x97, D, 0x97, C, 3 },
	{ MQTT_E_UNAVAILABLE, C, 0x88, D, 0x89, C, 3 },
	{ MQTT_E_BUSY, C, 0x89, D, 0x89, C, 3 },
	{ MQTT_E_AUTH_METHOD, C, 0x8C, D, 0x82, X, 0 },
	{ MQTT_E_BAD_AUTH, C, 0x86, D, 0x87, C, 4 },
	{ MQTT_E_NOT_AUTHORIZED, C, 0x87, D, 0x87, C, 5 },
	{ MQTT_E_PROTOCOL_NAME, C, 0x84, D, 0x82, X, 0 },
	{ MQTT_E_CLOSE, X, 0, X, 0, X, 0 },
	{ MQTT_E_NOMEM, C, 0x89, D, 0x89, C, 3 },
};

#define N_EXPECT (sizeof(expect) / sizeof(expect[0]))

/* MQTT 5 section 3.2.2.2 and 3.14.2.1: the reason codes each packet may carry. */
static const uint8_t connack_ok[] = { 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
	0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F };
static const uint8_t disconnect_ok[] = { 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
	0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2 };

static bool
in(uint8_t c, const uint8_t *set, size_t n)
{
	while (n-- > 0) {
		if (set[n] == c)
			return true;
	}
	return false;
}

/* MQTT 5 section 4.13: before CONNACK a refusal in CONNACK, after it a DISCONNECT, each with its reason code. */
START_TEST(test_MQTT_4_13_1_answers_v5)
{
	size_t i;

	for (i = 0; i < N_EXPECT; i++) {
		mqtt_answer_t a = mqtt_err_answer(expect[i].err, MQTT_V5, true);
		mqtt_answer_t b = mqtt_err_answer(expect[i].err, MQTT_V5, false);

		ck_assert_msg(a.action == expect[i].v5_before, "%d before", expect[i].err);
		if (a.action != X)
			ck_assert_msg(a.code == expect[i].v5_before_code, "%d before: 0x%02x", expect[i].err, a.code);
		ck_assert_msg(b.action == expect[i].v5_after, "%d after", expect[i].err);
		if (b.action != X)
			ck_assert_msg(b.code == expect[i].v5_after_code, "%d after: 0x%02x", expect[i].err, b.code);
	}
}
END_TEST

/* [MQTT-3.2.2-6]..: 3.1.1 CONNACK return codes 1..5 where the error has one, otherwise close; 3.1 the same. */
START_TEST(test_MQTT_3_2_2_3_answers_v311_before_connack)
{
	static const uint8_t levels[] = { MQTT_V31, MQTT_V311, 6, 0x7F };
	size_t i, l;

	for (l = 0; l < sizeof(levels); l++) {
		for (i = 0; i < N_EXPECT; i++) {
			mqtt_answer_t a = mqtt_err_answer(expect[i].err, levels[l], true);

			ck_assert_msg(a.action == expect[i].v3_before, "%d level %u", expect[i].err, levels[l]);
			if (a.action == C) {
				ck_assert_uint_eq(a.code, expect[i].v3_before_code);
				ck_assert_int_eq(mqtt_err_connack_v3(expect[i].err), a.code);
			} else {
				ck_assert_int_eq(mqtt_err_connack_v3(expect[i].err), -1);
			}
		}
	}
}
END_TEST

/* [MQTT-4.8.0-1]: 3.1.1 has no DISCONNECT from the server: any error after CONNACK closes. */
START_TEST(test_MQTT_4_8_0_1_v311_closes_after_connack)
{
	size_t i;

	for (i = 0; i < N_EXPECT; i++) {
		ck_assert_uint_eq(mqtt_err_answer(expect[i].err, MQTT_V311, false).action, X);
		ck_assert_uint_eq(mqtt_err_answer(expect[i].err, MQTT_V31, false).action, X);
	}
}
END_TEST

/* [MQTT-3.1.2-1]: a wrong protocol name may get CONNACK 0x84 in MQTT 5; 3.1.1 closes without one. */
START_TEST(test_MQTT_3_1_2_1_protocol_name_answer)
{
	mqtt_answer_t a = mqtt_err_answer(MQTT_E_PROTOCOL_NAME, MQTT_V5, true);

	ck_assert_uint_eq(a.action, C);
	ck_assert_uint_eq(a.code, MQTT_RC_UNSUPPORTED_VERSION);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_PROTOCOL_NAME, MQTT_V311, true).action, X);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_PROTOCOL_NAME, MQTT_V31, true).action, X);
	/* [MQTT-1.5.3-1], [MQTT-1.5.3-2]: a client id that is not UTF-8 is a malformed CONNECT: close in 3.1.1 */
	ck_assert_uint_eq(mqtt_err_answer(MQTT_E_UTF8, MQTT_V311, true).action, X);
	a = mqtt_err_answer(MQTT_E_UTF8, MQTT_V5, true);
	ck_assert_uint_eq(a.action, C);
	ck_assert_uint_eq(a.code, MQTT_RC_MALFORMED);
}
END_TEST

/* Section 3.2.2.2 / 3.14.2.1: whatever the error and phase, the code sent is one that packet may carry. */
START_TEST(test_MQTT_3_14_2_1_codes_valid_in_their_packet)
{
	int err;

	for (err = -120; err <= 2; err++) {
		mqtt_answer_t a = mqtt_err_answer(err, MQTT_V5, true);
		mqtt_answer_t b = mqtt_err_answer(err, MQTT_V5, false);
		mqtt_answer_t c = mqtt_err_answer(err, MQTT_V311, true);

		ck_assert_ptr_nonnull(a.text);
		ck_assert_uint_gt(strlen(a.text), 0);
		if (a.action == C)
			ck_assert_msg(in(a.code, connack_ok, sizeof(connack_ok)), "%d: CONNACK 0x%02x", err, a.code);
		if (b.action == D)
			ck_assert_msg(in(b.code, disconnect_ok, sizeof(disconnect_ok)), "%d: DISCONNECT 0x%02x", err,
				b.code);
		else
			ck_assert_uint_eq(b.action, X);
		ck_assert(c.action == X || (c.action == C && c.code >= 1 && c.code <= 5));
		if (err < 0)
			ck_assert_str_eq(a.text, mqtt_err_str(err));
		ck_assert_ptr_eq(a.text, b.text);
	}
}
END_TEST

/* Nothing known about the peer's dialect (no CONNECT level read), MQTT_E_CLOSE, or a non-error: close. */
START_TEST(test_MQTT_4_13_close_cases)
{
	mqtt_answer_t a;
	size_t i;

	for (i = 0; i < N_EXPECT; i++) {
		ck_assert_uint_eq(mqtt_err_answer(expect[i].err, 0, true).action, X);
		ck_assert_uint_eq(mqtt_err_answer(expect[i].err, 0, false).action, X);
	}
	a = mqtt_err_answer(MQTT_E_CLOSE, MQTT_V5, false);
	ck_assert_uint_eq(a.action, X);
	ck_assert_uint_eq(a.code, 0);
	/* unknown values are an unspecified error, never an acceptance */
	a = mqtt_err_answer(-99, MQTT_V5, true);
	ck_assert_uint_eq(a.action, C);
	ck_assert_uint_eq(a.code, MQTT_RC_UNSPECIFIED);
	a = mqtt_err_answer(MQTT_OK, MQTT_V5, true);
	ck_assert_uint_eq(a.action, C);
	ck_assert_uint_eq(a.code, MQTT_RC_UNSPECIFIED);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_OK, MQTT_V311, true).action, X);
	ck_assert_uint_eq(mqtt_err_answer(MQTT_NEED_MORE, MQTT_V5, false).code, MQTT_RC_UNSPECIFIED);
	ck_assert_uint_eq(mqtt_err_answer(-100, MQTT_V5, false).code, MQTT_RC_UNSPECIFIED);
}
END_TEST

/* The reason strings: distinct, and the ones the broker's tests and operators look for. */
START_TEST(test_MQTT_3_14_2_2_2_reason_strings)
{
	size_t i, j;

	for (i = 0; i < N_EXPECT; i++) {
		for (j = 0; j < i; j++)
			ck_assert_str_ne(mqtt_err_str(expect[i].err), mqtt_err_str(expect[j].err));
	}
	ck_assert_str_eq(mqtt_err_answer(MQTT_E_TOPIC_FILTER, MQTT_V5, false).text, "invalid topic filter");
	ck_assert_ptr_nonnull(strstr(mqtt_err_answer(MQTT_E_RECEIVE_MAX, MQTT_V5, false).text, "Receive Maximum"));
	ck_assert_str_eq(mqtt_err_str(-99), "unknown error");
	ck_assert_str_eq(mqtt_err_str(MQTT_OK), "success");
	ck_assert_str_eq(mqtt_err_str(MQTT_NEED_MORE), "need more data");
}
END_TEST

/* The older entry points read the same table. */
START_TEST(test_MQTT_4_13_compat_functions)
{
	static const struct {
		int err;
		uint8_t rc;
	} map[] = {
		{ MQTT_OK, 0x00 }, { MQTT_E_MALFORMED, 0x81 }, { MQTT_E_PROTOCOL, 0x82 }, { MQTT_E_TOO_LARGE, 0x95 },
		{ MQTT_E_UTF8, 0x81 }, { MQTT_E_TOPIC_NAME, 0x90 }, { MQTT_E_TOPIC_FILTER, 0x81 },
		{ MQTT_E_VERSION, 0x84 }, { MQTT_E_CLIENT_ID, 0x85 }, { MQTT_E_PROPERTY, 0x82 },
		{ MQTT_E_PACKET_ID, 0x82 }, { MQTT_E_QOS, 0x81 }, { MQTT_E_NOSPACE, 0x83 },
		{ MQTT_E_RECEIVE_MAX, 0x93 }, { MQTT_E_TOPIC_ALIAS, 0x94 }, { MQTT_E_QUOTA, 0x97 },
		{ MQTT_E_UNAVAILABLE, 0x88 }, { MQTT_E_BUSY, 0x89 }, { MQTT_E_AUTH_METHOD, 0x8C },
		{ MQTT_E_BAD_AUTH, 0x86 }, { MQTT_E_NOT_AUTHORIZED, 0x87 }, { MQTT_E_PROTOCOL_NAME, 0x84 },
		{ MQTT_E_NOMEM, 0x89 }, { -99, 0x80 },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		ck_assert_msg(mqtt_err_reason(map[i].err) == map[i].rc, "%d", map[i].err);
	ck_assert_int_eq(mqtt_err_connack_v3(MQTT_OK), 0);
	ck_assert_str_eq(mqtt_type_name(MQTT_CONNECT), "CONNECT");
	ck_assert_str_eq(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
	ck_assert_str_eq(mqtt_type_name(MQTT_AUTH), "AUTH");
	ck_assert_str_eq(mqtt_type_name(0), "RESERVED");
	ck_assert_str_eq(mqtt_type_name(16), "UNKNOWN");
}
END_TEST

static Suite *
err_suite(void)
{
	Suite *s = suite_create("mqtt_err");
	TCase *tc = tcase_create("answers");

	tcase_add_test(tc, test_MQTT_4_13_1_answers_v5);
	tcase_add_test(tc, test_MQTT_3_2_2_3_answers_v311_before_connack);
	tcase_add_test(tc, test_MQTT_4_8_0_1_v311_closes_after_connack);
	tcase_add_test(tc, test_MQTT_3_1_2_1_protocol_name_answer);
	tcase_add_test(tc, test_MQTT_3_14_2_1_codes_valid_in_their_packet);
	tcase_add_test(tc, test_MQTT_4_13_close_cases);
	tcase_add_test(tc, test_MQTT_3_14_2_2_2_reason_strings);
	tcase_add_test(tc, test_MQTT_4_13_compat_functions);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(err_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

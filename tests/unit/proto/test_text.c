/*
 * test_text.c — UTF-8 rules (MQTT 5 section 1.5.4), topic names and filters (4.7), shared subscriptions (4.8.2)
 * and matching.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static bool
utf8(const char *s, size_t len)
{
	return mqtt_utf8_valid(guard_copy(s, len), len);
}

#define UTF8(lit) utf8(lit, sizeof(lit) - 1)

START_TEST(test_MQTT_1_5_4_valid)
{
	ck_assert(UTF8(""));
	ck_assert(UTF8("plain/ascii"));
	ck_assert(UTF8("\xC2\x80"));                /* U+0080 */
	ck_assert(UTF8("\xDF\xBF"));                /* U+07FF */
	ck_assert(UTF8("\xE0\xA0\x80"));            /* U+0800 */
	ck_assert(UTF8("\xED\x9F\xBF"));            /* U+D7FF */
	ck_assert(UTF8("\xEE\x80\x80"));            /* U+E000 */
	ck_assert(UTF8("\xEF\xBF\xBF"));            /* U+FFFF (non-character: allowed) */
	ck_assert(UTF8("\xF0\x90\x80\x80"));        /* U+10000 */
	ck_assert(UTF8("\xF4\x8F\xBF\xBF"));        /* U+10FFFF */
	ck_assert(UTF8("\x01\x1F\x7F"));            /* control characters: SHOULD NOT only */
	ck_assert(UTF8("\xEF\xBB\xBF" "bom"));      /* [MQTT-1.5.4-3]: BOM is not to be stripped */
}
END_TEST

START_TEST(test_MQTT_1_5_4_1_overlong)
{
	ck_assert(!UTF8("\xC0\x80"));
	ck_assert(!UTF8("\xC1\xBF"));
	ck_assert(!UTF8("\xE0\x80\x80"));
	ck_assert(!UTF8("\xE0\x9F\xBF"));
	ck_assert(!UTF8("\xF0\x80\x80\x80"));
	ck_assert(!UTF8("\xF0\x8F\xBF\xBF"));
}
END_TEST

START_TEST(test_MQTT_1_5_4_1_surrogates)
{
	ck_assert(!UTF8("\xED\xA0\x80"));           /* U+D800 */
	ck_assert(!UTF8("\xED\xBF\xBF"));           /* U+DFFF */
	ck_assert(!UTF8("a\xED\xB0\x80z"));
}
END_TEST

START_TEST(test_MQTT_1_5_4_1_above_10ffff)
{
	ck_assert(!UTF8("\xF4\x90\x80\x80"));
	ck_assert(!UTF8("\xF5\x80\x80\x80"));
	ck_assert(!UTF8("\xF8\x88\x80\x80\x80"));
	ck_assert(!UTF8("\xFF"));
	ck_assert(!UTF8("\xFE"));
}
END_TEST

START_TEST(test_MQTT_1_5_4_2_null_character)
{
	ck_assert(!utf8("\0", 1));
	ck_assert(!utf8("ab\0cd", 5));
}
END_TEST

START_TEST(test_MQTT_1_5_4_1_truncated_and_stray)
{
	ck_assert(!UTF8("\xC3"));
	ck_assert(!UTF8("\xE2\x82"));
	ck_assert(!UTF8("\xF0\x9F\x98"));
	ck_assert(!UTF8("\xC3" "a"));
	ck_assert(!UTF8("\x80"));
	ck_assert(!UTF8("a\xBF"));
	ck_assert(!UTF8("\xE2\x28\xA1"));
}
END_TEST

static bool
name_ok(const char *s)
{
	return mqtt_topic_name_valid(guard_copy(s, strlen(s)), strlen(s));
}

static bool
filter_ok(const char *s)
{
	return mqtt_topic_filter_valid(guard_copy(s, strlen(s)), strlen(s));
}

START_TEST(test_MQTT_4_7_3_topic_names)
{
	ck_assert(name_ok("a"));
	ck_assert(name_ok("/"));
	ck_assert(name_ok("sport/tennis/player1"));
	ck_assert(name_ok("//"));
	ck_assert(name_ok("$SYS/broker"));
	ck_assert(name_ok("caf\xC3\xA9"));
	ck_assert(!name_ok(""));                    /* [MQTT-4.7.3-1] */
	ck_assert(!name_ok("a/+"));                 /* [MQTT-3.3.2-2] */
	ck_assert(!name_ok("#"));
	ck_assert(!name_ok("a+b"));
	ck_assert(!name_ok("caf\xC3"));
}
END_TEST

START_TEST(test_MQTT_4_7_1_topic_filters)
{
	ck_assert(filter_ok("#"));
	ck_assert(filter_ok("+"));
	ck_assert(filter_ok("sport/#"));
	ck_assert(filter_ok("sport/tennis/#"));
	ck_assert(filter_ok("+/tennis/#"));
	ck_assert(filter_ok("sport/+/player1"));
	ck_assert(filter_ok("/+"));
	ck_assert(filter_ok("+/+"));
	ck_assert(filter_ok("a//b"));
	ck_assert(!filter_ok(""));                  /* [MQTT-4.7.3-1] */
	ck_assert(!filter_ok("sport/tennis#"));     /* [MQTT-4.7.1-1] */
	ck_assert(!filter_ok("sport/tennis/#/ranking"));
	ck_assert(!filter_ok("##"));
	ck_assert(!filter_ok("sport+"));            /* [MQTT-4.7.1-2] */
	ck_assert(!filter_ok("+sport"));
	ck_assert(!filter_ok("a/++/b"));
	ck_assert(!filter_ok("a/\xED\xA0\x80"));
}
END_TEST

static int
share(const char *s, mqtt_str_t *group, mqtt_str_t *inner)
{
	mqtt_str_t f = { guard_copy(s, strlen(s)), (uint32_t)strlen(s) };

	return mqtt_share_parse(f, group, inner);
}

START_TEST(test_MQTT_4_8_2_shared_parse)
{
	mqtt_str_t g, in;

	ck_assert_int_eq(share("$share/grp/sport/#", &g, &in), 1);
	ck_assert_uint_eq(g.len, 3);
	ck_assert_mem_eq(g.p, "grp", 3);
	ck_assert_uint_eq(in.len, 7);
	ck_assert_mem_eq(in.p, "sport/#", 7);
	ck_assert_int_eq(share("$share/g//", &g, &in), 1);
	ck_assert_uint_eq(in.len, 1);
	ck_assert_int_eq(share("sport/#", &g, &in), 0);
	ck_assert_int_eq(share("$share", &g, &in), 0);
	ck_assert_int_eq(share("$shared/g/x", &g, &in), 0);
	ck_assert_int_eq(share("$SYS/x", &g, &in), 0);
	/* [MQTT-4.8.2-1], [MQTT-4.8.2-2] */
	ck_assert_int_eq(share("$share/", &g, &in), MQTT_E_TOPIC_FILTER);
	ck_assert_int_eq(share("$share/grp", &g, &in), MQTT_E_TOPIC_FILTER);
	ck_assert_int_eq(share("$share/grp/", &g, &in), MQTT_E_TOPIC_FILTER);
	ck_assert_int_eq(share("$share//a", &g, &in), MQTT_E_TOPIC_FILTER);
	ck_assert_int_eq(share("$share/g+/a", &g, &in), MQTT_E_TOPIC_FILTER);
	ck_assert_int_eq(share("$share/#/a", &g, &in), MQTT_E_TOPIC_FILTER);
}
END_TEST

static bool
match(const char *f, const char *t)
{
	uint8_t fb[256];
	const uint8_t *tg;

	memcpy(fb, f, strlen(f));
	tg = guard_copy(t, strlen(t));
	return mqtt_topic_match(fb, strlen(f), tg, strlen(t));
}

START_TEST(test_MQTT_4_7_topic_match_table)
{
	static const struct {
		const char *filter, *topic;
		bool match;
	} cases[] = {
		{ "sport/tennis/player1/#", "sport/tennis/player1", true },
		{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
		{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
		{ "sport/#", "sport", true },
		{ "sport/#", "sports", false },
		{ "sport/#", "sport/", true },
		{ "#", "sport/tennis", true },
		{ "#", "/", true },
		{ "sport/tennis/+", "sport/tennis/player1", true },
		{ "sport/tennis/+", "sport/tennis/player1/ranking", false },
		{ "sport/+", "sport", false },
		{ "sport/+", "sport/", true },
		{ "+", "sport", true },
		{ "+", "/sport", false },
		{ "+/+", "/finance", true },
		{ "/+", "/finance", true },
		{ "+", "/finance", false },
		{ "+/tennis/#", "sport/tennis", true },
		{ "+/tennis/#", "sport/tennis/x/y", true },
		{ "a/b", "a/b", true },
		{ "a/b", "a/bc", false },
		{ "a/bc", "a/b", false },
		{ "a/b", "a", false },
		{ "a", "a/b", false },
		{ "a//b", "a//b", true },
		{ "a/+/b", "a//b", true },
		{ "A", "a", false },
		/* [MQTT-4.7.2-1] */
		{ "#", "$SYS/x", false },
		{ "+/x", "$SYS/x", false },
		{ "+/monitor/Clients", "$SYS/monitor/Clients", false },
		{ "$SYS/#", "$SYS/x", true },
		{ "$SYS/#", "$SYS", true },
		{ "$SYS/monitor/+", "$SYS/monitor/Clients", true },
		{ "a/#", "a/$x", true },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(match(cases[i].filter, cases[i].topic) == cases[i].match, "filter '%s' topic '%s': want %d",
			cases[i].filter, cases[i].topic, cases[i].match);
	}
}
END_TEST

static Suite *
text_suite(void)
{
	Suite *s = suite_create("mqtt_text");
	TCase *tc = tcase_create("utf8");

	tcase_add_test(tc, test_MQTT_1_5_4_valid);
	tcase_add_test(tc, test_MQTT_1_5_4_1_overlong);
	tcase_add_test(tc, test_MQTT_1_5_4_1_surrogates);
	tcase_add_test(tc, test_MQTT_1_5_4_1_above_10ffff);
	tcase_add_test(tc, test_MQTT_1_5_4_2_null_character);
	tcase_add_test(tc, test_MQTT_1_5_4_1_truncated_and_stray);
	suite_add_tcase(s, tc);
	tc = tcase_create("topic");
	tcase_add_test(tc, test_MQTT_4_7_3_topic_names);
	tcase_add_test(tc, test_MQTT_4_7_1_topic_filters);
	tcase_add_test(tc, test_MQTT_4_8_2_shared_parse);
	tcase_add_test(tc, test_MQTT_4_7_topic_match_table);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(text_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

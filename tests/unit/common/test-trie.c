/*
 * test-trie.c — MQTT topic matching (MQTT 5.0 section 4.7), value sets, node cleanup, walk, and a 100k-filter
 * wide level. A brute-force reference matcher cross-checks the trie on random filters and topics.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trie.h"

#define S(x) x, strlen(x)

static bool
count_cb(void *value, void *ctx)
{
	(void)value;
	(*(size_t *)ctx)++;
	return true;
}

static size_t
nmatch(const trie_t *t, const char *topic)
{
	size_t n = 0;

	ck_assert(trie_match(t, S(topic), count_cb, &n));
	return n;
}

/* Does `filter` match `topic`? One filter per trie, so the answer is exactly the filter's semantics. */
static bool
matches(const char *filter, const char *topic)
{
	trie_t *t = trie_create();
	int v;
	size_t n;

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(trie_insert(t, S(filter), &v), 0);
	n = nmatch(t, topic);
	ck_assert_uint_le(n, 1);
	trie_destroy(t);
	return n == 1;
}

static const struct {
	const char *filter, *topic;
	bool match;
} table[] = {
	/* 4.7.1.2 multi-level wildcard */
	{ "sport/tennis/player1/#", "sport/tennis/player1", true },
	{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
	{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
	{ "sport/tennis/player1/#", "sport/tennis/player2", false },
	{ "sport/#", "sport", true },
	{ "sport/#", "sport/", true },
	{ "sport/#", "sports", false },
	{ "#", "sport/tennis", true },
	{ "#", "/", true },
	{ "#", "", true },
	/* 4.7.1.3 single-level wildcard */
	{ "sport/tennis/+", "sport/tennis/player1", true },
	{ "sport/tennis/+", "sport/tennis/player2", true },
	{ "sport/tennis/+", "sport/tennis/player1/ranking", false },
	{ "sport/+", "sport", false },
	{ "sport/+", "sport/", true },
	{ "+/+", "/finance", true },
	{ "/+", "/finance", true },
	{ "+", "/finance", false },
	{ "+", "", true },
	{ "+/+", "/", true },
	{ "+/tennis/#", "sport/tennis/player1/ranking", true },
	{ "+/tennis/#", "sport/tennis", true },
	{ "sport/+/player1", "sport/tennis/player1", true },
	{ "sport/+/player1", "sport//player1", true },
	{ "a/+/+/d", "a/b/c/d", true },
	{ "a/+/+/d", "a/b/d", false },
	{ "a/+/#", "a/b", true },
	{ "a/+/#", "a", false },
	/* exact levels */
	{ "a/b", "a/b", true },
	{ "a/b", "a/b/c", false },
	{ "a/b/c", "a/b", false },
	{ "a/b", "A/b", false },
	{ "a//b", "a//b", true },
	{ "a//b", "a/b", false },
	{ "/a", "a", false },
	{ "a/", "a", false },
	{ "a/", "a/", true },
	{ "", "", true },
	{ "", "/", false },
	/* 4.7.2 topics beginning with $ */
	{ "#", "$SYS/broker/clients", false },
	{ "#", "$SYS", false },
	{ "+/monitor/Clients", "$SYS/monitor/Clients", false },
	{ "+/x", "$SYS/x", false },
	{ "+/#", "$SYS/x", false },
	{ "+", "$SYS", false },
	{ "$SYS/#", "$SYS/monitor/Clients", true },
	{ "$SYS/#", "$SYS", true },
	{ "$SYS/monitor/+", "$SYS/monitor/Clients", true },
	{ "$SYS/+", "$SYS/x", true },
	{ "$SYS/+", "$SYS", false },
	{ "$share", "$share", true },
	/* '$' only matters as the first character of the first level */
	{ "#", "a/$SYS", true },
	{ "a/+", "a/$x", true },
	{ "+/+", "x$/y", true },
};

#define NTABLE (sizeof(table) / sizeof(table[0]))

START_TEST(test_MQTT_4_7_match_table)
{
	for (size_t i = 0; i < NTABLE; i++)
		ck_assert_msg(matches(table[i].filter, table[i].topic) == table[i].match, "filter '%s' topic '%s': want %d",
		              table[i].filter, table[i].topic, table[i].match);
}
END_TEST

/* All table filters in one trie: each topic must see exactly the rows whose filter matches it alone. */
START_TEST(test_MQTT_4_7_match_table_shared_trie)
{
	trie_t *t = trie_create();
	static int vals[NTABLE];

	for (size_t i = 0; i < NTABLE; i++)
		ck_assert_int_eq(trie_insert(t, S(table[i].filter), &vals[i]), 0);
	for (size_t i = 0; i < NTABLE; i++) {
		size_t want = 0, seen;

		/* Every row inserted its own value, so a filter listed twice is reported twice. */
		for (size_t j = 0; j < NTABLE; j++)
			want += matches(table[j].filter, table[i].topic);
		seen = nmatch(t, table[i].topic);
		ck_assert_msg(seen == want, "topic '%s': %zu matches, want %zu", table[i].topic, seen, want);
	}
	trie_destroy(t);
}
END_TEST

START_TEST(test_MQTT_4_7_2_1_dollar_topics)
{
	trie_t *t = trie_create();
	int all, sys_all, sys_plus, plus_x, plus_all;

	trie_insert(t, S("#"), &all);
	trie_insert(t, S("$SYS/#"), &sys_all);
	trie_insert(t, S("$SYS/+"), &sys_plus);
	trie_insert(t, S("+/x"), &plus_x);
	trie_insert(t, S("+/#"), &plus_all);
	ck_assert_uint_eq(nmatch(t, "$SYS/x"), 2);
	ck_assert_uint_eq(nmatch(t, "SYS/x"), 3);
	ck_assert_uint_eq(nmatch(t, "$"), 0);
	trie_destroy(t);
}
END_TEST

/* Reference matcher, written from the spec text rather than from the trie, for the random cross-check. */
static bool
ref_match(const char *f, const char *t)
{
	if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
		return false;
	for (;;) {
		const char *fe = strchr(f, '/'), *te = strchr(t, '/');
		size_t fl = fe ? (size_t)(fe - f) : strlen(f), tl = te ? (size_t)(te - t) : strlen(t);

		if (fl == 1 && f[0] == '#')
			return true;
		if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
			return false;
		if (fe == NULL || te == NULL) {
			/* "a/#" also matches "a". */
			if (fe != NULL && te == NULL && strcmp(fe + 1, "#") == 0)
				return true;
			return fe == NULL && te == NULL;
		}
		f = fe + 1;
		t = te + 1;
	}
}

static void
random_levels(char *buf, bool filter, unsigned *seed)
{
	static const char *const lv[] = { "a", "b", "", "$x", "ab" };
	int n = 1 + rand_r(seed) % 4;

	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		int r = rand_r(seed) % 8;
		const char *l = lv[r % 5];

		if (filter && r == 5)
			l = "+";
		if (filter && r == 6 && i == n - 1)
			l = "#";
		if (i > 0)
			strcat(buf, "/");
		strcat(buf, l);
	}
}

START_TEST(test_random_filters_agree_with_reference)
{
	enum { NF = 300, NT = 2000 };
	static char filters[NF][32];
	static int vals[NF];
	unsigned seed = 12345;
	trie_t *t = trie_create();

	for (int i = 0; i < NF; i++) {
		random_levels(filters[i], true, &seed);
		ck_assert_int_eq(trie_insert(t, S(filters[i]), &vals[i]), 0);
	}
	ck_assert_uint_eq(trie_count(t), NF);
	for (int i = 0; i < NT; i++) {
		char topic[32];
		size_t want = 0;

		random_levels(topic, false, &seed);
		for (int j = 0; j < NF; j++)
			want += ref_match(filters[j], topic);
		ck_assert_msg(nmatch(t, topic) == want, "topic '%s'", topic);
	}
	for (int i = 0; i < NF; i++)
		ck_assert_int_eq(trie_remove(t, S(filters[i]), &vals[i]), 0);
	ck_assert_uint_eq(trie_count(t), 0);
	ck_assert_uint_eq(trie_node_count(t), 0);
	trie_destroy(t);
}
END_TEST

START_TEST(test_insert_duplicate_returns_1)
{
	trie_t *t = trie_create();
	int a, b;

	ck_assert_int_eq(trie_insert(t, S("a/+/c"), &a), 0);
	ck_assert_int_eq(trie_insert(t, S("a/+/c"), &a), 1);
	ck_assert_int_eq(trie_insert(t, S("a/+/c"), &b), 0);
	ck_assert_int_eq(trie_insert(t, S("a/+/c"), &b), 1);
	ck_assert_uint_eq(trie_count(t), 2);
	ck_assert_uint_eq(nmatch(t, "a/b/c"), 2);
	trie_destroy(t);
}
END_TEST

START_TEST(test_insert_rejects_null_value_and_deep_filter)
{
	trie_t *t = trie_create();
	static char deep[2 * (TRIE_MAX_LEVELS + 1)];
	int a;

	ck_assert_int_eq(trie_insert(t, S("a"), NULL), -EINVAL);
	for (int i = 0; i < TRIE_MAX_LEVELS; i++)
		memcpy(deep + 2 * i, "x/", 2);
	deep[2 * TRIE_MAX_LEVELS - 1] = '\0';      /* exactly TRIE_MAX_LEVELS levels */
	ck_assert_int_eq(trie_insert(t, S(deep), &a), 0);
	deep[2 * TRIE_MAX_LEVELS - 1] = '/';
	deep[2 * TRIE_MAX_LEVELS] = 'x';            /* one more */
	deep[2 * TRIE_MAX_LEVELS + 1] = '\0';
	ck_assert_int_eq(trie_insert(t, S(deep), &a), -EINVAL);
	ck_assert_uint_eq(trie_count(t), 1);
	trie_destroy(t);
}
END_TEST

START_TEST(test_remove_absent_returns_enoent)
{
	trie_t *t = trie_create();
	int a, b;

	ck_assert_int_eq(trie_remove(t, S("a/b"), &a), -ENOENT);
	trie_insert(t, S("a/b"), &a);
	ck_assert_int_eq(trie_remove(t, S("a/b"), &b), -ENOENT);   /* filter present, value not */
	ck_assert_int_eq(trie_remove(t, S("a"), &a), -ENOENT);     /* interior node */
	ck_assert_int_eq(trie_remove(t, S("a/b/c"), &a), -ENOENT); /* below a leaf */
	ck_assert_int_eq(trie_remove(t, S("a/+"), &a), -ENOENT);
	ck_assert_int_eq(trie_remove(t, S("a/b"), &a), 0);
	ck_assert_int_eq(trie_remove(t, S("a/b"), &a), -ENOENT);
	ck_assert_uint_eq(trie_node_count(t), 0);
	trie_destroy(t);
}
END_TEST

static bool
walk_count(const char *filter, size_t len, void *value, void *ctx)
{
	(void)filter;
	(void)len;
	(void)value;
	(*(size_t *)ctx)++;
	return true;
}

START_TEST(test_remove_frees_empty_nodes)
{
	static const char *const f[] = { "a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "x//y", "", "$SYS/+" };
	enum { NF = sizeof(f) / sizeof(f[0]) };
	trie_t *t = trie_create();
	int v[NF];
	size_t walked = 0;

	for (int i = 0; i < NF; i++)
		ck_assert_int_eq(trie_insert(t, S(f[i]), &v[i]), 0);
	ck_assert_uint_gt(trie_node_count(t), 0);
	/* Removing an interior filter keeps the nodes its descendants need. */
	ck_assert_int_eq(trie_remove(t, S("a/b"), &v[1]), 0);
	ck_assert_uint_eq(nmatch(t, "a/b/c"), 4);   /* a/b/c, a/+/c, a/#, # */
	for (int i = 0; i < NF; i++)
		if (i != 1)
			ck_assert_int_eq(trie_remove(t, S(f[i]), &v[i]), 0);
	ck_assert_uint_eq(trie_count(t), 0);
	ck_assert_uint_eq(trie_node_count(t), 0);
	ck_assert(trie_walk(t, walk_count, &walked));
	ck_assert_uint_eq(walked, 0);
	ck_assert_uint_eq(nmatch(t, "a/b/c"), 0);
	trie_destroy(t);
}
END_TEST

START_TEST(test_removal_leaves_siblings_intact)
{
	trie_t *t = trie_create();
	int v[3];

	trie_insert(t, S("s/1"), &v[0]);
	trie_insert(t, S("s/2"), &v[1]);
	trie_insert(t, S("s/3"), &v[2]);
	ck_assert_int_eq(trie_remove(t, S("s/2"), &v[1]), 0);  /* middle of the sibling list */
	ck_assert_uint_eq(nmatch(t, "s/1"), 1);
	ck_assert_uint_eq(nmatch(t, "s/2"), 0);
	ck_assert_uint_eq(nmatch(t, "s/3"), 1);
	ck_assert_int_eq(trie_remove(t, S("s/3"), &v[2]), 0);  /* head */
	ck_assert_int_eq(trie_remove(t, S("s/1"), &v[0]), 0);
	ck_assert_uint_eq(trie_node_count(t), 0);
	trie_destroy(t);
}
END_TEST

static int *many_base;

static bool
mark_value(void *value, void *ctx)
{
	char *seen = ctx;

	seen[(int *)value - many_base]++;
	return true;
}

START_TEST(test_many_values_on_one_filter)
{
	enum { N = 5000 };
	static int vals[N];
	static char seen[N];
	trie_t *t = trie_create();

	many_base = vals;
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(trie_insert(t, S("broadcast/#"), &vals[i]), 0);
	for (int i = 0; i < N; i += 7)
		ck_assert_int_eq(trie_insert(t, S("broadcast/#"), &vals[i]), 1);
	ck_assert_uint_eq(trie_count(t), N);
	memset(seen, 0, sizeof(seen));
	ck_assert(trie_match(t, S("broadcast/all"), mark_value, seen));
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(seen[i], 1);
	/* Remove every other one, check the survivors exactly; then the rest. */
	for (int i = 0; i < N; i += 2)
		ck_assert_int_eq(trie_remove(t, S("broadcast/#"), &vals[i]), 0);
	for (int i = 0; i < N; i += 2)
		ck_assert_int_eq(trie_remove(t, S("broadcast/#"), &vals[i]), -ENOENT);
	memset(seen, 0, sizeof(seen));
	ck_assert(trie_each_exact(t, S("broadcast/#"), mark_value, seen));
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(seen[i], i % 2);
	for (int i = 1; i < N; i += 2)
		ck_assert_int_eq(trie_remove(t, S("broadcast/#"), &vals[i]), 0);
	ck_assert_uint_eq(trie_count(t), 0);
	ck_assert_uint_eq(trie_node_count(t), 0);
	trie_destroy(t);
}
END_TEST

static bool
stop_after_one(void *value, void *ctx)
{
	(void)value;
	(*(size_t *)ctx)++;
	return false;
}

START_TEST(test_callback_false_stops_match)
{
	trie_t *t = trie_create();
	int a, b, c;
	size_t n = 0;

	trie_insert(t, S("x/#"), &a);
	trie_insert(t, S("x/+"), &b);
	trie_insert(t, S("x/y"), &c);
	ck_assert(!trie_match(t, S("x/y"), stop_after_one, &n));
	ck_assert_uint_eq(n, 1);
	n = 0;
	ck_assert(!trie_each_exact(t, S("x/y"), stop_after_one, &n));
	ck_assert_uint_eq(n, 1);
	trie_destroy(t);
}
END_TEST

START_TEST(test_each_exact_does_not_expand_wildcards)
{
	trie_t *t = trie_create();
	int a, b;
	size_t n = 0;

	trie_insert(t, S("a/+"), &a);
	trie_insert(t, S("a/b"), &b);
	ck_assert(trie_each_exact(t, S("a/+"), count_cb, &n));
	ck_assert_uint_eq(n, 1);
	n = 0;
	ck_assert(trie_each_exact(t, S("a/c"), count_cb, &n));
	ck_assert_uint_eq(n, 0);
	n = 0;
	ck_assert(trie_each_exact(t, S("a"), count_cb, &n));
	ck_assert_uint_eq(n, 0);
	trie_destroy(t);
}
END_TEST

typedef struct walked {
	char filters[16][32];
	void *values[16];
	int n;
} walked_t;

static bool
walk_collect(const char *filter, size_t len, void *value, void *ctx)
{
	walked_t *w = ctx;

	ck_assert_uint_eq(strlen(filter), len);
	ck_assert_int_lt(w->n, 16);
	snprintf(w->filters[w->n], sizeof(w->filters[0]), "%s", filter);
	w->values[w->n++] = value;
	return true;
}

START_TEST(test_walk_reconstructs_filters)
{
	static const char *const f[] = { "a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "x//y", "/lead", "", "$SYS/+" };
	enum { NF = sizeof(f) / sizeof(f[0]) };
	trie_t *t = trie_create();
	walked_t w = { .n = 0 };
	int v[NF], extra;

	for (int i = 0; i < NF; i++)
		trie_insert(t, S(f[i]), &v[i]);
	trie_insert(t, S("a/b"), &extra);
	ck_assert(trie_walk(t, walk_collect, &w));
	ck_assert_int_eq(w.n, NF + 1);
	for (int i = 0; i < NF; i++) {
		bool found = false;

		for (int j = 0; j < w.n; j++)
			found |= strcmp(w.filters[j], f[i]) == 0 && w.values[j] == &v[i];
		ck_assert_msg(found, "filter '%s' not walked", f[i]);
	}
	trie_destroy(t);
}
END_TEST

/* 100k children under one parent: lookups must go through the hash, and all of them must still match. */
START_TEST(test_100k_filters_wide_level)
{
	enum { N = 100000 };
	static int vals[N];
	trie_t *t = trie_create();
	char buf[64];
	int other;

	for (int i = 0; i < N; i++) {
		int len = snprintf(buf, sizeof(buf), "europe/ua/kyiv/%d/+", i);

		ck_assert_int_eq(trie_insert(t, buf, (size_t)len, &vals[i]), 0);
	}
	trie_insert(t, S("europe/+/kyiv/#"), &other);
	ck_assert_uint_eq(trie_count(t), N + 1);
	for (int i = 0; i < N; i++) {
		size_t n = 0;
		int len = snprintf(buf, sizeof(buf), "europe/ua/kyiv/%d/temp", i);

		ck_assert(trie_match(t, buf, (size_t)len, count_cb, &n));
		ck_assert_uint_eq(n, 2);
	}
	ck_assert_uint_eq(nmatch(t, "europe/ua/kyiv/100000/temp"), 1);
	ck_assert_uint_eq(nmatch(t, "europe/ua/kyiv/5"), 1);
	ck_assert_uint_eq(nmatch(t, "europe/ua/kyiv/5/temp/x"), 1);
	for (int i = 0; i < N; i++) {
		int len = snprintf(buf, sizeof(buf), "europe/ua/kyiv/%d/+", i);

		ck_assert_int_eq(trie_remove(t, buf, (size_t)len, &vals[i]), 0);
	}
	ck_assert_int_eq(trie_remove(t, S("europe/+/kyiv/#"), &other), 0);
	ck_assert_uint_eq(trie_count(t), 0);
	ck_assert_uint_eq(trie_node_count(t), 0);
	trie_destroy(t);
}
END_TEST

START_TEST(test_deep_topic_does_not_recurse_past_trie)
{
	enum { LEVELS = 60000 };
	static char topic[2 * LEVELS];
	trie_t *t = trie_create();
	int a, b;

	for (int i = 0; i < LEVELS; i++)
		memcpy(topic + 2 * i, "x/", 2);
	topic[2 * LEVELS - 1] = '\0';
	trie_insert(t, S("x/#"), &a);
	trie_insert(t, S("x/+/+"), &b);
	ck_assert_uint_eq(nmatch(t, topic), 1);
	trie_destroy(t);
}
END_TEST

START_TEST(test_destroy_null_and_nonempty)
{
	trie_t *t = trie_create();
	int a;

	trie_destroy(NULL);
	trie_insert(t, S("a/b"), &a);
	trie_insert(t, S("a/+/#"), &a);
	trie_destroy(t);   /* ASan reports leaks */
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("trie");
	TCase *tc = tcase_create("trie");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_MQTT_4_7_match_table);
	tcase_add_test(tc, test_MQTT_4_7_match_table_shared_trie);
	tcase_add_test(tc, test_MQTT_4_7_2_1_dollar_topics);
	tcase_add_test(tc, test_random_filters_agree_with_reference);
	tcase_add_test(tc, test_insert_duplicate_returns_1);
	tcase_add_test(tc, test_insert_rejects_null_value_and_deep_filter);
	tcase_add_test(tc, test_remove_absent_returns_enoent);
	tcase_add_test(tc, test_remove_frees_empty_nodes);
	tcase_add_test(tc, test_removal_leaves_siblings_intact);
	tcase_add_test(tc, test_many_values_on_one_filter);
	tcase_add_test(tc, test_callback_false_stops_match);
	tcase_add_test(tc, test_each_exact_does_not_expand_wildcards);
	tcase_add_test(tc, test_walk_reconstructs_filters);
	tcase_add_test(tc, test_100k_filters_wide_level);
	tcase_add_test(tc, test_deep_topic_does_not_recurse_past_trie);
	tcase_add_test(tc, test_destroy_null_and_nonempty);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

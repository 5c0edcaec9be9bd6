/*
 * test_robust.c — truncation at every length and random corruption of valid packets of every type, in 3.1.1
 * and 5: the decoders must answer with an error or a valid packet, never crash or read past the input (which
 * always ends at a guard page).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* A sample of valid packets of every type, both dialects, with properties. */
static size_t
sample_packets(uint8_t pkts[][512], size_t *lens, uint8_t *versions)
{
	size_t n = 0;
	bb_t b, p = { .n = 0 };

	bb_u8(&p, MQTT_PROP_USER_PROPERTY);
	bb_str(&p, "key");
	bb_str(&p, "value");
	bb_u8(&p, MQTT_PROP_REASON_STRING);
	bb_str(&p, "why");

#define ADD(byte0, ver) do { lens[n] = bb_packet(byte0, &b, pkts[n]); versions[n] = ver; n++; } while (0)
	connect_body(&b, "MQTT", MQTT_V311, 0xEE, "client");
	bb_str(&b, "will");
	bb_str(&b, "payload");
	bb_str(&b, "user");
	bb_str(&b, "pass");
	ADD(0x10, MQTT_V311);
	b.n = 0;
	bb_str(&b, "MQTT");
	bb_u8(&b, 5);
	bb_u8(&b, 0xEE);
	bb_u16(&b, 10);
	{
		bb_t cp = { .n = 0 }, wp = { .n = 0 };

		bb_u8(&cp, MQTT_PROP_SESSION_EXPIRY);
		bb_u32(&cp, 10);
		bb_u8(&cp, MQTT_PROP_AUTH_METHOD);
		bb_str(&cp, "m");
		bb_props(&b, &cp);
		bb_str(&b, "client");
		bb_u8(&wp, MQTT_PROP_WILL_DELAY);
		bb_u32(&wp, 3);
		bb_props(&b, &wp);
	}
	bb_str(&b, "will");
	bb_str(&b, "payload");
	bb_str(&b, "user");
	bb_str(&b, "pass");
	ADD(0x10, MQTT_V5);
	b.n = 0;
	bb_u8(&b, 0);
	bb_u8(&b, 0);
	ADD(0x20, MQTT_V311);
	bb_props(&b, &p);
	ADD(0x20, MQTT_V5);
	publish_body(&b, MQTT_V311, "a/b", 1, 3, NULL);
	ADD(0x33, MQTT_V311);
	{
		bb_t pp = { .n = 0 };

		bb_u8(&pp, MQTT_PROP_SUBSCRIPTION_ID);
		bb_vbi(&pp, 200);
		bb_u8(&pp, MQTT_PROP_CORRELATION_DATA);
		bb_bin(&pp, "cd", 2);
		bb_u8(&pp, MQTT_PROP_USER_PROPERTY);
		bb_str(&pp, "k");
		bb_str(&pp, "v");
		publish_body(&b, MQTT_V5, "a/b", 2, 3, &pp);
	}
	ADD(0x3D, MQTT_V5);
	b.n = 0;
	bb_u16(&b, 9);
	ADD(0x40, MQTT_V311);
	ADD(0x62, MQTT_V311);
	bb_u8(&b, 0x80);
	bb_props(&b, &p);
	ADD(0x50, MQTT_V5);
	b.n = 0;
	bb_u16(&b, 9);
	bb_str(&b, "a/+");
	bb_u8(&b, 1);
	bb_str(&b, "$share/g/#");
	bb_u8(&b, 2);
	ADD(0x82, MQTT_V311);
	b.n = 0;
	bb_u16(&b, 9);
	bb_props(&b, &(bb_t){ .b = { MQTT_PROP_SUBSCRIPTION_ID, 0x05 }, .n = 2 });
	bb_str(&b, "a/+");
	bb_u8(&b, 0x2D);
	ADD(0x82, MQTT_V5);
	b.n = 0;
	bb_u16(&b, 9);
	bb_u8(&b, 0);
	bb_str(&b, "a/+");
	bb_str(&b, "b");
	ADD(0xA2, MQTT_V5);
	b.n = 0;
	bb_u16(&b, 9);
	bb_props(&b, &p);
	bb_u8(&b, 0x00);
	bb_u8(&b, 0x87);
	ADD(0x90, MQTT_V5);
	ADD(0xB0, MQTT_V5);
	b.n = 0;
	bb_u16(&b, 9);
	ADD(0xB0, MQTT_V311);
	b.n = 0;
	bb_u8(&b, 0x8B);
	bb_props(&b, &p);
	ADD(0xE0, MQTT_V5);
	b.n = 0;
	bb_u8(&b, 0x18);
	{
		bb_t ap = { .n = 0 };

		bb_u8(&ap, MQTT_PROP_AUTH_METHOD);
		bb_str(&ap, "m");
		bb_u8(&ap, MQTT_PROP_AUTH_DATA);
		bb_bin(&ap, "d", 1);
		bb_props(&b, &ap);
	}
	ADD(0xF0, MQTT_V5);
	b.n = 0;
	ADD(0xC0, MQTT_V311);
	ADD(0xE0, MQTT_V311);
#undef ADD
	return n;
}

#define MAX_SAMPLES 32

START_TEST(test_MQTT_samples_decode)
{
	static uint8_t pkts[MAX_SAMPLES][512];
	size_t lens[MAX_SAMPLES], n, i;
	uint8_t versions[MAX_SAMPLES];

	n = sample_packets(pkts, lens, versions);
	for (i = 0; i < n; i++)
		ck_assert_msg(decode_pkt(pkts[i], lens[i], versions[i]) == MQTT_OK, "sample %zu", i);
}
END_TEST

/* Every prefix: mqtt_frame asks for more; every shorter body handed to a decoder: an error or a packet that
 * is still valid, and no read past the cut (the guard page sits right after it). */
START_TEST(test_MQTT_truncated_every_length)
{
	static uint8_t pkts[MAX_SAMPLES][512];
	size_t lens[MAX_SAMPLES], n, i, k;
	uint8_t versions[MAX_SAMPLES];

	n = sample_packets(pkts, lens, versions);
	for (i = 0; i < n; i++) {
		mqtt_frame_t full;

		ck_assert_int_eq(mqtt_frame(pkts[i], lens[i], 0, &full), (int64_t)lens[i]);
		for (k = 0; k < lens[i]; k++) {
			mqtt_frame_t f;

			ck_assert_int_eq(mqtt_frame(guard_copy(pkts[i], k), k, 0, &f), 0);
		}
		for (k = 0; k < full.remaining; k++) {
			mqtt_frame_t f = full;
			int rc;

			f.remaining = (uint32_t)k;
			f.body = guard_copy(pkts[i] + full.header_len, k);
			rc = decode_any(&f, versions[i]);
			ck_assert_int_le(rc, 0);
			ck_assert_int_ge(rc, MQTT_E_QOS);
			/* CONNECT's last field is mandatory, so any cut leaves it broken */
			if (full.type == MQTT_CONNECT)
				ck_assert_int_ne(rc, MQTT_OK);
		}
	}
}
END_TEST

/* Random corruption of valid packets must never crash or read out of bounds. */
START_TEST(test_MQTT_corrupted_packets)
{
	static uint8_t pkts[MAX_SAMPLES][512];
	size_t lens[MAX_SAMPLES], n, i;
	uint8_t versions[MAX_SAMPLES];
	uint32_t seed = 12345;
	int iter, ok = 0, bad = 0;

	n = sample_packets(pkts, lens, versions);
	for (iter = 0; iter < 40000; iter++) {
		uint8_t buf[512];
		size_t len, j, flips;
		mqtt_frame_t f;
		int64_t fr;
		int rc;

		i = (size_t)iter % n;
		len = lens[i];
		memcpy(buf, pkts[i], len);
		seed = seed * 1103515245u + 12345u;
		flips = 1 + (seed >> 16) % 3;
		for (j = 0; j < flips; j++) {
			seed = seed * 1103515245u + 12345u;
			buf[(seed >> 8) % len] ^= (uint8_t)(1u << ((seed >> 4) % 8));
		}
		fr = mqtt_frame(guard_copy(buf, len), len, 0, &f);
		if (fr <= 0)
			continue;
		rc = decode_any(&f, versions[i]);
		/* decoders report packet errors only, never a session-level one */
		ck_assert_int_le(rc, 0);
		ck_assert(rc >= MQTT_E_QOS || rc == MQTT_E_PROTOCOL_NAME);
		if (rc == MQTT_OK)
			ok++;
		else
			bad++;
	}
	/* the mutations must have exercised both outcomes */
	ck_assert_int_gt(ok, 0);
	ck_assert_int_gt(bad, 0);
}
END_TEST

static Suite *
robust_suite(void)
{
	Suite *s = suite_create("mqtt_robust");
	TCase *tc = tcase_create("robustness");

	tcase_add_test(tc, test_MQTT_samples_decode);
	tcase_add_test(tc, test_MQTT_truncated_every_length);
	tcase_add_test(tc, test_MQTT_corrupted_packets);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(robust_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test-store.c — the Redis session store against a fake Redis: replies PUBACKs wait for, replies of the
 * wrong type or shape, a poison operation among good ones, lost connections, damaged records at start-up,
 * and the bounds on what a client can make pile up while it waits for the store.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "record.h"
#include "redis_fake.h"
#include "sess.h"
#include "slot.h"
#include "store.h"
#include "tclient.h"

static config_t cfg;

static void setup(void)
{
	config_defaults(&cfg);
	cfg.redis_buckets = 1; /* every client in one bucket: one batch per turn */
}

/* A persistent subscriber on `filter`, offline afterwards (its session cold: only in the store). */
static void offline_subscriber(const char *cid, const char *filter)
{
	tcli_t t;
	mqtt_frame_t f;

	ck_assert_int_eq(tc_open(&t, MQTT_V311, cid, false, 0, NULL), 0);
	rf_answer_all();
	tc_subscribe(&t, 1, filter, 1);
	rf_answer_all();
	ck_assert(tc_expect(&t, MQTT_SUBACK, &f));
	fake_input(fake_conn_find(t.id), "\xe0\x00", 2);
	fake_turn();
	rf_answer_all();
	tc_close(&t);
}

START_TEST(test_puback_waits_for_the_stored_copy)
{
	tcli_t pub;

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("sub", "t/#");
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "", true, 0, NULL), 0); /* a generated id: nothing to read */
	tc_publish(&pub, "t/1", "m", 1, 1);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
	ck_assert_uint_eq(fake_rds_pending(), 1);
	rf_answer_ok(NULL);
	fake_turn();
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_lost_connection_retried_until_answered)
{
	tcli_t pub;

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("sub", "t/#");
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "", true, 0, NULL), 0); /* a generated id: nothing to read */
	tc_publish(&pub, "t/1", "m", 1, 1);
	for (int i = 0; i < 5; i++) {
		fake_rds_answer(NULL, 0, -ECONNRESET);
		fake_advance(250); /* the retry delay */
		ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
		ck_assert_uint_eq(fake_rds_pending(), 1);
	}
	rf_answer_ok(NULL);
	fake_turn();
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	ck_assert_uint_ge(W->st.store_retries, 5);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_poison_operation_set_aside_the_rest_moves)
{
	tcli_t pub;
	uint8_t buf[256];
	size_t n = 0;
	char ops[64];
	uint16_t pid;

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("a", "a/#");
	offline_subscriber("b", "b/#");
	ck_assert_int_eq(tc_open(&pub, MQTT_V5, "pub", true, 0, NULL), 0);
	rf_answer_all();
	/* Two PUBLISHes in one read: one batch with both copies. */
	for (int i = 0; i < 2; i++) {
		mqtt_publish_t p = { .qos = 1, .packet_id = (uint16_t)(i + 1),
			.topic = { (const uint8_t *)(i ? "b/1" : "a/1"), 3 }, .payload = { (const uint8_t *)"m", 1 } };

		n += mqtt_encode_publish(buf + n, sizeof(buf) - n, MQTT_V5, &p);
	}
	tc_send_raw(&pub, buf, n);
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 2);
	/* Refused as a batch until it is split; then only the second operation is refused. */
	for (int i = 0; i < 3; i++) {
		rf_answer_error("ERR poison");
		fake_advance(1000);
	}
	ck_assert_uint_eq(fake_rds_pending(), 1); /* the parts go one at a time, in order */
	rf_answer_ok(NULL);
	fake_turn();
	ck_assert_uint_eq(fake_rds_pending(), 1);
	for (int i = 0; i < 3 && fake_rds_pending(); i++) {
		rf_answer_error("ERR poison");
		fake_advance(1000);
	}
	ck_assert_uint_eq(fake_rds_pending(), 0);
	ck_assert_uint_eq(W->st.store_failed_ops, 1);
	/* The good one is acknowledged, the poisoned one is not a success (MQTT 5: 0x80). */
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, &pid), 0);
	ck_assert_uint_eq(pid, 1);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, &pid), MQTT_RC_UNSPECIFIED);
	ck_assert_uint_eq(pid, 2);
	/* And the bucket keeps moving. */
	tc_publish(&pub, "b/2", "m", 1, 3);
	rf_answer_ok(NULL);
	fake_turn();
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, &pid), 0);
	ck_assert_uint_eq(pid, 3);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_v311_refused_copy_closes_unanswered)
{
	tcli_t pub;

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("a", "a/#");
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "pub", false, 0, NULL), 0);
	rf_answer_all();
	tc_publish(&pub, "a/1", "m", 1, 1);
	for (int i = 0; i < 6 && fake_rds_pending(); i++) {
		rf_answer_error("ERR refused");
		fake_advance(1000);
	}
	/* 3.1.1 has no negative PUBACK: the publisher is closed without one and sends the message again. */
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
	ck_assert(!tc_alive(&pub));
	tc_close(&pub);
	fake_finish();
}
END_TEST

/* A persistent client back: CONNACK, and its session's load ('L') waits for an answer. */
static void reconnect_loading(tcli_t *t, const char *cid)
{
	mqtt_frame_t f;
	char ops[64];

	memset(t, 0, sizeof(*t));
	t->version = MQTT_V311;
	t->c = fake_connect();
	t->id = t->c->id;
	{
		mqtt_connect_t cn = { .version = MQTT_V311, .keep_alive = 60,
			.client_id = { (const uint8_t *)cid, (uint32_t)strlen(cid) } };
		uint8_t buf[256];

		tc_send_raw(t, buf, mqtt_encode_connect(buf, sizeof(buf), &cn));
	}
	ck_assert(tc_expect(t, MQTT_CONNACK, &f));
	ck_assert_uint_ge(rf_ops(ops, sizeof(ops)), 1);
	ck_assert_ptr_nonnull(strchr(ops, 'L'));
}

/* Reconnect `cid` (cold) and answer its load with `load` (RESP of the 'L' result, len bytes). */
static void reconnect_with_load_n(tcli_t *t, const char *cid, const char *load, size_t len)
{
	reconnect_loading(t, cid);
	rf_answer_load(load, len);
	fake_turn();
}

static void reconnect_with_load(tcli_t *t, const char *cid, const char *load)
{
	reconnect_with_load_n(t, cid, load, load ? strlen(load) : 0);
}

START_TEST(test_load_reply_of_wrong_type_fails_the_load_not_the_worker)
{
	static const char *bad[] = {
		":5\r\n",                              /* an integer */
		"$-1\r\n",                             /* nil */
		"*2\r\n*0\r\n*0\r\n",                  /* too short */
		"*4\r\n*0\r\n:1\r\n*0\r\n*0\r\n",      /* queue is not a pair list */
		"*4\r\n*0\r\n*1\r\n$1\r\n1\r\n*0\r\n*0\r\n", /* odd pair list */
		"*4\r\n*0\r\n*2\r\n$-1\r\n$-1\r\n*0\r\n*0\r\n", /* nil pairs */
	};
	tcli_t t;

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("s", "t");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reconnect_with_load(&t, "s", bad[i]);
		ck_assert_msg(!tc_alive(&t), "load reply %zu accepted", i);
		tc_close(&t);
		rf_answer_all();
	}
	/* A good load still works afterwards. */
	reconnect_with_load(&t, "s", NULL);
	ck_assert(tc_alive(&t));
	tc_close(&t);
	fake_finish();
}
END_TEST

static size_t blob_resp(char *out, size_t cap, uint64_t qseq, const char *topic, const char *payload, bool damage)
{
	msg_t hdr = { .qos = 1, .topic_len = (uint16_t)strlen(topic), .payload_len = (uint32_t)strlen(payload) };
	uint8_t data[256], blob[512];
	msg_t *m;
	size_t bl, n;
	char num[24];

	memcpy(data, topic, hdr.topic_len);
	memcpy(data + hdr.topic_len, payload, hdr.payload_len);
	m = msg_create_raw(&hdr, data);
	bl = record_blob_size(m);
	record_blob_encode(blob, m, 1, 0, 0, INT64_MAX / 2);
	if (damage)
		blob[0] ^= 0xff;
	msg_unref(m);
	n = (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)qseq);
	n = (size_t)snprintf(out, cap, "$%zu\r\n%s\r\n$%zu\r\n", n, num, bl);
	memcpy(out + n, blob, bl);
	memcpy(out + n + bl, "\r\n", 2);
	return n + bl + 2;
}

START_TEST(test_damaged_stored_message_quarantined_others_delivered)
{
	char load[4096];
	size_t n;
	tcli_t t;
	mqtt_frame_t f;
	mqtt_publish_t p;
	char ops[64];

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("s", "t");
	n = (size_t)snprintf(load, sizeof(load), "*4\r\n*0\r\n*6\r\n");
	n += blob_resp(load + n, sizeof(load) - n, 1, "t", "one", false);
	n += blob_resp(load + n, sizeof(load) - n, 2, "t", "two", true);
	n += blob_resp(load + n, sizeof(load) - n, 3, "t", "three", false);
	n += (size_t)snprintf(load + n, sizeof(load) - n, "*0\r\n*0\r\n");
	reconnect_with_load_n(&t, "s", load, n);
	ck_assert(tc_alive(&t));
	ck_assert(tc_expect(&t, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert_mem_eq(p.payload.p, "one", 3);
	ck_assert(tc_expect(&t, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert_mem_eq(p.payload.p, "three", 5);
	ck_assert_uint_eq(W->st.store_quarantined, 1);
	/* The damaged one is moved aside in Redis ('Q'), not left to fail every load. */
	ck_assert_uint_ge(rf_ops(ops, sizeof(ops)), 1);
	ck_assert_ptr_nonnull(strchr(ops, 'Q'));
	tc_close(&t);
	fake_finish();
}
END_TEST

/* A load answer holding two stored messages on "t": "one" (qseq 1) and "two" (qseq 2). Returns its length. */
static size_t two_stored(char *load, size_t cap)
{
	size_t n = (size_t)snprintf(load, cap, "*4\r\n*0\r\n*4\r\n");

	n += blob_resp(load + n, cap - n, 1, "t", "one", false);
	n += blob_resp(load + n, cap - n, 2, "t", "two", false);
	n += (size_t)snprintf(load + n, cap - n, "*0\r\n*0\r\n");
	return n;
}

/* A message arriving while its session loads is written behind the load: stored and new are each within
 * max_queued, together they were not, and the queue stayed over the bound. The oldest goes, counted. */
START_TEST(test_load_plus_arrivals_held_to_the_queue_bound)
{
	char load[4096], ops[64];
	size_t n;
	tcli_t t, pub;
	mqtt_frame_t f;
	mqtt_publish_t p;

	cfg.max_queued = 2;
	cfg.max_inflight = 1; /* what the window does not take stays queued */
	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("s", "t");
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "", true, 0, NULL), 0);
	n = two_stored(load, sizeof(load));
	reconnect_loading(&t, "s");
	tc_publish(&pub, "t", "three", 1, 1); /* while the load is in flight */
	ck_assert_uint_eq(fake_rds_pending(), 1); /* its write waits behind the load (same bucket) */
	rf_answer_load(load, n);
	fake_turn();
	ck_assert_uint_eq(W->st.dropped_queue_full, 1);
	ck_assert(tc_expect(&t, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert_mem_eq(p.payload.p, "two", 3);
	/* The dropped one leaves the store too (in the call that writes "three"). */
	ck_assert_uint_ge(rf_ops(ops, sizeof(ops)), 2);
	ck_assert_ptr_nonnull(strchr(ops, 'A'));
	ck_assert_ptr_nonnull(strchr(ops, 'D'));
	rf_answer_all();
	tc_ack(&t, MQTT_PUBACK, p.packet_id);
	ck_assert(tc_expect(&t, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert_mem_eq(p.payload.p, "three", 5);
	rf_answer_all();
	tc_close(&pub);
	tc_close(&t);
	fake_finish();
}
END_TEST

/* Out of memory at any allocation while a load is answered: either the load fails (the client is disconnected,
 * the session stays in Redis, the next CONNECT loads it) or both stored messages arrive. Never a connected
 * client missing one, which stayed in Redis unseen by its session. */
START_TEST(test_load_out_of_memory_fails_the_load_never_a_message)
{
	char load[4096];
	size_t n;
	int failed = 0;

	n = two_stored(load, sizeof(load));
	for (long k = 1; k <= 60; k++) {
		tcli_t t;
		mqtt_frame_t f;
		mqtt_publish_t p;
		int got = 0;

		rf_start(&cfg, 0, 1, NULL);
		offline_subscriber("s", "t");
		reconnect_loading(&t, "s");
		fake_fail_alloc_after(k);
		rf_answer_load(load, n);
		fake_turn();
		fake_fail_alloc_after(0);
		if (!tc_alive(&t)) {
			failed++;
			tc_close(&t);
			rf_answer_all();
			reconnect_with_load_n(&t, "s", load, n); /* the session is still there to load */
		}
		while (got < 2 && tc_expect(&t, MQTT_PUBLISH, &f)) {
			ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
			ck_assert_mem_eq(p.payload.p, got ? "two" : "one", 3);
			tc_ack(&t, MQTT_PUBACK, p.packet_id);
			got++;
		}
		ck_assert_msg(got == 2, "failing allocation %ld: %d of 2 stored messages delivered", k, got);
		rf_answer_all();
		tc_close(&t);
		fake_finish();
	}
	ck_assert_int_gt(failed, 0); /* the sweep did reach the load */
}
END_TEST

START_TEST(test_restore_skips_damaged_records_and_starts)
{
	/* A good session with one good and one damaged subscription, a record of the wrong type, and a session
	 * with an impossible protocol version (the packed records of ringmq_restore: store_lua.h). */
	static const char restore[] =
		"*4\r\n:0\r\n"
		"$42\r\ngood\0" "4\0" "600\0\0\0a/b\0" "1,0,0,0,0\0x/#/y\0" "1,0,0,0,0\r\n"
		":1\r\n"
		"$9\r\nbad\0" "99\0\0\0\r\n";
	tcli_t pub;

	rf_start_len(&cfg, 0, 1, restore, sizeof(restore) - 1);
	ck_assert_uint_eq(sess_count(), 1);
	ck_assert_ptr_nonnull(sess_find((const uint8_t *)"good", 4));
	ck_assert_uint_eq(sess_find((const uint8_t *)"good", 4)->n_subs, 1);
	ck_assert_uint_eq(W->st.store_quarantined, 3);
	/* Routing to the restored offline session works: its copy is written to the store. */
	ck_assert_int_eq(tc_open(&pub, MQTT_V5, "pub", true, 0, NULL), 0);
	tc_publish(&pub, "a/b", "m", 1, 1);
	ck_assert_uint_eq(fake_rds_pending(), 1);
	rf_answer_ok(NULL);
	fake_turn();
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	tc_close(&pub);
	fake_finish();
}
END_TEST

/* Answer the pending commands: restore calls with nothing except bucket `bucket`'s, which gets `rec`; the rest
 * ok. */
static void answer_restore_with(uint32_t bucket, const char *rec, size_t len)
{
	char key[32], resp[256];

	snprintf(key, sizeof(key), "rmq:{b%u}", bucket);
	while (fake_rds_pending()) {
		size_t kl;
		const char *k = fake_rds_argv(3, &kl);

		if (!rf_is_restore()) {
			rf_answer_ok(NULL);
		} else if (kl == strlen(key) && memcmp(k, key, kl) == 0) {
			int h = snprintf(resp, sizeof(resp), "*2\r\n:0\r\n$%zu\r\n", len);

			memcpy(resp + h, rec, len);
			memcpy(resp + h + len, "\r\n", 2);
			fake_rds_answer(resp, (size_t)h + len + 2, 0);
		} else {
			fake_rds_answer("*1\r\n:0\r\n", 8, 0);
		}
		fake_turn();
	}
}

START_TEST(test_connect_during_restore_reads_its_session_and_the_restore_leaves_it)
{
	char id[16], rec[64], resp[256];
	size_t reclen;
	tcli_t t, t2;
	mqtt_frame_t f;
	int h;

	/* A client of the last of 8 buckets: its restore call goes out after the first four have answered. */
	cfg.redis_buckets = 8;
	for (int i = 0;; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		if ((uint32_t)slot_of(id, strlen(id)) * 8 / SLOT_COUNT == 7)
			break;
	}
	strcpy(cfg.store, "redis");
	fake_init(&cfg, 0, 1);
	fake_turn();
	ck_assert_uint_eq(fake_rds_pending(), 4);
	/* Served while restoring: its CONNECT reads its session on its own ('S'), behind the restore calls. */
	ck_assert_int_eq(tc_open(&t, MQTT_V311, id, false, 0, NULL), -1);
	ck_assert_uint_eq(fake_rds_pending(), 5);
	for (int i = 0; i < 4; i++) {
		ck_assert(rf_is_restore());
		fake_rds_answer("*1\r\n:0\r\n", 8, 0);
	}
	fake_turn();
	ck_assert(!rf_is_restore());
	h = snprintf(resp, sizeof(resp), "*1\r\n*3\r\n$%zu\r\n%s\r\n*2\r\n$1\r\nv\r\n$1\r\n4\r\n"
		"*2\r\n$1\r\nt\r\n$9\r\n1,0,0,0,0\r\n", strlen(id), id);
	fake_rds_answer(resp, (size_t)h, 0);
	fake_turn();
	ck_assert(tc_expect(&t, MQTT_CONNACK, &f));
	ck_assert_int_eq(f.body[0] & 1, 1); /* session present */
	ck_assert_uint_eq(sess_find((const uint8_t *)id, strlen(id))->n_subs, 1);
	ck_assert_uint_eq(W->st.sessions_loaded_on_demand, 1);
	/* A clean start ends it while the restore of its bucket (built before that) is still to come. */
	ck_assert_int_eq(tc_open(&t2, MQTT_V311, id, true, 0, NULL), 0);
	fake_input(fake_conn_find(t2.id), "\xe0\x00", 2);
	fake_turn();
	ck_assert_ptr_null(sess_find((const uint8_t *)id, strlen(id)));
	reclen = (size_t)snprintf(rec, sizeof(rec), "%s|4||||t|1,0,0,0,0", id);
	for (size_t i = 0; i < reclen; i++)
		rec[i] = rec[i] == '|' ? '\0' : rec[i];
	answer_restore_with(7, rec, reclen);
	ck_assert(store_ready());
	ck_assert_ptr_null(sess_find((const uint8_t *)id, strlen(id)));
	ck_assert_uint_eq(sess_count(), 0);
	tc_close(&t);
	tc_close(&t2);
	fake_finish();
}
END_TEST

START_TEST(test_publish_held_until_the_restore_ends)
{
	char id[16], rec[64];
	size_t reclen;
	tcli_t pub;

	cfg.redis_buckets = 8;
	for (int i = 0;; i++) {
		snprintf(id, sizeof(id), "s%d", i);
		if ((uint32_t)slot_of(id, strlen(id)) * 8 / SLOT_COUNT == 7)
			break;
	}
	strcpy(cfg.store, "redis");
	fake_init(&cfg, 0, 1);
	fake_turn();
	/* A publisher (clean: no session to read) is served, its PUBLISH is not routed yet. */
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "", true, 0, NULL), 0); /* a generated id: nothing to read */
	tc_publish(&pub, "t", "m", 1, 1);
	ck_assert_uint_eq(W->st.publishes_held, 1);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
	/* Bucket 7 holds a session subscribed to "t": the copy is written for it, then the PUBACK. */
	reclen = (size_t)snprintf(rec, sizeof(rec), "%s|4||||t|1,0,0,0,0", id);
	for (size_t i = 0; i < reclen; i++)
		rec[i] = rec[i] == '|' ? '\0' : rec[i];
	answer_restore_with(7, rec, reclen);
	ck_assert(store_ready());
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	ck_assert_uint_ge(W->st.store_ops, 1);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_replies_waiting_for_the_store_hold_input)
{
	tcli_t pub;
	uint8_t buf[100 * 16];
	size_t n = 0;
	char ops[4096];
	uint16_t pid;
	int acks = 0;

	cfg.max_pending_replies = 16;
	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("sub", "t");
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "", true, 0, NULL), 0); /* a generated id: nothing to read */
	for (int i = 0; i < 100; i++) {
		mqtt_publish_t p = { .qos = 1, .packet_id = (uint16_t)(i + 1), .topic = { (const uint8_t *)"t", 1 },
			.payload = { (const uint8_t *)"m", 1 } };

		n += mqtt_encode_publish(buf + n, sizeof(buf) - n, MQTT_V311, &p);
	}
	tc_send_raw(&pub, buf, n);
	/* Only max_pending_replies PUBLISHes were taken; the rest waits unparsed. */
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 16);
	ck_assert(fake_conn_find(pub.id)->held);
	while (fake_rds_pending()) {
		rf_answer_ok(NULL);
		fake_turn();
		while (tc_ack_reason(&pub, MQTT_PUBACK, &pid) == 0)
			ck_assert_uint_eq(pid, ++acks);
	}
	ck_assert_int_eq(acks, 100);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_input_bounded_while_the_session_loads)
{
	tcli_t t;
	uint8_t pings[2 * 4096];
	mqtt_frame_t f;
	int pongs = 0;

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("s", "t");
	memset(&t, 0, sizeof(t));
	t.version = MQTT_V311;
	t.c = fake_connect();
	t.id = t.c->id;
	{
		mqtt_connect_t cn = { .version = MQTT_V311, .keep_alive = 60, .client_id = { (const uint8_t *)"s", 1 } };
		uint8_t buf[64];

		tc_send_raw(&t, buf, mqtt_encode_connect(buf, sizeof(buf), &cn));
	}
	for (size_t i = 0; i < sizeof(pings); i += 2)
		memcpy(pings + i, "\xc0\x00", 2);
	/* The load is not answered: the client's packets are held, and receiving stops past the bound. */
	for (int i = 0; i < 40; i++)
		fake_input(fake_conn_find(t.id), pings, sizeof(pings));
	ck_assert(fake_conn_find(t.id)->sk.paused);
	ck_assert_uint_le(fake_conn_find(t.id)->rbuf.len, (64u << 10) + sizeof(pings));
	ck_assert_uint_gt(W->st.paused_input, 0);
	rf_answer_ok(NULL);
	fake_turn();
	while (tc_recv(&t, &f))
		pongs += f.type == MQTT_PINGRESP;
	ck_assert_int_gt(pongs, 4096);
	ck_assert(!fake_conn_find(t.id)->sk.paused);
	tc_close(&t);
	fake_finish();
}
END_TEST

/* An online subscriber's copy, written (grace over), then acknowledged: 'A' in flight, 'D' made. */
static void written_then_acked(tcli_t *sub, tcli_t *pub)
{
	mqtt_frame_t f;
	mqtt_publish_t p;
	char ops[64];

	rf_start(&cfg, 0, 1, NULL);
	ck_assert_int_eq(tc_open(sub, MQTT_V311, "sub", false, 0, NULL), 0);
	rf_answer_all();
	tc_subscribe(sub, 1, "t/#", 1);
	rf_answer_all();
	ck_assert(tc_expect(sub, MQTT_SUBACK, &f));
	ck_assert_int_eq(tc_open(pub, MQTT_V311, "pub", true, 0, NULL), 0);
	rf_answer_all();
	tc_publish(pub, "t/1", "m", 1, 1);
	ck_assert(tc_expect(sub, MQTT_PUBLISH, &f));
	ck_assert_int_eq(mqtt_decode_publish(&f, MQTT_V311, &p), 0);
	ck_assert_uint_eq(fake_rds_pending(), 0); /* held */
	fake_advance(cfg.redis_write_grace_ms + 1);
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 1);
	ck_assert_str_eq(ops, "A");
	tc_ack(sub, MQTT_PUBACK, p.packet_id);
	fake_turn();
}

/* A held copy whose grace ended is being written when its subscriber acknowledges it: the delete must follow
 * (the entry left the grace table, nothing would remove the stored copy), and the publisher is answered by
 * the write, not by the acknowledgement. The write then fails (_i 0: connection lost, 1: refused) and goes
 * again, still before the delete: sent at once, the delete ran first and the write's retry put the copy back
 * for good (delivered again after every restart). */
START_TEST(test_ack_while_held_copy_is_written_deletes_it)
{
	tcli_t sub, pub;
	char ops[64];

	written_then_acked(&sub, &pub);
	ck_assert_uint_eq(fake_rds_pending(), 1); /* the delete waits for the write's answer (same bucket) */
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
	if (_i == 0)
		fake_rds_answer(NULL, 0, -ECONNRESET);
	else
		rf_answer_error("ERR busy");
	fake_turn();
	ck_assert_uint_eq(fake_rds_pending(), 0); /* the write waits for its retry, the delete behind it */
	fake_advance(250);
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 1);
	ck_assert_str_eq(ops, "A");
	rf_answer_ok(NULL);
	fake_turn();
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 1);
	ck_assert_str_eq(ops, "D");
	rf_answer_all();
	tc_close(&pub);
	tc_close(&sub);
	fake_finish();
}
END_TEST

/* A poison write split into single operations: they go one at a time, in their order, before what the bucket
 * made afterwards. */
START_TEST(test_split_batch_keeps_its_place_in_the_bucket)
{
	tcli_t pub;
	uint8_t buf[256];
	size_t n = 0;
	char ops[64];

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("a", "a/#");
	ck_assert_int_eq(tc_open(&pub, MQTT_V5, "pub", true, 0, NULL), 0);
	rf_answer_all();
	for (int i = 0; i < 2; i++) {
		mqtt_publish_t p = { .qos = 1, .packet_id = (uint16_t)(i + 1),
			.topic = { (const uint8_t *)"a/1", 3 }, .payload = { (const uint8_t *)"m", 1 } };

		n += mqtt_encode_publish(buf + n, sizeof(buf) - n, MQTT_V5, &p);
	}
	tc_send_raw(&pub, buf, n);
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 2);
	tc_publish(&pub, "a/2", "m", 1, 3); /* a later turn: waits behind the first batch */
	ck_assert_uint_eq(fake_rds_pending(), 1);
	for (int i = 0; i < 3; i++) {
		rf_answer_error("ERR poison");
		fake_advance(1000);
	}
	/* Split: the first part alone, then the second, then the later batch. */
	for (uint16_t want = 1; want <= 3; want++) {
		uint16_t pid;

		ck_assert_uint_eq(fake_rds_pending(), 1);
		ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 1);
		rf_answer_ok(NULL);
		fake_turn();
		ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, &pid), 0);
		ck_assert_uint_eq(pid, want);
	}
	ck_assert_uint_eq(fake_rds_pending(), 0);
	tc_close(&pub);
	fake_finish();
}
END_TEST

/* While a bucket's batch is in flight its later operations, over several turns, gather into one call. */
START_TEST(test_operations_gather_while_the_bucket_waits)
{
	tcli_t pub;
	char ops[64];

	rf_start(&cfg, 0, 1, NULL);
	offline_subscriber("a", "a/#");
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, "", true, 0, NULL), 0);
	tc_publish(&pub, "a/1", "m", 1, 1);
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 1);
	for (uint16_t i = 2; i <= 4; i++)
		tc_publish(&pub, "a/1", "m", 1, i);
	ck_assert_uint_eq(fake_rds_pending(), 1);
	rf_answer_ok(NULL);
	fake_turn();
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 3);
	ck_assert_str_eq(ops, "AAA");
	rf_answer_all();
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	tc_close(&pub);
	fake_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_puback_waits_for_the_stored_copy);
	tcase_add_test(tc, test_lost_connection_retried_until_answered);
	tcase_add_test(tc, test_poison_operation_set_aside_the_rest_moves);
	tcase_add_test(tc, test_v311_refused_copy_closes_unanswered);
	tcase_add_test(tc, test_load_reply_of_wrong_type_fails_the_load_not_the_worker);
	tcase_add_test(tc, test_damaged_stored_message_quarantined_others_delivered);
	tcase_add_test(tc, test_load_plus_arrivals_held_to_the_queue_bound);
	tcase_add_test(tc, test_load_out_of_memory_fails_the_load_never_a_message);
	tcase_add_test(tc, test_restore_skips_damaged_records_and_starts);
	tcase_add_test(tc, test_connect_during_restore_reads_its_session_and_the_restore_leaves_it);
	tcase_add_test(tc, test_publish_held_until_the_restore_ends);
	tcase_add_test(tc, test_replies_waiting_for_the_store_hold_input);
	tcase_add_test(tc, test_input_bounded_while_the_session_loads);
	tcase_add_loop_test(tc, test_ack_while_held_copy_is_written_deletes_it, 0, 2);
	tcase_add_test(tc, test_split_batch_keeps_its_place_in_the_bucket);
	tcase_add_test(tc, test_operations_gather_while_the_bucket_waits);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

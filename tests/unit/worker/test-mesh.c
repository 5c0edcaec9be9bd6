/*
 * test-mesh.c — worker 0 of 2 on fake I/O, with worker 1 played by the test through the channel: acks and
 * their order, refusals, and what happens to messages in flight when worker 1 dies — answered (memory store:
 * its sessions died with it) or held and sent again to its successor (durable store: nothing acknowledged
 * may be lost).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "mesh.h"
#include "msg.h"
#include "redis_fake.h"
#include "route.h"
#include "tclient.h"

static config_t cfg;

static void setup(void)
{
	config_defaults(&cfg);
	cfg.redis_buckets = 1;
}

/* Worker 1 says it has a subscriber for filter. */
static void peer_subscribes(const char *filter)
{
	buf_t b = { 0 };
	uint8_t *d = frame_put(&b, MF_SUB, 0, strlen(filter), 0, 0);

	memcpy(d, filter, strlen(filter));
	fake_chan_input(1, b.data, b.len);
	buf_finish(&b);
	fake_turn();
}

static void peer_sends(uint8_t type, uint32_t a)
{
	buf_t b = { 0 };

	frame_put(&b, type, 0, 0, a, 0);
	fake_chan_input(1, b.data, b.len);
	buf_finish(&b);
	fake_turn();
}

/* Frames worker 0 wrote to worker 1: counts of each type (PUB with ack wanted separately). */
typedef struct seen {
	int pub_ack, pub, sub, ack, nack, sync;
	uint32_t acked;
} seen_t;

static seen_t read_chan(void)
{
	seen_t s = { 0 };
	uint8_t *out;
	size_t n = fake_chan_output(1, &out), off = 0;
	frame_hdr_t h;
	const uint8_t *body;
	int64_t r;

	while ((r = frame_next(out + off, n - off, &h, &body)) > 0) {
		switch (h.type) {
		case MF_PUB:
			if (h.flags & MF_ACK_WANTED)
				s.pub_ack++;
			else
				s.pub++;
			break;
		case MF_SUB: s.sub++; break;
		case MF_ACK: s.ack++; s.acked += h.a; break;
		case MF_NACK: s.nack++; break;
		case MF_SYNC: s.sync++; break;
		default: break;
		}
		off += (size_t)r;
	}
	ck_assert_uint_eq(off, n);
	free(out);
	return s;
}

START_TEST(test_puback_waits_for_the_peer_ack)
{
	tcli_t pub;
	seen_t s;

	/* Durable store: the peer's ack says its copy is in the store; the PUBACK must wait for it. */
	rf_start(&cfg, 0, 2, NULL);
	(void)read_chan();
	peer_subscribes("europe/ua/kyiv/7/+");
	ck_assert_int_eq(tc_open(&pub, MQTT_V5, tc_id_on("pub", 0, 2), true, 0, NULL), 0);
	rf_answer_all();
	tc_publish(&pub, "europe/ua/kyiv/7/0", "m1", 1, 1);
	tc_publish(&pub, "europe/ua/kyiv/7/0", "m2", 1, 2);
	s = read_chan();
	ck_assert_int_eq(s.pub_ack, 2);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
	peer_sends(MF_ACK, 1);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
	/* A refusal is not a success: MQTT 5 gets 0x80. */
	peer_sends(MF_NACK, 1);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), MQTT_RC_UNSPECIFIED);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_memory_store_puback_does_not_wait)
{
	tcli_t pub;
	seen_t s;

	/* Memory store: the peer would hold its copy in memory only, as we hold the frame: no ack is asked and
	 * the PUBACK goes in the same turn as the frame. */
	fake_init(&cfg, 0, 2);
	(void)read_chan();
	peer_subscribes("europe/ua/kyiv/7/+");
	ck_assert_int_eq(tc_open(&pub, MQTT_V5, tc_id_on("pub", 0, 2), true, 0, NULL), 0);
	tc_publish(&pub, "europe/ua/kyiv/7/0", "m1", 1, 1);
	s = read_chan();
	ck_assert_int_eq(s.pub, 1);
	ck_assert_int_eq(s.pub_ack, 0);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), 0);
	ck_assert_uint_eq(mesh_outstanding(1), 0);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_memory_store_peer_death_answers)
{
	tcli_t sub;
	mqtt_frame_t f;

	fake_init(&cfg, 0, 2);
	peer_subscribes("t/#");
	ck_assert_int_eq(tc_open(&sub, MQTT_V311, tc_id_on("s", 0, 2), true, 0, NULL), 0);
	/* The SUBACK waits for worker 1 to know the interest... */
	tc_subscribe(&sub, 1, "u", 1);
	ck_assert(!tc_expect(&sub, MQTT_SUBACK, &f));
	ck_assert_uint_eq(mesh_outstanding(1), 1);
	mesh_peer_down(1);
	fake_turn();
	/* ... but its sessions were in its memory and died with it: nothing waits for them any more. */
	ck_assert(tc_expect(&sub, MQTT_SUBACK, &f));
	ck_assert_uint_eq(route_peer_interest_count(1), 0);
	tc_close(&sub);
	fake_finish();
}
END_TEST

START_TEST(test_slow_peer_stops_the_publishers)
{
	static uint8_t payload[1 << 20];
	msg_t hdr = { .qos = 1, .topic_len = 1, .payload_len = sizeof(payload) };
	uint8_t *data = malloc(1 + sizeof(payload)), *out;
	msg_t *m;

	/* Frames that ask for no ack are bounded by the channel's output queue: worker 1 reads nothing here
	 * (the fake channel keeps what is written), and once enough is queued clients stop being read. */
	fake_init(&cfg, 0, 2);
	data[0] = 't';
	memcpy(data + 1, payload, sizeof(payload));
	m = msg_create_raw(&hdr, data);
	ck_assert(!mesh_busy());
	for (int i = 0; i < 16 && !mesh_busy(); i++) {
		mesh_send_pub(1, m, MESH_DELIVER, NULL, 0, NULL);
		fake_turn();
	}
	ck_assert(mesh_busy());
	/* Worker 1 takes it all: reading resumes. */
	(void)fake_chan_output(1, &out);
	free(out);
	fake_turn();
	ck_assert(!mesh_busy());
	msg_unref(m);
	free(data);
	fake_finish();
}
END_TEST

START_TEST(test_durable_store_peer_death_holds_and_resends)
{
	tcli_t pub;
	seen_t s;
	uint16_t pid;

	rf_start(&cfg, 0, 2, NULL);
	(void)read_chan();
	peer_subscribes("t/#");
	ck_assert_int_eq(tc_open(&pub, MQTT_V311, tc_id_on("p", 0, 2), true, 0, NULL), 0);
	rf_answer_all();
	tc_publish(&pub, "t/1", "in flight", 1, 1);
	ck_assert_int_eq(read_chan().pub_ack, 1);
	mesh_peer_down(1);
	fake_turn();
	/* Worker 1's sessions live on in Redis: no PUBACK for a copy it never stored. */
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
	ck_assert_uint_eq(route_peer_interest_count(1), 1);
	/* Published while it is down: held too. */
	tc_publish(&pub, "t/2", "while down", 1, 2);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, NULL), -1);
	ck_assert_uint_eq(mesh_outstanding(1), 2);
	/* Its successor comes: both are sent again, in order, and acknowledged by it. */
	mesh_set_fd(1, FAKE_CHAN_FD(1));
	fake_turn();
	s = read_chan();
	ck_assert_int_eq(s.pub_ack, 2);
	ck_assert_uint_eq(W->st.mesh_resent, 2);
	peer_sends(MF_ACK, 2);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, &pid), 0);
	ck_assert_uint_eq(pid, 1);
	ck_assert_int_eq(tc_ack_reason(&pub, MQTT_PUBACK, &pid), 0);
	ck_assert_uint_eq(pid, 2);
	tc_close(&pub);
	fake_finish();
}
END_TEST

START_TEST(test_successor_interest_resynced)
{
	rf_start(&cfg, 0, 2, NULL);
	peer_subscribes("gone/#");
	peer_subscribes("kept/#");
	mesh_peer_down(1);
	ck_assert_uint_eq(route_peer_interest_count(1), 2);
	mesh_set_fd(1, FAKE_CHAN_FD(1));
	fake_turn();
	(void)read_chan();
	/* The successor restored only one of the two subscriptions: after its SYNC the other one is gone. */
	peer_subscribes("kept/#");
	ck_assert_uint_eq(route_peer_interest_count(1), 2);
	peer_sends(MF_SYNC, 0);
	ck_assert_uint_eq(route_peer_interest_count(1), 1);
	fake_finish();
}
END_TEST

START_TEST(test_frame_acked_only_when_the_copy_is_stored)
{
	tcli_t sub;
	buf_t b = { 0 };
	msg_t hdr = { .qos = 1, .topic_len = 1, .payload_len = 1 };
	msg_t *m = msg_create_raw(&hdr, (const uint8_t *)"tm");
	mqtt_frame_t f;
	seen_t s;

	rf_start(&cfg, 0, 2, NULL);
	/* A persistent subscriber of worker 0, offline: its copy goes to the store. */
	ck_assert_int_eq(tc_open(&sub, MQTT_V311, tc_id_on("s", 0, 2), false, 0, NULL), 0);
	rf_answer_all();
	(void)read_chan();
	tc_subscribe(&sub, 1, "t", 1);
	rf_answer_all();
	/* The SUBACK waits for worker 1 to know the interest too. */
	ck_assert(!tc_expect(&sub, MQTT_SUBACK, &f));
	ck_assert_int_eq(read_chan().sub, 1);
	peer_sends(MF_ACK, 1);
	ck_assert(tc_expect(&sub, MQTT_SUBACK, &f));
	fake_input(fake_conn_find(sub.id), "\xe0\x00", 2);
	fake_turn();
	rf_answer_all();
	(void)read_chan();
	frame_put_pub(&b, m, MESH_DELIVER | MF_ACK_WANTED, NULL, 0);
	fake_chan_input(1, b.data, b.len);
	fake_turn();
	s = read_chan();
	ck_assert_int_eq(s.ack, 0);
	ck_assert_uint_eq(fake_rds_pending(), 1);
	rf_answer_ok(NULL);
	fake_turn();
	s = read_chan();
	ck_assert_int_eq(s.ack, 1);
	ck_assert_uint_eq(s.acked, 1);
	msg_unref(m);
	buf_finish(&b);
	tc_close(&sub);
	fake_finish();
}
END_TEST

START_TEST(test_frames_wait_until_sessions_are_restored)
{
	/* The restarted worker's own view: a session restored from Redis, subscribed to "t". */
	char resp[256], rec[128];
	size_t reclen;
	const char *id = tc_id_on("s", 0, 2);
	buf_t b = { 0 };
	msg_t hdr = { .qos = 1, .topic_len = 1, .payload_len = 1 };
	msg_t *m = msg_create_raw(&hdr, (const uint8_t *)"tm");
	char ops[64];

	/* id NUL v NUL e NUL h NUL x NUL filter NUL options */
	reclen = (size_t)snprintf(rec, sizeof(rec), "%s|4||||t|1,0,0,0,0\r\n", id);
	for (size_t i = 0; i < reclen; i++)
		rec[i] = rec[i] == '|' ? '\0' : rec[i];
	{
		int h = snprintf(resp, sizeof(resp), "*2\r\n:0\r\n$%zu\r\n", reclen - 2);

		memcpy(resp + h, rec, reclen);
		reclen += (size_t)h;
	}
	strcpy(cfg.store, "redis");
	fake_init(&cfg, 0, 2);
	fake_turn();
	/* Worker 0 (restarted) has not restored yet; worker 1 already sends it a message for that session. */
	frame_put_pub(&b, m, MESH_DELIVER | MF_ACK_WANTED, NULL, 0);
	fake_chan_input(1, b.data, b.len);
	fake_turn();
	ck_assert_int_eq(read_chan().ack, 0);
	ck_assert(rf_is_restore());
	fake_rds_answer(resp, reclen, 0);
	fake_turn();
	/* Restored: the frame is read now and finds its session: the copy goes to the store before the ack. */
	ck_assert_uint_eq(rf_ops(ops, sizeof(ops)), 1);
	ck_assert_int_eq(ops[0], 'A');
	ck_assert_int_eq(read_chan().ack, 0);
	rf_answer_ok(NULL);
	fake_turn();
	ck_assert_int_eq(read_chan().acked, 1);
	msg_unref(m);
	buf_finish(&b);
	fake_finish();
}
END_TEST

START_TEST(test_bad_frame_drops_the_channel)
{
	uint8_t junk[32];

	fake_init(&cfg, 0, 2);
	memset(junk, 0xff, sizeof(junk));
	fake_chan_input(1, junk, sizeof(junk));
	fake_turn();
	ck_assert(!mesh_up(1));
	ck_assert_ptr_null(fake_chan(1));
	fake_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mesh");
	TCase *tc = tcase_create("mesh");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_puback_waits_for_the_peer_ack);
	tcase_add_test(tc, test_memory_store_puback_does_not_wait);
	tcase_add_test(tc, test_memory_store_peer_death_answers);
	tcase_add_test(tc, test_slow_peer_stops_the_publishers);
	tcase_add_test(tc, test_durable_store_peer_death_holds_and_resends);
	tcase_add_test(tc, test_successor_interest_resynced);
	tcase_add_test(tc, test_frame_acked_only_when_the_copy_is_stored);
	tcase_add_test(tc, test_frames_wait_until_sessions_are_restored);
	tcase_add_test(tc, test_bad_frame_drops_the_channel);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * fuzz_store_records.c — what the Redis store reads back, under libFuzzer: RESP replies as hiredis parses them,
 * handed to the load decoder (an 'L' result), the restore decoder (session records and their subscriptions)
 * and the batch reply check; and raw bytes as a stored message blob.
 *
 * Input: one selector byte (0-1: blob; else RESP), then the bytes. Oracle: no crash, no read past the reply,
 * no leak; a load that decodes lists its messages in sequence order with valid QoS, packet ids in 1..65535 and
 * states 1..3; every restored subscription is a valid filter with QoS <= 2.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <string.h>

#include "batch.h"
#include "fuzz.h"
#include "msg.h"
#include "record.h"

static void check_load(const redisReply *r)
{
	record_load_t l;

	if (record_decode_load(r, 1000000, 5000, &l) < 0)
		return;
	for (size_t i = 0; i < l.n; i++) {
		FUZZ_CHECK(l.e[i].m != NULL);
		FUZZ_CHECK(l.e[i].qos <= 2);
		FUZZ_CHECK(!i || l.e[i - 1].qseq <= l.e[i].qseq);
		FUZZ_CHECK(!l.e[i].pid || (l.e[i].state >= 1 && l.e[i].state <= 3));
	}
	for (size_t i = 0; i < l.nrx; i++)
		FUZZ_CHECK(l.rx[i] != 0);
	record_load_finish(&l);
}

static void check_sess(const redisReply *r)
{
	record_sess_t rs;
	mqtt_str_t f;
	mqtt_subopts_t o;
	uint32_t id;
	bool shared;
	int ret;

	if (record_decode_sess(r, &rs) < 0)
		return;
	FUZZ_CHECK(rs.id_len > 0 && rs.id_len <= 65535);
	for (size_t i = 0; (ret = record_decode_sub(&rs, i, &f, &o, &id)) != -ENOENT; i++) {
		if (ret < 0)
			continue;
		FUZZ_CHECK(o.qos <= 2 && o.retain_handling <= 2);
		FUZZ_CHECK(mqtt_filter_check(&f, &shared) == MQTT_OK);
	}
}

/* hiredis 0.14 allocates a multi-bulk's element array from its announced length, before any element arrives:
 * "*999999999" is a gigabyte. Redis is a trusted peer, so this is hiredis's business, not ours: inputs that
 * announce an aggregate or string longer than the whole input are skipped. */
static bool announces_too_much(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v = 0;
		size_t j;

		if (p[i] != '*' && p[i] != '$')
			continue;
		for (j = i + 1; j < n && p[j] >= '0' && p[j] <= '9' && v <= n; j++)
			v = v * 10 + (uint64_t)(p[j] - '0');
		if (v > n)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *rd;
	void *reply = NULL;

	if (size < 1)
		return 0;
	if (data[0] < 2) {
		uint8_t qos, retain;
		uint32_t subid;
		int err;
		msg_t *m = record_blob_decode(data + 1, size - 1, 1000000, 5000, &qos, &retain, &subid, &err);

		FUZZ_CHECK((m != NULL) == (err == 0));
		if (m) {
			/* the data is exactly what follows the header, whichever layout it was */
			if (data[1] == RECORD_QBLOB_MARK)
				FUZZ_CHECK(msg_data_len(m) + 11 <= size - 1 && msg_data_len(m) + 3 + 8 * 10 >= size - 1);
			else
				FUZZ_CHECK(sizeof(record_blob_hdr_t) + msg_data_len(m) == size - 1);
			FUZZ_CHECK(qos <= 2 && m->topic_len > 0);
			msg_unref(m);
		}
		return 0;
	}
	if (announces_too_much(data + 1, size - 1))
		return 0;
	rd = redisReaderCreate();
	if (!rd)
		return 0;
	redisReaderFeed(rd, (const char *)data + 1, size - 1);
	while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
		const redisReply *r = reply;
		batch_t *b = batch_create(0);

		check_load(r);
		check_sess(r);
		if (r->type == REDIS_REPLY_ARRAY)
			for (size_t i = 0; i < r->elements; i++)
				check_sess(r->element[i]);
		if (b) {
			batch_op_begin(b, 'L', "c", 1);
			batch_op_end(b);
			(void)batch_reply_check(b, r);
			batch_destroy(b);
		}
		freeReplyObject(reply);
		reply = NULL;
	}
	redisReaderFree(rd);
	return 0;
}

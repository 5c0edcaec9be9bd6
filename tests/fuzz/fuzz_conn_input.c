/*
 * fuzz_conn_input.c — a worker's whole input path under libFuzzer: bytes from up to four clients go through
 * framing, the handlers, sessions, routing and (with the fake Redis store) the store's batches, on fake I/O
 * (tests/unit/worker/fake_io.c) with a clock that moves only when the input says. State machines are fuzzed,
 * not only parsers: takeovers, wills, QoS 2 flows, acks of every kind, slow readers, store replies.
 *
 * Input: a config byte, then records [op:1][len:1][bytes:len]. op & 7: 0-3 send the bytes to client op&3
 * (connected first if it is not); 4 the clock moves len*100 ms; 5 client (len&3) reads its output; 6 client
 * (len&3)'s connection drops; 7 the oldest Redis command is answered (ok when len is even, an error or a lost
 * connection otherwise). Config byte: bit 0 the Redis store; bit 1 tiny output bounds; bit 2 receive maximum 4.
 *
 * Oracle: everything the broker writes to a client is a sequence of well-formed MQTT packets (frames that
 * decode with the client-side decoder of their type, for the connection's protocol level), each within the
 * client's Maximum Packet Size; and no leak (the fuzzers run with LeakSanitizer).
 */
#include <string.h>

#include "fuzz.h"
#include "conn.h"
#include "fake_io.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"

#define CLIENTS 4

typedef struct client {
	uint64_t id;
	uint8_t version;           /* learnt from the CONNECT we sent, as the broker learns it, to decode its output */
	bool version_known;
	uint8_t in[512];           /* the first bytes we sent, until the CONNECT is complete */
	size_t in_len;
	uint8_t out[1 << 16];      /* partial packet carried between reads */
	size_t out_len;
} client_t;

static client_t cl[CLIENTS];

static conn_t *find(int k)
{
	return cl[k].id ? fake_conn_find(cl[k].id) : NULL;
}

/* Decode one packet the broker sent, with the decoder a client would use. */
static void check_packet(const mqtt_frame_t *f, uint8_t version)
{
	union {
		mqtt_connack_t connack;
		mqtt_publish_t publish;
		mqtt_ack_t ack;
		mqtt_suback_t suback;
	} u;
	int err = 0;

	switch (f->type) {
	case MQTT_CONNACK: err = mqtt_decode_connack(f, version, &u.connack); break;
	case MQTT_PUBLISH: err = mqtt_decode_publish(f, version, &u.publish); break;
	case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP:
		err = mqtt_decode_ack(f, version, &u.ack);
		break;
	case MQTT_SUBACK: case MQTT_UNSUBACK: err = mqtt_decode_suback(f, version, &u.suback); break;
	case MQTT_PINGRESP: err = mqtt_decode_empty(f); break;
	case MQTT_DISCONNECT:
		FUZZ_CHECK(version == MQTT_V5);
		err = mqtt_decode_disconnect(f, version, &u.ack);
		break;
	default:
		FUZZ_CHECK(!"the broker sent a packet type only clients send");
	}
	if (err)
		fprintf(stderr, "broker sent type %u (%u bytes) that does not decode at level %u: %d\n", f->type,
			f->remaining, version, err);
	FUZZ_CHECK(err == 0);
}

static void check_output(client_t *c, const uint8_t *p, size_t n, uint32_t max_packet)
{
	size_t off = 0;

	if (!n)
		return;
	FUZZ_CHECK(c->out_len + n <= sizeof(c->out) || c->out_len == 0);
	while (off < n) {
		size_t take = n - off < sizeof(c->out) - c->out_len ? n - off : sizeof(c->out) - c->out_len;
		mqtt_frame_t f;
		int64_t r;

		memcpy(c->out + c->out_len, p + off, take);
		c->out_len += take;
		off += take;
		while ((r = mqtt_frame(c->out, c->out_len, 0, &f)) > 0) {
			FUZZ_CHECK(!max_packet || (uint64_t)r <= max_packet);
			check_packet(&f, c->version ? c->version : MQTT_V311);
			memmove(c->out, c->out + r, c->out_len - (size_t)r);
			c->out_len -= (size_t)r;
		}
		FUZZ_CHECK(r == 0);
	}
}

static void read_output(int k)
{
	conn_t *c = find(k);
	uint8_t *out;
	size_t n;

	if (c) {
		uint32_t max = c->max_packet_out;

		n = fake_output(c, &out);
		check_output(&cl[k], out, n, max);
		if (n && c->sk.ops->on_sent)
			c->sk.ops->on_sent(&c->sk, n);
	} else if (cl[k].id) {
		n = fake_last_output(cl[k].id, &out);
		check_output(&cl[k], out, n, 0);
	} else {
		return;
	}
	free(out);
}

static void send_bytes(int k, const uint8_t *p, size_t n)
{
	conn_t *c = find(k);

	if (!c) {
		memset(&cl[k], 0, sizeof(cl[k]));
		c = fake_connect();
		if (!c)
			return;
		cl[k].id = c->id;
	}
	/* The broker decodes the output level from the CONNECT's level byte, whatever else is wrong with it. */
	if (!cl[k].version_known) {
		size_t take = n < sizeof(cl[k].in) - cl[k].in_len ? n : sizeof(cl[k].in) - cl[k].in_len;
		mqtt_frame_t f;
		mqtt_connect_t cn;

		memcpy(cl[k].in + cl[k].in_len, p, take);
		cl[k].in_len += take;
		if (mqtt_frame(cl[k].in, cl[k].in_len, 0, &f) > 0 || cl[k].in_len == sizeof(cl[k].in)) {
			cl[k].version_known = true;
			cn.version = MQTT_V311;
			if (f.type == MQTT_CONNECT)
				(void)mqtt_decode_connect(&f, &cn);
			cl[k].version = cn.version == MQTT_V31 || cn.version == MQTT_V5 ? cn.version : MQTT_V311;
		}
	}
	fake_input(c, p, n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(LOG_ERR); /* one line per connection would be most of the time spent */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	config_t cfg;
	size_t off = 1;

	if (size < 1)
		return 0;
	memset(cl, 0, sizeof(cl));
	config_defaults(&cfg);
	cfg.redis_buckets = 2;
	cfg.connect_timeout_ms = 2000;
	if (data[0] & 2) {
		cfg.max_packet_size = 4096;
		cfg.max_outbuf = 65536;
		cfg.max_outbuf_qos0 = 2048;
		cfg.max_pending_replies = 16;
		cfg.max_subscriptions = 4;
		cfg.max_queued = 8;
	}
	if (data[0] & 4)
		cfg.receive_maximum = 4;
	if (data[0] & 1) {
		strcpy(cfg.store, "redis");
		fake_init(&cfg, 0, 1);
		fake_turn();
		while (fake_rds_pending())
			fake_rds_answer("*0\r\n", 4, 0);
	} else {
		fake_init(&cfg, 0, 1);
	}
	fake_turn();
	while (off + 2 <= size) {
		uint8_t op = data[off] & 7, len = data[off + 1];
		const uint8_t *p = data + off + 2;

		if (off + 2 + len > size)
			len = (uint8_t)(size - off - 2);
		off += 2u + len;
		switch (op) {
		case 0: case 1: case 2: case 3:
			send_bytes(op, p, len);
			break;
		case 4:
			fake_advance((uint64_t)len * 100);
			break;
		case 5:
			read_output(len & 3);
			break;
		case 6:
			if (find(len & 3))
				find(len & 3)->sk.ops->on_eof(&find(len & 3)->sk, 0);
			break;
		case 7:
			if (!fake_rds_pending())
				break;
			if (len % 2 == 0)
				fake_rds_answer_ok(NULL, 0);
			else if (len % 4 == 1)
				fake_rds_answer("-ERR fuzzed\r\n", 13, 0);
			else
				fake_rds_answer(NULL, 0, -104 /* ECONNRESET */);
			break;
		}
		fake_turn();
	}
	for (int k = 0; k < CLIENTS; k++)
		read_output(k);
	fake_finish();
	return 0;
}

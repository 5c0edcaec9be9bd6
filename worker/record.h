/*
 * record.h — what the Redis store holds, encoded and decoded: message blobs, and the replies of the load
 * ('L') and restore operations. No I/O; every reply is checked for its type and shape before it is read,
 * because a reply is input like any other: a nil, an integer or a short array where a string or a pair list
 * was expected is reported as damaged, never dereferenced. Worker thread only (decoded messages are
 * allocated with msg_create_raw).
 */
#ifndef RINGMQ_WORKER_RECORD_H
#define RINGMQ_WORKER_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"
#include "sess.h"

struct msg;
struct redisReply;

/* Stored message header, followed by the msg_t data bytes. Native layout: written and read by ringmq only. */
typedef struct record_blob_hdr {
	uint32_t magic;
	uint8_t qos;
	uint8_t retain;
	uint8_t flags;
	uint8_t pfi;
	uint32_t subid;
	uint32_t user_len;
	int64_t expire_unix_ms;    /* when the message stops being deliverable */
	uint32_t payload_len;
	uint16_t topic_len, ct_len, rt_len, cd_len;
} record_blob_hdr_t;

#define RECORD_BLOB_MAGIC 0x524d5131u /* "RMQ1" */

size_t record_blob_size(const struct msg *m);
/* Write the blob of m (record_blob_size bytes) to out. */
void record_blob_encode(uint8_t *out, const struct msg *m, uint8_t qos, uint8_t retain, uint32_t subid,
	int64_t expire_unix_ms);
/*
 * The compact blob of a queued message (what the store writes to Redis since issue 11): a marker byte
 * RECORD_QBLOB_MARK, a byte of qos (bits 0-1), retain (bit 2), payload format indicator present (bit 3),
 * message expiry present (bit 4), the payload format indicator, then LEB128 varints of subid, topic, content
 * type, response topic, correlation data, user properties and payload lengths and the absolute expiry (unix
 * ms), then the msg_t data bytes. A 62-byte message on a short topic carries 16 header bytes instead of 40.
 * record_qblob_size is exact for the same arguments.
 */
#define RECORD_QBLOB_MARK 0xb2
size_t record_qblob_size(const struct msg *m, uint32_t subid, int64_t expire_unix_ms);
void record_qblob_encode(uint8_t *out, const struct msg *m, uint8_t qos, uint8_t retain, uint32_t subid,
	int64_t expire_unix_ms);
/*
 * Decode a blob (either layout: the compact one above or record_blob_hdr_t). now_unix / now_mono: the two clocks, to turn the absolute expiry into the worker's
 * monotonic one. Returns the message (one reference) and fills qos/retain/subid; NULL with *err = -ETIME
 * when it expired, -EINVAL when it is damaged, -ENOMEM.
 */
struct msg *record_blob_decode(const void *p, size_t len, uint64_t now_unix, uint64_t now_mono, uint8_t *qos,
	uint8_t *retain, uint32_t *subid, int *err);

/* A decoded load reply: the session's stored messages in sequence order, its QoS 2 ids, and what must be
 * cleaned up (expired entries deleted, damaged ones quarantined). */
typedef struct record_load {
	sess_entry_t *e;
	size_t n;
	uint16_t *rx;
	size_t nrx;
	uint64_t *expired;         /* sequence numbers */
	size_t n_expired;
	uint64_t *damaged;
	size_t n_damaged;
} record_load_t;

/* Decode the reply of an 'L' operation. 0; -EPROTO when its shape is wrong (nothing decoded); -ENOMEM.
 * Damaged or expired entries are listed, not fatal. */
int record_decode_load(const struct redisReply *r, uint64_t now_unix, uint64_t now_mono, record_load_t *out);
/* Release what record_decode_load kept (and the references of entries not handed over: set n = 0 after
 * handing them to sess_loaded). */
void record_load_finish(record_load_t *l);

/* One stored session: of an 'S' read ({cid, meta pairs, subscription pairs}: record_decode_sess) or of a
 * restore (a packed string: record_decode_packed). */
typedef struct record_sess {
	const char *id;
	size_t id_len;
	uint8_t version;
	uint32_t expiry_s;
	uint64_t next_qseq;
	uint64_t expire_unix_ms;   /* 0: not recorded */
	const struct redisReply *subs; /* pairs filter -> options, checked by record_decode_sub */
	const char *packed;        /* or (a restore's packed record) "filter NUL options" fields, NUL-separated */
	size_t packed_len;
} record_sess_t;

/* -EPROTO when x is not a session record. */
int record_decode_sess(const struct redisReply *x, record_sess_t *out);
/* Subscription i (0-based pair) of a session record; -EPROTO when damaged, -ENOENT past the end. */
int record_decode_sub(const record_sess_t *rs, size_t i, mqtt_str_t *filter, mqtt_subopts_t *opts,
	uint32_t *subid);
/* One session of a ringmq_restore reply: the packed string "cid NUL v NUL e NUL h NUL x (NUL filter NUL
 * options)*" (store_lua.h), absent fields empty. The record points into p. -EPROTO when it is not one. */
int record_decode_packed(const char *p, size_t len, record_sess_t *out);
/* The next subscription of rs (either kind), *pos starting at 0: 0, -EPROTO when that one is damaged (the next
 * call goes on after it), -ENOENT past the end. */
int record_next_sub(record_sess_t *rs, size_t *pos, mqtt_str_t *filter, mqtt_subopts_t *opts, uint32_t *subid);

#endif

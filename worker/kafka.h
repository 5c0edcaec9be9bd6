/*
 * kafka.h — the Kafka process's librdkafka handles on its io_uring loop (docs/architecture.md, "Cluster").
 *
 * One idempotent producer (acks=all, linger kafka_linger_ms, compressed) and one consumer. The consumer reads
 * the cluster state topics (P.nodes, P.interest) whole from the beginning and then follows them, and this
 * node's inbox partition of P.inbox from the offset committed under the node's own group. Both handles'
 * queues signal an eventfd whose read is armed on the ring; every wakeup drains them, so nothing librdkafka
 * does runs outside the loop's turn and the loop never blocks on Kafka. The topics are created at start if
 * missing (compacted state topics; P.inbox with CLUSTER_MAX_NODES partitions). Kafka process only.
 */
#ifndef RINGMQ_WORKER_KAFKA_H
#define RINGMQ_WORKER_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum kafka_topic { KT_NODES, KT_INTEREST, KT_INBOX, KT_COUNT };

typedef struct kafka_ops {
	/* A record produced with opaque was acknowledged (err 0) or failed for good (-EIO after the delivery
	 * timeout, with librdkafka's reason logged). */
	void (*delivered)(void *opaque, int err);
	/* A record of a state topic (value NULL: a tombstone). */
	void (*state)(enum kafka_topic t, const void *key, size_t klen, const void *val, size_t vlen);
	/* Every state partition has been read to its end once: the cluster is known. */
	void (*caught_up)(void);
	/* A record of node's inbox (this node's, or an adopted one's), at offset. */
	void (*inbox)(int node, int64_t offset, const void *val, size_t vlen);
} kafka_ops_t;

/* Connect (asynchronously), create missing topics, start reading. 0, or -errno after one log line naming
 * the key to fix. */
int kafka_init(const kafka_ops_t *ops);
/* Wait up to timeout_ms for what is produced to be acknowledged, then destroy the handles. */
void kafka_finish(uint32_t timeout_ms);
/* Produce one record (bytes copied). partition < 0: by key. 0; -ENOBUFS when librdkafka's queue is full;
 * -EIO otherwise (logged). */
int kafka_produce(enum kafka_topic t, int32_t partition, const void *key, size_t klen, const void *val,
	size_t vlen, void *opaque);
/* Records of node's inbox up to next_offset - 1 are handled: store that offset (committed asynchronously, in
 * batches). */
void kafka_commit(int node, int64_t next_offset);
/* Read dead node's inbox too, from the offset it committed (its sessions were adopted here), until
 * kafka_unadopt. 0 or -errno. */
int kafka_adopt(int node);
void kafka_unadopt(int node);
bool kafka_adopting(int node);
/* The full name of topic t ("<prefix>.nodes"...). */
const char *kafka_topic_name(enum kafka_topic t);
/* Records produced and not yet acknowledged. */
uint32_t kafka_pending(void);
bool kafka_caught_up(void);
/* Counters: records and bytes produced, acknowledged, failed, pending; consumed; inbox lag; commit errors. */
json_t *kafka_json(void);

#endif

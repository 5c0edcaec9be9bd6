/*
 * krec.h — the records of a node's inbox (P.inbox, docs/architecture.md "Cluster over Kafka"): what one node
 * sends another through Kafka. Pure: no I/O, no allocation.
 *
 * A record is a 16-byte header, then (KREC_MSG) the shared-group key and the message in the store's blob
 * format (record.h), or (KREC_HANDOVER, KREC_HANDED) a client id. Header, little-endian whatever the host:
 *   0 magic "RKR1" (u32)   4 kind (u8)   5 flags (u8, enum mesh_pub_flags)   6 group key length (u16)
 *   8 origin node (u32)   12 reserved, 0 (u32)
 * Partitions: node i's inbox is partition i of P.inbox (krec_partition); a record is produced to each node it
 * is for.
 */
#ifndef RINGMQ_WORKER_KREC_H
#define RINGMQ_WORKER_KREC_H

#include <stddef.h>
#include <stdint.h>

struct msg;

#define KREC_MAGIC 0x524b5231u /* "RKR1" */
#define KREC_HDR_SIZE 16
#define KREC_MSG 1                 /* a message */
#define KREC_HANDOVER 2            /* "let session <id> go for node origin" */
#define KREC_HANDED 3              /* "session <id> was let go by node origin" */

typedef struct krec {
	uint8_t kind;
	uint8_t flags;
	uint32_t origin;
	const char *group;         /* KREC_MSG: the shared-group key (group_len bytes, may be 0) */
	uint16_t group_len;
	const uint8_t *body;       /* KREC_MSG: the message blob; otherwise the client id */
	size_t body_len;
} krec_t;

/* The inbox partition of node (0..CLUSTER_MAX_NODES-1), or -1. */
int32_t krec_partition(int node);
/* Bytes of a KREC_MSG record of m with a group key of group_len bytes. */
size_t krec_msg_size(const struct msg *m, uint16_t group_len);
/* Write it (krec_msg_size bytes) to out: qos, retain and the absolute expiry as record_blob_encode. */
void krec_msg_encode(uint8_t *out, uint32_t origin, uint8_t flags, const char *group, uint16_t group_len,
	const struct msg *m, int64_t expire_ms);
/* A KREC_HANDOVER or KREC_HANDED record for client id: its size is KREC_HDR_SIZE + len; 0 when cap is short. */
size_t krec_note_encode(uint8_t *out, size_t cap, uint8_t kind, uint32_t origin, const char *id, size_t len);
/* Parse a record; 0, or -EBADMSG when it is short, not ours, of an unknown kind, or its lengths do not add up
 * (the blob itself is checked by record_blob_decode). */
int krec_parse(const void *val, size_t len, krec_t *out);

#endif

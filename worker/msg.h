/*
 * msg.h — application messages: refcounted copies of a PUBLISH shared by every session that holds them, and
 * their per-subscriber encoding (packet id, QoS, retain, DUP, topic alias, remaining expiry, subscription id).
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_MSG_H
#define RINGMQ_WORKER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"

struct conn;

enum msg_flags {
	MSG_HAS_PFI = 1 << 0,      /* payload format indicator present (value in pfi) */
	MSG_HAS_EXPIRY = 1 << 1,   /* expire_at_ms is meaningful */
};

typedef struct msg {
	uint32_t refs;
	uint8_t qos;
	uint8_t retain;
	uint8_t flags;
	uint8_t pfi;
	uint64_t expire_at_ms;     /* CLOCK_MONOTONIC ms; valid with MSG_HAS_EXPIRY */
	uint64_t origin;           /* publisher's connection id (no-local); 0 for wills and retained replays */
	uint64_t src_off;          /* with src_part: the offset of the Kafka inbox record it came in */
	uint32_t src_part;         /* cluster: inbox partition + 1 it came from (0: published in this node) */
	uint16_t topic_len;
	uint16_t ct_len;           /* content type */
	uint16_t rt_len;           /* response topic */
	uint16_t cd_len;           /* correlation data */
	uint32_t user_len;         /* encoded user properties, verbatim */
	uint32_t payload_len;
	uint32_t rx_us;            /* hist_stamp() when read from its publisher (QoS 1/2), carried across the mesh;
	                            * 0: not measured (wills, retained replays, restored from the store or Kafka) */
	uint8_t data[];            /* topic | content type | response topic | correlation data | user | payload */
} msg_t;

/* Copy a decoded PUBLISH (topic given separately: it may come from an alias). NULL on allocation failure.
 * The message starts with one reference owned by the caller. */
msg_t *msg_create(const mqtt_publish_t *p, const uint8_t *topic, uint16_t topic_len, uint64_t origin);
/* Build from raw parts (mesh frames, wills). `data` holds the concatenated fields in msg_t order. */
msg_t *msg_create_raw(const msg_t *hdr, const uint8_t *data);
static inline msg_t *msg_ref(msg_t *m) { m->refs++; return m; }
void msg_unref(msg_t *m);
static inline const char *msg_topic(const msg_t *m) { return (const char *)m->data; }
static inline size_t msg_data_len(const msg_t *m)
{
	return (size_t)m->topic_len + m->ct_len + m->rt_len + m->cd_len + m->user_len + m->payload_len;
}
/* Has the message expired at now_ms? */
static inline bool msg_expired(const msg_t *m, uint64_t now_ms)
{
	return (m->flags & MSG_HAS_EXPIRY) && now_ms >= m->expire_at_ms;
}
/*
 * Encode m as a PUBLISH to c and queue it. Returns 0; -EMSGSIZE when the packet exceeds the client's maximum
 * packet size (the caller drops the message, as [MQTT-3.1.2-25] says); -ENOBUFS for QoS 0 when c's output
 * is over the QoS 0 bound (dropped and counted); -ENOMEM when c cannot take it (c is then being closed and
 * the caller keeps the message for the next connection).
 */
int msg_send(struct conn *c, const msg_t *m, uint8_t qos, uint8_t retain, uint16_t pid, uint32_t subid,
	bool dup);

#endif

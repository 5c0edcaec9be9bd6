/*
 * owner.h — a cluster's sessions live on one node at a time (docs/architecture.md, "Cluster over Kafka").
 *
 * With cluster = kafka (and the Redis store, which every node shares), a CONNECT for a client whose session is
 * not in this worker's memory claims it: the session's Redis record names this node its owner (the previous
 * owner is returned), the previous owner is asked through the Kafka process to let it go — it closes the
 * client's connection there (MQTT 5: DISCONNECT 0x8E), forgets the session without deleting it, waits until its
 * store writes for it are done and answers — and the session is then read from Redis here: subscriptions into
 * the trie, its queue by the usual load. The CONNECT waits meanwhile (held like an authentication, bounded by
 * the connect timeout); a previous owner that is dead or does not answer in time is not waited for.
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_OWNER_H
#define RINGMQ_WORKER_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct frame_hdr;

/* Register with the store and the waiters. */
void owner_init(void);
void owner_finish(void);
/* Must a CONNECT for a client not in memory claim its session first? (a cluster with the Redis store) */
bool owner_needed(void);
/* Claim client id's session for c's CONNECT (outside a cluster, while the store restores: only read it): 0 (the
 * CONNECT is then held and parsed again once the session is here: conn_auth_resume) or a negative enum
 * mqtt_err. */
int owner_claim(struct conn *c, const uint8_t *id, size_t len);
/* c goes away while its claim is under way. */
void owner_cancel(struct conn *c);
/* Frames of the owner protocol from the Kafka process (peer k): MF_RELEASE, MF_HANDED. 0 or -EPROTO. */
int owner_on_frame(int k, const struct frame_hdr *h, const uint8_t *body);

#endif

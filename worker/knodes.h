/*
 * knodes.h — the Kafka process's view of the other nodes (docs/architecture.md, "Cluster over Kafka"):
 * their liveness (heartbeats in P.nodes), sessions moving between nodes (hand-over requests and answers in the
 * nodes' inboxes), routes that linger after a move (a session's filters stay routed to its new node, and a
 * withdrawn interest stays announced, until every node has read the new state), and the adoption of a dead
 * node by the lowest-numbered live one. Kafka process only.
 */
#ifndef RINGMQ_WORKER_KNODES_H
#define RINGMQ_WORKER_KNODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "krec.h"

#define KNODES_HEARTBEAT_MS 1000    /* each node's heartbeat in P.nodes */


int knodes_init(int self, int n_workers);
void knodes_finish(void);
/* A P.nodes record of node (present: a heartbeat; else the node left). */
void knodes_heartbeat(int node, bool present);
bool knodes_alive(int node);
bool knodes_known(int node);
/* Once a second or so: lingering routes that end, hand-overs that time out, dead nodes to adopt. */
void knodes_tick(void);
/* A P.interest record of another node: true when the caller must not apply it (a withdrawal of a filter
 * still routed there for a while). key: the whole record key. */
bool knodes_interest(int node, const char *key, size_t klen, const char *filter, size_t flen, bool present);
/* This node's last worker interest in filter ended: withdraw it later (GRACE). */
void knodes_withdraw_later(const char *filter, size_t len);
/* Forward a record (val) of node from's inbox to the nodes a session matching topic moved to (and, from an
 * adopted inbox, to every live node with interest); the count produced (each acknowledged through
 * kafka_ops.delivered(opaque)). */
unsigned knodes_forward(int from, const char *topic, size_t tlen, const void *val, size_t vlen, void *opaque);
/* A KREC_HANDOVER / KREC_HANDED record of our inbox. */
void knodes_record(const krec_t *r);
/* Worker frames: a claim needing node prev's hand-over; a session let go for node `to` (id NUL filters);
 * a worker done adopting node. */
void knodes_handover(int prev, const char *id, size_t len);
void knodes_released(int to, const uint8_t *body, size_t n);
void knodes_adopted(int node);
/* The nodes array of `ringmqctl cluster`. */
json_t *knodes_json(void);

#endif

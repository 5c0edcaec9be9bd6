/*
 * cluster.h — what the Kafka process knows about interest, pure: no I/O (docs/architecture.md, "Cluster").
 *
 * Three tables of topic filters, each a trie whose values are small integers:
 *   - this node's own interest: for each filter, how many of its workers have subscribers (workers report
 *     their edges over the mesh, MF_SUB / MF_UNSUB). The first worker's edge is announced to the cluster
 *     (a record in P.interest), the last one's withdrawn;
 *   - remote interest: which other nodes have subscribers for each filter (read from P.interest). The union
 *     over nodes is what the workers see as the Kafka process's interest: the first node's edge becomes an
 *     MF_SUB to every worker, the last one's an MF_UNSUB;
 *   - the workers' interest, to hand an inbound record only to the workers with a matching subscription.
 * Kafka process only (one thread).
 */
#ifndef RINGMQ_WORKER_CLUSTER_H
#define RINGMQ_WORKER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_MAX_NODES 64

/* An interest edge: the union over workers (own) or over nodes (remote) started or stopped. */
enum cluster_edge { CLUSTER_NONE = 0, CLUSTER_FIRST = 1, CLUSTER_LAST = -1 };

/* self: this node's id (never reported as remote interest). 0 or -ENOMEM. */
int cluster_init(int self);
void cluster_finish(void);

/* Worker k has (add) or no longer has subscribers for filter. Returns the edge of this node's own interest, or
 * -ENOMEM (tables unchanged). A repeated add or a remove of what is not there changes nothing. */
int cluster_worker_sub(int k, const char *filter, size_t len, bool add);
/* Worker k is gone (died): its interest goes with it; fn is called with each filter whose own-interest edge
 * that ends (to withdraw it from the cluster). */
void cluster_worker_down(int k, void (*fn)(const char *filter, size_t len, void *ctx), void *ctx);
/* Has some worker subscribers for exactly filter? */
bool cluster_worker_has(const char *filter, size_t len);
/* Bit k set for each worker with a subscription matching topic. */
uint64_t cluster_match_workers(const char *topic, size_t len);

/* Node `node` has (add) or no longer has subscribers for filter (from P.interest). Returns the edge of the
 * union over remote nodes, or -ENOMEM. Records of this node itself are ignored (CLUSTER_NONE). */
int cluster_remote_sub(int node, const char *filter, size_t len, bool add);
/* Forget everything node announced (it died, or its interest is read again from the start); fn gets each
 * filter whose union edge ends. */
void cluster_remote_down(int node, void (*fn)(const char *filter, size_t len, void *ctx), void *ctx);
/* Bit j set for each remote node with a subscription matching topic. */
uint64_t cluster_match_nodes(const char *topic, size_t len);
/* Call fn for every filter with remote interest (to tell a restarted worker everything). */
void cluster_each_remote(void (*fn)(const char *filter, size_t len, void *ctx), void *ctx);
/* Call fn for every filter node announced. */
void cluster_each_remote_of(int node, void (*fn)(const char *filter, size_t len, void *ctx), void *ctx);
/* Call fn for every filter of this node's own interest (to announce it all again). */
void cluster_each_own(void (*fn)(const char *filter, size_t len, void *ctx), void *ctx);
size_t cluster_own_count(void);
size_t cluster_remote_count(void);

/*
 * Shared subscription groups, by key "<group>/<filter>" (the text after "$share/"). Workers report their member
 * counts (MF_GROUP); the node's state — 0 no members, 1 members none online, 2 some online — is what the cluster
 * hears (a P.interest record "<node>/$share/<key>"). Other nodes' states come back the same way.
 */
/* Worker k's counts for key. Returns the node's new state when it changed, else -1 (or -ENOMEM... as -2). */
int cluster_group_worker(int k, const char *key, size_t len, uint32_t members, uint32_t online);
/* Node `node`'s state for key (from P.interest). Returns true when the remote totals changed. */
bool cluster_group_remote(int node, const char *key, size_t len, int state);
/* Other nodes with members of key, and with online ones. */
void cluster_group_counts(const char *key, size_t len, uint32_t *nodes, uint32_t *online);
/* This node's state for key (0: no members). */
int cluster_group_state(const char *key, size_t len);
/* Call fn for each group other nodes have members of. */
void cluster_each_group(void (*fn)(const char *key, size_t len, uint32_t nodes, uint32_t online, void *ctx),
	void *ctx);
/* Shared groups other nodes have members of. */
/* Memberships of other nodes in groups, summed over the groups (a group on two other nodes counts 2). */
size_t cluster_group_remote_nodes(void);
size_t cluster_group_remote_count(void);
/* One node to send a message of group key to (online first, round-robin), or -1. */
int cluster_group_pick_node(const char *key, size_t len);
/* One worker of this node with members of key (online first, round-robin), or -1. */
int cluster_group_pick_worker(const char *key, size_t len);

/* The P.interest key for (node, filter): "<node>/<filter>" into out (cap bytes); its length, or 0 if it does not
 * fit. And back: the node and the filter of a key; false if it is not one. */
size_t cluster_interest_key(char *out, size_t cap, int node, const char *filter, size_t len);
bool cluster_interest_parse(const char *key, size_t len, int *node, const char **filter, size_t *flen);

#endif

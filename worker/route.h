/*
 * route.h — who receives a message: the subscription trie of this worker's sessions, the other workers'
 * interest (filters replicated over the mesh), shared subscription groups and retained messages.
 *
 * One trie per worker holds three kinds of values, told apart by the low pointer bits: a local sub_t*, a peer
 * marker (this filter has subscribers on worker k), a group_t* (shared subscription). A PUBLISH is matched
 * once on the publisher's worker; it is delivered to local sessions there and forwarded once to each worker
 * with interest, which delivers to its own sessions. Work a reply must wait for (durable copies, frames to
 * other workers) is counted on the caller's waiter. Worker thread only.
 */
#ifndef RINGMQ_WORKER_ROUTE_H
#define RINGMQ_WORKER_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"
#include "waiter.h"

struct msg;
struct sess;
struct group;

/* One subscription of a session: in the session's list and in the trie (or its shared group). */
typedef struct sub {
	struct sess *sess;
	struct sub *next;          /* the session's list */
	struct group *group;       /* shared subscription, or NULL */
	uint32_t subid;
	mqtt_subopts_t opts;
	uint16_t filter_len;       /* full filter as subscribed (with $share/g/ prefix) */
	uint16_t match_off;        /* offset of the filter matched in the trie (after $share/g/) */
	char filter[];
} sub_t;

/* A shared subscription group ($share/g/f) as seen by this worker. */
typedef struct group {
	char *key;                 /* "<group>/<filter>" */
	uint16_t key_len;
	uint16_t filter_off;       /* offset of <filter> in key */
	sub_t **members;           /* local members */
	uint32_t n_members;
	uint32_t cap_members;
	uint32_t rr;               /* round-robin cursor over local members */
	uint32_t rr_worker;        /* round-robin cursor over workers */
	uint32_t *peer_members;    /* [n_workers]: members per worker (own entry kept current) */
	uint32_t *peer_online;     /* [n_workers]: online members per worker */
} group_t;

int route_init(void);
void route_finish(void);
/*
 * Route m (published by connection m->origin, 0 for a will). Local sessions take it now; each worker with
 * interest gets one frame. Durable copies and, for QoS > 0, frames to other workers are counted on w (NULL:
 * nobody waits). Stores/clears the retained message when m->retain. Returns whether any subscription matched
 * anywhere (for MQTT 5's 0x10 "No matching subscribers").
 */
bool route_publish(struct msg *m, waiter_t *w);
/* A message forwarded by a peer: deliver to matching local sessions only. */
void route_deliver_local(struct msg *m, waiter_t *w);
/* A message forwarded by a peer for shared group `key`: deliver to one local member. */
void route_deliver_group(struct msg *m, const char *key, size_t len, waiter_t *w);
/*
 * Subscribe s to filter (possibly $share/...). Returns the SUBACK reason code: the granted QoS, 0x97 when the
 * session has max_subscriptions already, 0x80 when memory ran out. The durable write and the other workers'
 * acks are counted on w; *retained says whether retained messages are due (retain handling), to be sent
 * with route_send_retained() once the SUBACK is written.
 */
uint8_t route_subscribe(struct sess *s, mqtt_str_t filter, const mqtt_subopts_t *opts, uint32_t subid,
	waiter_t *w, bool *retained);
/* Deliver the retained messages matching s's subscription `filter` (if it still exists). */
void route_send_retained(struct sess *s, const char *filter, size_t len);
/* Returns 0x00 or 0x11 (no subscription existed). */
uint8_t route_unsubscribe(struct sess *s, mqtt_str_t filter);
/* Drop every subscription of s (session end). */
void route_unsubscribe_all(struct sess *s);
/* A session with shared subscriptions went on/offline: update group online counts. */
void route_sess_online(struct sess *s, bool online);
/* Peer interest and group counts received over the mesh. */
void route_peer_sub(int k, const char *filter, size_t len, bool add);
void route_peer_group(int k, const char *key, size_t len, uint32_t members, uint32_t online);
void route_retain_store(struct msg *m);
/*
 * Peer k died. With keep_interest (durable store) its interest stays: messages for its persistent sessions
 * are held for it (mesh.c) and sent when it is back. route_peer_resync(k) starts a new epoch of k's interest
 * (k restarted and will announce its interest again); route_peer_synced(k) drops what k did not announce.
 */
void route_peer_down(int k, bool keep_interest);
void route_peer_resync(int k);
void route_peer_synced(int k);
/*
 * Can a PUBLISH be routed now? Only once this worker's sessions are restored (store_ready) and every live peer
 * has announced its whole interest once (its first MF_SYNC, sent when its own restore ended): before that the
 * trie is partial, and a message for a session not restored yet would find no subscriber and be acknowledged.
 * conn.c holds a client's PUBLISH unparsed until then. route_check_complete() looks again (worker_serve calls
 * it when the restore ends, MF_SYNC when a peer's comes) and releases the held clients when it turns true; it never turns false again (a peer
 * that restarts later keeps its interest here: mesh.c holds its messages).
 */
bool route_complete(void);
void route_check_complete(void);
/* Send peer k our interest and group counts and, from the lowest live worker, the retained store. */
void route_peer_up(int k);
size_t route_retained_count(void);
size_t route_sub_count(void);
/* Subscriptions of this worker's sessions (kept as they change). */
uint64_t route_local_sub_count(void);
/* Bytes of interest peer k announced (tests and stats). */
size_t route_peer_interest_count(int k);

#endif

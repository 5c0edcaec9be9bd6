/*
 * route.h — who receives a message: the subscription trie of this worker's sessions, the other workers'
 * interest (filters replicated over the mesh), shared subscription groups and retained messages.
 *
 * One trie per worker holds three kinds of values, told apart by the low pointer bits: a local sub_t*, a peer
 * marker (this filter has subscribers on worker k), a group_t* (shared subscription). A PUBLISH is matched
 * once on the publisher's worker; it is delivered to local sessions there and forwarded once to each worker
 * with interest, which delivers to its own sessions. Worker thread only.
 */
#ifndef RINGMQ_WORKER_ROUTE_H
#define RINGMQ_WORKER_ROUTE_H

#include "wk-t.h"

int route_init(void);
void route_finish(void);
/*
 * Route m, published by c (NULL for a will). Local sessions take it now; each peer that must take it gets a
 * frame, and when c is given the reply with sequence seq waits for that peer's ack. Returns the number of
 * peers waited for. Stores/clears the retained message when m->retain.
 */
uint32_t route_publish(msg_t *m, conn_t *c, uint64_t seq);
/* A message forwarded by a peer: deliver to matching local sessions only. */
void route_deliver_local(msg_t *m);
/* A message forwarded by a peer for shared group `key`: deliver to one local member. */
void route_deliver_group(msg_t *m, const char *key, size_t len);
/* Subscribe s to filter (possibly $share/...). Returns the SUBACK reason code; *waiting counts the peers whose
 * ack the SUBACK (reply seq of c) must wait for; *retained says whether retained messages are due (retain
 * handling), to be sent with route_send_retained() once the SUBACK is written. */
uint8_t route_subscribe(sess_t *s, mqtt_str_t filter, const mqtt_subopts_t *opts, uint32_t subid, conn_t *c,
	uint64_t seq, uint32_t *waiting, bool *retained);
/* Deliver the retained messages matching s's subscription `filter` (if it still exists). */
void route_send_retained(sess_t *s, const char *filter, size_t len);
/* Returns 0x00 or 0x11 (no subscription existed). */
uint8_t route_unsubscribe(sess_t *s, mqtt_str_t filter);
/* Drop every subscription of s (session end). */
void route_unsubscribe_all(sess_t *s);
/* A session with shared subscriptions went on/offline: update group online counts. */
void route_sess_online(sess_t *s, bool online);
/* Peer interest and group counts received over the mesh. */
void route_peer_sub(int k, const char *filter, size_t len, bool add);
void route_peer_group(int k, const char *key, size_t len, uint32_t members, uint32_t online);
void route_retain_store(msg_t *m);
/* Peer k died / came back (send it our interest and, from the lowest live worker, the retained store). */
void route_peer_down(int k);
void route_peer_up(int k);
size_t route_retained_count(void);
size_t route_sub_count(void);

#endif

/*
 * sess.h — MQTT sessions held in memory by the owning worker: lookup, attach/detach to a connection, the
 * offline queue and the outbound in-flight window, inbound QoS 2 state, wills, expiry. Worker thread only.
 */
#ifndef RINGMQ_WORKER_SESS_H
#define RINGMQ_WORKER_SESS_H

#include "wk-t.h"

sess_t *sess_find(const uint8_t *id, size_t len);
/* Create and register a session. NULL on allocation failure. */
sess_t *sess_create(const uint8_t *id, size_t len);
/* Unregister and free: drops subscriptions, queued and in-flight messages, the will. Must be offline. */
void sess_destroy(sess_t *s);
/* Bind s to c after CONNACK was queued; with resume, resend the in-flight window (DUP) and the queue. */
void sess_attach(conn_t *c, sess_t *s, bool resume);
/* c is closing: schedule or publish the will, then destroy the session or start its expiry clock. */
void sess_detach(conn_t *c);
/* Take one message for this session: send now if online and the window has room, else queue (QoS > 0 only;
 * oldest dropped and counted when full). */
void sess_deliver(sess_t *s, msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid);
/* Move queued messages into the in-flight window while it has room. */
void sess_pump(sess_t *s);
/* Outbound acks from the client. Return an MQTT reason code (0, or 0x92 packet id not found). */
uint8_t sess_on_puback(sess_t *s, uint16_t pid);
uint8_t sess_on_pubrec(sess_t *s, uint16_t pid, uint8_t reason);
uint8_t sess_on_pubcomp(sess_t *s, uint16_t pid);
/* Inbound QoS 2 packet ids awaiting PUBREL. */
bool sess_rx_has(const sess_t *s, uint16_t pid);
int sess_rx_add(sess_t *s, uint16_t pid);
bool sess_rx_del(sess_t *s, uint16_t pid);
struct store_entry;
/* The store finished loading s (after sess_attach of a cold session): entries in sequence order (sent ones
 * become the window, resent with DUP), then what was queued meanwhile. Takes the entries' references. */
void sess_loaded(sess_t *s, struct store_entry *e, size_t n, const uint16_t *rx, size_t nrx);
/* Start-up: re-create an offline persistent session and its subscriptions from the store's record. */
struct redisReply;
void sess_restore(const char *id, size_t len, const struct redisReply *meta, const struct redisReply *subs);
/* Add a QoS 2 id without writing it to the store (it came from there). */
int sess_rx_add_loaded(sess_t *s, uint16_t pid);
/* Once per tick: due wills, expired sessions. */
void sess_tick(void);
uint64_t sess_queued_total(void);

#endif

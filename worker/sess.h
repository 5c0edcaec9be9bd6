/*
 * sess.h — MQTT sessions owned by this worker: lookup, attach/detach to a connection, the offline queue and
 * the outbound in-flight window, inbound QoS 2 state, wills, expiry.
 *
 * The sessions map is this module's. A session outlives its connection when persistent; with a durable store
 * an offline session keeps only its subscriptions in memory ("cold") and its queue is loaded back on
 * reconnect. Durable writes (store_*) that a reply must wait for are counted on the caller's waiter.
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_SESS_H
#define RINGMQ_WORKER_SESS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "waiter.h"
#include "win.h"

struct conn;
struct msg;
struct sub;

/* A message waiting in a session queue. */
typedef struct qent {
	struct msg *m;
	uint64_t qseq;             /* the session's message sequence number: its id in the store */
	uint32_t subid;            /* 0 = none */
	uint8_t qos;
	uint8_t retain;
} qent_t;

/* Field order keeps the struct free of holes: one per session, and a worker holds hundreds of thousands. */
typedef struct sess {
	char *id;                  /* the client ID, NUL-terminated: points at idbuf */
	struct conn *conn;         /* NULL while offline */
	struct sub *subs;
	uint64_t expire_at_ms;     /* offline: expiry deadline; 0 = never */
	ring_t queue;              /* qent_t */
	win_t win;
	uint64_t *rx_bits;         /* inbound QoS 2 ids awaiting PUBREL: a 65536-bit set, NULL when empty */
	struct msg *will;
	uint64_t will_at_ms;       /* 0 = no will pending publication */
	uint64_t dropped;          /* queue-full drops */
	uint64_t expired;          /* message-expiry drops */
	uint64_t next_qseq;        /* next message sequence number (store id) */
	uint32_t expiry_s;         /* session expiry interval; 0 = ends with the connection */
	uint32_t n_subs;
	uint32_t n_unsent;         /* window entries not yet written on the current connection */
	uint32_t n_rx;
	uint32_t will_delay_s;
	uint32_t match_epoch;      /* routing scratch: set when matched in the current publish */
	uint32_t match_slot;
	uint32_t load_gen;
	uint16_t id_len;
	uint8_t version;
	bool cold;                 /* durable store: queue and window live only in the store (offline) */
	bool loading;              /* durable store: queue being loaded after reconnect */
	bool stored;               /* written to the durable store at least once */
	char idbuf[];              /* the client ID, allocated with the session (one allocation, not two) */
} sess_t;

/* Results of the outbound acknowledgement handlers besides 0 and a negative enum mqtt_err. */
#define SESS_ACK_UNKNOWN 1     /* no message in flight with that id: ignored ([MQTT-4.3.2], 0x92 in PUBREL) */

void sess_module_init(void);
/* Destroy every session (process end). */
void sess_module_finish(void);
sess_t *sess_find(const uint8_t *id, size_t len);
/* Create and register a session. NULL on allocation failure. */
sess_t *sess_create(const uint8_t *id, size_t len);
/* Unregister and free: drops subscriptions, queued and in-flight messages, the will. Must be offline. */
void sess_destroy(sess_t *s);
/* Another node owns s now (owner.h): drop it from memory and its subscriptions from routing, and keep it in
 * the store. s has no connection. */
void sess_forget(sess_t *s);
void sess_set_expiry(sess_t *s, uint32_t expiry_s);
/* Replace the will (takes the reference of will, which may be NULL). */
void sess_set_will(sess_t *s, struct msg *will, uint32_t delay_s);
static inline bool sess_loading(const sess_t *s) { return s->loading; }
/* Bind s to c after CONNACK was queued; with resume, resend the in-flight window (DUP) and the queue. */
void sess_attach(struct conn *c, sess_t *s, bool resume);
/* c is closing: schedule or publish the will, then destroy the session or start its expiry clock. */
void sess_detach(struct conn *c);
/*
 * Take one message for this session: send now if online and the window has room, else queue (QoS > 0 only;
 * oldest dropped and counted when full). With a durable store the copy is written first and counted on w
 * (the publisher's reply, or the peer frame that brought it), so the publisher is answered only when the
 * copy is durable.
 */
void sess_deliver(sess_t *s, struct msg *m, uint8_t qos, uint8_t retain, uint32_t subid, waiter_t *w);
/* Move queued messages into the in-flight window while it has room. */
void sess_pump(sess_t *s);
/* Outbound acknowledgements from the client: 0, SESS_ACK_UNKNOWN, or MQTT_E_PROTOCOL when the id is in
 * flight but waits for another kind of acknowledgement (PUBCOMP where PUBACK is due...). */
int sess_on_puback(sess_t *s, uint16_t pid);
int sess_on_pubrec(sess_t *s, uint16_t pid, uint8_t reason);
int sess_on_pubcomp(sess_t *s, uint16_t pid);
/* Inbound QoS 2 packet ids awaiting PUBREL. sess_rx_add writes the id durably (counted on w) before the
 * PUBREC may go: a resent PUBLISH after a crash is then not delivered twice. */
bool sess_rx_has(const sess_t *s, uint16_t pid);
int sess_rx_add(sess_t *s, uint16_t pid, waiter_t *w);
bool sess_rx_del(sess_t *s, uint16_t pid);
static inline uint32_t sess_rx_count(const sess_t *s) { return s->n_rx; }

/* A message as loaded back from the store. */
typedef struct sess_entry {
	uint64_t qseq;
	struct msg *m;             /* one reference, owned by the receiver */
	uint8_t qos;
	uint8_t retain;
	uint32_t subid;
	uint16_t pid;              /* 0: not sent yet */
	uint8_t state;             /* enum win_state when pid != 0 */
} sess_entry_t;

/* The store finished loading s (after sess_attach of a cold session): entries in sequence order (sent ones
 * become the window, resent with DUP), then what was queued meanwhile. Takes the entries' references.
 * ok = false: the load failed for good; the client is disconnected and the session stays cold. */
void sess_loaded(sess_t *s, bool ok, sess_entry_t *e, size_t n, const uint16_t *rx, size_t nrx);
/* Start-up: re-create an offline persistent session from the store's record (its subscriptions follow
 * through route_subscribe). expire_unix_ms: when an offline session ends (0: never / unknown). */
sess_t *sess_restore(const char *id, size_t len, uint8_t version, uint32_t expiry_s, uint64_t next_qseq,
	uint64_t expire_unix_ms);
/* Iterate sessions: start with *pos = 0; NULL at the end. The map must not change meanwhile. */
sess_t *sess_next(size_t *pos);
size_t sess_count(void);
/* Messages queued in every session (kept as they change) and the longest queue (raised as a queue grows past
 * it; lowered by a walk of every session, at most every 10 s: it may be that old after queues shrank). */
uint64_t sess_queued_total(uint32_t *largest);
/* Sessions with a connection. */
size_t sess_online_count(void);

#endif

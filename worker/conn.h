/*
 * conn.h — client connections: adoption of accepted or handed-over sockets, framing of their input, the
 * packet dispatch's view of a client (limits, aliases, output), closing, timeouts, and the bounds that keep
 * one client from holding more than its share of memory.
 *
 * A conn_t embeds its socket (sock.h) and is freed only when the socket is released (its last SQE done).
 * Replies that must wait (PUBACK until copies are durable...) go through the ordered reply FIFO (reply.h).
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_CONN_H
#define RINGMQ_WORKER_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include "buf.h"
#include "mqtt.h"
#include "reply.h"
#include "sock.h"

struct sess;
struct tls;

enum conn_state {
	CONN_NEW = 0,              /* accepted, waiting for CONNECT */
	CONN_HANDOFF,              /* CONNECT names another worker's client: stop receiving, then move */
	CONN_AUTH,                 /* CONNECT is being authenticated (auth.h): input held, CONNECT parsed again
	                            * once the providers answered */
	CONN_ACTIVE,               /* CONNACK sent */
	CONN_RELAY,                /* TLS, owned elsewhere: its MQTT bytes go to relay_peer (relay.h) */
	CONN_CLOSING,              /* closed; the socket goes once its last SQE completed */
};

typedef struct alias {
	char *topic;
	uint16_t len;
} alias_t;

/* Field order keeps the struct free of holes: one per connection, and a worker holds hundreds of thousands. */
typedef struct conn {
	sock_t sk;                 /* the socket: references, generation, output queue */
	uint64_t id;               /* worker-unique (worker id in the top 16 bits), for logs and no-local */
	uint64_t last_rx_ms;
	uint64_t created_ms;
	uint64_t last_tx_ms;       /* last time the client took output bytes */
	buf_t rbuf;                /* input not parsed yet (a partial packet, or held input) */
	struct sess *sess;
	alias_t *alias_in;         /* [cfg.topic_alias_maximum + 1] */
	alias_t *alias_out;        /* [alias_max_out + 1] */
	replyq_t replies;
	struct tls *tls;           /* TLS: the socket carries ciphertext (tls.h) */
	buf_t tls_plain;           /* TLS: plaintext written this turn, encrypted at the flush */
	uint64_t relay_link;       /* the link's id (the front connection's id) */
	char *cert_cn;             /* CN of the verified client certificate, NULL without one */
	struct acl *acl;           /* the client's own rules (auth.h), NULL: the defaults only */
	char *username;            /* what %u stands for in rules, NULL: none */
	uint64_t cred;             /* the credential it authenticated with (revoked: disconnected), 0: none */
	struct conn *next_tls;
	struct conn *prev, *next;  /* every live connection, for the timeouts */
	struct conn *next_abort;
	uint32_t max_packet_out;   /* the client's Maximum Packet Size (0 = none) */
	uint32_t handoff_sent;     /* CONN_HANDOFF: bytes of rbuf already on their way */
	uint16_t keepalive;        /* seconds, after the server's override */
	uint16_t recv_max_out;     /* the client's Receive Maximum */
	uint16_t alias_max_out;    /* the client's Topic Alias Maximum (capped) */
	uint16_t n_alias_out;
	uint16_t inflight_in;      /* inbound QoS 1 PUBLISHes not yet answered */
	int16_t handoff_to;        /* owner worker while CONN_HANDOFF */
	int16_t relay_peer;        /* -1, or the other end of a relay link */
	uint8_t state;
	uint8_t version;
	uint8_t close_reason;      /* DISCONNECT reason sent, for logs */
	bool graceful;             /* DISCONNECT 0x00 received, or taken over with the session continuing: no will */
	bool problem_info;         /* the client's Request Problem Information */
	bool held;                 /* input held: the session is loading, or the reply FIFO is full */
	bool addr_counted;         /* counted in the per-address limits (addrlimit.h) */
	bool aborted;              /* must close, but from inside someone else's call: done at the flush */
	bool in_abort_list;
	bool tls_dirty;
	bool tls_established;      /* handshake counted, certificate CN taken */
	bool relay_back;           /* socket-less: the client's socket is on worker relay_peer (relay.h) */
	bool relay_paused;         /* front: the back holds this client's input */
	bool authed;               /* authentication answered: the CONNECT parsed again goes on to its session */
	bool claimed;              /* cluster: the session was claimed for this node (owner.h) */
	bool claiming;             /* ... and the claim is under way */
	char addr[INET6_ADDRSTRLEN + 7]; /* "host:port", for logs and the per-address limits */
} conn_t;

/* Register with the loop (accept, ticks, flush). Call once after loop_init and sock_module_init. */
void conn_module_init(void);
/* Start / stop the multishot accept on the worker's listener (stop also waits for its last completion,
 * so the listener is no longer referenced by the ring when the worker exits). */
void conn_start_accepting(void);
void conn_stop_accepting(void);
/* Between conn_start_accepting and conn_stop_accepting (the readiness probe: supervisor/watchdog.h). */
bool conn_accepting(void);
/* Adopt a socket (accepted here, or handed over by another worker with the bytes it read). NULL on error
 * (fd closed). */
conn_t *conn_adopt(int fd, const uint8_t *data, size_t len);
/* A TLS connection accepted here (its handshake runs first). NULL on error (fd closed). */
conn_t *conn_adopt_tls(int fd);
/* Back side of a relay (relay.h): a socket-less connection for the client whose socket is on worker peer. */
conn_t *conn_adopt_relay(int peer, uint64_t link, const char *addr, const char *cert_cn);
/* MQTT bytes from the client, as if received (relay, handoff). */
void conn_input(conn_t *c, const uint8_t *p, size_t n);
/* Front side of a relay: the owner holds this client's input (stop reading it) or no longer does. */
void conn_relay_pause(conn_t *c, bool paused);
/* The live connection in socket slot idx with generation gen (for waiters and tokens), or NULL. */
conn_t *conn_get(uint32_t idx, uint32_t gen);

/*
 * Output. conn_reserve/conn_commit queue bytes for this turn's flush; conn_reserve returns NULL when the
 * connection may not queue n more bytes (allocation failure, or max_outbuf reached) and has then already
 * closed it: the caller stops using c's output. Whole packets: conn_send.h.
 */
uint8_t *conn_reserve(conn_t *c, size_t n);
void conn_commit(conn_t *c, size_t n);
/* May QoS 1/2 messages be queued now? Their flow stops while the output is over half its bound and resumes
 * as the client takes it (sess_pump from the send completion), so a slow reader holds a bounded output. */
bool conn_can_take(const conn_t *c);
/* May a QoS 0 PUBLISH of n bytes still be queued? (output under the QoS 0 bound; counted when not) */
bool conn_qos0_room(conn_t *c, size_t n);
/* The largest packet the client accepts (its Maximum Packet Size, or no limit). */
static inline uint32_t conn_max_packet(const conn_t *c) { return c->max_packet_out ? c->max_packet_out : UINT32_MAX; }

/* The one place a handler error becomes the MQTT answer (CONNACK / DISCONNECT / close). */
void conn_fail(conn_t *c, int err);
/* Close: stop reading, write what is queued, then release. Detaches the session (will, expiry). */
void conn_close(conn_t *c, uint8_t reason);
/* Close c at this turn's flush, not now: for failures found while another connection's packet is being
 * handled (its session must not change under the caller). Output to c is dropped from now on. */
void conn_abort(conn_t *c, int err);
/* Is c past CONNACK and not closing or aborted? */
static inline bool conn_usable(const conn_t *c) { return c->state == CONN_ACTIVE && !c->aborted; }
/* Process what the client already sent and we have not read yet (before a takeover closes c: its last
 * PUBACKs and DISCONNECT must count). */
void conn_drain(conn_t *c);
/* Hold / release c's input (session loading, reply FIFO full): held input is not parsed, and receiving
 * stops once the held bytes pass a bound, so a client cannot make us buffer without limit. */
void conn_hold(conn_t *c);
void conn_release(conn_t *c);
/* Graceful stop: stop accepting; DISCONNECT 0x8B to MQTT 5 clients; close everything. */
void conn_stop_all(void);
/* Go on with handoffs the control channel had no room for. */
void conn_handoff_retry(void);
/* CONNACK was sent: c serves its session now. */
void conn_activated(conn_t *c);
/* Credential cred changed or was deleted (auth.h): its clients are disconnected (MQTT 5: 0x87). */
void conn_revoke(uint64_t cred);
/* The rules changed (reload): every connected session's subscriptions are checked against them again. */
void conn_rules_changed(void);
/* Authentication answered (handle_connect.c): go on parsing the CONNECT it held. */
void conn_auth_resume(conn_t *c);
/* Routing is complete (route.h): parse the PUBLISHes held until now. */
void conn_routing_complete(void);
/* Sockets and connections past CONNACK on this worker. */
uint32_t conn_count(void);
uint32_t conn_active_count(void);

#endif

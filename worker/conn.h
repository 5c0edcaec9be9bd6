/*
 * conn.h — client connections: accept, receive and parse, output, close, timers.
 *
 * A conn_t is freed only after it is closed and its last SQE has completed (refs == 0); completions carry the
 * slot's generation and are dropped when the slot was reused. Worker thread only.
 */
#ifndef RINGMQ_WORKER_CONN_H
#define RINGMQ_WORKER_CONN_H

#include "wk-t.h"

/* Handler results beyond enum mqtt_err (which are all >= -12). */
enum conn_err {
	CONN_HANDOFF_NEEDED = 100,   /* not an error: CONNECT belongs to another worker */
	CONN_E_CLOSE = -100,         /* close without a DISCONNECT (3.1.1 rules, or already answered) */
	CONN_E_RECV_MAX = -101,      /* receive maximum exceeded: 0x93 */
	CONN_E_ALIAS = -102,         /* topic alias invalid: 0x94 */
	CONN_E_NOMEM = -103,         /* 0x97 quota exceeded / unspecified */
	CONN_E_SESSION_EXPIRY = -104,/* DISCONNECT sets expiry after CONNECT had 0: protocol error */
	CONN_E_UNEXPECTED = -105,    /* packet not allowed in this state: protocol error */
	CONN_E_AUTH = -106,          /* AUTH not supported: 0x8C bad authentication method */
	CONN_E_UNAVAILABLE = -107,   /* not ready to serve sessions yet: 0x88 server unavailable */
	CONN_E_BUSY = -108,          /* connection limit: 0x97 quota exceeded / 3.1.1 server unavailable */
};

void conn_on_accept(struct io_uring_cqe *cqe);
void conn_on_recv(uint32_t idx, uint32_t gen, struct io_uring_cqe *cqe);
void conn_on_send(uint32_t idx, uint32_t gen, struct io_uring_cqe *cqe);
/* Adopt a socket (accepted here or handed over by another worker) with bytes already read. NULL on error
 * (fd closed). */
conn_t *conn_adopt(int fd, const uint8_t *data, size_t len);
/* Room for n output bytes, or NULL (connection is then closed by the caller). Commit with conn_commit. */
uint8_t *conn_reserve(conn_t *c, size_t n);
void conn_commit(conn_t *c, size_t n);
/* Encode-and-queue helpers used by handlers. */
void conn_send_ack(conn_t *c, uint8_t type, uint16_t pid, uint8_t reason);
void conn_send_disconnect(conn_t *c, uint8_t reason, const char *reason_string);
/* The one place that maps a handler error to the MQTT answer (CONNACK / DISCONNECT / close). */
void conn_fail(conn_t *c, int err);
/* Close: stop reading, send what is queued, then release the socket. Detaches the session (will, expiry). */
void conn_close(conn_t *c, uint8_t reason);
/* Look up a live connection by slot and generation (for tokens coming back from peers). */
conn_t *conn_get(uint32_t idx, uint32_t gen);
/* Arm the multishot accept (at start-up). */
void conn_start_accepting(void);
void conn_flush_all(void);
void conn_tick(void);
bool conn_all_closed(void);
/* Process what the client already sent and we have not read yet (before a takeover closes c: its last
 * PUBACKs and DISCONNECT must count). */
void conn_drain(conn_t *c);
/* Parse input held back while the session was loading. */
void conn_resume_input(conn_t *c);
/* The store drained: read paused connections again. */
void conn_resume_all(void);
/* Graceful stop: stop accepting; DISCONNECT 0x8B to MQTT 5 clients; close everything. */
void conn_stop_all(void);
/* Resolve the head of the pending-reply FIFO: writes every reply whose acks are complete. */
void conn_pend_flush(conn_t *c);

#endif

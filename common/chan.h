/*
 * chan.h — the supervisor <-> worker control channel.
 *
 * One SOCK_SEQPACKET socketpair per worker (CLOEXEC, nonblocking), created by the supervisor before fork.
 * Every record is one chan_hdr_t followed by hdr.len payload bytes (at most CHAN_MAX_PAYLOAD), optionally
 * with one file descriptor attached (SCM_RIGHTS). Records are never split or merged, so an attached fd
 * belongs unambiguously to its record.
 *
 * Message flow:
 *   W->S CHAN_READY        worker is serving (after its ring is set up)
 *   W->S CHAN_HANDOFF      + fd: move this client connection to worker hdr.worker (the target). Payload:
 *                          chan_handoff_t then the bytes already read from the socket (starting with CONNECT).
 *   S->W CHAN_HANDOFF      + fd: the same record, forwarded unchanged to the target worker.
 *   W->S->W CHAN_HANDOFF_MORE  the rest of those bytes when they exceed one record (a CONNECT may be as
 *                          large as max_packet_size): same header, no fd, forwarded in order behind it.
 *   S->W CHAN_MESH_FD      + fd: new worker<->worker mesh socket to peer hdr.worker (after that peer restarted).
 *   S->W CHAN_PEER_DOWN    peer hdr.worker died: forget its subscriptions, fail what was in flight to it.
 *   S->W CHAN_SHUTDOWN     graceful stop: stop accepting, DISCONNECT 0x8B to MQTT 5 clients, close, exit 0.
 *   S->W CHAN_CTL_REQ      payload: one JSON request object (see docs/operations.md); hdr.seq echoes back.
 *   S->W CHAN_RELOAD       reload TLS certificates, password and ACL files (SIGHUP, ringmqctl reload).
 *   S->W CHAN_TLS_KEY      payload: a new TLS session ticket key (80 bytes); the previous one still decrypts.
 *   W->S CHAN_CTL_REPLY    payload: one JSON reply object for request hdr.seq.
 *   S->W CHAN_PING         heartbeat (supervisor/watchdog.h): answer from the event loop, hdr.seq echoed.
 *   W->S CHAN_PONG         the answer: payload one chan_pong_t (the process's readiness as of now).
 *   W->S CHAN_SYS_INTEREST payload: one byte, 1 when the worker has a local $SYS subscription, 0 when no more.
 *   S->W CHAN_SYS          payload: $SYS values to publish locally (format in worker/sys.h).
 */
#ifndef RINGMQ_COMMON_CHAN_H
#define RINGMQ_COMMON_CHAN_H

#include <stddef.h>
#include <stdint.h>

#define CHAN_MAX_PAYLOAD (160u * 1024u)
/* Socket buffer asked for on both ends: large enough for one full record. */
#define CHAN_SOCKBUF (CHAN_MAX_PAYLOAD + 16384u)

enum chan_type {
	CHAN_READY = 1,
	CHAN_HANDOFF = 2,
	CHAN_MESH_FD = 3,
	CHAN_PEER_DOWN = 4,
	CHAN_SHUTDOWN = 5,
	CHAN_CTL_REQ = 6,
	CHAN_CTL_REPLY = 7,
	CHAN_HANDOFF_MORE = 8,
	CHAN_RELOAD = 9,
	CHAN_TLS_KEY = 10,
	CHAN_PING = 11,
	CHAN_PONG = 12,
	/* $SYS topics (worker/sys.h, supervisor/systopic.h); numbered apart from the rest. */
	CHAN_SYS = 20,
	CHAN_SYS_INTEREST = 21,
};

typedef struct chan_hdr {
	uint16_t type;   /* enum chan_type */
	uint16_t flags;
	int32_t worker;  /* target worker (HANDOFF), peer (MESH_FD, PEER_DOWN), sender (READY, CTL_REPLY) */
	uint32_t seq;    /* CTL request id */
	uint32_t len;    /* payload bytes following */
} chan_hdr_t;

typedef struct chan_handoff {
	uint64_t conn_id;   /* the accepting worker's connection id: unique across workers, joins the chunks */
	uint16_t slot;      /* client-ID hash slot */
	uint16_t reserved;
	uint32_t data_len;  /* bytes following this struct in this record */
	uint32_t total_len; /* bytes of the whole handoff (CONNECT and what followed it) */
	uint32_t offset;    /* where this record's bytes go in the whole */
} chan_handoff_t;

/* CHAN_PONG payload. flags: what the readiness probe needs to know, sampled when the ping was answered. */
typedef struct chan_pong {
	uint32_t flags;
} chan_pong_t;
#define CHAN_PONG_SERVING 0x1u  /* worker: accepting clients; Kafka process: cluster state read (caught up) */
#define CHAN_PONG_STORE_UP 0x2u /* the session store is reachable (always set with store = memory) */

/* Create a SEQPACKET socketpair for a control channel: sv[0] supervisor end, sv[1] worker end. 0 or -errno. */
int chan_pair(int sv[2]);
/*
 * Send one record without blocking (MSG_DONTWAIT|MSG_NOSIGNAL). pass_fd < 0 sends no fd; the caller keeps
 * ownership of pass_fd either way. Returns 0, -EAGAIN when the peer's buffer is full, or another -errno.
 */
int chan_send(int fd, uint16_t type, int32_t worker, uint32_t seq, const void *payload, uint32_t len,
	int pass_fd);
/*
 * Receive one record without blocking. payload must hold CHAN_MAX_PAYLOAD bytes. On success returns 0, fills
 * *hdr and the payload, and sets *fd_out to a received fd (owned by the caller now) or -1. Returns -EAGAIN
 * when nothing is queued, -EPIPE on EOF, -EPROTO for a malformed record (short, truncated, wrong cmsg: any
 * fd that came with it is closed).
 */
int chan_recv(int fd, chan_hdr_t *hdr, void *payload, int *fd_out);

#endif

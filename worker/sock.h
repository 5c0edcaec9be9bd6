/*
 * sock.h — a stream socket on the worker's ring, with the reference discipline every socket needs.
 *
 * Client connections (conn.c) and worker-to-worker channels (mesh.c) embed a sock_t. The module owns what is
 * easy to get wrong and was once written twice:
 *   - every SQE in flight (the multishot recv, the one send) holds a reference; a closed socket is released
 *     (fd closed, ops->on_free called) only when the last one has completed, so the kernel never reads or
 *     writes memory that was freed or reused;
 *   - completions carry the socket's table index and a 24-bit generation; a completion for a released slot
 *     is dropped (its provided buffer given back);
 *   - output is double-buffered (outq_t) and written once per loop turn from the flush hook;
 *   - a closing socket whose peer does not read gets SOCK_LINGER_MS to take its last bytes, then is shut down.
 * Owners learn of events through sock_ops_t. Worker thread only.
 */
#ifndef RINGMQ_WORKER_SOCK_H
#define RINGMQ_WORKER_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SOCK_LINGER_MS 2000

typedef struct sock sock_t;

typedef struct sock_ops {
	/* Bytes received: a view valid during the call. Not called once the socket is closing. */
	void (*on_data)(sock_t *s, const uint8_t *p, size_t n);
	/* The peer closed (err 0) or receiving/sending failed (-errno). Not called once closing; the owner
	 * normally closes the socket. */
	void (*on_eof)(sock_t *s, int err);
	/* Optional: a send of n bytes completed (output room freed). */
	void (*on_sent)(sock_t *s, size_t n);
	/* Optional: receiving stopped after sock_pause() (the final recv completion arrived). */
	void (*on_recv_stopped)(sock_t *s);
	/* Closed and the last SQE completed: fd is closed; the owner frees what embeds s. */
	void (*on_free)(sock_t *s);
	/* A socket without a descriptor (fd < 0: its bytes travel some other way, relay.h): take the queued
	 * output (at the flush, instead of a send), and hear of pause/resume (instead of a recv). */
	void (*on_flush)(sock_t *s);
	void (*on_pause)(sock_t *s, bool paused);
} sock_ops_t;

struct sock {
	int fd;
	uint32_t idx;              /* slot in the socket table */
	uint32_t gen;              /* generation of the slot (24 bits) */
	uint32_t refs;             /* SQEs in flight */
	bool recv_armed;
	bool paused;               /* receiving stopped by the owner */
	bool closing;
	bool flush_on_close;       /* closing: still write what is queued */
	bool dirty;                /* in the flush list */
	bool lingering;            /* in the closing list */
	uint64_t close_at_ms;
	outq_t out;
	const sock_ops_t *ops;
	sock_t *next_dirty;
	sock_t *prev_linger, *next_linger;
};

/* Register the completion kinds and hooks (once per worker, after loop_init). */
void sock_module_init(void);
/* Free the table (after every socket was released). */
void sock_module_finish(void);
/* Take fd (nonblocking stream socket) into s and start receiving (or not, with paused: sock_resume starts it).
 * 0, or -ENOMEM (fd not taken). */
int sock_open(sock_t *s, int fd, const sock_ops_t *ops, bool paused);
/* The socket in slot idx if its generation is gen and it is not closing; else NULL. */
sock_t *sock_get(uint32_t idx, uint32_t gen);
/* Room for n output bytes (NULL on allocation failure); sock_commit() queues them for this turn's flush. */
uint8_t *sock_reserve(sock_t *s, size_t n);
void sock_commit(sock_t *s, size_t n);
int sock_write(sock_t *s, const void *p, size_t n);
/* Output queued and not yet written. */
static inline size_t sock_outq(const sock_t *s) { return outq_size(&s->out); }
/* Stop / restart receiving (flow control, handoff). */
void sock_pause(sock_t *s);
void sock_resume(sock_t *s);
/* Close: stop receiving; with flush, what is queued is still written (bounded by SOCK_LINGER_MS), without,
 * it is dropped. Released once the last SQE completes. Idempotent. */
void sock_close(sock_t *s, bool flush);
/* Sockets open (closing ones included): a stopping worker waits for 0. */
uint32_t sock_count(void);

#endif

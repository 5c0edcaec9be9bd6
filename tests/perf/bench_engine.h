/*
 * bench_engine.h — internals shared by the two halves of the ringmq-bench engine: bench_conn.c (threads,
 * io_uring, connection lifecycle, schedule) and bench_client.c (the MQTT client side of one connection:
 * encoding what it sends, handling what it receives, accounting). Not for bench.c: it uses bench_conn.h.
 * Everything here runs on the engine thread that owns the connection.
 */
#ifndef RINGMQ_BENCH_ENGINE_H
#define RINGMQ_BENCH_ENGINE_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench_conn.h"
#include "bench_tls.h"

#define RING_ENTRIES 4096u
#define BR_ENTRIES 4096u          /* provided receive buffers per thread */
#define BR_SIZE 4096u
#define BR_GID 0
#define TICK_NS INT64_C(1000000)  /* publish schedule resolution */
#define SNAP_NS INT64_C(50000000) /* interval counters handed to the main thread */
#define HOUSE_NS INT64_C(250000000)
#define RETRY_NS INT64_C(200000000)
#define STOP_NS INT64_C(2000000000)
#define SRC_ADDRS 4096u           /* 127.0.0.1 .. 127.0.16.0 */
#define PID_SPACE 65535u
#define PLAIN_SIZE 16384u         /* decrypted bytes per SSL_read (one TLS record at most) */

enum op { OP_CONNECT = 1, OP_RECV, OP_SEND, OP_TIMER, OP_CANCEL };
enum role { ROLE_SUB = 0, ROLE_PUB = 1, ROLE_CYC = 2 /* BENCH_MODE_CONNECT */ };
enum cstate { CS_DOWN = 0, CS_CONNECTING, CS_TLS, CS_CONNACK, CS_SUBACK, CS_READY, CS_CLOSING };
enum why { WHY_ERROR, WHY_CONNFAIL, WHY_OFFLINE, WHY_STOP };

typedef struct obuf {
	uint8_t *p;
	uint32_t len;
	uint32_t cap;
	uint32_t off;          /* bytes of p already sent */
} obuf_t;

typedef struct inflight {
	uint32_t seq;
	int64_t ts;
} inflight_t;

typedef struct conn {
	int fd;
	uint32_t gen;
	uint32_t local;        /* pair index within the thread */
	uint8_t role;
	uint8_t state;
	uint8_t refs;
	bool send_busy;
	bool dirty;
	bool queued;           /* in the connect queue */
	bool subscribed;       /* a SUBACK was received once: later connects expect session present */
	bool offline;
	bool close_after_send;
	bool counted_pending;
	bool again;            /* a finished connect cycle: reconnect at once, not after RETRY_NS */
	bool lost;             /* an established connection was lost: the next CS_READY is a reconnect */
	uint8_t addr;          /* index in cfg->brokers this client connects to; the next one after a loss */
	uint16_t next_pid;
	uint32_t ncycles;      /* connections made, BENCH_MODE_CONNECT (spreads the source address) */
	uint32_t reconnects;   /* times it was READY again after losing an established connection */
	uint32_t rx_reconn;    /* subscriber: first receipts on a connection made after such a loss */
	int64_t t_begin;       /* connect() submitted */
	int64_t retry_at;
	int64_t deadline;      /* handshake must be complete by then */
	int64_t last_tx;
	uint8_t *spill;
	uint32_t spill_len;
	uint32_t spill_cap;
	obuf_t out;
	obuf_t pend;
	inflight_t *inf;       /* FIFO of unacked PUBLISHes (brokers ack in order; a miss is searched) */
	uint32_t inf_head;
	uint32_t inf_n;
	uint32_t inf_cap;
	btls_t *tls;           /* NULL without TLS; kept across reconnects (the session to resume) */
} conn_t;

struct bconn_thread {
	const bench_cfg_t *cfg;
	bench_shared_t *sh;
	uint32_t idx;
	pthread_t tid;
	bool started;

	struct io_uring ring;
	bool ring_ok;
	struct io_uring_buf_ring *br;
	size_t br_len;
	uint8_t *bufs;

	uint32_t npairs;
	bstat_pair_t *pairs;
	conn_t *conns;         /* 2 * npairs: [2j] subscriber, [2j + 1] publisher of local pair j */
	uint32_t nconns;

	uint32_t *cq;          /* connect queue (ring of conn indexes) */
	uint32_t cq_head;
	uint32_t cq_n;
	double tokens;
	int64_t tokens_at;
	uint32_t pending;      /* handshakes in progress */
	uint32_t max_pending;
	double rate;           /* this thread's share of the connect rate */

	uint32_t *dirty;
	uint32_t ndirty;

	int phase;
	int64_t t_start, t_win0, t_win1, t_off0, t_off1;
	double period;
	uint64_t sched_round;
	uint32_t sched_j;
	bool sched_done;
	bool off_begun, off_ended;
	bool stopping;
	int64_t stop_deadline;
	int64_t next_snap, next_house;

	struct __kernel_timespec tick;
	bool timer_fired;
	uint8_t *scratch;      /* payload being built */
	uint8_t *plain;        /* PLAIN_SIZE bytes: decrypted input (TLS only) */
	btls_t *tls_states;    /* one per connection (TLS only) */

	uint64_t inflight;
	uint64_t outstanding;
	uint64_t foreign;
	uint32_t rng;          /* backoff jitter (bench_addr.h) */
	bconn_progress_t prog;
	bconn_interval_t cur;
	bconn_interval_t window;
	pthread_mutex_t mu;
	bconn_interval_t shared_iv;
};


static inline bool
in_window(const bconn_thread_t *t, int64_t ts)
{
	return t->t_start != 0 && ts >= t->t_win0 && ts < t->t_win1;
}

static inline uint32_t
global_pair(const bconn_thread_t *t, uint32_t local)
{
	return t->cfg->first_pair + local * t->cfg->threads + t->idx;
}

/* bench_conn.c */
/* Queue c for the send flush at the top of the next loop turn. */
void eng_mark_dirty(bconn_thread_t *t, conn_t *c);
/* Close c (shutdown + cancel); the slot is reset, and reconnected unless offline/stopping, when its last
 * completion is in. Idempotent. */
void eng_close(bconn_thread_t *t, conn_t *c, enum why why);
/* Handshake complete (CONNACK, or SUBACK for a subscriber). */
void eng_set_ready(bconn_thread_t *t, conn_t *c);
/* Send c->out from c->out.off (one send in flight per connection: not while send_busy). */
void eng_submit_send(bconn_thread_t *t, conn_t *c, uint32_t ci);
/* Why the server's end of the stream closes c: expected once our DISCONNECT is out, an error before. */
enum why eng_why_eof(const conn_t *c);

/* bench_conn_tls.c */
/* The TLS layer failed (c->tls->err / verify say why): count it and close c as a failed connect (before
 * CS_READY) or an error. */
void eng_tls_fail(bconn_thread_t *t, conn_t *c);
/* Ciphertext received on c: handshake, then the plaintext to cli_on_data(). May close c. */
void eng_tls_on_data(bconn_thread_t *t, conn_t *c, const uint8_t *data, size_t len, int64_t now);
/* Flush-pass step for a TLS connection: encrypt c->pend and send the ciphertext (unless a send is busy). */
void eng_tls_flush(bconn_thread_t *t, conn_t *c, uint32_t ci);

/* bench_client.c */
/* Append CONNECT / DISCONNECT (end_session: MQTT 5 session expiry 0) / a 2-byte packet to c's output. */
void cli_queue_connect(bconn_thread_t *t, conn_t *c, int64_t now);
void cli_queue_disconnect(bconn_thread_t *t, conn_t *c, bool end_session, int64_t now);
void cli_queue_empty(bconn_thread_t *t, conn_t *c, uint8_t type, int64_t now);
/* Append n bytes to b, growing it; NULL when out of memory, else where they go. */
uint8_t *cli_obuf_reserve(obuf_t *b, uint32_t n);
/* Local pair j's publisher sends its next message now (or counts a skip if it cannot). */
void cli_publish(bconn_thread_t *t, uint32_t j, int64_t now);
/* Bytes received on c: parse and handle every complete packet, keep the partial tail. May close c. */
void cli_on_data(bconn_thread_t *t, conn_t *c, const uint8_t *data, size_t len, int64_t now);

#endif

/*
 * bench_conn.h — ringmq-bench client engine: one thread, one io_uring, a share of the pairs.
 *
 * Pair i belongs to thread i % threads; both its publisher and its subscriber live there, so the pair's
 * accounting (bench_stats.h) is single-threaded. A thread follows bench_shared_t.phase: it connects its
 * subscribers (CONNECT clean=0, SUBSCRIBE, SUBACK), then its publishers, paced by the connect rate; from
 * t_start it publishes on a schedule (pair i at phase i/pairs of the period), takes its subscribers offline and
 * back for --offline, stops publishing at the end of the run and keeps receiving until PH_STOP.
 *
 * Threads only talk to the main thread through bench_shared_t atomics, the progress counters below (relaxed
 * atomics, read at any time) and bconn_take_interval() (mutex). Totals and per-pair accounting may be read
 * only after bconn_join().
 *
 * BENCH_MODE_CONNECT: the thread's share of cfg->pairs is clients instead of pairs (bconn_npairs() is 0); from
 * PH_RUN every client connects (TCP, TLS with cfg->tls, CONNECT/CONNACK), sends DISCONNECT, closes and starts
 * again at once, until PH_STOP. The interval counters count the cycles by CONNACK time.
 */
#ifndef RINGMQ_BENCH_CONN_H
#define RINGMQ_BENCH_CONN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_cfg.h"
#include "bench_hist.h"
#include "bench_stats.h"

typedef struct bconn_thread bconn_thread_t;

/* Progress counters, written by the engine thread, read by anyone. */
typedef struct bconn_progress {
	_Atomic uint32_t subs_ready;     /* subscribed and not offline */
	_Atomic uint32_t pubs_ready;
	_Atomic uint64_t inflight;       /* PUBLISHes not yet PUBACKed */
	_Atomic uint64_t outstanding;    /* PUBACKed, not yet received */
	_Atomic uint64_t connect_errors; /* failed connect() / refused CONNACK / timeouts (retried) */
	_Atomic uint64_t disconnects;    /* connections the broker or the network closed unexpectedly */
	_Atomic uint64_t session_lost;   /* subscriber reconnects without session present */
	_Atomic uint64_t proto_errors;   /* malformed or unexpected packets from the broker */
	_Atomic uint64_t sub_refused;    /* SUBACK failure codes */
	_Atomic uint64_t skipped;        /* scheduled publishes not sent: not connected or window full */
	_Atomic uint64_t refused;        /* CONNACKs with a failure code (also counted in connect_errors) */
	_Atomic uint64_t tls_full;       /* TLS handshakes completed without resumption */
	_Atomic uint64_t tls_resumed;    /* ... resuming the client's previous session */
	_Atomic uint64_t tls_errors;     /* TLS failures (handshake, verification, alert), counted in connect_errors
	                                    during a handshake, in disconnects after it */
	_Atomic uint64_t reconnects_pub; /* a publisher READY again after losing an established connection */
	_Atomic uint64_t reconnects_sub; /* ... a subscriber */
	_Atomic uint64_t unacked_on_disconnect; /* PUBLISHes not yet PUBACKed when their connection was lost:
	                                           forgotten (never acked, so never "lost") */
	_Atomic int last_errno;          /* last connect error, for the report */
	_Atomic unsigned long last_tls_err; /* last TLS failure: OpenSSL error code and X509_V_* (btls_describe) */
	_Atomic long last_tls_verify;
} bconn_progress_t;

/* Counters and latencies of messages whose send time falls in a period. */
typedef struct bconn_interval {
	uint64_t sent;
	uint64_t acked;
	uint64_t received;       /* first receipts only */
	hist_t e2e;              /* receive time - send timestamp, ns */
	hist_t ack;              /* PUBACK time - send time, ns */
	/* BENCH_MODE_CONNECT, by CONNACK time: */
	uint64_t cycles;         /* CONNACKs (successful) */
	uint64_t resumed;        /* ... of which over a resumed TLS session */
	hist_t handshake;        /* TLS handshake complete - connect() submitted, ns (TLS only) */
	hist_t connack;          /* CONNACK - connect() submitted, ns */
} bconn_interval_t;

/*
 * Create thread `idx`'s engine (not yet running): allocates the pairs' state and the io_uring (the ring is
 * set up in the thread itself, see docs/STYLE.md 11). Returns NULL with errno set on failure. Main thread only.
 */
bconn_thread_t *bconn_create(const bench_cfg_t *cfg, bench_shared_t *sh, uint32_t idx);
/* Free everything; the thread must have been joined (or never started). NULL is a no-op. */
void bconn_destroy(bconn_thread_t *t);
/* Start / join the engine thread. start returns 0 or a positive errno from pthread_create. */
int bconn_start(bconn_thread_t *t);
void bconn_join(bconn_thread_t *t);

const bconn_progress_t *bconn_progress(const bconn_thread_t *t);
/* Merge the thread's interval counters since the last call into *out (which the caller zeroed with
 * bconn_interval_init) and reset them. Any thread. */
void bconn_take_interval(bconn_thread_t *t, bconn_interval_t *out);
void bconn_interval_init(bconn_interval_t *iv);
void bconn_interval_merge(bconn_interval_t *dst, const bconn_interval_t *src);

/* After bconn_join(): messages of the measured window (send time in [warmup, warmup + duration)). */
const bconn_interval_t *bconn_window(const bconn_thread_t *t);
/* After bconn_join(): number of pairs of this thread, and pair j (global index j * threads + idx). */
uint32_t bconn_npairs(const bconn_thread_t *t);
const bstat_pair_t *bconn_pair(const bconn_thread_t *t, uint32_t j);
/* After bconn_join(): where pair j's clients ended up and how often they came back (bench_addr.h). */
typedef struct bconn_pair_info {
	uint32_t pub_addr;               /* index in cfg->brokers of the last address used */
	uint32_t sub_addr;
	uint32_t reconnects_pub;
	uint32_t reconnects_sub;
	uint32_t received_after_reconnect; /* first receipts by a subscriber connection made after a loss */
} bconn_pair_info_t;
void bconn_pair_info(const bconn_thread_t *t, uint32_t j, bconn_pair_info_t *out);
/* Receipts that were not ours (other run id / malformed payload / another pair's topic). */
uint64_t bconn_foreign(const bconn_thread_t *t);

/* CLOCK_MONOTONIC in ns. Any thread. */
int64_t bench_now(void);
/* Render a topic pattern for pair i into buf (always NUL-terminated when cap > 0): "%d" becomes i, "%%" a
 * percent sign, nothing else is interpreted. Returns the length written (truncated to cap - 1). */
size_t bench_topic(char *buf, size_t cap, const char *pattern, uint32_t i);
/* The same for user names and passwords, where "%i" means i as well as "%d". */
size_t bench_subst(char *buf, size_t cap, const char *pattern, uint32_t i);

#endif

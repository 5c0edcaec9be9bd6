/*
 * bench_cfg.h — ringmq-bench configuration and the state its threads share (types only).
 *
 * bench.c fills a bench_cfg_t from the command line; the engine threads (bench_conn.c) read it and never write
 * it. bench_shared_t is the only memory written by more than one thread: the main thread drives the phases,
 * the engine threads publish progress counters; all through C11 atomics.
 */
#ifndef RINGMQ_BENCH_CFG_H
#define RINGMQ_BENCH_CFG_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench_addr.h"

#define NS_PER_SEC INT64_C(1000000000)
#define BENCH_PAYLOAD_HDR 24 /* send time u64, pair u32, seq u32, run id u32, magic u32 */
#define BENCH_MAGIC 0x524d5142u /* "RMQB" */

struct btls_ctx;

enum bench_mode {
	BENCH_MODE_P2P = 0,      /* publisher/subscriber pairs (the default) */
	BENCH_MODE_CONNECT = 1,  /* clients connect, CONNECT/CONNACK, DISCONNECT, reconnect, in a loop */
};

typedef struct bench_cfg {
	baddr_list_t brokers;    /* --brokers, or --host/--port as a one-address list (bench_addr.h) */
	uint32_t sub_offset;     /* pair i's subscriber starts on address (i + sub_offset) mod brokers.n */
	uint32_t tick_us;        /* publish timer period (0: TICK_NS); smaller: fewer messages per burst */
	int place_workers;       /* > 0: publisher ids chosen to hash to a worker of that many (bench_addr.h) */
	int place_shift;         /* ... their subscriber's worker + this (0 --colocate, 1 --crosswise) */
	uint8_t mode;            /* enum bench_mode */
	uint32_t pairs;          /* BENCH_MODE_CONNECT: the number of clients */
	uint32_t first_pair;      /* pair indexes are first_pair .. first_pair + pairs - 1 */
	uint32_t threads;
	double rate;             /* messages per second per publisher */
	uint32_t payload;        /* bytes, >= BENCH_PAYLOAD_HDR */
	uint8_t qos;
	uint8_t version;         /* enum mqtt_version */
	int64_t warmup_ns;
	int64_t duration_ns;
	int64_t offline_ns;      /* 0: no offline period */
	int64_t drain_ns;
	int64_t interval_ns;     /* periodic report */
	int64_t connect_timeout_ns;
	double connect_rate;     /* new connections per second, all threads together; 0: unpaced */
	uint32_t max_pending;    /* connections between connect() and CONNACK, all threads together */
	uint32_t max_inflight;   /* unacked QoS 1/2 PUBLISHes per publisher */
	uint16_t keepalive;
	uint32_t session_expiry; /* MQTT 5 subscribers */
	bool src_spread;         /* bind sources over 127.0.0.0/8 */
	const char *pub_topic;   /* "%d" is replaced by the pair index */
	const char *sub_topic;
	char client_prefix[48];
	uint32_t run_id;
	struct btls_ctx *tls;    /* NULL: plain TCP (bench_tls.h); else tls_addr[0] */
	struct btls_ctx *tls_addr[BADDR_MAX]; /* per address: the server name to check differs per node (entries
	                                         may share one context; bench.c frees each once) */
	const char *username;    /* NULL: none; "%i" / "%d" is replaced by the pair or client index */
	const char *password;    /* NULL: none; same replacement */
} bench_cfg_t;

enum bench_phase {
	BENCH_PH_SUBS = 0,       /* connect and subscribe the subscribers */
	BENCH_PH_PUBS = 1,       /* connect the publishers */
	BENCH_PH_RUN = 2,        /* publish; t_start is set */
	BENCH_PH_STOP = 3,       /* disconnect everything and leave the loop */
};

typedef struct bench_shared {
	const bench_cfg_t *cfg;
	_Atomic int phase;
	_Atomic int64_t t_start; /* CLOCK_MONOTONIC ns of the first scheduled publish (set before PH_RUN) */
	_Atomic bool abort;      /* fatal error in a thread: the main thread stops the run */
} bench_shared_t;

#endif

/*
 * worker.h — one worker process: its entry point and the little state every module of it shares.
 *
 * Called in the child right after fork() by the supervisor. The worker creates its own io_uring (a ring must
 * not cross fork), serves clients on listen_fd, talks to the supervisor over ctl_fd and to the other workers
 * over mesh_fds, and returns an exit status when told to shut down or when ctl_fd reaches EOF (supervisor gone).
 * It takes ownership of every fd in args; the supervisor has already closed every other inherited fd.
 *
 * Each module keeps its own state (connections in conn.c, sessions in sess.c, the trie in route.c...); wk_t
 * holds only what is process-wide: identity, configuration, and the counters behind `ringmqctl stats`.
 */
#ifndef RINGMQ_WORKER_WORKER_H
#define RINGMQ_WORKER_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define WORKER_MAX 256

typedef struct worker_args {
	int id;                      /* 0..n_workers-1 */
	int n_workers;
	int listen_fd;               /* SO_REUSEPORT TCP listener held by the supervisor, nonblocking */
	int tls_listen_fd;           /* the TLS port's listener, or -1 */
	uint8_t tls_ticket_key[80];  /* TLS session ticket key (the same in every worker) */
	int ctl_fd;                  /* worker end of the control channel (chan.h) */
	int mesh_fds[WORKER_MAX + 1]; /* SOCK_STREAM socketpair end to peer k; -1 for self. With cluster = kafka,
	                              * peer n_workers is the node's Kafka process (kproc.h) */
	const config_t *cfg;
	unsigned restart_count;      /* 0 at first start: peers need no state dump */
} worker_args_t;

/*
 * Counters, each a uint64_t in wk_stats_t and a key of `ringmqctl stats --json` (ctl.c walks this list, so a
 * counter added here is reported without further code). Gauges (connections, sessions, queue depth) are
 * computed by their modules on request.
 */
#define WK_STATS(X) \
	X(msgs_in) X(msgs_out) X(bytes_in) X(bytes_out) \
	X(dropped_queue_full) X(dropped_expired) X(dropped_too_large) X(dropped_no_subscriber) \
	X(dropped_qos0_outbuf) X(closed_outbuf) X(closed_nomem) X(closed_connect_timeout) X(paused_input) \
	X(handoffs_out) X(handoffs_in) X(handoffs_failed) \
	X(connects) X(disconnects) X(protocol_errors) X(rejected_max_conn) X(rejected_subscriptions) \
	X(store_ops) X(store_batches) X(store_errors) X(store_retries) X(store_dropped) X(store_quarantined) \
	X(store_failed_ops) X(paused_reads) X(mesh_resent) X(mesh_failed) \
	X(tls_handshakes) X(tls_resumed) X(tls_failed) X(relay_opened) X(relay_accepted) \
	X(rejected_address) X(rejected_topic) X(rejected_user_properties) X(rejected_qos2_pending) \
	X(auth_ok) X(auth_cache_hits) X(auth_failed) X(auth_busy) X(auth_rate_limited) X(auth_unavailable) \
	X(auth_revoked) X(acl_denied_publish) X(acl_denied_subscribe) X(acl_denied_will) X(acl_dropped_subscriptions) \
	X(pg_queries) X(pg_cache_hits) X(pg_errors) X(pg_reconnects) X(pg_notifies) \
	X(msgs_in_qos0) X(msgs_in_qos1) X(msgs_in_qos2) X(msgs_out_qos0) X(msgs_out_qos1) X(msgs_out_qos2) \
	X(sessions_expired) X(sessions_loaded_on_demand) X(publishes_held)

typedef struct wk_stats {
#define WK_STAT_FIELD(name) uint64_t name;
	WK_STATS(WK_STAT_FIELD)
#undef WK_STAT_FIELD
} wk_stats_t;

typedef struct wk {
	int id;
	int n;                       /* workers (slot ownership) */
	int n_peers;                 /* mesh peers: the workers, and the Kafka process at index n in a cluster */
	const config_t *cfg;
	int listen_fd;
	int tls_listen_fd;
	int ctl_fd;
	wk_stats_t st;
} wk_t;

/* The worker process's one instance (set by worker_run; tests set their own). */
extern wk_t *W;

/* Sessions are restored: read the mesh, say our interest is complete (in a cluster: then take clients and tell
 * the supervisor; otherwise clients are taken from the start). Worker process only. */
void worker_serve(void);
/* A worker's exit status when its configuration cannot work (a certificate, password or ACL file that does not
 * load, a provider order naming nothing configured...), after one log line saying what and how to fix it: the
 * supervisor stops the broker (exit status 2) rather than restarting the worker into the same error. */
#define WORKER_EXIT_CONFIG 78

/* Returns the process exit status (0 after a graceful shutdown, WORKER_EXIT_CONFIG, 1 on other failures). */
int worker_run(const worker_args_t *args);
/* Begin a graceful stop (control channel SHUTDOWN or EOF): idempotent. */
void worker_stop(const char *why);

#endif

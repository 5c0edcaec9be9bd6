/*
 * rds.h — Redis client on the worker's io_uring (transport for the Redis session store, issue 4).
 *
 * Each worker keeps its own connection to every Redis master it needs (one per master), driven entirely by
 * the worker's ring: IORING_OP_CONNECT on a nonblocking socket, one plain recv into a per-connection buffer,
 * and an outq_t written once per loop turn by rds_flush_all(). Commands are formatted with hiredis's formatter
 * and replies parsed with its redisReader; nothing here ever blocks (no redisConnect/redisCommand), except
 * the name resolution of the seed addresses inside rds_init (start-up only).
 *
 * Delivery contract (what the session store must be written against):
 *   - Every accepted command (rds_command returned 0) gets exactly one callback, from rds_on_cqe, from the
 *     module's timer completion, or from rds_finish: cb(ctx, reply, 0) with a reply (which may be a Redis
 *     error reply, type REDIS_REPLY_ERROR), or cb(ctx, NULL, err) with
 *       -ECONNRESET  the connection dropped after the command was written: it may or may not have run;
 *       -ETIMEDOUT   no reply within command_timeout_ms: the connection was reset, the command may have run;
 *       -ECANCELED   rds_finish() was called first.
 *     A command is never resent automatically after it may have run, except in the three cases where Redis
 *     itself says it did not run it: MOVED, ASK (Cluster redirections) and a missing function (FUNCTION
 *     FLUSH behind our back / a fresh master after failover), where the library is loaded again and the
 *     command retried once. Store operations must therefore be idempotent (SET rather than INCR, FCALLs that
 *     check a version/sequence), so that the caller may retry after -ECONNRESET/-ETIMEDOUT.
 *   - Commands for one master are written and answered in the order they were issued; callbacks on one
 *     connection run in that order. A redirected or retried command is re-queued ahead of commands that were
 *     not written yet, but commands already in flight behind it complete first.
 *   - While a master is unreachable its commands stay queued (no timeout while queued) and are written after
 *     the reconnect handshake (AUTH, SELECT, FUNCTION LOAD REPLACE). rds_pending() bounds memory: rds_command
 *     returns -EAGAIN once max_pending commands are outstanding.
 *   - The reply passed to a callback is owned by this module and freed when the callback returns.
 *
 * Threading: everything here runs on the worker's own thread, between loop_init() and loop_finish();
 * callbacks may issue new commands (rds_command) but must not call rds_init/rds_finish.
 */
#ifndef RINGMQ_WORKER_RDS_H
#define RINGMQ_WORKER_RDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

/* hiredis's reply type (<hiredis/hiredis.h>): callers that read replies include hiredis themselves. */
struct redisReply;

enum rds_mode {
	RDS_AUTO = 0,       /* CLUSTER SLOTS on the first seed: "cluster support disabled" means standalone */
	RDS_STANDALONE,     /* one master: the first address; every slot goes there */
	RDS_CLUSTER,        /* Redis Cluster: seeds, topology from CLUSTER SLOTS, MOVED/ASK followed */
};

typedef struct rds_config {
	const char *addrs;             /* "host:port[,host:port...]", "[v6]:port"; port defaults to 6379 */
	const char *user;              /* ACL user for AUTH; NULL or "" = default user */
	const char *password;          /* NULL or "" = no AUTH */
	int db;                        /* SELECT db after AUTH (standalone only; Cluster has db 0 only) */
	uint32_t connect_timeout_ms;   /* 0 = 2000: TCP connect attempt */
	uint32_t command_timeout_ms;   /* 0 = 5000: oldest unanswered command; then the connection is reset */
	uint32_t max_pending;          /* 0 = 100000: commands accepted and not yet called back */
	enum rds_mode mode;
} rds_config_t;

/*
 * Start the client for this worker: copies cfg, resolves the seed addresses (getaddrinfo: may block, so
 * call it at start-up only), and queues the first connects (submitted with the loop's next submit).
 * Call after loop_init(). Returns 0; -EINVAL for an unparsable or unresolvable address (logged); -ENOMEM.
 * Connection failures are not errors here: they are logged and retried with backoff (100 ms doubling to 5 s).
 */
int rds_init(const rds_config_t *cfg);
/*
 * Stop: calls every outstanding callback with -ECANCELED, cancels this module's SQEs synchronously (so no
 * kernel write can hit freed memory), closes the sockets and frees everything. Completions of the cancelled
 * SQEs may still be in the CQ: rds_on_cqe ignores them. Call before loop_finish(). No-op if not initialized.
 */
void rds_finish(void);

/* Callback of one command; see the delivery contract above. reply is NULL iff err != 0. */
typedef void (*rds_cb)(void *ctx, const struct redisReply *reply, int err);

/*
 * Queue one command (argv[0] is the command name) for the master owning `slot` (rds_key_slot of its key;
 * any value for keyless commands in standalone mode). lens may be NULL for NUL-terminated arguments. The
 * arguments are copied (formatted) before return. cb may be NULL (reply ignored). Written at the end of the
 * loop turn, pipelined with everything else for that master.
 * Returns 0 (cb will be called exactly once, never from inside rds_command), -EAGAIN when max_pending
 * commands are outstanding (flow control: retry after some callbacks), -EINVAL (not initialized, argc < 1),
 * -ENOMEM.
 */
int rds_command(uint16_t slot, int argc, const char **argv, const size_t *lens, rds_cb cb, void *ctx);

/*
 * Register a Redis 7 function library ("#!lua name=..." source; copied). It is loaded with FUNCTION LOAD
 * REPLACE on every (re)connect before any other command, and now on the connections already up. An FCALL or
 * FCALL_RO answered "Function not found" is retried once after loading the libraries again on that master.
 * A library Redis refuses is logged (with Redis's message) and not retried. Call after rds_init.
 * Returns 0, -EINVAL (not initialized), -ENOMEM.
 */
int rds_function_register(const char *src, size_t len);

/* Redis Cluster key slot with the {hash tag} rule: if the key has a '{' followed later by a '}' with at
 * least one byte between them, only those bytes are hashed. CRC16/XMODEM mod 16384 (common/slot.h). */
uint16_t rds_key_slot(const void *key, size_t len);

/* True when the topology is known and every master is connected and past its handshake (flow control). */
bool rds_ready(void);
/* Commands accepted by rds_command and not yet called back (queued, in flight, or being redirected). */
size_t rds_pending(void);

/* rds_init registers with the loop: a completion kind for its SQEs, and a flush hook that writes every
 * pipelined command queued during the turn and arms the module's 100 ms timer (reconnect backoff, connect
 * and command timeouts) when something needs watching. */

#endif

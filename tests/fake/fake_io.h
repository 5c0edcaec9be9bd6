/*
 * fake_io.h — the worker's I/O (loop.c, sock.c, ctl.c, rds.c, worker.c) replaced by memory, for unit tests
 * and fuzz targets of the worker's logic (libringmq-worker-core).
 *
 * Sockets are entries of a table like the real one; what a connection writes accumulates in its output
 * queue for the test to take (fake_output) — or to leave there, to play a client that never reads. The
 * clock moves only when the test says (fake_advance, which runs the tick hooks). Redis commands are queued
 * (fake_rds_*) for the test to answer with RESP text. One worker per process, as in the real thing.
 */
#ifndef RINGMQ_TESTS_FAKE_IO_H
#define RINGMQ_TESTS_FAKE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "worker.h"

/* Set up worker id of n with cfg (copied; defaults when NULL) on fake I/O, with a channel to every peer k
 * (its fake descriptor is FAKE_CHAN_FD(k)). */
#define FAKE_CHAN_FD(k) (1000 + (k))
void fake_init(const config_t *cfg, int id, int n);
/* Tear down (every module finished, memory freed). */
void fake_finish(void);
/* One loop turn without I/O: run the flush hooks (output "written" stays queued; closed sockets released). */
void fake_turn(void);
/* Move the clock and run the tick hooks. */
void fake_advance(uint64_t ms);
/*
 * Reads armed on the "ring" (io_uring_prep_read on a loop_sqe(), e.g. the hash pool's eventfd) are kept; wait up
 * to timeout_ms for their fds to become readable, read as the kernel would, call the completion handlers of their
 * kinds (loop_register), then run one fake_turn(). Returns the number of completions delivered (0: timeout).
 * loop_cancel() of a read drops it without a completion. Other SQEs are ignored, as before.
 */
int fake_io_wait(int timeout_ms);

/* A new client connection (as if accepted). */
conn_t *fake_connect(void);
/* Bytes from the client. Returns false when the connection is gone afterwards (closed and released). */
void fake_input(conn_t *c, const void *p, size_t n);
/* Take what c wrote since last time (copied into *out, malloc'd, caller frees). Returns the length. */
size_t fake_output(conn_t *c, uint8_t **out);
/* What connection `id` wrote before it was closed and released (taken once; *out malloc'd or NULL). */
size_t fake_last_output(uint64_t id, uint8_t **out);
/* Is the socket of connection id `id` still open (not closing)? */
bool fake_conn_open(uint64_t id);
/* The sock table slot / generation of a live connection with that id, or NULL. */
conn_t *fake_conn_find(uint64_t id);

/* Mesh: the fake channel socket to peer k (NULL if none), its output, and input from the peer. */
struct sock *fake_chan(int k);
size_t fake_chan_output(int k, uint8_t **out);
void fake_chan_input(int k, const void *p, size_t n);

/* Redis: commands waiting for an answer, and answering the oldest with a RESP reply text (or an error
 * code: -ECONNRESET...). fake_rds_argv gives argument i of the oldest. */
size_t fake_rds_pending(void);
const char *fake_rds_argv(size_t i, size_t *len);
size_t fake_rds_argc(void);
void fake_rds_answer(const char *resp, size_t len, int err);
/* The letters of the operations in the oldest command (an FCALL ringmq_batch) into ops; SIZE_MAX when one
 * is unknown. */
size_t fake_rds_ops(char *ops, size_t cap);
/* Answer the oldest command as Redis would: a restore with no sessions; a batch with 0 per write and `load`
 * (RESP of one 'L' result, load_len bytes; NULL: an empty session) per load. */
void fake_rds_answer_ok(const char *load, size_t load_len);

/* A reply object from RESP text (hiredis's reader): for tests of reply decoding. Free with freeReplyObject. */
struct redisReply *fake_resp_parse(const char *resp);

/* Allocation failure injection: the n-th malloc/calloc/realloc from now fails (0: none). */
void fake_fail_alloc_after(long n);

#endif

/*
 * loop.h — the worker's io_uring and its event loop: a mechanism that knows no module.
 *
 * One ring per worker process, created after fork (SINGLE_ISSUER | DEFER_TASKRUN). Modules register:
 *   - a completion handler per kind of SQE they submit (loop_register): the kind is the top byte of the
 *     SQE's user_data, the rest (24-bit generation, 32-bit index) is theirs to decode;
 *   - flush hooks (loop_on_flush), run in registration order before every submit: this is where a turn's
 *     output is written in one pass (Redis's beforeSleep);
 *   - tick hooks (loop_on_tick), run from a coarse periodic timer;
 *   - drain checks (loop_on_drain): once the worker is stopping, the loop ends when every check says its
 *     module has nothing left in flight.
 * Each turn drains every CQE, runs the flush hooks, then calls io_uring_submit_and_wait exactly once.
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_LOOP_H
#define RINGMQ_WORKER_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

/* The provided-buffer group used by every multishot recv of the worker. */
#define LOOP_BGID 1

typedef void (*loop_cqe_fn)(uint64_t ud, struct io_uring_cqe *cqe);
typedef void (*loop_fn)(void);
typedef bool (*loop_busy_fn)(void);

/* user_data: | kind:8 | gen:24 | idx:32 |. Kind 0 is "ignore" (cancel requests and the like). */
#define LOOP_IGNORE 0
static inline uint64_t ud_make(uint8_t kind, uint32_t gen, uint32_t idx)
{
	return ((uint64_t)kind << 56) | ((uint64_t)(gen & 0xffffff) << 32) | idx;
}
static inline uint8_t ud_kind(uint64_t ud) { return (uint8_t)(ud >> 56); }
static inline uint32_t ud_gen(uint64_t ud) { return (uint32_t)(ud >> 32) & 0xffffff; }
static inline uint32_t ud_idx(uint64_t ud) { return (uint32_t)ud; }

typedef struct loop_config {
	uint32_t sq_entries;
	uint32_t buf_count;            /* provided receive buffers (power of two) */
	uint32_t buf_size;
	uint32_t tick_ms;              /* period of the tick hooks */
} loop_config_t;

/* Create the ring and register the provided-buffer ring. 0 or -errno (logged with a hint). */
int loop_init(const loop_config_t *cfg);
/* Tear the ring down. Every module must have cancelled and reaped what references its memory first. */
void loop_finish(void);
/* The ring itself, for modules that need a synchronous cancel (rds_finish) or a test driving it. */
struct io_uring *loop_ring(void);

/* A new completion kind handled by fn; returns the kind for ud_make (never LOOP_IGNORE). At most 255. */
uint8_t loop_register(const char *name, loop_cqe_fn fn);
/* Flush hooks run in ascending order: sockets last, so every module's output of the turn is written and a
 * closed socket is released only after everyone who might still touch it has run. */
enum loop_order { LOOP_ORDER_CONN = 10, LOOP_ORDER_MESH = 20, LOOP_ORDER_STORE = 30, LOOP_ORDER_RDS = 40,
	LOOP_ORDER_PG = 45, LOOP_ORDER_CTL = 50, LOOP_ORDER_SOCK = 90 };
void loop_on_flush(loop_fn fn, int order);
void loop_on_tick(loop_fn fn);
void loop_on_drain(loop_busy_fn busy);

/* A free SQE; submits what is queued when the SQ is full. Never NULL. */
struct io_uring_sqe *loop_sqe(void);
/* Arm a multishot recv on fd selecting buffers from the provided ring. */
void loop_recv_multishot(int fd, uint64_t ud);
/* Queue one send of len bytes at p (which must stay valid until its completion). */
void loop_send(int fd, const void *p, size_t len, uint64_t ud);
/* Cancel every request whose user_data is ud; the cancel's own completion is ignored. */
void loop_cancel(uint64_t ud);
/* Address of provided buffer bid, and giving it back to the kernel once its bytes are consumed. */
uint8_t *loop_buf(uint16_t bid);
void loop_buf_return(uint16_t bid);
/* The provided buffer a CQE carries, or -1. */
static inline int loop_cqe_buf(const struct io_uring_cqe *cqe)
{
	return (cqe->flags & IORING_CQE_F_BUFFER) ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;
}

/* CLOCK_MONOTONIC in ms. loop_now() is the time of the current turn (read once per turn). */
uint64_t loop_clock_ms(void);
uint64_t loop_now(void);
/* Stop: the loop returns once every drain check says idle. */
void loop_stop(void);
bool loop_stopping(void);
/* Run until stopped and drained. Returns the exit status. */
int loop_run(void);
/* One turn without blocking longer than timeout_ms (tests drive the loop this way). */
void loop_turn(uint32_t timeout_ms);

#endif

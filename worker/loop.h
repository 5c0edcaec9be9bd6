/*
 * loop.h — the worker's io_uring: ring setup, provided receive buffers, user_data encoding, the main loop.
 *
 * One ring per worker process, created after fork (SINGLE_ISSUER | DEFER_TASKRUN). Each loop turn drains
 * every CQE, then flushes all queued output (clients, peers, control replies) and submits once with
 * io_uring_submit_and_wait. Only the worker's own thread may call these.
 */
#ifndef RINGMQ_WORKER_LOOP_H
#define RINGMQ_WORKER_LOOP_H

#include "wk-t.h"

#define BGID 1

static inline uint64_t ud_make(enum ud_type type, uint32_t gen, uint32_t idx)
{
	return ((uint64_t)type << 56) | ((uint64_t)(gen & 0xffffff) << 32) | idx;
}
static inline enum ud_type ud_type(uint64_t ud) { return (enum ud_type)(ud >> 56); }
static inline uint32_t ud_gen(uint64_t ud) { return (uint32_t)(ud >> 32) & 0xffffff; }
static inline uint32_t ud_idx(uint64_t ud) { return (uint32_t)ud; }

/* Create the ring and register the provided-buffer ring. 0 or -errno (logged with a hint). */
int loop_init(void);
void loop_finish(void);
/* A free SQE; submits what is queued when the SQ is full. Never NULL. */
struct io_uring_sqe *loop_sqe(void);
/* Arm a multishot recv on fd selecting buffers from the provided ring. */
void loop_arm_recv(int fd, uint64_t ud);
/* Address of provided buffer bid, and giving it back to the kernel once its bytes are consumed. */
uint8_t *loop_buf(uint16_t bid);
void loop_buf_return(uint16_t bid);
/* CLOCK_MONOTONIC in ms; W->now_ms is refreshed once per loop turn. */
uint64_t loop_now_ms(void);
/* Run until the worker stops. Returns the exit status. */
int loop_run(void);

#endif

/*
 * rds.h — Redis client on the worker's io_uring (placeholder until the Redis store lands: no connections).
 */
#ifndef RINGMQ_WORKER_RDS_H
#define RINGMQ_WORKER_RDS_H

#include "wk-t.h"

/* Completion of an SQE whose user_data has type UD_RDS. */
void rds_on_cqe(uint64_t ud, struct io_uring_cqe *cqe);
/* Write every pipelined command queued during this loop turn. */
void rds_flush_all(void);

#endif

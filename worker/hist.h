/*
 * hist.h — the worker's latency histograms, exported by the supervisor as Prometheus histograms
 * (supervisor/metrics.c, docs/operations.md "Metrics").
 *
 * Fixed buckets (HIST_BUCKETS upper bounds in microseconds, then +Inf), one integer increment and a sum per
 * observation: the per-message cost is a clock read and a short scan, nothing is allocated. Two histograms:
 *   HIST_PUBACK  a QoS 1/2 PUBLISH read from its publisher -> its PUBACK/PUBREC written to the connection's
 *                output (the end of the turn that sends it), i.e. the time ringmq made the publisher wait;
 *   HIST_E2E     a QoS 1/2 PUBLISH read from its publisher -> the subscriber's PUBACK/PUBREC read, for each
 *                copy delivered live (retained replays and messages restored from the store are not counted).
 * Worker process only (the clock is CLOCK_MONOTONIC, shared by the workers of one machine, so a message that
 * crossed the mesh keeps its receive time).
 */
#ifndef RINGMQ_WORKER_HIST_H
#define RINGMQ_WORKER_HIST_H

#include <stdint.h>

struct json_t;

#define HIST_BUCKETS 18

enum hist_id { HIST_PUBACK, HIST_E2E, HIST_COUNT };

typedef struct hist {
	uint64_t counts[HIST_BUCKETS + 1]; /* per bucket (not cumulative); the last one is +Inf */
	uint64_t sum_us;
} hist_t;

/* Upper bounds of the buckets, microseconds (the same in every worker and in the supervisor's exposition). */
extern const uint32_t hist_bounds_us[HIST_BUCKETS];

/* A receive timestamp: CLOCK_MONOTONIC microseconds, truncated to 32 bits (wraps every 71 minutes; a span is
 * the unsigned difference), never 0 so that 0 can mean "not measured". */
uint32_t hist_stamp(void);
/* Record the time from stamp (a hist_stamp() value, 0: ignored) to now in histogram id. */
void hist_since(enum hist_id id, uint32_t stamp);
/* Record a span in microseconds. */
void hist_observe(enum hist_id id, uint64_t us);
const hist_t *hist_get(enum hist_id id);
/* {"puback":{"buckets":[...HIST_BUCKETS+1 counts...],"sum_us":N},"e2e":{...}} for the supervisor's metrics
 * request; NULL when out of memory. */
struct json_t *hist_json(void);

#endif

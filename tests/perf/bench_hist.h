/*
 * bench_hist.h — log-bucketed latency histogram for ringmq-bench.
 *
 * Values are unsigned 64-bit (nanoseconds in the bench). Values below 32 have one bucket each; above, every
 * power of two is split into 32 linear sub-buckets, so a reported percentile is within 1/32 (~3%) of the true
 * value, over the whole 64-bit range, in a fixed 15 KiB. min, max, count and sum are exact.
 *
 * A hist_t is caller-owned plain memory (init/finish style without anything to finish): it may be copied with
 * memcpy and merged. It is not thread-safe; the bench keeps one per thread and merges them.
 */
#ifndef RINGMQ_BENCH_HIST_H
#define RINGMQ_BENCH_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_SUB)

typedef struct hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t buckets[HIST_BUCKETS];
} hist_t;

/* Empty the histogram. */
void hist_init(hist_t *h);
/* Record one value. */
void hist_record(hist_t *h, uint64_t v);
/* Add every value of src into dst. */
void hist_merge(hist_t *dst, const hist_t *src);
/*
 * The value at percentile p (0..100): the highest value of the bucket holding the ceil(p% * count)-th smallest
 * value, clamped to [min, max]; p <= 0 gives min, p >= 100 gives max. 0 for an empty histogram.
 */
uint64_t hist_percentile(const hist_t *h, double p);
/* Exact arithmetic mean, 0 for an empty histogram. */
double hist_mean(const hist_t *h);

/* Bucket of value v, and the lowest/highest value a bucket holds (exposed for the unit tests). */
size_t hist_bucket(uint64_t v);
uint64_t hist_bucket_low(size_t idx);
uint64_t hist_bucket_high(size_t idx);

#endif

/*
 * bench_hist.c — log-bucketed histogram (see bench_hist.h).
 */
#include "bench_hist.h"

#include <string.h>

void
hist_init(hist_t *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

size_t
hist_bucket(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (size_t)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
	/* The SUB_BITS bits below the leading one pick the linear sub-bucket within [2^e, 2^(e+1)). */
	return HIST_SUB + (size_t)(e - HIST_SUB_BITS) * HIST_SUB +
	       (size_t)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

uint64_t
hist_bucket_low(size_t idx)
{
	size_t e, m;

	if (idx < HIST_SUB)
		return idx;
	e = (idx - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
	m = (idx - HIST_SUB) % HIST_SUB;
	return (uint64_t)(HIST_SUB + m) << (e - HIST_SUB_BITS);
}

uint64_t
hist_bucket_high(size_t idx)
{
	size_t e;

	if (idx < HIST_SUB)
		return idx;
	e = (idx - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
	return hist_bucket_low(idx) + ((UINT64_C(1) << (e - HIST_SUB_BITS)) - 1);
}

void
hist_record(hist_t *h, uint64_t v)
{
	h->buckets[hist_bucket(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void
hist_merge(hist_t *dst, const hist_t *src)
{
	if (src->count == 0)
		return;
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
hist_percentile(const hist_t *h, double p)
{
	uint64_t rank, seen = 0, v;
	double r;

	if (h->count == 0)
		return 0;
	if (p <= 0.0)
		return h->min;
	if (p >= 100.0)
		return h->max;
	r = p / 100.0 * (double)h->count;
	rank = (uint64_t)r;
	if ((double)rank < r)
		rank++;
	if (rank == 0)
		rank = 1;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			v = hist_bucket_high(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double
hist_mean(const hist_t *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}

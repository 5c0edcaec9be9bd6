/* hist.c — latency histograms of one worker (see hist.h). */
#include "hist.h"

#include <jansson.h>
#include <time.h>

const uint32_t hist_bounds_us[HIST_BUCKETS] = {
	/* From 25 us: a PUBACK from memory takes tens of microseconds, and a coarser first bucket hides it. */
	25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000,
};

static hist_t H[HIST_COUNT];

uint32_t hist_stamp(void)
{
	struct timespec ts;
	uint32_t us;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	us = (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	return us ? us : 1;
}

void hist_observe(enum hist_id id, uint64_t us)
{
	hist_t *h = &H[id];
	unsigned i = 0;

	/* Most spans fall in the first few buckets: a linear scan from the bottom is the short path. */
	while (i < HIST_BUCKETS && us > hist_bounds_us[i])
		i++;
	h->counts[i]++;
	h->sum_us += us;
}

void hist_since(enum hist_id id, uint32_t stamp)
{
	if (stamp)
		hist_observe(id, (uint32_t)(hist_stamp() - stamp));
}

const hist_t *hist_get(enum hist_id id)
{
	return &H[id];
}

static json_t *one(const hist_t *h)
{
	json_t *b = json_array();

	for (unsigned i = 0; b && i <= HIST_BUCKETS; i++)
		json_array_append_new(b, json_integer((json_int_t)h->counts[i]));
	return json_pack("{s:o?, s:I}", "buckets", b, "sum_us", (json_int_t)h->sum_us);
}

json_t *hist_json(void)
{
	return json_pack("{s:o?, s:o?}", "puback", one(&H[HIST_PUBACK]), "e2e", one(&H[HIST_E2E]));
}

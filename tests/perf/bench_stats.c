/*
 * bench_stats.c — per-pair message accounting (see bench_stats.h).
 */
#include "bench_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
bstat_pair_init(bstat_pair_t *p)
{
	memset(p, 0, sizeof(*p));
}

void
bstat_pair_finish(bstat_pair_t *p)
{
	free(p->acked_bits.w);
	free(p->recv_bits.w);
	memset(p, 0, sizeof(*p));
}

bool
bstat_bits_get(const bstat_bits_t *b, uint32_t i)
{
	uint32_t w = i / 64;

	if (b == NULL || w >= b->nwords)
		return false;
	return (b->w[w] >> (i % 64)) & 1;
}

bool
bstat_bits_set(bstat_bits_t *b, uint32_t i, bool *was)
{
	uint32_t w = i / 64;

	if (w >= b->nwords) {
		/* Double, so a pair sending m messages reallocates log2(m) times. */
		uint32_t n = b->nwords ? b->nwords : 2;
		uint64_t *nw;

		while (n <= w)
			n *= 2;
		nw = realloc(b->w, (size_t)n * sizeof(*nw));
		if (nw == NULL)
			return false;
		memset(nw + b->nwords, 0, (size_t)(n - b->nwords) * sizeof(*nw));
		b->w = nw;
		b->nwords = n;
	}
	*was = (b->w[w] >> (i % 64)) & 1;
	b->w[w] |= UINT64_C(1) << (i % 64);
	return true;
}

uint64_t
bstat_bits_andnot(const bstat_bits_t *a, const bstat_bits_t *b, uint32_t n)
{
	uint64_t count = 0;
	uint32_t words = (n + 63) / 64;

	for (uint32_t w = 0; w < words; w++) {
		uint64_t x = w < a->nwords ? a->w[w] : 0;
		uint64_t y = (b != NULL && w < b->nwords) ? b->w[w] : 0;
		uint64_t v = x & ~y;

		if (w == words - 1 && n % 64 != 0)
			v &= (UINT64_C(1) << (n % 64)) - 1;
		count += (uint64_t)__builtin_popcountll(v);
	}
	return count;
}

uint32_t
bstat_on_send(bstat_pair_t *p)
{
	return p->sent++;
}

int
bstat_on_ack(bstat_pair_t *p, uint32_t seq)
{
	bool was;

	if (seq >= p->sent) {
		p->bogus++;
		return -EINVAL;
	}
	if (!bstat_bits_set(&p->acked_bits, seq, &was))
		return -ENOMEM;
	if (was)
		return -EALREADY;
	p->acked++;
	if (!bstat_bits_get(&p->recv_bits, seq))
		p->outstanding++;
	return 0;
}

enum bstat_rx
bstat_on_receive(bstat_pair_t *p, uint32_t seq)
{
	bool was;

	if (seq >= p->sent) {
		p->bogus++;
		return BSTAT_RX_BOGUS;
	}
	if (!bstat_bits_set(&p->recv_bits, seq, &was))
		return BSTAT_RX_NOMEM;
	if (was) {
		p->dups++;
		return BSTAT_RX_DUP;
	}
	p->received++;
	if (bstat_bits_get(&p->acked_bits, seq))
		p->outstanding--;
	if (seq + 1 < p->highest) {
		p->ooo++;
		return BSTAT_RX_OOO;
	}
	p->highest = seq + 1;
	return BSTAT_RX_NEW;
}

uint64_t
bstat_pair_lost(const bstat_pair_t *p)
{
	return bstat_bits_andnot(&p->acked_bits, &p->recv_bits, p->sent);
}

uint64_t
bstat_pair_missing(const bstat_pair_t *p)
{
	return (uint64_t)p->sent - bstat_bits_andnot(&p->recv_bits, NULL, p->sent);
}

size_t
bstat_pair_lost_list(const bstat_pair_t *p, uint32_t *out, size_t n)
{
	size_t k = 0;

	for (uint32_t s = 0; s < p->sent && k < n; s++)
		if (bstat_bits_get(&p->acked_bits, s) && !bstat_bits_get(&p->recv_bits, s))
			out[k++] = s;
	return k;
}

void
bstat_totals_add(bstat_totals_t *t, const bstat_pair_t *p)
{
	uint64_t lost = bstat_pair_lost(p);

	t->pairs++;
	t->sent += p->sent;
	t->acked += p->acked;
	t->received += p->received;
	t->dups += p->dups;
	t->ooo += p->ooo;
	t->bogus += p->bogus;
	t->lost += lost;
	t->missing += bstat_pair_missing(p);
	if (lost > 0)
		t->pairs_lossy++;
}

void
bstat_totals_merge(bstat_totals_t *dst, const bstat_totals_t *src)
{
	dst->pairs += src->pairs;
	dst->sent += src->sent;
	dst->acked += src->acked;
	dst->received += src->received;
	dst->dups += src->dups;
	dst->ooo += src->ooo;
	dst->bogus += src->bogus;
	dst->lost += src->lost;
	dst->missing += src->missing;
	dst->pairs_lossy += src->pairs_lossy;
}

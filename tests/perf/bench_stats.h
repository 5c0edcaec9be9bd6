/*
 * bench_stats.h — per-pair message accounting for ringmq-bench.
 *
 * Each pair (one publisher, one subscriber) numbers its messages 0, 1, 2, ... and keeps two growable bitmaps
 * indexed by sequence number: PUBACKed (the broker took responsibility) and received (the subscriber got it at
 * least once). From them: lost = PUBACKed and never received, duplicates = received again (QoS 1 redelivery
 * after --offline, or DUP), out of order = first receipt of a sequence lower than the highest already seen.
 * Bitmaps rather than a sliding window because an --offline subscriber may get its queued messages minutes
 * late, and the answer must be exact: the cost is 2 bits per message.
 *
 * A bstat_pair_t is caller-owned (init/finish) and single-threaded: the bench puts a pair's publisher and
 * subscriber on the same thread so nothing here needs a lock.
 */
#ifndef RINGMQ_BENCH_STATS_H
#define RINGMQ_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bstat_bits {
	uint64_t *w;
	uint32_t nwords;
} bstat_bits_t;

typedef struct bstat_pair {
	uint32_t sent;         /* messages published; also the next sequence number */
	uint32_t acked;        /* distinct sequences PUBACKed (PUBREC for QoS 2) */
	uint32_t received;     /* distinct sequences received */
	uint32_t dups;         /* receipts of an already received sequence */
	uint32_t ooo;          /* first receipts below the highest sequence seen */
	uint32_t bogus;        /* acks/receipts of a sequence never sent (broker bug or foreign traffic) */
	uint32_t outstanding;  /* acked and not (yet) received: lost if still there at the end */
	uint32_t highest;      /* highest sequence received + 1; 0: none yet */
	bstat_bits_t acked_bits;
	bstat_bits_t recv_bits;
} bstat_pair_t;

/* Result of bstat_on_receive(). */
enum bstat_rx {
	BSTAT_RX_NEW = 0,      /* first receipt, in order */
	BSTAT_RX_OOO = 1,      /* first receipt, out of order */
	BSTAT_RX_DUP = 2,      /* already received */
	BSTAT_RX_BOGUS = 3,    /* never sent */
	BSTAT_RX_NOMEM = 4,    /* bitmap could not grow: not counted */
};

/* Totals over any number of pairs. */
typedef struct bstat_totals {
	uint64_t pairs;
	uint64_t sent;
	uint64_t acked;
	uint64_t received;
	uint64_t dups;
	uint64_t ooo;
	uint64_t bogus;
	uint64_t lost;         /* acked, never received */
	uint64_t missing;      /* sent, never received (includes lost, and unacked in-flight at the end) */
	uint64_t pairs_lossy;  /* pairs with lost > 0 */
} bstat_totals_t;

void bstat_pair_init(bstat_pair_t *p);
/* Free the bitmaps; the pair may be initialised again. */
void bstat_pair_finish(bstat_pair_t *p);

/* Bit `i` of a bitmap (false beyond its end); set it, growing the bitmap. set returns the previous value via
 * *was and false if the bitmap could not grow. */
bool bstat_bits_get(const bstat_bits_t *b, uint32_t i);
bool bstat_bits_set(bstat_bits_t *b, uint32_t i, bool *was);
/* Number of i < n with bit set in a and clear in b (b may be NULL: all clear). */
uint64_t bstat_bits_andnot(const bstat_bits_t *a, const bstat_bits_t *b, uint32_t n);

/* A message is about to be published: returns its sequence number. */
uint32_t bstat_on_send(bstat_pair_t *p);
/* Sequence `seq` was PUBACKed. Returns 0, -EALREADY for a repeated ack, -EINVAL for a sequence never sent,
 * -ENOMEM if the bitmap could not grow. */
int bstat_on_ack(bstat_pair_t *p, uint32_t seq);
/* Sequence `seq` reached the subscriber. */
enum bstat_rx bstat_on_receive(bstat_pair_t *p, uint32_t seq);

/* Acked and never received, counted from the bitmaps (equals p->outstanding). */
uint64_t bstat_pair_lost(const bstat_pair_t *p);
/* Sent and never received. */
uint64_t bstat_pair_missing(const bstat_pair_t *p);
/* Up to n lost sequence numbers, lowest first, into out; returns how many were written. */
size_t bstat_pair_lost_list(const bstat_pair_t *p, uint32_t *out, size_t n);

/* Add one pair into totals (bstat_totals_t zeroed by the caller first). */
void bstat_totals_add(bstat_totals_t *t, const bstat_pair_t *p);
/* dst += src. */
void bstat_totals_merge(bstat_totals_t *dst, const bstat_totals_t *src);

#endif

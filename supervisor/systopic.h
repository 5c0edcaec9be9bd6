/*
 * systopic.h — $SYS/broker/... values, supervisor side (docs/operations.md, "$SYS topics"; worker side in
 * worker/sys.h).
 *
 * Workers say over their control channel whether they have a local subscription to a $SYS filter
 * (CHAN_SYS_INTEREST). While at least one has, every sys_interval seconds the supervisor gathers the workers'
 * counters (metrics.h), sums them into broker-wide values (mosquitto's names where one fits, plus 1/5/15
 * minute load averages) and sends the same CHAN_SYS record to each interested worker, which publishes the
 * values to its own sessions. A worker that becomes interested gets the last values at once (a fresh gather if
 * the last one is older than the interval). With nobody subscribed nothing is gathered or sent.
 * Supervisor process only.
 */
#ifndef RINGMQ_SUPERVISOR_SYSTOPIC_H
#define RINGMQ_SUPERVISOR_SYSTOPIC_H

#include <stdint.h>

struct sup;
typedef struct systopic systopic_t;

/* Returns 0 with *out set, or -1 (out of memory, logged). */
int systopic_create(systopic_t **out, struct sup *s);
/* NULL is a no-op. */
void systopic_destroy(systopic_t *t);
/* A CHAN_SYS_INTEREST record from worker k. */
void systopic_on_interest(systopic_t *t, int k, const void *payload, uint32_t len);
/* Worker k died: it is not interested until its next life says so. NULL is a no-op. */
void systopic_worker_down(systopic_t *t, int k);
/* A gather completed (metrics.c): publish if one was asked for, and keep the load averages going. NULL is a
 * no-op. */
void systopic_on_snapshot(systopic_t *t);
/* Earliest monotonic ms at which systopic_on_timer has work, or UINT64_MAX. */
uint64_t systopic_next_deadline(const systopic_t *t);
void systopic_on_timer(systopic_t *t, uint64_t now_ms);

#endif

/* systopic.c — $SYS values, supervisor side (see systopic.h). */
#include "systopic.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "chan.h"
#include "log.h"
#include "metrics.h"
#include "sup.h"

/* Load averages over these many minutes, as mosquitto's $SYS/broker/load/.../1min, 5min, 15min. */
static const unsigned load_minutes[] = { 1, 5, 15 };
#define N_LOADS 3

/* The counters the load averages follow (sums over the workers), and the names under $SYS/broker/load/. */
enum { L_MSG_IN, L_MSG_OUT, L_BYTES_IN, L_BYTES_OUT, L_CONNECTS, L_COUNT };
static const char *const load_keys[L_COUNT] = { "msgs_in", "msgs_out", "bytes_in", "bytes_out", "connects" };
static const char *const load_names[L_COUNT] = {
	"messages/received", "messages/sent", "bytes/received", "bytes/sent", "connections",
};

struct systopic {
	struct sup *s;
	uint64_t interval_ms;        /* 0: $SYS is off */
	bool interested[WORKER_MAX];
	int n_interested;
	bool want;                   /* publish when the gather in flight completes */
	uint64_t next_ms;            /* next periodic gather while someone is interested */
	/* Load averages: per-minute rates, smoothed over each of load_minutes. */
	bool load_init;
	uint64_t load_ms;
	uint64_t load_last[L_COUNT];
	double load[L_COUNT][N_LOADS];
	uint64_t clients_max;
	uint8_t rec[CHAN_MAX_PAYLOAD];
	uint32_t rec_len;
};

int
systopic_create(systopic_t **out, struct sup *s)
{
	systopic_t *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL) {
		log_error(ENOMEM, "$SYS topics");
		return -1;
	}
	t->s = s;
	t->interval_ms = (uint64_t)s->cfg->sys_interval * 1000u;
	*out = t;
	return 0;
}

void
systopic_destroy(systopic_t *t)
{
	free(t);
}

static void
add(systopic_t *t, const char *topic, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
add(systopic_t *t, const char *topic, const char *fmt, ...)
{
	char val[64];
	uint16_t tl = (uint16_t)strlen(topic), vl;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(val) || t->rec_len + 4u + tl + (unsigned)n > sizeof(t->rec))
		return;
	vl = (uint16_t)n;
	memcpy(t->rec + t->rec_len, &tl, 2);
	memcpy(t->rec + t->rec_len + 2, topic, tl);
	t->rec_len += 2u + tl;
	memcpy(t->rec + t->rec_len, &vl, 2);
	memcpy(t->rec + t->rec_len + 2, val, vl);
	t->rec_len += 2u + vl;
}

static uint64_t
sum(const metrics_t *m, int n_workers, const char *key)
{
	uint64_t total = 0;

	for (int k = 0; k < n_workers; k++) {
		json_t *v = json_object_get(metrics_stats(m, k), key);

		if (json_is_integer(v) && json_integer_value(v) > 0)
			total += (uint64_t)json_integer_value(v);
	}
	return total;
}

static uint64_t
max_of(const metrics_t *m, int n_workers, const char *key)
{
	uint64_t best = 0;

	for (int k = 0; k < n_workers; k++) {
		json_t *v = json_object_get(metrics_stats(m, k), key);

		if (json_is_integer(v) && json_integer_value(v) > 0 && (uint64_t)json_integer_value(v) > best)
			best = (uint64_t)json_integer_value(v);
	}
	return best;
}

/* mosquitto's smoothing: each gather moves the average towards the rate seen since the last one, by how much
 * of the averaging window the time since covers. */
static void
update_loads(systopic_t *t, const metrics_t *m, uint64_t now)
{
	int n = t->s->n_workers;
	uint64_t cur[L_COUNT];

	for (int i = 0; i < L_COUNT; i++)
		cur[i] = sum(m, n, load_keys[i]);
	if (t->load_init && now - t->load_ms < 1000)
		return;
	if (t->load_init) {
		double dt = (double)(now - t->load_ms) / 1000.0;

		for (int i = 0; i < L_COUNT; i++) {
			/* A counter that went down (a worker restarted with fresh counters) counts as no change. */
			double rate = cur[i] >= t->load_last[i] ? (double)(cur[i] - t->load_last[i]) * 60.0 / dt : 0.0;

			for (int j = 0; j < N_LOADS; j++) {
				double e = exp(-dt / (60.0 * load_minutes[j]));

				t->load[i][j] = rate + e * (t->load[i][j] - rate);
			}
		}
	}
	memcpy(t->load_last, cur, sizeof(cur));
	t->load_ms = now;
	t->load_init = true;
}

static void
build(systopic_t *t, const metrics_t *m, uint64_t now)
{
	int n = t->s->n_workers;
	uint64_t conns = sum(m, n, "connections"), sessions = sum(m, n, "sessions");
	char topic[96];

	if (conns > t->clients_max)
		t->clients_max = conns;
	t->rec_len = 0;
	add(t, "$SYS/broker/version", "ringmq %s", RINGMQ_VERSION);
	add(t, "$SYS/broker/uptime", "%llu seconds", (unsigned long long)((now - t->s->start_ms) / 1000));
	add(t, "$SYS/broker/clients/connected", "%llu", (unsigned long long)conns);
	add(t, "$SYS/broker/clients/disconnected", "%llu",
		(unsigned long long)(sessions > conns ? sessions - conns : 0));
	add(t, "$SYS/broker/clients/total", "%llu", (unsigned long long)sessions);
	add(t, "$SYS/broker/clients/maximum", "%llu", (unsigned long long)t->clients_max);
	add(t, "$SYS/broker/messages/received", "%llu", (unsigned long long)sum(m, n, "msgs_in"));
	add(t, "$SYS/broker/messages/sent", "%llu", (unsigned long long)sum(m, n, "msgs_out"));
	add(t, "$SYS/broker/publish/messages/dropped", "%llu", (unsigned long long)(sum(m, n, "dropped_queue_full") +
		sum(m, n, "dropped_expired") + sum(m, n, "dropped_too_large") + sum(m, n, "dropped_qos0_outbuf")));
	add(t, "$SYS/broker/bytes/received", "%llu", (unsigned long long)sum(m, n, "bytes_in"));
	add(t, "$SYS/broker/bytes/sent", "%llu", (unsigned long long)sum(m, n, "bytes_out"));
	add(t, "$SYS/broker/subscriptions/count", "%llu", (unsigned long long)sum(m, n, "subscriptions"));
	/* Every worker holds the whole retained set: the count is one worker's, not a sum. */
	add(t, "$SYS/broker/retained messages/count", "%llu", (unsigned long long)max_of(m, n, "retained"));
	add(t, "$SYS/broker/store/messages/count", "%llu", (unsigned long long)sum(m, n, "queued"));
	add(t, "$SYS/broker/workers", "%d", n);
	for (int i = 0; i < L_COUNT; i++) {
		for (int j = 0; j < N_LOADS; j++) {
			snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%umin", load_names[i], load_minutes[j]);
			add(t, topic, "%.2f", t->load[i][j]);
		}
	}
}

static void
send_to(systopic_t *t, int k)
{
	if (t->rec_len && t->interested[k])
		(void)sup_send(t->s, k, CHAN_SYS, k, 0, t->rec, t->rec_len, -1, false);
}

void
systopic_on_snapshot(systopic_t *t)
{
	const metrics_t *m;
	uint64_t now = sup_now_ms();

	if (t == NULL || t->interval_ms == 0)
		return;
	m = t->s->metrics;
	update_loads(t, m, now);
	if (!t->want)
		return;
	t->want = false;
	build(t, m, now);
	for (int k = 0; k < t->s->n_workers; k++)
		send_to(t, k);
}

void
systopic_on_interest(systopic_t *t, int k, const void *payload, uint32_t len)
{
	bool on = len == 1 && *(const uint8_t *)payload == 1;
	uint64_t snap = metrics_snapshot_ms(t->s->metrics), now = sup_now_ms();

	if (k < 0 || k >= t->s->n_workers || t->interval_ms == 0 || t->interested[k] == on)
		return;
	t->interested[k] = on;
	t->n_interested += on ? 1 : -1;
	if (!on)
		return;
	if (t->n_interested == 1)
		t->next_ms = now + t->interval_ms;
	/* The new subscriber gets values now: the last ones if recent enough, else a fresh gather's. */
	if (t->rec_len && snap && now - snap < t->interval_ms) {
		send_to(t, k);
	} else {
		t->want = true;
		metrics_gather(t->s->metrics);
	}
}

void
systopic_worker_down(systopic_t *t, int k)
{
	if (t == NULL || k < 0 || k >= t->s->n_workers || !t->interested[k])
		return;
	t->interested[k] = false;
	t->n_interested--;
}

uint64_t
systopic_next_deadline(const systopic_t *t)
{
	return t->n_interested > 0 && t->interval_ms ? t->next_ms : UINT64_MAX;
}

void
systopic_on_timer(systopic_t *t, uint64_t now_ms)
{
	if (t->n_interested == 0 || t->interval_ms == 0 || now_ms < t->next_ms)
		return;
	t->next_ms = now_ms + t->interval_ms;
	t->want = true;
	metrics_gather(t->s->metrics);
}

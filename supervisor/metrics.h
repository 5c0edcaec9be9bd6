/*
 * metrics.h — the supervisor's view of the workers' counters, and the Prometheus /metrics endpoint.
 *
 * A *gather* asks every running worker for its counters and latency histograms (the CHAN_CTL_REQ "stats"
 * request behind `ringmqctl stats`, with "metrics": true) and the Kafka process for its own; replies come back
 * through the supervisor's loop (metrics_on_reply), and when every process has answered or
 * CTL_WORKER_TIMEOUT_MS has passed they become the *snapshot*. Nothing waits on a worker: a scrape whose
 * snapshot is older than METRICS_FRESH_MS is suspended (libmicrohttpd's suspend/resume) until the gather it
 * started completes, and meanwhile the loop goes on. $SYS (systopic.h) gathers through the same snapshot.
 *
 * The HTTP server is libmicrohttpd without threads of its own: its epoll fd sits in the supervisor's epoll
 * set (SUP_EV_METRICS) and MHD_run is called from the loop. The listening socket is ours (bound here, so a
 * bad address is one clear line). Text exposition format 0.0.4; the metrics are listed in
 * docs/operations.md ("Metrics"). Supervisor process only.
 */
#ifndef RINGMQ_SUPERVISOR_METRICS_H
#define RINGMQ_SUPERVISOR_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

/* A scrape is answered from a snapshot at most this old; an older one is gathered again first. */
#define METRICS_FRESH_MS 1000u
/* Gather requests carry this bit in their seq; the control socket's own requests never do (ctl.c). */
#define METRICS_SEQ_BIT 0x80000000u

struct sup;
typedef struct metrics metrics_t;

/* Check metrics_address (an IPv4 or IPv6 literal) and that this build has the endpoint when metrics_port is
 * set. Returns 0, or -1 after one log line (the caller exits with status 2). */
int metrics_check_config(const config_t *cfg);
/*
 * Create the gatherer and, when cfg->metrics_port is set, bind and listen on metrics_address:metrics_port and
 * start the HTTP server in s->epfd. Returns 0 with *out set, or -1 after one log line; an address this host
 * does not have sets s->exit_code to 2 (a configuration error).
 */
int metrics_create(metrics_t **out, struct sup *s);
/* Stop the server (suspended scrapes are resumed and dropped). NULL is a no-op. */
void metrics_destroy(metrics_t *m);
/* The HTTP server's epoll fd is readable (SUP_EV_METRICS). */
void metrics_on_event(metrics_t *m);
/* A CHAN_CTL_REPLY: returns false when seq is not a gather's (the control socket's then). */
bool metrics_on_reply(metrics_t *m, int k, uint32_t seq, const char *payload, uint32_t len);
/* Process k died: the gather stops waiting for it. NULL is a no-op. */
void metrics_worker_down(metrics_t *m, int k);
/* Start a gather unless one is in flight. */
void metrics_gather(metrics_t *m);
/* Earliest monotonic ms at which metrics_on_timer has work, or UINT64_MAX. */
uint64_t metrics_next_deadline(const metrics_t *m);
void metrics_on_timer(metrics_t *m, uint64_t now_ms);
/* The snapshot: process k's "stats" object (NULL when it did not answer), the Kafka process's "kafka" object,
 * and the monotonic ms when it was completed (0: none yet). Borrowed; valid until the next gather completes. */
const json_t *metrics_stats(const metrics_t *m, int k);
const json_t *metrics_kafka(const metrics_t *m);
uint64_t metrics_snapshot_ms(const metrics_t *m);
/* The exposition text of the snapshot (malloc'd, NUL-terminated; *len its length), NULL when out of memory.
 * The endpoint serves exactly this. */
char *metrics_render(const metrics_t *m, size_t *len);

#endif

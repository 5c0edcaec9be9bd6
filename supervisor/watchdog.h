/*
 * watchdog.h — heartbeats to every worker's loop, the systemd watchdog, and what the liveness and readiness
 * probes (ringmqctl live / ready) answer.
 *
 * Every heartbeat_ms the supervisor sends one CHAN_PING to each running worker and to the Kafka process; the
 * process answers CHAN_PONG from its event loop (worker/ctl.c, worker/kproc.c), so a loop that is stuck —
 * busy forever, blocked in a call, SIGSTOPped — does not answer. A ping still unanswered at the next
 * heartbeat is a miss, counted once the process is up (has sent CHAN_READY): before that its start-up may
 * block (the Kafka process waits for Kafka to create its topics), which is not a stuck loop. Then:
 *
 *   - systemd watchdog (WatchdogSec= in the unit; sd_watchdog_enabled() gives the interval W): WATCHDOG=1 is
 *     sent at each heartbeat at which no running process has a miss, so the pings stop while a worker does
 *     not answer, and stop altogether when the supervisor's own loop is stuck. The heartbeat interval is at
 *     most W/4, so a single late answer under load does not let systemd's timer run out. A worker that crashed (restart backoff) or is starting has nothing to answer: a crash is the
 *     supervisor's business (it restarts the worker), not systemd's.
 *   - after heartbeat_misses misses in a row (0: never) the worker is killed with SIGKILL, one log line naming
 *     it, and restarted like a crashed one. With heartbeat_misses × heartbeat_ms well below WatchdogSec the
 *     supervisor fixes a wedged worker before systemd restarts the whole broker; systemd is the backstop for a
 *     worker that cannot be killed (D state) or a wedged supervisor.
 *   - live: the supervisor answers (its loop runs) and no running process has a miss.
 *   - ready: not shutting down, every process up (CHAN_READY) and answering, and as of its last answer every
 *     worker accepts clients with its session store reachable (store = redis: every Redis master connected),
 *     and the Kafka process (cluster = kafka) has read the cluster state.
 *
 * Supervisor process only; one wdog_t per sup_t.
 */
#ifndef RINGMQ_SUPERVISOR_WATCHDOG_H
#define RINGMQ_SUPERVISOR_WATCHDOG_H

#include <stdint.h>

#include <jansson.h>

struct sup;
typedef struct wdog wdog_t;

/* Read the systemd watchdog setting (NOTIFY_SOCKET/WATCHDOG_USEC/WATCHDOG_PID) and log what will be done. s must
 * outlive the wdog_t. Returns 0 with *out set, or -1 after logging one line. */
int wdog_create(wdog_t **out, struct sup *s);
/* NULL is a no-op. */
void wdog_destroy(wdog_t *d);
/* A CHAN_PONG from process k (payload: chan_pong_t). */
void wdog_on_pong(wdog_t *d, int k, uint32_t seq, const void *payload, uint32_t len);
/* Process k sent CHAN_READY: ping it at once, so ready is known without waiting a heartbeat. */
void wdog_on_ready(wdog_t *d, int k);
/* Earliest monotonic ms at which wdog_on_timer has work. */
uint64_t wdog_next_deadline(const wdog_t *d);
/* Heartbeat: count misses, kill wedged workers, notify systemd, ping. Call every loop turn. */
void wdog_on_timer(wdog_t *d, uint64_t now_ms);
/* The control socket's "live" and "ready" replies (new references): {"live"|"ready": bool, "problems": [...],
 * ...}. */
json_t *wdog_live_json(const wdog_t *d);
json_t *wdog_ready_json(const wdog_t *d);

#endif

/*
 * watchdog.c — heartbeats, systemd watchdog, liveness and readiness (see watchdog.h).
 *
 * One heartbeat_ms timer on the supervisor's loop (through wdog_next_deadline/wdog_on_timer, no timerfd): the
 * state per process is the ping outstanding, when it went out, the misses in a row and the flags of the last
 * answer. A restarted process is recognised by its new pid and starts with a clean record. A process that is
 * still starting is pinged (its answer carries its readiness) but cannot miss: its start-up may block by
 * design — the Kafka process creates its topics synchronously, for as long as Kafka is unreachable — and is
 * not a wedged loop; it is judged from its CHAN_READY on, when its loop is known to run.
 */
#include "watchdog.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "chan.h"
#include "log.h"
#include "sup.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

typedef struct beat {
	pid_t pid;            /* the process this record is about; another pid means a restart: start afresh */
	bool outstanding;     /* ping seq sent, not answered yet */
	bool killed;          /* SIGKILL sent for missing too many */
	bool warned;          /* "not answering" logged: log the recovery too */
	bool sent_up;         /* the outstanding ping went out after the process was up (only those can miss) */
	uint32_t seq;
	uint64_t sent_ms;
	uint64_t answered_ms; /* 0: never answered */
	unsigned missed;      /* heartbeats in a row at which the ping was still unanswered */
	uint32_t flags;       /* CHAN_PONG_* of the last answer */
} beat_t;

struct wdog {
	sup_t *s;
	uint32_t interval_ms;
	uint64_t watchdog_ms; /* systemd's WatchdogSec, 0 when off */
	uint64_t next_ms;
	uint32_t seq;
	beat_t b[WORKER_MAX + 1];
};

static void
sd_ping(void)
{
#if HAVE_SYSTEMD
	int rc = sd_notify(0, "WATCHDOG=1");

	if (rc < 0)
		log_warn(-rc, "sd_notify(WATCHDOG=1)");
#endif
}

int
wdog_create(wdog_t **out, sup_t *s)
{
	wdog_t *d = calloc(1, sizeof(*d));
	uint64_t usec = 0;

	*out = NULL;
	if (d == NULL) {
		log_error(ENOMEM, "watchdog");
		return -1;
	}
	d->s = s;
	d->interval_ms = s->cfg->heartbeat_ms;
#if HAVE_SYSTEMD
	{
		/* Checks WATCHDOG_PID against our pid, so a watchdog meant for a wrapper shell is not ours. */
		int rc = sd_watchdog_enabled(0, &usec);

		if (rc < 0) {
			log_warn(-rc, "systemd watchdog: WATCHDOG_USEC/WATCHDOG_PID not understood; watchdog off");
			usec = 0;
		} else if (rc == 0) {
			usec = 0;
		}
	}
#endif
	d->watchdog_ms = usec / 1000;
	if (usec && d->watchdog_ms == 0)
		d->watchdog_ms = 1;
	if (d->watchdog_ms) {
		/* A quarter, not systemd's suggested half: then one or two late answers under load (each a miss, a
		 * heartbeat without WATCHDOG=1) still leave systemd's timer time to spare. */
		uint64_t quarter = d->watchdog_ms / 4 ? d->watchdog_ms / 4 : 1;

		if (quarter < d->interval_ms)
			d->interval_ms = (uint32_t)quarter;
		log_info("systemd watchdog: %llu ms; heartbeat every %u ms, WATCHDOG=1 while every worker answers",
			(unsigned long long)d->watchdog_ms, d->interval_ms);
		if (s->cfg->heartbeat_misses &&
		    (uint64_t)(s->cfg->heartbeat_misses + 1) * d->interval_ms >= d->watchdog_ms)
			log_warn(0, "heartbeat_misses %u x %u ms is not below WatchdogSec (%llu ms): systemd will restart "
				"the whole broker before the supervisor restarts a wedged worker; lower heartbeat_misses or "
				"heartbeat_ms", s->cfg->heartbeat_misses, d->interval_ms,
				(unsigned long long)d->watchdog_ms);
	}
	d->next_ms = sup_now_ms() + d->interval_ms;
	*out = d;
	return 0;
}

void
wdog_destroy(wdog_t *d)
{
	free(d);
}

/* The name a log line or a probe gives process k. */
static const char *
name_of(const wdog_t *d, int k, char *buf, size_t len)
{
	if (k >= d->s->n_workers)
		snprintf(buf, len, "the Kafka process");
	else
		snprintf(buf, len, "worker %d", k);
	return buf;
}

/* Process k has a loop that should answer: forked, channel open, not crashed or stopping. Resets the record
 * when the pid changed (a restart). */
static bool
beating(wdog_t *d, int k)
{
	const sup_worker_t *w = &d->s->w[k];
	beat_t *b = &d->b[k];

	if (b->pid != w->pid) {
		memset(b, 0, sizeof(*b));
		b->pid = w->pid;
	}
	return w->pid > 0 && w->ctl_fd >= 0 && (w->state == SUP_W_STARTING || w->state == SUP_W_UP);
}

static void
ping(wdog_t *d, int k, uint64_t now)
{
	beat_t *b = &d->b[k];
	uint32_t seq = ++d->seq;

	if (seq == 0)
		seq = ++d->seq;
	if (sup_send(d->s, k, CHAN_PING, k, seq, NULL, 0, -1, false) < 0)
		return; /* the channel is gone: the worker is exiting, SIGCHLD follows */
	b->outstanding = true;
	b->sent_up = d->s->w[k].state == SUP_W_UP;
	b->seq = seq;
	b->sent_ms = now;
}

void
wdog_on_pong(wdog_t *d, int k, uint32_t seq, const void *payload, uint32_t len)
{
	beat_t *b;
	chan_pong_t p;
	char nm[32];

	if (d == NULL || k < 0 || k >= d->s->n_procs || !beating(d, k))
		return;
	b = &d->b[k];
	if (!b->outstanding || seq != b->seq || len < sizeof(p))
		return;
	memcpy(&p, payload, sizeof(p));
	b->outstanding = false;
	b->answered_ms = sup_now_ms();
	b->flags = p.flags;
	if (b->warned)
		log_info("%s (pid %d) answers again after %llu ms", name_of(d, k, nm, sizeof(nm)), (int)b->pid,
			(unsigned long long)(b->answered_ms - b->sent_ms));
	b->warned = false;
	b->missed = 0;
}

void
wdog_on_ready(wdog_t *d, int k)
{
	if (d && k >= 0 && k < d->s->n_procs && beating(d, k) && !d->b[k].outstanding)
		ping(d, k, sup_now_ms());
}

uint64_t
wdog_next_deadline(const wdog_t *d)
{
	return d->next_ms;
}

/* Count a miss for k; after heartbeat_misses of them, kill it (reap() then restarts it as a crash). */
static void
missed(wdog_t *d, int k, uint64_t now)
{
	beat_t *b = &d->b[k];
	unsigned limit = d->s->cfg->heartbeat_misses;
	char nm[32];

	b->missed++;
	if (limit && b->missed >= limit && !b->killed) {
		log_error(0, "%s (pid %d) has not answered a heartbeat for %llu ms (%u in a row): its loop is stuck; "
			"killing it (SIGKILL) to restart it", name_of(d, k, nm, sizeof(nm)), (int)b->pid,
			(unsigned long long)(now - b->sent_ms), b->missed);
		if (kill(b->pid, SIGKILL) < 0)
			log_warn(errno, "kill %d", (int)b->pid);
		b->killed = true;
	} else if (b->missed == 2 && !b->warned && !b->killed) {
		/* Not at the first miss: one slow turn under load is no news. */
		log_warn(0, "%s (pid %d) has not answered a heartbeat for %llu ms%s", name_of(d, k, nm, sizeof(nm)),
			(int)b->pid, (unsigned long long)(now - b->sent_ms),
			d->watchdog_ms ? ": systemd watchdog pings paused" : "");
		b->warned = true;
	}
}

void
wdog_on_timer(wdog_t *d, uint64_t now)
{
	bool healthy = true;

	if (now < d->next_ms)
		return;
	d->next_ms = now + d->interval_ms;
	/* During a shutdown systemd no longer watches (TimeoutStopSec does), and the workers are going away. */
	if (d->s->stopping)
		return;
	for (int k = 0; k < d->s->n_procs; k++) {
		if (!beating(d, k))
			continue;
		if (!d->b[k].outstanding)
			ping(d, k, now);
		else if (d->b[k].sent_up && d->s->w[k].state == SUP_W_UP) {
			missed(d, k, now);
			healthy = false;
		}
	}
	if (healthy && d->watchdog_ms)
		sd_ping();
}

static void __attribute__((format(printf, 2, 3)))
problem(json_t *arr, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_array_append_new(arr, json_string(msg));
}

/* Per-process detail shared by both probes. */
static json_t *
procs_json(const wdog_t *d, uint64_t now)
{
	json_t *arr = json_array();

	for (int k = 0; k < d->s->n_procs; k++) {
		const sup_worker_t *w = &d->s->w[k];
		const beat_t *b = &d->b[k];
		bool same = b->pid == w->pid && w->pid > 0;
		json_t *o = json_pack("{si ss}", "id", k, "state", sup_state_name(w->state));

		if (k >= d->s->n_workers)
			json_object_set_new(o, "kafka", json_true());
		json_object_set_new(o, "pid", w->pid > 0 ? json_integer(w->pid) : json_null());
		json_object_set_new(o, "missed", json_integer(same ? b->missed : 0));
		json_object_set_new(o, "last_answer_ms_ago", same && b->answered_ms ?
			json_integer((json_int_t)(now - b->answered_ms)) : json_null());
		if (k < d->s->n_workers) {
			json_object_set_new(o, "accepting", json_boolean(same && (b->flags & CHAN_PONG_SERVING)));
			json_object_set_new(o, "store_reachable", json_boolean(same && (b->flags & CHAN_PONG_STORE_UP)));
		} else {
			json_object_set_new(o, "caught_up", json_boolean(same && (b->flags & CHAN_PONG_SERVING)));
		}
		json_array_append_new(arr, o);
	}
	return arr;
}

/* A running process whose loop has missed a heartbeat (it may be the one we are waiting on right now). */
static bool
stuck(const wdog_t *d, int k)
{
	const sup_worker_t *w = &d->s->w[k];
	const beat_t *b = &d->b[k];

	return w->pid > 0 && b->pid == w->pid && b->missed > 0;
}

json_t *
wdog_live_json(const wdog_t *d)
{
	json_t *problems = json_array();
	uint64_t now = sup_now_ms();
	char nm[32];

	for (int k = 0; k < d->s->n_procs; k++) {
		if (stuck(d, k))
			problem(problems, "%s (pid %d) has not answered a heartbeat for %llu ms",
				name_of(d, k, nm, sizeof(nm)), (int)d->b[k].pid,
				(unsigned long long)(now - d->b[k].sent_ms));
	}
	return json_pack("{sb so si sI so}", "live", json_array_size(problems) == 0, "problems", problems,
		"heartbeat_ms", (int)d->interval_ms, "watchdog_ms", (json_int_t)d->watchdog_ms,
		"workers", procs_json(d, now));
}

json_t *
wdog_ready_json(const wdog_t *d)
{
	const sup_t *s = d->s;
	json_t *problems = json_array();
	bool redis = strcmp(s->cfg->store, "redis") == 0;
	char nm[32];

	if (s->stopping)
		problem(problems, "shutting down");
	for (int k = 0; k < s->n_procs; k++) {
		const sup_worker_t *w = &s->w[k];
		const beat_t *b = &d->b[k];
		bool known = w->pid > 0 && b->pid == w->pid && b->answered_ms;

		name_of(d, k, nm, sizeof(nm));
		if (w->state != SUP_W_UP)
			problem(problems, "%s is %s", nm, sup_state_name(w->state));
		else if (stuck(d, k))
			problem(problems, "%s does not answer heartbeats", nm);
		else if (!known)
			problem(problems, "%s has not answered a heartbeat yet", nm);
		else if (k >= s->n_workers && !(b->flags & CHAN_PONG_SERVING))
			problem(problems, "%s has not read the cluster state yet", nm);
		else if (k < s->n_workers && !(b->flags & CHAN_PONG_SERVING))
			problem(problems, "%s does not accept clients yet", nm);
		else if (k < s->n_workers && redis && !(b->flags & CHAN_PONG_STORE_UP))
			problem(problems, "%s cannot reach Redis", nm);
	}
	return json_pack("{sb so so}", "ready", json_array_size(problems) == 0, "problems", problems,
		"workers", procs_json(d, sup_now_ms()));
}

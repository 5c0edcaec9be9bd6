/*
 * sup.c — worker processes: fork, channels, restart with backoff, handoff relay, graceful shutdown.
 *
 * Modelled on nginx's master process (os/unix/ngx_process_cycle.c) and HAProxy's master-worker mode: the
 * supervisor holds every listener and hands each worker its own at fork, so the listening sockets and their
 * accept queues survive a worker crash. Unlike nginx there is no exec: workers are plain fork()ed copies
 * that call worker_run(). Signals arrive through a signalfd, set a flag, and the loop acts on the flag after
 * the batch of events, so no handler ever races with the loop.
 */
#include "sup.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "chan.h"
#include "ctl.h"
#include "listen.h"
#include "kproc.h"
#include "log.h"
#include "watchdog.h"
#include "metrics.h"
#include "systopic.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* A worker that stayed up this long is healthy again: its next crash restarts after the base backoff. */
#define SUP_STABLE_MS 30000u
#define SUP_BACKOFF_MAX_MS 10000u
/* Worker <-> worker mesh sockets: room for bursts of forwarded publishes (the kernel may cap it). */
#define SUP_MESH_SOCKBUF (4 * 1024 * 1024)
/* After SIGKILL, how long to wait for the kernel to report the children before giving up. */
#define SUP_KILL_GRACE_MS 2000u
/* A worker whose channel reached EOF normally exits at once; one still running after this is hung. */
#define SUP_EOF_GRACE_MS 1000u
/* Records read from one channel per event, so one busy worker cannot starve the loop. */
#define SUP_RECV_BATCH 256

static unsigned char chan_buf[CHAN_MAX_PAYLOAD];

uint64_t
sup_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *
sup_state_name(enum sup_wstate st)
{
	switch (st) {
	case SUP_W_STARTING: return "starting";
	case SUP_W_UP: return "up";
	case SUP_W_RESTARTING: return "restarting";
	case SUP_W_STOPPING: return "stopping";
	case SUP_W_STOPPED: return "stopped";
	}
	return "?";
}

static void
notify(const char *state)
{
#if HAVE_SYSTEMD
	int rc = sd_notify(0, state);

	if (rc < 0)
		log_warn(-rc, "sd_notify(%s)", state);
#else
	(void)state;
#endif
}

static int
ep_set(sup_t *s, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	if (epoll_ctl(s->epfd, op, fd, &ev) < 0) {
		log_error(errno, "epoll_ctl on fd %d", fd);
		return -1;
	}
	return 0;
}

static uint64_t
worker_tag(const sup_t *s, int k)
{
	return SUP_TAG(SUP_EV_WORKER, s->w[k].restarts, k);
}

static void
arm_out(sup_t *s, int k, bool on)
{
	sup_worker_t *w = &s->w[k];

	if (w->ctl_fd < 0 || w->out_armed == on)
		return;
	if (ep_set(s, EPOLL_CTL_MOD, w->ctl_fd, EPOLLIN | (on ? EPOLLOUT : 0), worker_tag(s, k)) == 0)
		w->out_armed = on;
}

static bool
running(const sup_worker_t *w)
{
	return w->pid > 0 && w->ctl_fd >= 0;
}

int
sup_send(sup_t *s, int k, uint16_t type, int32_t worker, uint32_t seq, const void *payload, uint32_t len,
	int fd, bool queue_if_down)
{
	sup_worker_t *w = &s->w[k];
	int rc;

	if (w->ctl_fd >= 0 && sendq_pending(&s->sendq, k) == 0) {
		rc = chan_send(w->ctl_fd, type, worker, seq, payload, len, fd);
		if (rc == 0) {
			if (fd >= 0)
				close(fd);
			return 0;
		}
		if (rc != -EAGAIN) {
			/* EPIPE/ECONNRESET: the worker just died and SIGCHLD is on its way; not worth a warning. */
			if (rc == -EPIPE || rc == -ECONNRESET)
				log_debug("worker %d is gone: type %u record not sent", k, (unsigned)type);
			else
				log_warn(-rc, "cannot send a type %u record to worker %d", (unsigned)type, k);
			if (fd >= 0)
				close(fd);
			return rc;
		}
	} else if (w->ctl_fd < 0 && !(queue_if_down && (type == CHAN_HANDOFF || type == CHAN_HANDOFF_MORE))) {
		if (fd >= 0)
			close(fd);
		return -ENOTCONN;
	}
	rc = sendq_push(&s->sendq, k, type, worker, seq, payload, len, fd, sup_now_ms());
	if (rc < 0) {
		s->drops_full++;
		s->drops_handoffs += type == CHAN_HANDOFF;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	arm_out(s, k, true);
	return 0;
}

/* Log sendq drops: the first of a burst at once, the rest as one line a second later. */
static void
log_drops(sup_t *s, uint64_t now)
{
	if (s->drops_full + s->drops_expired == 0 || now - s->drops_log_ms < 1000)
		return;
	log_warn(0, "control queue: dropped %u record(s) for stalled or down workers: %u with the queue full "
		"(%u entries), %u not delivered within %u ms; %u were client handoffs (connections closed)",
		s->drops_full + s->drops_expired, s->drops_full, SENDQ_MAX_ENTRIES, s->drops_expired, SENDQ_TTL_MS,
		s->drops_handoffs);
	s->drops_full = s->drops_expired = s->drops_handoffs = 0;
	s->drops_log_ms = now;
}

static void
flush(sup_t *s, int k)
{
	sup_worker_t *w = &s->w[k];

	if (w->ctl_fd < 0)
		return;
	arm_out(s, k, sendq_flush(&s->sendq, k, w->ctl_fd) == -EAGAIN);
}

/* Ask for big mesh buffers; the kernel caps them at net.core.[rw]mem_max, which is fine. */
static int
mesh_pair(int sv[2])
{
	int size = SUP_MESH_SOCKBUF;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		(void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		(void)setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
	return 0;
}

static void
close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* Close every fd except those in keep (any order, may repeat). In the child after fork only. */
static void
close_except(int *keep, int n)
{
	unsigned lo = 0;

	for (int i = 1; i < n; i++) {
		int v = keep[i], j = i;

		for (; j > 0 && keep[j - 1] > v; j--)
			keep[j] = keep[j - 1];
		keep[j] = v;
	}
	for (int i = 0; i <= n; i++) {
		unsigned hi = i < n ? (unsigned)keep[i] : UINT_MAX;

		if (hi > lo && close_range(lo, hi - 1, 0) < 0) {
			/* close_range is in every kernel this broker supports (>= 5.9); be thorough anyway. */
			for (unsigned fd = lo; fd < hi && fd < 65536; fd++)
				close((int)fd);
		}
		if (i < n)
			lo = (unsigned)keep[i] + 1;
	}
}

static void __attribute__((noreturn))
child_main(sup_t *s, int k, int ctl_end, const int *mesh, pid_t parent)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGCHLD, SIGHUP, SIGPIPE };
	static worker_args_t a;
	int keep[WORKER_MAX + 9], nkeep = 0;
	sigset_t none;
	char role[16];

	/* Die with the supervisor; check getppid() after, in case it died before prctl took effect. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(1);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/*
	 * Own process group: Ctrl-C in a terminal signals the foreground group, and the supervisor must be the
	 * only one to get it, so the workers are shut down gracefully instead of dying on SIGINT.
	 */
	(void)setpgid(0, 0);

	memset(&a, 0, sizeof(a));
	a.id = k;
	a.n_workers = s->n_workers;
	a.listen_fd = s->w[k].listen_fd;
	a.tls_listen_fd = s->w[k].tls_listen_fd;
	memcpy(a.tls_ticket_key, s->ticket_key, sizeof(a.tls_ticket_key));
	a.ctl_fd = ctl_end;
	a.cfg = s->cfg;
	a.restart_count = s->w[k].restarts;
	keep[nkeep++] = STDIN_FILENO;
	keep[nkeep++] = STDOUT_FILENO;
	keep[nkeep++] = STDERR_FILENO;
	if (a.listen_fd >= 0)
		keep[nkeep++] = a.listen_fd;
	if (a.tls_listen_fd >= 0)
		keep[nkeep++] = a.tls_listen_fd;
	keep[nkeep++] = ctl_end;
	for (int p = 0; p <= WORKER_MAX; p++) {
		a.mesh_fds[p] = p < s->n_procs && p != k ? mesh[p] : -1;
		if (a.mesh_fds[p] >= 0)
			keep[nkeep++] = a.mesh_fds[p];
	}
	close_except(keep, nkeep);
	if (k == s->n_workers) {
		log_set_role("kafka");
		_exit(kproc_run(&a));
	}
	snprintf(role, sizeof(role), "w%d", k);
	log_set_role(role);
	_exit(worker_run(&a));
}

/*
 * Fork worker k with the given mesh ends (mesh[p] for peer p, -1 for none). On success the parent holds the
 * new control channel in s->w[k]; the caller still owns (and closes) the mesh fds. 0 or -errno.
 */
static int
spawn(sup_t *s, int k, const int *mesh)
{
	sup_worker_t *w = &s->w[k];
	pid_t parent = getpid(), pid;
	int cv[2], rc;

	rc = chan_pair(cv);
	if (rc < 0)
		return rc;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(cv[0]);
		close(cv[1]);
		return rc;
	}
	if (pid == 0)
		child_main(s, k, cv[1], mesh, parent);
	close(cv[1]);
	w->pid = pid;
	w->ctl_fd = cv[0];
	w->out_armed = false;
	w->state = SUP_W_STARTING;
	w->started_ms = sup_now_ms();
	if (ep_set(s, EPOLL_CTL_ADD, w->ctl_fd, EPOLLIN, worker_tag(s, k)) < 0) {
		/* Without its channel the worker is unreachable: make it exit and treat it as crashed. */
		kill(pid, SIGKILL);
		close(w->ctl_fd);
		w->ctl_fd = -1;
	}
	return 0;
}

static int
start_all(sup_t *s)
{
	int n = s->n_procs, rc = 0, k;
	int *m = malloc(sizeof(int) * (size_t)n * (size_t)n);

	if (m == NULL) {
		log_error(ENOMEM, "cannot start workers");
		return -1;
	}
	for (int i = 0; i < n * n; i++)
		m[i] = -1;
	for (int i = 0; i < n && rc == 0; i++) {
		for (int j = i + 1; j < n; j++) {
			int sv[2];

			rc = mesh_pair(sv);
			if (rc < 0) {
				log_error(-rc, "cannot create the worker mesh (%d workers need %d sockets; raise "
					"LimitNOFILE / ulimit -n)", n, n * (n - 1));
				break;
			}
			m[i * n + j] = sv[0];
			m[j * n + i] = sv[1];
		}
	}
	for (k = 0; k < n && rc == 0; k++) {
		rc = spawn(s, k, &m[k * n]);
		if (rc < 0)
			log_error(-rc, "cannot fork worker %d", k);
	}
	close_fds(m, n * n);
	free(m);
	if (rc < 0)
		return -1;
	for (k = 0; k < n; k++)
		log_debug("worker %d started, pid %d", k, (int)s->w[k].pid);
	return 0;
}

static void
schedule_restart(sup_t *s, int k)
{
	sup_worker_t *w = &s->w[k];
	uint64_t delay = s->cfg->restart_backoff_ms;

	for (unsigned i = 0; i < w->streak && delay < SUP_BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > SUP_BACKOFF_MAX_MS)
		delay = SUP_BACKOFF_MAX_MS;
	w->streak++;
	w->state = SUP_W_RESTARTING;
	w->restart_at_ms = sup_now_ms() + delay;
	log_info("restarting worker %d in %llu ms (restart #%u)", k, (unsigned long long)delay, w->restarts + 1);
}

/* Fork worker k again with a fresh control channel and a fresh mesh pair to every running peer. */
static void
restart(sup_t *s, int k)
{
	int mine[WORKER_MAX + 1], theirs[WORKER_MAX + 1];
	int rc = 0;

	for (int p = 0; p < s->n_procs; p++) {
		int sv[2];

		mine[p] = theirs[p] = -1;
		if (p == k || !running(&s->w[p]) || rc < 0)
			continue;
		rc = mesh_pair(sv);
		if (rc < 0)
			continue;
		mine[p] = sv[0];
		theirs[p] = sv[1];
	}
	s->w[k].restarts++;
	if (rc == 0)
		rc = spawn(s, k, mine);
	close_fds(mine, s->n_procs);
	if (rc < 0) {
		log_error(-rc, "cannot restart worker %d", k);
		close_fds(theirs, s->n_procs);
		s->w[k].restarts--;
		schedule_restart(s, k);
		return;
	}
	log_info("worker %d restarted, pid %d (restart #%u)", k, (int)s->w[k].pid, s->w[k].restarts);
	for (int p = 0; p < s->n_procs; p++)
		if (theirs[p] >= 0)
			sup_send(s, p, CHAN_MESH_FD, k, 0, NULL, 0, theirs[p], false);
}

static void
close_channel(sup_t *s, int k)
{
	sup_worker_t *w = &s->w[k];

	if (w->ctl_fd < 0)
		return;
	(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->ctl_fd, NULL);
	close(w->ctl_fd);
	w->ctl_fd = -1;
	w->out_armed = false;
}

static void
on_exit_status(sup_t *s, int k, int status)
{
	sup_worker_t *w = &s->w[k];
	uint64_t now = sup_now_ms(), up = now - w->started_ms;
	int pid = (int)w->pid;
	char how[96];

	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d (%s)%s", WTERMSIG(status),
			strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(how, sizeof(how), "ended with wait status %#x", (unsigned)status);

	close_channel(s, k);
	w->pid = 0;
	w->eof_kill_ms = 0;
	ctl_worker_down(s->ctl, k);
	metrics_worker_down(s->metrics, k);
	systopic_worker_down(s->systopic, k);
	if (s->stopping) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			log_info("worker %d (pid %d) %s", k, pid, how);
		else
			log_warn(0, "worker %d (pid %d) %s during shutdown", k, pid, how);
		sendq_drop(&s->sendq, k, false);
		w->state = SUP_W_STOPPED;
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_CONFIG) {
		/* Restarting it would meet the same error; the worker logged what to fix. */
		log_error(0, "worker %d (pid %d) cannot work with this configuration (see its line above): stopping", k,
			pid);
		w->state = SUP_W_STOPPED;
		s->exit_code = 2;
		sup_begin_shutdown(s, "configuration error");
		return;
	}
	log_error(0, "worker %d (pid %d) %s after %llu.%03llu s", k, pid, how, (unsigned long long)(up / 1000),
		(unsigned long long)(up % 1000));
	sendq_drop(&s->sendq, k, true);
	for (int p = 0; p < s->n_procs; p++)
		if (p != k && running(&s->w[p]))
			sup_send(s, p, CHAN_PEER_DOWN, k, 0, NULL, 0, -1, false);
	if (up >= SUP_STABLE_MS)
		w->streak = 0;
	schedule_restart(s, k);
}

static void
reap(sup_t *s)
{
	for (;;) {
		int status, k;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0) {
			if (pid < 0 && errno == EINTR)
				continue;
			return;
		}
		for (k = 0; k < s->n_procs && s->w[k].pid != pid; k++)
			;
		if (k == s->n_procs) {
			log_debug("reaped unknown child %d", (int)pid);
			continue;
		}
		/* Log the pid before on_exit_status clears it. */
		log_debug("worker %d pid %d reaped", k, (int)pid);
		on_exit_status(s, k, status);
	}
}

static void
check_all_ready(sup_t *s)
{
	if (s->ready_once || s->stopping)
		return;
	for (int k = 0; k < s->n_procs; k++)
		if (s->w[k].state != SUP_W_UP)
			return;
	s->ready_once = true;
	notify("READY=1");
	log_info("ringmq ready: %d workers on %s", s->n_workers, *s->listen_str ? s->listen_str : s->tls_listen_str);
}

static void
on_record(sup_t *s, int k, const chan_hdr_t *h, int fd)
{
	switch (h->type) {
	case CHAN_READY:
		if (fd >= 0)
			close(fd);
		if (s->stopping)
			return;
		if (s->w[k].state == SUP_W_STARTING && s->w[k].restarts > 0)
			log_info("worker %d ready (pid %d)", k, (int)s->w[k].pid);
		s->w[k].state = SUP_W_UP;
		flush(s, k);
		wdog_on_ready(s->wdog, k);
		check_all_ready(s);
		return;
	case CHAN_PONG:
		if (fd >= 0)
			close(fd);
		wdog_on_pong(s->wdog, k, h->seq, chan_buf, h->len);
		return;
	case CHAN_HANDOFF_MORE:
		if (fd >= 0)
			close(fd);
		if (h->worker < 0 || h->worker >= s->n_workers || h->len < sizeof(chan_handoff_t))
			return;
		/* Behind its CHAN_HANDOFF in the same per-target queue, so the chunks arrive in order. */
		sup_send(s, h->worker, CHAN_HANDOFF_MORE, h->worker, h->seq, chan_buf, h->len, -1, !s->stopping);
		return;
	case CHAN_HANDOFF:
		if (fd < 0 || h->worker < 0 || h->worker >= s->n_workers || h->len < sizeof(chan_handoff_t)) {
			log_warn(0, "worker %d sent a malformed handoff (target %d, %s fd, %u bytes): dropped", k,
				(int)h->worker, fd < 0 ? "no" : "with", (unsigned)h->len);
			if (fd >= 0)
				close(fd);
			return;
		}
		/* Forward unchanged; sup_send closes our copy of the fd once it is on its way. */
		if (sup_send(s, h->worker, CHAN_HANDOFF, h->worker, h->seq, chan_buf, h->len, fd, !s->stopping) ==
		    -ENOTCONN)
			log_info("handoff from worker %d to worker %d dropped: target stopped", k, (int)h->worker);
		return;
	case CHAN_CTL_REPLY:
		if (fd >= 0)
			close(fd);
		if (!metrics_on_reply(s->metrics, k, h->seq, (const char *)chan_buf, h->len))
			ctl_on_reply(s->ctl, k, h->seq, (const char *)chan_buf, h->len);
		return;
	case CHAN_SYS_INTEREST:
		if (fd >= 0)
			close(fd);
		systopic_on_interest(s->systopic, k, chan_buf, h->len);
		return;
	default:
		if (fd >= 0)
			close(fd);
		log_warn(0, "worker %d sent an unexpected record type %u", k, (unsigned)h->type);
	}
}

static void
on_worker_event(sup_t *s, int k, uint32_t events)
{
	sup_worker_t *w = &s->w[k];

	if (events & EPOLLOUT)
		flush(s, k);
	for (int i = 0; i < SUP_RECV_BATCH && w->ctl_fd >= 0; i++) {
		chan_hdr_t h;
		int fd, rc = chan_recv(w->ctl_fd, &h, chan_buf, &fd);

		if (rc == -EAGAIN)
			return;
		if (rc == -EPROTO) {
			log_warn(0, "worker %d sent a malformed control record", k);
			continue;
		}
		if (rc < 0) {
			/* EOF: the worker is exiting and SIGCHLD follows. One that lingers without its channel cannot
			 * be controlled any more: run_timers kills it. */
			if (rc != -EPIPE && rc != -ECONNRESET)
				log_warn(-rc, "worker %d control channel", k);
			close_channel(s, k);
			if (w->pid > 0)
				w->eof_kill_ms = sup_now_ms() + SUP_EOF_GRACE_MS;
			return;
		}
		on_record(s, k, &h, fd);
	}
}

static void
kill_stragglers(sup_t *s)
{
	for (int k = 0; k < s->n_procs; k++) {
		if (s->w[k].pid > 0) {
			log_warn(0, "worker %d (pid %d) still running after shutdown timeout: SIGKILL", k,
				(int)s->w[k].pid);
			kill(s->w[k].pid, SIGKILL);
		}
	}
	s->killed = true;
	s->stop_deadline_ms = sup_now_ms() + SUP_KILL_GRACE_MS;
}

void
sup_begin_shutdown(sup_t *s, const char *why)
{
	int live = 0;

	if (s->stopping)
		return;
	s->stopping = true;
	s->stop_deadline_ms = sup_now_ms() + s->cfg->shutdown_timeout_ms;
	notify("STOPPING=1");
	for (int k = 0; k < s->n_procs; k++)
		live += s->w[k].pid > 0;
	log_info("shutting down (%s): stopping %d workers, timeout %u ms", why, live, s->cfg->shutdown_timeout_ms);
	for (int k = 0; k < s->n_procs; k++) {
		sup_worker_t *w = &s->w[k];

		if (w->listen_fd >= 0) {
			close(w->listen_fd);
			w->listen_fd = -1;
		}
		if (w->tls_listen_fd >= 0) {
			close(w->tls_listen_fd);
			w->tls_listen_fd = -1;
		}
		if (w->pid <= 0) {
			w->state = SUP_W_STOPPED;
			sendq_drop(&s->sendq, k, false);
			continue;
		}
		w->state = SUP_W_STOPPING;
		if (sup_send(s, k, CHAN_SHUTDOWN, k, 0, NULL, 0, -1, false) < 0) {
			log_warn(0, "cannot tell worker %d to shut down: SIGKILL", k);
			kill(w->pid, SIGKILL);
		}
	}
}

static void
on_signal(sup_t *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			s->sig_chld = true;
			break;
		case SIGHUP:
			s->sig_hup = true;
			break;
		case SIGTERM:
		case SIGINT:
			if (s->stopping && !s->killed) {
				log_warn(0, "%s again during shutdown: killing the workers now", strsignal((int)si.ssi_signo));
				kill_stragglers(s);
			}
			s->sig_term = true;
			break;
		default:
			break;
		}
	}
}

/* A fresh TLS session ticket key (getrandom: a key the clients could guess would let them forge sessions). */
static void
new_ticket_key(sup_t *s)
{
	size_t got = 0;

	while (got < sizeof(s->ticket_key)) {
		ssize_t n = getrandom(s->ticket_key + got, sizeof(s->ticket_key) - got, 0);

		if (n > 0)
			got += (size_t)n;
	}
	s->ticket_key_ms = sup_now_ms();
}

void
sup_reload(sup_t *s, const char *why)
{
	log_info("reloading certificates, password and ACL files (%s)", why);
	for (int k = 0; k < s->n_workers; k++) {
		if (s->w[k].pid > 0 && !s->stopping)
			sup_send(s, k, CHAN_RELOAD, k, 0, NULL, 0, -1, false);
	}
}

/* Every SUP_TICKET_ROTATE_MS, a new ticket key for every worker (a restarted one gets it at fork). */
static void
rotate_ticket_key(sup_t *s, uint64_t now)
{
	if (!*s->tls_listen_str || s->stopping || now - s->ticket_key_ms < SUP_TICKET_ROTATE_MS)
		return;
	new_ticket_key(s);
	for (int k = 0; k < s->n_workers; k++) {
		if (s->w[k].pid > 0)
			sup_send(s, k, CHAN_TLS_KEY, k, 0, s->ticket_key, sizeof(s->ticket_key), -1, false);
	}
}

static int
setup_signals(sup_t *s)
{
	sigset_t set;

	/* SIGHUP reloads (signalfd below); a closed terminal therefore does not take the broker down either. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		log_error(errno, "sigprocmask");
		return -1;
	}
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sigfd < 0) {
		log_error(errno, "signalfd");
		return -1;
	}
	return ep_set(s, EPOLL_CTL_ADD, s->sigfd, EPOLLIN, SUP_TAG(SUP_EV_SIGNAL, 0, 0));
}

int
sup_init(sup_t *s, const config_t *cfg, int n_workers)
{
	int fds[WORKER_MAX];
	uint16_t port;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->n_workers = n_workers;
	s->n_procs = n_workers + (strcmp(cfg->cluster, "kafka") == 0);
	s->epfd = s->sigfd = -1;
	s->pid = getpid();
	s->start_ms = sup_now_ms();
	sendq_init(&s->sendq);
	for (int k = 0; k <= WORKER_MAX; k++) {
		s->w[k].listen_fd = s->w[k].ctl_fd = s->w[k].tls_listen_fd = -1;
		s->w[k].state = SUP_W_STOPPED;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		log_error(errno, "epoll_create1");
		return -1;
	}
	if (setup_signals(s) < 0)
		return -1;
	if (strcmp(cfg->plain_listener, "off") != 0) {
		if (listen_open(cfg->listen_host, cfg->port, n_workers, fds, &port) < 0)
			return -1;
		for (int k = 0; k < n_workers; k++)
			s->w[k].listen_fd = fds[k];
		listen_format(s->listen_str, sizeof(s->listen_str), cfg->listen_host, port);
	}
	if (cfg->tls_port) {
		uint16_t tport;

		if (listen_open(cfg->listen_host, cfg->tls_port, n_workers, fds, &tport) < 0)
			return -1;
		for (int k = 0; k < n_workers; k++)
			s->w[k].tls_listen_fd = fds[k];
		listen_format(s->tls_listen_str, sizeof(s->tls_listen_str), cfg->listen_host, tport);
	}
	new_ticket_key(s);
	if (ctl_create(&s->ctl, s, cfg->control_socket) < 0)
		return -1;
	if (wdog_create(&s->wdog, s) < 0 || metrics_create(&s->metrics, s) < 0 ||
	    systopic_create(&s->systopic, s) < 0)
		return -1;
	log_info("ringmqd %s starting: %d workers, listening on %s%s%s, control socket %s", RINGMQ_VERSION,
		n_workers, s->listen_str, *s->tls_listen_str ? (*s->listen_str ? " and TLS on " : "TLS ") : "",
		s->tls_listen_str, cfg->control_socket);
	if (start_all(s) < 0)
		return -1;
	return 0;
}

static int
next_timeout(sup_t *s)
{
	uint64_t now = sup_now_ms(), next = sendq_next_deadline(&s->sendq), t;

	t = ctl_next_deadline(s->ctl);
	if (t < next)
		next = t;
	t = wdog_next_deadline(s->wdog);
	if (t < next)
		next = t;
	t = metrics_next_deadline(s->metrics);
	if (t < next)
		next = t;
	t = systopic_next_deadline(s->systopic);
	if (t < next)
		next = t;
	if (s->stopping && s->stop_deadline_ms < next)
		next = s->stop_deadline_ms;
	if (s->drops_full + s->drops_expired && s->drops_log_ms + 1000 < next)
		next = s->drops_log_ms + 1000;
	for (int k = 0; k < s->n_procs; k++) {
		if (s->w[k].state == SUP_W_RESTARTING && s->w[k].restart_at_ms < next)
			next = s->w[k].restart_at_ms;
		if (!s->stopping && s->w[k].eof_kill_ms && s->w[k].eof_kill_ms < next)
			next = s->w[k].eof_kill_ms;
	}
	if (next == UINT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

static bool
all_stopped(const sup_t *s)
{
	for (int k = 0; k < s->n_procs; k++)
		if (s->w[k].pid > 0)
			return false;
	return true;
}

int
sup_run(sup_t *s)
{
	struct epoll_event evs[64];

	for (;;) {
		uint64_t now;
		int n = epoll_wait(s->epfd, evs, 64, next_timeout(s));

		if (n < 0 && errno != EINTR) {
			log_error(errno, "epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			uint32_t idx = SUP_TAG_IDX(tag);

			switch (SUP_TAG_KIND(tag)) {
			case SUP_EV_SIGNAL:
				on_signal(s);
				break;
			case SUP_EV_WORKER:
				if (idx < (uint32_t)s->n_procs &&
				    SUP_TAG_GEN(tag) == (s->w[idx].restarts & 0xffffffu))
					on_worker_event(s, (int)idx, evs[i].events);
				break;
			case SUP_EV_CTL_LISTEN:
			case SUP_EV_CTL_CONN:
				ctl_on_event(s->ctl, tag, evs[i].events);
				break;
			case SUP_EV_METRICS:
				metrics_on_event(s->metrics);
				break;
			default:
				break;
			}
		}
		/* Act on the signals seen in this batch. */
		if (s->sig_chld) {
			s->sig_chld = false;
			reap(s);
		}
		if (s->sig_term) {
			s->sig_term = false;
			sup_begin_shutdown(s, "signal");
		}
		if (s->sig_hup) {
			s->sig_hup = false;
			sup_reload(s, "SIGHUP");
		}
		now = sup_now_ms();
		rotate_ticket_key(s, now);
		for (int k = 0; k < s->n_procs; k++) {
			sup_worker_t *w = &s->w[k];

			if (!s->stopping && w->state == SUP_W_RESTARTING && w->restart_at_ms <= now)
				restart(s, k);
			if (w->eof_kill_ms && w->eof_kill_ms <= now && w->pid > 0 && !s->stopping) {
				log_warn(0, "worker %d (pid %d) closed its control channel but keeps running: SIGKILL",
					k, (int)w->pid);
				kill(w->pid, SIGKILL);
				w->eof_kill_ms = 0;
			}
		}
		s->drops_expired += sendq_expire(&s->sendq, now, &s->drops_handoffs);
		log_drops(s, now);
		ctl_on_timer(s->ctl, now);
		wdog_on_timer(s->wdog, now);
		metrics_on_timer(s->metrics, now);
		systopic_on_timer(s->systopic, now);
		if (s->stopping && all_stopped(s))
			break;
		if (s->stopping && now >= s->stop_deadline_ms) {
			if (s->killed) {
				log_error(0, "workers did not exit even after SIGKILL; giving up");
				break;
			}
			kill_stragglers(s);
		}
	}
	log_info("ringmqd stopped");
	return s->exit_code;
}

void
sup_finish(sup_t *s)
{
	/* Any worker still running (failed start-up, or one that ignored SIGKILL) must not outlive us. */
	for (int k = 0; k < s->n_procs; k++) {
		if (s->w[k].pid > 0) {
			kill(s->w[k].pid, SIGKILL);
			(void)waitpid(s->w[k].pid, NULL, 0);
			s->w[k].pid = 0;
		}
		close_channel(s, k);
		if (s->w[k].listen_fd >= 0)
			close(s->w[k].listen_fd);
		s->w[k].listen_fd = -1;
		if (s->w[k].tls_listen_fd >= 0)
			close(s->w[k].tls_listen_fd);
		s->w[k].tls_listen_fd = -1;
	}
	ctl_destroy(s->ctl);
	s->ctl = NULL;
	wdog_destroy(s->wdog);
	s->wdog = NULL;
	metrics_destroy(s->metrics);
	s->metrics = NULL;
	systopic_destroy(s->systopic);
	s->systopic = NULL;
	sendq_finish(&s->sendq);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->epfd >= 0)
		close(s->epfd);
	s->sigfd = s->epfd = -1;
}

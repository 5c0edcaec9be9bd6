/*
 * ctl.c — control socket server (see ctl.h).
 *
 * Each connection is a small state machine: READ one line, WAIT for the workers' CHAN_CTL_REPLY records,
 * WRITE one line, close. Nothing blocks: requests go out through sup_send(), replies come back through
 * ctl_on_reply(), and a 2 s deadline (checked by the supervisor's loop through ctl_on_timer) answers with
 * whatever arrived plus an "errors" list naming the workers that did not answer.
 */
#include "ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "build_config.h"
#include "chan.h"
#include "log.h"
#include "slot.h"
#include "sup.h"
#include "watchdog.h"

enum conn_state { CONN_FREE, CONN_READ, CONN_WAIT, CONN_WRITE };

enum ctl_cmd { CMD_STATUS, CMD_WORKERS, CMD_CLIENTS, CMD_CLIENT, CMD_KICK, CMD_STATS, CMD_CLUSTER };

typedef struct ctl_conn {
	int fd;
	uint32_t gen;                  /* bumped on reuse, so stale epoll events are recognised */
	enum conn_state st;
	uint64_t deadline_ms;
	size_t in_len;
	char in[CTL_LINE_MAX];
	char *out;
	size_t out_len, out_off;
	/* The request in flight (CONN_WAIT). */
	enum ctl_cmd cmd;
	uint32_t seq;
	int target;                    /* CMD_CLIENT/CMD_KICK: the owner worker */
	int waiting;                   /* replies still expected */
	bool asked[WORKER_MAX + 1];    /* reply from process k still expected (k = n_workers: the Kafka process) */
	json_t *reply[WORKER_MAX + 1]; /* reply from process k, NULL if none */
	json_t *errors;                /* array of strings, NULL while empty */
} ctl_conn_t;

struct ctl {
	struct sup *s;
	int fd;
	dev_t dev;                     /* of the socket file we created, to unlink only our own */
	ino_t ino;
	uint32_t next_seq;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ctl_conn_t conns[CTL_MAX_CONNS];
};

static const char *const cmd_names[] = { "status", "workers", "clients", "client", "kick", "stats", "cluster" };

static int
mkdir_p(const char *dir)
{
	char buf[sizeof(((ctl_t *)0)->path)];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (c == '\0')
				return 0;
		}
	}
}

/* 1 if something accepts connections at path, 0 if not (stale), -errno if we cannot tell. */
static int
socket_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
		rc = 1;
	else if (errno == ECONNREFUSED || errno == ENOENT)
		rc = 0;
	else
		rc = -errno;
	close(fd);
	return rc;
}

int
ctl_create(ctl_t **out, struct sup *s, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	char dir[sizeof(sa.sun_path)];
	struct stat st;
	mode_t old;
	ctl_t *c;
	char *slash;
	int rc;

	*out = NULL;
	if (len == 0 || len >= sizeof(sa.sun_path)) {
		log_error(0, "control_socket '%s': path must be 1..%zu bytes", path, sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, len + 1);
	memcpy(dir, path, len + 1);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		rc = mkdir_p(dir);
		if (rc < 0) {
			log_error(-rc, "cannot create the control socket directory %s", dir);
			return -1;
		}
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error(0, "control socket %s exists and is not a socket: remove it or set --control-socket",
				path);
			return -1;
		}
		rc = socket_alive(&sa);
		if (rc > 0) {
			log_error(0, "another ringmqd is using %s (stop it, or set --control-socket)", path);
			return -1;
		}
		if (rc < 0) {
			log_error(-rc, "cannot check the existing control socket %s", path);
			return -1;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			log_error(errno, "cannot remove the stale control socket %s", path);
			return -1;
		}
		log_info("removed stale control socket %s", path);
	}

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_error(ENOMEM, "control socket");
		return -1;
	}
	c->s = s;
	memcpy(c->path, path, len + 1);
	for (int i = 0; i < CTL_MAX_CONNS; i++)
		c->conns[i].fd = -1;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		log_error(errno, "control socket");
		goto err_free;
	}
	/* Never let the socket exist with wider permissions than 0660, not even between bind and chmod. */
	old = umask(0117);
	rc = bind(c->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0) {
		log_error(errno, "cannot bind the control socket %s", path);
		goto err_close;
	}
	if (chmod(path, 0660) < 0 || lstat(path, &st) < 0 || listen(c->fd, 16) < 0) {
		log_error(errno, "cannot set up the control socket %s", path);
		goto err_unlink;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = SUP_TAG(SUP_EV_CTL_LISTEN, 0, 0) };

		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
			log_error(errno, "epoll_ctl (control socket)");
			goto err_unlink;
		}
	}
	*out = c;
	return 0;

err_unlink:
	unlink(path);
err_close:
	close(c->fd);
err_free:
	free(c);
	return -1;
}

static void
clear_request(ctl_conn_t *cn)
{
	for (int k = 0; k <= WORKER_MAX; k++) {
		cn->asked[k] = false;
		if (cn->reply[k]) {
			json_decref(cn->reply[k]);
			cn->reply[k] = NULL;
		}
	}
	cn->waiting = 0;
	json_decref(cn->errors);
	cn->errors = NULL;
}

static void
conn_close(ctl_t *c, ctl_conn_t *cn)
{
	if (cn->fd >= 0) {
		(void)epoll_ctl(c->s->epfd, EPOLL_CTL_DEL, cn->fd, NULL);
		close(cn->fd);
	}
	clear_request(cn);
	free(cn->out);
	cn->out = NULL;
	cn->out_len = cn->out_off = cn->in_len = 0;
	cn->fd = -1;
	cn->st = CONN_FREE;
}

void
ctl_destroy(ctl_t *c)
{
	struct stat st;

	if (c == NULL)
		return;
	for (int i = 0; i < CTL_MAX_CONNS; i++)
		if (c->conns[i].st != CONN_FREE)
			conn_close(c, &c->conns[i]);
	close(c->fd);
	/* Another broker may have replaced a socket we lost track of; only remove the file we made. */
	if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	free(c);
}

static void
conn_events(ctl_t *c, ctl_conn_t *cn, uint32_t events)
{
	struct epoll_event ev = { .events = events,
		.data.u64 = SUP_TAG(SUP_EV_CTL_CONN, cn->gen, cn - c->conns) };

	(void)epoll_ctl(c->s->epfd, EPOLL_CTL_MOD, cn->fd, &ev);
}

static void
conn_flush(ctl_t *c, ctl_conn_t *cn)
{
	while (cn->out_off < cn->out_len) {
		ssize_t n = send(cn->fd, cn->out + cn->out_off, cn->out_len - cn->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			conn_events(c, cn, EPOLLOUT);
			return;
		}
		if (n <= 0) {
			log_debug("control client went away before the reply was written");
			break;
		}
		cn->out_off += (size_t)n;
	}
	conn_close(c, cn);
}

/* Send obj (consumed) as the one-line reply and close once written. */
static void
conn_reply(ctl_t *c, ctl_conn_t *cn, json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	size_t len;

	json_decref(obj);
	clear_request(cn);
	if (text == NULL) {
		conn_close(c, cn);
		return;
	}
	len = strlen(text);
	cn->out = malloc(len + 1);
	if (cn->out == NULL) {
		free(text);
		conn_close(c, cn);
		return;
	}
	memcpy(cn->out, text, len);
	free(text);
	cn->out[len] = '\n';
	cn->out_len = len + 1;
	cn->out_off = 0;
	cn->st = CONN_WRITE;
	cn->deadline_ms = sup_now_ms() + CTL_IO_TIMEOUT_MS;
	conn_flush(c, cn);
}

static void __attribute__((format(printf, 3, 4)))
reply_error(ctl_t *c, ctl_conn_t *cn, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_reply(c, cn, json_pack("{ss}", "error", msg));
}

static void __attribute__((format(printf, 2, 3)))
add_error(ctl_conn_t *cn, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cn->errors == NULL)
		cn->errors = json_array();
	json_array_append_new(cn->errors, json_string(msg));
}

static json_t *
stats_of(const ctl_conn_t *cn, int k)
{
	json_t *st = cn->reply[k] ? json_object_get(cn->reply[k], "stats") : NULL;

	return json_is_object(st) ? st : NULL;
}

static json_t *
build_status(ctl_t *c, ctl_conn_t *cn)
{
	struct sup *s = c->s;
	json_int_t conns = 0;
	int up = 0;

	for (int k = 0; k < s->n_workers; k++) {
		json_t *st = stats_of(cn, k);

		up += s->w[k].state == SUP_W_UP;
		if (st)
			conns += json_integer_value(json_object_get(st, "connections"));
	}
	return json_pack("{ss sI sI ss ss si si sI}", "version", RINGMQ_VERSION, "pid", (json_int_t)s->pid,
		"uptime_s", (json_int_t)((sup_now_ms() - s->start_ms) / 1000), "listen", s->listen_str,
		"tls_listen", s->tls_listen_str, "workers", s->n_workers, "workers_up", up, "connections", conns);
}

static json_t *
build_workers(ctl_t *c, ctl_conn_t *cn)
{
	struct sup *s = c->s;
	json_t *arr = json_array();
	uint64_t now = sup_now_ms();

	for (int k = 0; k < s->n_workers; k++) {
		const sup_worker_t *w = &s->w[k];
		json_t *st = stats_of(cn, k), *conns = st ? json_object_get(st, "connections") : NULL;
		json_t *o = json_object();

		json_object_set_new(o, "id", json_integer(k));
		json_object_set_new(o, "pid", w->pid > 0 ? json_integer(w->pid) : json_null());
		json_object_set_new(o, "state", json_string(sup_state_name(w->state)));
		json_object_set_new(o, "restarts", json_integer(w->restarts));
		json_object_set_new(o, "slots", json_pack("[ii]", (int)slot_first(k, s->n_workers),
			(int)slot_first(k + 1, s->n_workers) - 1));
		json_object_set_new(o, "uptime_s", json_integer(w->pid > 0 ? (json_int_t)(now - w->started_ms) / 1000 : 0));
		json_object_set_new(o, "connections", json_is_integer(conns) ? json_copy(conns) : json_null());
		json_array_append_new(arr, o);
	}
	return json_pack("{so}", "workers", arr);
}

static json_t *
build_clients(ctl_t *c, ctl_conn_t *cn)
{
	json_t *arr = json_array();

	for (int k = 0; k < c->s->n_workers; k++) {
		json_t *r = cn->reply[k], *list, *it;
		size_t i;

		if (r == NULL)
			continue;
		list = json_object_get(r, "clients");
		if (!json_is_array(list)) {
			const char *e = json_string_value(json_object_get(r, "error"));

			add_error(cn, "worker %d: %s", k, e ? e : "reply has no \"clients\" array");
			continue;
		}
		json_array_foreach(list, i, it) {
			if (json_is_object(it) && json_object_get(it, "worker") == NULL)
				json_object_set_new(it, "worker", json_integer(k));
			json_array_append(arr, it);
		}
	}
	return json_pack("{so}", "clients", arr);
}

static json_t *
build_stats(ctl_t *c, ctl_conn_t *cn)
{
	json_t *total = json_object(), *workers = json_array(), *r, *kafka;

	for (int k = 0; k < c->s->n_workers; k++) {
		json_t *st = stats_of(cn, k), *v, *w;
		const char *key;

		if (st == NULL) {
			if (cn->reply[k])
				add_error(cn, "worker %d: reply has no \"stats\" object", k);
			continue;
		}
		json_object_foreach(st, key, v) {
			json_t *t = json_object_get(total, key);

			if (json_is_integer(v) && (t == NULL || json_is_integer(t)))
				json_object_set_new(total, key, json_integer(json_integer_value(v) +
					(t ? json_integer_value(t) : 0)));
			else if (json_is_number(v) && (t == NULL || json_is_number(t)))
				json_object_set_new(total, key, json_real(json_number_value(v) +
					(t ? json_number_value(t) : 0)));
		}
		w = json_deep_copy(st);
		json_object_set_new(w, "worker", json_integer(k));
		json_array_append_new(workers, w);
	}
	r = json_pack("{soso}", "total", total, "workers", workers);
	kafka = c->s->n_procs > c->s->n_workers && cn->reply[c->s->n_workers] ?
		json_object_get(cn->reply[c->s->n_workers], "kafka") : NULL;
	if (json_is_object(kafka))
		json_object_set(r, "kafka", kafka);
	return r;
}

/* Every expected reply is in (or given up on): answer the client. */
static void
finish(ctl_t *c, ctl_conn_t *cn)
{
	json_t *r;

	switch (cn->cmd) {
	case CMD_STATUS: r = build_status(c, cn); break;
	case CMD_WORKERS: r = build_workers(c, cn); break;
	case CMD_CLIENTS: r = build_clients(c, cn); break;
	case CMD_STATS: r = build_stats(c, cn); break;
	case CMD_CLIENT:
	case CMD_KICK:
	case CMD_CLUSTER:
		if (cn->reply[cn->target]) {
			r = json_incref(cn->reply[cn->target]);
		} else {
			json_t *e = cn->errors ? json_array_get(cn->errors, 0) : NULL;

			r = json_pack("{ss}", "error", e ? json_string_value(e) : "no reply");
		}
		conn_reply(c, cn, r);
		return;
	default:
		r = json_object();
	}
	if (cn->errors && json_array_size(cn->errors) > 0)
		json_object_set(r, "errors", cn->errors);
	conn_reply(c, cn, r);
}

/* Send the request text to worker k; failures become an entry in "errors" unless quiet. */
static void
ask(ctl_t *c, ctl_conn_t *cn, int k, const char *text, bool quiet)
{
	int rc = sup_send(c->s, k, CHAN_CTL_REQ, k, cn->seq, text, (uint32_t)strlen(text), -1, false);

	if (rc == 0) {
		cn->asked[k] = true;
		cn->waiting++;
	} else if (!quiet) {
		if (rc == -ENOTCONN)
			add_error(cn, "worker %d is not running (%s)", k, sup_state_name(c->s->w[k].state));
		else
			add_error(cn, "worker %d: cannot send the request: %s", k, strerror(-rc));
	}
}

static void
dispatch(ctl_t *c, ctl_conn_t *cn, json_t *req)
{
	struct sup *s = c->s;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	json_t *jw, *fwd;
	char *text;
	int i;

	if (cmd == NULL) {
		reply_error(c, cn, "missing \"cmd\" (status, workers, clients, client, kick, stats, cluster, shutdown, reload, live, ready)");
		return;
	}
	if (strcmp(cmd, "shutdown") == 0) {
		log_info("shutdown requested on the control socket");
		conn_reply(c, cn, json_pack("{sb}", "ok", 1));
		sup_begin_shutdown(s, "control socket");
		return;
	}
	if (strcmp(cmd, "reload") == 0) {
		conn_reply(c, cn, json_pack("{sb}", "ok", 1));
		sup_reload(s, "control socket");
		return;
	}
	/* The probes: answered from the heartbeat records at once (watchdog.h), never by asking the workers. */
	if (strcmp(cmd, "live") == 0 || strcmp(cmd, "ready") == 0) {
		conn_reply(c, cn, cmd[0] == 'l' ? wdog_live_json(s->wdog) : wdog_ready_json(s->wdog));
		return;
	}
	for (i = 0; i < (int)(sizeof(cmd_names) / sizeof(cmd_names[0])); i++)
		if (strcmp(cmd, cmd_names[i]) == 0)
			break;
	if (i == (int)(sizeof(cmd_names) / sizeof(cmd_names[0]))) {
		reply_error(c, cn, "unknown command '%.64s' (status, workers, clients, client, kick, stats, cluster, shutdown, "
			"reload, live, ready)",
			cmd);
		return;
	}
	cn->cmd = (enum ctl_cmd)i;
	cn->seq = ++c->next_seq;
	cn->target = -1;

	switch (cn->cmd) {
	case CMD_STATUS:
	case CMD_WORKERS:
	case CMD_STATS:
		/* status and workers show down workers through their state, so that is no error for them. */
		for (int k = 0; k < s->n_workers; k++)
			ask(c, cn, k, "{\"cmd\":\"stats\"}", cn->cmd != CMD_STATS);
		if (cn->cmd == CMD_STATS && s->n_procs > s->n_workers) /* the Kafka process's counters */
			ask(c, cn, s->n_workers, "{\"cmd\":\"cluster\"}", false);
		break;
	case CMD_CLIENTS:
		jw = json_object_get(req, "worker");
		if (jw && !json_is_null(jw)) {
			if (!json_is_integer(jw) || json_integer_value(jw) < 0 ||
			    json_integer_value(jw) >= s->n_workers) {
				reply_error(c, cn, "\"worker\" must be an integer from 0 to %d", s->n_workers - 1);
				return;
			}
			ask(c, cn, (int)json_integer_value(jw), "{\"cmd\":\"clients\"}", false);
		} else {
			for (int k = 0; k < s->n_workers; k++)
				ask(c, cn, k, "{\"cmd\":\"clients\"}", false);
		}
		break;
	case CMD_CLUSTER:
		if (s->n_procs == s->n_workers) {
			reply_error(c, cn, "this node is not in a cluster (cluster = none)");
			return;
		}
		cn->target = s->n_workers;
		ask(c, cn, cn->target, "{\"cmd\":\"cluster\"}", false);
		break;
	case CMD_CLIENT:
	case CMD_KICK: {
		const char *id = json_string_value(json_object_get(req, "id"));
		size_t len = id ? json_string_length(json_object_get(req, "id")) : 0;

		if (id == NULL) {
			reply_error(c, cn, "\"%s\" needs a string \"id\" (the client identifier)", cmd);
			return;
		}
		cn->target = slot_owner(slot_of(id, len), s->n_workers);
		fwd = json_object();
		json_object_set_new(fwd, "cmd", json_string(cmd));
		json_object_set_new(fwd, "id", json_stringn(id, len));
		text = fwd ? json_dumps(fwd, JSON_COMPACT) : NULL;
		json_decref(fwd);
		if (text == NULL) {
			reply_error(c, cn, "out of memory");
			return;
		}
		ask(c, cn, cn->target, text, false);
		free(text);
		if (cn->waiting == 0) {
			/* The owner is down: the client cannot be connected anywhere else. */
			reply_error(c, cn, "worker %d (owner of this client ID) is not running", cn->target);
			return;
		}
		break;
	}
	}
	if (cn->waiting == 0) {
		finish(c, cn);
		return;
	}
	cn->st = CONN_WAIT;
	cn->deadline_ms = sup_now_ms() + CTL_WORKER_TIMEOUT_MS;
	/* Nothing more to read; HUP/ERR still arrive and tell us when the client gave up. */
	conn_events(c, cn, 0);
}

static void
handle_line(ctl_t *c, ctl_conn_t *cn, size_t len)
{
	json_error_t je;
	json_t *req = json_loadb(cn->in, len, 0, &je);

	if (req == NULL) {
		reply_error(c, cn, "bad request: %s", je.text);
		return;
	}
	if (!json_is_object(req))
		reply_error(c, cn, "bad request: expected one JSON object");
	else
		dispatch(c, cn, req);
	json_decref(req);
}

static void
conn_read(ctl_t *c, ctl_conn_t *cn)
{
	for (;;) {
		ssize_t n = recv(cn->fd, cn->in + cn->in_len, sizeof(cn->in) - cn->in_len, 0);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			conn_close(c, cn);
			return;
		}
		if (n == 0) {
			/* A client that half-closes without a newline still gets its answer. */
			if (cn->in_len > 0)
				handle_line(c, cn, cn->in_len);
			else
				conn_close(c, cn);
			return;
		}
		nl = memchr(cn->in + cn->in_len, '\n', (size_t)n);
		cn->in_len += (size_t)n;
		if (nl) {
			handle_line(c, cn, (size_t)(nl - cn->in));
			return;
		}
		if (cn->in_len == sizeof(cn->in)) {
			reply_error(c, cn, "request longer than %d bytes", CTL_LINE_MAX);
			return;
		}
	}
}

static void
on_accept(ctl_t *c)
{
	for (;;) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;
		ctl_conn_t *cn;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn(errno, "accept on the control socket");
			return;
		}
		for (i = 0; i < CTL_MAX_CONNS && c->conns[i].st != CONN_FREE; i++)
			;
		if (i == CTL_MAX_CONNS) {
			static const char busy[] = "{\"error\":\"too many control connections\"}\n";

			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		cn = &c->conns[i];
		cn->fd = fd;
		cn->gen++;
		cn->st = CONN_READ;
		cn->in_len = 0;
		cn->deadline_ms = sup_now_ms() + CTL_IO_TIMEOUT_MS;
		{
			struct epoll_event ev = { .events = EPOLLIN,
				.data.u64 = SUP_TAG(SUP_EV_CTL_CONN, cn->gen, i) };

			if (epoll_ctl(c->s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
				log_warn(errno, "epoll_ctl (control connection)");
				close(fd);
				cn->fd = -1;
				cn->st = CONN_FREE;
			}
		}
	}
}

void
ctl_on_event(ctl_t *c, uint64_t tag, uint32_t events)
{
	uint32_t idx = SUP_TAG_IDX(tag);
	ctl_conn_t *cn;

	if (SUP_TAG_KIND(tag) == SUP_EV_CTL_LISTEN) {
		on_accept(c);
		return;
	}
	if (idx >= CTL_MAX_CONNS)
		return;
	cn = &c->conns[idx];
	if (cn->st == CONN_FREE || (cn->gen & 0xffffffu) != SUP_TAG_GEN(tag))
		return;
	switch (cn->st) {
	case CONN_READ:
		conn_read(c, cn);
		break;
	case CONN_WAIT:
		if (events & (EPOLLHUP | EPOLLERR))
			conn_close(c, cn);
		break;
	case CONN_WRITE:
		conn_flush(c, cn);
		break;
	default:
		break;
	}
}

static ctl_conn_t *
find_request(ctl_t *c, uint32_t seq)
{
	for (int i = 0; i < CTL_MAX_CONNS; i++)
		if (c->conns[i].st == CONN_WAIT && c->conns[i].seq == seq)
			return &c->conns[i];
	return NULL;
}

void
ctl_on_reply(ctl_t *c, int k, uint32_t seq, const char *payload, uint32_t len)
{
	ctl_conn_t *cn = find_request(c, seq);
	json_error_t je;
	json_t *r;

	if (cn == NULL || !cn->asked[k]) {
		log_debug("late or unexpected control reply %u from worker %d ignored", seq, k);
		return;
	}
	cn->asked[k] = false;
	cn->waiting--;
	r = json_loadb(payload, len, 0, &je);
	if (!json_is_object(r)) {
		log_warn(0, "worker %d sent an invalid control reply: %s", k, r ? "not an object" : je.text);
		add_error(cn, "worker %d sent an invalid reply", k);
		json_decref(r);
	} else {
		cn->reply[k] = r;
	}
	if (cn->waiting == 0)
		finish(c, cn);
}

void
ctl_worker_down(ctl_t *c, int k)
{
	if (c == NULL)
		return;
	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		ctl_conn_t *cn = &c->conns[i];

		if (cn->st != CONN_WAIT || !cn->asked[k])
			continue;
		cn->asked[k] = false;
		cn->waiting--;
		add_error(cn, "worker %d exited before answering", k);
		if (cn->waiting == 0)
			finish(c, cn);
	}
}

uint64_t
ctl_next_deadline(const ctl_t *c)
{
	uint64_t next = UINT64_MAX;

	for (int i = 0; i < CTL_MAX_CONNS; i++)
		if (c->conns[i].st != CONN_FREE && c->conns[i].deadline_ms < next)
			next = c->conns[i].deadline_ms;
	return next;
}

void
ctl_on_timer(ctl_t *c, uint64_t now_ms)
{
	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		ctl_conn_t *cn = &c->conns[i];

		if (cn->st == CONN_FREE || cn->deadline_ms > now_ms)
			continue;
		if (cn->st != CONN_WAIT) {
			conn_close(c, cn);
			continue;
		}
		for (int k = 0; k < c->s->n_workers; k++) {
			if (cn->asked[k]) {
				cn->asked[k] = false;
				add_error(cn, "worker %d did not answer", k);
			}
		}
		cn->waiting = 0;
		finish(c, cn);
	}
}

/*
 * ringmqctl.c — operator CLI for a running ringmqd.
 *
 * Connects to the control socket, sends one JSON request line, reads the one JSON reply line and prints it
 * either as aligned text (default) or raw (--json). Exit status: 0 success, 1 error reply / partial answer /
 * cannot connect, 2 usage error. The protocol is in supervisor/ctl.h and docs/operations.md.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "build_config.h"
#include "config.h"
#include "passwd.h"
#include "cred.h"

/* The broker answers within 2 s (its own worker timeout); leave room for a loaded machine. */
#define REPLY_TIMEOUT_MS 10000
/* live and ready are answered at once from the supervisor's own records: no answer within this is a stuck
 * supervisor, and a probe must say so before the orchestrator's own timeout. */
#define PROBE_TIMEOUT_MS 3000
#define REPLY_MAX (64u * 1024u * 1024u)

static const char usage_text[] =
	"Usage: ringmqctl [--socket PATH] [--json] COMMAND\n"
	"\n"
	"Commands:\n"
	"  status                 broker summary: version, pid, uptime, listener, workers, connections\n"
	"  workers                one line per worker: pid, state, restarts, slot range, uptime, connections\n"
	"  clients [--worker K]   connected clients (all workers, or worker K)\n"
	"  client ID              details of one client\n"
	"  kick ID                disconnect a client\n"
	"  stats                  counters: total and per worker\n"
	"  cluster                the cluster as this node sees it: nodes and their heartbeats, interest, Kafka\n"
	"  shutdown               graceful shutdown of the broker\n"
	"  reload                 reload TLS certificates and CRL, password and ACL files (as SIGHUP)\n"
	"  live                   liveness probe: exit 0 when the supervisor and every worker loop answer\n"
	"  ready                  readiness probe: exit 0 when every worker accepts clients, the store is\n"
	"                         reachable (store = redis) and the cluster state is read (cluster = kafka)\n"
	"  tls reload             the same\n"
	"  passwd [-c] FILE USER  add a user to a password file or change its password (no broker needed;\n"
	"                         ringmqctl passwd --help)\n"
	"  cred add|set|list|del  PostgreSQL credentials, written directly (ringmqctl cred --help)\n"
	"\n"
	"Options:\n"
	"  -s, --socket PATH      control socket (default: $RINGMQ_CONTROL_SOCKET, else %s)\n"
	"  -j, --json             print the broker's JSON reply as is\n"
	"  -h, --help             this text\n"
	"  -V, --version          print the version\n"
	"\n"
	"Exit status: 0 success, 1 error reply or partial answer or broker unreachable, 2 usage error.\n";

typedef struct opts {
	const char *socket;
	bool json;
	const char *cmd;
	const char *id;
	long worker;          /* -1: all */
} opts_t;

/* ---- text tables ---------------------------------------------------------------------------------- */

typedef struct table {
	size_t ncols, nrows, cap;
	char **cells;         /* row-major, nrows * ncols */
} table_t;

static void
table_reserve(table_t *t, size_t n)
{
	size_t cap = t->cap ? t->cap : 64;
	char **c;

	if (n <= t->cap)
		return;
	while (cap < n)
		cap *= 2;
	c = realloc(t->cells, cap * sizeof(*c));
	if (c == NULL) {
		fprintf(stderr, "ringmqctl: out of memory\n");
		exit(1);
	}
	t->cells = c;
	t->cap = cap;
}

/* Cell text for any JSON value (malloc'ed). */
static char *
cell_of(json_t *v)
{
	char buf[64];

	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return strdup(buf);
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%.6g", json_real_value(v));
		return strdup(buf);
	case JSON_TRUE:
		return strdup("true");
	case JSON_FALSE:
		return strdup("false");
	case JSON_NULL:
		return strdup("-");
	default:
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	}
}

typedef struct row {
	table_t *t;
	size_t col;
} row_t;

static row_t
row_begin(table_t *t)
{
	return (row_t){ .t = t, .col = 0 };
}

static void
row_cell(row_t *r, char *cell)
{
	table_t *t = r->t;
	size_t at = t->nrows * t->ncols + r->col;

	if (r->col >= t->ncols) {
		free(cell);
		return;
	}
	table_reserve(t, at + 1);
	t->cells[at] = cell ? cell : strdup("");
	r->col++;
}

static void
row_end(row_t *r)
{
	while (r->col < r->t->ncols)
		row_cell(r, strdup(""));
	r->t->nrows++;
}

static bool
numeric(const char *s)
{
	char *end;

	if (*s == '\0')
		return false;
	(void)strtod(s, &end);
	return *end == '\0';
}

/* Print with every column as wide as its widest cell; numbers right-aligned, text left-aligned. */
static void
table_print(table_t *t)
{
	size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof(*w));

	if (w == NULL)
		return;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t n = strlen(t->cells[r * t->ncols + c]);

			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			bool last = c + 1 == t->ncols;

			if (r > 0 && numeric(s))
				printf("%*s%s", (int)w[c], s, last ? "" : "  ");
			else if (last)
				printf("%s", s);
			else
				printf("%-*s  ", (int)w[c], s);
		}
		putchar('\n');
	}
	free(w);
}

static void
table_free(table_t *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

static const char *
str_or(json_t *v, const char *dflt)
{
	const char *s = json_string_value(v);

	return s ? s : dflt;
}

static char *
upper(const char *s)
{
	char *u = strdup(s);

	for (char *p = u; p && *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return u;
}

static char *
duration(json_int_t s)
{
	char buf[64];

	if (s >= 86400)
		snprintf(buf, sizeof(buf), "%lldd%02lldh%02lldm", (long long)(s / 86400), (long long)(s % 86400 / 3600),
			(long long)(s % 3600 / 60));
	else if (s >= 3600)
		snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds", (long long)(s / 3600), (long long)(s % 3600 / 60),
			(long long)(s % 60));
	else if (s >= 60)
		snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(buf, sizeof(buf), "%llds", (long long)s);
	return strdup(buf);
}

/* ---- one printer per command ------------------------------------------------------------------------ */

static void
print_kv(json_t *obj)
{
	const char *key;
	json_t *v;
	int w = 0;

	json_object_foreach(obj, key, v)
		if ((int)strlen(key) > w)
			w = (int)strlen(key);
	json_object_foreach(obj, key, v) {
		char *c = cell_of(v);

		printf("%-*s  %s\n", w + 1, key, c ? c : "");
		free(c);
	}
}

static void
print_status(json_t *r)
{
	json_int_t up = json_integer_value(json_object_get(r, "uptime_s"));
	char *d = duration(up);

	printf("version:      %s\n", str_or(json_object_get(r, "version"), "?"));
	printf("pid:          %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(r, "pid")));
	printf("uptime:       %s\n", d ? d : "?");
	printf("listen:       %s\n", str_or(json_object_get(r, "listen"), "?"));
	if (*str_or(json_object_get(r, "tls_listen"), ""))
		printf("tls listen:   %s\n", str_or(json_object_get(r, "tls_listen"), ""));
	printf("workers:      %" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT " up)\n",
		json_integer_value(json_object_get(r, "workers")), json_integer_value(json_object_get(r, "workers_up")));
	printf("connections:  %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(r, "connections")));
	free(d);
}

static void
print_workers(json_t *r)
{
	static const char *const head[] = { "ID", "PID", "STATE", "RESTARTS", "SLOTS", "UPTIME", "CONNECTIONS" };
	table_t t = { .ncols = 7 };
	row_t row = row_begin(&t);
	json_t *w;
	size_t i;

	for (i = 0; i < 7; i++)
		row_cell(&row, strdup(head[i]));
	row_end(&row);
	json_array_foreach(json_object_get(r, "workers"), i, w) {
		json_t *slots = json_object_get(w, "slots");
		char buf[48];

		row = row_begin(&t);
		row_cell(&row, cell_of(json_object_get(w, "id")));
		row_cell(&row, cell_of(json_object_get(w, "pid")));
		row_cell(&row, cell_of(json_object_get(w, "state")));
		row_cell(&row, cell_of(json_object_get(w, "restarts")));
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT "-%" JSON_INTEGER_FORMAT,
			json_integer_value(json_array_get(slots, 0)), json_integer_value(json_array_get(slots, 1)));
		row_cell(&row, strdup(buf));
		row_cell(&row, duration(json_integer_value(json_object_get(w, "uptime_s"))));
		row_cell(&row, cell_of(json_object_get(w, "connections")));
		row_end(&row);
	}
	table_print(&t);
	table_free(&t);
}

/* Columns: the union of the client objects' keys in first-seen order, "id" first. */
static void
print_clients(json_t *r)
{
	json_t *list = json_object_get(r, "clients"), *cols = json_array(), *c, *v;
	table_t t = { 0 };
	const char *key;
	size_t i, j;
	row_t row;

	json_array_append_new(cols, json_string("id"));
	json_array_foreach(list, i, c) {
		json_object_foreach(c, key, v) {
			bool seen = false;

			json_array_foreach(cols, j, v)
				seen |= strcmp(json_string_value(v), key) == 0;
			if (!seen)
				json_array_append_new(cols, json_string(key));
		}
	}
	t.ncols = json_array_size(cols);
	row = row_begin(&t);
	json_array_foreach(cols, j, v)
		row_cell(&row, upper(json_string_value(v)));
	row_end(&row);
	json_array_foreach(list, i, c) {
		row = row_begin(&t);
		json_array_foreach(cols, j, v) {
			json_t *f = json_object_get(c, json_string_value(v));

			row_cell(&row, f ? cell_of(f) : strdup("-"));
		}
		row_end(&row);
	}
	if (json_array_size(list) > 0)
		table_print(&t);
	printf("%zu client%s\n", json_array_size(list), json_array_size(list) == 1 ? "" : "s");
	table_free(&t);
	json_decref(cols);
}

/* The Kafka process's counters, on one line (cluster = kafka only). */
static void
print_kafka(json_t *k)
{
	const char *key;
	json_t *v;

	if (!json_is_object(k))
		return;
	printf("kafka:");
	json_object_foreach(k, key, v)
		printf(" %s %" JSON_INTEGER_FORMAT, key, json_integer_value(v));
	printf("\n");
}

/* One row per counter, one column per worker plus the total. */
static void
print_stats(json_t *r)
{
	json_t *total = json_object_get(r, "total"), *workers = json_object_get(r, "workers"), *w, *v;
	table_t t = { .ncols = 2 + json_array_size(workers) };
	const char *key;
	char buf[32];
	row_t row;
	size_t i;

	row = row_begin(&t);
	row_cell(&row, strdup("COUNTER"));
	row_cell(&row, strdup("TOTAL"));
	json_array_foreach(workers, i, w) {
		snprintf(buf, sizeof(buf), "W%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(w, "worker")));
		row_cell(&row, strdup(buf));
	}
	row_end(&row);
	json_object_foreach(total, key, v) {
		row = row_begin(&t);
		row_cell(&row, strdup(key));
		row_cell(&row, cell_of(v));
		json_array_foreach(workers, i, w) {
			json_t *f = json_object_get(w, key);

			row_cell(&row, f ? cell_of(f) : strdup("-"));
		}
		row_end(&row);
	}
	table_print(&t);
	table_free(&t);
	print_kafka(json_object_get(r, "kafka"));
}

static void
print_cluster(json_t *r)
{
	json_t *nodes = json_object_get(r, "nodes"), *n;
	size_t i;

	printf("node %" JSON_INTEGER_FORMAT ": interest %" JSON_INTEGER_FORMAT " filters own, %" JSON_INTEGER_FORMAT
		" from other nodes; %" JSON_INTEGER_FORMAT " records waiting for Kafka, %" JSON_INTEGER_FORMAT
		" inbox records being handled%s\n", json_integer_value(json_object_get(r, "node")),
		json_integer_value(json_object_get(r, "own_filters")),
		json_integer_value(json_object_get(r, "remote_filters")),
		json_integer_value(json_object_get(r, "kafka_pending")),
		json_integer_value(json_object_get(r, "inbox_unhandled")),
		json_is_true(json_object_get(r, "caught_up")) ? "" : " (still reading the cluster state)");
	json_array_foreach(nodes, i, n) {
		printf("  node %-3" JSON_INTEGER_FORMAT " %-5s heartbeat %" JSON_INTEGER_FORMAT " ms ago, %"
			JSON_INTEGER_FORMAT " filters%s%s\n", json_integer_value(json_object_get(n, "node")),
			json_is_true(json_object_get(n, "alive")) ? "alive" : "dead",
			json_integer_value(json_object_get(n, "heartbeat_age_ms")),
			json_integer_value(json_object_get(n, "filters")),
			json_is_true(json_object_get(n, "adopted_here")) ? ", adopted here" : "",
			json_is_true(json_object_get(n, "self")) ? " (this node)" : "");
	}
	print_kafka(json_object_get(r, "kafka"));
}

/* live / ready: one line, exit status 0 only when the flag of that name is true. */
static int
print_probe(const char *cmd, json_t *r)
{
	json_t *problems = json_object_get(r, "problems"), *e;
	size_t i;

	if (json_is_true(json_object_get(r, cmd))) {
		printf("%s\n", cmd);
		return 0;
	}
	printf("not %s", cmd);
	json_array_foreach(problems, i, e)
		printf("%s %s", i ? ";" : ":", str_or(e, "?"));
	printf("\n");
	return 1;
}

/* Human output for a successful reply; returns the exit status. */
static int
print_human(const opts_t *o, json_t *r)
{
	if (strcmp(o->cmd, "status") == 0) {
		print_status(r);
	} else if (strcmp(o->cmd, "workers") == 0) {
		print_workers(r);
	} else if (strcmp(o->cmd, "clients") == 0) {
		print_clients(r);
	} else if (strcmp(o->cmd, "client") == 0) {
		json_t *c = json_object_get(r, "client");

		if (json_is_object(c) && json_object_get(c, "worker") == NULL && json_object_get(r, "worker"))
			json_object_set(c, "worker", json_object_get(r, "worker"));
		print_kv(json_is_object(c) ? c : r);
	} else if (strcmp(o->cmd, "kick") == 0) {
		if (!json_is_true(json_object_get(r, "kicked"))) {
			fprintf(stderr, "ringmqctl: client '%s' is not connected\n", o->id);
			return 1;
		}
		printf("kicked client '%s' (worker %" JSON_INTEGER_FORMAT ")\n", o->id,
			json_integer_value(json_object_get(r, "worker")));
	} else if (strcmp(o->cmd, "stats") == 0) {
		print_stats(r);
	} else if (strcmp(o->cmd, "cluster") == 0) {
		print_cluster(r);
	} else if (strcmp(o->cmd, "shutdown") == 0) {
		printf("ringmqd is shutting down\n");
	} else if (strcmp(o->cmd, "reload") == 0) {
		printf("reload requested: each worker logs what it reloaded\n");
	} else if (strcmp(o->cmd, "live") == 0 || strcmp(o->cmd, "ready") == 0) {
		return print_probe(o->cmd, r);
	}
	return 0;
}

/* ---- transport ---------------------------------------------------------------------------------------- */

/* Send the request, return the reply text (malloc'ed, NUL-terminated) or NULL after printing the error. */
static char *
roundtrip(const char *path, const char *req, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = 0, cap = 4096, off = 0, reqlen = strlen(req);
	char *buf = NULL;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ringmqctl: cannot connect to %s: path too long (is ringmqd running? use --socket)\n",
			path);
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "ringmqctl: cannot connect to %s: %s (is ringmqd running? use --socket)\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (off < reqlen) {
		ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "ringmqctl: cannot send to %s: %s\n", path, strerror(errno));
			goto err;
		}
		off += (size_t)n;
	}
	buf = malloc(cap);
	if (buf == NULL)
		goto err;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int pr = poll(&p, 1, timeout_ms);

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0) {
			fprintf(stderr, "ringmqctl: no reply from %s within %d ms\n", path, timeout_ms);
			goto err;
		}
		if (len + 1 >= cap) {
			char *nb;

			if (cap >= REPLY_MAX) {
				fprintf(stderr, "ringmqctl: reply from %s too large\n", path);
				goto err;
			}
			nb = realloc(buf, cap * 2);
			if (nb == NULL)
				goto err;
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "ringmqctl: cannot read from %s: %s\n", path, strerror(errno));
			goto err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (memchr(buf + len - (size_t)n, '\n', (size_t)n))
			break;
	}
	close(fd);
	if (len == 0) {
		fprintf(stderr, "ringmqctl: %s closed the connection without a reply\n", path);
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
err:
	free(buf);
	close(fd);
	return NULL;
}

/* ---- arguments ---------------------------------------------------------------------------------------- */

static int __attribute__((format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ringmqctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see ringmqctl --help)\n");
	return 2;
}

/* Option value from "--opt=VALUE" or the next argument. NULL if missing. */
static const char *
opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static bool
is_opt(const char *arg, const char *lng, const char *shrt)
{
	size_t n = strlen(lng);

	return strcmp(arg, shrt) == 0 || strcmp(arg, lng) == 0 || (strncmp(arg, lng, n) == 0 && arg[n] == '=');
}

static int
parse_args(int argc, char **argv, opts_t *o, const char *default_socket)
{
	const char *pos[3] = { NULL, NULL, NULL };
	int npos = 0;

	o->worker = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf(usage_text, default_socket);
			exit(0);
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("ringmqctl %s\n", RINGMQ_VERSION);
			exit(0);
		} else if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (is_opt(a, "--socket", "-s")) {
			o->socket = opt_value(argc, argv, &i, "--socket");
			if (o->socket == NULL || o->socket[0] == '\0')
				return usage_error("%s needs a path", a);
		} else if (is_opt(a, "--worker", "-w")) {
			const char *v = opt_value(argc, argv, &i, "--worker");
			char *end;

			if (v == NULL)
				return usage_error("%s needs a worker number", a);
			errno = 0;
			o->worker = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || errno || o->worker < 0 || o->worker >= 65536)
				return usage_error("--worker: '%s' is not a worker number", v);
		} else if (a[0] == '-' && a[1] != '\0' && npos == 0) {
			return usage_error("unknown option '%s'", a);
		} else if (npos < 3) {
			pos[npos++] = a;
		} else {
			return usage_error("unexpected argument '%s'", a);
		}
	}
	if (npos == 0)
		return usage_error("%s", "missing command: status, workers, clients, client, kick, stats, live, ready, shutdown or cred");
	o->cmd = pos[0];
	if (strcmp(o->cmd, "client") == 0 || strcmp(o->cmd, "kick") == 0) {
		if (npos != 2)
			return usage_error("'%s' needs exactly one client ID", o->cmd);
		o->id = pos[1];
	} else if (strcmp(o->cmd, "tls") == 0) {
		if (npos != 2 || strcmp(pos[1], "reload") != 0)
			return usage_error("%s", "'tls' takes one subcommand: reload");
		o->cmd = "reload";
	} else if (strcmp(o->cmd, "status") == 0 || strcmp(o->cmd, "workers") == 0 ||
		   strcmp(o->cmd, "clients") == 0 || strcmp(o->cmd, "stats") == 0 || strcmp(o->cmd, "cluster") == 0 ||
		   strcmp(o->cmd, "shutdown") == 0 || strcmp(o->cmd, "reload") == 0 || strcmp(o->cmd, "live") == 0 ||
		   strcmp(o->cmd, "ready") == 0) {
		if (npos != 1)
			return usage_error("unexpected argument '%s'", pos[1]);
	} else {
		return usage_error("unknown command '%s'", o->cmd);
	}
	if (o->worker >= 0 && strcmp(o->cmd, "clients") != 0)
		return usage_error("%s", "--worker only goes with 'clients'");
	return 0;
}

int
main(int argc, char **argv)
{
	static config_t defaults;
	opts_t o = { 0 };
	json_t *req, *rep, *errs;
	json_error_t je;
	char *text, *line;
	bool probe;
	int rc;

	/* Local commands: they have options of their own and talk to no broker (cred talks to PostgreSQL). */
	if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
		return passwd_main(argc - 1, argv + 1);
	if (cred_is_command(argc, argv))
		return cred_main(argc, argv);
	config_defaults(&defaults);
	rc = parse_args(argc, argv, &o, defaults.control_socket);
	if (rc)
		return rc;
	probe = strcmp(o.cmd, "live") == 0 || strcmp(o.cmd, "ready") == 0;
	if (o.socket == NULL)
		o.socket = getenv("RINGMQ_CONTROL_SOCKET");
	if (o.socket == NULL || o.socket[0] == '\0')
		o.socket = defaults.control_socket;

	req = json_pack("{ss}", "cmd", o.cmd);
	if (o.id)
		json_object_set_new(req, "id", json_string(o.id));
	if (o.worker >= 0)
		json_object_set_new(req, "worker", json_integer(o.worker));
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (text == NULL)
		return 1;
	line = malloc(strlen(text) + 2);
	if (line == NULL) {
		free(text);
		return 1;
	}
	sprintf(line, "%s\n", text);
	free(text);
	text = roundtrip(o.socket, line, probe ? PROBE_TIMEOUT_MS : REPLY_TIMEOUT_MS);
	free(line);
	if (text == NULL)
		return 1;

	rep = json_loads(text, JSON_DISABLE_EOF_CHECK, &je);
	if (!json_is_object(rep)) {
		fprintf(stderr, "ringmqctl: invalid reply from %s: %s\n", o.socket, rep ? "not an object" : je.text);
		json_decref(rep);
		free(text);
		return 1;
	}
	rc = 0;
	if (o.json) {
		fputs(text, stdout);
		if (text[strlen(text) - 1] != '\n')
			putchar('\n');
		rc = json_object_get(rep, "error") || json_array_size(json_object_get(rep, "errors")) > 0 ||
			(strcmp(o.cmd, "kick") == 0 && !json_is_true(json_object_get(rep, "kicked"))) ||
			(probe && !json_is_true(json_object_get(rep, o.cmd)));
	} else if (json_object_get(rep, "error")) {
		json_t *e = json_object_get(rep, "error");
		char *c = cell_of(e);

		fprintf(stderr, "ringmqctl: %s\n", c ? c : "error");
		free(c);
		rc = 1;
	} else {
		rc = print_human(&o, rep);
		errs = json_object_get(rep, "errors");
		if (json_array_size(errs) > 0) {
			size_t i;
			json_t *e;

			json_array_foreach(errs, i, e)
				fprintf(stderr, "ringmqctl: warning: %s\n", str_or(e, "?"));
			rc = 1;
		}
	}
	json_decref(rep);
	free(text);
	return rc;
}

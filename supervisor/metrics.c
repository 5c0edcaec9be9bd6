/*
 * metrics.c — gathering the workers' counters and serving them to Prometheus (see metrics.h).
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "build_config.h"
#include "chan.h"
#include "ctl.h"
#include "hist.h"
#include "log.h"
#include "sup.h"
#include "systopic.h"

#if HAVE_MICROHTTPD
#include <microhttpd.h>
#endif

/* Scrapes waiting for a gather at once; more are answered from the snapshot as it is. */
#define METRICS_MAX_SUSPENDED 16

struct metrics {
	struct sup *s;
	/* The gather in flight. */
	bool busy;
	uint32_t gen;
	uint32_t seq;
	uint64_t deadline_ms;
	int waiting;
	bool asked[WORKER_MAX + 1];
	json_t *pending[WORKER_MAX + 1];
	/* The last complete gather. */
	json_t *snap[WORKER_MAX + 1];
	uint64_t snap_ms;
#if HAVE_MICROHTTPD
	struct MHD_Daemon *d;
	int epoll_fd;
	struct MHD_Connection *suspended[METRICS_MAX_SUSPENDED];
	int n_suspended;
#endif
};

/* Scrape states kept in MHD's per-request pointer. */
static char scrape_waited;

/* --- configuration --------------------------------------------------------------------------------------- */

static int
parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
		return 0;
	}
	return -1;
}

int
metrics_check_config(const config_t *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (!cfg->metrics_port)
		return 0;
#if !HAVE_MICROHTTPD
	log_error(0, "config: metrics_port is set but this ringmqd was built without libmicrohttpd (-Dmetrics); "
		"set metrics_port = 0 or rebuild with libmicrohttpd-dev installed");
	return -1;
#endif
	if (parse_addr(cfg->metrics_address, cfg->metrics_port, &ss, &len) < 0) {
		log_error(0, "config: metrics_address '%s' is not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1)",
			cfg->metrics_address);
		return -1;
	}
	return 0;
}

/* --- gathering ------------------------------------------------------------------------------------------- */

static void
drop_pending(metrics_t *m)
{
	for (int k = 0; k <= WORKER_MAX; k++) {
		json_decref(m->pending[k]);
		m->pending[k] = NULL;
		m->asked[k] = false;
	}
	m->waiting = 0;
}

#if HAVE_MICROHTTPD
static void
resume_scrapes(metrics_t *m)
{
	if (!m->n_suspended)
		return;
	for (int i = 0; i < m->n_suspended; i++)
		MHD_resume_connection(m->suspended[i]);
	m->n_suspended = 0;
	/* Answer them in this turn rather than on the next wakeup. */
	(void)MHD_run(m->d);
}
#else
static void resume_scrapes(metrics_t *m) { (void)m; }
#endif

/* Every asked process answered (or the deadline passed): the replies become the snapshot. */
static void
complete(metrics_t *m)
{
	for (int k = 0; k <= WORKER_MAX; k++) {
		json_decref(m->snap[k]);
		m->snap[k] = m->pending[k];
		m->pending[k] = NULL;
		m->asked[k] = false;
	}
	m->waiting = 0;
	m->busy = false;
	m->snap_ms = sup_now_ms();
	resume_scrapes(m);
	systopic_on_snapshot(m->s->systopic);
}

void
metrics_gather(metrics_t *m)
{
	static const char req_worker[] = "{\"cmd\":\"stats\",\"metrics\":true}";
	static const char req_kafka[] = "{\"cmd\":\"cluster\"}";
	struct sup *s = m->s;

	if (m->busy || s->stopping)
		return;
	drop_pending(m);
	m->gen++;
	m->seq = METRICS_SEQ_BIT | (m->gen & ~METRICS_SEQ_BIT);
	for (int k = 0; k < s->n_procs; k++) {
		const char *req = k < s->n_workers ? req_worker : req_kafka;

		if (s->w[k].pid <= 0 || s->w[k].ctl_fd < 0)
			continue;
		if (sup_send(s, k, CHAN_CTL_REQ, k, m->seq, req, (uint32_t)strlen(req), -1, false) == 0) {
			m->asked[k] = true;
			m->waiting++;
		}
	}
	m->busy = true;
	m->deadline_ms = sup_now_ms() + CTL_WORKER_TIMEOUT_MS;
	if (m->waiting == 0)
		complete(m);
}

bool
metrics_on_reply(metrics_t *m, int k, uint32_t seq, const char *payload, uint32_t len)
{
	json_t *r;

	if (!(seq & METRICS_SEQ_BIT))
		return false;
	if (!m->busy || seq != m->seq || !m->asked[k])
		return true; /* a reply that came after its gather's deadline */
	m->asked[k] = false;
	m->waiting--;
	r = json_loadb(payload, len, 0, NULL);
	if (json_is_object(r))
		m->pending[k] = r;
	else
		json_decref(r);
	if (m->waiting == 0)
		complete(m);
	return true;
}

void
metrics_worker_down(metrics_t *m, int k)
{
	if (m == NULL || !m->busy || !m->asked[k])
		return;
	m->asked[k] = false;
	if (--m->waiting == 0)
		complete(m);
}

const json_t *
metrics_stats(const metrics_t *m, int k)
{
	json_t *st = m->snap[k] ? json_object_get(m->snap[k], "stats") : NULL;

	return json_is_object(st) ? st : NULL;
}

const json_t *
metrics_kafka(const metrics_t *m)
{
	const struct sup *s = m->s;
	json_t *kf;

	if (s->n_procs == s->n_workers || m->snap[s->n_workers] == NULL)
		return NULL;
	kf = json_object_get(m->snap[s->n_workers], "kafka");
	return json_is_object(kf) ? kf : NULL;
}

uint64_t
metrics_snapshot_ms(const metrics_t *m)
{
	return m->snap_ms;
}

/* --- exposition ------------------------------------------------------------------------------------------ */

typedef struct out {
	char *p;
	size_t len, cap;
	bool oom;
} out_t;

static void __attribute__((format(printf, 2, 3)))
put(out_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->oom)
		return;
	if (o->cap == 0) {
		o->p = malloc(16384);
		if (o->p == NULL) {
			o->oom = true;
			return;
		}
		o->cap = 16384;
	}
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = true;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		{
			size_t cap = (o->cap + (size_t)n + 1) * 2;
			char *p = realloc(o->p, cap);

			if (p == NULL) {
				o->oom = true;
				return;
			}
			o->p = p;
			o->cap = cap;
		}
	}
}

enum fam_kind { F_KEY, F_OFFLINE };

/* One series of a family per worker: the value of a stats key (F_KEY), with an extra label or none. Rows
 * with the same name follow each other; HELP and TYPE are written once per name. */
typedef struct fam {
	const char *name;
	const char *type;
	const char *help;
	enum fam_kind kind;
	const char *key;
	const char *label;
} fam_t;

#define G "gauge"
#define C "counter"
static const fam_t fams[] = {
	{ "ringmq_connections", G, "Clients connected (sessions with a live connection).", F_KEY, "connections", NULL },
	{ "ringmq_sockets", G, "Open client sockets, including those not past CONNECT yet.", F_KEY, "sockets", NULL },
	{ "ringmq_sessions", G, "Sessions held, by state (offline: persistent sessions without a connection).", F_KEY,
	  "connections", "state=\"online\"" },
	{ "ringmq_sessions", G, NULL, F_OFFLINE, NULL, "state=\"offline\"" },
	{ "ringmq_subscriptions", G, "Subscriptions of the worker's sessions.", F_KEY, "subscriptions", NULL },
	{ "ringmq_retained_messages", G, "Retained messages (every worker holds the full set).", F_KEY, "retained",
	  NULL },
	{ "ringmq_queued_messages", G, "Messages queued in sessions, not yet in flight.", F_KEY, "queued", NULL },
	{ "ringmq_queued_messages_largest_session", G, "Messages queued in the worker's largest session queue.", F_KEY,
	  "queued_largest_session", NULL },
	{ "ringmq_store_pending_operations", G, "Store operations sent to Redis and not yet answered.", F_KEY,
	  "store_pending", NULL },
	{ "ringmq_mesh_outstanding_frames", G, "Frames sent to other workers and not yet acknowledged.", F_KEY,
	  "mesh_outstanding", NULL },
	{ "ringmq_messages_received_total", C, "PUBLISH packets accepted from clients, by QoS.", F_KEY, "msgs_in_qos0",
	  "qos=\"0\"" },
	{ "ringmq_messages_received_total", C, NULL, F_KEY, "msgs_in_qos1", "qos=\"1\"" },
	{ "ringmq_messages_received_total", C, NULL, F_KEY, "msgs_in_qos2", "qos=\"2\"" },
	{ "ringmq_messages_sent_total", C, "PUBLISH packets written to clients, by the QoS they were sent with.", F_KEY,
	  "msgs_out_qos0", "qos=\"0\"" },
	{ "ringmq_messages_sent_total", C, NULL, F_KEY, "msgs_out_qos1", "qos=\"1\"" },
	{ "ringmq_messages_sent_total", C, NULL, F_KEY, "msgs_out_qos2", "qos=\"2\"" },
	{ "ringmq_received_bytes_total", C, "Bytes read from client sockets (after TLS decryption).", F_KEY, "bytes_in",
	  NULL },
	{ "ringmq_sent_bytes_total", C, "Bytes written to client sockets (before TLS encryption).", F_KEY, "bytes_out",
	  NULL },
	{ "ringmq_messages_dropped_total", C, "Messages dropped, by cause.", F_KEY, "dropped_queue_full",
	  "cause=\"queue_full\"" },
	{ "ringmq_messages_dropped_total", C, NULL, F_KEY, "dropped_expired", "cause=\"expired\"" },
	{ "ringmq_messages_dropped_total", C, NULL, F_KEY, "dropped_too_large", "cause=\"too_large\"" },
	{ "ringmq_messages_dropped_total", C, NULL, F_KEY, "dropped_no_subscriber", "cause=\"no_subscriber\"" },
	{ "ringmq_messages_dropped_total", C, NULL, F_KEY, "dropped_qos0_outbuf", "cause=\"qos0_outbuf\"" },
	{ "ringmq_connections_closed_total", C, "Connections closed by the broker, by cause.", F_KEY, "closed_outbuf",
	  "cause=\"outbuf\"" },
	{ "ringmq_connections_closed_total", C, NULL, F_KEY, "closed_nomem", "cause=\"nomem\"" },
	{ "ringmq_connections_closed_total", C, NULL, F_KEY, "closed_connect_timeout", "cause=\"connect_timeout\"" },
	{ "ringmq_connections_rejected_total", C, "Connections refused before CONNECT, by cause.", F_KEY,
	  "rejected_max_conn", "cause=\"max_connections\"" },
	{ "ringmq_connections_rejected_total", C, NULL, F_KEY, "rejected_address", "cause=\"address\"" },
	{ "ringmq_connects_total", C, "Successful CONNECTs.", F_KEY, "connects", NULL },
	{ "ringmq_disconnects_total", C, "Connections of sessions that ended.", F_KEY, "disconnects", NULL },
	{ "ringmq_protocol_errors_total", C, "Connections closed for a protocol error.", F_KEY, "protocol_errors", NULL },
	{ "ringmq_store_operations_total", C, "Store operations sent to Redis.", F_KEY, "store_ops", NULL },
	{ "ringmq_store_batches_total", C, "Store batches (one script call each) sent to Redis.", F_KEY, "store_batches",
	  NULL },
	{ "ringmq_store_errors_total", C, "Store batches that failed (connection or Redis error).", F_KEY,
	  "store_errors", NULL },
	{ "ringmq_store_retries_total", C, "Store batches sent again.", F_KEY, "store_retries", NULL },
	{ "ringmq_store_failed_operations_total", C, "Store operations refused for good (quarantined, waiter failed).",
	  F_KEY, "store_failed_ops", NULL },
	{ "ringmq_store_quarantined_total", C, "Stored messages that could not be decoded, set aside.", F_KEY,
	  "store_quarantined", NULL },
	{ "ringmq_store_dropped_total", C, "Messages the store dropped (queue bound reached in the script).", F_KEY,
	  "store_dropped", NULL },
	{ "ringmq_postgresql_queries_total", C, "Credential lookups sent to PostgreSQL.", F_KEY, "pg_queries", NULL },
	{ "ringmq_postgresql_cache_hits_total", C, "Credential lookups answered from the worker's cache.", F_KEY,
	  "pg_cache_hits", NULL },
	{ "ringmq_postgresql_errors_total", C, "PostgreSQL errors.", F_KEY, "pg_errors", NULL },
	{ "ringmq_postgresql_reconnects_total", C, "PostgreSQL reconnections.", F_KEY, "pg_reconnects", NULL },
	{ "ringmq_postgresql_notifies_total", C, "PostgreSQL NOTIFY messages (credential changes) received.", F_KEY,
	  "pg_notifies", NULL },
};

/* The Kafka process's counters (cluster = kafka), no worker label. */
static const struct {
	const char *name, *type, *help, *key;
} kafka_fams[] = {
	{ "ringmq_kafka_produced_records_total", C, "Records produced to Kafka.", "produced" },
	{ "ringmq_kafka_produced_bytes_total", C, "Bytes of the records produced.", "produced_bytes" },
	{ "ringmq_kafka_acknowledged_records_total", C, "Records Kafka acknowledged.", "acknowledged" },
	{ "ringmq_kafka_errors_total", C, "Records Kafka refused for good.", "errors" },
	{ "ringmq_kafka_pending_records", G, "Records produced and not yet acknowledged.", "pending" },
	{ "ringmq_kafka_consumed_records_total", C, "Inbox records consumed.", "consumed" },
	{ "ringmq_kafka_consumed_bytes_total", C, "Bytes of the inbox records consumed.", "consumed_bytes" },
	{ "ringmq_kafka_consumer_lag_records", G, "Inbox records not consumed yet (this node's and adopted inboxes).",
	  "lag" },
	{ "ringmq_kafka_commit_errors_total", C, "Offset commits that failed.", "commit_errors" },
	{ "ringmq_kafka_inbox_reassigns_total", C, "Inbox partitions assigned again after a stall.", "inbox_reassigns" },
};
#undef G
#undef C

/* Stats keys not exported under their own name: msgs_in/msgs_out are the sums of the per-QoS series. */
static const char *const skipped_keys[] = { "msgs_in", "msgs_out" };

static bool
known_key(const char *key)
{
	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++)
		if (fams[i].key && strcmp(fams[i].key, key) == 0)
			return true;
	for (size_t i = 0; i < sizeof(skipped_keys) / sizeof(skipped_keys[0]); i++)
		if (strcmp(skipped_keys[i], key) == 0)
			return true;
	return false;
}

static bool
value_of(const json_t *st, const char *key, json_int_t *v)
{
	json_t *j = json_object_get(st, key);

	if (!json_is_integer(j))
		return false;
	*v = json_integer_value(j);
	return true;
}

static void
header(out_t *o, const char *name, const char *help, const char *type)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
render_fams(const metrics_t *m, out_t *o)
{
	int n = m->s->n_workers;

	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		const fam_t *f = &fams[i];

		if (f->help)
			header(o, f->name, f->help, f->type);
		for (int k = 0; k < n; k++) {
			const json_t *st = metrics_stats(m, k);
			json_int_t v, conns;

			if (st == NULL)
				continue;
			if (f->kind == F_OFFLINE) {
				if (!value_of(st, "sessions", &v) || !value_of(st, "connections", &conns))
					continue;
				v = v > conns ? v - conns : 0;
			} else if (!value_of(st, f->key, &v)) {
				continue;
			}
			put(o, "%s{worker=\"%d\"%s%s} %lld\n", f->name, k, f->label ? "," : "", f->label ? f->label : "",
				(long long)v);
		}
	}
}

/* The workers' counters (worker.h WK_STATS: counters only, never gauges). Those the table above does not name
 * (added to WK_STATS later, auth, TLS, handoffs...) are exported as ringmq_<name>_total, so that every counter
 * of `ringmqctl stats` reaches Prometheus. */
#define WK_NAME(name) #name,
static const char *const wk_counters[] = { WK_STATS(WK_NAME) };
#undef WK_NAME

static void
render_other_counters(const metrics_t *m, out_t *o)
{
	for (size_t i = 0; i < sizeof(wk_counters) / sizeof(wk_counters[0]); i++) {
		const char *key = wk_counters[i];
		char name[128];

		if (known_key(key) || snprintf(name, sizeof(name), "ringmq_%s_total", key) >= (int)sizeof(name))
			continue;
		put(o, "# HELP %s Worker counter %s (as in ringmqctl stats).\n# TYPE %s counter\n", name, key, name);
		for (int k = 0; k < m->s->n_workers; k++) {
			const json_t *st = metrics_stats(m, k);
			json_int_t n;

			if (st && value_of(st, key, &n))
				put(o, "%s{worker=\"%d\"} %lld\n", name, k, (long long)n);
		}
	}
}

static void
render_hist(const metrics_t *m, out_t *o, const char *name, const char *help, const char *which)
{
	header(o, name, help, "histogram");
	for (int k = 0; k < m->s->n_workers; k++) {
		json_t *h = m->snap[k] ? json_object_get(json_object_get(m->snap[k], "hist"), which) : NULL;
		json_t *b = json_object_get(h, "buckets");
		uint64_t cum = 0;

		if (!json_is_array(b) || json_array_size(b) != HIST_BUCKETS + 1)
			continue;
		for (unsigned i = 0; i <= HIST_BUCKETS; i++) {
			cum += (uint64_t)json_integer_value(json_array_get(b, i));
			if (i < HIST_BUCKETS)
				put(o, "%s_bucket{worker=\"%d\",le=\"%g\"} %llu\n", name, k, hist_bounds_us[i] / 1e6,
					(unsigned long long)cum);
			else
				put(o, "%s_bucket{worker=\"%d\",le=\"+Inf\"} %llu\n", name, k, (unsigned long long)cum);
		}
		put(o, "%s_sum{worker=\"%d\"} %.6f\n", name, k,
			(double)json_integer_value(json_object_get(h, "sum_us")) / 1e6);
		put(o, "%s_count{worker=\"%d\"} %llu\n", name, k, (unsigned long long)cum);
	}
}

static void
render_sup(const metrics_t *m, out_t *o)
{
	const struct sup *s = m->s;
	uint64_t now = sup_now_ms();

	header(o, "ringmq_build_info", "Version of this ringmqd (value 1).", "gauge");
	put(o, "ringmq_build_info{version=\"%s\"} 1\n", RINGMQ_VERSION);
	header(o, "ringmq_uptime_seconds", "Seconds since the supervisor started.", "gauge");
	put(o, "ringmq_uptime_seconds %.3f\n", (double)(now - s->start_ms) / 1000.0);
	header(o, "ringmq_workers", "Worker processes configured.", "gauge");
	put(o, "ringmq_workers %d\n", s->n_workers);
	header(o, "ringmq_worker_up", "1 while the worker is serving, 0 while it starts, restarts or stops.", "gauge");
	for (int k = 0; k < s->n_workers; k++)
		put(o, "ringmq_worker_up{worker=\"%d\"} %d\n", k, s->w[k].state == SUP_W_UP);
	header(o, "ringmq_worker_answered", "1 when the worker answered the gather behind this scrape.", "gauge");
	for (int k = 0; k < s->n_workers; k++)
		put(o, "ringmq_worker_answered{worker=\"%d\"} %d\n", k, metrics_stats(m, k) != NULL);
	header(o, "ringmq_worker_restarts_total", "Times the supervisor restarted the worker after it died.", "counter");
	for (int k = 0; k < s->n_workers; k++)
		put(o, "ringmq_worker_restarts_total{worker=\"%d\"} %u\n", k, s->w[k].restarts);
	header(o, "ringmq_stats_age_seconds", "Age of the gathered counters this scrape shows.", "gauge");
	put(o, "ringmq_stats_age_seconds %.3f\n", m->snap_ms ? (double)(now - m->snap_ms) / 1000.0 : 0.0);
}

char *
metrics_render(const metrics_t *m, size_t *len)
{
	const json_t *kf = metrics_kafka(m);
	out_t o = { 0 };

	render_sup(m, &o);
	render_fams(m, &o);
	render_other_counters(m, &o);
	render_hist(m, &o, "ringmq_puback_latency_seconds",
		"PUBLISH (QoS 1/2) read from the publisher to its PUBACK/PUBREC written.", "puback");
	render_hist(m, &o, "ringmq_delivery_latency_seconds",
		"PUBLISH (QoS 1/2) read from the publisher to a subscriber's PUBACK/PUBREC read (live deliveries).",
		"e2e");
	for (size_t i = 0; kf && i < sizeof(kafka_fams) / sizeof(kafka_fams[0]); i++) {
		json_int_t v;

		if (!value_of(kf, kafka_fams[i].key, &v))
			continue;
		header(&o, kafka_fams[i].name, kafka_fams[i].help, kafka_fams[i].type);
		put(&o, "%s %lld\n", kafka_fams[i].name, (long long)v);
	}
	if (o.oom || o.p == NULL) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}

/* --- HTTP ------------------------------------------------------------------------------------------------ */

#if HAVE_MICROHTTPD
static enum MHD_Result
respond(struct MHD_Connection *c, unsigned status, char *body, size_t len, const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	char *body = strdup(text);

	return body ? respond(c, status, body, strlen(text), "text/plain; charset=utf-8") : MHD_NO;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
	const char *upload, size_t *upload_len, void **state)
{
	metrics_t *m = cls;
	char *body;
	size_t len;

	(void)version;
	(void)upload;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
	if (*upload_len) {
		*upload_len = 0; /* a GET with a body: ignored */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return respond_text(c, MHD_HTTP_NOT_FOUND, "ringmq: the metrics are at /metrics\n");
	/* First call: a snapshot older than METRICS_FRESH_MS is gathered again, and the scrape waits for it. */
	if (*state == NULL && (m->snap_ms == 0 || sup_now_ms() - m->snap_ms >= METRICS_FRESH_MS) &&
	    m->n_suspended < METRICS_MAX_SUSPENDED && !m->s->stopping) {
		metrics_gather(m);
		if (m->busy) {
			*state = &scrape_waited;
			m->suspended[m->n_suspended++] = c;
			MHD_suspend_connection(c);
			return MHD_YES;
		}
	}
	body = metrics_render(m, &len);
	if (body == NULL)
		return MHD_NO;
	return respond(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_warn(0, "metrics http: %s", line);
}

static int
start_http(metrics_t *m, const config_t *cfg)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	const union MHD_DaemonInfo *info;
	int fd, one = 1;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

	if (parse_addr(cfg->metrics_address, cfg->metrics_port, &ss, &slen) < 0) {
		log_error(0, "config: metrics_address '%s' is not an IPv4 or IPv6 address", cfg->metrics_address);
		m->s->exit_code = 2;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error(errno, "metrics: socket");
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		log_error(e, "cannot listen on metrics_address %s port %u%s", cfg->metrics_address,
			(unsigned)cfg->metrics_port, e == EADDRNOTAVAIL ? " (not an address of this host)" : "");
		if (e == EADDRNOTAVAIL)
			m->s->exit_code = 2;
		close(fd);
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* No MHD_USE_INTERNAL_POLLING_THREAD: MHD runs only inside MHD_run, called by the supervisor's loop. */
	m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
		MHD_OPTION_END);
	if (m->d == NULL) {
		log_error(0, "metrics: cannot start the HTTP server (libmicrohttpd) on %s port %u", cfg->metrics_address,
			(unsigned)cfg->metrics_port);
		close(fd);
		return -1;
	}
	info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
	m->epoll_fd = info ? info->epoll_fd : -1;
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = SUP_TAG(SUP_EV_METRICS, 0, 0) };

		if (m->epoll_fd < 0 || epoll_ctl(m->s->epfd, EPOLL_CTL_ADD, m->epoll_fd, &ev) < 0) {
			log_error(errno, "metrics: epoll_ctl");
			return -1;
		}
	}
	log_info("metrics: Prometheus endpoint on http://%s%s%s:%u/metrics", ss.ss_family == AF_INET6 ? "[" : "",
		cfg->metrics_address, ss.ss_family == AF_INET6 ? "]" : "", (unsigned)cfg->metrics_port);
	return 0;
}
#endif

int
metrics_create(metrics_t **out, struct sup *s)
{
	metrics_t *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (m == NULL) {
		log_error(ENOMEM, "metrics");
		return -1;
	}
	m->s = s;
#if HAVE_MICROHTTPD
	m->epoll_fd = -1;
	if (s->cfg->metrics_port && start_http(m, s->cfg) < 0) {
		metrics_destroy(m);
		return -1;
	}
#endif
	*out = m;
	return 0;
}

void
metrics_destroy(metrics_t *m)
{
	if (m == NULL)
		return;
#if HAVE_MICROHTTPD
	if (m->d) {
		/* MHD refuses to stop with suspended connections: let them go first. */
		for (int i = 0; i < m->n_suspended; i++)
			MHD_resume_connection(m->suspended[i]);
		m->n_suspended = 0;
		if (m->epoll_fd >= 0)
			(void)epoll_ctl(m->s->epfd, EPOLL_CTL_DEL, m->epoll_fd, NULL);
		MHD_stop_daemon(m->d);
	}
#endif
	drop_pending(m);
	for (int k = 0; k <= WORKER_MAX; k++)
		json_decref(m->snap[k]);
	free(m);
}

void
metrics_on_event(metrics_t *m)
{
#if HAVE_MICROHTTPD
	if (m->d)
		(void)MHD_run(m->d);
#else
	(void)m;
#endif
}

uint64_t
metrics_next_deadline(const metrics_t *m)
{
	uint64_t next = m->busy ? m->deadline_ms : UINT64_MAX;

#if HAVE_MICROHTTPD
	MHD_UNSIGNED_LONG_LONG t;

	if (m->d && MHD_get_timeout(m->d, &t) == MHD_YES && sup_now_ms() + t < next)
		next = sup_now_ms() + t;
#endif
	return next;
}

void
metrics_on_timer(metrics_t *m, uint64_t now_ms)
{
	if (m->busy && now_ms >= m->deadline_ms) {
		for (int k = 0; k <= WORKER_MAX; k++)
			m->asked[k] = false;
		complete(m);
	}
#if HAVE_MICROHTTPD
	{
		MHD_UNSIGNED_LONG_LONG t;

		/* Connection timeouts: MHD_run closes idle connections once their time is up. */
		if (m->d && MHD_get_timeout(m->d, &t) == MHD_YES && t == 0)
			(void)MHD_run(m->d);
	}
#endif
}

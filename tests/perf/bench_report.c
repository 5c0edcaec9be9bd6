/*
 * bench_report.c — ringmq-bench output (see bench_report.h).
 */
#include "bench_report.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "bench_tls.h"
#include "mqtt.h"

#define MS(ns) ((double)(ns) / 1e6)

static const char *
version_name(uint8_t v)
{
	return v == MQTT_V5 ? "5" : v == MQTT_V31 ? "3.1" : "3.1.1";
}

static bool
connect_mode(const bench_result_t *r)
{
	return r->cfg->mode == BENCH_MODE_CONNECT;
}

static const char *
verdict(const bench_result_t *r)
{
	if (r->setup_failed)
		return "setup-failed";
	if (connect_mode(r) && r->win.cycles == 0 && !r->interrupted)
		return "no-connects";
	if (r->tot.lost > 0)
		return "lost";
	if (r->interrupted)
		return "interrupted";
	return "ok";
}

int
report_status(const bench_result_t *r)
{
	if (r->tot.lost > 0)
		return 1;
	if (r->setup_failed || r->interrupted || (connect_mode(r) && r->win.cycles == 0))
		return 2;
	return 0;
}

void
report_interval(FILE *fp, double t, double secs, const bconn_interval_t *iv, uint32_t subs_up, uint32_t pubs_up,
	uint32_t pairs, uint64_t inflight, uint64_t outstanding)
{
	if (secs <= 0)
		secs = 1;
	fprintf(fp,
		"[%7.1fs] conns %u+%u/%u  sent %.1f/s  acked %.1f/s  recv %.1f/s  e2e ms p50 %.3f p99 %.3f max %.3f"
		"  ack ms p50 %.3f p99 %.3f  inflight %llu unreceived %llu\n",
		t, subs_up, pubs_up, 2 * pairs, (double)iv->sent / secs, (double)iv->acked / secs,
		(double)iv->received / secs, MS(hist_percentile(&iv->e2e, 50)), MS(hist_percentile(&iv->e2e, 99)),
		MS(iv->e2e.max), MS(hist_percentile(&iv->ack, 50)), MS(hist_percentile(&iv->ack, 99)),
		(unsigned long long)inflight, (unsigned long long)outstanding);
	fflush(fp);
}

void
report_interval_connect(FILE *fp, double t, double secs, const bconn_interval_t *iv, bool tls,
	uint64_t connect_errors)
{
	if (secs <= 0)
		secs = 1;
	fprintf(fp, "[%7.1fs] connects %.1f/s", t, (double)iv->cycles / secs);
	if (tls)
		fprintf(fp, " (full %.1f/s, resumed %.1f/s)  handshake ms p50 %.3f p99 %.3f",
			(double)(iv->cycles - iv->resumed) / secs, (double)iv->resumed / secs,
			MS(hist_percentile(&iv->handshake, 50)), MS(hist_percentile(&iv->handshake, 99)));
	fprintf(fp, "  connack ms p50 %.3f p99 %.3f  connect errors %llu\n", MS(hist_percentile(&iv->connack, 50)),
		MS(hist_percentile(&iv->connack, 99)), (unsigned long long)connect_errors);
	fflush(fp);
}

/* "H:P" for each broker, comma-separated, into buf (truncated to cap). */
static const char *
brokers_str(const bench_cfg_t *c, char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < c->brokers.n && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s:%u", i ? "," : "", c->brokers.a[i].host,
			ntohs(c->brokers.a[i].sa.sin_port));
	return buf;
}

static void
print_lat(FILE *fp, const char *name, const hist_t *h)
{
	if (h->count == 0) {
		fprintf(fp, "  %-8s latency ms: no samples\n", name);
		return;
	}
	fprintf(fp, "  %-8s latency ms: avg %.3f  p50 %.3f  p95 %.3f  p99 %.3f  max %.3f  (n=%llu)\n", name,
		hist_mean(h) / 1e6, MS(hist_percentile(h, 50)), MS(hist_percentile(h, 95)),
		MS(hist_percentile(h, 99)), MS(h->max), (unsigned long long)h->count);
}

static void
print_lossy_pairs(FILE *fp, const bench_result_t *r)
{
	unsigned shown = 0;

	for (uint32_t ti = 0; ti < r->nthreads; ti++) {
		const bconn_thread_t *t = r->threads[ti];

		for (uint32_t j = 0; j < bconn_npairs(t) && shown < 10; j++) {
			const bstat_pair_t *p = bconn_pair(t, j);
			uint32_t seqs[8];
			size_t n;

			if (p->outstanding == 0)
				continue;
			n = bstat_pair_lost_list(p, seqs, 8);
			fprintf(fp, "    pair %u: sent %u acked %u received %u lost %llu, first lost seq:",
				r->cfg->first_pair + j * r->nthreads + ti, p->sent, p->acked, p->received,
				(unsigned long long)bstat_pair_lost(p));
			for (size_t k = 0; k < n; k++)
				fprintf(fp, " %u", seqs[k]);
			fputc('\n', fp);
			shown++;
		}
	}
}

static void
print_tls(FILE *fp, const bench_result_t *r)
{
	char why[256];

	if (r->cfg->tls == NULL)
		return;
	fprintf(fp, "  TLS%s: handshakes full %llu  resumed %llu  errors %llu", r->tls_resume ? " (resumption on)" : "",
		(unsigned long long)r->tls_full, (unsigned long long)r->tls_resumed,
		(unsigned long long)r->tls_errors);
	if (r->tls_errors > 0) {
		btls_describe(r->last_tls_err, r->last_tls_verify, why, sizeof(why));
		fprintf(fp, "  (last: %s)", why);
	}
	fputc('\n', fp);
}

static void
print_connect(FILE *fp, const bench_result_t *r, const char *brokers)
{
	const bench_cfg_t *c = r->cfg;
	double w = r->window_s > 0 ? r->window_s : 1;
	uint64_t full = r->win.cycles - r->win.resumed;

	fprintf(fp, "\n== ringmq-bench report (connect loop) ==\n");
	fprintf(fp, "  broker%s %s  MQTT %s  clients %u  threads %u  %s%s%s\n", c->brokers.n > 1 ? "s" : "",
		brokers, version_name(c->version), c->pairs, c->threads, c->tls ? "TLS" : "plain TCP",
		c->tls && r->tls_resume ? " with resumption" : "", c->username ? ", user name and password" : "");
	fprintf(fp, "  warmup %.1f s  measured %.1f s\n", (double)c->warmup_ns / 1e9, r->window_s);
	fprintf(fp, "  window: connects %llu (%.1f/s)", (unsigned long long)r->win.cycles, (double)r->win.cycles / w);
	if (c->tls)
		fprintf(fp, "  full handshakes %llu (%.1f/s)  resumed %llu (%.1f/s)", (unsigned long long)full,
			(double)full / w, (unsigned long long)r->win.resumed, (double)r->win.resumed / w);
	fputc('\n', fp);
	if (c->tls)
		print_lat(fp, "tls", &r->win.handshake);
	print_lat(fp, "connack", &r->win.connack);
	fprintf(fp, "  connect errors %llu  CONNACKs refused %llu  disconnects %llu  protocol errors %llu",
		(unsigned long long)r->connect_errors, (unsigned long long)r->refused,
		(unsigned long long)r->disconnects, (unsigned long long)r->proto_errors);
	if (r->connect_errors > 0 && r->last_errno != 0)
		fprintf(fp, "  (last: %s)", strerror(r->last_errno));
	fputc('\n', fp);
	print_tls(fp, r);
	fprintf(fp, "RESULT: %s (%.1f connects/s)\n", verdict(r), (double)r->win.cycles / w);
	fflush(fp);
}

void
report_print(FILE *fp, const bench_result_t *r)
{
	const bench_cfg_t *c = r->cfg;
	const bstat_totals_t *t = &r->tot;
	double w = r->window_s > 0 ? r->window_s : 1;
	char brokers[BADDR_MAX * 24];

	brokers_str(c, brokers, sizeof(brokers));
	if (connect_mode(r)) {
		print_connect(fp, r, brokers);
		return;
	}
	fprintf(fp, "\n== ringmq-bench report ==\n");
	fprintf(fp, "  broker%s %s  MQTT %s  QoS %u  pairs %u  rate %g/s per publisher  payload %u B  threads %u\n",
		c->brokers.n > 1 ? "s" : "", brokers, version_name(c->version), c->qos, c->pairs, c->rate, c->payload,
		c->threads);
	if (c->brokers.n > 1)
		fprintf(fp, "  pair i: publisher on broker i mod %u, subscriber on (i + %u) mod %u\n", c->brokers.n,
			c->sub_offset, c->brokers.n);
	fprintf(fp, "  warmup %.1f s  measured %.1f s  offline %.1f s  drain %s in %.2f s\n",
		(double)c->warmup_ns / 1e9, r->window_s, (double)c->offline_ns / 1e9,
		r->drained ? "complete" : "TIMED OUT", r->drain_s);
	fprintf(fp, "  ramp: subscribers %.2f s, publishers %.2f s; connect errors %llu, disconnects %llu, "
		"sessions lost %llu\n", r->ramp_subs_s, r->ramp_pubs_s, (unsigned long long)r->connect_errors,
		(unsigned long long)r->disconnects, (unsigned long long)r->session_lost);
	fprintf(fp, "  reconnects: publishers %llu  subscribers %llu;  unacked on disconnect %llu (forgotten, not lost)"
		"  received after a reconnect %llu\n", (unsigned long long)r->reconnects_pub,
		(unsigned long long)r->reconnects_sub, (unsigned long long)r->unacked_on_disconnect,
		(unsigned long long)r->received_after_reconnect);
	fprintf(fp, "  window: sent %llu (%.1f/s)  acked %llu (%.1f/s)  received %llu (%.1f/s)  "
		"throughput in+out %.1f msg/s\n", (unsigned long long)r->win.sent, (double)r->win.sent / w,
		(unsigned long long)r->win.acked, (double)r->win.acked / w, (unsigned long long)r->win.received,
		(double)r->win.received / w, (double)(r->win.sent + r->win.received) / w);
	print_lat(fp, "e2e", &r->win.e2e);
	if (c->qos > 0)
		print_lat(fp, c->qos == 2 ? "pubrec" : "puback", &r->win.ack);
	fprintf(fp, "  whole run: sent %llu  acked %llu  received %llu  lost %llu  unreceived %llu  duplicates %llu"
		"  out of order %llu\n", (unsigned long long)t->sent, (unsigned long long)t->acked,
		(unsigned long long)t->received, (unsigned long long)t->lost, (unsigned long long)t->missing,
		(unsigned long long)t->dups, (unsigned long long)t->ooo);
	if (r->skipped || r->proto_errors || r->sub_refused || r->foreign || t->bogus || r->inflight_end)
		fprintf(fp, "  skipped publishes %llu  protocol errors %llu  refused subscriptions %llu  foreign "
			"messages %llu  bogus seqs %llu  unacked at end %llu\n", (unsigned long long)r->skipped,
			(unsigned long long)r->proto_errors, (unsigned long long)r->sub_refused,
			(unsigned long long)r->foreign, (unsigned long long)t->bogus,
			(unsigned long long)r->inflight_end);
	print_tls(fp, r);
	if (r->refused > 0)
		fprintf(fp, "  CONNACKs refused %llu\n", (unsigned long long)r->refused);
	if (t->lost > 0) {
		fprintf(fp, "  %llu pairs lost PUBACKed messages:\n", (unsigned long long)t->pairs_lossy);
		print_lossy_pairs(fp, r);
	}
	fprintf(fp, "RESULT: %s (%llu lost)\n", verdict(r), (unsigned long long)t->lost);
	fflush(fp);
}

static json_t *
lat_json(const hist_t *h)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)h->count,
		"avg", hist_mean(h) / 1e6, "min", h->count ? MS(h->min) : 0.0, "p50", MS(hist_percentile(h, 50)),
		"p95", MS(hist_percentile(h, 95)), "p99", MS(hist_percentile(h, 99)), "max", MS(h->max));
}

static json_t *
pairs_json(const bench_result_t *r)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < r->cfg->pairs; i++) {
		const bconn_thread_t *t = r->threads[i % r->nthreads];
		const bstat_pair_t *p = bconn_pair(t, i / r->nthreads);
		bconn_pair_info_t pi;
		json_t *row;

		bconn_pair_info(t, i / r->nthreads, &pi);
		row = json_pack("{s:i, s:i, s:i, s:i, s:I, s:i, s:i}",
			"pair", (int)(r->cfg->first_pair + i), "sent", (int)p->sent, "acked", (int)p->acked,
			"received", (int)p->received, "lost", (json_int_t)bstat_pair_lost(p), "duplicates", (int)p->dups,
			"out_of_order", (int)p->ooo);
		/* Where each end was at the end (index into config.brokers), and how often it came back. */
		json_object_update_new(row, json_pack("{s:i, s:i, s:i, s:i, s:i}", "pub_broker", (int)pi.pub_addr,
			"sub_broker", (int)pi.sub_addr, "reconnects_pub", (int)pi.reconnects_pub,
			"reconnects_sub", (int)pi.reconnects_sub,
			"received_after_reconnect", (int)pi.received_after_reconnect));
		json_array_append_new(a, row);
	}
	return a;
}

static json_t *
tls_json(const bench_result_t *r)
{
	char why[256] = "";

	if (r->cfg->tls == NULL)
		return json_pack("{s:b}", "enabled", 0);
	if (r->tls_errors > 0)
		btls_describe(r->last_tls_err, r->last_tls_verify, why, sizeof(why));
	return json_pack("{s:b, s:b, s:I, s:I, s:I, s:s}", "enabled", 1, "resume", r->tls_resume,
		"full_handshakes", (json_int_t)r->tls_full, "resumed_handshakes", (json_int_t)r->tls_resumed,
		"errors", (json_int_t)r->tls_errors, "last_error", why);
}

/* Connect-loop figures over the window (all zero in p2p mode; full and resumed zero without TLS). */
static json_t *
connects_json(const bench_result_t *r)
{
	double w = r->window_s > 0 ? r->window_s : 1;
	uint64_t full = r->cfg->tls != NULL ? r->win.cycles - r->win.resumed : 0; /* handshakes: TLS only */

	return json_pack("{s:I, s:f, s:I, s:f, s:I, s:f, s:I, s:o, s:o}", "count", (json_int_t)r->win.cycles,
		"per_s", (double)r->win.cycles / w, "full", (json_int_t)full, "full_per_s", (double)full / w,
		"resumed", (json_int_t)r->win.resumed, "resumed_per_s", (double)r->win.resumed / w,
		"refused", (json_int_t)r->refused, "handshake_ms", lat_json(&r->win.handshake),
		"connack_ms", lat_json(&r->win.connack));
}

int
report_json(const char *path, const bench_result_t *r, bool with_pairs)
{
	const bench_cfg_t *c = r->cfg;
	const bstat_totals_t *t = &r->tot;
	double w = r->window_s > 0 ? r->window_s : 1;
	json_t *root, *brokers = json_array();
	int rc;

	for (uint32_t i = 0; i < c->brokers.n; i++) {
		char one[32];

		snprintf(one, sizeof(one), "%s:%u", c->brokers.a[i].host, ntohs(c->brokers.a[i].sa.sin_port));
		json_array_append_new(brokers, json_string(one));
	}
	root = json_pack("{s:s, s:s, s:s}", "tool", "ringmq-bench", "result", verdict(r), "mode",
		connect_mode(r) ? "connect" : "p2p");
	json_object_set_new(root, "config", json_pack("{s:s, s:i, s:s, s:i, s:i, s:i, s:f, s:i, s:f, s:f, s:f, "
		"s:f, s:f, s:i, s:s, s:s}",
		"host", c->brokers.a[0].host, "port", (int)ntohs(c->brokers.a[0].sa.sin_port),
		"mqtt", version_name(c->version),
		"qos", (int)c->qos, "pairs", (int)c->pairs, "threads", (int)c->threads, "rate", c->rate,
		"payload", (int)c->payload, "warmup_s", (double)c->warmup_ns / 1e9,
		"duration_s", (double)c->duration_ns / 1e9, "offline_s", (double)c->offline_ns / 1e9,
		"drain_s", (double)c->drain_ns / 1e9, "connect_rate", c->connect_rate,
		"max_inflight", (int)c->max_inflight, "pub_topic", c->pub_topic, "sub_topic", c->sub_topic));
	json_object_set_new(json_object_get(root, "config"), "tls", json_boolean(c->tls != NULL));
	json_object_set_new(json_object_get(root, "config"), "username", json_boolean(c->username != NULL));
	/* host and port above are the first broker's: what a one-address run always reported. */
	json_object_set_new(json_object_get(root, "config"), "brokers", brokers);
	json_object_set_new(json_object_get(root, "config"), "sub_offset", json_integer(c->sub_offset));
	json_object_set_new(root, "window", json_pack("{s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:f}",
		"seconds", r->window_s, "sent", (json_int_t)r->win.sent, "acked", (json_int_t)r->win.acked,
		"received", (json_int_t)r->win.received, "sent_per_s", (double)r->win.sent / w,
		"acked_per_s", (double)r->win.acked / w, "received_per_s", (double)r->win.received / w,
		"throughput_per_s", (double)(r->win.sent + r->win.received) / w));
	json_object_set_new(root, "latency_ms", json_pack("{s:o, s:o}", "e2e", lat_json(&r->win.e2e),
		"puback", lat_json(&r->win.ack)));
	json_object_set_new(root, "totals", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"sent", (json_int_t)t->sent, "acked", (json_int_t)t->acked, "received", (json_int_t)t->received,
		"lost", (json_int_t)t->lost, "unreceived", (json_int_t)t->missing,
		"duplicates", (json_int_t)t->dups, "out_of_order", (json_int_t)t->ooo,
		"bogus", (json_int_t)t->bogus, "pairs_with_loss", (json_int_t)t->pairs_lossy,
		"unacked_at_end", (json_int_t)r->inflight_end));
	json_object_set_new(root, "connections", json_pack("{s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"ramp_subscribers_s", r->ramp_subs_s, "ramp_publishers_s", r->ramp_pubs_s,
		"connect_errors", (json_int_t)r->connect_errors, "disconnects", (json_int_t)r->disconnects,
		"sessions_lost", (json_int_t)r->session_lost, "protocol_errors", (json_int_t)r->proto_errors,
		"subscribe_refused", (json_int_t)r->sub_refused, "skipped_publishes", (json_int_t)r->skipped,
		"foreign_messages", (json_int_t)r->foreign, "rlimit_nofile", (json_int_t)r->rlimit_nofile));
	json_object_set_new(json_object_get(root, "connections"), "reconnects_pub",
		json_integer((json_int_t)r->reconnects_pub));
	json_object_set_new(json_object_get(root, "connections"), "reconnects_sub",
		json_integer((json_int_t)r->reconnects_sub));
	json_object_set_new(json_object_get(root, "totals"), "unacked_on_disconnect",
		json_integer((json_int_t)r->unacked_on_disconnect));
	json_object_set_new(json_object_get(root, "totals"), "received_after_reconnect",
		json_integer((json_int_t)r->received_after_reconnect));
	json_object_set_new(root, "drain", json_pack("{s:f, s:b}", "seconds", r->drain_s, "complete",
		r->drained));
	json_object_set_new(root, "connects", connects_json(r));
	json_object_set_new(root, "tls", tls_json(r));
	if (with_pairs)
		json_object_set_new(root, "pairs", pairs_json(r));
	if (strcmp(path, "-") == 0)
		rc = json_dumpf(root, stdout, JSON_INDENT(2)) == 0 ? 0 : -EIO;
	else
		rc = json_dump_file(root, path, JSON_INDENT(2)) == 0 ? 0 : -EIO;
	json_decref(root);
	return rc;
}

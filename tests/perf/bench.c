/*
 * bench.c — ringmq-bench: command line, phases and the report.
 *
 * The main thread never touches a socket: it parses options, raises RLIMIT_NOFILE, starts one engine thread
 * per --threads (bench_conn.c), drives the phases (subscribers, publishers, run, drain, stop) through
 * bench_shared_t, prints a line every --interval from the threads' interval counters and, after joining
 * them, the final report (bench_report.c). Exit status: 0 ok, 1 PUBACKed messages were lost, 2 setup failure.
 * --mode connect skips the ramp and the drain: the clients start cycling at once and the window is measured
 * the same way. The TLS context (bench_tls.h) is made here, once, before any thread starts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_addr.h"
#include "bench_cfg.h"
#include "bench_conn.h"
#include "bench_report.h"
#include "bench_tls.h"
#include "mqtt.h"

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: ringmq-bench [options]\n"
		"Load generator for any MQTT broker: N publisher/subscriber pairs, QoS 1 by default, exact loss,\n"
		"duplicate and ordering accounting per pair, end-to-end and PUBACK latency histograms.\n\n"
		"  --host H             broker address (default 127.0.0.1)\n"
		"  --port P             broker port (default 1883, with --tls 8883)\n"
		"  --brokers H:P[,H:P]  several brokers (IPv4 literals, up to %d; overrides --host/--port): pair i's\n"
		"                       publisher connects to address i mod n, its subscriber to (i + S) mod n; a\n"
		"                       client whose connection is lost (EOF, reset, refused, timeout) tries the\n"
		"                       next address after 100-500 ms. With TLS the server name is the address's\n"
		"                       host unless --tls-servername\n"
		"  --sub-offset S       subscriber placement (default 1 with several brokers: every message crosses\n"
		"                       nodes; 0: publisher and subscriber of a pair on the same node)\n"
		"  --tick-us U          publish timer period in us (default 1000): each tick sends what is due, so at\n"
		"                       low rates a smaller tick means fewer messages arrive at the broker together\n"
		"  --colocate W         ringmqd with W workers: publisher ids get a suffix (-k<j>) that puts them on\n"
		"                       their subscriber's worker, so no message crosses workers (measures the hop)\n"
		"  --crosswise W        the same, on the next worker: every message crosses (the default ids make\n"
		"                       ~90 %% of pairs cross at 2 workers, all at 4 or more: CRC16 is linear)\n"
		"  --mode p2p|connect   p2p: publisher/subscriber pairs (default). connect: --clients clients each\n"
		"                       connect (TCP, TLS, CONNECT/CONNACK), DISCONNECT and reconnect at once, in a\n"
		"                       loop: connects/s and handshakes/s (full and resumed) over the window\n"
		"  --clients N          connect mode: parallel clients (default 1)\n"
		"  --pairs N            publishers and subscribers (default 1)\n"
		"  --rate R             messages/s per publisher, fractional allowed, evenly spread (default 1)\n"
		"  --payload B          payload bytes, >= %d: send time, pair, sequence, run id (default 62)\n"
		"  --qos 0|1|2          QoS of PUBLISH and SUBSCRIBE (default 1)\n"
		"  --mqtt 3.1.1|5       protocol version (default 3.1.1)\n"
		"  --duration S         measured seconds (default 10)\n"
		"  --warmup S           seconds published before measuring, not counted in rates (default 2)\n"
		"  --offline S          mid-run, all subscribers disconnect for S seconds (default 0)\n"
		"  --drain S            after publishing stops, wait up to S s for outstanding messages (default 5)\n"
		"  --connect-rate R     new connections per second while ramping up, 0: unpaced (default 5000)\n"
		"  --max-pending N      connections in handshake at once (default 512)\n"
		"  --connect-timeout S  per-connection CONNECT/SUBSCRIBE timeout, retried after (default 10)\n"
		"  --max-inflight N     unacknowledged PUBLISHes per publisher before skipping (default 1000)\n"
		"  --threads T          engine threads, each with its own io_uring (default 1)\n"
		"  --keepalive S        MQTT keepalive (default 60)\n"
		"  --session-expiry S   MQTT 5 subscriber session expiry (default 3600)\n"
		"  --pub-topic PAT      publish topic, %%d = pair index (default europe/ua/kyiv/%%d/0)\n"
		"  --sub-topic PAT      subscription, %%d = pair index (default europe/ua/kyiv/%%d/+)\n"
		"  --client-prefix S    client id prefix (default rmqb<run id>; ids are PREFIX-s<i>, PREFIX-p<i>)\n"
		"  --username U         MQTT user name; %%i (or %%d) is replaced by the pair or client index\n"
		"  --password P         MQTT password (same replacement)\n"
		"  --tls                TLS (OpenSSL over memory BIOs on the same io_uring loop); the server\n"
		"                       certificate is verified against --cafile and --host (or --tls-servername)\n"
		"  --cafile F           CA certificates (PEM) for the server certificate (default: system store)\n"
		"  --cert F, --key F    client certificate chain and key (PEM): mutual TLS\n"
		"  --tls-resume         every client keeps its TLS session and resumes it when it reconnects\n"
		"  --tls-version V      1.2 or 1.3 only (default: either, 1.3 preferred)\n"
		"  --tls-servername N   name (DNS or IP) the server certificate must carry (default: --host)\n"
		"  --tls-insecure       do not verify the server certificate\n"
		"                       (--cafile, --cert, --key and --tls-* imply --tls)\n"
		"  --no-src-spread      do not bind sources over 127.0.0.0/8 (default: spread when the broker is\n"
		"                       on loopback, so ephemeral ports never run out)\n"
		"  --interval S         periodic line every S seconds (default 10)\n"
		"  --json FILE          write the final report as JSON (\"-\": stdout)\n"
		"  --json-pairs         include one row per pair in the JSON\n"
		"  --markers            print 'MEASURE BEGIN' / 'MEASURE END' lines on stdout (for bench-p2p)\n"
		"  --first-pair K       number pairs from K: several ringmq-bench processes can share one broker\n"
		"                       (--first-pair 0, N, 2N ... with --pairs N) when RLIMIT_NOFILE caps\n"
		"                       one process (default 0)\n"
		"  -h, --help\n\n"
		"Exit status: 0 ok, 1 PUBACKed messages were lost, 2 setup failed or interrupted (connect mode:\n"
		"also when no connection completed in the window).\n",
		BADDR_MAX, BENCH_PAYLOAD_HDR);
}

enum opt_id {
	O_HOST = 256, O_PORT, O_PAIRS, O_RATE, O_PAYLOAD, O_QOS, O_MQTT, O_DURATION, O_WARMUP, O_OFFLINE,
	O_DRAIN, O_CRATE, O_MAXPEND, O_CTIMEOUT, O_INFLIGHT, O_THREADS, O_KEEPALIVE, O_EXPIRY, O_PUBT, O_SUBT,
	O_PREFIX, O_NOSPREAD, O_INTERVAL, O_JSON, O_JSONPAIRS, O_MARKERS, O_FIRST, O_MODE, O_CLIENTS, O_USER,
	O_PASS, O_TLS, O_CAFILE, O_CERT, O_KEY, O_RESUME, O_TLSVER, O_SNI, O_INSECURE, O_BROKERS, O_SUBOFF,
	O_COLOC, O_CROSS, O_TICK,
};

static const struct option long_opts[] = {
	{ "host", required_argument, NULL, O_HOST },
	{ "port", required_argument, NULL, O_PORT },
	{ "pairs", required_argument, NULL, O_PAIRS },
	{ "rate", required_argument, NULL, O_RATE },
	{ "payload", required_argument, NULL, O_PAYLOAD },
	{ "qos", required_argument, NULL, O_QOS },
	{ "mqtt", required_argument, NULL, O_MQTT },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "offline", required_argument, NULL, O_OFFLINE },
	{ "drain", required_argument, NULL, O_DRAIN },
	{ "connect-rate", required_argument, NULL, O_CRATE },
	{ "max-pending", required_argument, NULL, O_MAXPEND },
	{ "connect-timeout", required_argument, NULL, O_CTIMEOUT },
	{ "max-inflight", required_argument, NULL, O_INFLIGHT },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "keepalive", required_argument, NULL, O_KEEPALIVE },
	{ "session-expiry", required_argument, NULL, O_EXPIRY },
	{ "pub-topic", required_argument, NULL, O_PUBT },
	{ "sub-topic", required_argument, NULL, O_SUBT },
	{ "client-prefix", required_argument, NULL, O_PREFIX },
	{ "no-src-spread", no_argument, NULL, O_NOSPREAD },
	{ "interval", required_argument, NULL, O_INTERVAL },
	{ "json", required_argument, NULL, O_JSON },
	{ "json-pairs", no_argument, NULL, O_JSONPAIRS },
	{ "markers", no_argument, NULL, O_MARKERS },
	{ "first-pair", required_argument, NULL, O_FIRST },
	{ "mode", required_argument, NULL, O_MODE },
	{ "clients", required_argument, NULL, O_CLIENTS },
	{ "username", required_argument, NULL, O_USER },
	{ "password", required_argument, NULL, O_PASS },
	{ "tls", no_argument, NULL, O_TLS },
	{ "cafile", required_argument, NULL, O_CAFILE },
	{ "cert", required_argument, NULL, O_CERT },
	{ "key", required_argument, NULL, O_KEY },
	{ "tls-resume", no_argument, NULL, O_RESUME },
	{ "tls-version", required_argument, NULL, O_TLSVER },
	{ "tls-servername", required_argument, NULL, O_SNI },
	{ "tls-insecure", no_argument, NULL, O_INSECURE },
	{ "brokers", required_argument, NULL, O_BROKERS },
	{ "sub-offset", required_argument, NULL, O_SUBOFF },
	{ "colocate", required_argument, NULL, O_COLOC },
	{ "crosswise", required_argument, NULL, O_CROSS },
	{ "tick-us", required_argument, NULL, O_TICK },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

typedef struct opts {
	bench_cfg_t cfg;
	const char *host;
	const char *brokers;     /* --brokers, NULL: --host/--port */
	const char *json;
	bool json_pairs;
	bool markers;
	bool no_spread;
	bool tls;
	bool host_set, port_set, pairs_set, crate_set, pending_set, clients_set, sub_offset_set;
	struct sockaddr_in dst;  /* --host/--port */
	btls_opts_t tls_opts;
} opts_t;

static bool
num(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
		fprintf(stderr, "ringmq-bench: --%s: '%s' is not a number in [%g, %g]\n", name, s, lo, hi);
		return false;
	}
	*out = v;
	return true;
}

static int64_t
secs_ns(double s)
{
	return (int64_t)(s * 1e9);
}

static int
parse_opts(int argc, char **argv, opts_t *o)
{
	bench_cfg_t *c = &o->cfg;
	double v;
	int opt;

	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->dst.sin_family = AF_INET;
	o->dst.sin_port = htons(1883);
	c->pairs = 1;
	c->threads = 1;
	c->rate = 1;
	c->payload = 62;
	c->qos = 1;
	c->version = MQTT_V311;
	c->warmup_ns = secs_ns(2);
	c->duration_ns = secs_ns(10);
	c->drain_ns = secs_ns(5);
	c->interval_ns = secs_ns(10);
	c->connect_timeout_ns = secs_ns(10);
	c->connect_rate = 5000;
	c->max_pending = 512;
	c->max_inflight = 1000;
	c->keepalive = 60;
	c->session_expiry = 3600;
	c->pub_topic = "europe/ua/kyiv/%d/0";
	c->sub_topic = "europe/ua/kyiv/%d/+";

	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		const char *name = opt >= O_HOST ? long_opts[opt - O_HOST].name : "";
		bool ok = true;

		switch (opt) {
		case O_HOST: o->host = optarg; o->host_set = true; break;
		case O_PORT: ok = num(name, optarg, 1, 65535, &v); o->dst.sin_port = htons((uint16_t)v);
			o->port_set = true;
			break;
		case O_PAIRS: ok = num(name, optarg, 1, 10000000, &v); c->pairs = (uint32_t)v; o->pairs_set = true;
			break;
		case O_CLIENTS: ok = num(name, optarg, 1, 10000000, &v); c->pairs = (uint32_t)v; o->clients_set = true;
			break;
		case O_MODE:
			if (strcmp(optarg, "p2p") == 0) {
				c->mode = BENCH_MODE_P2P;
			} else if (strcmp(optarg, "connect") == 0) {
				c->mode = BENCH_MODE_CONNECT;
			} else {
				fprintf(stderr, "ringmq-bench: --mode: p2p or connect\n");
				ok = false;
			}
			break;
		case O_USER: c->username = optarg; break;
		case O_PASS: c->password = optarg; break;
		case O_TLS: o->tls = true; break;
		case O_CAFILE: o->tls = true; o->tls_opts.cafile = optarg; break;
		case O_CERT: o->tls = true; o->tls_opts.certfile = optarg; break;
		case O_KEY: o->tls = true; o->tls_opts.keyfile = optarg; break;
		case O_RESUME: o->tls = true; o->tls_opts.resume = true; break;
		case O_SNI: o->tls = true; o->tls_opts.server_name = optarg; break;
		case O_INSECURE: o->tls = true; o->tls_opts.insecure = true; break;
		case O_TLSVER:
			o->tls = true;
			if (strcmp(optarg, "1.2") == 0) {
				o->tls_opts.version = 12;
			} else if (strcmp(optarg, "1.3") == 0) {
				o->tls_opts.version = 13;
			} else {
				fprintf(stderr, "ringmq-bench: --tls-version: 1.2 or 1.3\n");
				ok = false;
			}
			break;
		case O_RATE: ok = num(name, optarg, 1e-6, 1e6, &c->rate); break;
		case O_PAYLOAD: ok = num(name, optarg, BENCH_PAYLOAD_HDR, 1 << 20, &v); c->payload = (uint32_t)v;
			break;
		case O_QOS: ok = num(name, optarg, 0, 2, &v); c->qos = (uint8_t)v; break;
		case O_MQTT:
			if (strcmp(optarg, "5") == 0 || strcmp(optarg, "5.0") == 0) {
				c->version = MQTT_V5;
			} else if (strcmp(optarg, "3.1.1") == 0 || strcmp(optarg, "3") == 0 ||
				   strcmp(optarg, "4") == 0 || strcmp(optarg, "311") == 0) {
				c->version = MQTT_V311;
			} else {
				fprintf(stderr, "ringmq-bench: --mqtt: 3.1.1 or 5\n");
				ok = false;
			}
			break;
		case O_DURATION: ok = num(name, optarg, 0.001, 1e6, &v); c->duration_ns = secs_ns(v); break;
		case O_WARMUP: ok = num(name, optarg, 0, 1e6, &v); c->warmup_ns = secs_ns(v); break;
		case O_OFFLINE: ok = num(name, optarg, 0, 1e6, &v); c->offline_ns = secs_ns(v); break;
		case O_DRAIN: ok = num(name, optarg, 0, 1e6, &v); c->drain_ns = secs_ns(v); break;
		case O_CRATE: ok = num(name, optarg, 0, 1e9, &c->connect_rate); o->crate_set = true; break;
		case O_MAXPEND: ok = num(name, optarg, 1, 1e7, &v); c->max_pending = (uint32_t)v; o->pending_set = true;
			break;
		case O_CTIMEOUT: ok = num(name, optarg, 0.1, 3600, &v); c->connect_timeout_ns = secs_ns(v); break;
		case O_INFLIGHT: ok = num(name, optarg, 1, 65535, &v); c->max_inflight = (uint32_t)v; break;
		case O_THREADS: ok = num(name, optarg, 1, 1024, &v); c->threads = (uint32_t)v; break;
		case O_KEEPALIVE: ok = num(name, optarg, 0, 65535, &v); c->keepalive = (uint16_t)v; break;
		case O_EXPIRY: ok = num(name, optarg, 0, 4294967295.0, &v); c->session_expiry = (uint32_t)v; break;
		case O_PUBT: c->pub_topic = optarg; break;
		case O_SUBT: c->sub_topic = optarg; break;
		case O_PREFIX:
			if (strlen(optarg) >= sizeof(c->client_prefix)) {
				fprintf(stderr, "ringmq-bench: --client-prefix: at most %zu bytes\n",
					sizeof(c->client_prefix) - 1);
				ok = false;
			}
			snprintf(c->client_prefix, sizeof(c->client_prefix), "%s", optarg);
			break;
		case O_NOSPREAD: o->no_spread = true; break;
		case O_INTERVAL: ok = num(name, optarg, 0.1, 1e6, &v); c->interval_ns = secs_ns(v); break;
		case O_JSON: o->json = optarg; break;
		case O_JSONPAIRS: o->json_pairs = true; break;
		case O_MARKERS: o->markers = true; break;
		case O_FIRST: ok = num(name, optarg, 0, 100000000, &v); c->first_pair = (uint32_t)v; break;
		case O_BROKERS: o->brokers = optarg; break;
		case O_SUBOFF: ok = num(name, optarg, 0, 4294967295.0, &v); c->sub_offset = (uint32_t)v;
			o->sub_offset_set = true;
			break;
		case O_COLOC: ok = num(name, optarg, 1, 1024, &v); c->place_workers = (int)v; c->place_shift = 0; break;
		case O_CROSS: ok = num(name, optarg, 2, 1024, &v); c->place_workers = (int)v; c->place_shift = 1; break;
		case O_TICK: ok = num(name, optarg, 10, 100000, &v); c->tick_us = (uint32_t)v; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (!ok)
			return -1;
	}
	if (optind != argc) {
		fprintf(stderr, "ringmq-bench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* One TLS context per distinct server name: --tls-servername for every address, else each address's own host
 * (--host as given, so a DNS name stays one, when there is no --brokers). */
static int
make_tls(opts_t *o)
{
	bench_cfg_t *c = &o->cfg;
	const char *fixed = o->tls_opts.server_name;
	char err[512];

	for (uint32_t i = 0; i < c->brokers.n; i++) {
		const char *name = fixed ? fixed : o->brokers ? c->brokers.a[i].host : o->host;

		for (uint32_t k = 0; k < i && c->tls_addr[i] == NULL; k++)
			if (fixed != NULL || strcmp(c->brokers.a[k].host, c->brokers.a[i].host) == 0)
				c->tls_addr[i] = c->tls_addr[k];
		if (c->tls_addr[i] != NULL)
			continue;
		o->tls_opts.server_name = name;
		c->tls_addr[i] = btls_ctx_create(&o->tls_opts, err, sizeof(err));
		if (c->tls_addr[i] == NULL) {
			fprintf(stderr, "ringmq-bench: TLS (%s): %s\n", name, err);
			o->tls_opts.server_name = fixed;
			return -1;
		}
	}
	o->tls_opts.server_name = fixed;
	c->tls = c->tls_addr[0];
	return 0;
}

/* Free every TLS context once (addresses may share one). */
static void
free_tls(bench_cfg_t *c)
{
	for (uint32_t i = 0; i < c->brokers.n; i++) {
		bool shared = false;

		for (uint32_t k = 0; k < i; k++)
			shared = shared || c->tls_addr[k] == c->tls_addr[i];
		if (!shared)
			btls_ctx_destroy(c->tls_addr[i]);
	}
	c->tls = NULL;
}

static int
check_cfg(opts_t *o)
{
	bench_cfg_t *c = &o->cfg;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	char buf[256];
	size_t n;
	int r;

	if (c->mode == BENCH_MODE_CONNECT) {
		if (o->pairs_set || c->offline_ns > 0) {
			fprintf(stderr, "ringmq-bench: --mode connect takes --clients, not --pairs or --offline\n");
			return -1;
		}
		/* A closed loop: every client cycles as fast as the broker answers, nothing paces or caps it. */
		if (!o->crate_set)
			c->connect_rate = 0;
		if (!o->pending_set)
			c->max_pending = c->pairs;
	} else if (o->clients_set) {
		fprintf(stderr, "ringmq-bench: --clients is for --mode connect (p2p: --pairs)\n");
		return -1;
	}
	if (o->tls && !o->port_set)
		o->dst.sin_port = htons(8883);
	if (c->password != NULL && c->username == NULL && c->version != MQTT_V5) {
		fprintf(stderr, "ringmq-bench: MQTT 3.1.1 has no password without a user name: add --username\n");
		return -1;
	}
	if (o->tls_opts.keyfile != NULL && o->tls_opts.certfile == NULL) {
		fprintf(stderr, "ringmq-bench: --key needs --cert\n");
		return -1;
	}
	if (c->offline_ns > 0 && c->offline_ns >= c->duration_ns) {
		fprintf(stderr, "ringmq-bench: --offline must be shorter than --duration (it happens mid-run)\n");
		return -1;
	}
	if (c->threads > c->pairs)
		c->threads = c->pairs;
	n = bench_topic(buf, sizeof(buf), c->pub_topic, 0);
	if (n == 0 || n + 1 >= sizeof(buf) || !mqtt_topic_name_valid((const uint8_t *)buf, n)) {
		fprintf(stderr, "ringmq-bench: --pub-topic '%s' is not a valid topic name\n", c->pub_topic);
		return -1;
	}
	n = bench_topic(buf, sizeof(buf), c->sub_topic, 0);
	if (n == 0 || n + 1 >= sizeof(buf) || !mqtt_topic_filter_valid((const uint8_t *)buf, n)) {
		fprintf(stderr, "ringmq-bench: --sub-topic '%s' is not a valid topic filter\n", c->sub_topic);
		return -1;
	}
	if (!strstr(c->pub_topic, "%d") || !strstr(c->sub_topic, "%d"))
		fprintf(stderr, "ringmq-bench: warning: a topic without %%d: pairs share topics, and only a "
			"subscriber's own pair is accounted\n");
	if (o->brokers != NULL) {
		char err[256];

		if (o->host_set || o->port_set)
			fprintf(stderr, "ringmq-bench: warning: --brokers overrides --host and --port\n");
		if (baddr_parse(&c->brokers, o->brokers, err, sizeof(err)) < 0) {
			fprintf(stderr, "ringmq-bench: --brokers: %s\n", err);
			return -1;
		}
	} else {
		r = getaddrinfo(o->host, NULL, &hints, &ai);
		if (r != 0) {
			fprintf(stderr, "ringmq-bench: --host %s: %s\n", o->host, gai_strerror(r));
			return -1;
		}
		o->dst.sin_addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		freeaddrinfo(ai);
		baddr_single(&c->brokers, &o->dst);
	}
	if (!o->sub_offset_set)
		c->sub_offset = c->brokers.n > 1 ? 1 : 0;
	/* Spread sources over 127.0.0.0/8 only when every broker is there: a loopback source cannot reach
	 * another host. */
	c->src_spread = !o->no_spread;
	for (uint32_t i = 0; i < c->brokers.n; i++)
		if ((ntohl(c->brokers.a[i].sa.sin_addr.s_addr) >> 24) != 127)
			c->src_spread = false;
	if (o->tls && make_tls(o) < 0)
		return -1;
	if (c->run_id == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		c->run_id = (uint32_t)(ts.tv_nsec ^ (ts.tv_sec << 8) ^ ((long)getpid() << 16)) | 1;
	}
	/* A unique prefix per run: subscribers use persistent sessions, and a session left by an earlier run
	 * would otherwise deliver its queued messages into this one. */
	if (c->client_prefix[0] == '\0')
		snprintf(c->client_prefix, sizeof(c->client_prefix), "rmqb%08x", c->run_id);
	return 0;
}

/* Two sockets per pair plus the rings, stdio and slack. Raise the soft limit, and the hard one if we may. */
static int
raise_nofile(uint32_t pairs, uint64_t *got)
{
	uint64_t need = 2ull * pairs + 256;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur < need) {
		if (rl.rlim_max < need) {
			struct rlimit up = { need, need };

			if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
				*got = need;
				return 0;
			}
			fprintf(stderr, "ringmq-bench: RLIMIT_NOFILE hard limit %llu is too low for %u pairs "
				"(need %llu): raise it (ulimit -Hn, /etc/security/limits.conf, systemd LimitNOFILE) "
				"or run with CAP_SYS_RESOURCE\n", (unsigned long long)rl.rlim_max, pairs,
				(unsigned long long)need);
			return -EMFILE;
		}
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	*got = rl.rlim_cur;
	return 0;
}

static void
sleep_ns(int64_t ns)
{
	struct timespec ts = { ns / NS_PER_SEC, ns % NS_PER_SEC };

	nanosleep(&ts, NULL);
}

typedef struct runner {
	opts_t *o;
	bench_shared_t *sh;
	bconn_thread_t **th;
	uint32_t n;
	int64_t next_line;
	int64_t last_line;
} runner_t;

static void
sum_ready(const runner_t *r, uint32_t *subs, uint32_t *pubs, uint64_t *inflight, uint64_t *outstanding)
{
	*subs = *pubs = 0;
	*inflight = *outstanding = 0;
	for (uint32_t i = 0; i < r->n; i++) {
		const bconn_progress_t *p = bconn_progress(r->th[i]);

		*subs += atomic_load_explicit(&p->subs_ready, memory_order_relaxed);
		*pubs += atomic_load_explicit(&p->pubs_ready, memory_order_relaxed);
		*inflight += atomic_load_explicit(&p->inflight, memory_order_relaxed);
		*outstanding += atomic_load_explicit(&p->outstanding, memory_order_relaxed);
	}
}

/* Print the periodic line when it is due. t0: publishing start (0: still ramping). */
static void
maybe_line(runner_t *r, int64_t now, int64_t t0)
{
	bconn_interval_t iv;
	uint32_t subs, pubs;
	uint64_t inflight, outstanding;

	if (now < r->next_line)
		return;
	bconn_interval_init(&iv);
	for (uint32_t i = 0; i < r->n; i++)
		bconn_take_interval(r->th[i], &iv);
	if (r->o->cfg.mode == BENCH_MODE_CONNECT) {
		uint64_t errs = 0;

		for (uint32_t i = 0; i < r->n; i++)
			errs += atomic_load_explicit(&bconn_progress(r->th[i])->connect_errors, memory_order_relaxed);
		report_interval_connect(stderr, t0 ? (double)(now - t0) / 1e9 : 0.0,
			(double)(now - r->last_line) / 1e9, &iv, r->o->cfg.tls != NULL, errs);
		r->last_line = now;
		r->next_line = now + r->o->cfg.interval_ns;
		return;
	}
	sum_ready(r, &subs, &pubs, &inflight, &outstanding);
	report_interval(stderr, t0 ? (double)(now - t0) / 1e9 : 0.0, (double)(now - r->last_line) / 1e9, &iv,
		subs, pubs, r->o->cfg.pairs, inflight, outstanding);
	r->last_line = now;
	r->next_line = now + r->o->cfg.interval_ns;
}

static bool
stop_requested(const runner_t *r)
{
	return interrupted || atomic_load(&r->sh->abort);
}

/* Wait until `want` connections of one kind are ready; false on timeout or interruption. */
static bool
wait_ready(runner_t *r, bool subs_kind, int64_t limit)
{
	const bench_cfg_t *c = &r->o->cfg;
	int64_t deadline = bench_now() + limit;

	for (;;) {
		uint32_t subs, pubs;
		uint64_t a, b;
		int64_t now = bench_now();

		sum_ready(r, &subs, &pubs, &a, &b);
		if ((subs_kind ? subs : pubs) >= c->pairs)
			return true;
		if (stop_requested(r))
			return false;
		if (now > deadline) {
			int e = 0;
			uint64_t errs = 0;

			for (uint32_t i = 0; i < r->n; i++) {
				const bconn_progress_t *p = bconn_progress(r->th[i]);

				errs += atomic_load(&p->connect_errors);
				if (atomic_load(&p->last_errno))
					e = atomic_load(&p->last_errno);
			}
			fprintf(stderr, "ringmq-bench: only %u of %u %s connected in time (%llu connect errors%s%s)\n",
				subs_kind ? subs : pubs, c->pairs, subs_kind ? "subscribers" : "publishers",
				(unsigned long long)errs, e ? ", last: " : "", e ? strerror(e) : "");
			return false;
		}
		maybe_line(r, now, 0);
		sleep_ns(10000000);
	}
}

/* From t0 to the end of the window: periodic lines and the MEASURE markers. Returns the end of the window. */
static int64_t
measure(runner_t *r, bench_result_t *res, int64_t t0)
{
	const bench_cfg_t *c = &r->o->cfg;
	int64_t now, t_end = t0 + c->warmup_ns + c->duration_ns;
	bool began = false;

	r->last_line = t0;
	r->next_line = t0 + c->interval_ns;
	while ((now = bench_now()) < t_end && !stop_requested(r)) {
		if (r->o->markers && !began && now >= t0 + c->warmup_ns) {
			began = true;
			printf("MEASURE BEGIN\n");
			fflush(stdout);
		}
		maybe_line(r, now, t0);
		sleep_ns(5000000);
	}
	if (r->o->markers) {
		printf("MEASURE END\n");
		fflush(stdout);
	}
	res->window_s = (double)c->duration_ns / 1e9;
	res->interrupted = stop_requested(r);
	return t_end;
}

static void
collect(const runner_t *r, bench_result_t *res)
{
	bconn_interval_init(&res->win);
	for (uint32_t i = 0; i < r->n; i++) {
		const bconn_thread_t *t = r->th[i];
		const bconn_progress_t *p = bconn_progress(t);

		for (uint32_t j = 0; j < bconn_npairs(t); j++) {
			bconn_pair_info_t pi;

			bstat_totals_add(&res->tot, bconn_pair(t, j));
			bconn_pair_info(t, j, &pi);
			res->received_after_reconnect += pi.received_after_reconnect;
		}
		bconn_interval_merge(&res->win, bconn_window(t));
		res->connect_errors += atomic_load(&p->connect_errors);
		res->disconnects += atomic_load(&p->disconnects);
		res->session_lost += atomic_load(&p->session_lost);
		res->proto_errors += atomic_load(&p->proto_errors);
		res->sub_refused += atomic_load(&p->sub_refused);
		res->skipped += atomic_load(&p->skipped);
		res->inflight_end += atomic_load(&p->inflight);
		res->reconnects_pub += atomic_load(&p->reconnects_pub);
		res->reconnects_sub += atomic_load(&p->reconnects_sub);
		res->unacked_on_disconnect += atomic_load(&p->unacked_on_disconnect);
		res->foreign += bconn_foreign(t);
		res->refused += atomic_load(&p->refused);
		res->tls_full += atomic_load(&p->tls_full);
		res->tls_resumed += atomic_load(&p->tls_resumed);
		res->tls_errors += atomic_load(&p->tls_errors);
		if (atomic_load(&p->last_tls_err) || atomic_load(&p->last_tls_verify)) {
			res->last_tls_err = atomic_load(&p->last_tls_err);
			res->last_tls_verify = atomic_load(&p->last_tls_verify);
		}
		if (atomic_load(&p->last_errno))
			res->last_errno = atomic_load(&p->last_errno);
	}
}

int
main(int argc, char **argv)
{
	static bench_result_t res;
	opts_t o;
	bench_shared_t sh;
	runner_t run;
	struct sigaction sa;
	int64_t t0 = 0, t_end, now, ramp_limit, phase_at;
	uint64_t nofile = 0;
	uint32_t started = 0;
	int rc;

	if (parse_opts(argc, argv, &o) < 0 || check_cfg(&o) < 0)
		return 2;
	if (raise_nofile(o.cfg.pairs, &nofile) < 0)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	memset(&sh, 0, sizeof(sh));
	sh.cfg = &o.cfg;
	atomic_init(&sh.phase, BENCH_PH_SUBS);
	memset(&run, 0, sizeof(run));
	run.o = &o;
	run.sh = &sh;
	run.n = o.cfg.threads;
	run.th = calloc(run.n, sizeof(*run.th));
	if (run.th == NULL)
		return 2;
	res.cfg = &o.cfg;
	res.tls_resume = o.tls_opts.resume;
	res.rlimit_nofile = nofile;
	res.threads = run.th;
	res.nthreads = run.n;
	for (uint32_t i = 0; i < run.n; i++) {
		run.th[i] = bconn_create(&o.cfg, &sh, i);
		if (run.th[i] == NULL) {
			fprintf(stderr, "ringmq-bench: out of memory for thread %u\n", i);
			return 2;
		}
	}
	if (o.cfg.mode == BENCH_MODE_CONNECT) {
		fprintf(stderr, "ringmq-bench: connect loop, %u clients, %u threads, MQTT %s%s%s, client ids %s-c<i>\n",
			o.cfg.pairs, run.n, o.cfg.version == MQTT_V5 ? "5" : "3.1.1", o.cfg.tls ? ", TLS" : "",
			o.tls_opts.resume ? " with resumption" : "", o.cfg.client_prefix);
		/* No ramp: the threads start cycling at their first tick. */
		t0 = bench_now() + 20000000;
		atomic_store(&sh.t_start, t0);
		atomic_store(&sh.phase, BENCH_PH_RUN);
	} else {
		fprintf(stderr, "ringmq-bench: %u pairs, %u threads, MQTT %s QoS %u, %g msg/s per publisher%s, client "
			"ids %s-{s,p}<i>\n", o.cfg.pairs, run.n, o.cfg.version == MQTT_V5 ? "5" : "3.1.1", o.cfg.qos,
			o.cfg.rate, o.cfg.tls ? ", TLS" : "", o.cfg.client_prefix);
	}
	if (o.cfg.brokers.n > 1) {
		fprintf(stderr, "ringmq-bench: %u brokers:", o.cfg.brokers.n);
		for (uint32_t i = 0; i < o.cfg.brokers.n; i++)
			fprintf(stderr, " %s:%u", o.cfg.brokers.a[i].host, ntohs(o.cfg.brokers.a[i].sa.sin_port));
		fprintf(stderr, "; subscriber offset %u\n", o.cfg.sub_offset);
	}
	for (uint32_t i = 0; i < run.n; i++) {
		if ((rc = bconn_start(run.th[i])) != 0) {
			fprintf(stderr, "ringmq-bench: pthread_create: %s\n", strerror(rc));
			res.setup_failed = true;
			break;
		}
		started++;
	}
	/* A ramp gets twice the time the connect rate needs, plus 30 s for retries and a slow broker. */
	ramp_limit = (o.cfg.connect_rate > 0 ? secs_ns(2.0 * o.cfg.pairs / o.cfg.connect_rate) : 0) + secs_ns(30);
	run.last_line = bench_now();
	run.next_line = run.last_line + o.cfg.interval_ns;

	if (o.cfg.mode == BENCH_MODE_CONNECT) {
		if (!res.setup_failed)
			measure(&run, &res, t0);
		goto stop;
	}
	phase_at = bench_now();
	if (!res.setup_failed && !wait_ready(&run, true, ramp_limit))
		res.setup_failed = true;
	res.ramp_subs_s = (double)(bench_now() - phase_at) / 1e9;
	if (!res.setup_failed) {
		phase_at = bench_now();
		atomic_store(&sh.phase, BENCH_PH_PUBS);
		if (!wait_ready(&run, false, ramp_limit))
			res.setup_failed = true;
		res.ramp_pubs_s = (double)(bench_now() - phase_at) / 1e9;
	}
	if (!res.setup_failed) {
		fprintf(stderr, "ringmq-bench: %u subscribers in %.2f s, %u publishers in %.2f s; publishing\n",
			o.cfg.pairs, res.ramp_subs_s, o.cfg.pairs, res.ramp_pubs_s);
		t0 = bench_now() + 20000000; /* the threads pick it up on their next 1 ms tick */
		atomic_store(&sh.t_start, t0);
		atomic_store(&sh.phase, BENCH_PH_RUN);
		t_end = measure(&run, &res, t0);
		/* Drain: publishing has stopped; wait for PUBACKs and deliveries still on their way. QoS 0 has no
		 * acknowledgement to wait for: give deliveries a second. The first 20 ms let every thread's last
		 * tick publish its counters. */
		int64_t drain_limit = o.cfg.qos == 0 && o.cfg.drain_ns > NS_PER_SEC ? NS_PER_SEC : o.cfg.drain_ns;

		sleep_ns(20000000);
		for (;;) {
			uint32_t subs, pubs;
			uint64_t inflight, outstanding;

			now = bench_now();
			sum_ready(&run, &subs, &pubs, &inflight, &outstanding);
			if (o.cfg.qos > 0 && subs == o.cfg.pairs && inflight == 0 && outstanding == 0) {
				res.drained = true;
				break;
			}
			if (now - t_end > drain_limit || stop_requested(&run))
				break;
			maybe_line(&run, now, t0);
			sleep_ns(10000000);
		}
		/* The threads publish their counters every 50 ms: let the last ones land. */
		sleep_ns(60000000);
		res.drain_s = (double)(bench_now() - t_end) / 1e9;
		run.next_line = 0;
		maybe_line(&run, bench_now(), t0);
	}
stop:
	atomic_store(&sh.phase, BENCH_PH_STOP);
	for (uint32_t i = 0; i < started; i++)
		bconn_join(run.th[i]);
	if (atomic_load(&sh.abort))
		res.setup_failed = true;
	collect(&run, &res);
	report_print(stdout, &res);
	if (o.json != NULL && (rc = report_json(o.json, &res, o.json_pairs)) < 0)
		fprintf(stderr, "ringmq-bench: cannot write %s: %s\n", o.json, strerror(-rc));
	rc = report_status(&res);
	for (uint32_t i = 0; i < run.n; i++)
		bconn_destroy(run.th[i]);
	free(run.th);
	free_tls(&o.cfg);
	return rc;
}

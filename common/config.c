/*
 * config.c — broker configuration from defaults, a libconfig file, RINGMQ_* variables and --flags.
 *
 * Every key lives in one table (name, type, offset, range, default, help) so the four sources, validation and
 * --help cannot drift apart: adding a config_t field means adding one row here. All values, defaults
 * included, go through the same text parser, so a default can never be out of its own range unnoticed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libconfig names its handle type config_t, as we name ours: rename theirs for this file only. */
#define config_t libconfig_t
#include <libconfig.h>
#undef config_t

#include "config.h"
#include "log.h"

enum key_type { T_STR, T_U16, T_U32, T_INT };

/* Extra checks beyond the numeric range. */
enum key_check { C_NONE, C_POW2, C_LOGLEVEL, C_CHOICE };

typedef struct config_key {
	const char *name;
	enum key_type type;
	size_t off;
	size_t size;           /* field size; for strings the buffer including its NUL */
	long long min, max;    /* numbers: inclusive range */
	enum key_check check;
	const char *def;       /* default as text; NULL: computed (control_socket) */
	const char *help;
	const char *choices;   /* C_CHOICE: the allowed values, '|'-separated */
} config_key_t;

#define KEY(n, t, mn, mx, ck, d, h) \
	{ #n, t, offsetof(config_t, n), sizeof(((config_t *)0)->n), mn, mx, ck, d, h, NULL }
/* A string key that takes one of a fixed set of values. */
#define KEYC(n, choices, d, h) \
	{ #n, T_STR, offsetof(config_t, n), sizeof(((config_t *)0)->n), 0, 0, C_CHOICE, d, h, choices }

static const config_key_t keys[] = {
	KEY(listen_host, T_STR, 0, 0, C_NONE, "0.0.0.0", "address to listen on"),
	KEY(port, T_U16, 0, 65535, C_NONE, "1883", "TCP port (0: any free port)"),
	KEY(workers, T_INT, 0, 1024, C_NONE, "0", "worker processes (0: one per online CPU)"),
	KEY(control_socket, T_STR, 0, 0, C_NONE, NULL, "ringmqctl unix socket path"),
	KEY(log_level, T_STR, 0, 0, C_LOGLEVEL, "info", "error, warn, info or debug"),
	KEY(max_connections, T_U32, 0, UINT32_MAX, C_NONE, "100000", "connections per worker (0: unlimited)"),
	KEY(max_packet_size, T_U32, 2, 268435460, C_NONE, "1048576", "largest accepted MQTT packet in bytes"),
	KEY(receive_maximum, T_U16, 1, 65535, C_NONE, "65535", "inbound QoS 1/2 window per client"),
	KEY(max_inflight, T_U16, 1, 65535, C_NONE, "100", "outbound QoS 1/2 window per client"),
	KEY(max_queued, T_U32, 0, UINT32_MAX, C_NONE, "10000", "offline queue per session; oldest dropped"),
	KEY(max_subscriptions, T_U32, 0, UINT32_MAX, C_NONE, "1000",
	    "subscriptions per session; more are refused with 0x97 (0: unlimited)"),
	KEY(max_outbuf, T_U32, 65536, UINT32_MAX, C_NONE, "8388608",
	    "output bytes queued for one client before it is disconnected (at least twice max_packet_size)"),
	KEY(max_outbuf_qos0, T_U32, 0, UINT32_MAX, C_NONE, "1048576",
	    "output bytes queued for one client above which QoS 0 messages to it are dropped and counted"),
	KEY(max_pending_replies, T_U32, 16, 1000000, C_NONE, "1024",
	    "unanswered replies per client (PUBACKs waiting for the store...) before its input is held"),
	KEY(write_timeout_ms, T_U32, 1000, 3600000, C_NONE, "60000",
	    "a client that takes no output byte for this long while output waits is disconnected"),
	KEY(max_keepalive, T_U16, 0, 65535, C_NONE, "65535", "longer client keepalives are lowered (seconds)"),
	KEY(max_session_expiry, T_U32, 0, UINT32_MAX, C_NONE, "4294967295",
	    "cap on the session expiry a client asks for (seconds; 4294967295: never)"),
	KEY(topic_alias_maximum, T_U16, 0, 65535, C_NONE, "64", "topic aliases accepted from a client"),
	KEY(connect_timeout_ms, T_U32, 1, 3600000, C_NONE, "10000", "time allowed from accept to CONNECT"),
	KEY(shutdown_timeout_ms, T_U32, 0, 3600000, C_NONE, "5000", "graceful shutdown limit"),
	KEY(restart_backoff_ms, T_U32, 1, 60000, C_NONE, "100",
	    "first worker restart delay, doubled up to 10 s"),
	KEY(heartbeat_ms, T_U32, 10, 600000, C_NONE, "1000",
	    "heartbeat to every worker's loop (at most a quarter of the systemd watchdog interval, WatchdogSec=)"),
	KEY(heartbeat_misses, T_U32, 0, 1000000, C_NONE, "10",
	    "heartbeats in a row a worker leaves unanswered before it is killed and restarted (0: never)"),
	KEY(buf_ring_entries, T_U32, 1, 32768, C_POW2, "2048",
	    "provided receive buffers per worker (power of two)"),
	KEY(buf_size, T_U32, 64, 16777216, C_NONE, "4096", "bytes per provided receive buffer"),
	KEY(ring_entries, T_U32, 1, 32768, C_NONE, "4096", "io_uring submission queue size"),
	KEYC(store, "memory|redis", "memory", "session store: memory (embedded) or redis"),
	KEY(redis_addrs, T_STR, 0, 0, C_NONE, "127.0.0.1:6379",
	    "Redis master(s) or cluster seed nodes, host:port[,host:port...]"),
	KEY(redis_user, T_STR, 0, 0, C_NONE, "", "Redis ACL user (empty: default user)"),
	KEY(redis_password, T_STR, 0, 0, C_NONE, "", "Redis password (empty: no AUTH)"),
	KEY(redis_db, T_INT, 0, 65535, C_NONE, "0", "Redis database number (standalone only)"),
	KEY(redis_timeout_ms, T_U32, 10, 600000, C_NONE, "5000", "Redis connect and command timeout"),
	KEY(redis_buckets, T_U32, 1, 16384, C_NONE, "1024",
	    "session buckets: clients of one bucket share a Redis hash tag and one script call per flush"),
	KEY(redis_batching, T_U32, 0, 1, C_NONE, "1", "1: one script call per bucket per flush; 0: one per client"),
	KEY(redis_write_grace_ms, T_U32, 0, 60000, C_NONE, "10",
	    "hold a copy for an online subscriber this long before writing it: acknowledged meanwhile, never written"),
	KEY(redis_max_pending, T_U32, 1, 100000000, C_NONE, "200000",
	    "store operations in flight per worker before clients stop being read"),
	KEYC(cluster, "none|kafka", "none", "none: a node alone; kafka: one of several nodes sharing Kafka and Redis"),
	KEY(node_id, T_U32, 0, 63, C_NONE, "0", "this node's id in the cluster (0..63), stable across restarts"),
	KEY(kafka_brokers, T_STR, 0, 0, C_NONE, "127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port...]"),
	KEY(kafka_topic_prefix, T_STR, 0, 0, C_NONE, "ringmq", "prefix of the cluster's Kafka topics"),
	KEY(kafka_linger_ms, T_U32, 0, 1000, C_NONE, "10",
	    "producer batching delay (librdkafka linger.ms): higher costs latency, saves CPU (docs/benchmarks-cluster.md)"),
	KEYC(kafka_compression, "none|lz4|zstd|snappy|gzip", "lz4", "compression of the records produced"),
	KEY(kafka_max_pending, T_U32, 1, 100000000, C_NONE, "200000",
	    "records produced and not yet acknowledged by Kafka before publishers stop being read"),
	KEY(kafka_node_timeout_ms, T_U32, 1000, 3600000, C_NONE, "10000",
	    "a node whose heartbeat is not seen for this long is dead: its sessions are adopted"),
	KEY(kafka_timeout_ms, T_U32, 1000, 3600000, C_NONE, "30000",
	    "Kafka delivery timeout (librdkafka message.timeout.ms); a message not acknowledged by then is retried"),
	KEY(kafka_options, T_STR, 0, 0, C_NONE, "",
	    "more librdkafka properties for every Kafka client, key=value;key=value (security.protocol, sasl.*, ssl.*...)"),
	KEY(tls_port, T_U16, 0, 65535, C_NONE, "0", "TLS listener port (0: no TLS listener; 8883 is usual)"),
	KEYC(plain_listener, "on|off", "on", "the plain (unencrypted) listener on port; off: TLS only (needs tls_port)"),
	KEY(tls_certfile, T_STR, 0, 0, C_NONE, "", "server certificate chain (PEM)"),
	KEY(tls_keyfile, T_STR, 0, 0, C_NONE, "", "server private key (PEM)"),
	KEY(tls_cafile, T_STR, 0, 0, C_NONE, "", "CA certificates that sign client certificates (PEM)"),
	KEY(tls_capath, T_STR, 0, 0, C_NONE, "", "directory of hashed CA certificates (c_rehash)"),
	KEY(tls_crlfile, T_STR, 0, 0, C_NONE, "", "certificate revocation list (PEM); reloaded with the certificates"),
	KEYC(tls_min_version, "1.2|1.3", "1.2", "lowest TLS version accepted"),
	KEY(tls_ciphers, T_STR, 0, 0, C_NONE, "", "TLS 1.2 cipher list (OpenSSL syntax; empty: OpenSSL's default)"),
	KEY(tls_ciphersuites, T_STR, 0, 0, C_NONE, "", "TLS 1.3 cipher suites (empty: OpenSSL's default)"),
	KEY(tls_groups, T_STR, 0, 0, C_NONE, "", "key exchange groups, e.g. X25519:P-256 (empty: default)"),
	KEYC(tls_client_auth, "none|optional|required", "none", "client certificates: none, optional or required"),
	KEYC(tls_identity, "none|cn", "none", "cn: a verified client certificate's CN is the client's user name"),
	KEY(tls_handshake_timeout_ms, T_U32, 100, 3600000, C_NONE, "10000",
	    "time from accept to the end of TCP + TLS handshake + CONNECT"),
	KEYC(allow_anonymous, "auto|true|false", "auto",
	    "clients without credentials: auto = allowed only when no provider is configured (password_file, "
	    "pg_conninfo, tls_identity = cn with client certificates)"),
	KEY(auth_order, T_STR, 0, 0, C_NONE, "file,pg,cert", "authentication providers in the order tried"),
	KEY(password_file, T_STR, 0, 0, C_NONE, "", "mosquitto_passwd-style password file (reloaded on SIGHUP)"),
	KEY(acl_file, T_STR, 0, 0, C_NONE, "", "access rules file (mosquitto acl_file syntax; reloaded on SIGHUP)"),
	KEY(pg_conninfo, T_STR, 0, 0, C_NONE, "", "PostgreSQL credentials: libpq connection string (empty: off)"),
	KEYC(pg_match, "username|client_id|both|cert_cn", "username", "which CONNECT field finds a credential row"),
	KEY(pg_cache_size, T_U32, 0, 10000000, C_NONE, "4096",
	    "PostgreSQL answers cached per worker (invalidated by NOTIFY); 0: every CONNECT asks PostgreSQL"),
	KEY(auth_threads, T_U32, 1, 64, C_NONE, "2", "password-hashing threads per worker"),
	KEY(auth_cache_size, T_U32, 0, 10000000, C_NONE, "65536",
	    "successful password checks remembered per worker (a reconnect skips the slow hash); 0: off"),
	KEY(auth_queue, T_U32, 1, 1000000, C_NONE, "256",
	    "password checks waiting per worker; more get CONNACK server busy"),
	KEY(auth_fail_limit, T_U32, 0, 1000000, C_NONE, "10",
	    "failed authentications per source address per minute before it is refused for a minute (0: off)"),
	KEY(max_connections_per_address, T_U32, 0, UINT32_MAX, C_NONE, "0",
	    "connections per source address per worker (0: unlimited)"),
	KEY(max_connect_rate, T_U32, 0, UINT32_MAX, C_NONE, "0",
	    "new connections per second per source address per worker (0: unlimited)"),
	KEY(max_topic_length, T_U32, 1, 65535, C_NONE, "65535", "longest topic name or filter accepted, bytes"),
	KEY(max_topic_levels, T_U32, 1, 65535, C_NONE, "128", "most levels in a topic name or filter"),
	KEY(max_qos2_pending, T_U32, 1, 65535, C_NONE, "1024", "inbound QoS 2 packet ids awaiting PUBREL per client"),
	KEY(max_user_properties, T_U32, 0, 65535, C_NONE, "64", "user properties per packet"),
	KEY(message_ttl, T_U32, 1, UINT32_MAX, C_NONE, "604800",
	    "seconds a stored message lives when it carries no message expiry (default 7 days)"),
	/* Monitoring (docs/operations.md, "Metrics" and "$SYS topics"). */
	KEY(metrics_port, T_U16, 0, 65535, C_NONE, "0", "Prometheus /metrics HTTP port (0: off)"),
	KEY(metrics_address, T_STR, 0, 0, C_NONE, "127.0.0.1", "address the metrics port binds (IPv4 or IPv6)"),
	KEY(sys_interval, T_U32, 0, 86400, C_NONE, "10",
	    "seconds between $SYS/broker/... publications to their subscribers (0: off)"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* The line quotes the bad value, which may hold a newline (--port=$'1\n2', a file path): keep it one line,
	 * as the caller's log format and config.h promise. */
	for (char *p = err; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7F)
			*p = '?';
	}
}

/* Flag and file spellings differ only in '-' vs '_': compare treating them as equal. */
static const config_key_t *
key_find(const char *name, size_t len)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const char *k = keys[i].name;
		size_t j;

		for (j = 0; j < len && k[j] != '\0'; j++) {
			char c = name[j] == '-' ? '_' : name[j];

			if (c != k[j])
				break;
		}
		if (j == len && k[j] == '\0')
			return &keys[i];
	}
	return NULL;
}

/*
 * Optimal-string-alignment distance (Levenshtein plus adjacent transposition, so "prot" is one edit from
 * "port"). Key names are short; longer inputs are not worth suggesting for.
 */
static size_t
edit_distance(const char *a, const char *b)
{
	enum { MAXL = 40 };
	size_t la = strlen(a), lb = strlen(b);
	size_t d[MAXL + 1][MAXL + 1];

	if (la > MAXL || lb > MAXL)
		return (size_t)-1;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = d[i - 1][j] + 1;

			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

/* Closest key name, or NULL when nothing is close enough to be a plausible typo. */
static const char *
key_suggest(const char *name)
{
	const char *best = NULL;
	size_t bestd = (size_t)-1, limit = strlen(name) / 3;

	if (limit < 2)
		limit = 2;
	for (size_t i = 0; i < NKEYS; i++) {
		size_t d = edit_distance(name, keys[i].name);

		if (d < bestd) {
			bestd = d;
			best = keys[i].name;
		}
	}
	return bestd <= limit ? best : NULL;
}

static void
default_control_socket(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	uid_t uid = getuid();
	int n;

	if (uid == 0) {
		snprintf(buf, size, "/run/ringmq/ringmq.sock");
		return;
	}
	if (xdg != NULL && xdg[0] != '\0') {
		n = snprintf(buf, size, "%s/ringmq.sock", xdg);
		/* A path that does not fit sun_path is useless; fall back rather than truncate. */
		if (n > 0 && (size_t)n < size)
			return;
	}
	snprintf(buf, size, "/tmp/ringmq-%u.sock", (unsigned)uid);
}

/*
 * Parse `val` for key k into cfg. `src` names where the value came from, for the error line
 * ("--port", "RINGMQ_PORT", "/etc/ringmq.conf:3").
 */
/* Is val one of the '|'-separated choices? */
static bool
choice_ok(const char *choices, const char *val)
{
	size_t len = strlen(val);

	for (const char *p = choices; *p;) {
		size_t n = strcspn(p, "|");

		if (n == len && memcmp(p, val, n) == 0)
			return true;
		p += n + (p[n] == '|');
	}
	return false;
}

static int
key_set(config_t *cfg, const config_key_t *k, const char *val, const char *src, char *err, size_t errlen)
{
	char *field = (char *)cfg + k->off;
	long long v;
	char *end;

	if (k->type == T_STR) {
		size_t len = strlen(val);

		if (len >= k->size) {
			set_err(err, errlen, "config: %s: '%s' is too long (at most %zu bytes) (from %s)",
			        k->name, val, k->size - 1, src);
			return -1;
		}
		if (k->check == C_CHOICE && !choice_ok(k->choices, val)) {
			char list[256];
			size_t i, o = 0;

			for (i = 0; k->choices[i] && o + 3 < sizeof(list); i++) {
				if (k->choices[i] == '|') {
					list[o++] = ',';
					list[o++] = ' ';
				} else {
					list[o++] = k->choices[i];
				}
			}
			list[o] = '\0';
			set_err(err, errlen, "config: %s: '%s' is not one of %s (from %s)", k->name, val, list, src);
			return -1;
		}
		if (k->check == C_LOGLEVEL && log_level_parse(val) < 0) {
			set_err(err, errlen, "config: %s: '%s' is not one of error, warn, info, debug (from %s)",
			        k->name, val, src);
			return -1;
		}
		memcpy(field, val, len + 1);
		return 0;
	}

	/* Base 10 only: "010" meaning 8 would surprise; leading '+'/'-' are accepted so "-1" reports a range. */
	errno = 0;
	v = strtoll(val, &end, 10);
	if (end == val || *end != '\0' || val[0] == ' ' || val[0] == '\t') {
		set_err(err, errlen, "config: %s: '%s' is not a number (from %s)", k->name, val, src);
		return -1;
	}
	if (errno == ERANGE || v < k->min || v > k->max) {
		set_err(err, errlen, "config: %s: '%s' is out of range %lld..%lld (from %s)",
		        k->name, val, k->min, k->max, src);
		return -1;
	}
	if (k->check == C_POW2 && (v & (v - 1)) != 0) {
		set_err(err, errlen, "config: %s: '%s' is not a power of two (from %s)", k->name, val, src);
		return -1;
	}
	switch (k->type) {
	case T_U16:
		*(uint16_t *)(void *)field = (uint16_t)v;
		break;
	case T_U32:
		*(uint32_t *)(void *)field = (uint32_t)v;
		break;
	case T_INT:
		*(int *)(void *)field = (int)v;
		break;
	case T_STR:
		break;
	}
	return 0;
}

void
config_defaults(config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++) {
		const config_key_t *k = &keys[i];

		if (k->def == NULL)
			continue;
		/* The table is ours: a failing default is a programming error caught by the unit tests. */
		(void)key_set(cfg, k, k->def, "defaults", NULL, 0);
	}
	default_control_socket(cfg->control_socket, sizeof(cfg->control_socket));
}

/* Config files are small; a bigger one is almost certainly the wrong file. */
#define CONFIG_FILE_MAX (1024 * 1024)

static bool
is_name_char(char c)
{
	return c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * libconfig 1.5 (Debian bookworm) stores a decimal literal that does not fit an int wrapped to 32 bits and
 * without error: "max_connections = 4294967296;" would silently read as 0 (unlimited). For integer
 * settings we therefore take the literal itself from the setting's source line, when it is there in the
 * plain "name = digits" form, and let key_set range-check the real number. Copies at most size - 1 bytes of
 * the literal into buf; returns false when it is not found or is hex (the libconfig value is used then).
 */
static bool
int_literal(const char *text, int line, const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name), n;
	const char *p = text, *eol;

	for (int l = 1; l < line && p != NULL; l++) {
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	if (p == NULL)
		return false;
	eol = strchr(p, '\n');
	if (eol == NULL)
		eol = p + strlen(p);
	for (; p + nlen <= eol; p++) {
		const char *q;

		if (memcmp(p, name, nlen) != 0 || (p > text && is_name_char(p[-1])))
			continue;
		q = p + nlen;
		while (q < eol && (*q == ' ' || *q == '\t'))
			q++;
		if (q >= eol || (*q != '=' && *q != ':'))
			continue;
		q++;
		while (q < eol && (*q == ' ' || *q == '\t'))
			q++;
		/* Decimal only; hex literals are left to libconfig. */
		for (n = 0; q + n < eol && (q[n] == '-' || q[n] == '+' || (q[n] >= '0' && q[n] <= '9')); n++)
			;
		if (n == 0 || (q + n < eol && (q[n] == 'x' || q[n] == 'X' || q[n] == 'L')))
			return false;
		/* An absurdly long literal stays absurd when cut, so key_set still reports it out of range. */
		if (n >= size)
			n = size - 1;
		memcpy(buf, q, n);
		buf[n] = '\0';
		return true;
	}
	return false;
}

/* The whole file, NUL-terminated, or NULL with err set. */
static char *
read_file(const char *path, char *err, size_t errlen)
{
	size_t len = 0, n;
	char *text;
	FILE *fp;

	/* Open it ourselves: libconfig reports a missing file as a bare "file I/O error" without errno. */
	fp = fopen(path, "re");
	if (fp == NULL) {
		set_err(err, errlen, "config: %s: %s", path, strerror(errno));
		return NULL;
	}
	text = malloc(CONFIG_FILE_MAX + 1);
	if (text == NULL) {
		set_err(err, errlen, "config: %s: %s", path, strerror(ENOMEM));
		goto err_close;
	}
	while ((n = fread(text + len, 1, CONFIG_FILE_MAX + 1 - len, fp)) > 0)
		len += n;
	if (ferror(fp)) {
		set_err(err, errlen, "config: %s: read error", path);
		goto err_free;
	}
	if (len > CONFIG_FILE_MAX) {
		set_err(err, errlen, "config: %s: larger than %d bytes", path, CONFIG_FILE_MAX);
		goto err_free;
	}
	text[len] = '\0';
	fclose(fp);
	return text;

err_free:
	free(text);
err_close:
	fclose(fp);
	return NULL;
}

int
config_load_text(config_t *cfg, const char *text, const char *path, char *err, size_t errlen)
{
	config_setting_t *root;
	libconfig_t lc;
	char src[512];
	int rc = -1;

	config_init(&lc);
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		const char *etext = config_error_text(&lc);

		set_err(err, errlen, "config: %s:%d: %s", path, config_error_line(&lc),
		        etext != NULL ? etext : "cannot parse");
		goto out;
	}

	root = config_root_setting(&lc);
	for (int i = 0; i < config_setting_length(root); i++) {
		config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);
		const config_key_t *k = name != NULL ? key_find(name, strlen(name)) : NULL;
		int line = config_setting_source_line(s);
		char num[32];
		const char *val;

		if (k == NULL) {
			const char *hint = name != NULL ? key_suggest(name) : NULL;

			if (hint != NULL)
				set_err(err, errlen, "config: unknown key '%s' in %s (did you mean '%s'?)",
				        name, path, hint);
			else
				set_err(err, errlen, "config: unknown key '%s' in %s", name != NULL ? name : "?",
				        path);
			goto out;
		}
		snprintf(src, sizeof(src), "%s:%d", path, line);

		switch (config_setting_type(s)) {
		case CONFIG_TYPE_STRING:
			val = config_setting_get_string(s);
			break;
		case CONFIG_TYPE_INT:
			if (k->type != T_STR && int_literal(text, line, name, num, sizeof(num))) {
				val = num;
				break;
			}
			snprintf(num, sizeof(num), "%d", config_setting_get_int(s));
			val = num;
			break;
		case CONFIG_TYPE_INT64:
			snprintf(num, sizeof(num), "%lld", config_setting_get_int64(s));
			val = num;
			break;
		default:
			set_err(err, errlen, "config: %s: expected %s (from %s)", k->name,
			        k->type == T_STR ? "a string" : "an integer", src);
			goto out;
		}
		if (k->type == T_STR && config_setting_type(s) != CONFIG_TYPE_STRING) {
			set_err(err, errlen, "config: %s: expected a string (from %s)", k->name, src);
			goto out;
		}
		if (key_set(cfg, k, val, src, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	config_destroy(&lc);
	return rc;
}

static int
load_file(config_t *cfg, const char *path, char *err, size_t errlen)
{
	char *text = read_file(path, err, errlen);
	int rc;

	if (text == NULL)
		return -1;
	rc = config_load_text(cfg, text, path, err, errlen);
	free(text);
	return rc;
}

static int
load_env(config_t *cfg, char *err, size_t errlen)
{
	char var[64];

	for (size_t i = 0; i < NKEYS; i++) {
		const char *name = keys[i].name, *val;
		size_t j, pre = sizeof("RINGMQ_") - 1;

		memcpy(var, "RINGMQ_", pre);
		for (j = 0; name[j] != '\0' && pre + j < sizeof(var) - 1; j++)
			var[pre + j] = (char)(name[j] >= 'a' && name[j] <= 'z' ? name[j] - 'a' + 'A' : name[j]);
		var[pre + j] = '\0';
		val = getenv(var);
		if (val != NULL && key_set(cfg, &keys[i], val, var, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* "--name=value" or "--name": the name and its length, value (NULL when separate). */
static void
split_flag(const char *arg, const char **name, size_t *len, const char **val)
{
	const char *eq = strchr(arg + 2, '=');

	*name = arg + 2;
	*len = eq != NULL ? (size_t)(eq - *name) : strlen(*name);
	*val = eq != NULL ? eq + 1 : NULL;
}

static bool
is_config_flag(const char *name, size_t len)
{
	return len == 6 && memcmp(name, "config", 6) == 0;
}

int
config_load(config_t *cfg, int *argc, char **argv, char *err, size_t errlen)
{
	const char *path = NULL;
	int i, out;

	config_defaults(cfg);
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	/* The file is the lowest source after the defaults, so find it before applying anything else. */
	for (i = 1; i < *argc; i++) {
		const char *name, *val;
		size_t len;

		if (strcmp(argv[i], "--") == 0)
			break;
		if (strncmp(argv[i], "--", 2) != 0)
			continue;
		split_flag(argv[i], &name, &len, &val);
		if (!is_config_flag(name, len))
			continue;
		if (val == NULL) {
			if (i + 1 >= *argc) {
				set_err(err, errlen, "config: --config needs a value");
				return -1;
			}
			val = argv[++i];
		}
		path = val;
	}
	if (path == NULL) {
		path = getenv("RINGMQ_CONFIG");
		if (path != NULL && path[0] == '\0')
			path = NULL;
	}
	if (path != NULL && load_file(cfg, path, err, errlen) < 0)
		return -1;

	if (load_env(cfg, err, errlen) < 0)
		return -1;

	/* Apply flags and compact argv in the same pass: what the caller gets back is what we did not use. */
	for (i = 1, out = 1; i < *argc; i++) {
		const config_key_t *k;
		const char *name, *val;
		char src[64];
		size_t len;

		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strncmp(argv[i], "--", 2) != 0) {
			argv[out++] = argv[i];
			continue;
		}
		split_flag(argv[i], &name, &len, &val);
		if (is_config_flag(name, len)) {
			if (val == NULL)
				i++;
			continue;
		}
		k = key_find(name, len);
		if (k == NULL) {
			argv[out++] = argv[i];
			continue;
		}
		snprintf(src, sizeof(src), "--%.*s", (int)(len < 60 ? len : 60), name);
		if (val == NULL) {
			if (i + 1 >= *argc) {
				set_err(err, errlen, "config: %s: missing value (from %s)", k->name, src);
				return -1;
			}
			val = argv[++i];
		}
		if (key_set(cfg, k, val, src, err, errlen) < 0)
			return -1;
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

void
config_print_help(const config_t *cfg, void *file)
{
	FILE *fp = file;
	const char *base = (const char *)cfg;
	char flag[64], val[128];
	size_t j;

	fprintf(fp, "  %-34s %s\n", "--config=PATH", "configuration file (also RINGMQ_CONFIG)");
	for (size_t i = 0; i < NKEYS; i++) {
		const config_key_t *k = &keys[i];
		const char *field = base + k->off;

		/* Dashes on the command line; the file and RINGMQ_* use the underscore spelling. */
		snprintf(flag, sizeof(flag), "--%s=VALUE", k->name);
		for (j = 2; flag[j] != '=' && flag[j] != '\0'; j++)
			if (flag[j] == '_')
				flag[j] = '-';

		switch (k->type) {
		case T_STR:
			snprintf(val, sizeof(val), "%s", field);
			break;
		case T_U16:
			snprintf(val, sizeof(val), "%u", (unsigned)*(const uint16_t *)(const void *)field);
			break;
		case T_U32:
			snprintf(val, sizeof(val), "%lu", (unsigned long)*(const uint32_t *)(const void *)field);
			break;
		case T_INT:
			snprintf(val, sizeof(val), "%d", *(const int *)(const void *)field);
			break;
		}
		fprintf(fp, "  %-34s %s (default: %s)\n", flag, k->help, val);
	}
}

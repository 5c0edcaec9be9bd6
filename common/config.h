/*
 * config.h — broker configuration.
 *
 * Sources, later wins: built-in defaults, the config file (libconfig syntax; --config PATH or RINGMQ_CONFIG),
 * environment variables RINGMQ_<KEY> (key upper-cased), command-line flags --<key>=<value> or --<key> <value>
 * (underscores in keys may be written as dashes). A bad value stops start-up with one line naming the key,
 * the source and the problem. Loaded once in the supervisor, before fork; workers read it, never write it.
 */
#ifndef RINGMQ_COMMON_CONFIG_H
#define RINGMQ_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct config {
	char listen_host[64];        /* "listen_host": "0.0.0.0" */
	uint16_t port;               /* "port": 1883 */
	int workers;                 /* "workers": 0 = number of online CPUs */
	char control_socket[108];    /* "control_socket": "/run/ringmq/ringmq.sock", or "$XDG_RUNTIME_DIR/ringmq.sock"
	                                for non-root, else "/tmp/ringmq-<uid>.sock" */
	char log_level[16];          /* "log_level": "info" */
	uint32_t max_connections;    /* "max_connections": 100000 per worker; 0 = unlimited */
	uint32_t max_packet_size;    /* "max_packet_size": 1048576 (bytes, 2..268435460) */
	uint16_t receive_maximum;    /* "receive_maximum": 65535 — server's inbound QoS 1/2 window per client */
	uint16_t max_inflight;       /* "max_inflight": 100 — outbound window per client (also capped by the
	                                client's receive maximum) */
	uint32_t max_queued;         /* "max_queued": 10000 — per-session offline queue; oldest dropped, counted */
	uint32_t max_subscriptions;  /* "max_subscriptions": 1000 per session; 0 = unlimited */
	uint32_t max_outbuf;         /* "max_outbuf": 8 MiB — output queued for one client before it is disconnected */
	uint32_t max_outbuf_qos0;    /* "max_outbuf_qos0": 1 MiB — above it QoS 0 to that client is dropped, counted */
	uint32_t max_pending_replies;/* "max_pending_replies": 1024 — unanswered replies before input is held */
	uint32_t write_timeout_ms;   /* "write_timeout_ms": 60000 — no output taken for this long: disconnected */
	uint16_t max_keepalive;      /* "max_keepalive": 65535 — larger client keepalives are lowered (MQTT 5
	                                server keep alive) */
	uint32_t max_session_expiry; /* "max_session_expiry": 4294967295 (never); caps the client's request */
	uint16_t topic_alias_maximum;/* "topic_alias_maximum": 64 — aliases the server accepts from a client */
	uint32_t connect_timeout_ms; /* "connect_timeout_ms": 10000 — time allowed between accept and CONNECT */
	uint32_t shutdown_timeout_ms;/* "shutdown_timeout_ms": 5000 */
	uint32_t restart_backoff_ms; /* "restart_backoff_ms": 100 — first worker restart delay, doubled up to 10 s */
	uint32_t heartbeat_ms;       /* "heartbeat_ms": 1000 — supervisor -> worker heartbeat (at most a quarter of the
	                                systemd watchdog interval) */
	uint32_t heartbeat_misses;   /* "heartbeat_misses": 10 — unanswered heartbeats in a row before a worker is
	                                killed and restarted; 0 = never */
	uint32_t buf_ring_entries;   /* "buf_ring_entries": 2048 — provided receive buffers per worker (power of 2) */
	uint32_t buf_size;           /* "buf_size": 4096 — bytes per provided buffer */
	uint32_t ring_entries;       /* "ring_entries": 4096 — io_uring SQ size */
	char store[16];              /* "store": "memory" | "redis" */
	char redis_addrs[512];       /* "redis_addrs": "127.0.0.1:6379" — masters or cluster seeds */
	char redis_user[64];         /* "redis_user": "" */
	char redis_password[128];    /* "redis_password": "" */
	int redis_db;                /* "redis_db": 0 */
	uint32_t redis_timeout_ms;   /* "redis_timeout_ms": 5000 */
	uint32_t redis_buckets;      /* "redis_buckets": 1024 — clients per hash tag group */
	uint32_t redis_batching;     /* "redis_batching": 1 — 0 = one script call per client (for comparison) */
	uint32_t redis_write_grace_ms; /* "redis_write_grace_ms": 10 — 0 = every copy written at once */
	uint32_t redis_max_pending;  /* "redis_max_pending": 200000 — store ops in flight before reading pauses */
	char cluster[8];             /* "cluster": "none" | "kafka" */
	uint32_t node_id;            /* "node_id": 0 — this node in the cluster (0..63) */
	char kafka_brokers[512];     /* "kafka_brokers": bootstrap servers, host:port[,host:port...] */
	char kafka_topic_prefix[64]; /* "kafka_topic_prefix": "ringmq" */
	uint32_t kafka_linger_ms;    /* "kafka_linger_ms": 10 — producer batching delay */
	char kafka_compression[8];   /* "kafka_compression": none | lz4 | zstd | snappy | gzip */
	uint32_t kafka_max_pending;  /* "kafka_max_pending": records produced and not acknowledged, per node */
	uint32_t kafka_node_timeout_ms; /* "kafka_node_timeout_ms": a node silent this long is dead */
	uint32_t kafka_timeout_ms;   /* "kafka_timeout_ms": producer delivery and metadata timeout */
	char kafka_options[1024];    /* "kafka_options": more librdkafka properties, "k=v;k=v" (TLS, SASL...) */
	uint16_t tls_port;           /* "tls_port": 0 = no TLS listener */
	char plain_listener[4];      /* "on" | "off": the plain listener on port (off: TLS only) */
	char tls_certfile[256];
	char tls_keyfile[256];
	char tls_cafile[256];
	char tls_capath[256];
	char tls_crlfile[256];
	char tls_min_version[8];     /* "1.2" | "1.3" */
	char tls_ciphers[512];
	char tls_ciphersuites[256];
	char tls_groups[128];
	char tls_client_auth[16];    /* "none" | "optional" | "required" */
	char tls_identity[8];        /* "none" | "cn" */
	uint32_t tls_handshake_timeout_ms;
	char allow_anonymous[8];     /* "auto" | "true" | "false" */
	char auth_order[64];         /* "file,pg,cert" */
	char password_file[256];
	char acl_file[256];
	char pg_conninfo[512];
	char pg_match[16];           /* "username" | "client_id" | "both" | "cert_cn" */
	uint32_t pg_cache_size;      /* answers cached per worker; 0: every CONNECT asks PostgreSQL */
	uint32_t auth_threads;
	uint32_t auth_queue;
	uint32_t auth_cache_size;    /* successful password checks remembered per worker (authcache.h); 0: off */
	uint32_t auth_fail_limit;
	uint32_t max_connections_per_address;
	uint32_t max_connect_rate;
	uint32_t max_topic_length;
	uint32_t max_topic_levels;
	uint32_t max_qos2_pending;
	uint32_t max_user_properties;
	uint32_t message_ttl;        /* "message_ttl": 604800 — stored message lifetime without message expiry */
	uint16_t metrics_port;       /* "metrics_port": 0 = no /metrics endpoint */
	char metrics_address[64];    /* "metrics_address": "127.0.0.1" */
	uint32_t sys_interval;       /* "sys_interval": 10 s between $SYS publications; 0 = off */
} config_t;

/* Fill *cfg with defaults (control_socket depends on the uid and XDG_RUNTIME_DIR). */
void config_defaults(config_t *cfg);
/*
 * Load from file (if --config/RINGMQ_CONFIG names one), then environment, then argv. argv options that are
 * not config keys are returned to the caller: on return *argc/argv hold only the non-config arguments
 * (argv[0] kept, "--" and everything after it kept untouched, argv[*argc] set to NULL). *cfg is reset to the
 * defaults first. Returns 0, or -1 after writing one line to `err` (size errlen) such as
 * "config: port: 'abc' is not a number (from RINGMQ_PORT)"; *cfg and argv are then unspecified.
 * Unknown keys in the file are errors; unknown --flags are not (they are the caller's).
 */
int config_load(config_t *cfg, int *argc, char **argv, char *err, size_t errlen);
/*
 * Apply the text of a config file (libconfig syntax, NUL-terminated) on top of *cfg, as config_load() does
 * with the file it reads; `path` names the file in error lines ("config: PATH:3: ..."). Reads no file and no
 * environment — except that libconfig's "@include" directive opens the file it names. Returns 0, or -1 after
 * writing one line to `err`; *cfg is then partly updated. For tests and fuzzing; any process.
 */
int config_load_text(config_t *cfg, const char *text, const char *path, char *err, size_t errlen);
/* Print every key as "  --key=VALUE  help (default: <current value>)" to `file` (a FILE *), for --help. */
void config_print_help(const config_t *cfg, void *file);

#endif

/*
 * wk-t.h — types shared by the worker's modules (types only: no prototypes).
 *
 * Ownership in one worker process:
 *   wk_t        the worker; one per process (the global W), lives for the process.
 *   conn_t      one client TCP connection; freed when closed AND its last SQE has completed (refs == 0).
 *   sess_t      one MQTT session, owned by the sessions map; outlives its connection when persistent.
 *   sub_t       one subscription of a session; in the session's list and in the trie.
 *   msg_t       one application message, refcounted: shared by every queue/in-flight entry that holds it.
 *   group_t     one shared subscription group ($share/g/f) as seen by this worker.
 *   peer_t      the mesh channel to another worker.
 */
#ifndef RINGMQ_WORKER_WK_T_H
#define RINGMQ_WORKER_WK_T_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "mqtt.h"
#include "strmap.h"
#include "trie.h"
#include "worker.h"

/* A growable byte buffer. */
typedef struct buf {
	uint8_t *data;
	uint32_t len;
	uint32_t cap;
} buf_t;

/*
 * Output queue of a socket: `sending` is handed to one SEND SQE at a time and is immutable until it completes;
 * everything produced meanwhile is appended to `pending`. The flush pass swaps them.
 */
typedef struct outq {
	buf_t sending;
	uint32_t off;        /* bytes of `sending` already written */
	buf_t pending;
	bool inflight;       /* a SEND SQE is outstanding */
} outq_t;

enum msg_flags {
	MSG_HAS_PFI = 1 << 0,      /* payload format indicator present (value in pfi) */
	MSG_HAS_EXPIRY = 1 << 1,   /* expire_at_ms is meaningful */
};

typedef struct msg {
	uint32_t refs;
	uint8_t qos;
	uint8_t retain;
	uint8_t flags;
	uint8_t pfi;
	uint64_t expire_at_ms;     /* CLOCK_MONOTONIC ms; valid with MSG_HAS_EXPIRY */
	uint64_t origin;           /* publisher's connection id (no-local); 0 for wills and retained replays */
	uint16_t topic_len;
	uint16_t ct_len;           /* content type */
	uint16_t rt_len;           /* response topic */
	uint16_t cd_len;           /* correlation data */
	uint32_t user_len;         /* encoded user properties, verbatim */
	uint32_t payload_len;
	uint8_t data[];            /* topic | content type | response topic | correlation data | user | payload */
} msg_t;

/* An outbound message waiting in a session queue. */
typedef struct qent {
	msg_t *m;
	uint64_t qseq;             /* the session's message sequence number: its id in the store */
	uint32_t subid;            /* 0 = none */
	uint8_t qos;
	uint8_t retain;
} qent_t;

enum ifl_state {
	IFL_PUBACK = 1,            /* QoS 1 sent, waiting PUBACK */
	IFL_PUBREC = 2,            /* QoS 2 sent, waiting PUBREC */
	IFL_PUBCOMP = 3,           /* PUBREL sent, waiting PUBCOMP (message released) */
};

/* An outbound QoS 1/2 message sent and not yet acknowledged. */
typedef struct ifl {
	msg_t *m;                  /* NULL once in IFL_PUBCOMP */
	uint64_t qseq;
	uint32_t subid;
	uint16_t pid;
	uint8_t qos;
	uint8_t state;
	uint8_t retain;
} ifl_t;

/* A ring of fixed-size entries (queue and in-flight window). */
typedef struct ring {
	void *items;
	uint32_t head;
	uint32_t len;
	uint32_t cap;              /* power of two */
} ring_t;

struct conn;
struct group;

typedef struct sub {
	struct sess *sess;
	struct sub *next;          /* session's list */
	struct group *group;       /* shared subscription, or NULL */
	uint32_t subid;
	mqtt_subopts_t opts;
	uint16_t filter_len;       /* full filter as subscribed (with $share/g/ prefix) */
	uint16_t match_off;        /* offset of the filter matched in the trie (after $share/g/) */
	char filter[];
} sub_t;

typedef struct sess {
	char *id;
	uint16_t id_len;
	uint8_t version;
	bool dead;                 /* removed from the map, freed when no connection points at it */
	struct conn *conn;         /* NULL while offline */
	uint32_t expiry_s;         /* session expiry interval; 0 = ends with the connection */
	uint64_t expire_at_ms;     /* when offline: expiry deadline; 0 = never */
	sub_t *subs;
	uint32_t n_subs;
	ring_t queue;              /* qent_t */
	ring_t ifl;                /* ifl_t */
	uint16_t next_pid;
	uint16_t n_rx;             /* inbound QoS 2 ids awaiting PUBREL */
	uint16_t cap_rx;
	uint16_t *rx_pids;
	msg_t *will;
	uint32_t will_delay_s;
	uint64_t will_at_ms;       /* 0 = no will pending publication */
	uint64_t dropped;          /* queue-full drops */
	uint64_t expired;          /* message-expiry drops */
	uint32_t match_epoch;      /* routing scratch: set when matched in the current publish */
	uint32_t match_slot;
	uint64_t next_qseq;        /* next message sequence number (store id) */
	bool cold;                 /* durable store: queue and window live only in the store (offline) */
	bool loading;              /* durable store: queue being loaded after reconnect */
	bool stored;               /* written to the durable store at least once */
	uint32_t load_gen;
} sess_t;

/* One reply that must wait for other workers before it may be written (PUBACK, PUBREC, SUBACK...). */
typedef struct pend {
	uint8_t type;              /* MQTT packet type of the reply */
	uint8_t reason;
	uint16_t pid;
	uint32_t waiting;          /* acks still expected from peers */
	uint8_t *packet;           /* pre-encoded reply (SUBACK/UNSUBACK), or NULL */
	uint32_t packet_len;
	uint8_t *retained;         /* SUBACK: filters (u16 length + bytes) whose retained messages follow it */
	uint32_t retained_len;
} pend_t;

enum conn_state {
	CONN_NEW = 0,              /* accepted, waiting for CONNECT */
	CONN_HANDOFF,              /* CONNECT names another worker's client: draining recv, then moving */
	CONN_ACTIVE,               /* CONNACK sent */
	CONN_CLOSING,              /* closed; waiting for SQEs to complete */
};

typedef struct alias {
	char *topic;
	uint16_t len;
} alias_t;

typedef struct conn {
	uint64_t id;               /* worker-unique, for logs and no-local */
	uint32_t idx;              /* slot in W->conns */
	uint32_t gen;              /* generation of the slot: stale completions are dropped */
	int fd;
	uint8_t state;
	uint8_t version;
	uint8_t close_reason;      /* DISCONNECT reason sent, for logs */
	bool recv_armed;
	bool dirty;                /* in the flush list */
	bool graceful;             /* DISCONNECT 0x00 received: no will */
	bool problem_info;         /* client's request problem information */
	bool in_list;
	bool paused;               /* reading stopped while the store drains */
	uint16_t keepalive;        /* seconds, after server override */
	uint32_t refs;             /* SQEs in flight */
	uint64_t last_rx_ms;
	uint64_t created_ms;
	buf_t rbuf;                /* partial packet carried between receives */
	outq_t out;
	sess_t *sess;
	uint32_t max_packet_out;   /* client's maximum packet size (0 = none) */
	uint16_t recv_max_out;     /* client's receive maximum */
	uint16_t alias_max_out;    /* client's topic alias maximum */
	uint16_t n_alias_out;
	uint16_t inflight_in;      /* inbound QoS>0 not yet answered */
	int16_t handoff_to;        /* owner worker while CONN_HANDOFF */
	alias_t *alias_in;         /* [cfg.topic_alias_maximum + 1] */
	alias_t *alias_out;        /* [alias_max_out + 1] */
	ring_t pend;               /* pend_t: replies in arrival order */
	uint64_t pend_seq;         /* sequence number of pend's head */
	struct conn *next_dirty;
	struct conn *prev, *next;  /* all live connections, for timers */
	char addr[64];
} conn_t;

/* Who waits for a store write: a reply of a connection, or an in-frame of a peer. */
enum waiter_kind {
	WAIT_NONE = 0,
	WAIT_CONN,
	WAIT_PEER,
};

typedef struct waiter {
	uint8_t kind;
	uint32_t idx;              /* conn slot, or peer worker id */
	uint32_t gen;
	uint64_t seq;              /* reply or in-frame sequence number */
} waiter_t;

/* A token for one forwarded frame that expects an ack, in the order it was sent to a peer. */
typedef struct tok {
	uint32_t conn_idx;
	uint32_t conn_gen;
	uint64_t seq;              /* the pend entry's sequence number */
} tok_t;

typedef struct peer {
	int fd;
	uint32_t gen;
	bool up;
	bool recv_armed;
	bool dirty;
	uint32_t refs;
	buf_t rbuf;
	outq_t out;
	ring_t toks;               /* tok_t, in send order */
	uint32_t acks_owed;        /* acks to send back at the next flush */
	ring_t inwait;             /* uint32_t: store writes still pending per received frame that wants an ack */
	uint64_t inwait_seq;       /* sequence number of inwait's head */
	strmap_t interest;         /* filters this peer has local subscribers for */
	struct peer *next_dirty;
} peer_t;

typedef struct group {
	char *key;                 /* "<group>/<filter>" */
	uint16_t key_len;
	uint16_t filter_off;       /* offset of <filter> in key */
	sub_t **members;           /* local members */
	uint32_t n_members;
	uint32_t cap_members;
	uint32_t rr;               /* round-robin cursor over local members */
	uint32_t rr_worker;        /* round-robin cursor over workers */
	uint32_t *peer_members;    /* [n_workers]: members per worker (own entry kept current) */
	uint32_t *peer_online;     /* [n_workers]: online members per worker */
} group_t;

typedef struct stats {
	uint64_t msgs_in;
	uint64_t msgs_out;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t dropped_queue_full;
	uint64_t dropped_expired;
	uint64_t dropped_too_large;
	uint64_t dropped_no_peer;
	uint64_t handoffs_out;
	uint64_t handoffs_in;
	uint64_t connects;
	uint64_t disconnects;
	uint64_t protocol_errors;
	uint64_t rejected_max_conn;
	uint64_t store_batches;
	uint64_t store_ops;
	uint64_t store_errors;
	uint64_t store_dropped;    /* dropped by the store's queue bound */
	uint64_t store_quarantined;
	uint64_t paused_reads;
} stats_t;

typedef struct wk {
	int id;
	int n;
	const config_t *cfg;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	uint32_t nbufs;
	uint32_t bufsz;
	int listen_fd;
	bool accept_armed;
	int ctl_fd;
	bool ctl_armed;
	bool stopping;
	uint64_t stop_deadline_ms;
	conn_t **conns;            /* by idx */
	uint32_t *conn_gen;        /* generation per idx, survives the conn */
	uint32_t conns_cap;
	uint32_t *free_idx;
	uint32_t n_free;
	uint32_t n_conns;
	uint32_t n_active;         /* connections past CONNACK (their sessions are ours) */
	conn_t *live;              /* list of all connections */
	conn_t *dirty;             /* connections with output to flush */
	peer_t *dirty_peers;
	peer_t peers[WORKER_MAX];
	strmap_t sessions;         /* client id -> sess_t* */
	trie_t *trie;              /* local subs (sub_t*), peer interest (tagged), groups (tagged) */
	strmap_t filters;          /* local filter -> reference count (uintptr_t) */
	strmap_t retained;         /* topic -> msg_t* */
	strmap_t groups;           /* key -> group_t* */
	uint64_t now_ms;
	uint64_t next_conn_id;
	uint32_t match_epoch;
	uint32_t handoff_pending;
	waiter_t wait;             /* who the store writes issued right now are for (WAIT_NONE: nobody) */
	uint32_t wait_count;       /* store writes issued for `wait` */
	bool restoring;            /* loading sessions from the store at start-up: no writes back */
	bool store_ready;          /* sessions restored: clients may connect */
	struct __kernel_timespec tick;
	stats_t st;
} wk_t;

extern wk_t *W;

/* io_uring user_data: | type:8 | gen:24 | idx:32 | */
enum ud_type {
	UD_ACCEPT = 1,
	UD_RECV,
	UD_SEND,
	UD_PEER_RECV,
	UD_PEER_SEND,
	UD_CTL,
	UD_TIMER,
	UD_IGNORE,
	UD_RDS,        /* Redis connections: rds_on_cqe() decodes the rest of user_data */
};

#endif

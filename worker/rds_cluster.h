/*
 * rds_cluster.h — internals shared by rds.c (connections, handshake, pipelining, timeouts) and rds_cluster.c
 * (routing by slot, CLUSTER SLOTS topology, MOVED/ASK). Other modules use rds.h only.
 * Everything here runs on the worker's thread; the state is one per worker process.
 */
#ifndef RINGMQ_WORKER_RDS_CLUSTER_H
#define RINGMQ_WORKER_RDS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include "buf.h"
#include "loop.h"
#include "rds.h"

#define NO_NODE 0xffff             /* slot map: owner unknown */
#define MAX_NODES 4096             /* node index * 4 + op must fit user_data's idx; nodes are never removed */
#define RBUF_SIZE (64 * 1024)      /* per-node receive buffer */
#define BACKOFF_MIN_MS 100

enum op { OP_CONNECT = 0, OP_RECV = 1, OP_SEND = 2 };
enum st { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_UP, ST_CLOSING };
enum kind { K_USER, K_AUTH, K_SELECT, K_FLOAD_HS, K_FLOAD, K_SLOTS, K_ASKING };
enum problem { P_NONE, P_UNREACH, P_LOST, P_TIMEOUT, P_AUTH, P_SELECT, P_LOADING, P_PROTO };

typedef struct cmd {
	struct cmd *next;
	sds buf;                   /* formatted command, kept until the reply: MOVED/ASK/retry resend it */
	rds_cb cb;
	void *ctx;
	uint64_t sent_ms;          /* when written to the outq (timeout of the inflight head) */
	uint32_t load_seq;         /* node's load_seq when written: one reload per burst of "not found" */
	uint16_t slot;
	uint8_t kind;
	uint8_t redirects;
	bool fcall;                /* FCALL/FCALL_RO: retried once after a reload */
	bool fn_retried;
	bool asking;               /* prefix ASKING on the next write */
} cmd_t;

typedef struct cmdq {
	cmd_t *head, *tail;
	uint32_t len;
} cmdq_t;

typedef struct node {
	uint32_t idx;
	uint32_t gen;
	int fd;
	uint8_t state;
	uint8_t problem;           /* last problem logged: log once per change */
	bool wanted;               /* reconnect when down: a master we route to (or a seed before topology) */
	bool ever_up;
	bool connect_inflight;
	bool recv_inflight;
	uint32_t refs;             /* SQEs in flight */
	uint32_t backoff_ms;
	uint32_t hs_left;          /* handshake replies still expected */
	uint32_t load_seq;
	uint64_t deadline_ms;      /* connect timeout */
	uint64_t retry_at_ms;
	uint64_t down_since_ms;
	redisReader *rd;
	uint8_t *rbuf;
	outq_t out;
	cmdq_t hs, redo, queued, inflight;
	struct sockaddr_storage sa;
	socklen_t salen;
	char host[64];
	uint16_t port;
	char name[80];             /* "host:port" as first seen, for logs */
} node_t;

typedef struct rds_state {
	bool active;
	enum rds_mode mode;
	bool topo_known;
	bool slots_inflight;       /* a CLUSTER SLOTS is queued or in flight */
	bool refresh_wanted;
	bool timer_armed;
	char *addrs, *user, *password;
	int db;
	uint32_t connect_timeout_ms, command_timeout_ms, max_pending;
	node_t **nodes;
	uint32_t n_nodes;
	uint16_t *slots;           /* slot -> node index, NO_NODE if unknown */
	cmdq_t unrouted;           /* cluster topology not known yet for their slot */
	size_t pending;
	sds *libs;                 /* formatted FUNCTION LOAD REPLACE commands */
	uint32_t n_libs;
	uint64_t refresh_at_ms;
	uint32_t timer_gen;
	struct __kernel_timespec ts;
} rds_state_t;


static inline void q_push(cmdq_t *q, cmd_t *c)
{
	c->next = NULL;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->len++;
}

static inline cmd_t *q_pop(cmdq_t *q)
{
	cmd_t *c = q->head;

	if (!c)
		return NULL;
	q->head = c->next;
	if (!q->head)
		q->tail = NULL;
	q->len--;
	c->next = NULL;
	return c;
}

extern rds_state_t rds_st;

static inline uint64_t rds_now_ms(void)
{
	return loop_now();
}

/* rds.c */
/* IDLE -> CONNECTING: socket + IORING_OP_CONNECT. */
void rds_start_connect(node_t *n);
/* An internal command (argc 0: no bytes, e.g. the ASKING marker). NULL on allocation failure. */
cmd_t *rds_cmd_internal(enum kind kind, int argc, const char **argv, const size_t *lens);
void rds_cmd_free(cmd_t *c);

/* rds_cluster.c */
/* "host:port", "[v6]:port", "host" (port 6379) into host (NUL-terminated) and port. 0 or -EINVAL. */
int rds_parse_addr(const char *s, size_t len, char *host, size_t hostcap, uint16_t *port);
/* The node for host:port, created (IDLE, not wanted) if new; nodes live until rds_finish. numeric_only for
 * addresses from Redis itself (CLUSTER SLOTS, MOVED): resolving a name would block. NULL with *err set. */
node_t *rds_node_get(const char *host, uint16_t port, bool numeric_only, int *err);
/* Queue a user command on its slot's owner (redo list if redo), or park it until the topology is known. */
void rds_route(cmd_t *c, bool redo);
/* After a topology change: move unsent user commands to their slot's new owner, keeping their order. */
void rds_reroute_all(void);
/* Queue CLUSTER SLOTS on an UP node (prefer if UP), unless one is outstanding or we are standalone; without
 * an UP node, remember to ask later (refresh_wanted). */
void rds_topo_refresh(node_t *prefer);
/* MOVED/ASK error reply r to c on n: re-queue c on the named node. False if r is not a (followable)
 * redirection: the caller then delivers r. */
bool rds_redirect(node_t *n, cmd_t *c, const redisReply *r);
/* Reply to our CLUSTER SLOTS on n (or the error telling us n is standalone, in RDS_AUTO). */
void rds_on_slots(node_t *n, const redisReply *r);

#endif

/*
 * rds.c — Redis client on the worker's io_uring (see rds.h).
 *
 * Per master one node_t: a socket, a hiredis redisReader fed from our own receive buffer, an outq_t, and four
 * FIFOs of commands:
 *   hs        handshake (AUTH, SELECT, FUNCTION LOAD REPLACE): the only list written before the node is UP;
 *   redo      commands Redis told us to send again (MOVED, ASK, function reload + retry) and internal
 *             commands (CLUSTER SLOTS, late FUNCTION LOADs): written before `queued`;
 *   queued    new commands, kept across reconnects;
 *   inflight  written, waiting for their reply; replies arrive in this order (RESP has no ids).
 * A node moves IDLE -> CONNECTING -> HANDSHAKE -> UP; any failure goes to CLOSING (socket shut down, our SQEs
 * cancelled by user_data) and, once its last SQE has completed, back to IDLE with a backoff deadline.
 *
 * Receive: a plain (single-shot) recv into a 64 KiB buffer per node, re-armed after each completion, rather
 * than the worker's multishot recv on the provided-buffer ring. There are only a handful of Redis sockets per
 * worker, so the extra SQE per read is noise, and it keeps the store's replies independent of the client
 * buffer pool: a burst of client traffic that empties the pool (-ENOBUFS) cannot stall the replies that
 * would let those clients make progress. redisReaderFeed copies the bytes anyway, so the buffer is free again
 * as soon as the completion is handled.
 *
 * Scripts: Debian bookworm ships redis-server 7.0, so stored procedures are Redis 7 functions (FUNCTION LOAD
 * REPLACE + FCALL) rather than EVALSHA/SCRIPT LOAD: a library is named and versioned by its own source, is
 * replicated and persisted with the dataset (a failover keeps it), and the per-connection reload after
 * "Function not found" is needed only after FUNCTION FLUSH or on an empty new master. Redis < 7 is refused
 * with a clear log line (FUNCTION is an unknown command there).
 *
 * user_data: ud_make(UD_RDS, gen, idx): idx = node index * 4 + op (connect, recv, send), gen = the node's
 * socket generation, drawn from a process-wide counter so completions of a dropped socket (or of a previous
 * rds_init) never match. The module timer uses idx TIMER_IDX.
 */
#include "rds.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"
#include "slot.h"

#define RBUF_SIZE (64 * 1024)
#define MAX_NODES 4096             /* node index * 4 + op must fit idx; nodes are never removed */
#define NO_NODE 0xffff
#define TIMER_IDX 0xffffffffu
#define TICK_MS 100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define REFRESH_MIN_MS 1000        /* at most one CLUSTER SLOTS per second (a MOVED burst asks for many) */
#define MAX_REDIRECTS 5

static const char ASKING_CMD[] = "*1\r\n$6\r\nASKING\r\n";

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

static struct {
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
} R;

/* Process-wide so that completions from an earlier rds_init cycle never match a new node. */
static uint32_t gen_seq;

static uint32_t next_gen(void)
{
	gen_seq = (gen_seq + 1) & 0xffffff;
	if (!gen_seq)
		gen_seq = 1;
	return gen_seq;
}

static uint64_t now_ms(void)
{
	return W->now_ms;
}

/* ---- command FIFOs ---- */

static void q_push(cmdq_t *q, cmd_t *c)
{
	c->next = NULL;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->len++;
}

static cmd_t *q_pop(cmdq_t *q)
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

static void cmd_free(cmd_t *c)
{
	if (!c)
		return;
	sdsfree(c->buf);
	free(c);
}

static cmd_t *cmd_internal(enum kind kind, int argc, const char **argv, const size_t *lens)
{
	cmd_t *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = (uint8_t)kind;
	if (argc && redisFormatSdsCommandArgv(&c->buf, argc, argv, lens) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

static cmd_t *cmd_copy_sds(enum kind kind, sds src)
{
	cmd_t *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = (uint8_t)kind;
	c->buf = sdsnewlen(src, sdslen(src));
	if (!c->buf) {
		free(c);
		return NULL;
	}
	return c;
}

/* Deliver the outcome of a user command and free it. */
static void cmd_done(cmd_t *c, const redisReply *reply, int err)
{
	R.pending--;
	if (c->cb)
		c->cb(c->ctx, reply, err);
	cmd_free(c);
}

/* ---- addresses and nodes ---- */

static uint64_t ud(const node_t *n, enum op op)
{
	return ud_make(UD_RDS, n->gen, n->idx * 4 + op);
}

/* "host:port", "[v6]:port", "host" (port 6379). Returns 0 or -EINVAL. */
static int parse_addr(const char *s, size_t len, char *host, size_t hostcap, uint16_t *port)
{
	const char *h = s, *p = NULL;
	size_t hl = len;
	unsigned long v = 6379;

	if (len && s[0] == '[') {
		const char *e = memchr(s, ']', len);

		if (!e)
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(e - h);
		if (e + 1 < s + len) {
			if (e[1] != ':')
				return -EINVAL;
			p = e + 2;
		}
	} else {
		const char *c = memchr(s, ':', len);

		/* More than one colon without brackets: a bare IPv6 address. */
		if (c && !memchr(c + 1, ':', len - (size_t)(c + 1 - s))) {
			hl = (size_t)(c - s);
			p = c + 1;
		}
	}
	if (p) {
		char tmp[8], *end;
		size_t pl = len - (size_t)(p - s);

		if (!pl || pl >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, p, pl);
		tmp[pl] = 0;
		v = strtoul(tmp, &end, 10);
		if (*end || !v || v > 65535)
			return -EINVAL;
	}
	if (!hl || hl >= hostcap)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (uint16_t)v;
	return 0;
}

static bool sa_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return false;
}

/*
 * The node for host:port, created if new. numeric_only: addresses from Redis itself (CLUSTER SLOTS, MOVED)
 * must be IPs — resolving a name would block the worker. Returns NULL (err set) on failure.
 */
static node_t *node_get(const char *host, uint16_t port, bool numeric_only, int *err)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage sa;
	socklen_t salen;
	char portstr[8];
	node_t *n, **nodes;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (numeric_only ? AI_NUMERICHOST : 0);
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc || !res || res->ai_addrlen > sizeof(sa)) {
		if (res)
			freeaddrinfo(res);
		*err = rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
		return NULL;
	}
	memset(&sa, 0, sizeof(sa));
	memcpy(&sa, res->ai_addr, res->ai_addrlen);
	salen = res->ai_addrlen;
	freeaddrinfo(res);
	for (uint32_t i = 0; i < R.n_nodes; i++)
		if (sa_equal(&R.nodes[i]->sa, &sa))
			return R.nodes[i];
	if (R.n_nodes >= MAX_NODES) {
		*err = -ENOSPC;
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	nodes = realloc(R.nodes, (R.n_nodes + 1) * sizeof(*nodes));
	if (!n || !nodes || !(n->rbuf = malloc(RBUF_SIZE))) {
		if (nodes)
			R.nodes = nodes;
		if (n)
			free(n->rbuf);
		free(n);
		*err = -ENOMEM;
		return NULL;
	}
	R.nodes = nodes;
	n->idx = R.n_nodes;
	n->fd = -1;
	n->backoff_ms = BACKOFF_MIN_MS;
	n->sa = sa;
	n->salen = salen;
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	snprintf(n->name, sizeof(n->name), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	R.nodes[R.n_nodes++] = n;
	return n;
}

/* ---- logging, once per change of a node's problem ---- */

static void report(node_t *n, enum problem p, int err, const char *detail)
{
	const char *why = err ? strerror(err) : (detail ? detail : "unknown error");

	if (n->problem == p)
		return;
	if (n->problem == P_NONE)
		n->down_since_ms = now_ms();
	n->problem = (uint8_t)p;
	switch (p) {
	case P_UNREACH:
		log_warn(0, "redis %s unreachable: %s — is redis-server running there? set --redis-addrs; "
			"retrying with backoff up to %u s, commands stay queued", n->name, why, BACKOFF_MAX_MS / 1000);
		break;
	case P_LOST:
		log_warn(0, "redis %s connection lost: %s — reconnecting; commands in flight fail with ECONNRESET",
			n->name, why);
		break;
	case P_TIMEOUT:
		log_warn(0, "redis %s did not answer within %u ms — connection reset; is the server blocked or "
			"overloaded (SLOWLOG GET)? raise --redis-command-timeout-ms", n->name, R.command_timeout_ms);
		break;
	case P_AUTH:
		log_error(0, "redis %s rejected authentication: %s — set --redis-user/--redis-password", n->name, why);
		break;
	case P_SELECT:
		log_error(0, "redis %s rejected SELECT %d: %s — set --redis-db (Redis Cluster has db 0 only)",
			n->name, R.db, why);
		break;
	case P_LOADING:
		log_warn(0, "redis %s is loading its dataset — retrying", n->name);
		break;
	case P_PROTO:
		log_error(0, "redis %s sent a malformed reply: %s — connection reset", n->name, why);
		break;
	case P_NONE:
		break;
	}
}

/* ---- routing ---- */

static bool node_alive(const node_t *n)
{
	return n->state == ST_HANDSHAKE || n->state == ST_UP;
}

/* Queue a user command on the owner of its slot, or park it until the topology is known. */
static void route(cmd_t *c, bool redo)
{
	uint16_t owner = R.slots[c->slot];

	if (owner == NO_NODE) {
		q_push(&R.unrouted, c);
		return;
	}
	q_push(redo ? &R.nodes[owner]->redo : &R.nodes[owner]->queued, c);
}

/* After a topology change: move unsent user commands to their slot's new owner, keeping their order. */
static void reroute_all(void)
{
	cmdq_t old = R.unrouted;

	memset(&R.unrouted, 0, sizeof(R.unrouted));
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		node_t *n = R.nodes[i];

		for (int which = 0; which < 2; which++) {
			cmdq_t *q = which ? &n->queued : &n->redo, keep = { 0 };
			cmd_t *c;

			while ((c = q_pop(q))) {
				uint16_t owner = R.slots[c->slot];

				if (c->kind != K_USER || c->asking || owner == i || owner == NO_NODE)
					q_push(&keep, c);
				else
					q_push(which ? &R.nodes[owner]->queued : &R.nodes[owner]->redo, c);
			}
			*q = keep;
		}
	}
	for (cmd_t *c; (c = q_pop(&old));)
		route(c, false);
}

static void start_connect(node_t *n);

static void topo_refresh(node_t *prefer)
{
	node_t *t = NULL;
	cmd_t *c;
	static const char *argv[] = { "CLUSTER", "SLOTS" };

	if (R.mode == RDS_STANDALONE || R.slots_inflight)
		return;
	if (prefer && prefer->state == ST_UP)
		t = prefer;
	for (uint32_t i = 0; !t && i < R.n_nodes; i++)
		if (R.nodes[i]->state == ST_UP && R.nodes[i]->wanted)
			t = R.nodes[i];
	for (uint32_t i = 0; !t && i < R.n_nodes; i++)
		if (R.nodes[i]->state == ST_UP)
			t = R.nodes[i];
	R.refresh_wanted = true;
	if (!t || !(c = cmd_internal(K_SLOTS, 2, argv, NULL)))
		return;
	q_push(&t->redo, c);
	R.slots_inflight = true;
	R.refresh_wanted = false;
	R.refresh_at_ms = now_ms() + REFRESH_MIN_MS;
}

/* ---- connection life cycle ---- */

static void cancel_ud(uint64_t target)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_cancel64(sqe, target, 0);
	io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, 0, 0));
}

/* Once a closing node's last SQE has completed: close the socket and wait for the backoff deadline. */
static void try_reset(node_t *n)
{
	if (n->state != ST_CLOSING || n->refs)
		return;
	close(n->fd);
	n->fd = -1;
	n->out.sending.len = 0;
	n->out.pending.len = 0;
	n->out.off = 0;
	n->out.inflight = false;
	n->state = ST_IDLE;
	n->retry_at_ms = now_ms() + n->backoff_ms;
	n->backoff_ms = n->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : n->backoff_ms * 2;
	if (!n->wanted)
		reroute_all();
}

/*
 * Drop the connection: commands in flight get their outcome (-ECONNRESET, or -ETIMEDOUT for the one that
 * timed out), queued ones stay for the next connection. The socket is shut down and our SQEs cancelled; the
 * node is reset by try_reset when the last of them completes.
 */
static void node_fail(node_t *n, int err, enum problem p, const char *detail)
{
	cmdq_t lost;
	cmd_t *c;
	bool first = true;

	if (n->state == ST_IDLE || n->state == ST_CLOSING)
		return;
	report(n, p, err, detail);
	lost = n->inflight;
	memset(&n->inflight, 0, sizeof(n->inflight));
	while ((c = q_pop(&n->hs)))
		cmd_free(c);
	n->hs_left = 0;
	if (n->rd) {
		redisReaderFree(n->rd);
		n->rd = NULL;
	}
	n->out.pending.len = 0;
	shutdown(n->fd, SHUT_RDWR);
	if (n->connect_inflight)
		cancel_ud(ud(n, OP_CONNECT));
	if (n->recv_inflight)
		cancel_ud(ud(n, OP_RECV));
	if (n->out.inflight)
		cancel_ud(ud(n, OP_SEND));
	n->state = ST_CLOSING;
	/* Internal commands first: a callback may issue new commands, which must find a consistent state. */
	while ((c = q_pop(&lost))) {
		if (c->kind == K_USER) {
			c->asking = false;
			cmd_done(c, NULL, first && p == P_TIMEOUT ? -ETIMEDOUT : -ECONNRESET);
			first = false;
			continue;
		}
		if (c->kind == K_SLOTS) {
			R.slots_inflight = false;
			R.refresh_wanted = true;
		}
		cmd_free(c);
	}
	/* An unsent CLUSTER SLOTS must not wait for this node to come back: ask another node instead. */
	if (R.slots_inflight) {
		cmdq_t keep = { 0 };

		while ((c = q_pop(&n->redo))) {
			if (c->kind == K_SLOTS) {
				R.slots_inflight = false;
				cmd_free(c);
			} else {
				q_push(&keep, c);
			}
		}
		n->redo = keep;
	}
	if (R.mode == RDS_CLUSTER)
		topo_refresh(NULL);
	try_reset(n);
}

static void arm_recv(node_t *n)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_recv(sqe, n->fd, n->rbuf, RBUF_SIZE, 0);
	io_uring_sqe_set_data64(sqe, ud(n, OP_RECV));
	n->recv_inflight = true;
	n->refs++;
}

static void start_connect(node_t *n)
{
	struct io_uring_sqe *sqe;
	int fd, one = 1;

	fd = socket(n->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		report(n, P_UNREACH, errno, NULL);
		n->retry_at_ms = now_ms() + n->backoff_ms;
		n->backoff_ms = n->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : n->backoff_ms * 2;
		return;
	}
	/* Pipelined small commands: do not let Nagle hold a turn's batch back for the previous ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	n->fd = fd;
	n->gen = next_gen();
	n->state = ST_CONNECTING;
	n->deadline_ms = now_ms() + R.connect_timeout_ms;
	sqe = loop_sqe();
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&n->sa, n->salen);
	io_uring_sqe_set_data64(sqe, ud(n, OP_CONNECT));
	n->connect_inflight = true;
	n->refs++;
}

static void node_up(node_t *n)
{
	n->state = ST_UP;
	if (n->problem != P_NONE)
		log_info("redis %s reachable again after %llu ms", n->name,
			(unsigned long long)(now_ms() - n->down_since_ms));
	else if (!n->ever_up)
		log_info("redis %s connected", n->name);
	n->problem = P_NONE;
	n->ever_up = true;
	n->backoff_ms = BACKOFF_MIN_MS;
	if (R.refresh_wanted && now_ms() >= R.refresh_at_ms)
		topo_refresh(n);
}

/* Connected: AUTH, SELECT and the function libraries go first; user commands wait for their replies. */
static int handshake(node_t *n)
{
	cmd_t *c;

	if (R.password && *R.password) {
		const char *argv[3] = { "AUTH", R.user, R.password };
		const char **a = argv;
		int argc = 3;

		if (!R.user || !*R.user) {
			argv[1] = R.password;
			argc = 2;
		}
		if (!(c = cmd_internal(K_AUTH, argc, a, NULL)))
			return -ENOMEM;
		q_push(&n->hs, c);
	}
	if (R.db && R.mode != RDS_CLUSTER) {
		char db[16];
		const char *argv[2] = { "SELECT", db };

		snprintf(db, sizeof(db), "%d", R.db);
		if (!(c = cmd_internal(K_SELECT, 2, argv, NULL)))
			return -ENOMEM;
		q_push(&n->hs, c);
	}
	for (uint32_t i = 0; i < R.n_libs; i++) {
		if (!(c = cmd_copy_sds(K_FLOAD_HS, R.libs[i])))
			return -ENOMEM;
		q_push(&n->hs, c);
	}
	n->hs_left = n->hs.len;
	return 0;
}

static void on_connect(node_t *n, int res)
{
	n->refs--;
	n->connect_inflight = false;
	if (n->state != ST_CONNECTING) {
		try_reset(n);
		return;
	}
	if (res < 0) {
		node_fail(n, -res, P_UNREACH, NULL);
		return;
	}
	n->state = ST_HANDSHAKE;
	n->load_seq = 0;
	n->rd = redisReaderCreate();
	if (!n->rd || handshake(n) < 0) {
		node_fail(n, ENOMEM, P_LOST, NULL);
		return;
	}
	arm_recv(n);
	if (!n->hs_left)
		node_up(n);
}

/* ---- replies ---- */

static void log_fload_error(const node_t *n, const char *msg)
{
	if (!strncasecmp(msg, "ERR unknown command", 19))
		log_error(0, "redis %s does not know FUNCTION: Redis >= 7.0 is required for the session store", n->name);
	else
		log_error(0, "redis %s refused the function library: %s", n->name, msg);
}

/* MOVED/ASK: send the command again to the node Redis names. Returns true if c was re-queued. */
static bool redirect(node_t *n, cmd_t *c, const redisReply *r)
{
	char host[64];
	const char *p, *colon;
	unsigned long slot, port;
	bool ask;
	char *end;
	node_t *t;
	int err;

	if (!strncmp(r->str, "MOVED ", 6))
		ask = false;
	else if (!strncmp(r->str, "ASK ", 4))
		ask = true;
	else
		return false;
	if (c->redirects >= MAX_REDIRECTS) {
		log_warn(0, "redis: slot %u redirected %d times in a row; giving the error to the caller", c->slot,
			MAX_REDIRECTS);
		return false;
	}
	p = r->str + (ask ? 4 : 6);
	slot = strtoul(p, &end, 10);
	if (end == p || *end != ' ' || slot >= SLOT_COUNT)
		return false;
	p = end + 1;
	colon = strrchr(p, ':');    /* IPv6 endpoints come unbracketed: the port follows the last colon */
	if (!colon || (size_t)(colon - p) >= sizeof(host))
		return false;
	port = strtoul(colon + 1, &end, 10);
	if (*end || !port || port > 65535)
		return false;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = 0;
	/* An empty or "?" endpoint means "the address you reached me on" (cluster-preferred-endpoint-type). */
	if (!*host || !strcmp(host, "?"))
		snprintf(host, sizeof(host), "%s", n->host);
	t = node_get(host, (uint16_t)port, true, &err);
	if (!t) {
		log_warn(-err, "redis: cannot follow %s to %s:%lu", ask ? "ASK" : "MOVED", host, port);
		return false;
	}
	c->redirects++;
	c->asking = ask;
	t->wanted = true;
	if (!ask) {
		R.slots[slot] = (uint16_t)t->idx;
		R.refresh_wanted = true;
	}
	q_push(&t->redo, c);
	if (t->state == ST_IDLE && now_ms() >= t->retry_at_ms)
		start_connect(t);
	return true;
}

/* FCALL answered "Function not found": load the libraries again on this node (once per burst) and retry. */
static bool fn_retry(node_t *n, cmd_t *c, const redisReply *r)
{
	if (!c->fcall || c->fn_retried || !R.n_libs)
		return false;
	if (strncmp(r->str, "NOSCRIPT", 8) && !strstr(r->str, "Function not found"))
		return false;
	c->fn_retried = true;
	if (c->load_seq == n->load_seq) {
		n->load_seq++;
		log_info("redis %s lost the function library (FUNCTION FLUSH or new master): loading it again",
			n->name);
		for (uint32_t i = 0; i < R.n_libs; i++) {
			cmd_t *l = cmd_copy_sds(K_FLOAD, R.libs[i]);

			if (!l)
				return false;
			q_push(&n->redo, l);
		}
	}
	q_push(&n->redo, c);
	return true;
}

static void on_slots(node_t *n, const redisReply *r)
{
	uint16_t *map;
	uint32_t covered = 0, masters = 0;

	R.slots_inflight = false;
	R.refresh_at_ms = now_ms() + REFRESH_MIN_MS;
	if (r->type == REDIS_REPLY_ERROR) {
		if (strstr(r->str, "cluster support disabled") && R.mode == RDS_AUTO) {
			R.mode = RDS_STANDALONE;
			for (uint32_t s = 0; s < SLOT_COUNT; s++)
				R.slots[s] = (uint16_t)n->idx;
			for (uint32_t i = 0; i < R.n_nodes; i++)
				R.nodes[i]->wanted = R.nodes[i] == n;
			R.topo_known = true;
			R.refresh_wanted = false;
			log_info("redis %s is a standalone server (no cluster)", n->name);
			reroute_all();
			return;
		}
		log_warn(0, "redis %s refused CLUSTER SLOTS: %s — retrying", n->name, r->str);
		R.refresh_wanted = true;
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || !(map = malloc(SLOT_COUNT * sizeof(*map)))) {
		R.refresh_wanted = true;
		return;
	}
	for (uint32_t s = 0; s < SLOT_COUNT; s++)
		map[s] = NO_NODE;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i], *m;
		char host[64];
		node_t *t;
		int err;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
			e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY)
			continue;
		m = e->element[2];
		if (m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
			m->element[1]->type != REDIS_REPLY_INTEGER || m->element[1]->integer <= 0 ||
			m->element[1]->integer > 65535 || m->element[0]->len >= sizeof(host))
			continue;
		memcpy(host, m->element[0]->str, m->element[0]->len);
		host[m->element[0]->len] = 0;
		if (!*host || !strcmp(host, "?"))
			snprintf(host, sizeof(host), "%s", n->host);
		t = node_get(host, (uint16_t)m->element[1]->integer, true, &err);
		if (!t) {
			log_warn(-err, "redis: CLUSTER SLOTS names %s:%lld, which cannot be used (IP addresses only)",
				host, m->element[1]->integer);
			continue;
		}
		for (long long s = e->element[0]->integer; s <= e->element[1]->integer && s < SLOT_COUNT; s++) {
			if (s < 0)
				continue;
			map[s] = (uint16_t)t->idx;
			covered++;
		}
	}
	if (!covered) {
		log_warn(0, "redis %s: the cluster has no slots assigned yet — retrying", n->name);
		free(map);
		R.refresh_wanted = true;
		return;
	}
	if (R.mode == RDS_AUTO)
		R.mode = RDS_CLUSTER;
	memcpy(R.slots, map, SLOT_COUNT * sizeof(*map));
	free(map);
	for (uint32_t i = 0; i < R.n_nodes; i++)
		R.nodes[i]->wanted = false;
	for (uint32_t s = 0; s < SLOT_COUNT; s++)
		if (R.slots[s] != NO_NODE && !R.nodes[R.slots[s]]->wanted) {
			R.nodes[R.slots[s]]->wanted = true;
			masters++;
		}
	if (!R.topo_known)
		log_info("redis cluster: %u masters, %u of %u slots assigned", masters, covered, SLOT_COUNT);
	R.topo_known = true;
	R.refresh_wanted = covered < SLOT_COUNT;
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		node_t *t = R.nodes[i];

		if (t->wanted && t->state == ST_IDLE && now_ms() >= t->retry_at_ms)
			start_connect(t);
	}
	reroute_all();
}

/* One reply for the head of n's inflight FIFO. */
static void on_reply(node_t *n, cmd_t *c, const redisReply *r)
{
	bool err = r->type == REDIS_REPLY_ERROR;

	switch (c->kind) {
	case K_USER:
		if (err && (redirect(n, c, r) || fn_retry(n, c, r)))
			return;
		cmd_done(c, r, 0);
		return;
	case K_AUTH:
	case K_SELECT:
	case K_FLOAD_HS:
		if (err && !strncmp(r->str, "LOADING", 7)) {
			cmd_free(c);
			node_fail(n, 0, P_LOADING, r->str);
			return;
		}
		if (err && c->kind != K_FLOAD_HS) {
			enum problem p = c->kind == K_AUTH ? P_AUTH : P_SELECT;

			cmd_free(c);
			node_fail(n, 0, p, r->str);
			return;
		}
		if (err)
			log_fload_error(n, r->str);
		cmd_free(c);
		if (n->hs_left && !--n->hs_left)
			node_up(n);
		return;
	case K_FLOAD:
		if (err)
			log_fload_error(n, r->str);
		break;
	case K_SLOTS:
		on_slots(n, r);
		break;
	case K_ASKING:
	default:
		break;
	}
	cmd_free(c);
}

static void on_recv(node_t *n, int res)
{
	n->refs--;
	n->recv_inflight = false;
	if (!node_alive(n)) {
		try_reset(n);
		return;
	}
	if (res <= 0) {
		node_fail(n, res < 0 ? -res : 0, P_LOST, "closed by the server");
		return;
	}
	if (redisReaderFeed(n->rd, (const char *)n->rbuf, (size_t)res) != REDIS_OK) {
		node_fail(n, 0, P_PROTO, n->rd->errstr);
		return;
	}
	while (node_alive(n)) {
		void *reply = NULL;
		cmd_t *c;

		if (redisReaderGetReply(n->rd, &reply) != REDIS_OK) {
			node_fail(n, 0, P_PROTO, n->rd->errstr);
			return;
		}
		if (!reply)
			break;
		c = q_pop(&n->inflight);
		if (!c) {
			freeReplyObject(reply);
			node_fail(n, 0, P_PROTO, "a reply without a command");
			return;
		}
		on_reply(n, c, reply);
		freeReplyObject(reply);
	}
	if (node_alive(n))
		arm_recv(n);
	try_reset(n);
}

static void on_send(node_t *n, int res)
{
	n->refs--;
	if (!node_alive(n)) {
		n->out.inflight = false;
		try_reset(n);
		return;
	}
	if (res <= 0) {
		n->out.inflight = false;
		node_fail(n, res < 0 ? -res : EPIPE, P_LOST, NULL);
		return;
	}
	if (outq_sent(&n->out, n->fd, ud(n, OP_SEND), res))
		n->refs++;
}

/* ---- timer: backoff, connect and command timeouts, topology refresh ---- */

static void tick(void)
{
	uint64_t now = now_ms();

	for (uint32_t i = 0; i < R.n_nodes; i++) {
		node_t *n = R.nodes[i];

		if (n->state == ST_CONNECTING && now >= n->deadline_ms)
			node_fail(n, ETIMEDOUT, P_UNREACH, NULL);
		else if (node_alive(n) && n->inflight.head && now - n->inflight.head->sent_ms >= R.command_timeout_ms)
			node_fail(n, ETIMEDOUT, P_TIMEOUT, NULL);
		else if (n->state == ST_IDLE && n->wanted && now >= n->retry_at_ms)
			start_connect(n);
		/* A master that stays down may have been replaced by a failover: look again (rate-limited). */
		if (R.mode == RDS_CLUSTER && n->wanted && n->state != ST_UP)
			R.refresh_wanted = true;
	}
	if (R.refresh_wanted && now >= R.refresh_at_ms)
		topo_refresh(NULL);
}

static bool need_timer(void)
{
	if (R.refresh_wanted || !R.topo_known)
		return true;
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		const node_t *n = R.nodes[i];

		if (n->state == ST_CONNECTING || n->state == ST_HANDSHAKE || n->inflight.len ||
			(n->state == ST_IDLE && n->wanted))
			return true;
	}
	return false;
}

/* ---- exported ---- */

uint16_t rds_key_slot(const void *key, size_t len)
{
	const char *k = key, *open = memchr(k, '{', len);

	if (open) {
		size_t rest = len - (size_t)(open + 1 - k);
		const char *close = memchr(open + 1, '}', rest);

		if (close && close > open + 1)
			return slot_crc16(open + 1, (size_t)(close - open - 1)) % SLOT_COUNT;
	}
	return slot_crc16(k, len) % SLOT_COUNT;
}

static char *dup_opt(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int rds_init(const rds_config_t *cfg)
{
	const char *p;
	int err = 0;

	if (R.active || !cfg || !cfg->addrs)
		return -EINVAL;
	memset(&R, 0, sizeof(R));
	R.mode = cfg->mode;
	R.db = cfg->db;
	R.connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 2000;
	R.command_timeout_ms = cfg->command_timeout_ms ? cfg->command_timeout_ms : 5000;
	R.max_pending = cfg->max_pending ? cfg->max_pending : 100000;
	R.addrs = strdup(cfg->addrs);
	R.user = dup_opt(cfg->user);
	R.password = dup_opt(cfg->password);
	R.slots = malloc(SLOT_COUNT * sizeof(*R.slots));
	if (!R.addrs || (cfg->user && *cfg->user && !R.user) || (cfg->password && *cfg->password && !R.password) ||
		!R.slots) {
		err = -ENOMEM;
		goto err_free;
	}
	for (uint32_t s = 0; s < SLOT_COUNT; s++)
		R.slots[s] = NO_NODE;
	for (p = R.addrs; *p;) {
		size_t len = strcspn(p, ",");
		const char *a = p;
		char host[64];
		uint16_t port;

		p += len + (p[len] == ',');
		while (len && (*a == ' ' || *a == '\t'))
			a++, len--;
		while (len && (a[len - 1] == ' ' || a[len - 1] == '\t'))
			len--;
		if (!len)
			continue;
		if (parse_addr(a, len, host, sizeof(host), &port) < 0 || !node_get(host, port, false, &err)) {
			log_error(0, "redis address '%.*s' %s — set --redis-addrs to host:port[,host:port...]", (int)len, a,
				err == -ENOMEM ? ": out of memory" : "cannot be parsed or resolved");
			err = err == -ENOMEM ? err : -EINVAL;
			goto err_free;
		}
	}
	if (!R.n_nodes) {
		log_error(0, "redis: no address given — set --redis-addrs to host:port[,host:port...]");
		err = -EINVAL;
		goto err_free;
	}
	if (R.mode == RDS_STANDALONE) {
		if (R.n_nodes > 1)
			log_warn(0, "redis: standalone mode uses only the first of %u addresses", R.n_nodes);
		for (uint32_t s = 0; s < SLOT_COUNT; s++)
			R.slots[s] = 0;
		R.nodes[0]->wanted = true;
		R.topo_known = true;
	} else {
		if (R.mode == RDS_CLUSTER && R.db)
			log_warn(0, "redis: Redis Cluster has db 0 only; --redis-db %d ignored", R.db);
		for (uint32_t i = 0; i < R.n_nodes; i++)
			R.nodes[i]->wanted = true;
		R.refresh_wanted = true;
	}
	R.timer_gen = next_gen();
	R.active = true;
	for (uint32_t i = 0; i < R.n_nodes; i++)
		if (R.nodes[i]->wanted)
			start_connect(R.nodes[i]);
	return 0;

err_free:
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		free(R.nodes[i]->rbuf);
		free(R.nodes[i]);
	}
	free(R.nodes);
	free(R.slots);
	free(R.addrs);
	free(R.user);
	free(R.password);
	memset(&R, 0, sizeof(R));
	return err;
}

static void sync_cancel(uint64_t target)
{
	struct io_uring_sync_cancel_reg reg;

	memset(&reg, 0, sizeof(reg));
	reg.addr = target;
	reg.timeout.tv_sec = 1;
	reg.timeout.tv_nsec = 0;
	io_uring_register_sync_cancel(&W->ring, &reg);
}

static void fail_queue(cmdq_t *q, int err)
{
	for (cmd_t *c; (c = q_pop(q));) {
		if (c->kind == K_USER)
			cmd_done(c, NULL, err);
		else
			cmd_free(c);
	}
}

void rds_finish(void)
{
	if (!R.active)
		return;
	/* Everything queued must reach the kernel first, or it would be submitted after we free its buffers. */
	io_uring_submit(&W->ring);
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		node_t *n = R.nodes[i];

		if (n->fd < 0)
			continue;
		shutdown(n->fd, SHUT_RDWR);
		if (n->connect_inflight)
			sync_cancel(ud(n, OP_CONNECT));
		if (n->recv_inflight)
			sync_cancel(ud(n, OP_RECV));
		if (n->out.inflight)
			sync_cancel(ud(n, OP_SEND));
	}
	if (R.timer_armed)
		sync_cancel(ud_make(UD_RDS, R.timer_gen, TIMER_IDX));
	/* Callbacks may try to issue commands: they get -EINVAL from here on. */
	R.active = false;
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		node_t *n = R.nodes[i];

		fail_queue(&n->inflight, -ECANCELED);
		fail_queue(&n->hs, -ECANCELED);
		fail_queue(&n->redo, -ECANCELED);
		fail_queue(&n->queued, -ECANCELED);
	}
	fail_queue(&R.unrouted, -ECANCELED);
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		node_t *n = R.nodes[i];

		if (n->fd >= 0)
			close(n->fd);
		if (n->rd)
			redisReaderFree(n->rd);
		outq_finish(&n->out);
		free(n->rbuf);
		free(n);
	}
	for (uint32_t i = 0; i < R.n_libs; i++)
		sdsfree(R.libs[i]);
	free(R.libs);
	free(R.nodes);
	free(R.slots);
	free(R.addrs);
	free(R.user);
	free(R.password);
	memset(&R, 0, sizeof(R));
}

int rds_command(uint16_t slot, int argc, const char **argv, const size_t *lens, rds_cb cb, void *ctx)
{
	cmd_t *c;

	if (!R.active || argc < 1 || !argv)
		return -EINVAL;
	if (R.pending >= R.max_pending)
		return -EAGAIN;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (redisFormatSdsCommandArgv(&c->buf, argc, argv, lens) < 0) {
		free(c);
		return -ENOMEM;
	}
	c->kind = K_USER;
	c->cb = cb;
	c->ctx = ctx;
	c->slot = slot % SLOT_COUNT;
	c->fcall = !strcasecmp(argv[0], "FCALL") || !strcasecmp(argv[0], "FCALL_RO");
	R.pending++;
	route(c, false);
	return 0;
}

int rds_function_register(const char *src, size_t len)
{
	const char *argv[4] = { "FUNCTION", "LOAD", "REPLACE", src };
	size_t lens[4] = { 8, 4, 7, len };
	sds *libs, f = NULL;

	if (!R.active || !src)
		return -EINVAL;
	libs = realloc(R.libs, (R.n_libs + 1) * sizeof(*libs));
	if (!libs)
		return -ENOMEM;
	R.libs = libs;
	if (redisFormatSdsCommandArgv(&f, 4, argv, lens) < 0)
		return -ENOMEM;
	R.libs[R.n_libs++] = f;
	/* Connections past AUTH get it now, ahead of any command not written yet; new ones in their handshake. */
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		node_t *n = R.nodes[i];
		cmd_t *c;

		if (!node_alive(n))
			continue;
		if (!(c = cmd_copy_sds(K_FLOAD, f)))
			return -ENOMEM;
		q_push(&n->redo, c);
	}
	return 0;
}

bool rds_ready(void)
{
	if (!R.active || !R.topo_known)
		return false;
	for (uint32_t i = 0; i < R.n_nodes; i++)
		if (R.nodes[i]->wanted && R.nodes[i]->state != ST_UP)
			return false;
	return true;
}

size_t rds_pending(void)
{
	return R.pending;
}

void rds_on_cqe(uint64_t ud_, struct io_uring_cqe *cqe)
{
	uint32_t idx = ud_idx(ud_);
	node_t *n;

	if (!R.active)
		return;
	if (idx == TIMER_IDX) {
		if (ud_gen(ud_) != R.timer_gen)
			return;
		R.timer_armed = false;
		tick();
		return;
	}
	if (idx / 4 >= R.n_nodes)
		return;
	n = R.nodes[idx / 4];
	if (ud_gen(ud_) != n->gen)
		return;
	switch (idx % 4) {
	case OP_CONNECT:
		on_connect(n, cqe->res);
		break;
	case OP_RECV:
		on_recv(n, cqe->res);
		break;
	case OP_SEND:
		on_send(n, cqe->res);
		break;
	default:
		break;
	}
}

/* Append n's writable lists to its outq: everything moves to inflight in the order written. */
static void write_list(node_t *n, cmdq_t *q)
{
	cmd_t *c;

	while ((c = q->head)) {
		size_t ask_len = c->asking ? sizeof(ASKING_CMD) - 1 : 0, len = c->buf ? sdslen(c->buf) : 0;
		uint8_t *dst = outq_reserve(&n->out, ask_len + len);
		cmd_t *ask = NULL;

		if (!dst || (c->asking && !(ask = cmd_internal(K_ASKING, 0, NULL, NULL)))) {
			log_warn(ENOMEM, "redis %s: cannot queue commands; retrying next turn", n->name);
			return;
		}
		q_pop(q);
		if (ask) {
			memcpy(dst, ASKING_CMD, ask_len);
			ask->sent_ms = now_ms();
			q_push(&n->inflight, ask);
			c->asking = false;
		}
		memcpy(dst + ask_len, c->buf, len);
		n->out.pending.len += (uint32_t)(ask_len + len);
		c->sent_ms = now_ms();
		c->load_seq = n->load_seq;
		q_push(&n->inflight, c);
	}
}

void rds_flush_all(void)
{
	if (!R.active)
		return;
	for (uint32_t i = 0; i < R.n_nodes; i++) {
		node_t *n = R.nodes[i];

		if (!node_alive(n))
			continue;
		write_list(n, &n->hs);
		if (n->state == ST_UP) {
			write_list(n, &n->redo);
			write_list(n, &n->queued);
		}
		if (outq_start(&n->out, n->fd, ud(n, OP_SEND)))
			n->refs++;
	}
	if (!R.timer_armed && need_timer()) {
		struct io_uring_sqe *sqe = loop_sqe();

		R.ts.tv_sec = 0;
		R.ts.tv_nsec = TICK_MS * 1000000LL;
		io_uring_prep_timeout(sqe, &R.ts, 0, 0);
		io_uring_sqe_set_data64(sqe, ud_make(UD_RDS, R.timer_gen, TIMER_IDX));
		R.timer_armed = true;
	}
}

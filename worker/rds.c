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
 * user_data: ud_make(<our completion kind>, gen, idx): idx = node index * 4 + op (connect, recv, send), gen = the node's
 * socket generation, drawn from a process-wide counter so completions of a dropped socket (or of a previous
 * rds_init) never match. The module timer uses idx TIMER_IDX.
 *
 * Time: one module timer (100 ms, IORING_OP_TIMEOUT) drives reconnect backoff, connect and command timeouts
 * and topology refreshes. It is armed by rds_flush_all only while something needs watching (a node down or
 * connecting, commands in flight), so loop.c needs no rds_tick() and an idle worker gets no extra wake-ups.
 *
 * Slot routing, CLUSTER SLOTS, MOVED/ASK and address handling live in rds_cluster.c.
 */
#include "rds_cluster.h"

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

#define TIMER_IDX 0xffffffffu
#define TICK_MS 100
#define BACKOFF_MAX_MS 5000

static const char ASKING_CMD[] = "*1\r\n$6\r\nASKING\r\n";

/* Our completion kind, from loop_register. */
static uint8_t kind_rds;

static void on_cqe(uint64_t ud, struct io_uring_cqe *cqe);
static void flush_all(void);

rds_state_t rds_st;

/* Process-wide so that completions from an earlier rds_init cycle never match a new node. */
static uint32_t gen_seq;

static uint32_t next_gen(void)
{
	gen_seq = (gen_seq + 1) & 0xffffff;
	if (!gen_seq)
		gen_seq = 1;
	return gen_seq;
}

/* ---- command FIFOs ---- */

void rds_cmd_free(cmd_t *c)
{
	if (!c)
		return;
	sdsfree(c->buf);
	free(c);
}

cmd_t *rds_cmd_internal(enum kind kind, int argc, const char **argv, const size_t *lens)
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
	rds_st.pending--;
	if (c->cb)
		c->cb(c->ctx, reply, err);
	rds_cmd_free(c);
}

/* ---- addresses and nodes ---- */

static uint64_t ud(const node_t *n, enum op op)
{
	return ud_make(kind_rds, n->gen, n->idx * 4 + op);
}

/* ---- logging, once per change of a node's problem ---- */

static void report(node_t *n, enum problem p, int err, const char *detail)
{
	const char *why = err ? strerror(err) : (detail ? detail : "unknown error");

	if (n->problem == p)
		return;
	if (n->problem == P_NONE)
		n->down_since_ms = rds_now_ms();
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
			"overloaded (SLOWLOG GET)? raise --redis-command-timeout-ms", n->name, rds_st.command_timeout_ms);
		break;
	case P_AUTH:
		log_error(0, "redis %s rejected authentication: %s — set --redis-user/--redis-password", n->name, why);
		break;
	case P_SELECT:
		log_error(0, "redis %s rejected SELECT %d: %s — set --redis-db (Redis Cluster has db 0 only)",
			n->name, rds_st.db, why);
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

/* ---- connection life cycle ---- */

static void cancel_ud(uint64_t target)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_cancel64(sqe, target, 0);
	io_uring_sqe_set_data64(sqe, ud_make(LOOP_IGNORE, 0, 0));
}

/* Once a closing node's last SQE has completed: close the socket and wait for the backoff deadline. */
static void try_reset(node_t *n)
{
	if (n->state != ST_CLOSING || n->refs)
		return;
	close(n->fd);
	n->fd = -1;
	n->out.inflight = false;
	outq_reset(&n->out);
	n->state = ST_IDLE;
	n->retry_at_ms = rds_now_ms() + n->backoff_ms;
	n->backoff_ms = n->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : n->backoff_ms * 2;
	if (!n->wanted)
		rds_reroute_all();
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
		rds_cmd_free(c);
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
			rds_st.slots_inflight = false;
			rds_st.refresh_wanted = true;
		}
		rds_cmd_free(c);
	}
	/* An unsent CLUSTER SLOTS must not wait for this node to come back: ask another node instead. */
	if (rds_st.slots_inflight) {
		cmdq_t keep = { 0 };

		while ((c = q_pop(&n->redo))) {
			if (c->kind == K_SLOTS) {
				rds_st.slots_inflight = false;
				rds_cmd_free(c);
			} else {
				q_push(&keep, c);
			}
		}
		n->redo = keep;
	}
	if (rds_st.mode == RDS_CLUSTER)
		rds_topo_refresh(NULL);
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

void rds_start_connect(node_t *n)
{
	struct io_uring_sqe *sqe;
	int fd, one = 1;

	fd = socket(n->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		report(n, P_UNREACH, errno, NULL);
		n->retry_at_ms = rds_now_ms() + n->backoff_ms;
		n->backoff_ms = n->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : n->backoff_ms * 2;
		return;
	}
	/* Pipelined small commands: do not let Nagle hold a turn's batch back for the previous ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	n->fd = fd;
	n->gen = next_gen();
	n->state = ST_CONNECTING;
	n->deadline_ms = rds_now_ms() + rds_st.connect_timeout_ms;
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
			(unsigned long long)(rds_now_ms() - n->down_since_ms));
	else if (!n->ever_up)
		log_info("redis %s connected", n->name);
	n->problem = P_NONE;
	n->ever_up = true;
	n->backoff_ms = BACKOFF_MIN_MS;
	if (rds_st.refresh_wanted && rds_now_ms() >= rds_st.refresh_at_ms)
		rds_topo_refresh(n);
}

/* Connected: AUTH, SELECT and the function libraries go first; user commands wait for their replies. */
static int handshake(node_t *n)
{
	cmd_t *c;

	if (rds_st.password && *rds_st.password) {
		const char *argv[3] = { "AUTH", rds_st.user, rds_st.password };
		const char **a = argv;
		int argc = 3;

		if (!rds_st.user || !*rds_st.user) {
			argv[1] = rds_st.password;
			argc = 2;
		}
		if (!(c = rds_cmd_internal(K_AUTH, argc, a, NULL)))
			return -ENOMEM;
		q_push(&n->hs, c);
	}
	if (rds_st.db && rds_st.mode != RDS_CLUSTER) {
		char db[16];
		const char *argv[2] = { "SELECT", db };

		snprintf(db, sizeof(db), "%d", rds_st.db);
		if (!(c = rds_cmd_internal(K_SELECT, 2, argv, NULL)))
			return -ENOMEM;
		q_push(&n->hs, c);
	}
	for (uint32_t i = 0; i < rds_st.n_libs; i++) {
		if (!(c = cmd_copy_sds(K_FLOAD_HS, rds_st.libs[i])))
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

/* FCALL answered "Function not found": load the libraries again on this node (once per burst) and retry. */
static bool fn_retry(node_t *n, cmd_t *c, const redisReply *r)
{
	if (!c->fcall || c->fn_retried || !rds_st.n_libs)
		return false;
	if (strncmp(r->str, "NOSCRIPT", 8) && !strstr(r->str, "Function not found"))
		return false;
	c->fn_retried = true;
	if (c->load_seq == n->load_seq) {
		n->load_seq++;
		log_info("redis %s lost the function library (FUNCTION FLUSH or new master): loading it again",
			n->name);
		for (uint32_t i = 0; i < rds_st.n_libs; i++) {
			cmd_t *l = cmd_copy_sds(K_FLOAD, rds_st.libs[i]);

			if (!l)
				return false;
			q_push(&n->redo, l);
		}
	}
	q_push(&n->redo, c);
	return true;
}

/* One reply for the head of n's inflight FIFO. */
static void on_reply(node_t *n, cmd_t *c, const redisReply *r)
{
	bool err = r->type == REDIS_REPLY_ERROR;

	switch (c->kind) {
	case K_USER:
		if (err && (rds_redirect(n, c, r) || fn_retry(n, c, r)))
			return;
		cmd_done(c, r, 0);
		return;
	case K_AUTH:
	case K_SELECT:
	case K_FLOAD_HS:
		if (err && !strncmp(r->str, "LOADING", 7)) {
			rds_cmd_free(c);
			node_fail(n, 0, P_LOADING, r->str);
			return;
		}
		if (err && c->kind != K_FLOAD_HS) {
			enum problem p = c->kind == K_AUTH ? P_AUTH : P_SELECT;

			rds_cmd_free(c);
			node_fail(n, 0, p, r->str);
			return;
		}
		if (err)
			log_fload_error(n, r->str);
		rds_cmd_free(c);
		if (n->hs_left && !--n->hs_left)
			node_up(n);
		return;
	case K_FLOAD:
		if (err)
			log_fload_error(n, r->str);
		break;
	case K_SLOTS:
		rds_on_slots(n, r);
		break;
	case K_ASKING:
	default:
		break;
	}
	rds_cmd_free(c);
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

/* Start the next send of n's output queue, if there is something to send and nothing in flight. */
static void send_next(node_t *n)
{
	const uint8_t *p;
	size_t len;

	if (outq_next(&n->out, &p, &len)) {
		loop_send(n->fd, p, len, ud(n, OP_SEND));
		n->refs++;
	}
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
	if (outq_sent(&n->out, res))
		send_next(n);
}

/* ---- timer: backoff, connect and command timeouts, topology refresh ---- */

static void tick(void)
{
	uint64_t now = rds_now_ms();

	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		node_t *n = rds_st.nodes[i];

		if (n->state == ST_CONNECTING && now >= n->deadline_ms)
			node_fail(n, ETIMEDOUT, P_UNREACH, NULL);
		else if (node_alive(n) && n->inflight.head && now - n->inflight.head->sent_ms >= rds_st.command_timeout_ms)
			node_fail(n, ETIMEDOUT, P_TIMEOUT, NULL);
		else if (n->state == ST_IDLE && n->wanted && now >= n->retry_at_ms)
			rds_start_connect(n);
		/* A master that stays down may have been replaced by a failover: look again (rate-limited). */
		if (rds_st.mode == RDS_CLUSTER && n->wanted && n->state != ST_UP)
			rds_st.refresh_wanted = true;
	}
	if (rds_st.refresh_wanted && now >= rds_st.refresh_at_ms)
		rds_topo_refresh(NULL);
}

static bool need_timer(void)
{
	if (rds_st.refresh_wanted || !rds_st.topo_known)
		return true;
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		const node_t *n = rds_st.nodes[i];

		if (n->state == ST_CONNECTING || n->state == ST_HANDSHAKE || n->inflight.len ||
			(n->state == ST_IDLE && n->wanted))
			return true;
	}
	return false;
}

/* ---- exported ---- */

uint16_t rds_key_slot(const void *key, size_t len)
{
	return slot_of_key(key, len);
}

static char *dup_opt(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int rds_init(const rds_config_t *cfg)
{
	const char *p;
	int err = 0;

	if (rds_st.active || !cfg || !cfg->addrs)
		return -EINVAL;
	memset(&rds_st, 0, sizeof(rds_st));
	rds_st.mode = cfg->mode;
	rds_st.db = cfg->db;
	rds_st.connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 2000;
	rds_st.command_timeout_ms = cfg->command_timeout_ms ? cfg->command_timeout_ms : 5000;
	rds_st.max_pending = cfg->max_pending ? cfg->max_pending : 100000;
	rds_st.addrs = strdup(cfg->addrs);
	rds_st.user = dup_opt(cfg->user);
	rds_st.password = dup_opt(cfg->password);
	rds_st.slots = malloc(SLOT_COUNT * sizeof(*rds_st.slots));
	if (!rds_st.addrs || (cfg->user && *cfg->user && !rds_st.user) ||
		(cfg->password && *cfg->password && !rds_st.password) || !rds_st.slots) {
		err = -ENOMEM;
		goto err_free;
	}
	for (uint32_t s = 0; s < SLOT_COUNT; s++)
		rds_st.slots[s] = NO_NODE;
	for (p = rds_st.addrs; *p;) {
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
		if (rds_parse_addr(a, len, host, sizeof(host), &port) < 0 || !rds_node_get(host, port, false, &err)) {
			log_error(0, "redis address '%.*s' %s — set --redis-addrs to host:port[,host:port...]", (int)len, a,
				err == -ENOMEM ? ": out of memory" : "cannot be parsed or resolved");
			err = err == -ENOMEM ? err : -EINVAL;
			goto err_free;
		}
	}
	if (!rds_st.n_nodes) {
		log_error(0, "redis: no address given — set --redis-addrs to host:port[,host:port...]");
		err = -EINVAL;
		goto err_free;
	}
	if (rds_st.mode == RDS_STANDALONE) {
		if (rds_st.n_nodes > 1)
			log_warn(0, "redis: standalone mode uses only the first of %u addresses", rds_st.n_nodes);
		for (uint32_t s = 0; s < SLOT_COUNT; s++)
			rds_st.slots[s] = 0;
		rds_st.nodes[0]->wanted = true;
		rds_st.topo_known = true;
	} else {
		if (rds_st.mode == RDS_CLUSTER && rds_st.db)
			log_warn(0, "redis: Redis Cluster has db 0 only; --redis-db %d ignored", rds_st.db);
		for (uint32_t i = 0; i < rds_st.n_nodes; i++)
			rds_st.nodes[i]->wanted = true;
		rds_st.refresh_wanted = true;
	}
	rds_st.timer_gen = next_gen();
	rds_st.active = true;
	kind_rds = loop_register("redis", on_cqe);
	loop_on_flush(flush_all, LOOP_ORDER_RDS);
	for (uint32_t i = 0; i < rds_st.n_nodes; i++)
		if (rds_st.nodes[i]->wanted)
			rds_start_connect(rds_st.nodes[i]);
	return 0;

err_free:
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		free(rds_st.nodes[i]->rbuf);
		free(rds_st.nodes[i]);
	}
	free(rds_st.nodes);
	free(rds_st.slots);
	free(rds_st.addrs);
	free(rds_st.user);
	free(rds_st.password);
	memset(&rds_st, 0, sizeof(rds_st));
	return err;
}

static void sync_cancel(uint64_t target)
{
	struct io_uring_sync_cancel_reg reg;

	memset(&reg, 0, sizeof(reg));
	reg.addr = target;
	reg.timeout.tv_sec = 1;
	reg.timeout.tv_nsec = 0;
	io_uring_register_sync_cancel(loop_ring(), &reg);
}

static void fail_queue(cmdq_t *q, int err)
{
	for (cmd_t *c; (c = q_pop(q));) {
		if (c->kind == K_USER)
			cmd_done(c, NULL, err);
		else
			rds_cmd_free(c);
	}
}

void rds_finish(void)
{
	if (!rds_st.active)
		return;
	/* Everything queued must reach the kernel first, or it would be submitted after we free its buffers. */
	io_uring_submit(loop_ring());
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		node_t *n = rds_st.nodes[i];

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
	if (rds_st.timer_armed)
		sync_cancel(ud_make(kind_rds, rds_st.timer_gen, TIMER_IDX));
	/* Callbacks may try to issue commands: they get -EINVAL from here on. */
	rds_st.active = false;
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		node_t *n = rds_st.nodes[i];

		fail_queue(&n->inflight, -ECANCELED);
		fail_queue(&n->hs, -ECANCELED);
		fail_queue(&n->redo, -ECANCELED);
		fail_queue(&n->queued, -ECANCELED);
	}
	fail_queue(&rds_st.unrouted, -ECANCELED);
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		node_t *n = rds_st.nodes[i];

		if (n->fd >= 0)
			close(n->fd);
		if (n->rd)
			redisReaderFree(n->rd);
		outq_finish(&n->out);
		free(n->rbuf);
		free(n);
	}
	for (uint32_t i = 0; i < rds_st.n_libs; i++)
		sdsfree(rds_st.libs[i]);
	free(rds_st.libs);
	free(rds_st.nodes);
	free(rds_st.slots);
	free(rds_st.addrs);
	free(rds_st.user);
	free(rds_st.password);
	memset(&rds_st, 0, sizeof(rds_st));
}

int rds_command(uint16_t slot, int argc, const char **argv, const size_t *lens, rds_cb cb, void *ctx)
{
	cmd_t *c;

	if (!rds_st.active || argc < 1 || !argv)
		return -EINVAL;
	if (rds_st.pending >= rds_st.max_pending)
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
	rds_st.pending++;
	rds_route(c, false);
	return 0;
}

int rds_function_register(const char *src, size_t len)
{
	const char *argv[4] = { "FUNCTION", "LOAD", "REPLACE", src };
	size_t lens[4] = { 8, 4, 7, len };
	sds *libs, f = NULL;

	if (!rds_st.active || !src)
		return -EINVAL;
	libs = realloc(rds_st.libs, (rds_st.n_libs + 1) * sizeof(*libs));
	if (!libs)
		return -ENOMEM;
	rds_st.libs = libs;
	if (redisFormatSdsCommandArgv(&f, 4, argv, lens) < 0)
		return -ENOMEM;
	rds_st.libs[rds_st.n_libs++] = f;
	/* Connections past AUTH get it now, ahead of any command not written yet; new ones in their handshake. */
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		node_t *n = rds_st.nodes[i];
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
	if (!rds_st.active || !rds_st.topo_known)
		return false;
	for (uint32_t i = 0; i < rds_st.n_nodes; i++)
		if (rds_st.nodes[i]->wanted && rds_st.nodes[i]->state != ST_UP)
			return false;
	return true;
}

size_t rds_pending(void)
{
	return rds_st.pending;
}

static void on_cqe(uint64_t ud_, struct io_uring_cqe *cqe)
{
	uint32_t idx = ud_idx(ud_);
	node_t *n;

	if (!rds_st.active)
		return;
	if (idx == TIMER_IDX) {
		if (ud_gen(ud_) != rds_st.timer_gen)
			return;
		rds_st.timer_armed = false;
		tick();
		return;
	}
	if (idx / 4 >= rds_st.n_nodes)
		return;
	n = rds_st.nodes[idx / 4];
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

		if (!dst || (c->asking && !(ask = rds_cmd_internal(K_ASKING, 0, NULL, NULL)))) {
			log_warn(ENOMEM, "redis %s: cannot queue commands; retrying next turn", n->name);
			return;
		}
		q_pop(q);
		if (ask) {
			memcpy(dst, ASKING_CMD, ask_len);
			ask->sent_ms = rds_now_ms();
			q_push(&n->inflight, ask);
			c->asking = false;
		}
		memcpy(dst + ask_len, c->buf, len);
		n->out.pending.len += (uint32_t)(ask_len + len);
		c->sent_ms = rds_now_ms();
		c->load_seq = n->load_seq;
		q_push(&n->inflight, c);
	}
}

static void flush_all(void)
{
	if (!rds_st.active)
		return;
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		node_t *n = rds_st.nodes[i];

		if (!node_alive(n))
			continue;
		write_list(n, &n->hs);
		if (n->state == ST_UP) {
			write_list(n, &n->redo);
			write_list(n, &n->queued);
		}
		send_next(n);
	}
	if (!rds_st.timer_armed && need_timer()) {
		struct io_uring_sqe *sqe = loop_sqe();

		rds_st.ts.tv_sec = 0;
		rds_st.ts.tv_nsec = TICK_MS * 1000000LL;
		io_uring_prep_timeout(sqe, &rds_st.ts, 0, 0);
		io_uring_sqe_set_data64(sqe, ud_make(kind_rds, rds_st.timer_gen, TIMER_IDX));
		rds_st.timer_armed = true;
	}
}

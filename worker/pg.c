/*
 * pg.c — PostgreSQL credential store on the worker's io_uring (see pg.h).
 *
 * One libpq connection per worker, nonblocking and in pipeline mode, driven entirely by the ring: libpq's
 * socket (PQsocket) is watched with one-shot IORING_OP_POLL_ADD requests, re-armed after each completion —
 * POLLIN always while connected, POLLOUT only while PQflush has output left (and, while connecting, whichever
 * PQconnectPoll asks for). Nothing here blocks after pg_init: no PQconnectdb, no PQexec, no PQgetResult while
 * PQisBusy. The one blocking step libpq would take, resolving host names on every connect, is done once in
 * pg_init (start-up) and handed to libpq as hostaddr (pg_conninfo.c).
 *
 * Lookups. pg_lookup answers from the cache (pg_cache.c) or queues the lookup; the flush hook (LOOP_ORDER_PG)
 * sends every lookup queued during the turn as PQsendQueryPrepared calls closed by one PQpipelineSync: one
 * write, one server round trip, one implicit transaction per batch. Results come back in the order sent; each
 * lookup completes at the NULL that ends its results, the Sync at its PGRES_PIPELINE_SYNC. A query that fails
 * makes PostgreSQL skip the rest of its batch (PGRES_PIPELINE_ABORTED): those lookups did not run and are sent
 * once more. Keys that are not valid UTF-8 are answered "not found" without a query, so one odd certificate
 * CN cannot abort a batch of other clients' lookups.
 *
 * Bounds (constants, per worker): at most PENDING_MAX lookups wait for PostgreSQL (queued + sent); more are
 * answered -EAGAIN on the next turn, so a flood of CONNECTs costs a bounded amount of memory and the clients
 * get "server unavailable" rather than waiting behind it. At most PIPELINE_MAX lookups are sent at once. The
 * cache holds pg_cache_size answers (found and not found), least recently used dropped first.
 *
 * Answers that do not come from a query result (cache hits, -EAGAIN while PostgreSQL is unreachable or the
 * queue is full, a key that cannot exist) are delivered from the completion of an IORING_OP_NOP queued by
 * pg_lookup: every callback runs in the completion phase of a turn, as every other module's do, never inside
 * pg_lookup and never from a flush hook (which would run after the connection module's own hook of the turn).
 *
 * Invalidation. The connection LISTENs on ringmq_credentials; the schema's trigger NOTIFYs every change with
 * the credential id ('*' for TRUNCATE). PQnotifies is read after the results of each read: the server sends a
 * notification between transactions, so a lookup that read the row before a change has its result (and its
 * cache entry) in before the notification that drops it. A notification drops the id's answers and every
 * "not found" answer (an insert may have made one wrong), marks them stale so an answer waiting in the
 * delivery list is looked up again instead of delivered, then tells the pg_on_change listener. Notifications
 * sent while the connection was down are lost: every reconnect starts with an empty cache.
 *
 * Failure. A connect attempt that fails or times out, a connection lost, a query unanswered for
 * QUERY_TIMEOUT_MS, or a schema that does not prepare: the connection is dropped, everything waiting is
 * answered -EAGAIN, the cache emptied, and the next attempt follows after a backoff (250 ms doubling to 5 s).
 * One log line per outage naming the server (host:port/db, never the password) and the fix, one when it is
 * back. While down, lookups are answered -EAGAIN at once; before the first attempt has failed they wait.
 *
 * TLS. libpq reads one TLS record at a time, into at least 8 KiB of room; the rest of a larger record stays
 * decrypted inside OpenSSL and does not show on the socket, so after each read the input is consumed again
 * while SSL_pending says there is more. (PostgreSQL 15 writes records of at most 8 KiB; a server that sends a
 * large message in one write makes records of up to 16 KiB.)
 *
 * user_data: ud_make(kind, gen, op): gen is the connection's (a process-wide counter), so completions of a
 * dropped connection's polls never match; OP_NOP carries the module instance's gen.
 */
#include "pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "pg_cache.h"
#include "pg_conninfo.h"
#include "worker.h"

#define PENDING_MAX 4096
#define PIPELINE_MAX 256
#define CONNECT_TIMEOUT_MS 5000        /* unless pg_conninfo sets connect_timeout */
#define QUERY_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define CHANNEL "ringmq_credentials"

enum op { OP_READ, OP_WRITE, OP_NOP };
enum state { ST_IDLE, ST_CONNECTING, ST_SETUP, ST_UP };
enum problem { P_NONE, P_UNREACH, P_SCHEMA, P_TIMEOUT, P_PROTO };
enum mode { M_USERNAME, M_CLIENT_ID, M_BOTH, M_CERT_CN, M_COUNT };
/* What an entry of the sent list waits for. */
enum kind { K_LOOKUP, K_SETUP, K_SYNC };

static const char *const MODE_NAME[M_COUNT] = { "username", "client_id", "both", "cert_cn" };
static const char *const STMT_NAME[M_COUNT] = {
	"ringmq_cred_by_username", "ringmq_cred_by_client_id", "ringmq_cred_by_both", "ringmq_cred_by_cert_cn",
};
/* LIMIT 2: a second row means the key is ambiguous, which is refused rather than resolved by chance. */
#define SELECT_CRED "SELECT id, password_hash, array_to_json(pub_rules)::text, array_to_json(sub_rules)::text " \
	"FROM ringmq_credentials WHERE "
static const char *const STMT_SQL[M_COUNT] = {
	SELECT_CRED "username = $1 LIMIT 2",
	SELECT_CRED "client_id = $1 LIMIT 2",
	SELECT_CRED "client_id = $1 AND username = $2 LIMIT 2",
	SELECT_CRED "cert_cn = $1 LIMIT 2",
};
static const int STMT_PARAMS[M_COUNT] = { 1, 1, 2, 1 };

typedef struct look {
	struct look *next;
	uint8_t kind;                  /* enum kind */
	bool got;                      /* a result arrived for it */
	bool aborted;                  /* PGRES_PIPELINE_ABORTED: it did not run */
	bool retried;                  /* sent again after its batch was aborted */
	bool setup_sync;               /* K_SYNC: the one closing the connection's setup */
	pg_cred_fn cb;                 /* NULL once cancelled */
	void *ctx;
	int err;                       /* the answer: err, or ent */
	pg_ent_t *ent;
	uint64_t sent_ms;
	uint32_t key_len;
	char key[];                    /* the statement's parameters, each NUL-terminated, back to back */
} look_t;

typedef struct lookq {
	look_t *head, *tail;
	uint32_t len;
} lookq_t;

static struct {
	bool active;
	uint8_t kind;
	uint32_t inst_gen;             /* of this pg_init: the NOP's */
	uint32_t gen;                  /* of the current connection: its polls' */
	enum mode mode;
	pg_params_t params;            /* PQconnectStartParams arguments */
	uint32_t connect_timeout_ms;
	char desc[256];                /* host:port/db of the current attempt, for logs */
	PGconn *conn;
	int fd;                        /* the socket our polls watch */
	enum state state;
	bool read_armed, write_armed, nop_armed;
	enum problem problem;          /* of the current outage (logged once) */
	bool down;                     /* an attempt failed or the connection was lost: answer -EAGAIN */
	bool ever_up;
	char *setup_err;               /* first error of the setup commands */
	uint64_t down_since_ms, retry_at_ms, deadline_ms;
	uint32_t backoff_ms;
	uint32_t cache_max;            /* pg_cache_size; 0: no cache */
	uint32_t lookups_sent;         /* K_LOOKUP entries in `sent` */
	lookq_t queued, sent, ready;
	pg_cache_t cache;
} P;

/* The listener outlives pg_init/pg_finish cycles' memset of P: it may be set before pg_init. */
static void (*change_fn)(uint64_t id);

/* Process-wide so that completions from an earlier connection or pg_init never match. */
static uint32_t gen_seq;

static uint32_t next_gen(void)
{
	gen_seq = (gen_seq + 1) & 0xffffff;
	if (!gen_seq)
		gen_seq = 1;
	return gen_seq;
}

/* ---- FIFOs ---- */

static void q_push(lookq_t *q, look_t *l)
{
	l->next = NULL;
	if (q->tail)
		q->tail->next = l;
	else
		q->head = l;
	q->tail = l;
	q->len++;
}

static look_t *q_pop(lookq_t *q)
{
	look_t *l = q->head;

	if (!l)
		return NULL;
	q->head = l->next;
	if (!q->head)
		q->tail = NULL;
	q->len--;
	l->next = NULL;
	return l;
}

static void look_free(look_t *l)
{
	pg_ent_unref(l->ent);
	free(l);
}

static uint32_t pending(void)
{
	return P.queued.len + P.lookups_sent;
}

/* ---- delivery ---- */

static void arm_nop(void)
{
	struct io_uring_sqe *sqe;

	if (P.nop_armed)
		return;
	sqe = loop_sqe();
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, ud_make(P.kind, P.inst_gen, OP_NOP));
	P.nop_armed = true;
}

/* Answer l on the next turn's completions (l->err or l->ent set). */
static void defer(look_t *l)
{
	if (l->err)
		W->st.pg_errors++;
	q_push(&P.ready, l);
	arm_nop();
}

static void deliver(look_t *l)
{
	if (l->cb) {
		if (l->err)
			l->cb(l->ctx, l->err, NULL);
		else
			l->cb(l->ctx, 0, l->ent && l->ent->found ? &l->ent->cred : NULL);
	}
	look_free(l);
}

static void requeue(look_t *l);

/* The NOP completed: answer what waits in the ready list (not what its callbacks add: next turn). */
static void deliver_ready(void)
{
	lookq_t now = P.ready;

	memset(&P.ready, 0, sizeof(P.ready));
	for (look_t *l; (l = q_pop(&now));) {
		if (l->ent && l->ent->stale) {
			/* Invalidated since it was found in the cache: ask again. */
			pg_ent_unref(l->ent);
			l->ent = NULL;
			requeue(l);
			continue;
		}
		deliver(l);
	}
}

/* A lookup that needs PostgreSQL: queued when it can be answered, -EAGAIN when it cannot. */
static void requeue(look_t *l)
{
	if (P.down || pending() >= PENDING_MAX) {
		l->err = -EAGAIN;
		defer(l);
		return;
	}
	q_push(&P.queued, l);
}

/* ---- logging, once per change of problem ---- */

/* libpq messages end in a newline and may span lines ("connection to server ... failed: ...\n\tIs the
 * server running...?"): one line, each run of white space one space. */
static const char *one_line(const char *msg, char *buf, size_t size)
{
	size_t o = 0;

	for (const char *p = msg && *msg ? msg : "unknown error"; *p && o + 1 < size; p++) {
		bool space = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';

		if (space && (!o || buf[o - 1] == ' '))
			continue;
		buf[o++] = space ? ' ' : *p;
	}
	while (o && buf[o - 1] == ' ')
		o--;
	buf[o] = 0;
	return buf;
}

/* The server's message without the "ERROR:" prefix, query excerpt and caret libpq's full text carries. */
static const char *result_error(const PGresult *r)
{
	const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

	return m ? m : PQresultErrorMessage(r);
}

static void report(enum problem p, const char *msg)
{
	char m[512];

	if (P.problem == p)
		return;
	if (P.problem == P_NONE)
		P.down_since_ms = loop_now();
	P.problem = p;
	one_line(msg, m, sizeof(m));
	switch (p) {
	case P_UNREACH:
		log_warn(0, "PostgreSQL %s unreachable: %s; set pg_conninfo / start PostgreSQL (retrying with backoff "
			"up to %u s; clients that need a credential are refused meanwhile)", P.desc, m,
			BACKOFF_MAX_MS / 1000);
		break;
	case P_SCHEMA:
		log_error(0, "PostgreSQL %s cannot prepare the credential lookups: %s; apply scripts/pg/*.sql "
			"(docs/postgresql.md) and grant SELECT on ringmq_credentials (retrying)", P.desc, m);
		break;
	case P_TIMEOUT:
		log_warn(0, "PostgreSQL %s did not answer a credential lookup within %u ms; connection reset (is the "
			"server overloaded or the network down?)", P.desc, QUERY_TIMEOUT_MS);
		break;
	case P_PROTO:
		log_error(0, "PostgreSQL %s: %s; connection reset", P.desc, m);
		break;
	case P_NONE:
		break;
	}
}

static void notice(void *arg, const char *msg)
{
	char m[512];

	(void)arg;
	log_debug("PostgreSQL %s: %s", P.desc, one_line(msg, m, sizeof(m)));
}

/* ---- connection life cycle ---- */

static void conn_fail(enum problem p, const char *msg);

static void arm(enum op op)
{
	struct io_uring_sqe *sqe;

	if (P.fd < 0) {
		/* libpq has no socket while it says it is connecting: it failed without saying so. */
		conn_fail(P_UNREACH, PQerrorMessage(P.conn));
		return;
	}
	sqe = loop_sqe();

	io_uring_prep_poll_add(sqe, P.fd, op == OP_READ ? POLLIN : POLLOUT);
	io_uring_sqe_set_data64(sqe, ud_make(P.kind, P.gen, op));
	if (op == OP_READ)
		P.read_armed = true;
	else
		P.write_armed = true;
}

static void answer_all(lookq_t *q, int err)
{
	for (look_t *l; (l = q_pop(q));) {
		if (l->kind != K_LOOKUP) {
			look_free(l);
			continue;
		}
		pg_ent_unref(l->ent);
		l->ent = NULL;
		l->err = err;
		defer(l);
	}
}

/*
 * Drop the connection (or the attempt): our polls are cancelled (their completions carry an old gen from now
 * on; a poll holds its own reference to the socket, so libpq closing it under them is harmless), everything
 * waiting is answered -EAGAIN, the cache is emptied, and the next attempt is due after the backoff.
 */
static void conn_fail(enum problem p, const char *msg)
{
	report(p, msg);
	if (P.read_armed)
		loop_cancel(ud_make(P.kind, P.gen, OP_READ));
	if (P.write_armed)
		loop_cancel(ud_make(P.kind, P.gen, OP_WRITE));
	P.read_armed = P.write_armed = false;
	P.gen = next_gen();
	if (P.conn)
		PQfinish(P.conn);
	P.conn = NULL;
	P.fd = -1;
	P.state = ST_IDLE;
	P.down = true;
	free(P.setup_err);
	P.setup_err = NULL;
	P.lookups_sent = 0;
	answer_all(&P.sent, -EAGAIN);
	answer_all(&P.queued, -EAGAIN);
	pg_cache_clear(&P.cache);
	P.retry_at_ms = loop_now() + P.backoff_ms;
	P.backoff_ms = P.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : P.backoff_ms * 2;
}

static void describe(void)
{
	const char *host = PQhost(P.conn), *port = PQport(P.conn), *db = PQdb(P.conn);

	snprintf(P.desc, sizeof(P.desc), "%s:%s/%s", host && *host ? host : "localhost",
		port && *port ? port : "5432", db && *db ? db : "?");
}

static void start_connect(void)
{
	P.conn = PQconnectStartParams((const char *const *)P.params.keys, (const char *const *)P.params.vals, 0);
	if (!P.conn) {
		conn_fail(P_UNREACH, "out of memory");
		return;
	}
	PQsetNoticeProcessor(P.conn, notice, NULL);
	describe();
	if (PQstatus(P.conn) == CONNECTION_BAD) {
		conn_fail(P_UNREACH, PQerrorMessage(P.conn));
		return;
	}
	P.gen = next_gen();
	P.state = ST_CONNECTING;
	P.deadline_ms = loop_now() + P.connect_timeout_ms;
	/* libpq: start as if PQconnectPoll had answered PGRES_POLLING_WRITING. */
	P.fd = PQsocket(P.conn);
	arm(OP_WRITE);
}

/* Write what libpq holds; POLLOUT when it could not write everything. false: the connection failed. */
static bool flush_out(void)
{
	int r;

	if (!P.conn)
		return false;
	r = PQflush(P.conn);
	if (r < 0) {
		conn_fail(P_UNREACH, PQerrorMessage(P.conn));
		return false;
	}
	if (r > 0 && !P.write_armed)
		arm(OP_WRITE);
	return true;
}

static look_t *item(enum kind kind)
{
	look_t *l = calloc(1, sizeof(*l));

	if (l)
		l->kind = (uint8_t)kind;
	return l;
}

static void send_item(look_t *l)
{
	l->sent_ms = loop_now();
	q_push(&P.sent, l);
}

/* Connected: nonblocking pipeline mode, then LISTEN and the four statements, closed by one Sync. */
static void connected(void)
{
	look_t *sync;

	if (PQsetnonblocking(P.conn, 1) != 0 || !PQenterPipelineMode(P.conn)) {
		conn_fail(P_PROTO, PQerrorMessage(P.conn));
		return;
	}
	P.state = ST_SETUP;
	for (int m = -1; m < M_COUNT; m++) {
		look_t *l = item(K_SETUP);
		int ok;

		if (!l) {
			conn_fail(P_PROTO, "out of memory");
			return;
		}
		send_item(l);
		if (m < 0)
			ok = PQsendQueryParams(P.conn, "LISTEN " CHANNEL, 0, NULL, NULL, NULL, NULL, 0);
		else
			ok = PQsendPrepare(P.conn, STMT_NAME[m], STMT_SQL[m], STMT_PARAMS[m], NULL);
		if (!ok) {
			conn_fail(P_UNREACH, PQerrorMessage(P.conn));
			return;
		}
	}
	sync = item(K_SYNC);
	if (!sync) {
		conn_fail(P_PROTO, "out of memory");
		return;
	}
	sync->setup_sync = true;
	send_item(sync);
	if (!PQpipelineSync(P.conn)) {
		conn_fail(P_UNREACH, PQerrorMessage(P.conn));
		return;
	}
	arm(OP_READ);
	flush_out();
}

static void up(void)
{
	P.state = ST_UP;
	if (P.problem != P_NONE)
		log_info("PostgreSQL %s reachable again after %llu ms: credential lookups resume", P.desc,
			(unsigned long long)(loop_now() - P.down_since_ms));
	else if (!P.ever_up)
		log_info("PostgreSQL %s connected: credentials matched by %s", P.desc, MODE_NAME[P.mode]);
	P.problem = P_NONE;
	P.down = false;
	P.ever_up = true;
	P.backoff_ms = BACKOFF_MIN_MS;
}

static void step_connect(void)
{
	for (;;) {
		switch (PQconnectPoll(P.conn)) {
		case PGRES_POLLING_READING:
			P.fd = PQsocket(P.conn);
			arm(OP_READ);
			return;
		case PGRES_POLLING_WRITING:
			P.fd = PQsocket(P.conn);
			arm(OP_WRITE);
			return;
		case PGRES_POLLING_OK:
			P.fd = PQsocket(P.conn);
			connected();
			return;
		case PGRES_POLLING_FAILED:
			conn_fail(P_UNREACH, PQerrorMessage(P.conn));
			return;
		default:
			break;         /* PGRES_POLLING_ACTIVE (unused since libpq 7.4): call again */
		}
	}
}

/* ---- results ---- */

/* SQLSTATE class 22 (data exception: a key PostgreSQL cannot even compare) means "no such credential". */
static bool data_exception(const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	return state && state[0] == '2' && state[1] == '2';
}

/* The rows of one lookup: check their shape before reading them (a reply is input). */
static void absorb_rows(look_t *l, const PGresult *r)
{
	int rows = PQntuples(r), err;
	char m[512];

	if (PQnfields(r) != 4 || rows > 2 || (rows > 0 && PQgetisnull(r, 0, 0))) {
		log_error(0, "PostgreSQL %s: credential lookup returned %d columns and %d rows: refused", P.desc,
			PQnfields(r), rows);
		l->err = -EAGAIN;
		return;
	}
	if (rows == 2) {
		const char *k2 = l->key + strlen(l->key) + 1;

		if (P.mode == M_BOTH)
			snprintf(m, sizeof(m), "'%.100s' and '%.100s'", l->key, k2);
		else
			snprintf(m, sizeof(m), "'%.200s'", l->key);
		log_warn(0, "PostgreSQL: several credentials match %s %s: refused; with pg_match = %s, keep one row "
			"per key (docs/postgresql.md)", MODE_NAME[P.mode], m, MODE_NAME[P.mode]);
		W->st.pg_errors++;
	}
	if (rows != 1) {
		l->ent = pg_ent_not_found();
		l->err = l->ent ? 0 : -ENOMEM;
		return;
	}
	err = pg_ent_decode(PQgetvalue(r, 0, 0), PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1),
		PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2),
		PQgetisnull(r, 0, 3) ? NULL : PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3), &l->ent);
	if (err < 0)
		l->err = err == -ENOMEM ? -ENOMEM : -EAGAIN;
}

static void absorb(look_t *l, const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	char m[512];

	if (l->got)
		return;        /* one result per command; a second one cannot come from a statement of ours */
	l->got = true;
	if (l->kind == K_SETUP) {
		if (st != PGRES_COMMAND_OK && !P.setup_err)
			P.setup_err = strdup(st == PGRES_PIPELINE_ABORTED ? "aborted" : result_error(r));
		return;
	}
	switch (st) {
	case PGRES_TUPLES_OK:
		absorb_rows(l, r);
		break;
	case PGRES_PIPELINE_ABORTED:
		l->aborted = true;
		break;
	default:
		if (data_exception(r)) {
			l->ent = pg_ent_not_found();
			l->err = l->ent ? 0 : -ENOMEM;
			break;
		}
		log_error(0, "PostgreSQL %s: credential lookup failed: %s", P.desc,
			one_line(result_error(r), m, sizeof(m)));
		l->err = -EAGAIN;
		break;
	}
}

/* The NULL after a lookup's results: cache and answer it now (this is a completion). A lookup its batch's
 * failure kept from running goes to retry, to be sent again ahead of the queue, in its order. */
static void finish(look_t *l, lookq_t *retry)
{
	if (l->kind == K_SETUP) {
		look_free(l);
		return;
	}
	P.lookups_sent--;
	if (l->aborted) {
		/* An earlier query of its batch failed: this one did not run. Once more, then give up. */
		l->aborted = false;
		if (!l->retried) {
			l->retried = true;
			l->got = false;
			q_push(retry, l);
			return;
		}
		l->err = -EAGAIN;
	}
	if (!l->err && !l->ent)
		l->err = -EAGAIN;      /* a result that was neither rows nor an error: cannot happen, never cached */
	if (l->err) {
		W->st.pg_errors++;
	} else if (P.cache_max && pg_cache_put(&P.cache, l->key, l->key_len, l->ent) < 0) {
		log_debug("PostgreSQL: no memory to cache a credential");
	}
	deliver(l);
}

/* PGRES_PIPELINE_SYNC: the end of a batch; after the setup's, the connection is usable. */
static void finish_sync(look_t *l)
{
	bool setup = l->setup_sync;

	look_free(l);
	if (!setup)
		return;
	if (P.setup_err) {
		char *e = P.setup_err;

		P.setup_err = NULL;
		conn_fail(P_SCHEMA, e);
		free(e);
		return;
	}
	up();
}

static void read_results(void)
{
	lookq_t retry = { 0 };
	bool after_null = false;

	while (P.conn && !PQisBusy(P.conn)) {
		PGresult *r = PQgetResult(P.conn);
		look_t *h = P.sent.head;

		if (!r) {
			/* The end of one command's results; twice in a row: waiting for the Sync, or idle. */
			if (!h || after_null)
				break;
			after_null = true;
			if (h->kind != K_SYNC && h->got)
				finish(q_pop(&P.sent), &retry);
			continue;
		}
		after_null = false;
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			if (!h || h->kind != K_SYNC) {
				conn_fail(P_PROTO, "results out of step with the queries sent");
				break;
			}
			finish_sync(q_pop(&P.sent));
			continue;
		}
		if (!h || h->kind == K_SYNC) {
			PQclear(r);
			conn_fail(P_PROTO, "a result for no query");
			break;
		}
		absorb(h, r);
		PQclear(r);
	}
	if (!retry.head)
		return;
	if (!P.conn) {
		/* The connection failed meanwhile: they are answered with everything else. */
		answer_all(&retry, -EAGAIN);
		return;
	}
	retry.tail->next = P.queued.head;
	if (!P.queued.tail)
		P.queued.tail = retry.tail;
	P.queued.head = retry.head;
	P.queued.len += retry.len;
}

static void on_notify(const char *payload)
{
	uint64_t id = 0;
	const char *p = payload;

	W->st.pg_notifies++;
	if (!strcmp(payload, "*")) {
		pg_cache_clear(&P.cache);
		if (change_fn)
			change_fn(PG_CHANGED_ALL);
		return;
	}
	for (; *p >= '0' && *p <= '9' && id <= (UINT64_MAX - 9) / 10; p++)
		id = id * 10 + (uint64_t)(*p - '0');
	if (*p || p == payload || !id) {
		/* Not our trigger's: someone NOTIFYs the channel by hand. Drop everything to be safe. */
		log_debug("PostgreSQL: notification '%.40s' on " CHANNEL " is not a credential id", payload);
		pg_cache_clear(&P.cache);
		return;
	}
	pg_cache_drop_id(&P.cache, id);
	if (change_fn)
		change_fn(id);
}

static void read_notifies(void)
{
	for (PGnotify *n; P.conn && (n = PQnotifies(P.conn));) {
		if (!strcmp(n->relname, CHANNEL))
			on_notify(n->extra ? n->extra : "");
		PQfreemem(n);
	}
}

/* Decrypted bytes waiting inside OpenSSL (see the top of the file). */
static bool tls_pending(void)
{
	SSL *ssl = PQsslInUse(P.conn) ? PQsslStruct(P.conn, "OpenSSL") : NULL;

	return ssl && SSL_pending(ssl) > 0;
}

static void on_readable(void)
{
	do {
		if (!PQconsumeInput(P.conn)) {
			conn_fail(P_UNREACH, PQerrorMessage(P.conn));
			return;
		}
		read_results();
		read_notifies();
	} while (P.conn && tls_pending());
	if (!P.conn)
		return;
	arm(OP_READ);
	flush_out();
}

static void on_cqe(uint64_t ud, struct io_uring_cqe *cqe)
{
	uint32_t op = ud_idx(ud);

	if (!P.active)
		return;
	if (op == OP_NOP) {
		if (ud_gen(ud) != P.inst_gen)
			return;
		P.nop_armed = false;
		deliver_ready();
		return;
	}
	if (ud_gen(ud) != P.gen || !P.conn)
		return;
	if (op == OP_READ)
		P.read_armed = false;
	else
		P.write_armed = false;
	if (cqe->res < 0) {
		conn_fail(P_UNREACH, strerror(-cqe->res));
		return;
	}
	if (P.state == ST_CONNECTING)
		step_connect();
	else if (op == OP_READ)
		on_readable();
	else
		flush_out();
}

/* ---- flush hook and tick ---- */

/* Send every lookup queued this turn, one Sync behind them: one batch, one write. */
static void flush(void)
{
	bool any = false;
	look_t *sync;

	if (!P.active || P.state != ST_UP || !P.queued.head)
		return;
	while (P.queued.head && P.lookups_sent < PIPELINE_MAX) {
		look_t *l = q_pop(&P.queued);
		const char *params[2] = { l->key, l->key + strlen(l->key) + 1 };

		send_item(l);
		P.lookups_sent++;
		W->st.pg_queries++;
		if (!PQsendQueryPrepared(P.conn, STMT_NAME[P.mode], STMT_PARAMS[P.mode], params, NULL, NULL, 0)) {
			conn_fail(P_UNREACH, PQerrorMessage(P.conn));
			return;
		}
		any = true;
	}
	if (!any)
		return;
	sync = item(K_SYNC);
	if (!sync) {
		conn_fail(P_PROTO, "out of memory");
		return;
	}
	send_item(sync);
	if (!PQpipelineSync(P.conn)) {
		conn_fail(P_UNREACH, PQerrorMessage(P.conn));
		return;
	}
	flush_out();
}

static void tick(void)
{
	uint64_t now = loop_now();
	char m[64];

	if (!P.active)
		return;
	switch (P.state) {
	case ST_IDLE:
		if (now >= P.retry_at_ms) {
			W->st.pg_reconnects++;
			start_connect();
		}
		break;
	case ST_CONNECTING:
		if (now >= P.deadline_ms) {
			snprintf(m, sizeof(m), "no connection within %u ms", P.connect_timeout_ms);
			conn_fail(P_UNREACH, m);
		}
		break;
	case ST_SETUP:
	case ST_UP:
		if (P.sent.head && now - P.sent.head->sent_ms >= QUERY_TIMEOUT_MS)
			conn_fail(P_TIMEOUT, NULL);
		break;
	}
}

static enum mode mode_of(const char *s)
{
	for (int m = 0; m < M_COUNT; m++)
		if (s && !strcmp(s, MODE_NAME[m]))
			return (enum mode)m;
	return M_USERNAME;
}

/* ---- exported ---- */

int pg_init(const char *conninfo)
{
	char app[32];
	int err;

	if (P.active || !conninfo)
		return -EINVAL;
	memset(&P, 0, sizeof(P));
	P.fd = -1;
	P.mode = mode_of(W->cfg ? W->cfg->pg_match : NULL);
	snprintf(app, sizeof(app), "ringmqd-w%d", W->id);
	if ((err = pg_params_build(&P.params, conninfo, app)) < 0)
		return err;
	P.connect_timeout_ms = P.params.connect_timeout_ms ? P.params.connect_timeout_ms : CONNECT_TIMEOUT_MS;
	P.cache_max = W->cfg ? W->cfg->pg_cache_size : 4096;
	pg_cache_init(&P.cache, P.cache_max);
	P.backoff_ms = BACKOFF_MIN_MS;
	P.inst_gen = next_gen();
	P.active = true;
	P.kind = loop_register("pg", on_cqe);
	loop_on_flush(flush, LOOP_ORDER_PG);
	loop_on_tick(tick);
	start_connect();
	return 0;
}

static void sync_cancel(uint64_t target)
{
	struct io_uring_sync_cancel_reg reg;

	memset(&reg, 0, sizeof(reg));
	reg.addr = target;
	reg.timeout.tv_sec = 1;
	io_uring_register_sync_cancel(loop_ring(), &reg);
}

static void finish_queue(lookq_t *q)
{
	for (look_t *l; (l = q_pop(q));) {
		if (l->kind == K_LOOKUP && l->cb)
			l->cb(l->ctx, -EAGAIN, NULL);
		look_free(l);
	}
}

void pg_finish(void)
{
	if (!P.active)
		return;
	/* Everything queued must reach the kernel before the cancels can find it. */
	io_uring_submit(loop_ring());
	if (P.read_armed)
		sync_cancel(ud_make(P.kind, P.gen, OP_READ));
	if (P.write_armed)
		sync_cancel(ud_make(P.kind, P.gen, OP_WRITE));
	/* Callbacks may call pg_lookup: it refuses from here on. */
	P.active = false;
	finish_queue(&P.sent);
	finish_queue(&P.queued);
	finish_queue(&P.ready);
	if (P.conn)
		PQfinish(P.conn);
	free(P.setup_err);
	pg_cache_finish(&P.cache);
	pg_params_free(&P.params);
	memset(&P, 0, sizeof(P));
	P.fd = -1;
	change_fn = NULL;
}

bool pg_ready(void)
{
	return P.active && P.state == ST_UP;
}

/* The statement's parameters for this mode, or false when a key it needs is missing or cannot exist. */
static bool key_of(const char *client_id, const char *username, const char *cert_cn, const char **k1,
	const char **k2)
{
	*k1 = *k2 = "";
	switch (P.mode) {
	case M_USERNAME:
		*k1 = username;
		break;
	case M_CLIENT_ID:
		*k1 = client_id;
		break;
	case M_BOTH:
		*k1 = client_id;
		*k2 = username;
		break;
	case M_CERT_CN:
	default:
		*k1 = cert_cn;
		break;
	}
	return *k1 && *k2 && mqtt_utf8_valid((const uint8_t *)*k1, strlen(*k1)) &&
		mqtt_utf8_valid((const uint8_t *)*k2, strlen(*k2));
}

int pg_lookup(const char *client_id, const char *username, const char *cert_cn, pg_cred_fn cb, void *ctx)
{
	const char *k1, *k2;
	size_t l1, l2;
	look_t *l;
	pg_ent_t *e;

	if (!P.active || !cb)
		return -EINVAL;
	if (!key_of(client_id, username, cert_cn, &k1, &k2)) {
		l = calloc(1, sizeof(*l));
		if (!l || !(l->ent = pg_ent_not_found())) {
			free(l);
			return -ENOMEM;
		}
	} else {
		l1 = strlen(k1);
		l2 = strlen(k2);
		l = calloc(1, sizeof(*l) + l1 + l2 + 2);
		if (!l)
			return -ENOMEM;
		memcpy(l->key, k1, l1 + 1);
		memcpy(l->key + l1 + 1, k2, l2 + 1);
		l->key_len = (uint32_t)(l1 + l2 + 2);
	}
	l->kind = K_LOOKUP;
	l->cb = cb;
	l->ctx = ctx;
	if (l->ent) {
		defer(l);
		return 0;
	}
	e = P.cache_max ? pg_cache_get(&P.cache, l->key, l->key_len) : NULL;
	if (e) {
		W->st.pg_cache_hits++;
		l->ent = pg_ent_ref(e);
		defer(l);
		return 0;
	}
	requeue(l);
	return 0;
}

static void cancel_in(lookq_t *q, void *ctx, bool unlink)
{
	look_t **pp = &q->head, *prev = NULL;

	while (*pp) {
		look_t *l = *pp;

		if (l->kind != K_LOOKUP || l->ctx != ctx || !l->cb) {
			prev = l;
			pp = &l->next;
			continue;
		}
		if (!unlink) {
			/* Sent: its result still comes, and is cached; nobody is told. */
			l->cb = NULL;
			prev = l;
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		if (q->tail == l)
			q->tail = prev;
		q->len--;
		look_free(l);
	}
}

void pg_cancel(void *ctx)
{
	if (!P.active)
		return;
	cancel_in(&P.queued, ctx, true);
	cancel_in(&P.ready, ctx, true);
	cancel_in(&P.sent, ctx, false);
}

void pg_on_change(void (*fn)(uint64_t id))
{
	change_fn = fn;
}

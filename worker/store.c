/* store.c — the session store: memory (no-ops) or Redis, batched per bucket per loop turn (see store.h). */
#include "store.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "grace.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "rds.h"
#include "record.h"
#include "route.h"
#include "sess.h"
#include "slot.h"
#include "store_lua.h"
#include "strmap.h"
#include "worker.h"

#define RETRY_MS 200
/* Error replies before a batch is split, and before a lone operation is set aside. */
#define MAX_ATTEMPTS 3
/* Restore calls (one bucket each) in flight at once per worker. */
#define RESTORE_WINDOW 4
/* Operations in one FCALL at most: a bucket whose batch waits long (Redis slow or away) must not make one
 * script call that blocks Redis past the command timeout. */
#define BATCH_MAX_OPS 2048

/* The buckets of a restore (start-up) or of an adoption (a dead node's sessions) still to ask for. */
typedef struct rjob {
	uint32_t next, last;       /* next > last: all asked */
	uint32_t inflight;
	bool adopt;
	int from;                  /* the node whose sessions are read */
} rjob_t;

static struct {
	bool redis;
	bool ready;
	bool restoring;            /* loading sessions at start-up (clients are served meanwhile) */
	bool replaying;            /* making a session from its stored record: nothing is written back */
	bool busy;
	strmap_t open;             /* batch key -> batch_t* filling until it is sent */
	batch_queue_t q;           /* batches to send, in each bucket's order */
	size_t pending_ops;        /* operations queued or in flight */
	rjob_t restore, adopt;
	strmap_t decided;          /* while restoring: client ids loaded or ended for a CONNECT (the restore skips them) */
	uint64_t restore_t0, restore_expired, restore_on_demand;
	uint64_t last_err_log_ms;
	const char **argv;         /* scratch for rds_command */
	size_t *lens;
	uint32_t cap_argv;
	void (*on_ready)(void);
	const store_owner_ops_t *owner;
	uint32_t adopted;
	int adopt_from;
	void (*on_adopted)(int from);
	uint8_t kind_grace;        /* the grace timer's completion kind */
	bool grace_armed;
	struct __kernel_timespec grace_ts;
} st;

static uint64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool store_durable(void)
{
	return st.redis;
}

bool store_ready(void)
{
	return st.ready;
}

bool store_restore_pending(const char *id, size_t len)
{
	return st.restoring && !strmap_get(&st.decided, id, len);
}

bool store_reachable(void)
{
	return !st.redis || rds_ready();
}

size_t store_pending(void)
{
	return st.pending_ops;
}

bool store_busy(void)
{
	return st.redis && (st.pending_ops > W->cfg->redis_max_pending || rds_pending() > W->cfg->redis_max_pending);
}

/* --- building batches ------------------------------------------------------------------------------------ */

static uint32_t bucket_of(const char *id, size_t len)
{
	return (uint32_t)((uint64_t)slot_of(id, len) * W->cfg->redis_buckets / SLOT_COUNT);
}

/* b stops collecting operations: its bucket's next ones start a new batch. */
static void close_open(batch_t *b)
{
	if (b->okey_len) {
		strmap_del(&st.open, b->okey, b->okey_len);
		b->okey_len = 0;
	}
}

/* The batch that collects operations for client id's bucket (or, without batching, for it alone) until it is
 * sent: at the end of the turn, or after the answer to the bucket's batch in flight. */
static batch_t *batch_for(const char *id, size_t id_len)
{
	uint32_t bucket = bucket_of(id, id_len);
	char key[80];
	size_t klen;
	batch_t *b;

	if (W->cfg->redis_batching)
		klen = (size_t)snprintf(key, sizeof(key), "%u", bucket);
	else
		klen = (size_t)snprintf(key, sizeof(key), "%u|%.*s", bucket, id_len > 60 ? 60 : (int)id_len, id);
	b = strmap_get(&st.open, key, klen);
	if (b && b->n_ops < BATCH_MAX_OPS)
		return b;
	if (b)
		close_open(b); /* full: it stays queued as it is, a new one follows it */
	b = batch_create(bucket);
	if (!b)
		return NULL;
	if (strmap_put(&st.open, key, klen, b, NULL) < 0) {
		batch_destroy(b);
		return NULL;
	}
	memcpy(b->okey, key, klen);
	b->okey_len = (uint8_t)klen;
	batch_queue_push(&st.q, b, 0);
	return b;
}

static bool writable(const sess_t *s)
{
	return st.redis && !st.replaying && s->expiry_s > 0;
}

static batch_t *op_begin_id(const char *id, size_t len, char op)
{
	batch_t *b = batch_for(id, len);

	if (b)
		batch_op_begin(b, op, id, len);
	return b;
}

static batch_t *op_begin(const sess_t *s, char op)
{
	return op_begin_id(s->id, s->id_len, op);
}

/* Finish an operation started with op_begin_id. When it could not be built, whoever waits is told it failed. */
static batch_op_t *op_end_id(batch_t *b, const char *id, size_t len, char op, waiter_t *w)
{
	batch_op_t *o = b ? batch_op_end(b) : NULL;

	if (!o) {
		W->st.store_failed_ops++;
		log_error(ENOMEM, "redis store: operation '%c' for '%.*s' could not be queued", op, (int)len, id);
		waiter_fail(w);
		return NULL;
	}
	o->w = waiter_take(w);
	st.pending_ops++;
	W->st.store_ops++;
	return o;
}

static batch_op_t *op_end(batch_t *b, const sess_t *s, char op, waiter_t *w)
{
	return op_end_id(b, s->id, s->id_len, op, w);
}

void store_sess_put(const sess_t *s)
{
	batch_t *b;

	if (!writable(s))
		return;
	b = op_begin(s, 'M');
	if (b) {
		batch_num(b, s->version);
		batch_num(b, s->expiry_s);
		batch_num(b, W->cfg->node_id);
	}
	op_end(b, s, 'M', NULL);
}

/* The lowest sequence number s still holds (window or queue); 0 when it holds none (the script then starts
 * from the first message queued while offline) or while its stored queue is still loading: memory then
 * holds only what arrived meanwhile, above the stored messages. (The script also finds the exact oldest at
 * the first offline add, which covers a failed load and a crash.) */
static uint64_t lowest_live(const sess_t *s)
{
	uint64_t lo = UINT64_MAX;
	uint32_t i = 0;
	win_ent_t *f;

	if (s->loading)
		return 0;
	if (s->queue.len)
		lo = ((const qent_t *)ring_at(&s->queue, sizeof(qent_t), 0))->qseq;
	while ((f = win_next(&s->win, &i))) {
		if (f->qseq < lo)
			lo = f->qseq;
	}
	return lo == UINT64_MAX ? 0 : lo;
}

void store_sess_offline(const sess_t *s)
{
	batch_t *b;

	if (!writable(s))
		return;
	b = op_begin(s, 'O');
	if (b) {
		batch_num(b, s->expiry_s == UINT32_MAX ? 0 : unix_ms() + (uint64_t)s->expiry_s * 1000);
		/* Online, the script neither counts nor orders the queue (the worker does): from here on it bounds
		 * it, starting from the oldest message still held. */
		batch_num(b, lowest_live(s));
	}
	op_end(b, s, 'O', NULL);
}

void store_sess_del(const sess_t *s)
{
	if (st.redis && !st.replaying && s->stored)
		op_end(op_begin(s, 'X'), s, 'X', NULL);
}

void store_sub_put(const sess_t *s, const sub_t *sub, waiter_t *w)
{
	char opts[48];
	batch_t *b;

	if (!writable(s))
		return;
	b = op_begin(s, 'U');
	if (b) {
		batch_arg(b, sub->filter, sub->filter_len);
		batch_arg(b, opts, (size_t)snprintf(opts, sizeof(opts), "%u,%u,%u,%u,%u", sub->opts.qos,
			sub->opts.no_local, sub->opts.retain_as_published, sub->opts.retain_handling, sub->subid));
	}
	op_end(b, s, 'U', w);
}

void store_sub_del(const sess_t *s, const char *filter, size_t len)
{
	batch_t *b;

	if (!writable(s))
		return;
	b = op_begin(s, 'V');
	if (b)
		batch_arg(b, filter, len);
	op_end(b, s, 'V', NULL);
}

/* Queue the 'A' (or 'a') write of a copy, counted on w; with its packet id when it was sent already (pid). */
static void add_op(const sess_t *s, uint64_t qseq, const msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid,
	uint16_t pid, uint8_t state, waiter_t *w)
{
	char v[16];
	uint64_t now = unix_ms();
	int64_t expire;
	batch_t *b;
	uint8_t *p;

	if (m->flags & MSG_HAS_EXPIRY)
		expire = (int64_t)(now + (m->expire_at_ms > loop_now() ? m->expire_at_ms - loop_now() : 0));
	else
		expire = (int64_t)(now + (uint64_t)W->cfg->message_ttl * 1000);
	/* A copy of a record of a Kafka inbox ('a') also carries its partition and offset: the script keeps the
	 * highest offset applied per partition for the session and skips what it already has (a re-delivery). */
	b = op_begin(s, m->src_part ? 'a' : 'A');
	if (b) {
		batch_num(b, qseq);
		/* The blob is built in place in the argument buffer: one copy of the payload. */
		p = batch_space(b, record_qblob_size(m, subid, expire));
		if (p)
			record_qblob_encode(p, m, qos, retain, subid, expire);
		/* An online session's queue is bounded here (sess.c drops the oldest, with a 'D'): the script counts
		 * and trims only an offline one's (0: no count, no trim). */
		batch_num(b, s->cold ? W->cfg->max_queued : 0);
		batch_arg(b, v, pid ? (size_t)snprintf(v, sizeof(v), "%u,%u", pid, state) : 0);
		if (m->src_part) {
			batch_num(b, m->src_part - 1);
			batch_num(b, m->src_off);
		}
	}
	op_end(b, s, m->src_part ? 'a' : 'A', w);
}

static void pid_op(const sess_t *s, uint64_t qseq, uint16_t pid, uint8_t state)
{
	char v[16];
	batch_t *b;

	b = op_begin(s, 'P');
	if (b) {
		batch_num(b, qseq);
		batch_arg(b, v, (size_t)snprintf(v, sizeof(v), "%u,%u", pid, state));
	}
	op_end(b, s, 'P', NULL);
}

/*
 * May this copy wait for its subscriber's acknowledgement instead of being written at once (grace.h)? Only a
 * QoS 1 copy of a QoS 1 publish for a subscriber online here:
 *  - offline (cold) or loading: nobody will acknowledge it soon;
 *  - QoS 2: the publisher's PUBREC makes its packet id "delivered" (the 'I' write): a resend after a crash
 *    would be answered without routing, so every copy must be durable before it, never only acknowledged
 *    by a subscriber that may not have finished its own QoS 2 flow;
 *  - a Kafka inbox record ('a'): its per-partition watermark is advanced only by a write; skipping the write
 *    would let a re-delivered record through twice, so it is written as before;
 *  - a stopping worker writes everything at once.
 */
static bool may_hold(const sess_t *s, const msg_t *m, uint8_t qos)
{
	return W->cfg->redis_write_grace_ms && s->conn && !s->cold && !s->loading && qos == 1 && m->qos == 1 &&
		!m->src_part && !loop_stopping();
}

void store_msg_add(const sess_t *s, uint64_t qseq, const msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid,
	waiter_t *w)
{
	grace_ent_t *e;

	if (!writable(s))
		return;
	if (may_hold(s, m, qos) && (e = grace_add(s, qseq, loop_now() + W->cfg->redis_write_grace_ms))) {
		e->m = msg_ref((msg_t *)m);
		e->qos = qos;
		e->retain = retain;
		e->subid = subid;
		e->w = waiter_take(w);
		st.pending_ops++; /* a graceful stop and read pausing count it as a write in flight */
		return;
	}
	add_op(s, qseq, m, qos, retain, subid, 0, 0, w);
}

/* The grace of e is over (or its session goes offline, or the worker stops): write it now, with its packet
 * id if it was sent. A session that stopped being persistent meanwhile has nothing to write. */
static void grace_write(grace_ent_t *e)
{
	const sess_t *s = e->s;
	waiter_t w = e->w;

	st.pending_ops--;
	if (writable(s)) {
		add_op(s, e->qseq, e->m, e->qos, e->retain, e->subid, e->pid, e->state, &w);
		if (w.failed)
			waiter_done(&e->w, false);
		else if (w.count == e->w.count)
			waiter_done(&e->w, true); /* add_op issued nothing: as for a session that is not written */
	} else {
		waiter_done(&e->w, true);
	}
	msg_unref(e->m);
	grace_del(e);
}

void store_sess_flush(const sess_t *s)
{
	grace_ent_t *e, *next;

	if (!grace_count())
		return;
	for (e = grace_first(); e; e = next) {
		next = e->next;
		if (e->s == s)
			grace_write(e);
	}
}

/* Write what is due; keep one timer armed for the first entry still held (the loop may have nothing else to
 * wake it). */
static void grace_flush(void)
{
	grace_ent_t *e;
	struct io_uring_sqe *sqe;
	uint64_t wait;

	while ((e = grace_first()) && (e->due_ms <= loop_now() || loop_stopping()))
		grace_write(e);
	if (!e || st.grace_armed)
		return;
	wait = e->due_ms - loop_now();
	st.grace_ts.tv_sec = (long long)(wait / 1000);
	st.grace_ts.tv_nsec = (long long)(wait % 1000) * 1000000;
	sqe = loop_sqe();
	io_uring_prep_timeout(sqe, &st.grace_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(st.kind_grace, 0, 0));
	st.grace_armed = true;
}

static void on_grace_timer(uint64_t ud, struct io_uring_cqe *cqe)
{
	(void)ud;
	(void)cqe;
	st.grace_armed = false; /* the flush that follows this turn writes what is due */
}

void store_msg_pid(const sess_t *s, uint64_t qseq, uint16_t pid, uint8_t state)
{
	grace_ent_t *e;

	if (!writable(s))
		return;
	if ((e = grace_find(s, qseq))) {
		e->pid = pid; /* written with the copy, if it ever is */
		e->state = state;
		return;
	}
	pid_op(s, qseq, pid, state);
}

static void seq_op(const sess_t *s, char op, uint64_t v, waiter_t *w)
{
	batch_t *b;

	if (!writable(s))
		return;
	b = op_begin(s, op);
	if (b)
		batch_num(b, v);
	op_end(b, s, op, w);
}

void store_msg_del(const sess_t *s, uint64_t qseq)
{
	grace_ent_t *e;

	if ((e = grace_find(s, qseq))) {
		/* Acknowledged (or dropped) within the grace: never written. Whoever waited for the copy to be safe
		 * may go on: the subscriber has it, or it was let go as a written copy would have been. */
		st.pending_ops--;
		waiter_done(&e->w, true);
		msg_unref(e->m);
		grace_del(e);
		return;
	}
	seq_op(s, 'D', qseq, NULL);
}

void store_rx_add(const sess_t *s, uint16_t pid, waiter_t *w)
{
	seq_op(s, 'I', pid, w);
}

void store_rx_del(const sess_t *s, uint16_t pid)
{
	seq_op(s, 'J', pid, NULL);
}

void store_sess_load(sess_t *s)
{
	batch_op_t *o;

	if (!st.redis) {
		sess_loaded(s, true, NULL, 0, NULL, 0);
		return;
	}
	o = op_end(op_begin(s, 'L'), s, 'L', NULL);
	if (!o) {
		sess_loaded(s, false, NULL, 0, NULL, 0);
		return;
	}
	o->load_gen = s->load_gen;
}

/* --- replies --------------------------------------------------------------------------------------------- */

static sess_t *restore_rec(record_sess_t *rs);
static void restore_pump(rjob_t *j);
static bool restore_job_done(const rjob_t *j);

/* The restore must not bring back a session a CONNECT decided about meanwhile (loaded it, or found none and
 * made a new one, perhaps ended since by a clean start): its reply may have been built before that. */
static void restore_decided(const char *cid, size_t len)
{
	if (st.restoring && strmap_put(&st.decided, cid, len, (void *)1, NULL) < 0)
		log_error(ENOMEM, "redis store: session '%.*s' may be restored twice", (int)len, cid);
}

/* The answer to a claim ('W': the previous owner) or a read ('S': the session, restored into memory). */
static void on_owner(const batch_t *b, const batch_op_t *o, const redisReply *x)
{
	uint32_t len;
	const char *cid = batch_arg_at(b, o->arg + 1, &len);
	record_sess_t rs;
	sess_t *s;

	if (!st.owner)
		return;
	if (o->op == 'W') {
		if (x->type == REDIS_REPLY_INTEGER && x->integer == -1)
			restore_decided(cid, len); /* no session: a new one is made */
		st.owner->claimed(cid, len, x->type == REDIS_REPLY_INTEGER ? x->integer : -2);
		return;
	}
	if (x->type == REDIS_REPLY_ARRAY && x->elements == 0) {
		restore_decided(cid, len);
		st.owner->fetched(cid, len, NULL, true); /* no session (any more) */
		return;
	}
	if (record_decode_sess(x, &rs) < 0) {
		W->st.store_quarantined++;
		log_warn(0, "redis store: the damaged session record of '%.*s' was skipped", (int)len, cid);
		st.owner->fetched(cid, len, NULL, false);
		return;
	}
	restore_decided(cid, len);
	s = sess_find((const uint8_t *)cid, len);
	if (!s && rs.expire_unix_ms && rs.expire_unix_ms <= unix_ms()) {
		/* Offline past its expiry (the restore deletes such sessions too): it ends, a new one is made. */
		W->st.sessions_expired++;
		op_end_id(op_begin_id(cid, len, 'X'), cid, len, 'X', NULL);
		st.owner->fetched(cid, len, NULL, true);
		return;
	}
	if (!s && (s = restore_rec(&rs)) && st.restoring) {
		st.restore_on_demand++;
		W->st.sessions_loaded_on_demand++;
	}
	st.owner->fetched(cid, len, s, s != NULL);
}

static sess_t *op_sess(const batch_t *b, const batch_op_t *o)
{
	uint32_t len;
	const char *cid = batch_arg_at(b, o->arg + 1, &len);

	return sess_find((const uint8_t *)cid, len);
}

static void on_load(const batch_t *b, const batch_op_t *o, const redisReply *r)
{
	sess_t *s = op_sess(b, o);
	record_load_t l;
	int ret;

	if (!s || !s->loading || s->load_gen != o->load_gen)
		return;
	ret = record_decode_load(r, unix_ms(), loop_now(), &l);
	if (ret < 0) {
		W->st.store_errors++;
		log_error(-ret, "redis store: session '%s' could not be loaded (%s)", s->id,
			ret == -EPROTO ? "unexpected reply" : "out of memory");
		sess_loaded(s, false, NULL, 0, NULL, 0);
		return;
	}
	/* A damaged entry must not stop the session: set it aside in Redis, say so, go on. */
	for (size_t i = 0; i < l.n_damaged; i++) {
		W->st.store_quarantined++;
		log_warn(0, "session '%s': stored message %" PRIu64 " cannot be decoded: quarantined", s->id,
			l.damaged[i]);
		seq_op(s, 'Q', l.damaged[i], NULL);
	}
	for (size_t i = 0; i < l.n_expired; i++) {
		W->st.dropped_expired++;
		store_msg_del(s, l.expired[i]);
	}
	sess_loaded(s, true, l.e, l.n, l.rx, l.nrx);
	l.n = 0; /* the entries' references went to the session */
	record_load_finish(&l);
}

/* One decoded session record (of a restore or of an 'S' read): the session, or NULL. Damaged subscriptions are
 * skipped, logged and counted, never fatal. A session already in memory (loaded for a CONNECT that came
 * during the restore, or ended by one: restore_decided) is left as it is. */
static sess_t *restore_rec(record_sess_t *rs)
{
	mqtt_str_t filter;
	mqtt_subopts_t opts;
	uint32_t subid;
	size_t pos = 0;
	sess_t *s;
	int ret;

	if (slot_owner(slot_of(rs->id, rs->id_len), W->n) != W->id)
		return NULL; /* another worker's client sharing the bucket */
	s = sess_restore(rs->id, rs->id_len, rs->version, rs->expiry_s, rs->next_qseq, rs->expire_unix_ms);
	if (!s)
		return NULL;
	st.replaying = true;
	for (size_t i = 0; (ret = record_next_sub(rs, &pos, &filter, &opts, &subid)) != -ENOENT; i++) {
		bool retained;

		if (ret < 0) {
			W->st.store_quarantined++;
			log_warn(0, "session '%s': stored subscription %zu is damaged: skipped", s->id, i);
			continue;
		}
		route_subscribe(s, filter, &opts, subid, NULL, &retained);
	}
	st.replaying = false;
	return s;
}

static void log_refusal(const batch_t *b, const redisReply *r, int err)
{
	if (loop_now() - st.last_err_log_ms < 5000)
		return;
	st.last_err_log_ms = loop_now();
	log_warn(err < 0 ? -err : 0, "redis store: a batch of %u operations for %s %s%s%s; retrying", b->n_ops,
		b->key, err ? "got no answer" : "was refused", r && r->type == REDIS_REPLY_ERROR ? ": " : "",
		r && r->type == REDIS_REPLY_ERROR ? r->str : "");
}

/* Queue restore calls of job j while fewer than RESTORE_WINDOW are in flight. All buckets at once made a
 * pipeline deeper than the command timeout (1024 calls of ~6 ms each): the connection was reset and every call
 * sent again, over and over. A few in flight keep Redis busy and each answer well within the timeout. */
static void restore_pump(rjob_t *j)
{
	while (j->inflight < RESTORE_WINDOW && j->next <= j->last) {
		batch_t *b = batch_create(j->next);

		if (!b) {
			log_error(ENOMEM, "redis store: cannot restore bucket %u now; trying again", j->next);
			return; /* the next answer pumps again; with nothing in flight the tick does */
		}
		b->restore = true;
		b->adopt = j->adopt;
		batch_num(b, unix_ms());
		batch_num(b, (uint64_t)j->from);
		if (j->adopt)
			batch_num(b, W->cfg->node_id);
		batch_queue_push(&st.q, b, 0);
		j->next++;
		j->inflight++;
	}
}

static bool restore_job_done(const rjob_t *j)
{
	return j->inflight == 0 && j->next > j->last;
}

static void restore_finished(void)
{
	st.restoring = false;
	st.ready = true;
	strmap_finish(&st.decided);
	strmap_init(&st.decided);
	log_info("redis store: %zu persistent sessions restored in %" PRIu64 " ms (%" PRIu64 " expired ones "
		"removed, %" PRIu64 " loaded on demand meanwhile)", sess_count(), loop_now() - st.restore_t0,
		st.restore_expired, st.restore_on_demand);
	if (st.on_ready)
		st.on_ready();
}

static void restore_reply(batch_t *b, const redisReply *r)
{
	rjob_t *j = b->adopt ? &st.adopt : &st.restore;
	size_t i = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY) {
		/* Without the restore nothing is served: try again, the error is logged (rate-limited). */
		batch_queue_retry(&st.q, b, loop_now() + RETRY_MS);
		return;
	}
	if (r->elements && r->element[0]->type == REDIS_REPLY_INTEGER) {
		if (r->element[0]->integer > 0) {
			st.restore_expired += (uint64_t)r->element[0]->integer;
			W->st.sessions_expired += (uint64_t)r->element[0]->integer;
		}
		i = 1;
	}
	for (; i < r->elements; i++) {
		const redisReply *x = r->element[i];
		record_sess_t rs;

		if (x->type != REDIS_REPLY_STRING || record_decode_packed(x->str, x->len, &rs) < 0) {
			W->st.store_quarantined++;
			log_warn(0, "redis store: a damaged session record in %s was skipped", b->key);
			continue;
		}
		if (!b->adopt && strmap_get(&st.decided, rs.id, rs.id_len))
			continue; /* loaded (or ended) for a CONNECT while the restore ran */
		if (restore_rec(&rs) && b->adopt)
			st.adopted++;
	}
	st.pending_ops -= b->n_ops;
	batch_destroy(b);
	j->inflight--;
	restore_pump(j);
	if (!restore_job_done(j))
		return;
	if (j == &st.adopt) {
		if (st.on_adopted) {
			log_info("redis store: %u sessions of node %d adopted", st.adopted, st.adopt_from);
			st.on_adopted(st.adopt_from);
		}
		return;
	}
	restore_finished();
}

/* Operation i cannot be stored: set it aside and tell whoever waits. */
static void quarantine_op(const batch_t *b, uint32_t i, const char *why)
{
	const batch_op_t *o = &b->ops[i];
	uint32_t len;
	const char *cid = batch_arg_at(b, o->arg + 1, &len);

	W->st.store_failed_ops++;
	log_error(0, "redis store: operation '%c' for client '%.*s' refused %u times (%s): set aside; %s", o->op,
		(int)len, cid, MAX_ATTEMPTS, why, o->w.kind != WAITER_NONE ? "its publisher/subscriber is told it "
		"failed" : "nobody waited for it");
	if (o->op == 'L') {
		sess_t *s = op_sess(b, o);

		if (s && s->loading && s->load_gen == o->load_gen)
			sess_loaded(s, false, NULL, 0, NULL, 0);
	}
	if (o->op == 'W' && st.owner)
		st.owner->claimed(cid, len, -2);
	if (o->op == 'S' && st.owner)
		st.owner->fetched(cid, len, NULL, false);
	waiter_done(&o->w, false);
	st.pending_ops--;
}

/* Redis answered with an error (or an answer that does not fit the batch): try again, then narrow down. */
static void refused(batch_t *b, const redisReply *r)
{
	const char *why = r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";

	if (++b->attempts < MAX_ATTEMPTS) {
		batch_queue_retry(&st.q, b, loop_now() + (uint64_t)RETRY_MS * b->attempts);
		return;
	}
	if (b->n_ops > 1) {
		/* One operation may be poison: send each alone so only that one is set aside. Last one first to the
		 * queue's front, so they go in their order, before the bucket's later batches. */
		for (uint32_t i = b->n_ops; i-- > 0;) {
			batch_t *one = batch_split_one(b, i);

			if (one) {
				one->attempts = MAX_ATTEMPTS - 1;
				batch_queue_retry(&st.q, one, loop_now() + RETRY_MS);
			} else {
				quarantine_op(b, i, "out of memory splitting its batch");
			}
		}
	} else if (b->n_ops == 1) {
		quarantine_op(b, 0, why);
	}
	batch_destroy(b);
}

static void batch_done(batch_t *b)
{
	st.pending_ops -= b->n_ops;
	for (uint32_t i = 0; i < b->n_ops; i++)
		waiter_done(&b->ops[i].w, true);
	batch_destroy(b);
}

static void on_reply(void *ctx, const redisReply *r, int err)
{
	batch_t *b = ctx;

	batch_queue_answered(&st.q, b);
	if (err || !r) {
		/* Outcome unknown (reset, timeout): send it again later, before anything newer of its bucket (every
		 * operation is idempotent, but a 'D' sent meanwhile would be undone by this 'A' landing after it). */
		W->st.store_errors++;
		W->st.store_retries++;
		log_refusal(b, r, err);
		batch_queue_retry(&st.q, b, loop_now() + RETRY_MS);
		return;
	}
	if (b->restore) {
		if (r->type == REDIS_REPLY_ERROR)
			log_refusal(b, r, 0);
		restore_reply(b, r);
		return;
	}
	if (r->type == REDIS_REPLY_ERROR || batch_reply_check(b, r) < 0) {
		W->st.store_errors++;
		log_refusal(b, r, 0);
		refused(b, r);
		return;
	}
	W->st.store_batches++;
	for (uint32_t i = 0; i < b->n_ops; i++) {
		const redisReply *x = r->element[i];

		if ((b->ops[i].op == 'A' || b->ops[i].op == 'a') && x->type == REDIS_REPLY_INTEGER && x->integer > 0) {
			W->st.store_dropped += (uint64_t)x->integer;
			W->st.dropped_queue_full += (uint64_t)x->integer;
		} else if (b->ops[i].op == 'L') {
			on_load(b, &b->ops[i], x);
		} else if (b->ops[i].op == 'W' || b->ops[i].op == 'S') {
			on_owner(b, &b->ops[i], x);
		}
	}
	batch_done(b);
}

static bool argv_room(uint32_t n)
{
	const char **a;
	size_t *l;

	if (n <= st.cap_argv)
		return true;
	a = realloc(st.argv, n * sizeof(*a));
	if (!a)
		return false;
	st.argv = a;
	l = realloc(st.lens, n * sizeof(*l));
	if (!l)
		return false;
	st.lens = l;
	st.cap_argv = n;
	return true;
}

/* batch_queue_pass's sender: 1 sent, 0 dropped, < 0 kept for a later flush. */
static int send_batch(batch_t *b)
{
	if (b->n_ops || b->restore) {
		int ret;

		if (!argv_room(b->argc + 4)) {
			b->retry_at_ms = loop_now() + RETRY_MS;
			return -ENOMEM;
		}
		st.argv[0] = "FCALL";
		st.argv[1] = b->restore ? "ringmq_restore" : "ringmq_batch";
		st.argv[2] = "1";
		st.argv[3] = b->key;
		st.lens[0] = 5;
		st.lens[1] = strlen(st.argv[1]);
		st.lens[2] = 1;
		st.lens[3] = strlen(b->key);
		for (uint32_t i = 0; i < b->argc; i++) {
			uint32_t len;

			st.argv[4 + i] = batch_arg_at(b, i, &len);
			st.lens[4 + i] = len;
		}
		ret = rds_command(b->slot, (int)b->argc + 4, st.argv, st.lens, on_reply, b);
		if (ret < 0) { /* still open if it was: it keeps collecting its bucket's operations */
			b->retry_at_ms = loop_now() + RETRY_MS;
			return ret;
		}
	}
	close_open(b);
	if (!b->n_ops && !b->restore) {
		batch_destroy(b); /* every operation of it failed to be built */
		return 0;
	}
	return 1;
}

static void flush(void)
{
	bool busy;

	if (!st.redis)
		return;
	grace_flush();
	batch_queue_pass(&st.q, loop_now(), send_batch);
	busy = store_busy();
	if (busy && !st.busy) {
		W->st.paused_reads++;
		log_warn(0, "redis store: %zu operations pending: pausing client reads until it drains",
			st.pending_ops);
	}
	st.busy = busy;
}

static bool draining(void)
{
	return st.pending_ops > 0;
}

/* --- set-up ---------------------------------------------------------------------------------------------- */

int store_init(void (*on_ready)(void))
{
	rds_config_t rc;
	uint32_t first, last;
	int ret;

	memset(&st, 0, sizeof(st));
	st.on_ready = on_ready;
	strmap_init(&st.open);
	strmap_init(&st.decided);
	st.adopt.next = 1; /* no adoption under way */
	if (strcmp(W->cfg->store, "redis") != 0) {
		st.ready = true;
		return 0;
	}
	if (batch_queue_init(&st.q, W->cfg->redis_buckets) < 0)
		return -ENOMEM;
	st.redis = true;
	grace_init();
	st.kind_grace = loop_register("store-grace", on_grace_timer);
	loop_on_flush(flush, LOOP_ORDER_STORE);
	loop_on_drain(draining);
	memset(&rc, 0, sizeof(rc));
	rc.addrs = W->cfg->redis_addrs;
	rc.user = W->cfg->redis_user;
	rc.password = W->cfg->redis_password;
	rc.db = W->cfg->redis_db;
	rc.connect_timeout_ms = W->cfg->redis_timeout_ms;
	rc.command_timeout_ms = W->cfg->redis_timeout_ms;
	rc.max_pending = W->cfg->redis_max_pending * 2;
	ret = rds_init(&rc);
	if (ret < 0)
		return ret;
	ret = rds_function_register(store_lua, sizeof(store_lua) - 1);
	if (ret < 0)
		return ret;
	/* Restore every bucket that holds slots of ours; sessions of other workers in a shared bucket are skipped
	 * by restore_rec(). Meanwhile a CONNECT loads its own session first (store_restoring). */
	st.restoring = true;
	st.restore_t0 = loop_now();
	first = (uint32_t)slot_first(W->id, W->n) * W->cfg->redis_buckets / SLOT_COUNT;
	last = ((uint32_t)slot_first(W->id + 1, W->n) - 1) * W->cfg->redis_buckets / SLOT_COUNT;
	st.restore = (rjob_t){ .next = first, .last = last, .from = W->cfg->node_id };
	restore_pump(&st.restore);
	log_info("redis store: restoring sessions of buckets %u..%u from %s", first, last, W->cfg->redis_addrs);
	return 0;
}

void store_set_owner_ops(const store_owner_ops_t *ops)
{
	st.owner = ops;
}

void store_claim(const char *id, size_t len)
{
	batch_t *b = op_begin_id(id, len, 'W');

	if (b)
		batch_num(b, W->cfg->node_id);
	if (!op_end_id(b, id, len, 'W', NULL) && st.owner)
		st.owner->claimed(id, len, -2);
}

void store_fetch(const char *id, size_t len)
{
	if (!op_end_id(op_begin_id(id, len, 'S'), id, len, 'S', NULL) && st.owner)
		st.owner->fetched(id, len, NULL, false);
}

int store_adopt(int from, void (*done)(int from))
{
	uint32_t first, last;

	if (!st.redis || !restore_job_done(&st.adopt))
		return -EBUSY;
	first = (uint32_t)slot_first(W->id, W->n) * W->cfg->redis_buckets / SLOT_COUNT;
	last = ((uint32_t)slot_first(W->id + 1, W->n) - 1) * W->cfg->redis_buckets / SLOT_COUNT;
	st.on_adopted = done;
	st.adopt_from = from;
	st.adopted = 0;
	st.adopt = (rjob_t){ .next = first, .last = last, .adopt = true, .from = from };
	restore_pump(&st.adopt);
	return 0;
}

void store_barrier(const char *id, size_t len, waiter_t *w)
{
	op_end_id(op_begin_id(id, len, 'B'), id, len, 'B', w);
}

void store_finish(void)
{
	/* rds_finish answers what is in flight (-ECANCELED): those batches come back to the send list. */
	if (st.redis)
		rds_finish();
	batch_queue_finish(&st.q);
	strmap_finish(&st.open);
	strmap_finish(&st.decided);
	if (st.redis)
		grace_finish();
	free(st.argv);
	free(st.lens);
	memset(&st, 0, sizeof(st));
}

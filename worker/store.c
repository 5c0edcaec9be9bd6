/* store.c — the session store: memory (no-ops) or Redis, batched per bucket per loop turn (see store.h). */
#include "store.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "conn.h"
#include "handle.h"
#include "log.h"
#include "mesh.h"
#include "msg.h"
#include "rds.h"
#include "sess.h"
#include "slot.h"
#include "store_lua.h"
#include "worker.h"

#define RETRY_MS 200

typedef struct opinfo {
	char op;
	uint32_t cid_arg;          /* index of the op's client-ID argument */
	uint32_t load_gen;         /* 'L' */
	waiter_t w;
} opinfo_t;

typedef struct batch {
	struct batch *next;
	char key[32];              /* "rmq:{bN}" */
	uint16_t slot;
	buf_t args;                /* argument bytes, back to back */
	uint32_t *lens;
	uint32_t argc;
	uint32_t cap_args;
	opinfo_t *ops;
	uint32_t n_ops;
	uint32_t cap_ops;
	uint64_t retry_at_ms;
	bool restore;              /* a ringmq_restore call */
} batch_t;

static struct {
	bool redis;
	strmap_t open;             /* batch key -> batch_t* being filled this turn */
	batch_t *ready;            /* batches to send at the next flush (in order) */
	batch_t **ready_tail;
	size_t pending_ops;        /* ops queued or in flight */
	uint32_t restores_left;
	uint64_t last_err_log_ms;
	bool paused;
} st;

/* Stored message header, followed by the msg_t data bytes. Native layout: written and read by ringmq only. */
typedef struct blob_hdr {
	uint32_t magic;
	uint8_t qos;
	uint8_t retain;
	uint8_t flags;
	uint8_t pfi;
	uint32_t subid;
	uint32_t user_len;
	int64_t expire_unix_ms;    /* when the message stops being deliverable */
	uint32_t payload_len;
	uint16_t topic_len, ct_len, rt_len, cd_len;
} blob_hdr_t;

#define BLOB_MAGIC 0x524d5131u /* "RMQ1" */

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

size_t store_pending(void)
{
	return st.pending_ops;
}

bool store_busy(void)
{
	return st.redis && (st.pending_ops > W->cfg->redis_max_pending || rds_pending() > W->cfg->redis_max_pending);
}

/* --- batches --------------------------------------------------------------------------------------------- */

static uint32_t bucket_of(const sess_t *s)
{
	return (uint32_t)((uint64_t)slot_of(s->id, s->id_len) * W->cfg->redis_buckets / SLOT_COUNT);
}

static void batch_free(batch_t *b)
{
	buf_finish(&b->args);
	free(b->lens);
	free(b->ops);
	free(b);
}

static batch_t *batch_new(uint32_t bucket)
{
	batch_t *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	snprintf(b->key, sizeof(b->key), "rmq:{b%u}", bucket);
	b->slot = rds_key_slot(b->key, strlen(b->key));
	return b;
}

static void ready_push(batch_t *b)
{
	b->next = NULL;
	*st.ready_tail = b;
	st.ready_tail = &b->next;
}

/* The batch that collects this turn's operations for s's bucket (or, without batching, for s alone). */
static batch_t *batch_for(const sess_t *s)
{
	char key[80];
	size_t klen;
	uint32_t bucket = bucket_of(s);
	batch_t *b;

	if (W->cfg->redis_batching)
		klen = (size_t)snprintf(key, sizeof(key), "%u", bucket);
	else
		klen = (size_t)snprintf(key, sizeof(key), "%u|%.*s", bucket, s->id_len > 60 ? 60 : (int)s->id_len,
			s->id);
	b = strmap_get(&st.open, key, klen);
	if (b)
		return b;
	b = batch_new(bucket);
	if (!b)
		return NULL;
	if (strmap_put(&st.open, key, klen, b, NULL) < 0) {
		batch_free(b);
		return NULL;
	}
	ready_push(b);
	return b;
}

static int add_arg(batch_t *b, const void *p, size_t len)
{
	if (b->argc == b->cap_args) {
		uint32_t cap = b->cap_args ? b->cap_args * 2 : 32;
		uint32_t *l = realloc(b->lens, cap * sizeof(*l));

		if (!l)
			return -ENOMEM;
		b->lens = l;
		b->cap_args = cap;
	}
	if (buf_append(&b->args, p, len) < 0)
		return -ENOMEM;
	b->lens[b->argc++] = (uint32_t)len;
	return 0;
}

/* Room for one argument of len bytes, filled by the caller. */
static uint8_t *add_space(batch_t *b, size_t len)
{
	uint8_t *p;

	if (add_arg(b, "", 0) < 0 || !(p = buf_reserve(&b->args, len)))
		return NULL;
	b->args.len += (uint32_t)len;
	b->lens[b->argc - 1] = (uint32_t)len;
	return p;
}

static int add_num(batch_t *b, uint64_t v)
{
	char num[24];

	return add_arg(b, num, (size_t)snprintf(num, sizeof(num), "%" PRIu64, v));
}

/* Start an operation for s: returns its batch (with op and client ID added), or NULL (logged). */
static batch_t *op_begin(const sess_t *s, char op, bool wait)
{
	batch_t *b = batch_for(s);
	opinfo_t *oi;

	if (!b)
		goto err;
	if (b->n_ops == b->cap_ops) {
		uint32_t cap = b->cap_ops ? b->cap_ops * 2 : 8;
		opinfo_t *o = realloc(b->ops, cap * sizeof(*o));

		if (!o)
			goto err;
		b->ops = o;
		b->cap_ops = cap;
	}
	oi = &b->ops[b->n_ops];
	memset(oi, 0, sizeof(*oi));
	oi->op = op;
	oi->cid_arg = b->argc + 1;
	if (add_arg(b, &op, 1) < 0 || add_arg(b, s->id, s->id_len) < 0)
		goto err;
	if (wait && W->wait.kind != WAIT_NONE) {
		oi->w = W->wait;
		W->wait_count++;
	}
	b->n_ops++;
	st.pending_ops++;
	W->st.store_ops++;
	return b;
err:
	log_error(ENOMEM, "store operation '%c' for '%s' dropped", op, s->id);
	return NULL;
}

static bool writable(const sess_t *s)
{
	return st.redis && !W->restoring && s->expiry_s > 0;
}

void store_sess_put(const sess_t *s)
{
	batch_t *b;

	if (!writable(s) || !(b = op_begin(s, 'M', false)))
		return;
	add_num(b, s->version);
	add_num(b, s->expiry_s);
}

void store_sess_offline(const sess_t *s)
{
	batch_t *b;

	if (!writable(s) || !(b = op_begin(s, 'O', false)))
		return;
	add_num(b, s->expiry_s == UINT32_MAX ? 0 : unix_ms() + (uint64_t)s->expiry_s * 1000);
}

void store_sess_del(const sess_t *s)
{
	if (st.redis && !W->restoring && s->stored)
		op_begin(s, 'X', false);
}

void store_sub_put(const sess_t *s, const sub_t *sub)
{
	char opts[48];
	batch_t *b;

	if (!writable(s) || !(b = op_begin(s, 'U', true)))
		return;
	add_arg(b, sub->filter, sub->filter_len);
	add_arg(b, opts, (size_t)snprintf(opts, sizeof(opts), "%u,%u,%u,%u,%u", sub->opts.qos, sub->opts.no_local,
		sub->opts.retain_as_published, sub->opts.retain_handling, sub->subid));
}

void store_sub_del(const sess_t *s, const char *filter, size_t len)
{
	batch_t *b;

	if (!writable(s) || !(b = op_begin(s, 'V', false)))
		return;
	add_arg(b, filter, len);
}

void store_msg_add(const sess_t *s, uint64_t qseq, const msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid)
{
	blob_hdr_t h;
	size_t dlen = msg_data_len(m);
	uint64_t now = unix_ms();
	batch_t *b;
	uint8_t *p;

	if (!writable(s) || !(b = op_begin(s, 'A', true)))
		return;
	memset(&h, 0, sizeof(h));
	h.magic = BLOB_MAGIC;
	h.qos = qos;
	h.retain = retain;
	h.flags = m->flags;
	h.pfi = m->pfi;
	h.subid = subid;
	h.user_len = m->user_len;
	h.payload_len = m->payload_len;
	h.topic_len = m->topic_len;
	h.ct_len = m->ct_len;
	h.rt_len = m->rt_len;
	h.cd_len = m->cd_len;
	if (m->flags & MSG_HAS_EXPIRY)
		h.expire_unix_ms = (int64_t)(now + (m->expire_at_ms > W->now_ms ? m->expire_at_ms - W->now_ms : 0));
	else
		h.expire_unix_ms = (int64_t)(now + (uint64_t)W->cfg->message_ttl * 1000);
	add_num(b, qseq);
	/* The blob is built in place in the argument buffer: one copy of the payload. */
	p = add_space(b, sizeof(h) + dlen);
	if (p) {
		memcpy(p, &h, sizeof(h));
		memcpy(p + sizeof(h), m->data, dlen);
	}
	add_num(b, W->cfg->max_queued);
}

void store_msg_pid(const sess_t *s, uint64_t qseq, uint16_t pid, uint8_t state)
{
	char v[16];
	batch_t *b;

	if (!writable(s) || !(b = op_begin(s, 'P', false)))
		return;
	add_num(b, qseq);
	add_arg(b, v, (size_t)snprintf(v, sizeof(v), "%u,%u", pid, state));
}

void store_msg_del(const sess_t *s, uint64_t qseq)
{
	batch_t *b;

	if (!writable(s) || !(b = op_begin(s, 'D', false)))
		return;
	add_num(b, qseq);
}

void store_rx_add(const sess_t *s, uint16_t pid)
{
	batch_t *b;

	if (!writable(s) || !(b = op_begin(s, 'I', true)))
		return;
	add_num(b, pid);
}

void store_rx_del(const sess_t *s, uint16_t pid)
{
	batch_t *b;

	if (!writable(s) || !(b = op_begin(s, 'J', false)))
		return;
	add_num(b, pid);
}

void store_sess_load(sess_t *s)
{
	batch_t *b;

	if (!st.redis || !(b = op_begin(s, 'L', false))) {
		sess_loaded(s, NULL, 0, NULL, 0);
		return;
	}
	b->ops[b->n_ops - 1].load_gen = s->load_gen;
}

/* --- waiters --------------------------------------------------------------------------------------------- */

void store_waiter_done(const waiter_t *w)
{
	if (w->kind == WAIT_CONN) {
		conn_t *c = conn_get(w->idx, w->gen);
		pend_t *pe;

		if (c && (pe = handle_pend_get(c, w->seq))) {
			if (pe->waiting)
				pe->waiting--;
			conn_pend_flush(c);
		}
	} else if (w->kind == WAIT_PEER) {
		mesh_inwait_done((int)w->idx, w->gen, w->seq);
	}
}

/* --- replies --------------------------------------------------------------------------------------------- */

static const char *arg_at(const batch_t *b, uint32_t idx, uint32_t *len)
{
	size_t off = 0;

	for (uint32_t i = 0; i < idx; i++)
		off += b->lens[i];
	*len = b->lens[idx];
	return (const char *)b->args.data + off;
}

static int cmp_entry(const void *a, const void *b)
{
	const store_entry_t *x = a, *y = b;

	return x->qseq < y->qseq ? -1 : x->qseq > y->qseq;
}

static msg_t *blob_decode(const char *p, size_t len, uint64_t now_unix, uint8_t *qos, uint8_t *retain,
	uint32_t *subid, bool *expired)
{
	blob_hdr_t h;
	msg_t hdr;

	*expired = false;
	if (len < sizeof(h))
		return NULL;
	memcpy(&h, p, sizeof(h));
	memset(&hdr, 0, sizeof(hdr));
	hdr.topic_len = h.topic_len;
	hdr.ct_len = h.ct_len;
	hdr.rt_len = h.rt_len;
	hdr.cd_len = h.cd_len;
	hdr.user_len = h.user_len;
	hdr.payload_len = h.payload_len;
	if (h.magic != BLOB_MAGIC || h.qos > 2 || sizeof(h) + msg_data_len(&hdr) != len || !h.topic_len)
		return NULL;
	if (h.expire_unix_ms <= (int64_t)now_unix) {
		*expired = true;
		return NULL;
	}
	hdr.qos = h.qos;
	hdr.retain = h.retain;
	hdr.flags = h.flags & (MSG_HAS_PFI | MSG_HAS_EXPIRY);
	hdr.pfi = h.pfi;
	hdr.expire_at_ms = W->now_ms + (uint64_t)(h.expire_unix_ms - (int64_t)now_unix);
	*qos = h.qos;
	*retain = h.retain;
	*subid = h.subid;
	return msg_create_raw(&hdr, (const uint8_t *)p + sizeof(h));
}

static void on_load(batch_t *b, const opinfo_t *oi, const redisReply *r)
{
	uint32_t cid_len;
	const char *cid = arg_at(b, oi->cid_arg, &cid_len);
	sess_t *s = sess_find((const uint8_t *)cid, cid_len);
	const redisReply *q, *p, *rx;
	store_entry_t *e = NULL;
	uint16_t *pids = NULL;
	size_t n = 0, nrx = 0;
	uint64_t now = unix_ms();

	if (!s || !s->loading || s->load_gen != oi->load_gen)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		sess_loaded(s, NULL, 0, NULL, 0);
		return;
	}
	q = r->element[1];
	p = r->element[2];
	rx = r->element[3];
	if (q->type == REDIS_REPLY_ARRAY && q->elements >= 2)
		e = calloc(q->elements / 2, sizeof(*e));
	for (size_t i = 0; e && i + 1 < q->elements; i += 2) {
		uint64_t qseq = strtoull(q->element[i]->str, NULL, 10);
		bool expired;
		store_entry_t *x = &e[n];

		x->m = blob_decode(q->element[i + 1]->str, q->element[i + 1]->len, now, &x->qos, &x->retain,
			&x->subid, &expired);
		if (!x->m) {
			/* A damaged entry must not stop the session: set it aside in Redis, say so, go on. */
			if (!expired) {
				W->st.store_quarantined++;
				log_warn(0, "session '%s': stored message %llu cannot be decoded: quarantined", s->id,
					(unsigned long long)qseq);
				batch_t *qb = op_begin(s, 'Q', false);

				if (qb)
					add_num(qb, qseq);
			} else {
				W->st.dropped_expired++;
				store_msg_del(s, qseq);
			}
			continue;
		}
		x->qseq = qseq;
		n++;
	}
	for (size_t i = 0; p->type == REDIS_REPLY_ARRAY && i + 1 < p->elements; i += 2) {
		uint64_t qseq = strtoull(p->element[i]->str, NULL, 10);
		unsigned pid = 0, state = 0;

		if (sscanf(p->element[i + 1]->str, "%u,%u", &pid, &state) != 2)
			continue;
		for (size_t j = 0; j < n; j++) {
			if (e[j].qseq == qseq) {
				e[j].pid = (uint16_t)pid;
				e[j].state = (uint8_t)state;
			}
		}
	}
	if (n > 1)
		qsort(e, n, sizeof(*e), cmp_entry);
	if (rx->type == REDIS_REPLY_ARRAY && rx->elements)
		pids = calloc(rx->elements, sizeof(*pids));
	for (size_t i = 0; pids && i < rx->elements; i++)
		pids[nrx++] = (uint16_t)strtoul(rx->element[i]->str, NULL, 10);
	sess_loaded(s, e, n, pids, nrx);
	free(e);
	free(pids);
}

static void on_restore(const redisReply *r)
{
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *x = r->element[i];

		if (x->type != REDIS_REPLY_ARRAY || x->elements != 3)
			continue;
		sess_restore(x->element[0]->str, x->element[0]->len, x->element[1], x->element[2]);
	}
}

static void batch_done(batch_t *b)
{
	st.pending_ops -= b->n_ops;
	for (uint32_t i = 0; i < b->n_ops; i++) {
		if (b->ops[i].w.kind != WAIT_NONE)
			store_waiter_done(&b->ops[i].w);
	}
	batch_free(b);
}

static void on_reply(void *ctx, const redisReply *r, int err)
{
	batch_t *b = ctx;

	if (err || !r || r->type == REDIS_REPLY_ERROR) {
		W->st.store_errors++;
		if (W->now_ms - st.last_err_log_ms > 5000) {
			st.last_err_log_ms = W->now_ms;
			log_warn(err < 0 ? -err : 0, "redis store: batch of %u operations failed%s%s; retrying", b->n_ops,
				r && r->type == REDIS_REPLY_ERROR ? ": " : "", r && r->type == REDIS_REPLY_ERROR ? r->str : "");
		}
		/* Outcome unknown or refused: send it again later; every operation is idempotent. */
		b->retry_at_ms = W->now_ms + RETRY_MS;
		ready_push(b);
		return;
	}
	W->st.store_batches++;
	if (b->restore) {
		on_restore(r);
		st.pending_ops -= b->n_ops;
		batch_free(b);
		if (--st.restores_left == 0) {
			W->restoring = false;
			W->store_ready = true;
			log_info("redis store: %zu persistent sessions restored", W->sessions.count);
			worker_serve();
		}
		return;
	}
	for (uint32_t i = 0; i < b->n_ops && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *x = r->element[i];

		if (b->ops[i].op == 'A' && x->type == REDIS_REPLY_INTEGER && x->integer > 0) {
			W->st.store_dropped += (uint64_t)x->integer;
			W->st.dropped_queue_full += (uint64_t)x->integer;
		} else if (b->ops[i].op == 'L') {
			on_load(b, &b->ops[i], x);
		}
	}
	batch_done(b);
	if (st.paused && !store_busy()) {
		st.paused = false;
		conn_resume_all();
	}
}

void store_flush(void)
{
	batch_t *keep = NULL, **keep_tail = &keep;

	if (!st.redis)
		return;
	/* A new turn starts a new set of open batches; those filled so far are sent below. */
	if (st.open.count) {
		strmap_finish(&st.open);
		strmap_init(&st.open);
	}
	while (st.ready) {
		batch_t *b = st.ready;
		const char **argv;
		size_t *lens;
		size_t off = 0;
		int ret;

		st.ready = b->next;
		if (b->retry_at_ms > W->now_ms) {
			*keep_tail = b;
			keep_tail = &b->next;
			continue;
		}
		argv = malloc((b->argc + 4) * sizeof(*argv));
		lens = malloc((b->argc + 4) * sizeof(*lens));
		if (!argv || !lens) {
			free(argv);
			free(lens);
			*keep_tail = b;
			keep_tail = &b->next;
			continue;
		}
		argv[0] = "FCALL";
		argv[1] = b->restore ? "ringmq_restore" : "ringmq_batch";
		argv[2] = "1";
		argv[3] = b->key;
		lens[0] = 5;
		lens[1] = strlen(argv[1]);
		lens[2] = 1;
		lens[3] = strlen(b->key);
		for (uint32_t i = 0; i < b->argc; i++) {
			argv[4 + i] = (const char *)b->args.data + off;
			lens[4 + i] = b->lens[i];
			off += b->lens[i];
		}
		ret = rds_command(b->slot, (int)b->argc + 4, argv, lens, on_reply, b);
		free(argv);
		free(lens);
		if (ret < 0) {
			b->retry_at_ms = W->now_ms + RETRY_MS;
			*keep_tail = b;
			keep_tail = &b->next;
		}
	}
	*keep_tail = NULL;
	st.ready = keep;
	st.ready_tail = keep ? keep_tail : &st.ready;
	if (store_busy() && !st.paused) {
		st.paused = true;
		W->st.paused_reads++;
		log_warn(0, "redis store: %zu operations pending: pausing client reads until it drains",
			st.pending_ops);
	}
}

/* --- set-up ---------------------------------------------------------------------------------------------- */

int store_init(void)
{
	rds_config_t rc;
	uint32_t first, last;
	int ret;

	st.ready_tail = &st.ready;
	strmap_init(&st.open);
	if (strcmp(W->cfg->store, "redis") != 0) {
		W->store_ready = true;
		return 0;
	}
	st.redis = true;
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
	 * by sess_restore(). Clients are not served before this completes, so session present is always right. */
	W->restoring = true;
	first = (uint32_t)slot_first(W->id, W->n) * W->cfg->redis_buckets / SLOT_COUNT;
	last = ((uint32_t)slot_first(W->id + 1, W->n) - 1) * W->cfg->redis_buckets / SLOT_COUNT;
	for (uint32_t bk = first; bk <= last; bk++) {
		batch_t *b = batch_new(bk);
		char now[24];

		if (!b)
			return -ENOMEM;
		b->restore = true;
		add_arg(b, now, (size_t)snprintf(now, sizeof(now), "%" PRIu64, unix_ms()));
		ready_push(b);
		st.restores_left++;
	}
	log_info("redis store: restoring sessions of buckets %u..%u from %s", first, last, W->cfg->redis_addrs);
	return 0;
}

void store_finish(void)
{
	while (st.ready) {
		batch_t *b = st.ready;

		st.ready = b->next;
		batch_free(b);
	}
	strmap_finish(&st.open);
	if (st.redis)
		rds_finish();
}

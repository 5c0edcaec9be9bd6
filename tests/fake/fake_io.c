/* fake_io.c — the worker's I/O in memory (see fake_io.h). */
#include "fake_io.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addrlimit.h"
#include "ctl.h"
#include "loop.h"
#include "mesh.h"
#include "owner.h"
#include "rds.h"
#include "reply.h"
#include "route.h"
#include "sess.h"
#include "sock.h"
#include "store.h"

wk_t *W;

/* --- allocation failure injection (the test links with --wrap=malloc,calloc,realloc) -------------------- */

static long fail_after;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static bool inject(void)
{
	return fail_after > 0 && --fail_after == 0;
}

void *__wrap_malloc(size_t n)
{
	return inject() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return inject() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return inject() ? NULL : __real_realloc(p, n);
}

void fake_fail_alloc_after(long n)
{
	fail_after = n;
}

/* --- loop ------------------------------------------------------------------------------------------------ */

#define MAX_HOOKS 16
#define MAX_READS 16

/* A read SQE a module armed (an eventfd's, say): fake_io_wait() completes it when its fd is readable. */
typedef struct fake_read {
	int fd;
	void *addr;
	uint32_t len;
	uint64_t ud;
} fake_read_t;

static struct {
	uint64_t now;
	bool stopping;
	loop_fn flush[MAX_HOOKS];
	int order[MAX_HOOKS];
	loop_fn ticks[MAX_HOOKS];
	uint32_t n_flush, n_ticks;
	uint8_t n_kinds;
	loop_cqe_fn kinds[256];
	struct io_uring_sqe sqe;
	fake_read_t reads[MAX_READS];
	uint32_t n_reads;
} L;

uint64_t loop_now(void) { return L.now; }
uint64_t loop_clock_ms(void) { return L.now; }
bool loop_stopping(void) { return L.stopping; }
void loop_stop(void) { L.stopping = true; }
void loop_on_drain(loop_busy_fn busy) { (void)busy; }

/* A cancelled read is forgotten without a completion (the real one would complete with -ECANCELED). */
static void drop_reads(uint64_t ud)
{
	for (uint32_t i = 0; i < L.n_reads;) {
		if (L.reads[i].ud == ud)
			L.reads[i] = L.reads[--L.n_reads];
		else
			i++;
	}
}

/* The SQE handed out last is filled in by now: keep it if it is a read, apply it if it is a cancel. */
static void collect(void)
{
	struct io_uring_sqe *q = &L.sqe;

	if (q->opcode == IORING_OP_READ && L.n_reads < MAX_READS)
		L.reads[L.n_reads++] = (fake_read_t){ .fd = q->fd, .addr = (void *)(uintptr_t)q->addr, .len = q->len,
			.ud = q->user_data };
	else if (q->opcode == IORING_OP_ASYNC_CANCEL)
		drop_reads(q->addr);
	memset(q, 0, sizeof(*q));
}

void loop_cancel(uint64_t ud)
{
	collect();
	drop_reads(ud);
}

struct io_uring_sqe *loop_sqe(void)
{
	/* Nothing is submitted: the previous SQE is looked at (collect) and the space reused. */
	collect();
	return &L.sqe;
}

uint8_t loop_register(const char *name, loop_cqe_fn fn)
{
	(void)name;
	L.kinds[++L.n_kinds] = fn;
	return L.n_kinds;
}

int fake_io_wait(int timeout_ms)
{
	struct pollfd pfd[MAX_READS];
	uint32_t n;
	int done = 0;

	collect();
	n = L.n_reads;
	for (uint32_t i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = L.reads[i].fd, .events = POLLIN };
	if (!n || poll(pfd, n, timeout_ms) <= 0)
		return 0;
	/* Completions in the order the reads became ready; a handler may arm a new read (appended). */
	for (uint32_t i = n; i-- > 0;) {
		fake_read_t r;
		struct io_uring_cqe cqe;
		ssize_t got;

		if (!(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
			continue;
		r = L.reads[i];
		L.reads[i] = L.reads[--L.n_reads];
		got = read(r.fd, r.addr, r.len);
		memset(&cqe, 0, sizeof(cqe));
		cqe.user_data = r.ud;
		cqe.res = got < 0 ? -errno : (int)got;
		if (L.kinds[ud_kind(r.ud)])
			L.kinds[ud_kind(r.ud)](r.ud, &cqe);
		done++;
	}
	fake_turn();
	return done;
}

void loop_on_flush(loop_fn fn, int order)
{
	uint32_t i;

	for (i = 0; i < L.n_flush; i++) {
		if (L.flush[i] == fn)
			return;
	}
	for (i = L.n_flush; i > 0 && L.order[i - 1] > order; i--) {
		L.flush[i] = L.flush[i - 1];
		L.order[i] = L.order[i - 1];
	}
	L.flush[i] = fn;
	L.order[i] = order;
	L.n_flush++;
}

void loop_on_tick(loop_fn fn)
{
	for (uint32_t i = 0; i < L.n_ticks; i++) {
		if (L.ticks[i] == fn)
			return;
	}
	L.ticks[L.n_ticks++] = fn;
}

/* --- sockets --------------------------------------------------------------------------------------------- */

#define MAX_SOCKS 4096

static struct {
	sock_t *tab[MAX_SOCKS];
	uint32_t gen[MAX_SOCKS];
	uint32_t count;
	uint32_t hi;               /* slots below this may be in use: loops stop there */
	buf_t wire[MAX_SOCKS];     /* bytes the peer sent that the socket has not received (paused) */
} S;

/* Append to a wire buffer without the failure injection (the fake's own memory must not fail). */
static void wire_append(buf_t *w, const void *p, size_t n)
{
	if (!n)
		return;
	if (w->len + n > w->cap) {
		w->cap = (uint32_t)((w->len + n) * 2);
		w->data = __real_realloc(w->data, w->cap);
	}
	memcpy(w->data + w->len, p, n);
	w->len += (uint32_t)n;
}

/* Deliver what waits on the wire while the socket receives, as the kernel would after a resume. */
static void deliver(sock_t *s)
{
	buf_t *w = &S.wire[s->idx];

	while (w->len && !s->paused && !s->closing) {
		size_t n = w->len < 4096 ? w->len : 4096;
		uint8_t chunk[4096];

		memcpy(chunk, w->data, n);
		memmove(w->data, w->data + n, w->len - n);
		w->len -= (uint32_t)n;
		s->ops->on_data(s, chunk, n);
	}
}

static void sock_flush(void);

int sock_open(sock_t *s, int fd, const sock_ops_t *ops, bool paused)
{
	for (uint32_t i = 0; i < MAX_SOCKS; i++) {
		if (S.tab[i])
			continue;
		memset(s, 0, sizeof(*s));
		s->fd = fd;
		s->idx = i;
		s->gen = ++S.gen[i] & 0xffffff;
		s->ops = ops;
		s->paused = paused;
		s->recv_armed = !paused;
		S.tab[i] = s;
		S.count++;
		if (i + 1 > S.hi)
			S.hi = i + 1;
		return 0;
	}
	return -ENOMEM;
}

sock_t *sock_get(uint32_t idx, uint32_t gen)
{
	sock_t *s = idx < MAX_SOCKS ? S.tab[idx] : NULL;

	return s && s->gen == gen && !s->closing ? s : NULL;
}

uint8_t *sock_reserve(sock_t *s, size_t n)
{
	return outq_reserve(&s->out, n);
}

void sock_commit(sock_t *s, size_t n)
{
	s->out.pending.len += (uint32_t)n;
}

void sock_pause(sock_t *s)
{
	buf_t *w = &S.wire[s->idx];

	if (s->paused)
		return;
	/* A recv armed with bytes waiting may complete before its cancellation does: one more read comes. */
	if (s->recv_armed && w->len && !s->closing) {
		size_t n = w->len < 4096 ? w->len : 4096;
		uint8_t chunk[4096];

		memcpy(chunk, w->data, n);
		memmove(w->data, w->data + n, w->len - n);
		w->len -= (uint32_t)n;
		s->paused = true;
		s->ops->on_data(s, chunk, n);
	}
	s->paused = true;
	if (s->recv_armed) {
		/* The real recv ends with a final completion after its cancellation: at once, here. */
		s->recv_armed = false;
		if (!s->closing && s->ops->on_recv_stopped)
			s->ops->on_recv_stopped(s);
	}
}

void sock_resume(sock_t *s)
{
	if (s->closing || !s->paused)
		return;
	s->paused = false;
	s->recv_armed = true;
	deliver(s);
}

void sock_close(sock_t *s, bool flush)
{
	if (s->closing)
		return;
	s->closing = true;
	s->flush_on_close = flush;
	s->recv_armed = false;
}

uint32_t sock_count(void)
{
	return S.count;
}

/* What a closed connection wrote last (its DISCONNECT...), kept for the test by connection id. */
#define MAX_LAST 64
static struct {
	uint64_t id;
	uint8_t *data;
	size_t len;
} last[MAX_LAST];
static unsigned n_last;

static void keep_last(const conn_t *c)
{
	const outq_t *q = &c->sk.out;
	unsigned i = n_last++ % MAX_LAST;

	free(last[i].data);
	last[i].id = c->id;
	last[i].len = q->pending.len;
	last[i].data = __real_malloc(q->pending.len ? q->pending.len : 1);
	if (q->pending.len)
		memcpy(last[i].data, q->pending.data, q->pending.len);
}

size_t fake_last_output(uint64_t id, uint8_t **out)
{
	for (unsigned i = 0; i < MAX_LAST; i++) {
		if (last[i].data && last[i].id == id) {
			size_t n = last[i].len;

			*out = last[i].data;
			last[i].data = NULL;
			last[i].len = 0;
			return n;
		}
	}
	*out = NULL;
	return 0;
}

/* Closed sockets are released at the end of the turn, as the real ones once their SQEs are done; the last
 * output of a connection closed with a flush is kept for the test. */
static void sock_flush(void)
{
	for (uint32_t i = 0; i < S.hi; i++) {
		sock_t *s = S.tab[i];

		if (!s || !s->closing)
			continue;
		if (s->fd == -1 && s->flush_on_close)
			keep_last((conn_t *)s);
		S.tab[i] = NULL;
		S.count--;
		buf_finish(&S.wire[i]);
		outq_finish(&s->out);
		s->ops->on_free(s);
	}
}

/* --- control channel, Redis ------------------------------------------------------------------------------ */

void ctl_when_writable(void (*fn)(void))
{
	(void)fn;
}

int ctl_handoff(struct conn *c)
{
	(void)c;
	return -EMSGSIZE; /* one worker in these tests: nothing moves */
}

typedef struct fake_cmd {
	struct fake_cmd *next;
	rds_cb cb;
	void *ctx;
	int argc;
	char **argv;
	size_t *lens;
} fake_cmd_t;

static struct {
	fake_cmd_t *head, **tail;
	size_t n;
} R = { .tail = &R.head };

int rds_init(const rds_config_t *cfg) { (void)cfg; return 0; }
int rds_function_register(const char *src, size_t len) { (void)src; (void)len; return 0; }
size_t rds_pending(void) { return R.n; }
bool rds_ready(void) { return true; }

int rds_command(uint16_t slot, int argc, const char **argv, const size_t *lens, rds_cb cb, void *ctx)
{
	fake_cmd_t *c = __real_calloc(1, sizeof(*c));

	(void)slot;
	c->cb = cb;
	c->ctx = ctx;
	c->argc = argc;
	c->argv = __real_calloc((size_t)argc, sizeof(char *));
	c->lens = __real_calloc((size_t)argc, sizeof(size_t));
	for (int i = 0; i < argc; i++) {
		size_t len = lens ? lens[i] : strlen(argv[i]);

		c->argv[i] = __real_malloc(len + 1);
		memcpy(c->argv[i], argv[i], len);
		c->argv[i][len] = '\0';
		c->lens[i] = len;
	}
	*R.tail = c;
	R.tail = &c->next;
	R.n++;
	return 0;
}

static void cmd_free(fake_cmd_t *c)
{
	for (int i = 0; i < c->argc; i++)
		free(c->argv[i]);
	free(c->argv);
	free(c->lens);
	free(c);
}

static fake_cmd_t *pop(void)
{
	fake_cmd_t *c = R.head;

	if (!c)
		return NULL;
	R.head = c->next;
	if (!R.head)
		R.tail = &R.head;
	R.n--;
	return c;
}

void rds_finish(void)
{
	fake_cmd_t *c;

	while ((c = pop())) {
		if (c->cb)
			c->cb(c->ctx, NULL, -ECANCELED);
		cmd_free(c);
	}
}

size_t fake_rds_pending(void)
{
	return R.n;
}

size_t fake_rds_argc(void)
{
	return R.head ? (size_t)R.head->argc : 0;
}

const char *fake_rds_argv(size_t i, size_t *len)
{
	if (!R.head || i >= (size_t)R.head->argc)
		return NULL;
	*len = R.head->lens[i];
	return R.head->argv[i];
}

void fake_rds_answer(const char *resp, size_t len, int err)
{
	fake_cmd_t *c = pop();
	redisReader *rd;
	void *reply = NULL;

	if (!c)
		return;
	if (!err) {
		rd = redisReaderCreate();
		redisReaderFeed(rd, resp, len);
		if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply)
			err = -EPROTO;
		redisReaderFree(rd);
	}
	if (c->cb)
		c->cb(c->ctx, err ? NULL : reply, err);
	if (reply)
		freeReplyObject(reply);
	cmd_free(c);
}

/* Arguments per store operation (letter, client ID, then its own). */
static int op_args(char op)
{
	switch (op) {
	case 'X': case 'L': case 'S': case 'B': return 2;
	case 'V': case 'D': case 'I': case 'J': case 'Q': case 'W': return 3;
	case 'O': case 'U': case 'P': return 4;
	case 'M': return 5;
	case 'A': return 6;
	case 'a': return 8;
	default: return -1;
	}
}

size_t fake_rds_ops(char *ops, size_t cap)
{
	size_t argc = fake_rds_argc(), n = 0, len;

	/* FCALL ringmq_batch 1 key op... */
	for (size_t i = 4; i < argc && n + 1 < cap;) {
		const char *a = fake_rds_argv(i, &len);
		int k = len == 1 ? op_args(a[0]) : -1;

		if (k < 0)
			return SIZE_MAX;
		ops[n++] = a[0];
		i += (size_t)k;
	}
	ops[n] = '\0';
	return n;
}

void fake_rds_answer_ok(const char *load, size_t load_len)
{
	static const char empty[] = "*4\r\n*0\r\n*0\r\n*0\r\n*0\r\n";
	char ops[4096], *resp;
	size_t n, cap = 64, len = 0, fl;
	const char *fn = fake_rds_argv(1, &fl);

	if (fn && strcmp(fn, "ringmq_restore") == 0) {
		fake_rds_answer("*0\r\n", 4, 0);
		return;
	}
	if (!load) {
		load = empty;
		load_len = sizeof(empty) - 1;
	}
	n = fake_rds_ops(ops, sizeof(ops));
	if (n == SIZE_MAX) {
		fake_rds_answer("-ERR unknown op\r\n", 18, 0);
		return;
	}
	for (size_t i = 0; i < n; i++)
		cap += ops[i] == 'L' ? load_len : 8;
	resp = __real_malloc(cap);
	len += (size_t)snprintf(resp + len, cap - len, "*%zu\r\n", n);
	for (size_t i = 0; i < n; i++) {
		if (ops[i] == 'L') {
			memcpy(resp + len, load, load_len);
			len += load_len;
		} else {
			len += (size_t)snprintf(resp + len, cap - len, ":0\r\n");
		}
	}
	fake_rds_answer(resp, len, 0);
	free(resp);
}

struct redisReply *fake_resp_parse(const char *resp)
{
	redisReader *rd = redisReaderCreate();
	void *r = NULL;

	redisReaderFeed(rd, resp, strlen(resp));
	redisReaderGetReply(rd, &r);
	redisReaderFree(rd);
	return r;
}

/* --- the worker ------------------------------------------------------------------------------------------ */

static wk_t wk;
static config_t fcfg;
static worker_args_t fargs;

void worker_serve(void)
{
	mesh_start();
	route_check_complete();
}

void fake_init(const config_t *cfg, int id, int n)
{
	memset(&L, 0, sizeof(L));
	memset(&S, 0, sizeof(S));
	L.now = 1000000;
	if (cfg)
		fcfg = *cfg;
	else
		config_defaults(&fcfg);
	memset(&wk, 0, sizeof(wk));
	wk.id = id;
	wk.n = n;
	wk.n_peers = n;
	wk.cfg = &fcfg;
	wk.listen_fd = -1;
	wk.tls_listen_fd = -1;
	wk.ctl_fd = -1;
	W = &wk;
	memset(&fargs, 0, sizeof(fargs));
	fargs.id = id;
	fargs.n_workers = n;
	fargs.cfg = &fcfg;
	for (int k = 0; k < WORKER_MAX; k++)
		fargs.mesh_fds[k] = k < n && k != id ? FAKE_CHAN_FD(k) : -1;
	loop_on_flush(sock_flush, LOOP_ORDER_SOCK);
	reply_module_init();
	conn_module_init();
	sess_module_init();
	route_init();
	addrlimit_init();
	mesh_init(&fargs);
	/* The fake's peers are live workers that announced their interest long ago (a test of a restarting peer
	 * sends its MF_SYNC itself). */
	for (int k = 0; k < n; k++) {
		if (k != id)
			route_peer_synced(k);
	}
	store_init(worker_serve);
	owner_init(); /* as worker.c: a CONNECT during the restore reads its session through it */
	if (store_ready())
		worker_serve();
}

void fake_turn(void)
{
	for (uint32_t i = 0; i < L.n_flush; i++)
		L.flush[i]();
}

void fake_advance(uint64_t ms)
{
	L.now += ms;
	for (uint32_t i = 0; i < L.n_ticks; i++)
		L.ticks[i]();
	fake_turn();
}

void fake_finish(void)
{
	fake_fail_alloc_after(0);
	for (uint32_t i = 0; i < S.hi; i++) {
		sock_t *s = S.tab[i];

		if (s && s->ops->on_eof && !s->closing)
			s->ops->on_eof(s, 0);
	}
	fake_turn();
	sess_module_finish();
	owner_finish();
	store_finish();
	route_finish();
	mesh_finish();
	addrlimit_finish();
	fake_turn();
	while (R.n)
		cmd_free(pop());
	for (unsigned i = 0; i < MAX_LAST; i++) {
		free(last[i].data);
		last[i].data = NULL;
	}
}

conn_t *fake_connect(void)
{
	return conn_adopt(-1, NULL, 0);
}

void fake_input(conn_t *c, const void *p, size_t n)
{
	if (c->sk.closing)
		return;
	wire_append(&S.wire[c->sk.idx], p, n);
	deliver(&c->sk);
}

size_t fake_output(conn_t *c, uint8_t **out)
{
	outq_t *q = &c->sk.out;
	size_t n = q->pending.len;

	*out = __real_malloc(n ? n : 1);
	if (n)
		memcpy(*out, q->pending.data, n);
	q->pending.len = 0;
	return n;
}

conn_t *fake_conn_find(uint64_t id)
{
	for (uint32_t i = 0; i < S.hi; i++) {
		sock_t *s = S.tab[i];

		if (s && !s->closing && s->ops == S.tab[i]->ops && s->fd == -1) {
			conn_t *c = (conn_t *)s;

			if (c->id == id)
				return c;
		}
	}
	return NULL;
}

bool fake_conn_open(uint64_t id)
{
	return fake_conn_find(id) != NULL;
}

struct sock *fake_chan(int k)
{
	for (uint32_t i = 0; i < S.hi; i++) {
		sock_t *s = S.tab[i];

		if (s && !s->closing && s->fd == FAKE_CHAN_FD(k))
			return s;
	}
	return NULL;
}

size_t fake_chan_output(int k, uint8_t **out)
{
	sock_t *s = fake_chan(k);
	size_t n = s ? s->out.pending.len : 0;

	*out = __real_malloc(n ? n : 1);
	if (n) {
		memcpy(*out, s->out.pending.data, n);
		s->out.pending.len = 0;
	}
	return n;
}

void fake_chan_input(int k, const void *p, size_t n)
{
	sock_t *s = fake_chan(k);

	if (s) {
		wire_append(&S.wire[s->idx], p, n);
		deliver(s);
	}
}

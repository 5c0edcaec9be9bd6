/* sock.c — stream sockets on the ring with references, generations and linger (see sock.h). */
#include "sock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "log.h"

static struct {
	uint8_t kind_recv;
	uint8_t kind_send;
	sock_t **tab;              /* by idx */
	uint32_t *gen;             /* generation per idx, survives the socket */
	uint32_t *free_idx;
	uint32_t cap;
	uint32_t n_free;
	uint32_t count;
	sock_t *dirty;
	sock_t *linger;            /* closing sockets with output left */
} S;

static void on_recv(uint64_t ud, struct io_uring_cqe *cqe);
static void on_send(uint64_t ud, struct io_uring_cqe *cqe);
static void flush_all(void);
static void tick(void);

void sock_module_init(void)
{
	S.kind_recv = loop_register("sock-recv", on_recv);
	S.kind_send = loop_register("sock-send", on_send);
	loop_on_flush(flush_all, LOOP_ORDER_SOCK);
	loop_on_tick(tick);
}

void sock_module_finish(void)
{
	free(S.tab);
	free(S.gen);
	free(S.free_idx);
	memset(&S, 0, sizeof(S));
}

static int alloc_idx(uint32_t *idx)
{
	if (!S.n_free) {
		uint32_t cap = S.cap ? S.cap * 2 : 1024;
		sock_t **tab = realloc(S.tab, cap * sizeof(*tab));
		uint32_t *gen, *fr;

		if (!tab)
			return -ENOMEM;
		S.tab = tab;
		gen = realloc(S.gen, cap * sizeof(*gen));
		if (!gen)
			return -ENOMEM;
		S.gen = gen;
		fr = realloc(S.free_idx, cap * sizeof(*fr));
		if (!fr)
			return -ENOMEM;
		S.free_idx = fr;
		for (uint32_t i = cap; i > S.cap; i--) {
			S.tab[i - 1] = NULL;
			S.gen[i - 1] = 0;
			S.free_idx[S.n_free++] = i - 1;
		}
		S.cap = cap;
	}
	*idx = S.free_idx[--S.n_free];
	return 0;
}

static void mark_dirty(sock_t *s)
{
	if (s->dirty)
		return;
	s->dirty = true;
	s->next_dirty = S.dirty;
	S.dirty = s;
}

static void arm_recv(sock_t *s)
{
	if (s->recv_armed || s->paused || s->closing || s->fd < 0)
		return;
	loop_recv_multishot(s->fd, ud_make(S.kind_recv, s->gen, s->idx));
	s->recv_armed = true;
	s->refs++;
}

int sock_open(sock_t *s, int fd, const sock_ops_t *ops, bool paused)
{
	uint32_t idx;

	if (alloc_idx(&idx) < 0)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->idx = idx;
	s->gen = ++S.gen[idx] & 0xffffff;
	s->ops = ops;
	S.tab[idx] = s;
	S.count++;
	s->paused = paused;
	arm_recv(s);
	return 0;
}

sock_t *sock_get(uint32_t idx, uint32_t gen)
{
	sock_t *s;

	if (idx >= S.cap)
		return NULL;
	s = S.tab[idx];
	if (!s || s->gen != gen || s->closing)
		return NULL;
	return s;
}

uint8_t *sock_reserve(sock_t *s, size_t n)
{
	return outq_reserve(&s->out, n);
}

void sock_commit(sock_t *s, size_t n)
{
	s->out.pending.len += (uint32_t)n;
	mark_dirty(s);
}

int sock_write(sock_t *s, const void *p, size_t n)
{
	uint8_t *dst = sock_reserve(s, n);

	if (!dst)
		return -ENOMEM;
	memcpy(dst, p, n);
	sock_commit(s, n);
	return 0;
}

void sock_pause(sock_t *s)
{
	if (s->paused)
		return;
	s->paused = true;
	if (s->fd < 0 && s->ops->on_pause)
		s->ops->on_pause(s, true);
	if (s->recv_armed)
		loop_cancel(ud_make(S.kind_recv, s->gen, s->idx));
}

void sock_resume(sock_t *s)
{
	if (!s->paused)
		return;
	s->paused = false;
	if (s->fd < 0 && s->ops->on_pause && !s->closing)
		s->ops->on_pause(s, false);
	/* A cancelled recv may not have delivered its final completion yet: arm_recv waits for it. */
	arm_recv(s);
}

static void linger_add(sock_t *s)
{
	if (s->lingering)
		return;
	s->lingering = true;
	s->prev_linger = NULL;
	s->next_linger = S.linger;
	if (S.linger)
		S.linger->prev_linger = s;
	S.linger = s;
}

static void linger_del(sock_t *s)
{
	if (!s->lingering)
		return;
	s->lingering = false;
	if (s->prev_linger)
		s->prev_linger->next_linger = s->next_linger;
	else
		S.linger = s->next_linger;
	if (s->next_linger)
		s->next_linger->prev_linger = s->prev_linger;
}

void sock_close(sock_t *s, bool flush)
{
	if (s->closing)
		return;
	s->closing = true;
	s->flush_on_close = flush;
	s->close_at_ms = loop_now() + SOCK_LINGER_MS;
	if (s->recv_armed)
		loop_cancel(ud_make(S.kind_recv, s->gen, s->idx));
	if (!flush) {
		/* The kernel may still be reading `sending`: only what is not in flight can go now. */
		if (s->out.inflight)
			s->out.pending.len = 0;
		else
			outq_reset(&s->out);
	}
	linger_add(s);
	mark_dirty(s);
}

uint32_t sock_count(void)
{
	return S.count;
}

/* Release a closed socket whose last SQE has completed. Only from the flush pass: no caller holds it. */
static void release(sock_t *s)
{
	linger_del(s);
	if (s->fd >= 0)
		close(s->fd);
	outq_finish(&s->out);
	S.tab[s->idx] = NULL;
	S.free_idx[S.n_free++] = s->idx;
	S.count--;
	s->ops->on_free(s);
}

static sock_t *lookup(uint64_t ud)
{
	uint32_t idx = ud_idx(ud);
	sock_t *s;

	if (idx >= S.cap)
		return NULL;
	s = S.tab[idx];
	return s && (s->gen & 0xffffff) == ud_gen(ud) ? s : NULL;
}

static void on_recv(uint64_t ud, struct io_uring_cqe *cqe)
{
	sock_t *s = lookup(ud);
	int bid = loop_cqe_buf(cqe);
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (!s) {
		if (bid >= 0)
			loop_buf_return((uint16_t)bid);
		return;
	}
	if (cqe->res > 0 && bid >= 0 && !s->closing)
		s->ops->on_data(s, loop_buf((uint16_t)bid), (size_t)cqe->res);
	if (bid >= 0)
		loop_buf_return((uint16_t)bid);
	if (more)
		return;
	s->recv_armed = false;
	s->refs--;
	if (s->closing) {
		mark_dirty(s);
	} else if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED)) {
		s->ops->on_eof(s, cqe->res);
	} else if (s->paused) {
		if (s->ops->on_recv_stopped)
			s->ops->on_recv_stopped(s);
	} else {
		/* -ENOBUFS ends a multishot recv when the provided ring ran dry: buffers are back by now. */
		arm_recv(s);
	}
}

static void on_send(uint64_t ud, struct io_uring_cqe *cqe)
{
	sock_t *s = lookup(ud);

	if (!s)
		return;
	s->refs--;
	if (cqe->res < 0) {
		s->out.inflight = false;
		outq_reset(&s->out);
		if (!s->closing)
			s->ops->on_eof(s, cqe->res);
		mark_dirty(s);
		return;
	}
	if (outq_sent(&s->out, cqe->res) || s->out.pending.len || s->closing)
		mark_dirty(s);
	if (s->ops->on_sent)
		s->ops->on_sent(s, (size_t)cqe->res);
}

static void flush_one(sock_t *s)
{
	const uint8_t *p;
	size_t len;

	if (s->fd < 0) {
		if (s->ops->on_flush && (!s->closing || s->flush_on_close))
			s->ops->on_flush(s);
		outq_reset(&s->out);
	} else if ((!s->closing || s->flush_on_close) && outq_next(&s->out, &p, &len)) {
		loop_send(s->fd, p, len, ud_make(S.kind_send, s->gen, s->idx));
		s->refs++;
	}
	if (s->closing && !s->refs)
		release(s);
}

static void flush_all(void)
{
	while (S.dirty) {
		sock_t *s = S.dirty;

		S.dirty = s->next_dirty;
		s->dirty = false;
		flush_one(s);
	}
}

static void tick(void)
{
	uint64_t now = loop_now();

	/* A closing socket whose peer takes nothing: shut it down so the send in flight fails and it goes. */
	for (sock_t *s = S.linger; s; s = s->next_linger) {
		if (s->refs && now >= s->close_at_ms) {
			shutdown(s->fd, SHUT_RDWR);
			s->close_at_ms = now + SOCK_LINGER_MS;
		}
	}
}

/* loop.c — io_uring setup and the worker's event loop (see loop.h). */
#include "loop.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"

#define MAX_KINDS 32
#define MAX_HOOKS 16

static struct {
	struct io_uring ring;
	bool up;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	uint32_t nbufs;
	uint32_t bufsz;
	uint32_t tick_ms;
	struct __kernel_timespec tick;
	uint64_t now_ms;
	bool stopping;
	bool timer_armed;
	uint8_t n_kinds;
	loop_cqe_fn kinds[MAX_KINDS];
	const char *kind_names[MAX_KINDS];
	loop_fn flush[MAX_HOOKS];
	int flush_order[MAX_HOOKS];
	loop_fn ticks[MAX_HOOKS];
	loop_busy_fn drains[MAX_HOOKS];
	uint32_t n_flush, n_ticks, n_drains;
	uint8_t kind_timer;
} L;

uint64_t loop_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t loop_now(void)
{
	return L.now_ms;
}

static void on_timer(uint64_t ud, struct io_uring_cqe *cqe);

int loop_init(const loop_config_t *cfg)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	size_t ring_bytes;
	int ret;

	memset(&L, 0, sizeof(L));
	L.now_ms = loop_clock_ms();
	memset(&p, 0, sizeof(p));
	/* DEFER_TASKRUN keeps completion work on our own io_uring_enter calls: no cross-CPU task work. */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN |
		IORING_SETUP_CQSIZE;
	p.cq_entries = cfg->sq_entries * 4;
	ret = io_uring_queue_init_params(cfg->sq_entries, &L.ring, &p);
	if (ret < 0) {
		log_error(-ret, "cannot create io_uring (kernel >= 6.1 needed; in containers the seccomp profile "
			"must allow io_uring_setup/io_uring_enter/io_uring_register)");
		return ret;
	}
	L.nbufs = cfg->buf_count;
	L.bufsz = cfg->buf_size;
	L.tick_ms = cfg->tick_ms ? cfg->tick_ms : 250;
	ring_bytes = L.nbufs * sizeof(struct io_uring_buf);
	L.br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (L.br == MAP_FAILED) {
		ret = -errno;
		log_error(-ret, "cannot map the provided-buffer ring");
		goto err_ring;
	}
	L.bufs = mmap(NULL, (size_t)L.nbufs * L.bufsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (L.bufs == MAP_FAILED) {
		ret = -errno;
		log_error(-ret, "cannot map %u receive buffers of %u bytes", L.nbufs, L.bufsz);
		goto err_br;
	}
	io_uring_buf_ring_init(L.br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)L.br;
	reg.ring_entries = L.nbufs;
	reg.bgid = LOOP_BGID;
	ret = io_uring_register_buf_ring(&L.ring, &reg, 0);
	if (ret < 0) {
		log_error(-ret, "cannot register the provided-buffer ring");
		goto err_bufs;
	}
	for (uint32_t i = 0; i < L.nbufs; i++)
		io_uring_buf_ring_add(L.br, L.bufs + (size_t)i * L.bufsz, L.bufsz, (uint16_t)i,
			io_uring_buf_ring_mask(L.nbufs), (int)i);
	io_uring_buf_ring_advance(L.br, (int)L.nbufs);
	L.up = true;
	L.kind_timer = loop_register("timer", on_timer);
	return 0;

err_bufs:
	munmap(L.bufs, (size_t)L.nbufs * L.bufsz);
err_br:
	munmap(L.br, ring_bytes);
err_ring:
	io_uring_queue_exit(&L.ring);
	return ret;
}

void loop_finish(void)
{
	if (!L.up)
		return;
	io_uring_queue_exit(&L.ring);
	munmap(L.bufs, (size_t)L.nbufs * L.bufsz);
	munmap(L.br, L.nbufs * sizeof(struct io_uring_buf));
	memset(&L, 0, sizeof(L));
}

struct io_uring *loop_ring(void)
{
	return &L.ring;
}

uint8_t loop_register(const char *name, loop_cqe_fn fn)
{
	/* Registering again (a module set up twice on one ring, as tests do) returns the same kind. */
	for (uint8_t k = 1; k <= L.n_kinds; k++) {
		if (L.kinds[k] == fn)
			return k;
	}
	/* Kinds are handed out at start-up by a fixed set of modules: running out is a programming error. */
	if (L.n_kinds + 1 >= MAX_KINDS) {
		log_error(0, "loop: too many completion kinds (%s)", name);
		return LOOP_IGNORE;
	}
	L.n_kinds++;
	L.kinds[L.n_kinds] = fn;
	L.kind_names[L.n_kinds] = name;
	return L.n_kinds;
}

void loop_on_flush(loop_fn fn, int order)
{
	uint32_t i;

	for (i = 0; i < L.n_flush; i++) {
		if (L.flush[i] == fn)
			return;
	}
	if (L.n_flush >= MAX_HOOKS)
		return;
	for (i = L.n_flush; i > 0 && L.flush_order[i - 1] > order; i--) {
		L.flush[i] = L.flush[i - 1];
		L.flush_order[i] = L.flush_order[i - 1];
	}
	L.flush[i] = fn;
	L.flush_order[i] = order;
	L.n_flush++;
}

void loop_on_tick(loop_fn fn)
{
	for (uint32_t i = 0; i < L.n_ticks; i++) {
		if (L.ticks[i] == fn)
			return;
	}
	if (L.n_ticks < MAX_HOOKS)
		L.ticks[L.n_ticks++] = fn;
}

void loop_on_drain(loop_busy_fn busy)
{
	for (uint32_t i = 0; i < L.n_drains; i++) {
		if (L.drains[i] == busy)
			return;
	}
	if (L.n_drains < MAX_HOOKS)
		L.drains[L.n_drains++] = busy;
}

struct io_uring_sqe *loop_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&L.ring);

	while (!sqe) {
		io_uring_submit(&L.ring);
		sqe = io_uring_get_sqe(&L.ring);
	}
	return sqe;
}

void loop_recv_multishot(int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = LOOP_BGID;
	io_uring_sqe_set_data64(sqe, ud);
}

void loop_send(int fd, const void *p, size_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_send(sqe, fd, p, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud);
}

void loop_cancel(uint64_t ud)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_cancel64(sqe, ud, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, ud_make(LOOP_IGNORE, 0, 0));
}

uint8_t *loop_buf(uint16_t bid)
{
	return L.bufs + (size_t)bid * L.bufsz;
}

void loop_buf_return(uint16_t bid)
{
	io_uring_buf_ring_add(L.br, loop_buf(bid), L.bufsz, bid, io_uring_buf_ring_mask(L.nbufs), 0);
	io_uring_buf_ring_advance(L.br, 1);
}

static void arm_timer(void)
{
	struct io_uring_sqe *sqe = loop_sqe();

	L.tick.tv_sec = L.tick_ms / 1000;
	L.tick.tv_nsec = (long long)(L.tick_ms % 1000) * 1000000;
	io_uring_prep_timeout(sqe, &L.tick, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(L.kind_timer, 0, 0));
	L.timer_armed = true;
}

static void on_timer(uint64_t ud, struct io_uring_cqe *cqe)
{
	(void)ud;
	(void)cqe;
	L.timer_armed = false;
	for (uint32_t i = 0; i < L.n_ticks; i++)
		L.ticks[i]();
}

static void dispatch(struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint8_t kind = ud_kind(ud);

	if (kind != LOOP_IGNORE && kind <= L.n_kinds)
		L.kinds[kind](ud, cqe);
}

static unsigned drain_cq(void)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	L.now_ms = loop_clock_ms();
	io_uring_for_each_cqe(&L.ring, head, cqe) {
		dispatch(cqe);
		n++;
	}
	io_uring_cq_advance(&L.ring, n);
	return n;
}

static void flush(void)
{
	for (uint32_t i = 0; i < L.n_flush; i++)
		L.flush[i]();
}

void loop_stop(void)
{
	L.stopping = true;
}

bool loop_stopping(void)
{
	return L.stopping;
}

static bool drained(void)
{
	for (uint32_t i = 0; i < L.n_drains; i++) {
		if (L.drains[i]())
			return false;
	}
	return true;
}

int loop_run(void)
{
	for (;;) {
		int ret;

		flush();
		if (L.stopping && drained())
			break;
		if (!L.timer_armed)
			arm_timer();
		ret = io_uring_submit_and_wait(&L.ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_error(-ret, "io_uring_submit_and_wait failed");
			return 1;
		}
		drain_cq();
	}
	return 0;
}

void loop_turn(uint32_t timeout_ms)
{
	struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
		.tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
	struct io_uring_cqe *cqe;

	flush();
	if (!L.timer_armed)
		arm_timer();
	io_uring_submit_and_wait_timeout(&L.ring, &cqe, 1, &ts, NULL);
	drain_cq();
}

/* loop.c — io_uring setup and the worker main loop (see loop.h). */
#include "loop.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "conn.h"
#include "ctl.h"
#include "log.h"
#include "mesh.h"
#include "rds.h"
#include "sess.h"
#include "store.h"

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int loop_init(void)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	size_t ring_bytes;
	int ret;

	memset(&p, 0, sizeof(p));
	/* DEFER_TASKRUN keeps completion work on our own io_uring_enter calls: no cross-CPU task work. */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
	p.cq_entries = W->cfg->ring_entries * 4;
	p.flags |= IORING_SETUP_CQSIZE;
	ret = io_uring_queue_init_params(W->cfg->ring_entries, &W->ring, &p);
	if (ret < 0) {
		log_error(-ret, "cannot create io_uring (kernel >= 6.1 needed; in containers the seccomp profile "
			"must allow io_uring_setup/io_uring_enter/io_uring_register)");
		return ret;
	}
	W->nbufs = W->cfg->buf_ring_entries;
	W->bufsz = W->cfg->buf_size;
	ring_bytes = W->nbufs * sizeof(struct io_uring_buf);
	W->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (W->br == MAP_FAILED) {
		ret = -errno;
		log_error(-ret, "cannot map the provided-buffer ring");
		goto err_ring;
	}
	W->bufs = mmap(NULL, (size_t)W->nbufs * W->bufsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
		-1, 0);
	if (W->bufs == MAP_FAILED) {
		ret = -errno;
		log_error(-ret, "cannot map %u receive buffers of %u bytes", W->nbufs, W->bufsz);
		goto err_br;
	}
	io_uring_buf_ring_init(W->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)W->br;
	reg.ring_entries = W->nbufs;
	reg.bgid = BGID;
	ret = io_uring_register_buf_ring(&W->ring, &reg, 0);
	if (ret < 0) {
		log_error(-ret, "cannot register the provided-buffer ring");
		goto err_bufs;
	}
	for (uint32_t i = 0; i < W->nbufs; i++)
		io_uring_buf_ring_add(W->br, W->bufs + (size_t)i * W->bufsz, W->bufsz, (uint16_t)i,
			io_uring_buf_ring_mask(W->nbufs), (int)i);
	io_uring_buf_ring_advance(W->br, (int)W->nbufs);
	return 0;

err_bufs:
	munmap(W->bufs, (size_t)W->nbufs * W->bufsz);
err_br:
	munmap(W->br, ring_bytes);
err_ring:
	io_uring_queue_exit(&W->ring);
	return ret;
}

void loop_finish(void)
{
	io_uring_queue_exit(&W->ring);
	munmap(W->bufs, (size_t)W->nbufs * W->bufsz);
	munmap(W->br, W->nbufs * sizeof(struct io_uring_buf));
}

struct io_uring_sqe *loop_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&W->ring);

	while (!sqe) {
		io_uring_submit(&W->ring);
		sqe = io_uring_get_sqe(&W->ring);
	}
	return sqe;
}

void loop_arm_recv(int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = loop_sqe();

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud);
}

uint8_t *loop_buf(uint16_t bid)
{
	return W->bufs + (size_t)bid * W->bufsz;
}

void loop_buf_return(uint16_t bid)
{
	io_uring_buf_ring_add(W->br, loop_buf(bid), W->bufsz, bid, io_uring_buf_ring_mask(W->nbufs), 0);
	io_uring_buf_ring_advance(W->br, 1);
}

static void arm_timer(void)
{
	struct io_uring_sqe *sqe = loop_sqe();

	/* A coarse tick drives keepalive, will delay, session and message expiry: all have 1 s resolution. */
	W->tick.tv_sec = 0;
	W->tick.tv_nsec = 250 * 1000 * 1000;
	io_uring_prep_timeout(sqe, &W->tick, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(UD_TIMER, 0, 0));
}

static void dispatch(struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);

	switch (ud_type(ud)) {
	case UD_ACCEPT:
		conn_on_accept(cqe);
		break;
	case UD_RECV:
		conn_on_recv(ud_idx(ud), ud_gen(ud), cqe);
		break;
	case UD_SEND:
		conn_on_send(ud_idx(ud), ud_gen(ud), cqe);
		break;
	case UD_PEER_RECV:
		mesh_on_recv(ud_idx(ud), ud_gen(ud), cqe);
		break;
	case UD_PEER_SEND:
		mesh_on_send(ud_idx(ud), ud_gen(ud), cqe);
		break;
	case UD_CTL:
		ctl_on_poll(cqe);
		break;
	case UD_TIMER:
		W->now_ms = loop_now_ms();
		conn_tick();
		sess_tick();
		if (!W->stopping || W->n_conns)
			arm_timer();
		break;
	case UD_RDS:
		rds_on_cqe(ud, cqe);
		break;
	case UD_IGNORE:
	default:
		break;
	}
}

int loop_run(void)
{
	arm_timer();
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret;

		conn_flush_all();
		mesh_flush_all();
		store_flush();
		rds_flush_all();
		ctl_flush();
		/* Stop once every client is gone and every store write is acknowledged (the supervisor's shutdown
		 * timeout bounds this if the store is unreachable). */
		if (W->stopping && conn_all_closed() && !store_pending())
			break;
		ret = io_uring_submit_and_wait(&W->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_error(-ret, "io_uring_submit_and_wait failed");
			return 1;
		}
		W->now_ms = loop_now_ms();
		io_uring_for_each_cqe(&W->ring, head, cqe) {
			dispatch(cqe);
			n++;
		}
		io_uring_cq_advance(&W->ring, n);
	}
	return 0;
}

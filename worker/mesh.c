/* mesh.c — worker <-> worker frames over stream socketpairs (see mesh.h). */
#include "mesh.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "handle.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "route.h"

enum frame_type {
	MF_PUB = 1,
	MF_SUB = 2,
	MF_UNSUB = 3,
	MF_GROUP = 4,
	MF_ACK = 5,
};

#define MF_ACK_WANTED 0x80

/* Both ends are the same binary on the same machine, so a msg_t header travels as is. */
typedef struct frame_hdr {
	uint32_t len;        /* whole frame, header and padding included: frames start 8-byte aligned */
	uint32_t body;       /* body bytes, without padding */
	uint8_t type;
	uint8_t flags;       /* MF_ACK_WANTED | enum mesh_pub_flags */
	uint16_t group_len;  /* MF_PUB with MESH_GROUP: key bytes after the message data */
	uint32_t a, b;       /* MF_GROUP: members, online; MF_ACK: count */
	uint32_t reserved;
} frame_hdr_t;

#define FRAME_MAX (512u << 20)

void mesh_init(const worker_args_t *args)
{
	for (int k = 0; k < W->n; k++) {
		W->peers[k].fd = -1;
		strmap_init(&W->peers[k].interest);
		if (k != W->id && args->mesh_fds[k] >= 0)
			mesh_set_fd(k, args->mesh_fds[k], false);
	}
}

void mesh_finish(void)
{
	for (int k = 0; k < W->n; k++) {
		peer_t *p = &W->peers[k];

		if (p->fd >= 0)
			close(p->fd);
		buf_finish(&p->rbuf);
		outq_finish(&p->out);
		ring_finish(&p->toks);
		ring_finish(&p->inwait);
		strmap_finish(&p->interest);
	}
}

static void mark_dirty(peer_t *p)
{
	if (p->dirty)
		return;
	p->dirty = true;
	p->next_dirty = W->dirty_peers;
	W->dirty_peers = p;
}

/* Resolve the oldest n tokens: the peer took (or can no longer take) those frames. */
static void resolve(peer_t *p, uint32_t n)
{
	while (n-- && p->toks.len) {
		tok_t t = *(tok_t *)ring_at(&p->toks, sizeof(tok_t), 0);
		conn_t *c = conn_get(t.conn_idx, t.conn_gen);
		pend_t *pe;

		ring_pop(&p->toks);
		if (!c || !(pe = handle_pend_get(c, t.seq)))
			continue;
		if (pe->waiting)
			pe->waiting--;
		conn_pend_flush(c);
	}
}

void mesh_peer_down(int k)
{
	peer_t *p = &W->peers[k];

	if (!p->up)
		return;
	log_warn(0, "worker %d is gone: dropping its subscriptions until it is back", k);
	p->up = false;
	if (p->fd >= 0 && !p->recv_armed && !p->out.inflight) {
		close(p->fd);
	} else if (p->fd >= 0) {
		/* Completions still reference it: shut it down, closed when they drain (gen changes below). */
		shutdown(p->fd, SHUT_RDWR);
		close(p->fd);
	}
	p->fd = -1;
	p->gen++;
	p->recv_armed = false;
	p->out.inflight = false;
	p->out.sending.len = 0;
	p->out.off = 0;
	p->out.pending.len = 0;
	p->rbuf.len = 0;
	p->acks_owed = 0;
	p->inwait_seq += p->inwait.len;
	p->inwait.len = 0;
	/* The peer's sessions died with it (memory store): whatever waited for it is answered now. */
	resolve(p, UINT32_MAX);
	route_peer_down(k);
}

void mesh_set_fd(int k, int fd, bool send_dump)
{
	peer_t *p = &W->peers[k];

	if (p->up)
		mesh_peer_down(k);
	p->fd = fd;
	p->gen++;
	p->up = true;
	loop_arm_recv(fd, ud_make(UD_PEER_RECV, p->gen, (uint32_t)k));
	p->recv_armed = true;
	if (send_dump)
		route_peer_up(k);
}

static uint8_t *frame_start(peer_t *p, size_t body, uint8_t type, uint8_t flags)
{
	frame_hdr_t *h;
	size_t total = (sizeof(*h) + body + 7) & ~(size_t)7;
	uint8_t *d = outq_reserve(&p->out, total);

	if (!d)
		return NULL;
	h = (frame_hdr_t *)d;
	memset(h, 0, sizeof(*h));
	memset(d + sizeof(*h) + body, 0, total - sizeof(*h) - body);
	h->len = (uint32_t)total;
	h->body = (uint32_t)body;
	h->type = type;
	h->flags = flags;
	return d;
}

static void frame_end(peer_t *p, uint8_t *d, conn_t *c, uint64_t seq)
{
	p->out.pending.len += ((frame_hdr_t *)d)->len;
	if (c) {
		tok_t *t = ring_push(&p->toks, sizeof(tok_t));

		if (t)
			*t = (tok_t){ .conn_idx = c->idx, .conn_gen = c->gen, .seq = seq };
		else
			((frame_hdr_t *)d)->flags &= (uint8_t)~MF_ACK_WANTED;
	}
	mark_dirty(p);
}

void mesh_send_pub(int k, const msg_t *m, uint8_t flags, const char *group, size_t group_len, conn_t *c,
	uint64_t seq)
{
	peer_t *p = &W->peers[k];
	size_t dlen = msg_data_len(m);
	uint8_t *d;

	if (!p->up)
		return;
	d = frame_start(p, sizeof(msg_t) + dlen + group_len, MF_PUB, (uint8_t)(flags | (c ? MF_ACK_WANTED : 0)));
	if (!d) {
		log_error(ENOMEM, "message for worker %d dropped", k);
		return;
	}
	((frame_hdr_t *)d)->group_len = (uint16_t)group_len;
	memcpy(d + sizeof(frame_hdr_t), m, sizeof(msg_t));
	memcpy(d + sizeof(frame_hdr_t) + sizeof(msg_t), m->data, dlen);
	if (group_len)
		memcpy(d + sizeof(frame_hdr_t) + sizeof(msg_t) + dlen, group, group_len);
	frame_end(p, d, c, seq);
}

void mesh_send_sub(int k, const char *filter, size_t len, bool add, conn_t *c, uint64_t seq)
{
	peer_t *p = &W->peers[k];
	uint8_t *d;

	if (!p->up)
		return;
	d = frame_start(p, len, add ? MF_SUB : MF_UNSUB, c ? MF_ACK_WANTED : 0);
	if (!d)
		return;
	memcpy(d + sizeof(frame_hdr_t), filter, len);
	frame_end(p, d, c, seq);
}

void mesh_send_group(int k, const char *key, size_t len, uint32_t members, uint32_t online, conn_t *c,
	uint64_t seq)
{
	peer_t *p = &W->peers[k];
	uint8_t *d;

	if (!p->up)
		return;
	d = frame_start(p, len, MF_GROUP, c ? MF_ACK_WANTED : 0);
	if (!d)
		return;
	((frame_hdr_t *)d)->a = members;
	((frame_hdr_t *)d)->b = online;
	memcpy(d + sizeof(frame_hdr_t), key, len);
	frame_end(p, d, c, seq);
}

static int on_frame(int k, const frame_hdr_t *h, const uint8_t *body, size_t len)
{
	peer_t *p = &W->peers[k];

	bool want = h->flags & MF_ACK_WANTED;

	/* Store writes made for this frame delay its ack; frames behind an unfinished one wait in line. */
	if (want) {
		W->wait = (waiter_t){ .kind = WAIT_PEER, .idx = (uint32_t)k, .gen = p->gen,
			.seq = p->inwait_seq + p->inwait.len };
		W->wait_count = 0;
	}
	switch (h->type) {
	case MF_PUB: {
		msg_t hdr;
		msg_t *m;

		if (len < sizeof(msg_t))
			return -EPROTO;
		memcpy(&hdr, body, sizeof(hdr));
		if (sizeof(msg_t) + msg_data_len(&hdr) + h->group_len != len)
			return -EPROTO;
		m = msg_create_raw(&hdr, body + sizeof(msg_t));
		if (!m) {
			W->wait.kind = WAIT_NONE;
			return -ENOMEM;
		}
		if (h->flags & MESH_RETAIN_STORE)
			route_retain_store(m);
		if (h->flags & MESH_DELIVER)
			route_deliver_local(m);
		if (h->flags & MESH_GROUP)
			route_deliver_group(m, (const char *)body + sizeof(msg_t) + msg_data_len(&hdr), h->group_len);
		msg_unref(m);
		break;
	}
	case MF_SUB:
	case MF_UNSUB:
		route_peer_sub(k, (const char *)body, len, h->type == MF_SUB);
		break;
	case MF_GROUP:
		route_peer_group(k, (const char *)body, len, h->a, h->b);
		break;
	case MF_ACK:
		resolve(p, h->a);
		break;
	default:
		W->wait.kind = WAIT_NONE;
		return -EPROTO;
	}
	W->wait.kind = WAIT_NONE;
	if (want) {
		if (!W->wait_count && !p->inwait.len) {
			p->acks_owed++;
			mark_dirty(p);
		} else {
			uint32_t *n = ring_push(&p->inwait, sizeof(uint32_t));

			if (n)
				*n = W->wait_count;
			else
				p->acks_owed++; /* cannot track it: ack now rather than never */
		}
	}
	return 0;
}

void mesh_inwait_done(int k, uint32_t gen, uint64_t seq)
{
	peer_t *p = &W->peers[k];
	uint32_t *n;

	if (gen != p->gen || seq < p->inwait_seq || seq - p->inwait_seq >= p->inwait.len)
		return;
	n = ring_at(&p->inwait, sizeof(uint32_t), (uint32_t)(seq - p->inwait_seq));
	if (*n)
		(*n)--;
	/* Acks go back in frame order: only a finished head may be acknowledged. */
	while (p->inwait.len && *(uint32_t *)ring_at(&p->inwait, sizeof(uint32_t), 0) == 0) {
		ring_pop(&p->inwait);
		p->inwait_seq++;
		p->acks_owed++;
		mark_dirty(p);
	}
}

static void process(int k, const uint8_t *data, size_t len)
{
	peer_t *p = &W->peers[k];
	const uint8_t *s;
	size_t n, off = 0;

	if (p->rbuf.len) {
		if (buf_append(&p->rbuf, data, len) < 0)
			goto fail;
		s = p->rbuf.data;
		n = p->rbuf.len;
	} else {
		s = data;
		n = len;
	}
	while (n - off >= sizeof(frame_hdr_t)) {
		frame_hdr_t h;

		memcpy(&h, s + off, sizeof(h));
		if (h.len < sizeof(h) || h.len > FRAME_MAX || h.body > h.len - sizeof(h))
			goto fail;
		if (n - off < h.len)
			break;
		if (on_frame(k, &h, s + off + sizeof(h), h.body) < 0)
			goto fail;
		off += h.len;
		if (!p->up)
			return;
	}
	if (s == p->rbuf.data) {
		memmove(p->rbuf.data, p->rbuf.data + off, n - off);
		p->rbuf.len = (uint32_t)(n - off);
	} else if (off < n && buf_append(&p->rbuf, s + off, n - off) < 0) {
		goto fail;
	}
	return;
fail:
	log_error(EPROTO, "bad frame from worker %d: dropping the channel", k);
	mesh_peer_down(k);
}

void mesh_on_recv(uint32_t k, uint32_t gen, struct io_uring_cqe *cqe)
{
	peer_t *p = &W->peers[k];
	int bid = (cqe->flags & IORING_CQE_F_BUFFER) ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;

	if (gen != (p->gen & 0xffffff) || !p->up) {
		if (bid >= 0)
			loop_buf_return((uint16_t)bid);
		return;
	}
	if (cqe->res > 0 && bid >= 0)
		process((int)k, loop_buf((uint16_t)bid), (size_t)cqe->res);
	if (bid >= 0)
		loop_buf_return((uint16_t)bid);
	if (!(cqe->flags & IORING_CQE_F_MORE) && p->up && gen == (p->gen & 0xffffff)) {
		p->recv_armed = false;
		if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS)) {
			mesh_peer_down((int)k);
		} else {
			loop_arm_recv(p->fd, ud_make(UD_PEER_RECV, p->gen, k));
			p->recv_armed = true;
		}
	}
}

void mesh_on_send(uint32_t k, uint32_t gen, struct io_uring_cqe *cqe)
{
	peer_t *p = &W->peers[k];

	if (gen != (p->gen & 0xffffff) || !p->up)
		return;
	if (cqe->res < 0) {
		mesh_peer_down((int)k);
		return;
	}
	if (!outq_sent(&p->out, p->fd, ud_make(UD_PEER_SEND, p->gen, k), cqe->res) && p->out.pending.len)
		mark_dirty(p);
}

void mesh_flush_all(void)
{
	while (W->dirty_peers) {
		peer_t *p = W->dirty_peers;
		int k = (int)(p - W->peers);

		W->dirty_peers = p->next_dirty;
		p->dirty = false;
		if (!p->up)
			continue;
		if (p->acks_owed) {
			/* One counted ACK answers every frame of this turn that asked for one. */
			uint8_t *d = frame_start(p, 0, MF_ACK, 0);

			if (d) {
				((frame_hdr_t *)d)->a = p->acks_owed;
				p->out.pending.len += ((frame_hdr_t *)d)->len;
				p->acks_owed = 0;
			}
		}
		outq_start(&p->out, p->fd, ud_make(UD_PEER_SEND, p->gen, (uint32_t)k));
	}
}

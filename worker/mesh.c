/* mesh.c — worker <-> worker channels (see mesh.h). */
#include "mesh.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "frame.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "owner.h"
#include "relay.h"
#include "route.h"
#include "sock.h"
#include "store.h"

/* One socket to a peer; a new one (new generation) after the peer restarted. Freed with its socket. */
typedef struct mchan {
	sock_t sk;                 /* first member */
	int k;
	buf_t rbuf;                /* partial frame carried between receives */
} mchan_t;

/* A frame that asked for an ack, in the order it was sent. */
typedef struct tok {
	waiter_t w;
	struct msg *m;             /* MF_PUB: a reference, to send again to a restarted peer */
	char *group;               /* MF_PUB with MESH_GROUP: the key (heap) */
	uint16_t group_len;
	uint8_t flags;
} tok_t;

#define INWAIT_FAILED 0x80000000u
/* Bytes queued to one peer beyond which clients stop being read (mesh_busy). */
#define MESH_OUTQ_MAX (8u << 20)

typedef struct peer {
	mchan_t *ch;               /* NULL while down */
	uint32_t gen;              /* channel generation: in-frame waiters of an old channel are stale */
	bool up;
	bool started;              /* reading (after our sessions were restored) */
	ring_t toks;               /* tok_t, in send order; kept while down with a durable store */
	ring_t inwait;             /* uint32_t per received frame wanting an ack: work left | INWAIT_FAILED */
	uint64_t inwait_seq;       /* sequence number of inwait's head */
	uint32_t run;              /* acks owed, in one run of the same kind */
	bool run_failed;
} peer_t;

static struct {
	peer_t peers[WORKER_MAX + 1];
	bool started;
	uint32_t held;             /* tokens held for dead peers */
	bool cluster_known;        /* the Kafka process sent its first MF_SYNC */
} M;

static const sock_ops_t chan_ops;

static void on_inwait_done(const waiter_t *w, bool ok);
static void flush_all(void);

bool mesh_up(int k)
{
	return M.peers[k].up;
}

bool mesh_busy(void)
{
	if (M.held > W->cfg->redis_max_pending)
		return true;
	/* Frames that ask for no ack (mesh_send_pub, memory store) are bounded only here: a peer that does not
	 * keep up fills its socket, then our output queue, and past MESH_OUTQ_MAX we stop reading clients until
	 * it drains. With a durable store every message frame waits for its ack, which bounds it as before (the
	 * publishers' windows, redis_max_pending for held ones); this leaves that behaviour alone. */
	if (store_durable())
		return false;
	for (int k = 0; k < W->n_peers; k++) {
		if (M.peers[k].up && sock_outq(&M.peers[k].ch->sk) > MESH_OUTQ_MAX)
			return true;
	}
	return false;
}

uint32_t mesh_outstanding(int k)
{
	return M.peers[k].toks.len;
}

static mchan_t *chan_open(int k, int fd)
{
	mchan_t *ch = calloc(1, sizeof(*ch));

	/* Before our sessions are restored, frames must wait: a message for a session not restored yet would find
	 * no subscriber and be acknowledged. Not even a first recv is armed. */
	if (!ch || sock_open(&ch->sk, fd, &chan_ops, !M.started) < 0) {
		log_error(ENOMEM, "cannot open the channel to worker %d", k);
		free(ch);
		close(fd);
		return NULL;
	}
	ch->k = k;
	return ch;
}

void mesh_init(const worker_args_t *args)
{
	memset(&M, 0, sizeof(M));
	waiter_register(WAITER_FRAME, on_inwait_done);
	loop_on_flush(flush_all, LOOP_ORDER_MESH);
	for (int k = 0; k < W->n_peers; k++) {
		peer_t *p = &M.peers[k];

		if (k == W->id || args->mesh_fds[k] < 0)
			continue;
		p->ch = chan_open(k, args->mesh_fds[k]);
		p->up = p->ch != NULL;
		p->gen = 1;
	}
}

static void tok_release(tok_t *t)
{
	msg_unref(t->m);
	free(t->group);
}

void mesh_finish(void)
{
	for (int k = 0; k < W->n_peers; k++) {
		peer_t *p = &M.peers[k];

		while (p->toks.len) {
			tok_release(ring_at(&p->toks, sizeof(tok_t), 0));
			ring_pop(&p->toks);
		}
		ring_finish(&p->toks);
		ring_finish(&p->inwait);
	}
}

void mesh_start(void)
{
	M.started = true;
	for (int k = 0; k < W->n_peers; k++) {
		peer_t *p = &M.peers[k];

		if (!p->up)
			continue;
		/* Our interest is complete (restored sessions announced theirs): the peer may drop what we no
		 * longer have. */
		frame_put(&p->ch->sk.out.pending, MF_SYNC, 0, 0, 0, 0);
		sock_commit(&p->ch->sk, 0);
		sock_resume(&p->ch->sk);
	}
}

/* --- acks ------------------------------------------------------------------------------------------------ */

/* Write the run of acks owed so far. */
static void emit_run(peer_t *p)
{
	if (!p->run || !p->up)
		return;
	if (frame_put(&p->ch->sk.out.pending, p->run_failed ? MF_NACK : MF_ACK, 0, 0, p->run, 0)) {
		sock_commit(&p->ch->sk, 0);
		p->run = 0;
	}
}

/* One more received frame is answered (in order). */
static void owe(peer_t *p, bool ok)
{
	if (p->run && p->run_failed == ok)
		emit_run(p);
	p->run_failed = !ok;
	p->run++;
}

/* Resolve the oldest n tokens: the peer took (ok) or refused those frames. */
static void resolve(peer_t *p, uint32_t n, bool ok)
{
	while (n-- && p->toks.len) {
		tok_t t = *(tok_t *)ring_at(&p->toks, sizeof(tok_t), 0);

		ring_pop(&p->toks);
		if (!ok)
			W->st.mesh_failed++;
		waiter_done(&t.w, ok);
		tok_release(&t);
	}
}

static void on_inwait_done(const waiter_t *w, bool ok)
{
	peer_t *p = &M.peers[w->idx];
	uint32_t *n;

	if (w->gen != p->gen || w->seq < p->inwait_seq || w->seq - p->inwait_seq >= p->inwait.len)
		return;
	n = ring_at(&p->inwait, sizeof(uint32_t), (uint32_t)(w->seq - p->inwait_seq));
	if (*n & ~INWAIT_FAILED)
		(*n)--;
	if (!ok)
		*n |= INWAIT_FAILED;
	/* Acks go back in frame order: only a finished head may be acknowledged. */
	while (p->inwait.len && !(*(n = ring_at(&p->inwait, sizeof(uint32_t), 0)) & ~INWAIT_FAILED)) {
		owe(p, !(*n & INWAIT_FAILED));
		ring_pop(&p->inwait);
		p->inwait_seq++;
	}
}

/* --- peers coming and going ------------------------------------------------------------------------------ */

void mesh_peer_down(int k)
{
	peer_t *p = &M.peers[k];
	bool durable = store_durable();
	ring_t keep = { 0 };

	if (!p->up)
		return;
	if (loop_stopping())
		log_debug("worker %d is gone (shutting down)", k);
	else
		log_warn(0, "worker %d is gone%s", k, durable ? ": holding messages for its sessions until it is back" :
			": dropping its subscriptions until it is back");
	p->up = false;
	sock_close(&p->ch->sk, false); /* released when its last SQE completes: no buffer freed under the kernel */
	p->ch = NULL;
	p->gen++;
	/* Frames it sent us and we had not answered: nobody is left to answer. */
	p->inwait_seq += p->inwait.len;
	p->inwait.len = 0;
	p->run = 0;
	/* With a durable store the peer's sessions live on: what it had not acknowledged is sent again to its
	 * successor. Interest changes and memory-store deliveries are answered now (its sessions are gone, or
	 * the successor gets our interest anew). */
	while (p->toks.len) {
		tok_t t = *(tok_t *)ring_at(&p->toks, sizeof(tok_t), 0);
		tok_t *d;

		ring_pop(&p->toks);
		if (durable && t.m && (d = ring_push(&keep, sizeof(tok_t)))) {
			*d = t;
			continue;
		}
		waiter_done(&t.w, true);
		tok_release(&t);
	}
	ring_finish(&p->toks);
	p->toks = keep;
	M.held += keep.len;
	route_peer_down(k, durable);
	relay_peer_down(k);
}

/* Send t's message again on the current channel (the successor of a dead peer). */
static bool resend(peer_t *p, const tok_t *t)
{
	return frame_put_pub(&p->ch->sk.out.pending, t->m, (uint8_t)(t->flags | MF_ACK_WANTED), t->group,
		t->group_len) == 0;
}

void mesh_set_fd(int k, int fd)
{
	peer_t *p = &M.peers[k];

	if (p->up)
		mesh_peer_down(k);
	p->ch = chan_open(k, fd);
	if (!p->ch)
		return;
	p->up = true;
	p->gen++;
	log_info("new channel to worker %d%s: %u messages it had not acknowledged are sent again", k,
		store_durable() ? "" : " (memory store)", p->toks.len);
	M.held -= p->toks.len;
	for (uint32_t i = 0; i < p->toks.len; i++) {
		if (!resend(p, ring_at(&p->toks, sizeof(tok_t), i))) {
			log_error(ENOMEM, "cannot send held messages to worker %d", k);
			mesh_peer_down(k);
			return;
		}
		W->st.mesh_resent++;
	}
	sock_commit(&p->ch->sk, 0);
	/* The restarted peer announces its interest again and ends with MF_SYNC; what it does not announce
	 * then is dropped. Ours goes to it now. */
	route_peer_resync(k);
	route_peer_up(k);
	if (M.started)
		frame_put(&p->ch->sk.out.pending, MF_SYNC, 0, 0, 0, 0);
	sock_commit(&p->ch->sk, 0);
}

/* --- sending --------------------------------------------------------------------------------------------- */

/* The token for a frame just written (or held); false when it cannot be kept (then no ack is asked). */
static bool push_tok(peer_t *p, waiter_t *w, const struct msg *m, uint8_t flags, const char *group,
	size_t group_len)
{
	tok_t *t = ring_push(&p->toks, sizeof(tok_t));

	if (!t)
		return false;
	memset(t, 0, sizeof(*t));
	t->flags = flags;
	if (m && store_durable()) {
		/* Kept to be sent again if the peer dies before acknowledging it. */
		t->m = msg_ref((struct msg *)m);
		if (group_len) {
			t->group = malloc(group_len);
			if (!t->group) {
				msg_unref(t->m);
				p->toks.len--;
				return false;
			}
			memcpy(t->group, group, group_len);
			t->group_len = (uint16_t)group_len;
		}
	}
	t->w = waiter_take(w);
	return true;
}

/*
 * Does the publisher's answer wait for peer k's ack of a message? With a durable store, yes: the peer's ack
 * says its copy is in the store. So does the Kafka process's (it acks once Kafka has the record). With the
 * memory store, no: the peer would only say "it is in my memory", which is no safer than the frame in our
 * socket — both die with the process that holds them, and a dead peer's tokens were answered as successes
 * anyway. Not asking spares the ACK frame (its write, read and token) and the round trip in the PUBACK's
 * latency; it rarely spares a wakeup, as the ack used to travel with the peer's own frames (measured in
 * docs/benchmarks.md, "Cross-worker hops at the reference load"). What bounds a fast publisher then is the
 * channel's output queue (mesh_busy).
 */
static bool pub_wants_ack(int k, const waiter_t *w)
{
	return w && w->kind != WAITER_NONE && (store_durable() || k == W->n);
}

void mesh_send_pub(int k, const struct msg *m, uint8_t flags, const char *group, size_t group_len, waiter_t *w)
{
	peer_t *p = &M.peers[k];
	bool ack = pub_wants_ack(k, w);

	if (!p->up) {
		/* Held for the successor (its sessions are in the store), or lost with the peer's memory. */
		if (ack && store_durable() && push_tok(p, w, m, flags, group, group_len))
			M.held++;
		else if (flags & (MESH_DELIVER | MESH_GROUP))
			W->st.dropped_no_subscriber++;
		return;
	}
	if (frame_put_pub(&p->ch->sk.out.pending, m, (uint8_t)(flags | (ack ? MF_ACK_WANTED : 0)), group,
	    group_len) < 0) {
		log_error(ENOMEM, "message for worker %d dropped", k);
		if (ack)
			waiter_fail(w);
		return;
	}
	sock_commit(&p->ch->sk, 0);
	if (ack && !push_tok(p, w, m, flags, group, group_len)) {
		/* Cannot track it: the frame asks for an ack we could not match; drop the channel rather than
		 * misattribute every later ack. */
		log_error(ENOMEM, "cannot track a frame to worker %d: resetting the channel", k);
		mesh_peer_down(k);
	}
}

uint8_t *mesh_frame(int k, uint8_t type, size_t body_len, uint32_t a, uint32_t b)
{
	peer_t *p = &M.peers[k];
	uint8_t *d;

	if (!p->up)
		return NULL;
	d = frame_put(&p->ch->sk.out.pending, type, 0, body_len, a, b);
	if (d)
		sock_commit(&p->ch->sk, 0);
	return d;
}

static void send_simple(int k, uint8_t type, const char *body, size_t len, uint32_t a, uint32_t b, waiter_t *w)
{
	peer_t *p = &M.peers[k];
	bool ack = w && w->kind != WAITER_NONE;
	uint8_t *d;

	if (!p->up)
		return; /* a successor gets our whole interest when it comes */
	d = frame_put(&p->ch->sk.out.pending, type, ack ? MF_ACK_WANTED : 0, len, a, b);
	if (!d) {
		log_error(ENOMEM, "interest frame for worker %d lost: resetting the channel", k);
		mesh_peer_down(k);
		return;
	}
	memcpy(d, body, len);
	sock_commit(&p->ch->sk, 0);
	if (ack && !push_tok(p, w, NULL, 0, NULL, 0)) {
		log_error(ENOMEM, "cannot track a frame to worker %d: resetting the channel", k);
		mesh_peer_down(k);
	}
}

void mesh_send_sub(int k, const char *filter, size_t len, bool add, waiter_t *w)
{
	send_simple(k, add ? MF_SUB : MF_UNSUB, filter, len, 0, 0, add ? w : NULL);
}

void mesh_send_group(int k, const char *key, size_t len, uint32_t members, uint32_t online, waiter_t *w)
{
	send_simple(k, MF_GROUP, key, len, members, online, w);
}

/* --- receiving ------------------------------------------------------------------------------------------- */

static int on_pub(int k, const frame_hdr_t *h, const uint8_t *body, waiter_t *w)
{
	const uint8_t *data;
	const char *group;
	msg_t hdr, *m;

	if (frame_get_pub(h, body, &hdr, &data, &group) < 0)
		return -EPROTO;
	m = msg_create_raw(&hdr, data);
	if (!m) {
		log_error(ENOMEM, "message from worker %d not taken", k);
		return -ENOMEM;
	}
	if (h->flags & MESH_RETAIN_STORE)
		route_retain_store(m);
	if (h->flags & MESH_DELIVER)
		route_deliver_local(m, w);
	if (h->flags & MESH_GROUP)
		route_deliver_group(m, group, h->group_len, w);
	msg_unref(m);
	return 0;
}

static int on_frame(int k, const frame_hdr_t *h, const uint8_t *body)
{
	peer_t *p = &M.peers[k];
	bool want = h->flags & MF_ACK_WANTED;
	waiter_t w = { .kind = WAITER_FRAME, .idx = (uint32_t)k, .gen = p->gen,
		.seq = p->inwait_seq + p->inwait.len };
	int ret = 0;

	switch (h->type) {
	case MF_PUB:
		ret = on_pub(k, h, body, want ? &w : NULL);
		if (ret == -EPROTO)
			return ret;
		break;
	case MF_SUB:
	case MF_UNSUB:
		route_peer_sub(k, (const char *)body, h->body, h->type == MF_SUB);
		break;
	case MF_GROUP:
		route_peer_group(k, (const char *)body, h->body, h->a, h->b);
		break;
	case MF_ACK:
	case MF_NACK:
		resolve(p, h->a, h->type == MF_ACK);
		return 0;
	case MF_SYNC:
		route_peer_synced(k);
		/* The Kafka process knows the cluster: clients may come (worker_serve waited for this). */
		if (k == W->n && !M.cluster_known && !loop_stopping()) {
			M.cluster_known = true;
			conn_start_accepting();
		}
		return 0;
	case MF_RELAY_OPEN:
	case MF_RELAY_DATA:
	case MF_RELAY_CLOSE:
	case MF_RELAY_PAUSE:
		return relay_on_frame(k, h, body);
	case MF_RELEASE:
	case MF_HANDED:
	case MF_ADOPT:
		return owner_on_frame(k, h, body);
	default:
		return -EPROTO;
	}
	if (!want)
		return 0;
	if (w.failed)
		ret = -ENOMEM;
	/* Store writes made for this frame delay its ack; frames behind an unfinished one wait in line. */
	if (!w.count && !p->inwait.len) {
		owe(p, ret == 0);
	} else {
		uint32_t *n = ring_push(&p->inwait, sizeof(uint32_t));

		if (!n)
			return -ENOMEM; /* cannot keep the order of acks: reset the channel */
		*n = w.count | (ret < 0 ? INWAIT_FAILED : 0);
	}
	return 0;
}

static void on_data(sock_t *s, const uint8_t *data, size_t len)
{
	mchan_t *ch = (mchan_t *)s;
	int k = ch->k;
	const uint8_t *v, *body;
	size_t n, off = 0;
	frame_hdr_t h;
	int64_t r;

	v = buf_carry_view(&ch->rbuf, data, len, &n);
	if (!v)
		goto fail;
	while ((r = frame_next(v + off, n - off, &h, &body)) > 0) {
		if (on_frame(k, &h, body) < 0)
			goto fail;
		off += (size_t)r;
		if (!M.peers[k].up || M.peers[k].ch != ch)
			return; /* the channel was dropped while handling the frame */
	}
	if (r < 0 || buf_carry_keep(&ch->rbuf, v, n, off) < 0)
		goto fail;
	return;
fail:
	log_error(EPROTO, "bad frame from worker %d: dropping the channel", k);
	mesh_peer_down(k);
}

static void on_eof(sock_t *s, int err)
{
	mchan_t *ch = (mchan_t *)s;

	(void)err;
	if (M.peers[ch->k].ch == ch)
		mesh_peer_down(ch->k);
}

static void on_free(sock_t *s)
{
	mchan_t *ch = (mchan_t *)s;

	buf_finish(&ch->rbuf);
	free(ch);
}

static const sock_ops_t chan_ops = {
	.on_data = on_data,
	.on_eof = on_eof,
	.on_free = on_free,
};

static void flush_all(void)
{
	for (int k = 0; k < W->n_peers; k++)
		emit_run(&M.peers[k]);
}

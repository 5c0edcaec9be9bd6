/* kproc.c — the node's Kafka process (see kproc.h and docs/architecture.md, "Cluster over Kafka"). */
#include "kproc.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "chan.h"
#include "cluster.h"
#include "frame.h"
#include "kafka.h"
#include "knodes.h"
#include "log.h"
#include "loop.h"
#include "mesh.h"
#include "msg.h"
#include "record.h"
#include "sock.h"
#include "slot.h"
#include "strmap.h"


/* A frame from a worker that asked for an ack: answered when the Kafka records it caused are acknowledged. */
typedef struct owed {
	uint32_t waiting;
	bool failed;
} owed_t;

/* A record of this node's inbox being handed to workers: its offset is committed when every worker has it. */
typedef struct inrec {
	int node;                  /* whose inbox: ours, or an adopted node's */
	int64_t offset;
	uint32_t waiting;
	uint8_t flags;
	uint16_t group_len;
	char *group;               /* MESH_GROUP: the shared group's key */
	msg_t *m;                  /* kept to hand it again to a restarted worker (durable store) */
} inrec_t;

typedef struct link {
	sock_t sk;
	int k;
	uint32_t gen;
	bool up;
	buf_t carry;
	ring_t owed;               /* owed_t, oldest first; owed_seq numbers the head */
	uint64_t owed_seq;
	ring_t toks;               /* uint64_t inbox record sequence numbers of frames we await acks for */
	ring_t held;               /* uint64_t records for this worker while its channel is down (durable store) */
} link_t;

static struct {
	const worker_args_t *args;
	int n;                     /* workers */
	int self;
	link_t links[WORKER_MAX];
	ring_t recs;               /* inrec_t in offset order; recs_seq numbers the head */
	uint64_t recs_seq;
	uint64_t incarnation;
	int exit_status;           /* non-zero: why the loop was stopped (check_twin) */
	uint64_t hb_ms;
	bool ready_sent;
	bool paused;
	strmap_t self_seen;        /* our own filters as P.interest has them (from before a restart, too) */
	uint64_t synced;           /* workers that have announced all their interest (MF_SYNC) */
	bool reconciled;
	uint8_t kind_ctl;
	uint8_t payload[CHAN_MAX_PAYLOAD];
} P;

static const sock_ops_t link_ops;
static void reconcile(void);

/* --- opaque tokens for produced records: which link's owed frame they count on ------------------------- */

static void *token(int k, uint64_t seq)
{
	return (void *)(uintptr_t)(((uint64_t)(k + 1) << 56) | ((uint64_t)(P.links[k].gen & 0xffff) << 40) |
		(seq & ((UINT64_C(1) << 40) - 1)));
}

#define INREC_TOKEN (UINT64_C(0xff) << 56)

static owed_t *owed_of(void *opaque)
{
	uint64_t v = (uint64_t)(uintptr_t)opaque;
	int k = (int)(v >> 56) - 1;
	uint64_t seq = v & ((UINT64_C(1) << 40) - 1);
	link_t *l;

	if (k < 0 || k >= P.n)
		return NULL;
	l = &P.links[k];
	if (!l->up || ((v >> 40) & 0xffff) != (l->gen & 0xffff) || seq < l->owed_seq ||
	    seq >= l->owed_seq + l->owed.len)
		return NULL;
	return ring_at(&l->owed, sizeof(owed_t), (uint32_t)(seq - l->owed_seq));
}

/* An ack owed for the frame being handled: its sequence number, or -1 (then the frame is answered NACK). */
static int64_t owe(link_t *l)
{
	owed_t *o = ring_push(&l->owed, sizeof(owed_t));

	if (!o)
		return -1;
	*o = (owed_t){ 0 };
	return (int64_t)(l->owed_seq + l->owed.len - 1);
}

/* --- frames to workers ------------------------------------------------------------------------------------ */

static void send_frame_a(link_t *l, uint8_t type, uint32_t a, const char *body, size_t len)
{
	uint8_t *d;

	if (!l->up)
		return;
	d = frame_put(&l->sk.out.pending, type, 0, len, a, 0);
	if (!d) {
		log_error(ENOMEM, "frame for worker %d lost", l->k);
		return;
	}
	if (len)
		memcpy(d, body, len);
	sock_commit(&l->sk, 0);
}

static void send_frame(link_t *l, uint8_t type, const char *body, size_t len)
{
	send_frame_a(l, type, 0, body, len);
}

void kproc_send_owner(const char *id, size_t len, uint8_t type, uint32_t a)
{
	send_frame_a(&P.links[slot_owner(slot_of(id, len), P.n)], type, a, id, len);
}

unsigned kproc_send_all(uint8_t type, uint32_t a)
{
	unsigned n = 0;

	for (int k = 0; k < P.n; k++) {
		if (P.links[k].up) {
			send_frame_a(&P.links[k], type, a, NULL, 0);
			n++;
		}
	}
	return n;
}

/* The other nodes' members of shared group key, as one more peer's counts (route_peer_group). */
static void tell_group(link_t *l, const char *key, size_t len, uint32_t nodes, uint32_t online)
{
	uint8_t *d;

	if (!l->up)
		return;
	d = frame_put(&l->sk.out.pending, MF_GROUP, 0, len, nodes, online);
	if (!d)
		return;
	memcpy(d, key, len);
	sock_commit(&l->sk, 0);
}

static void tell_group_one(const char *key, size_t len, uint32_t nodes, uint32_t online, void *ctx)
{
	tell_group(ctx, key, len, nodes, online);
}

void kproc_tell_workers(const char *filter, size_t len, bool add)
{
	for (int k = 0; k < P.n; k++)
		send_frame(&P.links[k], add ? MF_SUB : MF_UNSUB, filter, len);
}

/* Hand inbox record seq to worker k (asking for an ack). */
static bool hand(link_t *l, uint64_t seq)
{
	inrec_t *r = ring_at(&P.recs, sizeof(inrec_t), (uint32_t)(seq - P.recs_seq));
	uint64_t *t;

	if (frame_put_pub(&l->sk.out.pending, r->m, (uint8_t)(r->flags | MF_ACK_WANTED), r->group, r->group_len) < 0)
		return false;
	sock_commit(&l->sk, 0);
	t = ring_push(&l->toks, sizeof(uint64_t));
	if (!t) {
		log_error(ENOMEM, "cannot track a record handed to worker %d", l->k);
		return false;
	}
	*t = seq;
	return true;
}

/* A record for a worker whose channel is down: with a durable store its sessions live on in Redis and the
 * restarted worker gets it; with the memory store they died with the worker. */
static bool hold(link_t *l, uint64_t seq)
{
	uint64_t *t;

	if (strcmp(W->cfg->store, "redis") != 0)
		return false;
	t = ring_push(&l->held, sizeof(uint64_t));
	if (!t) {
		log_error(ENOMEM, "record for worker %d not held", l->k);
		return false;
	}
	*t = seq;
	return true;
}

/* --- Kafka callbacks ---------------------------------------------------------------------------------- */

static void on_delivered(void *opaque, int err)
{
	uint64_t v = (uint64_t)(uintptr_t)opaque;
	owed_t *o;

	if ((v & INREC_TOKEN) == INREC_TOKEN) {
		/* A record of our inbox forwarded to the node that took its session over: the offset waits for it. */
		uint64_t seq = v & ~INREC_TOKEN;

		if (seq >= P.recs_seq && seq < P.recs_seq + P.recs.len)
			((inrec_t *)ring_at(&P.recs, sizeof(inrec_t), (uint32_t)(seq - P.recs_seq)))->waiting--;
		return;
	}
	o = opaque ? owed_of(opaque) : NULL;
	if (!o)
		return;
	o->waiting--;
	o->failed |= err < 0;
}

/* A live heartbeat under our node_id from another incarnation: two nodes were given one node_id, and would
 * take each other's sessions and inbox. The younger one (larger incarnation: its start time) stops, with
 * the configuration-error status so that it is not restarted into the same clash. */
static void check_twin(const void *val, size_t vlen)
{
	char v[64];
	unsigned long long inc;

	if (!kafka_caught_up() || vlen >= sizeof(v))
		return; /* history: our own earlier lives */
	memcpy(v, val, vlen);
	v[vlen] = '\0';
	if (sscanf(v, "inc=%llu", &inc) != 1 || inc == P.incarnation)
		return;
	if (inc < P.incarnation) {
		log_error(0, "cluster: another ringmqd runs with node_id %d (started before this one); every node needs "
			"its own node_id: stopping", P.self);
		P.exit_status = WORKER_EXIT_CONFIG;
		loop_stop();
	} else {
		log_error(0, "cluster: a second ringmqd was started with node_id %d; it stops (every node needs its own "
			"node_id)", P.self);
	}
}

static void on_state(enum kafka_topic t, const void *key, size_t klen, const void *val, size_t vlen)
{
	const char *filter;
	size_t flen;
	int node, edge;

	if (t == KT_NODES) {
		char k[8];

		if (klen == 0 || klen >= sizeof(k))
			return;
		memcpy(k, key, klen);
		k[klen] = '\0';
		if (atoi(k) == P.self && val)
			check_twin(val, vlen);
		knodes_heartbeat(atoi(k), val != NULL);
		return;
	}
	if (!cluster_interest_parse(key, klen, &node, &filter, &flen))
		return;
	if (node == P.self) {
		if (val)
			(void)strmap_put(&P.self_seen, filter, flen, (void *)1, NULL);
		else
			strmap_del(&P.self_seen, filter, flen);
		return;
	}
	if (flen > 7 && memcmp(filter, "$share/", 7) == 0) {
		/* A shared group of that node: 1 members, 2 online members, none (tombstone). */
		int state = val && vlen ? ((const char *)val)[0] - '0' : 0;
		uint32_t nodes, online;

		if (cluster_group_remote(node, filter + 7, flen - 7, state < 0 || state > 2 ? 0 : state)) {
			cluster_group_counts(filter + 7, flen - 7, &nodes, &online);
			for (int k = 0; k < P.n; k++)
				tell_group(&P.links[k], filter + 7, flen - 7, nodes, online);
		}
		return;
	}
	if (knodes_interest(node, key, klen, filter, flen, val != NULL))
		return;
	edge = cluster_remote_sub(node, filter, flen, val != NULL);
	if (edge == CLUSTER_FIRST || edge == CLUSTER_LAST)
		kproc_tell_workers(filter, flen, edge == CLUSTER_FIRST);
	else if (edge < 0)
		log_error(ENOMEM, "interest of node %d in '%.*s' not recorded", node, (int)flen, filter);
}

static void on_caught_up(void)
{
	log_info("cluster: interest of other nodes read (%zu filters)", cluster_remote_count());
	for (int k = 0; k < P.n; k++)
		send_frame(&P.links[k], MF_SYNC, NULL, 0);
	if (!P.ready_sent && chan_send(P.args->ctl_fd, CHAN_READY, P.args->id, 0, NULL, 0, -1) == 0)
		P.ready_sent = true;
}

static void on_inbox(int node, int64_t offset, const void *val, size_t vlen)
{
	krec_t h;
	inrec_t *r;
	uint64_t mask = 0, seq;
	uint8_t qos, retain;
	uint32_t subid;
	int err = 0;
	msg_t *m = NULL;

	r = ring_push(&P.recs, sizeof(inrec_t));
	if (!r) {
		/* Not tracked: not committed either, so a restart reads it again. */
		log_error(ENOMEM, "inbox record at offset %lld not handled", (long long)offset);
		return;
	}
	seq = P.recs_seq + P.recs.len - 1;
	*r = (inrec_t){ .node = node, .offset = offset };
	if (krec_parse(val, vlen, &h) < 0)
		goto bad;
	if (h.kind != KREC_MSG) {
		knodes_record(&h);
		return;
	}
	m = record_blob_decode(h.body, h.body_len,
		(uint64_t)time(NULL) * 1000, loop_now(), &qos, &retain, &subid, &err);
	if (!m) {
		if (err != -ETIME)
			goto bad;
		return; /* expired on the way: handled */
	}
	m->qos = qos;
	m->retain = retain;
	/* Where it came from: copies written to Redis carry it, so a record read again is not queued twice. */
	m->src_part = (uint32_t)node + 1;
	m->src_off = (uint64_t)offset;
	r->m = m;
	r->flags = h.flags & (MESH_DELIVER | MESH_RETAIN_STORE | MESH_GROUP);
	if (r->flags & MESH_DELIVER)
		mask |= cluster_match_workers(msg_topic(m), m->topic_len);
	if ((r->flags & MESH_GROUP) && h.group_len && (r->group = malloc(h.group_len))) {
		int k;

		memcpy(r->group, h.group, h.group_len);
		r->group_len = h.group_len;
		k = cluster_group_pick_worker(r->group, r->group_len);
		if (k >= 0)
			mask |= UINT64_C(1) << k;
		else
			log_info("shared group '%.*s': no member left on this node: a message for it is dropped",
				(int)r->group_len, r->group);
	}
	if (r->flags & MESH_RETAIN_STORE)
		mask |= (P.n >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << P.n) - 1);
	for (int k = 0; k < P.n; k++) {
		link_t *l = &P.links[k];

		if (!(mask & (UINT64_C(1) << k)))
			continue;
		if (l->up ? hand(l, seq) : hold(l, seq))
			r->waiting++;
	}
	/* Subscribers that moved to another node a moment ago: their messages follow them. */
	if (r->flags & MESH_DELIVER)
		r->waiting += knodes_forward(node, msg_topic(m), m->topic_len, val, vlen,
			(void *)(uintptr_t)(INREC_TOKEN | seq));
	return;
bad:
	log_warn(0, "inbox record at offset %lld is damaged: skipped", (long long)offset);
}

static const kafka_ops_t kafka_ops = { .delivered = on_delivered, .state = on_state,
	.caught_up = on_caught_up, .inbox = on_inbox };

/* --- frames from workers ------------------------------------------------------------------------------ */

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A message from worker k for the other nodes: one record per node with interest (all nodes for a retained
 * message), each counted on the frame's owed ack. */
static int on_pub(link_t *l, const frame_hdr_t *h, const uint8_t *body, int64_t owed)
{
	const uint8_t *data;
	const char *group;
	msg_t hdr, *m;
	uint64_t nodes = 0;
	uint8_t flags;
	uint16_t group_len = 0;
	size_t size;
	int64_t expire;
	buf_t v = { 0 };
	uint8_t *p;
	owed_t *o = owed >= 0 ? ring_at(&l->owed, sizeof(owed_t), (uint32_t)(owed - (int64_t)l->owed_seq)) : NULL;

	if (frame_get_pub(h, body, &hdr, &data, &group) < 0)
		return -EPROTO;
	m = msg_create_raw(&hdr, data);
	if (!m)
		return -ENOMEM;
	flags = h->flags & (MESH_DELIVER | MESH_RETAIN_STORE | MESH_GROUP);
	if (flags & MESH_DELIVER)
		nodes |= cluster_match_nodes(msg_topic(m), m->topic_len);
	if (flags & MESH_GROUP) {
		/* One member of the group, on one node: this message goes there alone. */
		int j = cluster_group_pick_node(group, h->group_len);

		if (j < 0)
			log_info("shared group '%.*s': no member on another node any more: a message for it is dropped",
				(int)h->group_len, group);
		if (j >= 0) {
			nodes = UINT64_C(1) << j;
			group_len = h->group_len;
		}
	}
	if (flags & MESH_RETAIN_STORE) {
		for (int j = 0; j < CLUSTER_MAX_NODES; j++)
			if (j != P.self && knodes_known(j))
				nodes |= UINT64_C(1) << j;
	}
	if (!nodes)
		goto out;
	expire = unix_ms() + ((m->flags & MSG_HAS_EXPIRY) ? (int64_t)(m->expire_at_ms > loop_now() ?
		m->expire_at_ms - loop_now() : 0) : (int64_t)W->cfg->message_ttl * 1000);
	size = krec_msg_size(m, group_len);
	p = buf_reserve(&v, size);
	if (!p) {
		if (o)
			o->failed = true;
		goto out;
	}
	krec_msg_encode(p, (uint32_t)P.self, flags, group, group_len, m, expire);
	v.len = (uint32_t)size;
	for (int j = 0; j < CLUSTER_MAX_NODES; j++) {
		if (!(nodes & (UINT64_C(1) << j)))
			continue;
		void *tok = o ? token(l->k, (uint64_t)owed) : NULL;

		if (kafka_produce(KT_INBOX, krec_partition(j), NULL, 0, v.data, v.len, tok) < 0) {
			if (o)
				o->failed = true;
		} else if (o) {
			o->waiting++;
		}
	}
	buf_finish(&v);
out:
	msg_unref(m);
	return 0;
}

static void on_sub(link_t *l, const char *filter, size_t len, bool add, int64_t owed)
{
	char key[70000];
	size_t klen;
	int edge = cluster_worker_sub(l->k, filter, len, add);
	owed_t *o = owed >= 0 ? ring_at(&l->owed, sizeof(owed_t), (uint32_t)(owed - (int64_t)l->owed_seq)) : NULL;

	if (edge < 0) {
		if (o)
			o->failed = true;
		return;
	}
	if (edge == CLUSTER_NONE)
		return;
	if (edge == CLUSTER_LAST) {
		/* Withdrawn a little later: a session that moved to another node keeps receiving through us until
		 * every node has read the new node's interest. */
		knodes_withdraw_later(filter, len);
		return;
	}
	klen = cluster_interest_key(key, sizeof(key), P.self, filter, len);
	if (!klen || kafka_produce(KT_INTEREST, -1, key, klen, "1", 1, o ? token(l->k, (uint64_t)owed) : NULL) < 0) {
		if (o)
			o->failed = true;
	} else if (o) {
		o->waiting++;
	}
}

static void produce_own_state(const char *f, size_t len, int state)
{
	char key[70000];
	char v = (char)('0' + state);
	size_t klen = cluster_interest_key(key, sizeof(key), P.self, f, len);

	if (!klen || kafka_produce(KT_INTEREST, -1, key, klen, state ? &v : NULL, state ? 1 : 0, NULL) < 0)
		log_warn(0, "shared group '%.*s' not announced", (int)len, f);
}

/* Worker k's member counts of a shared group: the node's state goes to the cluster when it changes. */
static void on_group(link_t *l, const char *key, size_t len, uint32_t members, uint32_t online)
{
	char f[70000];
	int state = cluster_group_worker(l->k, key, len, members, online);

	if (state < 0 || len + 7 > sizeof(f))
		return;
	memcpy(f, "$share/", 7);
	memcpy(f + 7, key, len);
	produce_own_state(f, len + 7, state);
}

/* Worker k acknowledged n of the records handed to it. */
static void on_acked(link_t *l, uint32_t n)
{
	while (n-- && l->toks.len) {
		uint64_t seq = *(uint64_t *)ring_at(&l->toks, sizeof(uint64_t), 0);

		ring_pop(&l->toks);
		if (seq >= P.recs_seq && seq < P.recs_seq + P.recs.len)
			((inrec_t *)ring_at(&P.recs, sizeof(inrec_t), (uint32_t)(seq - P.recs_seq)))->waiting--;
	}
}

static int on_frame(link_t *l, const frame_hdr_t *h, const uint8_t *body)
{
	bool want = h->flags & MF_ACK_WANTED;
	int64_t owed = -1;
	int ret = 0;

	if (want && (h->type == MF_PUB || h->type == MF_SUB || h->type == MF_UNSUB || h->type == MF_GROUP)) {
		owed = owe(l);
		if (owed < 0)
			return -ENOMEM; /* cannot keep the order of acks: reset the channel */
	}
	switch (h->type) {
	case MF_PUB:
		ret = on_pub(l, h, body, owed);
		break;
	case MF_SUB:
	case MF_UNSUB:
		on_sub(l, (const char *)body, h->body, h->type == MF_SUB, owed);
		break;
	case MF_GROUP:
		on_group(l, (const char *)body, h->body, h->a, h->b);
		break;
	case MF_ACK:
	case MF_NACK:
		on_acked(l, h->a);
		break;
	case MF_SYNC:
		P.synced |= UINT64_C(1) << l->k;
		break;
	case MF_HANDOVER:
		knodes_handover((int)h->a, (const char *)body, h->body);
		break;
	case MF_RELEASED:
		knodes_released((int)h->a, body, h->body);
		break;
	case MF_ADOPTED:
		knodes_adopted((int)h->a);
		break;
	default:
		break; /* relay frames never come here */
	}
	return ret == -EPROTO ? ret : 0;
}

static void on_data(sock_t *s, const uint8_t *data, size_t len)
{
	link_t *l = (link_t *)s;
	const uint8_t *p;
	size_t n, off = 0;

	p = buf_carry_view(&l->carry, data, len, &n);
	if (!p) {
		sock_close(s, false);
		return;
	}
	while (off < n) {
		frame_hdr_t h;
		const uint8_t *body;
		int64_t r = frame_next(p + off, n - off, &h, &body);

		if (r == 0)
			break;
		if (r < 0 || on_frame(l, &h, body) < 0) {
			log_error(0, "channel to worker %d: bad frame or no memory: resetting it", l->k);
			sock_close(s, false);
			return;
		}
		off += (size_t)r;
	}
	if (buf_carry_keep(&l->carry, p, n, off) < 0)
		sock_close(s, false);
}

/* --- links ---------------------------------------------------------------------------------------------- */

static void link_down(link_t *l)
{
	if (!l->up)
		return;
	l->up = false;
	/* What the worker had not acknowledged is held for its successor (durable store) or done with. */
	while (l->toks.len) {
		uint64_t seq = *(uint64_t *)ring_at(&l->toks, sizeof(uint64_t), 0);

		ring_pop(&l->toks);
		if (seq >= P.recs_seq && seq < P.recs_seq + P.recs.len && !hold(l, seq))
			((inrec_t *)ring_at(&P.recs, sizeof(inrec_t), (uint32_t)(seq - P.recs_seq)))->waiting--;
	}
	l->owed.len = 0;
	l->owed_seq = 0;
	buf_finish(&l->carry);
	sock_close(&l->sk, false);
}

static void on_eof(sock_t *s, int err)
{
	link_t *l = (link_t *)s;

	log_info("channel to worker %d closed%s%s", l->k, err ? ": " : "", err ? strerror(-err) : "");
	link_down(l);
}

static void on_free(sock_t *s)
{
	(void)s;
}

static const sock_ops_t link_ops = { .on_data = on_data, .on_eof = on_eof, .on_free = on_free };

static void tell_one(const char *filter, size_t len, void *ctx)
{
	send_frame(ctx, MF_SUB, filter, len);
}

static void link_up(int k, int fd)
{
	link_t *l = &P.links[k];

	if (l->up)
		link_down(l);
	memset(&l->carry, 0, sizeof(l->carry));
	l->k = k;
	l->gen++;
	if (sock_open(&l->sk, fd, &link_ops, false) < 0) {
		log_error(ENOMEM, "cannot open the channel to worker %d", k);
		close(fd);
		return;
	}
	l->up = true;
	/* Everything the other nodes want, so its publishers route there. */
	cluster_each_remote(tell_one, l);
	cluster_each_group(tell_group_one, l);
	if (kafka_caught_up())
		send_frame(l, MF_SYNC, NULL, 0);
	/* Then the records held while it was away, in order. */
	while (l->held.len) {
		uint64_t seq = *(uint64_t *)ring_at(&l->held, sizeof(uint64_t), 0);

		ring_pop(&l->held);
		if (seq < P.recs_seq || seq >= P.recs_seq + P.recs.len)
			continue;
		if (!hand(l, seq))
			((inrec_t *)ring_at(&P.recs, sizeof(inrec_t), (uint32_t)(seq - P.recs_seq)))->waiting--;
	}
}

static void put_acks(link_t *l, bool ok, uint32_t n)
{
	if (n && frame_put(&l->sk.out.pending, ok ? MF_ACK : MF_NACK, 0, 0, n, 0))
		sock_commit(&l->sk, 0);
}

/* Answer what is done, oldest first (acks are counted, so they must stay in order), and commit the inbox. */
static void flush_links(void)
{
	for (int k = 0; k < P.n; k++) {
		link_t *l = &P.links[k];
		uint32_t run = 0;
		bool run_ok = true;

		while (l->up && l->owed.len) {
			owed_t *o = ring_at(&l->owed, sizeof(owed_t), 0);

			if (o->waiting)
				break;
			if (run && run_ok == o->failed) {
				put_acks(l, run_ok, run);
				run = 0;
			}
			run_ok = !o->failed;
			run++;
			ring_pop(&l->owed);
			l->owed_seq++;
		}
		put_acks(l, run_ok, run);
	}
	/* Commit the inbox up to the first record some worker still holds. */
	while (P.recs.len) {
		inrec_t *r = ring_at(&P.recs, sizeof(inrec_t), 0);

		if (r->waiting)
			break;
		kafka_commit(r->node, r->offset + 1);
		if (r->m)
			msg_unref(r->m);
		free(r->group);
		ring_pop(&P.recs);
		P.recs_seq++;
	}
	reconcile();
	/* Flow control: stop reading publishers while Kafka holds too much of ours unacknowledged. */
	if (!P.paused && kafka_pending() > W->cfg->kafka_max_pending) {
		P.paused = true;
		for (int k = 0; k < P.n; k++)
			if (P.links[k].up)
				sock_pause(&P.links[k].sk);
	} else if (P.paused && kafka_pending() < W->cfg->kafka_max_pending / 2) {
		P.paused = false;
		for (int k = 0; k < P.n; k++)
			if (P.links[k].up)
				sock_resume(&P.links[k].sk);
	}
}

/* Once the cluster state is read and every worker has announced its interest: withdraw what P.interest says we
 * want but no worker does (left over from before a restart), and announce what is missing. */
static void reconcile(void)
{
	uint64_t all = P.n >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << P.n) - 1;
	strmap_entry_t *e;
	size_t pos = 0;
	char key[70000];
	int stale = 0;

	if (P.reconciled || !kafka_caught_up() || (P.synced & all) != all)
		return;
	P.reconciled = true;
	while ((e = strmap_next(&P.self_seen, &pos))) {
		size_t klen;

		if (e->len > 7 && memcmp(e->key, "$share/", 7) == 0 ? cluster_group_state(e->key + 7, e->len - 7) > 0 :
		    cluster_worker_has(e->key, e->len))
			continue;
		klen = cluster_interest_key(key, sizeof(key), P.self, e->key, e->len);
		if (klen && kafka_produce(KT_INTEREST, -1, key, klen, NULL, 0, NULL) == 0)
			stale++;
	}
	strmap_clear(&P.self_seen);
	if (stale)
		log_info("cluster: %d filters of this node's earlier life withdrawn", stale);
}

/* --- heartbeat, control channel --------------------------------------------------------------------------- */

static void tick(void)
{
	uint64_t now = loop_clock_ms();
	char key[8], val[64];

	knodes_tick();
	if (now - P.hb_ms < KNODES_HEARTBEAT_MS)
		return;
	P.hb_ms = now;
	snprintf(key, sizeof(key), "%d", P.self);
	snprintf(val, sizeof(val), "inc=%llu t=%lld", (unsigned long long)P.incarnation, (long long)unix_ms());
	(void)kafka_produce(KT_NODES, 0, key, strlen(key), val, strlen(val), NULL);
}

static char *cluster_json(void)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "node", json_integer(P.self));
	json_object_set_new(o, "nodes", knodes_json());
	json_object_set_new(o, "own_filters", json_integer((json_int_t)cluster_own_count()));
	json_object_set_new(o, "remote_filters", json_integer((json_int_t)cluster_remote_count()));
	json_object_set_new(o, "remote_groups", json_integer((json_int_t)cluster_group_remote_count()));
	json_object_set_new(o, "remote_group_nodes", json_integer((json_int_t)cluster_group_remote_nodes()));
	json_object_set_new(o, "kafka_pending", json_integer(kafka_pending()));
	json_object_set_new(o, "inbox_unhandled", json_integer(P.recs.len));
	json_object_set_new(o, "caught_up", json_boolean(kafka_caught_up()));
	json_object_set_new(o, "kafka", kafka_json());
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static void on_ctl(uint64_t ud, struct io_uring_cqe *cqe)
{
	chan_hdr_t h;
	int fd;

	(void)ud;
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		struct io_uring_sqe *sqe = loop_sqe();

		io_uring_prep_poll_multishot(sqe, P.args->ctl_fd, POLLIN);
		io_uring_sqe_set_data64(sqe, ud_make(P.kind_ctl, 0, 0));
	}
	for (;;) {
		int rc = chan_recv(P.args->ctl_fd, &h, P.payload, &fd);

		if (rc == -EAGAIN)
			return;
		if (rc == -EPIPE) {
			loop_stop();
			return;
		}
		if (rc < 0)
			continue;
		switch (h.type) {
		case CHAN_MESH_FD:
			if (h.worker >= 0 && h.worker < P.n && fd >= 0)
				link_up(h.worker, fd);
			else if (fd >= 0)
				close(fd);
			break;
		case CHAN_PEER_DOWN:
			if (h.worker >= 0 && h.worker < P.n)
				link_down(&P.links[h.worker]);
			break;
		case CHAN_SHUTDOWN:
			loop_stop();
			break;
		case CHAN_PING: {
			/* The heartbeat (supervisor/watchdog.h), answered by this loop; serving = the cluster state is read. */
			chan_pong_t p = { .flags = CHAN_PONG_STORE_UP | (kafka_caught_up() ? CHAN_PONG_SERVING : 0) };

			(void)chan_send(P.args->ctl_fd, CHAN_PONG, P.args->id, h.seq, &p, sizeof(p), -1);
			break;
		}
		case CHAN_CTL_REQ: {
			char *s = cluster_json();

			(void)chan_send(P.args->ctl_fd, CHAN_CTL_REPLY, P.args->id, h.seq, s, s ? (uint32_t)strlen(s) : 0,
				-1);
			free(s);
			break;
		}
		default:
			if (fd >= 0)
				close(fd);
			break;
		}
	}
}


int kproc_run(const worker_args_t *args)
{
	static wk_t w;
	loop_config_t lc;
	struct io_uring_sqe *sqe;
	int rc;

	memset(&w, 0, sizeof(w));
	W = &w;
	W->id = args->id;
	W->n = args->n_workers;
	W->cfg = args->cfg;
	W->listen_fd = W->tls_listen_fd = -1;
	W->ctl_fd = args->ctl_fd;
	signal(SIGPIPE, SIG_IGN);
	memset(&P, 0, sizeof(P));
	P.args = args;
	P.n = args->n_workers;
	P.self = (int)args->cfg->node_id;
	P.incarnation = (uint64_t)unix_ms();
	lc = (loop_config_t){ .sq_entries = 1024, .buf_count = 256, .buf_size = 65536, .tick_ms = 250 };
	if (loop_init(&lc) < 0)
		return 1;
	sock_module_init();
	strmap_init(&P.self_seen);
	if (knodes_init(P.self, P.n) < 0 || cluster_init(P.self) < 0) {
		log_error(ENOMEM, "cluster tables");
		return 1;
	}
	P.kind_ctl = loop_register("kproc-ctl", on_ctl);
	sqe = loop_sqe();
	io_uring_prep_poll_multishot(sqe, args->ctl_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(P.kind_ctl, 0, 0));
	loop_on_flush(flush_links, LOOP_ORDER_MESH);
	loop_on_tick(tick);
	for (int k = 0; k < P.n; k++)
		if (args->mesh_fds[k] >= 0)
			link_up(k, args->mesh_fds[k]);
	rc = kafka_init(&kafka_ops);
	if (rc < 0)
		return rc == -EINVAL ? WORKER_EXIT_CONFIG : 1;
	log_info("Kafka process up: node %d, %d workers", P.self, P.n);
	rc = loop_run();
	if (P.exit_status)
		rc = P.exit_status;
	for (int k = 0; k < P.n; k++)
		link_down(&P.links[k]);
	kafka_finish(2000);
	while (P.recs.len) {
		inrec_t *r = ring_at(&P.recs, sizeof(inrec_t), 0);

		if (r->m)
			msg_unref(r->m);
		free(r->group);
		ring_pop(&P.recs);
	}
	ring_finish(&P.recs);
	for (int k = 0; k < P.n; k++) {
		ring_finish(&P.links[k].owed);
		ring_finish(&P.links[k].toks);
		ring_finish(&P.links[k].held);
	}
	cluster_finish();
	strmap_finish(&P.self_seen);
	knodes_finish();
	loop_finish();
	sock_module_finish();
	return rc;
}

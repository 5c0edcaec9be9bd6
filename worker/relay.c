/* relay.c — MQTT bytes of a TLS connection between the worker that holds its socket and its owner (relay.h). */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "mesh.h"
#include "strmap.h"
#include "worker.h"

/* Largest RELAY_DATA body: long input is cut into frames of this size. */
#define CHUNK (256u << 10)

static struct {
	strmap_t links;            /* (peer, link id) -> conn_t* */
} R;

typedef struct key {
	uint32_t peer;
	uint32_t pad;
	uint64_t link;
} link_key_t;

static link_key_t key_of(int peer, uint64_t link)
{
	return (link_key_t){ .peer = (uint32_t)peer, .link = link };
}

void relay_module_init(void)
{
	strmap_init(&R.links);
}

void relay_module_finish(void)
{
	strmap_finish(&R.links);
}

size_t relay_count(void)
{
	return R.links.count;
}

static uint64_t link_of(const frame_hdr_t *h)
{
	return (uint64_t)h->a | (uint64_t)h->b << 32;
}

/* A frame to peer k about link; body to fill, or NULL (k down, no memory). */
static uint8_t *put(int k, uint8_t type, uint64_t link, size_t body, uint32_t arg)
{
	uint8_t *d = mesh_frame(k, type, body, (uint32_t)link, (uint32_t)(link >> 32));

	if (d && type == MF_RELAY_PAUSE)
		((frame_hdr_t *)(d - sizeof(frame_hdr_t)))->reserved = arg;
	return d;
}

int relay_open(conn_t *c)
{
	link_key_t k = key_of(c->handoff_to, c->id);
	size_t alen = strlen(c->addr), clen = c->cert_cn ? strlen(c->cert_cn) : 0;
	uint8_t *d;

	if (!mesh_up(c->handoff_to))
		return -ENOTCONN;
	if (strmap_put(&R.links, &k, sizeof(k), c, NULL) < 0)
		return -ENOMEM;
	d = put(c->handoff_to, MF_RELAY_OPEN, c->id, 4 + alen + clen + c->rbuf.len, 0);
	if (!d) {
		strmap_del(&R.links, &k, sizeof(k));
		return -ENOMEM;
	}
	d[0] = (uint8_t)alen;
	d[1] = (uint8_t)(alen >> 8);
	memcpy(d + 2, c->addr, alen);
	d[2 + alen] = (uint8_t)clen;
	d[3 + alen] = (uint8_t)(clen >> 8);
	if (clen)
		memcpy(d + 4 + alen, c->cert_cn, clen);
	memcpy(d + 4 + alen + clen, c->rbuf.data, c->rbuf.len);
	c->relay_peer = c->handoff_to;
	c->relay_link = c->id;
	c->rbuf.len = 0;
	W->st.relay_opened++;
	log_conn(LOG_DEBUG, c->id, 0, "relayed to worker %d", c->handoff_to);
	return 0;
}

static void send_data(int k, uint64_t link, const uint8_t *p, size_t n)
{
	while (n) {
		size_t take = n < CHUNK ? n : CHUNK;
		uint8_t *d = put(k, MF_RELAY_DATA, link, take, 0);

		if (!d) {
			log_error(ENOMEM, "relay to worker %d: %zu bytes lost: closing the link", k, n);
			return;
		}
		memcpy(d, p, take);
		p += take;
		n -= take;
	}
}

void relay_front_input(conn_t *c, const uint8_t *p, size_t n)
{
	send_data(c->relay_peer, c->relay_link, p, n);
}

void relay_back_flush(conn_t *c)
{
	outq_t *q = &c->sk.out;

	/* A socket-less connection's output is never "in flight": it goes to the front whole. */
	if (q->pending.len && c->relay_peer >= 0)
		send_data(c->relay_peer, c->relay_link, q->pending.data, q->pending.len);
	outq_reset(q);
}

void relay_back_pause(conn_t *c, bool paused)
{
	if (c->relay_peer >= 0)
		put(c->relay_peer, MF_RELAY_PAUSE, c->relay_link, 0, paused);
}

void relay_forget(conn_t *c)
{
	link_key_t k;

	if (c->relay_peer < 0)
		return;
	k = key_of(c->relay_peer, c->relay_link);
	if (strmap_get(&R.links, &k, sizeof(k)) == c)
		strmap_del(&R.links, &k, sizeof(k));
}

void relay_closed(conn_t *c)
{
	if (c->relay_peer < 0)
		return;
	put(c->relay_peer, MF_RELAY_CLOSE, c->relay_link, 0, 0);
	relay_forget(c);
	c->relay_peer = -1;
}

static int on_open(int k, uint64_t link, const uint8_t *body, size_t len)
{
	link_key_t key = key_of(k, link);
	size_t alen, clen;
	char addr[64], cn[256];
	conn_t *c;

	if (len < 4 || (alen = body[0] | (size_t)body[1] << 8) + 4 > len || alen >= sizeof(addr))
		return -EPROTO;
	clen = body[2 + alen] | (size_t)body[3 + alen] << 8;
	if (4 + alen + clen > len || clen >= sizeof(cn))
		return -EPROTO;
	memcpy(addr, body + 2, alen);
	addr[alen] = '\0';
	memcpy(cn, body + 4 + alen, clen);
	cn[clen] = '\0';
	c = conn_adopt_relay(k, link, addr, clen ? cn : NULL);
	if (!c) {
		put(k, MF_RELAY_CLOSE, link, 0, 0);
		return 0;
	}
	if (strmap_put(&R.links, &key, sizeof(key), c, NULL) < 0) {
		c->relay_peer = -1;
		conn_close(c, 0);
		put(k, MF_RELAY_CLOSE, link, 0, 0);
		return 0;
	}
	W->st.relay_accepted++;
	conn_input(c, body + 4 + alen + clen, len - 4 - alen - clen);
	return 0;
}

int relay_on_frame(int k, const frame_hdr_t *h, const uint8_t *body)
{
	uint64_t link = link_of(h);
	link_key_t key = key_of(k, link);
	conn_t *c;

	if (h->type == MF_RELAY_OPEN)
		return on_open(k, link, body, h->body);
	c = strmap_get(&R.links, &key, sizeof(key));
	if (!c)
		return 0; /* the link closed on our side meanwhile */
	switch (h->type) {
	case MF_RELAY_DATA:
		if (c->relay_back) {
			conn_input(c, body, h->body);
		} else {
			uint8_t *p = conn_reserve(c, h->body);

			if (p) {
				memcpy(p, body, h->body);
				conn_commit(c, h->body);
			}
		}
		return 0;
	case MF_RELAY_CLOSE:
		/* The other side is gone: nothing more goes to it. */
		relay_forget(c);
		c->relay_peer = -1;
		conn_close(c, 0);
		return 0;
	case MF_RELAY_PAUSE:
		if (!c->relay_back)
			conn_relay_pause(c, h->reserved != 0);
		return 0;
	default:
		return -EPROTO;
	}
}

void relay_peer_down(int k)
{
	strmap_entry_t *e;
	size_t pos = 0;

	while ((e = strmap_next(&R.links, &pos))) {
		link_key_t key;
		conn_t *c = e->value;

		memcpy(&key, e->key, sizeof(key));
		if ((int)key.peer != k)
			continue;
		strmap_del(&R.links, e->key, e->len);
		c->relay_peer = -1;
		conn_close(c, 0);
		pos = 0;
	}
}

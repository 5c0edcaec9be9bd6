/*
 * rds_cluster.c — slot routing and Redis Cluster topology for the Redis client (see rds.h, rds_cluster.h).
 *
 * The slot map (16384 entries -> node index) comes from CLUSTER SLOTS: at start (which also tells RDS_AUTO
 * whether the seed is a cluster at all), after MOVED (rate-limited to one per second: a pipeline hitting a
 * moved slot returns a burst of MOVED), after losing a master, and every second while a master stays down
 * (a failover may have replaced it). Between refreshes a MOVED updates its one slot at once, so the rest of a
 * burst is routed right without waiting for the refresh. ASK is followed once with ASKING and leaves the map
 * alone, as the Cluster spec requires.
 */
#include "rds_cluster.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "slot.h"

#define REFRESH_MIN_MS 1000        /* at most one CLUSTER SLOTS per second (a MOVED burst asks for many) */
#define MAX_REDIRECTS 5

/* ---- addresses and nodes ---- */

/* "host:port", "[v6]:port", "host" (port 6379). Returns 0 or -EINVAL. */
int rds_parse_addr(const char *s, size_t len, char *host, size_t hostcap, uint16_t *port)
{
	const char *h = s, *p = NULL;
	size_t hl = len;
	unsigned long v = 6379;

	if (len && s[0] == '[') {
		const char *e = memchr(s, ']', len);

		if (!e)
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(e - h);
		if (e + 1 < s + len) {
			if (e[1] != ':')
				return -EINVAL;
			p = e + 2;
		}
	} else {
		const char *c = memchr(s, ':', len);

		/* More than one colon without brackets: a bare IPv6 address. */
		if (c && !memchr(c + 1, ':', len - (size_t)(c + 1 - s))) {
			hl = (size_t)(c - s);
			p = c + 1;
		}
	}
	if (p) {
		char tmp[8], *end;
		size_t pl = len - (size_t)(p - s);

		if (!pl || pl >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, p, pl);
		tmp[pl] = 0;
		v = strtoul(tmp, &end, 10);
		if (*end || !v || v > 65535)
			return -EINVAL;
	}
	if (!hl || hl >= hostcap)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (uint16_t)v;
	return 0;
}

static bool sa_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return false;
}

/*
 * The node for host:port, created if new. numeric_only: addresses from Redis itself (CLUSTER SLOTS, MOVED)
 * must be IPs — resolving a name would block the worker. Returns NULL (err set) on failure.
 */
node_t *rds_node_get(const char *host, uint16_t port, bool numeric_only, int *err)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage sa;
	socklen_t salen;
	char portstr[8];
	node_t *n, **nodes;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (numeric_only ? AI_NUMERICHOST : 0);
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc || !res || res->ai_addrlen > sizeof(sa)) {
		if (res)
			freeaddrinfo(res);
		*err = rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
		return NULL;
	}
	memset(&sa, 0, sizeof(sa));
	memcpy(&sa, res->ai_addr, res->ai_addrlen);
	salen = res->ai_addrlen;
	freeaddrinfo(res);
	for (uint32_t i = 0; i < rds_st.n_nodes; i++)
		if (sa_equal(&rds_st.nodes[i]->sa, &sa))
			return rds_st.nodes[i];
	if (rds_st.n_nodes >= MAX_NODES) {
		*err = -ENOSPC;
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	nodes = realloc(rds_st.nodes, (rds_st.n_nodes + 1) * sizeof(*nodes));
	if (!n || !nodes || !(n->rbuf = malloc(RBUF_SIZE))) {
		if (nodes)
			rds_st.nodes = nodes;
		if (n)
			free(n->rbuf);
		free(n);
		*err = -ENOMEM;
		return NULL;
	}
	rds_st.nodes = nodes;
	n->idx = rds_st.n_nodes;
	n->fd = -1;
	n->backoff_ms = BACKOFF_MIN_MS;
	n->sa = sa;
	n->salen = salen;
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	snprintf(n->name, sizeof(n->name), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	rds_st.nodes[rds_st.n_nodes++] = n;
	return n;
}

/* ---- routing and topology ---- */

/* Queue a user command on the owner of its slot, or park it until the topology is known. */
void rds_route(cmd_t *c, bool redo)
{
	uint16_t owner = rds_st.slots[c->slot];

	if (owner == NO_NODE) {
		q_push(&rds_st.unrouted, c);
		return;
	}
	q_push(redo ? &rds_st.nodes[owner]->redo : &rds_st.nodes[owner]->queued, c);
}

/* After a topology change: move unsent user commands to their slot's new owner, keeping their order. */
void rds_reroute_all(void)
{
	cmdq_t old = rds_st.unrouted;

	memset(&rds_st.unrouted, 0, sizeof(rds_st.unrouted));
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		node_t *n = rds_st.nodes[i];

		for (int which = 0; which < 2; which++) {
			cmdq_t *q = which ? &n->queued : &n->redo, keep = { 0 };
			cmd_t *c;

			while ((c = q_pop(q))) {
				uint16_t owner = rds_st.slots[c->slot];

				if (c->kind != K_USER || c->asking || owner == i || owner == NO_NODE)
					q_push(&keep, c);
				else
					q_push(which ? &rds_st.nodes[owner]->queued : &rds_st.nodes[owner]->redo, c);
			}
			*q = keep;
		}
	}
	for (cmd_t *c; (c = q_pop(&old));)
		rds_route(c, false);
}

void rds_topo_refresh(node_t *prefer)
{
	node_t *t = NULL;
	cmd_t *c;
	static const char *argv[] = { "CLUSTER", "SLOTS" };

	if (rds_st.mode == RDS_STANDALONE || rds_st.slots_inflight)
		return;
	if (prefer && prefer->state == ST_UP)
		t = prefer;
	for (uint32_t i = 0; !t && i < rds_st.n_nodes; i++)
		if (rds_st.nodes[i]->state == ST_UP && rds_st.nodes[i]->wanted)
			t = rds_st.nodes[i];
	for (uint32_t i = 0; !t && i < rds_st.n_nodes; i++)
		if (rds_st.nodes[i]->state == ST_UP)
			t = rds_st.nodes[i];
	rds_st.refresh_wanted = true;
	if (!t || !(c = rds_cmd_internal(K_SLOTS, 2, argv, NULL)))
		return;
	q_push(&t->redo, c);
	rds_st.slots_inflight = true;
	rds_st.refresh_wanted = false;
	rds_st.refresh_at_ms = rds_now_ms() + REFRESH_MIN_MS;
}

/* MOVED/ASK: send the command again to the node Redis names. Returns true if c was re-queued. */
bool rds_redirect(node_t *n, cmd_t *c, const redisReply *r)
{
	char host[64];
	const char *p, *colon;
	unsigned long slot, port;
	bool ask;
	char *end;
	node_t *t;
	int err;

	if (!strncmp(r->str, "MOVED ", 6))
		ask = false;
	else if (!strncmp(r->str, "ASK ", 4))
		ask = true;
	else
		return false;
	if (c->redirects >= MAX_REDIRECTS) {
		log_warn(0, "redis: slot %u redirected %d times in a row; giving the error to the caller", c->slot,
			MAX_REDIRECTS);
		return false;
	}
	p = r->str + (ask ? 4 : 6);
	slot = strtoul(p, &end, 10);
	if (end == p || *end != ' ' || slot >= SLOT_COUNT)
		return false;
	p = end + 1;
	colon = strrchr(p, ':');    /* IPv6 endpoints come unbracketed: the port follows the last colon */
	if (!colon || (size_t)(colon - p) >= sizeof(host))
		return false;
	port = strtoul(colon + 1, &end, 10);
	if (*end || !port || port > 65535)
		return false;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = 0;
	/* An empty or "?" endpoint means "the address you reached me on" (cluster-preferred-endpoint-type). */
	if (!*host || !strcmp(host, "?"))
		snprintf(host, sizeof(host), "%s", n->host);
	t = rds_node_get(host, (uint16_t)port, true, &err);
	if (!t) {
		log_warn(-err, "redis: cannot follow %s to %s:%lu", ask ? "ASK" : "MOVED", host, port);
		return false;
	}
	c->redirects++;
	c->asking = ask;
	t->wanted = true;
	if (!ask) {
		rds_st.slots[slot] = (uint16_t)t->idx;
		rds_st.refresh_wanted = true;
	}
	q_push(&t->redo, c);
	if (t->state == ST_IDLE && rds_now_ms() >= t->retry_at_ms)
		rds_start_connect(t);
	return true;
}

void rds_on_slots(node_t *n, const redisReply *r)
{
	uint16_t *map;
	uint32_t covered = 0, masters = 0;

	rds_st.slots_inflight = false;
	rds_st.refresh_at_ms = rds_now_ms() + REFRESH_MIN_MS;
	if (r->type == REDIS_REPLY_ERROR) {
		if (strstr(r->str, "cluster support disabled") && rds_st.mode == RDS_AUTO) {
			rds_st.mode = RDS_STANDALONE;
			for (uint32_t s = 0; s < SLOT_COUNT; s++)
				rds_st.slots[s] = (uint16_t)n->idx;
			for (uint32_t i = 0; i < rds_st.n_nodes; i++)
				rds_st.nodes[i]->wanted = rds_st.nodes[i] == n;
			rds_st.topo_known = true;
			rds_st.refresh_wanted = false;
			log_info("redis %s is a standalone server (no cluster)", n->name);
			rds_reroute_all();
			return;
		}
		log_warn(0, "redis %s refused CLUSTER SLOTS: %s — retrying", n->name, r->str);
		rds_st.refresh_wanted = true;
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || !(map = malloc(SLOT_COUNT * sizeof(*map)))) {
		rds_st.refresh_wanted = true;
		return;
	}
	for (uint32_t s = 0; s < SLOT_COUNT; s++)
		map[s] = NO_NODE;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i], *m;
		char host[64];
		node_t *t;
		int err;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
			e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY)
			continue;
		m = e->element[2];
		if (m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
			m->element[1]->type != REDIS_REPLY_INTEGER || m->element[1]->integer <= 0 ||
			m->element[1]->integer > 65535 || m->element[0]->len >= sizeof(host))
			continue;
		memcpy(host, m->element[0]->str, m->element[0]->len);
		host[m->element[0]->len] = 0;
		if (!*host || !strcmp(host, "?"))
			snprintf(host, sizeof(host), "%s", n->host);
		t = rds_node_get(host, (uint16_t)m->element[1]->integer, true, &err);
		if (!t) {
			log_warn(-err, "redis: CLUSTER SLOTS names %s:%lld, which cannot be used (IP addresses only)",
				host, m->element[1]->integer);
			continue;
		}
		for (long long s = e->element[0]->integer; s <= e->element[1]->integer && s < SLOT_COUNT; s++) {
			if (s < 0)
				continue;
			map[s] = (uint16_t)t->idx;
			covered++;
		}
	}
	if (!covered) {
		log_warn(0, "redis %s: the cluster has no slots assigned yet — retrying", n->name);
		free(map);
		rds_st.refresh_wanted = true;
		return;
	}
	if (rds_st.mode == RDS_AUTO)
		rds_st.mode = RDS_CLUSTER;
	memcpy(rds_st.slots, map, SLOT_COUNT * sizeof(*map));
	free(map);
	for (uint32_t i = 0; i < rds_st.n_nodes; i++)
		rds_st.nodes[i]->wanted = false;
	for (uint32_t s = 0; s < SLOT_COUNT; s++)
		if (rds_st.slots[s] != NO_NODE && !rds_st.nodes[rds_st.slots[s]]->wanted) {
			rds_st.nodes[rds_st.slots[s]]->wanted = true;
			masters++;
		}
	if (!rds_st.topo_known)
		log_info("redis cluster: %u masters, %u of %u slots assigned", masters, covered, SLOT_COUNT);
	rds_st.topo_known = true;
	rds_st.refresh_wanted = covered < SLOT_COUNT;
	for (uint32_t i = 0; i < rds_st.n_nodes; i++) {
		node_t *t = rds_st.nodes[i];

		if (t->wanted && t->state == ST_IDLE && rds_now_ms() >= t->retry_at_ms)
			rds_start_connect(t);
	}
	rds_reroute_all();
}

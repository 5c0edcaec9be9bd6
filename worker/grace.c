/* grace.c — copies held back from Redis for a short grace: a due-ordered list and a hash (see grace.h). */
#include "grace.h"

#include <stdlib.h>

#include "msg.h"

#define MIN_BUCKETS 256

static struct {
	grace_ent_t *head, *tail;
	grace_ent_t **tab;
	size_t mask;               /* buckets - 1 */
	size_t n;
	grace_ent_t *free;         /* recycled entries (chained through next) */
	size_t n_free;
} G;

static size_t hash(const struct sess *s, uint64_t qseq)
{
	uint64_t h = ((uint64_t)(uintptr_t)s >> 4) * 0x9e3779b97f4a7c15ull ^ qseq * 0xc2b2ae3d27d4eb4full;

	return (size_t)(h ^ h >> 29);
}

void grace_init(void)
{
	G.head = G.tail = NULL;
	G.n = 0;
	G.free = NULL;
	G.n_free = 0;
	G.mask = 0;
	G.tab = NULL;
}

void grace_finish(void)
{
	while (G.head) {
		grace_ent_t *e = G.head;

		msg_unref(e->m);
		grace_del(e);
	}
	while (G.free) {
		grace_ent_t *e = G.free;

		G.free = e->next;
		free(e);
	}
	free(G.tab);
	grace_init();
}

size_t grace_count(void)
{
	return G.n;
}

/* Twice the buckets once the table is fuller than one entry per bucket (entries are rehashed in place). */
static int grow(void)
{
	size_t nb = G.tab ? (G.mask + 1) * 2 : MIN_BUCKETS;
	grace_ent_t **t = calloc(nb, sizeof(*t));

	if (!t)
		return -1;
	for (grace_ent_t *e = G.head; e; e = e->next) {
		size_t i = hash(e->s, e->qseq) & (nb - 1);

		e->hnext = t[i];
		t[i] = e;
	}
	free(G.tab);
	G.tab = t;
	G.mask = nb - 1;
	return 0;
}

grace_ent_t *grace_add(const struct sess *s, uint64_t qseq, uint64_t due_ms)
{
	grace_ent_t *e;
	size_t i;

	if ((!G.tab || G.n >= G.mask + 1) && grow() < 0 && !G.tab)
		return NULL;
	if (G.free) {
		e = G.free;
		G.free = e->next;
		G.n_free--;
	} else if (!(e = malloc(sizeof(*e)))) {
		return NULL;
	}
	*e = (grace_ent_t){ .s = s, .qseq = qseq, .due_ms = due_ms, .prev = G.tail };
	if (G.tail)
		G.tail->next = e;
	else
		G.head = e;
	G.tail = e;
	i = hash(s, qseq) & G.mask;
	e->hnext = G.tab[i];
	G.tab[i] = e;
	G.n++;
	return e;
}

grace_ent_t *grace_find(const struct sess *s, uint64_t qseq)
{
	if (!G.n)
		return NULL;
	for (grace_ent_t *e = G.tab[hash(s, qseq) & G.mask]; e; e = e->hnext) {
		if (e->s == s && e->qseq == qseq)
			return e;
	}
	return NULL;
}

grace_ent_t *grace_first(void)
{
	return G.head;
}

void grace_del(grace_ent_t *e)
{
	grace_ent_t **pp = &G.tab[hash(e->s, e->qseq) & G.mask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		G.head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		G.tail = e->prev;
	G.n--;
	/* Keep a few for the next copies: at the grace's steady state entries come and go at the message rate. */
	if (G.n_free < 4096) {
		e->next = G.free;
		G.free = e;
		G.n_free++;
	} else {
		free(e);
	}
}

/* win.c — the outbound in-flight window (see win.h). */
#include "win.h"

#include <stdlib.h>
#include <string.h>

#define ENT(w, i) ((win_ent_t *)ring_at(&(w)->ents, sizeof(win_ent_t), (i)))

/* Ids are ours and mostly sequential: a multiplicative hash spreads them well, no key needed. */
static inline uint32_t slot_of(const win_t *w, uint16_t pid)
{
	return ((uint32_t)pid * 2654435761u >> 8) & (w->tab_cap - 1);
}

static inline uint32_t index_of(const win_t *w, uint32_t v)
{
	return (v - 1) - (uint32_t)w->head;
}

static bool tab_rebuild(win_t *w, uint32_t cap)
{
	uint32_t *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return false;
	free(w->tab);
	w->tab = tab;
	w->tab_cap = cap;
	for (uint32_t i = 0; i < w->ents.len; i++) {
		const win_ent_t *e = ENT(w, i);
		uint32_t s;

		if (e->state == WIN_FREE)
			continue;
		for (s = slot_of(w, e->pid); w->tab[s]; s = (s + 1) & (cap - 1))
			;
		w->tab[s] = (uint32_t)(w->head + i) + 1;
	}
	return true;
}

static uint32_t find_slot(const win_t *w, uint16_t pid)
{
	uint32_t mask = w->tab_cap - 1;

	for (uint32_t s = slot_of(w, pid);; s = (s + 1) & mask) {
		uint32_t v = w->tab[s];

		if (!v || ENT(w, index_of(w, v))->pid == pid)
			return s;
	}
}

win_ent_t *win_find(const win_t *w, uint16_t pid)
{
	uint32_t v;

	if (!w->tab_cap || !pid)
		return NULL;
	v = w->tab[find_slot(w, pid)];
	return v ? ENT(w, index_of(w, v)) : NULL;
}

uint16_t win_next_pid(win_t *w)
{
	if (w->live >= 65535)
		return 0;
	do {
		w->last_pid = w->last_pid == 65535 ? 1 : (uint16_t)(w->last_pid + 1);
	} while (win_find(w, w->last_pid));
	return w->last_pid;
}

/* Rewrite the ring without holes (positions change, so the table is rebuilt). */
static bool compact(win_t *w)
{
	ring_t r = { 0 };

	for (uint32_t i = 0; i < w->ents.len; i++) {
		win_ent_t *e = ENT(w, i), *d;

		if (e->state == WIN_FREE)
			continue;
		d = ring_push(&r, sizeof(win_ent_t));
		if (!d) {
			ring_finish(&r);
			return false;
		}
		*d = *e;
	}
	ring_finish(&w->ents);
	w->ents = r;
	w->head = 0;
	return tab_rebuild(w, w->tab_cap);
}

win_ent_t *win_add(win_t *w, const win_ent_t *e)
{
	win_ent_t *d;
	uint32_t s;

	if (!e->pid || win_find(w, e->pid))
		return NULL;
	/* Keep the table at most half full. */
	if ((w->live + 1) * 2 > w->tab_cap && !tab_rebuild(w, w->tab_cap ? w->tab_cap * 2 : 16))
		return NULL;
	d = ring_push(&w->ents, sizeof(win_ent_t));
	if (!d)
		return NULL;
	*d = *e;
	s = find_slot(w, e->pid);
	w->tab[s] = (uint32_t)(w->head + w->ents.len - 1) + 1;
	w->live++;
	return d;
}

void win_del(win_t *w, win_ent_t *e)
{
	uint32_t mask = w->tab_cap - 1, i, j;

	i = find_slot(w, e->pid);
	w->tab[i] = 0;
	/* Backward-shift deletion: move later members of the probe run into the hole (no tombstones). */
	for (j = (i + 1) & mask; w->tab[j]; j = (j + 1) & mask) {
		uint32_t home = slot_of(w, ENT(w, index_of(w, w->tab[j]))->pid);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			w->tab[i] = w->tab[j];
			w->tab[j] = 0;
			i = j;
		}
	}
	e->state = WIN_FREE;
	e->m = NULL;
	w->live--;
	while (w->ents.len && ENT(w, 0)->state == WIN_FREE) {
		ring_pop(&w->ents);
		w->head++;
	}
	/* An entry the client never acknowledges must not make the holes behind it pile up forever. */
	if (w->ents.len > 2 * w->live + 64)
		compact(w);
	if (!w->ents.len) {
		/* All acknowledged: a session at rest holds no window memory (last_pid stays: ids go on). */
		ring_finish(&w->ents);
		free(w->tab);
		w->tab = NULL;
		w->tab_cap = 0;
	}
}

win_ent_t *win_next(const win_t *w, uint32_t *i)
{
	while (*i < w->ents.len) {
		win_ent_t *e = ENT(w, (*i)++);

		if (e->state != WIN_FREE)
			return e;
	}
	return NULL;
}

void win_finish(win_t *w)
{
	ring_finish(&w->ents);
	free(w->tab);
	memset(w, 0, sizeof(*w));
}

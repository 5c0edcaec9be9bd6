/* addrlimit.c — connections and connection rate per source address (see addrlimit.h). */
#include "addrlimit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "loop.h"
#include "strmap.h"
#include "worker.h"

typedef struct entry {
	uint32_t open;             /* connections open now */
	uint32_t recent;           /* accepted in the current second */
	uint64_t second;           /* which second `recent` counts */
} entry_t;

static strmap_t map;           /* host -> entry_t* (while it has open connections or a rate window) */
static buf_t idle;             /* hosts whose last connection closed within their rate window (NUL-separated) */
static uint64_t last_sweep;

/* Forget the addresses that have nothing open and whose rate window is over; only those that went idle are
 * looked at, not the whole table. */
static void sweep(void)
{
	uint64_t sec = loop_now() / 1000;
	buf_t again = { 0 };

	if (sec == last_sweep || !idle.len)
		return;
	last_sweep = sec;
	for (uint32_t off = 0; off < idle.len;) {
		const char *host = (const char *)idle.data + off;
		size_t len = strlen(host);
		entry_t *e = strmap_get(&map, host, len);

		if (e && !e->open && e->second != sec)
			free(strmap_del(&map, host, len));
		else if (e && !e->open)
			(void)buf_append(&again, host, len + 1);
		off += (uint32_t)len + 1;
	}
	buf_finish(&idle);
	idle = again;
}

void addrlimit_init(void)
{
	strmap_init(&map);
	loop_on_tick(sweep);
}

void addrlimit_finish(void)
{
	strmap_entry_t *e;
	size_t pos = 0;

	while ((e = strmap_next(&map, &pos)))
		free(e->value);
	strmap_finish(&map);
	buf_finish(&idle);
}

size_t addrlimit_count(void)
{
	return map.count;
}

static bool enabled(void)
{
	return W->cfg->max_connections_per_address || W->cfg->max_connect_rate;
}

bool addrlimit_admit(const char *host)
{
	size_t len = strlen(host);
	uint64_t sec = loop_now() / 1000;
	entry_t *e;

	if (!enabled())
		return true;
	e = strmap_get(&map, host, len);
	if (!e) {
		e = calloc(1, sizeof(*e));
		/* No memory for the bookkeeping: let the connection in rather than refuse everyone. */
		if (!e || strmap_put(&map, host, len, e, NULL) < 0) {
			free(e);
			return true;
		}
	}
	if (e->second != sec) {
		e->second = sec;
		e->recent = 0;
	}
	if ((W->cfg->max_connections_per_address && e->open >= W->cfg->max_connections_per_address) ||
	    (W->cfg->max_connect_rate && e->recent >= W->cfg->max_connect_rate)) {
		W->st.rejected_address++;
		return false;
	}
	e->open++;
	e->recent++;
	return true;
}

void addrlimit_release(const char *host)
{
	size_t len = strlen(host);
	entry_t *e;

	if (!enabled() || !(e = strmap_get(&map, host, len)))
		return;
	if (e->open)
		e->open--;
	if (e->open)
		return;
	if (e->second != loop_now() / 1000)
		free(strmap_del(&map, host, len));
	else
		(void)buf_append(&idle, host, len + 1); /* its window still counts: forget it after the second */
}

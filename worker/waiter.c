/* waiter.c — dispatch of completed work to whoever waits for it (see waiter.h). */
#include "waiter.h"

#include <stddef.h>

static waiter_fn fns[WAITER_KINDS];

void waiter_register(enum waiter_kind kind, waiter_fn fn)
{
	if (kind > WAITER_NONE && kind < WAITER_KINDS)
		fns[kind] = fn;
}

void waiter_done(const waiter_t *w, bool ok)
{
	if (w && w->kind > WAITER_NONE && w->kind < WAITER_KINDS && fns[w->kind])
		fns[w->kind](w, ok);
}

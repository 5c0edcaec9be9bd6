/*
 * win.h — a session's outbound in-flight window: QoS 1/2 messages sent and not yet acknowledged, in send
 * order, indexed by packet identifier.
 *
 * Packet ids are allocated sequentially and never reused while in flight, also across reconnects and across
 * the 65535 wrap-around of a long offline queue: allocation skips ids still in the window. Lookup by id and
 * allocation are O(1) (an open-addressing table on the id, keyed by positions in the send-order ring), so a
 * window of tens of thousands of messages costs no more per message than one of ten. An acknowledged entry
 * becomes a hole that is popped when it reaches the head; holes left behind an entry the client never
 * acknowledges are compacted away when they outnumber the live entries. Worker thread only; pure memory.
 */
#ifndef RINGMQ_WORKER_WIN_H
#define RINGMQ_WORKER_WIN_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

struct msg;

enum win_state {
	WIN_FREE = 0,              /* a hole: acknowledged */
	WIN_PUBACK = 1,            /* QoS 1 sent, waiting PUBACK */
	WIN_PUBREC = 2,            /* QoS 2 sent, waiting PUBREC */
	WIN_PUBCOMP = 3,           /* PUBREL sent, waiting PUBCOMP (message released) */
};

typedef struct win_ent {
	struct msg *m;             /* one reference; NULL once in WIN_PUBCOMP */
	uint64_t qseq;             /* the session's message sequence number: its id in the store */
	uint32_t subid;
	uint16_t pid;
	uint8_t qos;
	uint8_t state;
	uint8_t retain;
	uint8_t unsent;            /* not yet written on the current connection (resend with DUP) */
} win_ent_t;

typedef struct win {
	ring_t ents;               /* win_ent_t in send order, holes included */
	uint64_t head;             /* absolute position of ents[0] */
	uint32_t live;             /* entries that are not holes */
	uint16_t last_pid;         /* last id handed out */
	uint32_t *tab;             /* open addressing: 0 empty, else (uint32_t)position + 1 */
	uint32_t tab_cap;          /* power of two */
} win_t;

/* A free packet id (1..65535) not in the window, or 0 when all 65535 are in flight. */
uint16_t win_next_pid(win_t *w);
/* Append an entry (its pid must not be in the window). Returns it, or NULL on allocation failure or a pid
 * already in flight. */
win_ent_t *win_add(win_t *w, const win_ent_t *e);
/* The live entry with packet id pid, or NULL. */
win_ent_t *win_find(const win_t *w, uint16_t pid);
/* Remove a live entry (acknowledged): the caller has released e->m. */
void win_del(win_t *w, win_ent_t *e);
/* Walk live entries in send order: start with *i = 0; NULL at the end. */
win_ent_t *win_next(const win_t *w, uint32_t *i);
static inline uint32_t win_count(const win_t *w) { return w->live; }
/* Drop every entry (the caller has released the messages) and free the memory. */
void win_finish(win_t *w);

#endif

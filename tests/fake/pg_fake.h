/*
 * pg_fake.h — pg.h answered from a table the test fills, for the authentication tests (tests/unit/worker/
 * test-auth.c) only: the real pg.c talks to PostgreSQL.
 *
 * pg_lookup() queues the request (it never answers from inside, as the real one); pg_fake_answer() answers every
 * queued lookup from the table: the first row equal to the lookup on every key the lookup gives (keys it does
 * not give are not compared). While the store is "down" every answer is -EAGAIN. pg_fake_change() plays a
 * NOTIFY: the row is dropped and the listener hears.
 */
#ifndef RINGMQ_TESTS_PG_FAKE_H
#define RINGMQ_TESTS_PG_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "pg.h"

/* Forget every row, queued lookup and listener; the store is up. */
void pg_fake_reset(void);
/* A row: keys may be NULL (never matched); hash NULL = certificate-only; acl referenced (may be NULL). */
void pg_fake_add(uint64_t id, const char *client_id, const char *username, const char *cert_cn, const char *hash,
	acl_t *acl);
void pg_fake_down(bool down);
/* Lookups waiting for an answer. */
size_t pg_fake_pending(void);
/* Answer every queued lookup. Returns how many were answered. */
size_t pg_fake_answer(void);
/* A NOTIFY for id: its row goes, the pg_on_change listener is called. */
void pg_fake_change(uint64_t id);
/* What pg_init was called with (NULL: not called since reset). */
const char *pg_fake_conninfo(void);

#endif

/* pg_fake.c — pg.h from a table, for unit tests (see pg_fake.h). */
#include "pg_fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 64
#define MAX_LOOKUPS 256

typedef struct row {
	uint64_t id;
	char *client_id, *username, *cert_cn, *hash;
	acl_t *acl;
} row_t;

typedef struct lookup {
	char *client_id, *username, *cert_cn;
	pg_cred_fn cb;
	void *ctx;
} lookup_t;

static struct {
	row_t rows[MAX_ROWS];
	size_t n_rows;
	lookup_t q[MAX_LOOKUPS];
	size_t n_q;
	bool down;
	void (*listener)(uint64_t);
	char *conninfo;
} G;

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void row_free(row_t *r)
{
	free(r->client_id);
	free(r->username);
	free(r->cert_cn);
	free(r->hash);
	acl_unref(r->acl);
	memset(r, 0, sizeof(*r));
}

static void lookup_free(lookup_t *l)
{
	free(l->client_id);
	free(l->username);
	free(l->cert_cn);
	memset(l, 0, sizeof(*l));
}

void pg_fake_reset(void)
{
	for (size_t i = 0; i < G.n_rows; i++)
		row_free(&G.rows[i]);
	for (size_t i = 0; i < G.n_q; i++)
		lookup_free(&G.q[i]);
	free(G.conninfo);
	memset(&G, 0, sizeof(G));
}

void pg_fake_add(uint64_t id, const char *client_id, const char *username, const char *cert_cn, const char *hash,
	acl_t *acl)
{
	row_t *r = &G.rows[G.n_rows++];

	r->id = id;
	r->client_id = dup_or_null(client_id);
	r->username = dup_or_null(username);
	r->cert_cn = dup_or_null(cert_cn);
	r->hash = dup_or_null(hash);
	r->acl = acl_ref(acl);
}

void pg_fake_down(bool down)
{
	G.down = down;
}

size_t pg_fake_pending(void)
{
	return G.n_q;
}

static bool key_ok(const char *want, const char *have)
{
	return !want || (have && strcmp(want, have) == 0);
}

size_t pg_fake_answer(void)
{
	size_t n = 0;

	/* Callbacks may queue new lookups: answer only those queued before. */
	for (size_t k = G.n_q; k > 0; k--) {
		lookup_t l = G.q[0];
		const row_t *hit = NULL;

		memmove(&G.q[0], &G.q[1], (G.n_q - 1) * sizeof(G.q[0]));
		G.n_q--;
		for (size_t i = 0; !G.down && i < G.n_rows; i++) {
			const row_t *r = &G.rows[i];

			if (key_ok(l.client_id, r->client_id) && key_ok(l.username, r->username) &&
				key_ok(l.cert_cn, r->cert_cn)) {
				hit = r;
				break;
			}
		}
		if (G.down) {
			l.cb(l.ctx, -EAGAIN, NULL);
		} else if (hit) {
			pg_cred_t c = { .id = hit->id, .password_hash = hit->hash, .acl = hit->acl };

			l.cb(l.ctx, 0, &c);
		} else {
			l.cb(l.ctx, 0, NULL);
		}
		lookup_free(&l);
		n++;
	}
	return n;
}

void pg_fake_change(uint64_t id)
{
	for (size_t i = 0; i < G.n_rows; i++) {
		if (G.rows[i].id == id) {
			row_free(&G.rows[i]);
			G.rows[i] = G.rows[--G.n_rows];
			break;
		}
	}
	if (G.listener)
		G.listener(id);
}

const char *pg_fake_conninfo(void)
{
	return G.conninfo;
}

/* --- pg.h ------------------------------------------------------------------------------------------------ */

int pg_init(const char *conninfo)
{
	free(G.conninfo);
	G.conninfo = strdup(conninfo);
	return 0;
}

void pg_finish(void)
{
	for (size_t i = 0; i < G.n_q; i++)
		lookup_free(&G.q[i]);
	G.n_q = 0;
	G.listener = NULL;
}

bool pg_ready(void)
{
	return !G.down;
}

int pg_lookup(const char *client_id, const char *username, const char *cert_cn, pg_cred_fn cb, void *ctx)
{
	lookup_t *l;

	if (G.n_q == MAX_LOOKUPS)
		return -ENOMEM;
	l = &G.q[G.n_q++];
	l->client_id = dup_or_null(client_id);
	l->username = dup_or_null(username);
	l->cert_cn = dup_or_null(cert_cn);
	l->cb = cb;
	l->ctx = ctx;
	return 0;
}

void pg_cancel(void *ctx)
{
	for (size_t i = 0; i < G.n_q;) {
		if (G.q[i].ctx == ctx) {
			lookup_free(&G.q[i]);
			memmove(&G.q[i], &G.q[i + 1], (G.n_q - i - 1) * sizeof(G.q[0]));
			G.n_q--;
		} else {
			i++;
		}
	}
}

void pg_on_change(void (*fn)(uint64_t id))
{
	G.listener = fn;
}

/*
 * auth.c — authentication at CONNECT: providers in order, password checks in the hash pool, per-address failure
 * limits, and the rules each client leaves with (see auth.h).
 *
 * One pending_t per started authentication, found by its ctx (auth_cancel) in a map keyed by the pointer. It
 * moves through the providers (step), waiting at most for one thing at a time: a PostgreSQL lookup
 * (W_PG: pg_cancel stops it) or a hash check (W_POOL: the pool owns it until done or drop). Every outcome,
 * including those known at once, goes on the ready list and is delivered by a flush hook that runs before the
 * connections' own, so done is never called from inside auth_start and the CONNACK leaves in the same turn.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "aclfile.h"
#include "authcache.h"
#include "hashpool.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "pg.h"
#include "pwfile.h"
#include "siphash.h"
#include "strmap.h"
#include "worker.h"

#define RL_SLOTS 4096             /* source addresses remembered for the failure limit */
#define RL_WINDOW_MS 60000        /* failures counted per minute; refused for a minute */
#define USER_MAX 255              /* auth_result_t.username holds this much: longer names are refused, never cut */

enum provider { P_FILE, P_PG, P_CERT, P_COUNT };
static const char *const provider_names[P_COUNT] = { "file", "pg", "cert" };

enum wait { W_NONE, W_PG, W_POOL, W_READY };

typedef struct pending {
	struct pending *next;     /* ready list */
	auth_done_fn done;
	void *ctx;
	bool cancelled;
	enum wait wait;
	unsigned step;            /* index into A.order of the provider to ask next */
	hashpool_job_t *job;
	/* the identity (copies; strings NUL-terminated) */
	char *client_id;
	size_t id_len;
	char *user;               /* effective user name: the CONNECT's, or the certificate CN (tls_identity = cn) */
	size_t user_len;
	bool user_from_cert;
	uint8_t *password;        /* NULL: none in the CONNECT */
	size_t pw_len;
	char *cert_cn;
	char addr[64];
	/* the check under way */
	char *hash;               /* copy of the stored hash being checked */
	bool dummy;               /* checking an unknown user against some hash: refused whatever the result */
	enum provider checking;   /* whose hash */
	acl_t *pg_acl;            /* the credential's rules, from the lookup */
	uint64_t pg_id;
	bool pg_found;
	bool stale;               /* the credential changed while being checked */
	unsigned relooks;         /* lookups started again because of that */
	int verify_rc;
	/* the outcome */
	auth_result_t res;
	const char *reason;       /* of a refusal, for the log */
} pending_t;

typedef struct rl_entry {
	char key[48];             /* the address without its port */
	uint32_t fails;
	uint64_t window_start, blocked_until;
	struct rl_entry *prev, *next; /* least recently failed first */
} rl_entry_t;

static struct {
	bool up;
	enum provider order[P_COUNT];
	unsigned n_order;
	bool active[P_COUNT];
	bool anon_allowed;
	bool cn_identity;         /* tls_identity = cn */
	char pg_match[16];
	pwfile_t *pw;
	aclfile_t *acls;
	void (*revoked)(uint64_t cred);
	strmap_t by_ctx;
	pending_t *ready, **ready_tail;
	/* failure limit */
	strmap_t rl_map;
	rl_entry_t *rl_slab;
	uint32_t rl_used;
	rl_entry_t *rl_lru, *rl_mru;
	/* throttled logging of busy answers */
	uint64_t busy_log_ms;
	uint32_t busy_suppressed;
} A;

static const siphash_key_t cred_key = { 0x72696e676d712d63u, 0x7265642d6e616d65u };

/* --- small helpers --------------------------------------------------------------------------------------- */

/* A credential id for clients known by name (password file, certificate): stable across reloads and workers,
 * with the top bit set so it cannot be a PostgreSQL id. The anonymous clients share one, from a name no user
 * can have (a user name cannot hold U+0000). */
static uint64_t name_cred(const char *name, size_t len)
{
	return siphash13(&cred_key, name, len) | (1ull << 63);
}

/* A bcrypt hash of cost 10 whose password nobody knows: an unknown PostgreSQL user is checked against it (and
 * refused whatever comes out) so that it takes as long as a known one. */
#define PG_DECOY_HASH "$2b$10$8z.LYO0dfpJ8uf8ackJXZ.inpNqh30KggrhimLpuEa0YcxWDgu79e"

#define ANON_NAME "\0anonymous"
#define ANON_CRED name_cred(ANON_NAME, sizeof(ANON_NAME) - 1)

/* Client-chosen text in a log line: at most 64 bytes, control characters and quotes replaced. */
static const char *printable(const char *s, size_t n, char *buf, size_t cap)
{
	size_t o = 0;

	if (!s)
		return "";
	for (size_t i = 0; i < n && o + 4 < cap; i++)
		buf[o++] = ((unsigned char)s[i] >= 0x20 && s[i] != 0x7f && s[i] != '\'') ? s[i] : '?';
	if (n > cap - 4 && o + 3 < cap) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static char *dupn(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* --- per-address failure limit --------------------------------------------------------------------------- */

/* "1.2.3.4:5678" -> "1.2.3.4", "[::1]:5678" -> "::1"; anything else as it is. */
static size_t addr_key(const char *addr, char *key, size_t cap)
{
	const char *start = addr, *end;
	size_t n;

	if (!addr)
		addr = start = "";
	if (addr[0] == '[' && (end = strchr(addr, ']'))) {
		start = addr + 1;
	} else {
		end = strchr(addr, ':');
		if (!end || strchr(end + 1, ':'))
			end = addr + strlen(addr);
	}
	n = (size_t)(end - start);
	if (n >= cap)
		n = cap - 1;
	memcpy(key, start, n);
	key[n] = '\0';
	return n;
}

static void lru_unlink(rl_entry_t *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		A.rl_lru = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		A.rl_mru = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(rl_entry_t *e)
{
	e->prev = A.rl_mru;
	e->next = NULL;
	if (A.rl_mru)
		A.rl_mru->next = e;
	else
		A.rl_lru = e;
	A.rl_mru = e;
}

static bool rate_limited(const char *addr)
{
	char key[48];
	size_t n = addr_key(addr, key, sizeof(key));
	rl_entry_t *e;

	if (!W->cfg->auth_fail_limit || !A.rl_slab)
		return false;
	e = strmap_get(&A.rl_map, key, n);
	return e && loop_now() < e->blocked_until;
}

static void count_failure(const char *addr)
{
	char key[48];
	size_t n = addr_key(addr, key, sizeof(key));
	uint64_t now = loop_now();
	rl_entry_t *e;

	if (!W->cfg->auth_fail_limit || !A.rl_slab)
		return;
	e = strmap_get(&A.rl_map, key, n);
	if (!e) {
		/* The table is bounded: the address that failed longest ago makes room. */
		if (A.rl_used < RL_SLOTS) {
			e = &A.rl_slab[A.rl_used++];
		} else {
			e = A.rl_lru;
			lru_unlink(e);
			strmap_del(&A.rl_map, e->key, strlen(e->key));
		}
		memset(e, 0, sizeof(*e));
		memcpy(e->key, key, n + 1);
		if (strmap_put(&A.rl_map, e->key, n, e, NULL) < 0) {
			/* Out of memory: the slot stays unused (never linked), the failure uncounted. */
			return;
		}
		e->window_start = now;
	} else {
		lru_unlink(e);
	}
	lru_push(e);
	if (now - e->window_start >= RL_WINDOW_MS) {
		e->window_start = now;
		e->fails = 0;
	}
	if (++e->fails >= W->cfg->auth_fail_limit && now >= e->blocked_until) {
		e->blocked_until = now + RL_WINDOW_MS;
		log_warn(0, "auth: %s refused for 60 s after %u failed authentications within a minute (auth_fail_limit)",
			key, e->fails);
	}
}

/* --- outcomes -------------------------------------------------------------------------------------------- */

static void deliver_ready(void);

static void pending_free(pending_t *p)
{
	if (p->password) {
		explicit_bzero(p->password, p->pw_len);
		free(p->password);
	}
	free(p->client_id);
	free(p->user);
	free(p->cert_cn);
	free(p->hash);
	acl_unref(p->pg_acl);
	acl_unref(p->res.acl);
	free(p);
}

/* "Server busy" and "unavailable" answers come in floods (a CONNECT storm, the database down): at most one line
 * a second, with the number left out. */
static void log_throttled(const char *addr, const char *why)
{
	uint64_t now = loop_now();

	if (A.busy_log_ms && now - A.busy_log_ms < 1000) {
		A.busy_suppressed++;
		return;
	}
	if (A.busy_suppressed)
		log_warn(0, "auth: %s refused: %s (and %u similar refusals in the last second)", addr, why,
			A.busy_suppressed);
	else
		log_warn(0, "auth: %s refused: %s", addr, why);
	A.busy_log_ms = now;
	A.busy_suppressed = 0;
}

/* The outcome is known: count, log, and queue it for delivery. */
static void finish(pending_t *p, int err, const char *reason)
{
	char cb[72], ub[72];

	p->res.err = err;
	p->reason = reason;
	if (err == 0) {
		W->st.auth_ok++;
	} else if (err == MQTT_E_BAD_AUTH || err == MQTT_E_NOT_AUTHORIZED) {
		W->st.auth_failed++;
		count_failure(p->addr);
	} else if (err == MQTT_E_UNAVAILABLE) {
		W->st.auth_unavailable++;
	} else {
		W->st.auth_busy++;
	}
	if (err == MQTT_E_BAD_AUTH || err == MQTT_E_NOT_AUTHORIZED)
		log_warn(0, "auth: %s client '%s' user '%s' refused: %s", p->addr,
			printable(p->client_id, p->id_len, cb, sizeof(cb)), printable(p->user, p->user_len, ub, sizeof(ub)),
			reason);
	else if (err)
		log_throttled(p->addr, reason);
	if (err) {
		acl_unref(p->res.acl);
		p->res.acl = NULL;
		p->res.cred = 0;
		p->res.username[0] = '\0';
	}
	p->wait = W_READY;
	p->next = NULL;
	*A.ready_tail = p;
	A.ready_tail = &p->next;
}


/* Accepted: username, rules and credential id. own is a reference handed over (may be NULL). */
static void grant(pending_t *p, const char *user, size_t len, acl_t *own, uint64_t cred)
{
	memcpy(p->res.username, user, len);
	p->res.username[len] = '\0';
	p->res.acl = own;
	p->res.cred = cred;
	finish(p, 0, NULL);
}

static acl_t *section_of(const char *user, size_t len)
{
	return A.acls ? acl_ref(aclfile_user(A.acls, user, len)) : NULL;
}

static void accept_anonymous(pending_t *p)
{
	grant(p, "", 0, A.acls ? acl_ref(aclfile_anonymous(A.acls)) : NULL, ANON_CRED);
}

static void deliver_ready(void)
{
	pending_t *p;

	while ((p = A.ready)) {
		A.ready = p->next;
		if (!A.ready)
			A.ready_tail = &A.ready;
		if (!p->cancelled) {
			void *key = p->ctx;

			strmap_del(&A.by_ctx, &key, sizeof(key));
			p->done(p->ctx, &p->res);
		}
		pending_free(p);
	}
}

/* --- providers ------------------------------------------------------------------------------------------- */

static void advance(pending_t *p);

/* What %u stands for with a PostgreSQL credential: a name the credential was found by (and so verified), never
 * an unverified CONNECT user name. */
static void accept_pg(pending_t *p)
{
	bool by_user = strcmp(A.pg_match, "username") == 0 || strcmp(A.pg_match, "both") == 0 ||
		(strcmp(A.pg_match, "cert_cn") == 0 && p->user_from_cert);

	if (by_user && p->user)
		grant(p, p->user, p->user_len, acl_ref(p->pg_acl), p->pg_id);
	else
		grant(p, "", 0, acl_ref(p->pg_acl), p->pg_id);
}

static int verify_work(void *arg)
{
	pending_t *p = arg;

	return pwfile_verify(p->hash, p->password ? p->password : (const uint8_t *)"", p->pw_len);
}

/* verify_done's rc when the check was answered from authcache.h */
#define AUTH_CACHED 1

static void verify_done(void *arg, int rc)
{
	pending_t *p = arg;
	const char *now;

	p->job = NULL;
	p->wait = W_NONE;
	if (p->dummy) {
		finish(p, MQTT_E_BAD_AUTH, p->user ? "unknown user" : "password without a user name");
		return;
	}
	if (rc == -ENOMEM) {
		finish(p, MQTT_E_BUSY, "out of memory checking the password");
		return;
	}
	if (rc == -EINVAL) {
		finish(p, MQTT_E_NOT_AUTHORIZED, "the stored password hash is in a format ringmq cannot check");
		return;
	}
	if (rc && rc != AUTH_CACHED) {
		finish(p, MQTT_E_BAD_AUTH, "wrong password");
		return;
	}
	if (p->checking == P_FILE) {
		/* The file may have been reloaded while the hash ran: the revocation went out before this client was
		 * connected, so it must be judged by the file as it is now. */
		now = A.pw ? pwfile_find(A.pw, p->user, p->user_len) : NULL;
		if (!now || strcmp(now, p->hash) != 0) {
			finish(p, MQTT_E_BAD_AUTH, "password changed during the check");
			return;
		}
		if (rc != AUTH_CACHED)
			authcache_put(name_cred(p->user, p->user_len), p->hash, p->password, p->pw_len);
		grant(p, p->user, p->user_len, section_of(p->user, p->user_len), name_cred(p->user, p->user_len));
		return;
	}
	if (p->stale) {
		/* The notification may be the one of the insert that made this very row, delivered after our lookup
		 * read it: look again rather than refuse a good client. A credential that keeps changing under the
		 * check is refused "unavailable" (the client retries). */
		if (p->relooks++ < 3) {
			p->stale = false;
			p->pg_found = false;
			advance(p);
			return;
		}
		finish(p, MQTT_E_UNAVAILABLE, "credential changed during the check");
		return;
	}
	if (rc != AUTH_CACHED)
		authcache_put(p->pg_id, p->hash, p->password, p->pw_len);
	accept_pg(p);
}

static void verify_drop(void *arg)
{
	pending_free(arg);
}

static const hashpool_ops_t verify_ops = { .work = verify_work, .done = verify_done, .drop = verify_drop };

/* Check p's password against hash in the pool. */
static void check_password(pending_t *p, const char *hash, enum provider who, bool dummy)
{
	int rc;

	free(p->hash);
	p->hash = strdup(hash);
	if (!p->hash) {
		finish(p, MQTT_E_BUSY, "out of memory");
		return;
	}
	p->checking = who;
	p->dummy = dummy;
	if (!dummy && authcache_hit(who == P_FILE ? name_cred(p->user, p->user_len) : p->pg_id, hash, p->password,
	    p->pw_len)) {
		/* This password verified for this credential and hash before: no second slow check. */
		W->st.auth_cache_hits++;
		verify_done(p, AUTH_CACHED);
		return;
	}
	rc = hashpool_submit(&verify_ops, p, &p->job);
	if (rc == 0) {
		p->wait = W_POOL;
		return;
	}
	finish(p, MQTT_E_BUSY, rc == -EBUSY ? "password checks queue full (auth_queue)" :
		"cannot queue the password check");
}

static void pg_done(void *ctx, int err, const pg_cred_t *cred)
{
	pending_t *p = ctx;
	bool cert_proof;

	p->wait = W_NONE;
	if (err == -EAGAIN) {
		finish(p, MQTT_E_UNAVAILABLE, "credential store unavailable");
		return;
	}
	if (err) {
		finish(p, MQTT_E_BUSY, "credential lookup failed");
		return;
	}
	if (!cred) {
		p->step++;
		advance(p);
		return;
	}
	p->pg_id = cred->id;
	p->pg_found = true;
	acl_unref(p->pg_acl);
	p->pg_acl = acl_ref(cred->acl);
	/* A verified certificate proves the name the credential was found by. */
	cert_proof = strcmp(A.pg_match, "cert_cn") == 0 || (strcmp(A.pg_match, "username") == 0 && p->user_from_cert);
	if (cert_proof) {
		accept_pg(p);
		return;
	}
	if (!cred->password_hash) {
		finish(p, MQTT_E_NOT_AUTHORIZED, "credential without a password (certificate only)");
		return;
	}
	if (!p->password) {
		finish(p, MQTT_E_BAD_AUTH, "no password");
		return;
	}
	check_password(p, cred->password_hash, P_PG, false);
}

/* Ask p->step's provider, and on until one knows the client or none is left. */
static void advance(pending_t *p)
{
	for (; p->step < A.n_order; p->step++) {
		switch (A.order[p->step]) {
		case P_FILE: {
			const char *h;

			/* a certificate's name is not checked against a password (tls_identity = cn) */
			if (!p->user || p->user_from_cert || !A.pw)
				continue;
			h = pwfile_find(A.pw, p->user, p->user_len);
			if (!h)
				continue;
			if (!p->password) {
				finish(p, MQTT_E_BAD_AUTH, "no password");
				return;
			}
			check_password(p, h, P_FILE, false);
			return;
		}
		case P_PG: {
			const char *cid = NULL, *user = NULL, *cn = NULL;
			int rc;

			if (strcmp(A.pg_match, "cert_cn") == 0)
				cn = p->cert_cn;
			else if (strcmp(A.pg_match, "client_id") == 0)
				cid = p->client_id;
			else if (strcmp(A.pg_match, "both") == 0)
				cid = p->client_id, user = p->user;
			else
				user = p->user;
			if (!cid && !user && !cn)
				continue;
			if ((strcmp(A.pg_match, "both") == 0) && !user)
				continue;
			rc = pg_lookup(cid, user, cn, pg_done, p);
			if (rc < 0) {
				finish(p, MQTT_E_BUSY, "cannot start the credential lookup");
				return;
			}
			p->wait = W_PG;
			return;
		}
		case P_CERT:
			if (!p->user_from_cert)
				continue;
			grant(p, p->user, p->user_len, section_of(p->user, p->user_len), name_cred(p->user, p->user_len));
			return;
		case P_COUNT:
			break;
		}
	}
	/* Nobody knows the client. */
	if (p->cert_cn && A.active[P_PG] && strcmp(A.pg_match, "cert_cn") == 0) {
		finish(p, MQTT_E_NOT_AUTHORIZED, "certificate without a credential");
		return;
	}
	if (p->user || p->password) {
		const char *some_user, *some_hash;
		size_t ulen;

		/* Refuse an unknown user only after as long as a known one would take: check its password against
		 * some user's hash, and refuse whatever comes out (the failure limit applies as for any failure). */
		if (p->password && pwfile_get(A.pw, 0, &some_user, &ulen, &some_hash)) {
			check_password(p, some_hash, P_FILE, true);
			return;
		}
		if (p->password && A.active[P_PG]) {
			/* PostgreSQL rows carry bcrypt hashes of cost 10 (ringmqctl cred): one of those, of a password
			 * nobody has, takes as long. */
			check_password(p, PG_DECOY_HASH, P_PG, true);
			return;
		}
		finish(p, MQTT_E_BAD_AUTH, p->user ? "unknown user" : "password without a user name");
		return;
	}
	if (A.anon_allowed)
		accept_anonymous(p);
	else
		finish(p, MQTT_E_NOT_AUTHORIZED, "anonymous clients not allowed (allow_anonymous)");
}

/* --- revocation ------------------------------------------------------------------------------------------ */

static void announce_revoked(uint64_t cred)
{
	if (cred == PG_CHANGED_ALL)
		authcache_clear();
	else
		authcache_forget(cred);
	if (A.revoked)
		A.revoked(cred);
}

bool auth_cred_revoked(uint64_t revoked, uint64_t cred)
{
	if (!cred)
		return false;
	/* PostgreSQL ids are the rows' (positive bigints); names' ids have the top bit set (name_cred). */
	return cred == revoked || (revoked == PG_CHANGED_ALL && !(cred >> 63));
}

static void on_pg_change(uint64_t id)
{
	size_t pos = 0;
	strmap_entry_t *e;

	/* A check under way for that credential would connect a client the revocation has already missed. */
	while ((e = strmap_next(&A.by_ctx, &pos))) {
		pending_t *p = e->value;

		if (p->pg_found && (p->pg_id == id || id == PG_CHANGED_ALL))
			p->stale = true;
	}
	announce_revoked(id);
}

/* --- set-up ---------------------------------------------------------------------------------------------- */

static int parse_order(const char *s)
{
	A.n_order = 0;
	for (const char *p = s; *p;) {
		size_t n = strcspn(p, ",");
		const char *w = p;
		size_t wn = n;
		int k;

		while (wn && (*w == ' ' || *w == '\t'))
			w++, wn--;
		while (wn && (w[wn - 1] == ' ' || w[wn - 1] == '\t'))
			wn--;
		for (k = 0; k < P_COUNT; k++) {
			if (strlen(provider_names[k]) == wn && memcmp(w, provider_names[k], wn) == 0)
				break;
		}
		if (k == P_COUNT || wn == 0) {
			log_error(0, "config: auth_order: '%.*s' is not a provider (use file, pg and cert, comma-separated)",
				(int)wn, w);
			return -EINVAL;
		}
		for (unsigned i = 0; i < A.n_order; i++) {
			if (A.order[i] == (enum provider)k) {
				log_error(0, "config: auth_order: '%s' is named twice", provider_names[k]);
				return -EINVAL;
			}
		}
		A.order[A.n_order++] = (enum provider)k;
		p += n + (p[n] == ',');
	}
	return 0;
}

static bool in_order(enum provider k)
{
	for (unsigned i = 0; i < A.n_order; i++) {
		if (A.order[i] == k)
			return true;
	}
	return false;
}

static int load_files(pwfile_t **pw, aclfile_t **acls)
{
	const config_t *c = W->cfg;
	char err[512];
	int rc;

	*pw = NULL;
	*acls = NULL;
	if (c->password_file[0]) {
		rc = pwfile_load(c->password_file, pw, err, sizeof(err));
		if (rc < 0) {
			log_error(0, "password_file: %s", err);
			return rc;
		}
	}
	if (c->acl_file[0]) {
		rc = aclfile_load(c->acl_file, acls, err, sizeof(err));
		if (rc < 0) {
			log_error(0, "acl_file: %s", err);
			pwfile_free(*pw);
			*pw = NULL;
			return rc;
		}
	}
	return 0;
}

int auth_init(void)
{
	const config_t *c = W->cfg;
	unsigned keep = 0;
	int rc;

	if (A.up)
		return 0;
	memset(&A, 0, sizeof(A));
	A.ready_tail = &A.ready;
	rc = parse_order(c->auth_order);
	if (rc < 0)
		return rc;
	A.cn_identity = strcmp(c->tls_identity, "cn") == 0;
	A.active[P_FILE] = c->password_file[0] != '\0';
	A.active[P_PG] = c->pg_conninfo[0] != '\0';
	A.active[P_CERT] = A.cn_identity && strcmp(c->tls_client_auth, "none") != 0;
	snprintf(A.pg_match, sizeof(A.pg_match), "%s", c->pg_match);
	if (A.active[P_FILE] && !in_order(P_FILE)) {
		log_error(0, "config: password_file is set but auth_order '%s' does not name file: add it", c->auth_order);
		return -EINVAL;
	}
	if (A.active[P_PG] && !in_order(P_PG)) {
		log_error(0, "config: pg_conninfo is set but auth_order '%s' does not name pg: add it", c->auth_order);
		return -EINVAL;
	}
	/* With pg_match = cert_cn, pg may be the one that takes certificates: "cert" may stay out of the order. */
	if (A.active[P_CERT] && !in_order(P_CERT) && !(A.active[P_PG] && strcmp(c->pg_match, "cert_cn") == 0)) {
		log_error(0, "config: tls_identity = cn with client certificates, but auth_order '%s' does not name cert: "
			"add it", c->auth_order);
		return -EINVAL;
	}
	if (A.active[P_PG] && strcmp(c->pg_match, "cert_cn") == 0 && strcmp(c->tls_client_auth, "none") == 0) {
		log_error(0, "config: pg_match = cert_cn needs client certificates: set tls_client_auth to optional or "
			"required");
		return -EINVAL;
	}
	/* Only the configured providers take part, in the configured order. */
	for (unsigned i = 0; i < A.n_order; i++) {
		if (A.active[A.order[i]])
			A.order[keep++] = A.order[i];
	}
	A.n_order = keep;
	if (strcmp(c->allow_anonymous, "true") == 0)
		A.anon_allowed = true;
	else if (strcmp(c->allow_anonymous, "auto") == 0)
		A.anon_allowed = !A.active[P_FILE] && !A.active[P_PG] && !A.active[P_CERT]; /* any provider: refused */
	rc = load_files(&A.pw, &A.acls);
	if (rc < 0)
		goto err;
	strmap_init(&A.by_ctx);
	strmap_init(&A.rl_map);
	if (c->auth_fail_limit) {
		A.rl_slab = calloc(RL_SLOTS, sizeof(*A.rl_slab));
		if (!A.rl_slab) {
			rc = -ENOMEM;
			log_error(ENOMEM, "auth: cannot allocate the failure-limit table");
			goto err_maps;
		}
	}
	/* Only password checks need threads: a configuration without passwords starts none. */
	if (A.active[P_FILE] || A.active[P_PG]) {
		rc = authcache_init(c->auth_cache_size);
		if (rc < 0) {
			log_error(-rc, "auth: cannot set up the password check cache");
			goto err_maps;
		}
		rc = hashpool_init(c->auth_threads, c->auth_queue);
		if (rc < 0)
			goto err_maps;
	}
	if (A.active[P_PG]) {
		rc = pg_init(c->pg_conninfo);
		if (rc < 0)
			goto err_pool;
		pg_on_change(on_pg_change);
	}
	loop_on_flush(deliver_ready, LOOP_ORDER_CONN - 5);
	A.up = true;
	if (A.n_order || !A.anon_allowed || A.acls) {
		char names[32] = "";

		for (unsigned i = 0; i < A.n_order; i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? "," : "",
				provider_names[A.order[i]]);
		log_info("auth: providers %s, anonymous clients %s%s", A.n_order ? names : "none",
			A.anon_allowed ? "allowed" : "refused", A.acls ? ", acl_file loaded" : "");
	}
	return 0;

err_pool:
	hashpool_finish();
err_maps:
	authcache_finish();
	free(A.rl_slab);
	strmap_finish(&A.rl_map);
	strmap_finish(&A.by_ctx);
err:
	pwfile_free(A.pw);
	aclfile_free(A.acls);
	memset(&A, 0, sizeof(A));
	return rc;
}

void auth_finish(void)
{
	strmap_entry_t *e;
	size_t pos;

	if (!A.up)
		return;
	/* Outstanding authentications end without their callbacks (the connections are gone by now). */
	for (pos = 0; (e = strmap_next(&A.by_ctx, &pos)); pos = 0) {
		pending_t *p = e->value;
		void *key = p->ctx;

		strmap_del(&A.by_ctx, &key, sizeof(key));
		p->cancelled = true;
		if (p->wait == W_PG) {
			pg_cancel(p);
			pending_free(p);
		}
		/* W_POOL: hashpool_finish drops it; W_READY: freed with the ready list */
	}
	hashpool_finish();
	if (A.active[P_PG])
		pg_finish();
	deliver_ready();
	authcache_finish();
	strmap_finish(&A.by_ctx);
	strmap_finish(&A.rl_map);
	free(A.rl_slab);
	pwfile_free(A.pw);
	aclfile_free(A.acls);
	memset(&A, 0, sizeof(A));
}

bool auth_enabled(void)
{
	return A.up && (A.n_order > 0 || !A.anon_allowed || A.acls != NULL);
}

const struct acl *auth_default_acl(void)
{
	return A.acls ? aclfile_patterns(A.acls) : NULL;
}

void auth_on_revoked(void (*fn)(uint64_t cred))
{
	A.revoked = fn;
}

int auth_start(const auth_identity_t *id, auth_done_fn done, void *ctx)
{
	pending_t *p;
	void *key = ctx;

	if (!A.up)
		return MQTT_E_UNAVAILABLE;
	if (rate_limited(id->addr)) {
		W->st.auth_rate_limited++;
		log_throttled(id->addr ? id->addr : "?", "too many failed authentications (auth_fail_limit)");
		return MQTT_E_BUSY;
	}
	auth_cancel(ctx);
	p = calloc(1, sizeof(*p));
	if (!p)
		return MQTT_E_NOMEM;
	p->done = done;
	p->ctx = ctx;
	snprintf(p->addr, sizeof(p->addr), "%s", id->addr ? id->addr : "?");
	p->id_len = id->client_id_len;
	p->client_id = dupn(id->client_id ? (const char *)id->client_id : "", id->client_id_len);
	if (A.cn_identity && id->cert_cn) {
		p->user_from_cert = true;
		p->user_len = strlen(id->cert_cn);
		p->user = dupn(id->cert_cn, p->user_len);
	} else if (id->username) {
		p->user_len = id->username_len;
		p->user = dupn(id->username, id->username_len);
	}
	if (id->password) {
		p->pw_len = id->password_len;
		p->password = (uint8_t *)dupn(id->password, id->password_len);
	}
	if (id->cert_cn)
		p->cert_cn = strdup(id->cert_cn);
	if (!p->client_id || (id->username && !p->user) || (p->user_from_cert && !p->user) ||
		(id->password && !p->password) || (id->cert_cn && !p->cert_cn) ||
		strmap_put(&A.by_ctx, &key, sizeof(key), p, NULL) < 0) {
		pending_free(p);
		return MQTT_E_NOMEM;
	}
	if (A.n_order == 0) {
		/* No provider can check a user name or password: they pick nobody's rules (anyone could claim
		 * them), and the client is anonymous. */
		free(p->user);
		p->user = NULL;
		p->user_len = 0;
		if (p->password)
			explicit_bzero(p->password, p->pw_len);
		free(p->password);
		p->password = NULL;
	}
	if (p->user && (p->user_len > USER_MAX || memchr(p->user, '\0', p->user_len))) {
		finish(p, MQTT_E_BAD_AUTH, "user name longer than 255 bytes (or holding a NUL)");
		return 0;
	}
	advance(p);
	return 0;
}

void auth_cancel(void *ctx)
{
	void *key = ctx;
	pending_t *p = strmap_del(&A.by_ctx, &key, sizeof(key));

	if (!p)
		return;
	p->cancelled = true;
	switch (p->wait) {
	case W_PG:
		pg_cancel(p);
		pending_free(p);
		break;
	case W_POOL:
		hashpool_cancel(p->job);
		break;
	case W_READY:
	case W_NONE:
		break;
	}
}

void auth_reload(void)
{
	pwfile_t *pw = NULL;
	aclfile_t *acls = NULL;
	const config_t *c = W->cfg;
	char err[512];

	if (!A.up)
		return;
	if (c->password_file[0]) {
		if (pwfile_load(c->password_file, &pw, err, sizeof(err)) < 0) {
			log_error(0, "password_file: %s; keeping the %zu users loaded before", err, pwfile_count(A.pw));
		} else {
			const char *u, *h;
			size_t ulen;

			/* A user whose hash changed or who is gone is disconnected; new users have nobody to disconnect. */
			for (size_t i = 0; pwfile_get(A.pw, i, &u, &ulen, &h); i++) {
				const char *now = pwfile_find(pw, u, ulen);

				if (!now || strcmp(now, h) != 0)
					announce_revoked(name_cred(u, ulen));
			}
			log_info("password_file: %zu users (was %zu)", pwfile_count(pw), pwfile_count(A.pw));
			pwfile_free(A.pw);
			A.pw = pw;
		}
	}
	if (c->acl_file[0]) {
		if (aclfile_load(c->acl_file, &acls, err, sizeof(err)) < 0) {
			log_error(0, "acl_file: %s; keeping the rules loaded before", err);
		} else {
			const char *u;
			size_t ulen;

			/* Clients keep the rules they connected with: those whose rules changed reconnect to get the new
			 * ones (the patterns are read at each check and apply at once). */
			for (int k = 0; A.acls && k < 2; k++) {
				const aclfile_t *walk = k ? acls : A.acls;

				/* each changed user once: from the old file, then the users only the new one has */
				for (size_t i = 0; (u = aclfile_user_at(walk, i, &ulen)); i++) {
					if (aclfile_digest(A.acls, u, ulen) != aclfile_digest(acls, u, ulen) &&
						(k == 0 || !aclfile_user(A.acls, u, ulen)))
						announce_revoked(name_cred(u, ulen));
				}
			}
			if (A.acls && aclfile_digest(A.acls, NULL, 0) != aclfile_digest(acls, NULL, 0))
				announce_revoked(ANON_CRED);
			log_info("acl_file: reloaded");
			aclfile_free(A.acls);
			A.acls = acls;
		}
	}
}

/*
 * acl.c — topic rules with %c / %u substitution (see acl.h).
 *
 * A rule set is a flat array scanned in order: rule sets are small (a credential's handful of rules, a
 * configuration's patterns), and a scan of a few rules costs less than any index would. Deny rules are looked
 * at first, in both sets, so their order in a file does not matter (mosquitto handles "deny" first too).
 */
#include "acl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

/* Expansions up to this long are built on the stack; longer ones (rare: long IDs in long patterns) on the heap. */
#define STACK_EXPAND 512

typedef struct rule {
	unsigned access;
	bool subst;               /* holds %c or %u */
	uint32_t len;
	char *pattern;            /* NUL-terminated copy */
} rule_t;

struct acl {
	uint32_t refs;
	uint32_t n, cap;
	rule_t *v;
};

/* The client's identity, and whether each part may be substituted into a rule. */
typedef struct ident {
	const char *id, *user;
	size_t id_len, user_len;
} ident_t;

acl_t *acl_create(void)
{
	acl_t *a = calloc(1, sizeof(*a));

	if (a)
		a->refs = 1;
	return a;
}

acl_t *acl_ref(acl_t *a)
{
	if (a)
		a->refs++;
	return a;
}

void acl_unref(acl_t *a)
{
	if (!a || --a->refs)
		return;
	for (uint32_t i = 0; i < a->n; i++)
		free(a->v[i].pattern);
	free(a->v);
	free(a);
}

size_t acl_count(const acl_t *a)
{
	return a ? a->n : 0;
}

static bool is_placeholder(const char *p, const char *end)
{
	return p + 1 < end && p[0] == '%' && (p[1] == 'c' || p[1] == 'u');
}

/* Could this identity stand in a rule without changing its shape? Not when it adds levels or wildcards, when
 * it is empty (a "%u/#" for a client without a user name would become "/#"), or when, at the very start of
 * the rule, it would turn the rule into one about '$'-topics. */
static bool safe(const char *s, size_t n, bool at_start)
{
	if (!n || !s)
		return false;
	if (at_start && s[0] == '$')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '/' || s[i] == '+' || s[i] == '#' || s[i] == '\0')
			return false;
	}
	return true;
}

/*
 * The rule with the identity substituted, into buf (cap bytes) or a heap block (*heap, the caller frees).
 * For an allowing rule, an identity that is not safe makes the rule match nothing: NULL with *none set. For
 * a deny rule, every level holding such an identity becomes '+'. NULL without *none: out of memory.
 */
static const char *expand(const rule_t *r, const ident_t *who, bool deny, char *buf, size_t cap, char **heap,
	size_t *len, bool *none)
{
	const char *p = r->pattern, *end = r->pattern + r->len;
	size_t need = 0;
	char *out;

	*heap = NULL;
	*none = false;
	if (!r->subst) {
		*len = r->len;
		return r->pattern;
	}
	/* First pass: can every placeholder be filled, and how long is the result? */
	for (const char *q = p; q < end;) {
		if (is_placeholder(q, end)) {
			bool c = q[1] == 'c';
			const char *s = c ? who->id : who->user;
			size_t n = c ? who->id_len : who->user_len;

			if (!safe(s, n, q == p)) {
				if (!deny) {
					*none = true;
					return NULL;
				}
				n = 1;
			}
			need += n;
			q += 2;
		} else {
			need++;
			q++;
		}
	}
	out = buf;
	if (need + 1 > cap) {
		out = *heap = malloc(need + 1);
		if (!out)
			return NULL;
	}
	/* Second pass, one level at a time: a deny level with an unsafe identity in it is '+' as a whole. */
	*len = 0;
	for (const char *lv = p; lv <= end;) {
		const char *slash = memchr(lv, '/', (size_t)(end - lv));
		const char *le = slash ? slash : end;
		bool wild = false;
		size_t start = *len;

		for (const char *q = lv; q < le;) {
			if (is_placeholder(q, end)) {
				bool c = q[1] == 'c';
				const char *s = c ? who->id : who->user;
				size_t n = c ? who->id_len : who->user_len;

				if (!safe(s, n, q == p)) {
					wild = true;
					break;
				}
				memcpy(out + *len, s, n);
				*len += n;
				q += 2;
			} else {
				out[(*len)++] = *q++;
			}
		}
		if (wild) {
			*len = start;
			out[(*len)++] = '+';
		}
		if (!slash)
			break;
		out[(*len)++] = '/';
		lv = slash + 1;
	}
	out[*len] = '\0';
	return out;
}

int acl_add(acl_t *a, unsigned access, const char *pattern, size_t len)
{
	static const ident_t harmless = { .id = "x", .id_len = 1, .user = "x", .user_len = 1 };
	rule_t r = { .access = access, .len = (uint32_t)len };
	char buf[STACK_EXPAND], *heap;
	const char *e;
	size_t elen;
	bool none, ok;

	if (!(access & (ACL_PUB | ACL_SUB)) || (access & ~(unsigned)(ACL_PUB | ACL_SUB | ACL_DENY)) || !len ||
		len > UINT16_MAX || memchr(pattern, '\0', len))
		return -EINVAL;
	for (size_t i = 0; i + 1 < len; i++)
		r.subst |= is_placeholder(pattern + i, pattern + len);
	r.pattern = malloc(len + 1);
	if (!r.pattern)
		return -ENOMEM;
	memcpy(r.pattern, pattern, len);
	r.pattern[len] = '\0';
	e = expand(&r, &harmless, false, buf, sizeof(buf), &heap, &elen, &none);
	ok = e && mqtt_topic_filter_valid((const uint8_t *)e, elen);
	free(heap);
	if (!ok) {
		free(r.pattern);
		return e || none ? -EINVAL : -ENOMEM;
	}
	if (a->n == a->cap) {
		uint32_t cap = a->cap ? a->cap * 2 : 4;
		rule_t *v = realloc(a->v, cap * sizeof(*v));

		if (!v) {
			free(r.pattern);
			return -ENOMEM;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = r;
	return 0;
}

/* --- filters against filters ------------------------------------------------------------------------------ */

typedef struct level_iter {
	const char *p, *end;
	bool done;
} level_iter_t;

static level_iter_t levels(const char *s, size_t n)
{
	return (level_iter_t){ .p = s, .end = s + n, .done = false };
}

static bool next_level(level_iter_t *it, const char **s, size_t *n)
{
	const char *slash;

	if (it->done)
		return false;
	slash = memchr(it->p, '/', (size_t)(it->end - it->p));
	*s = it->p;
	if (slash) {
		*n = (size_t)(slash - it->p);
		it->p = slash + 1;
	} else {
		*n = (size_t)(it->end - it->p);
		it->done = true;
	}
	return true;
}

static bool is_hash(const char *s, size_t n)
{
	return n == 1 && s[0] == '#';
}

static bool is_plus(const char *s, size_t n)
{
	return n == 1 && s[0] == '+';
}

static bool is_dollar(const char *s, size_t n)
{
	return n && s[0] == '$';
}

/* Is every topic that filter f matches also matched by rule r? (Both valid filters.) */
static bool within(const char *f, size_t flen, const char *r, size_t rlen)
{
	level_iter_t fi = levels(f, flen), ri = levels(r, rlen);
	bool first = true;

	for (;;) {
		const char *fs = NULL, *rs = NULL;
		size_t fn = 0, rn = 0;
		bool hf = next_level(&fi, &fs, &fn), hr = next_level(&ri, &rs, &rn);

		if (!hf && !hr)
			return true;
		/* "a/#" also matches "a": a filter ending where the rule's '#' starts is within it. */
		if (hr && is_hash(rs, rn))
			return !(first && hf && is_dollar(fs, fn));
		if (!hf || !hr || is_hash(fs, fn))
			return false;
		if (is_plus(rs, rn)) {
			if (first && is_dollar(fs, fn))
				return false;
		} else if (is_plus(fs, fn) || fn != rn || memcmp(fs, rs, fn) != 0) {
			return false;
		}
		first = false;
	}
}

/* Is there a topic both filters match? */
static bool overlap(const char *a, size_t alen, const char *b, size_t blen)
{
	level_iter_t ai = levels(a, alen), bi = levels(b, blen);
	bool first = true;

	for (;;) {
		const char *as = NULL, *bs = NULL;
		size_t an = 0, bn = 0;
		bool ha = next_level(&ai, &as, &an), hb = next_level(&bi, &bs, &bn);

		if (!ha && !hb)
			return true;
		if (ha && is_hash(as, an))
			return !(first && hb && is_dollar(bs, bn));
		if (hb && is_hash(bs, bn))
			return !(first && ha && is_dollar(as, an));
		if (!ha || !hb)
			return false;
		if (is_plus(as, an) || is_plus(bs, bn)) {
			if (first && (is_dollar(as, an) || is_dollar(bs, bn)))
				return false;
		} else if (an != bn || memcmp(as, bs, an) != 0) {
			return false;
		}
		first = false;
	}
}

/* --- checks ----------------------------------------------------------------------------------------------- */

enum what { PUB, SUB };

/* Does rule r (substituted for who) cover the subject? -1: out of memory. */
static int covers(const rule_t *r, const ident_t *who, enum what what, const char *s, size_t n)
{
	char buf[STACK_EXPAND], *heap;
	size_t elen;
	bool none, deny = r->access & ACL_DENY;
	const char *e = expand(r, who, deny, buf, sizeof(buf), &heap, &elen, &none);
	bool hit;

	if (!e)
		return none ? 0 : -1;
	if (what == PUB)
		hit = mqtt_topic_match((const uint8_t *)e, elen, (const uint8_t *)s, n);
	else if (deny)
		hit = overlap(s, n, e, elen);
	else
		hit = within(s, n, e, elen);
	free(heap);
	return hit;
}

/* 1 allowed, 0 refused. Out of memory refuses: a deny rule we could not read may be the one that applies. */
static bool decide(const acl_t *own, const acl_t *defaults, const ident_t *who, enum what what, const char *s,
	size_t n)
{
	const acl_t *sets[2] = { own, defaults };
	unsigned bit = what == PUB ? ACL_PUB : ACL_SUB;

	for (int deny = 1; deny >= 0; deny--) {
		for (int k = 0; k < 2; k++) {
			const acl_t *a = sets[k];

			for (uint32_t i = 0; a && i < a->n; i++) {
				const rule_t *r = &a->v[i];
				int hit;

				if (!(r->access & bit) || !!(r->access & ACL_DENY) != deny)
					continue;
				hit = covers(r, who, what, s, n);
				if (hit < 0)
					return false;
				if (hit)
					return !deny;
			}
		}
	}
	return false;
}

bool acl_can_publish(const acl_t *own, const acl_t *defaults, const char *client_id, size_t id_len,
	const char *user, size_t user_len, const char *topic, size_t len)
{
	ident_t who = { .id = client_id, .id_len = id_len, .user = user, .user_len = user_len };

	if (!len || topic[0] == '$' || memchr(topic, '+', len) || memchr(topic, '#', len))
		return false;
	if (!own && !defaults)
		return true;
	return decide(own, defaults, &who, PUB, topic, len);
}

bool acl_can_subscribe(const acl_t *own, const acl_t *defaults, const char *client_id, size_t id_len,
	const char *user, size_t user_len, const char *filter, size_t len)
{
	ident_t who = { .id = client_id, .id_len = id_len, .user = user, .user_len = user_len };
	mqtt_str_t f = { .p = (const uint8_t *)filter, .len = (uint32_t)len }, group, inner;
	int shared;

	if (len > UINT32_MAX)
		return false;
	shared = mqtt_share_parse(f, &group, &inner);
	if (shared < 0)
		return false;
	if (shared)
		f = inner;
	if (!mqtt_topic_filter_valid(f.p, f.len))
		return false;
	if (!own && !defaults)
		return true;
	return decide(own, defaults, &who, SUB, (const char *)f.p, f.len);
}

/* aclfile.c — mosquitto acl_file syntax into rule sets (see aclfile.h). */
#include "aclfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "siphash.h"

#define FILE_MAX (64u << 20)

typedef struct section {
	char *name;               /* NULL: the anonymous section */
	size_t len;
	acl_t *acl;
	uint64_t digest;
} section_t;

struct aclfile {
	section_t anon;
	acl_t *patterns;
	section_t *users;         /* sorted by name once parsed */
	size_t n_users, cap_users;
};

/* Digests only compare two loads in one process: a fixed key is enough (nothing here is chosen to collide
 * by clients; a collision would only miss a disconnect on reload, and the operator writes the file). */
static const siphash_key_t digest_key = { 0x72696e676d71u, 0x61636c66696c65u };

static int __attribute__((format(printf, 3, 4))) fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int section_cmp(const void *a, const void *b)
{
	const section_t *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The section of name, created at the end of the list if new (the list is sorted only after parsing). */
static section_t *user_section(aclfile_t *af, const char *name, size_t len)
{
	section_t *s;

	for (size_t i = 0; i < af->n_users; i++) {
		if (af->users[i].len == len && memcmp(af->users[i].name, name, len) == 0)
			return &af->users[i];
	}
	if (af->n_users == af->cap_users) {
		size_t cap = af->cap_users ? af->cap_users * 2 : 8;
		section_t *v = realloc(af->users, cap * sizeof(*v));

		if (!v)
			return NULL;
		af->users = v;
		af->cap_users = cap;
	}
	s = &af->users[af->n_users];
	memset(s, 0, sizeof(*s));
	s->name = malloc(len + 1);
	s->acl = acl_create();
	if (!s->name || !s->acl) {
		free(s->name);
		acl_unref(s->acl);
		return NULL;
	}
	memcpy(s->name, name, len);
	s->name[len] = '\0';
	s->len = len;
	af->n_users++;
	return s;
}

/* Fold one rule into a section's digest (order-sensitive: the same rules in another order are a change, which
 * costs at most a needless reconnect). */
static void digest_add(section_t *s, unsigned access, const char *f, size_t n)
{
	uint64_t h[2] = { s->digest, access };

	s->digest = siphash13(&digest_key, h, sizeof(h)) ^ siphash13(&digest_key, f, n);
	if (!s->digest)
		s->digest = 1;
}

static bool word(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(s, w, n) == 0;
}

static size_t span_ws(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

static size_t span_word(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] != ' ' && s[i] != '\t')
		i++;
	return i;
}

static bool has_placeholder(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] == '%' && (s[i + 1] == 'c' || s[i + 1] == 'u'))
			return true;
	}
	return false;
}

/* The access an access word grants, or 0 when the word is not one (then it starts the filter). */
static unsigned access_word(const char *s, size_t n)
{
	if (word(s, n, "read"))
		return ACL_SUB;
	if (word(s, n, "write"))
		return ACL_PUB;
	if (word(s, n, "readwrite"))
		return ACL_PUB | ACL_SUB;
	if (word(s, n, "deny"))
		return ACL_DENY | ACL_PUB | ACL_SUB;
	return 0;
}

/* One line (without its end, trailing blanks removed). */
static int parse_line(aclfile_t *af, section_t **cur, const char *s, size_t n, const char *name, unsigned line,
	char *err, size_t errlen)
{
	size_t k = span_word(s, n), i;
	const char *rest;
	size_t rn;
	unsigned access = ACL_PUB | ACL_SUB, a;
	int rc;

	i = k + span_ws(s + k, n - k);
	rest = s + i;
	rn = n - i;
	if (word(s, k, "user")) {
		if (!rn)
			return fail(err, errlen, "%s:%u: 'user' without a name", name, line);
		*cur = user_section(af, rest, rn);
		if (!*cur) {
			snprintf(err, errlen, "%s: out of memory", name);
			return -ENOMEM;
		}
		return 0;
	}
	if (!word(s, k, "topic") && !word(s, k, "pattern"))
		return fail(err, errlen, "%s:%u: unknown keyword '%.*s' (expected topic, pattern or user)", name, line,
			(int)(k > 32 ? 32 : k), s);
	if (!rn)
		return fail(err, errlen, "%s:%u: '%.*s' without a topic filter", name, line, (int)k, s);
	k = span_word(rest, rn);
	a = access_word(rest, k);
	if (a) {
		const char *w = rest;

		access = a;
		i = k + span_ws(rest + k, rn - k);
		rest += i;
		rn -= i;
		if (!rn)
			return fail(err, errlen, "%s:%u: no topic filter after '%.*s'", name, line, (int)k, w);
	}
	if (s[0] == 't' && has_placeholder(rest, rn))
		return fail(err, errlen, "%s:%u: %%c and %%u are substituted in 'pattern' lines only", name, line);
	{
		section_t *sec = s[0] == 'p' ? NULL : *cur;
		acl_t *into = s[0] == 'p' ? af->patterns : sec->acl;

		rc = acl_add(into, access, rest, rn);
		if (rc == -ENOMEM) {
			snprintf(err, errlen, "%s: out of memory", name);
			return rc;
		}
		if (rc < 0)
			return fail(err, errlen, "%s:%u: '%.*s' is not a valid topic filter", name, line,
				(int)(rn > 200 ? 200 : rn), rest);
		if (sec)
			digest_add(sec, access, rest, rn);
	}
	return 0;
}

int aclfile_parse(const char *text, size_t len, const char *name, aclfile_t **out, char *err, size_t errlen)
{
	aclfile_t *af = calloc(1, sizeof(*af));
	section_t *cur;
	size_t pos = 0;
	unsigned line = 0;
	int rc;

	*out = NULL;
	if (!af || !(af->anon.acl = acl_create()) || !(af->patterns = acl_create())) {
		aclfile_free(af);
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	cur = &af->anon;
	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos, lead;

		pos += n + 1;
		line++;
		if (memchr(s, '\0', n)) {
			rc = fail(err, errlen, "%s:%u: NUL byte in the line", name, line);
			goto err;
		}
		while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		lead = span_ws(s, n);
		s += lead;
		n -= lead;
		if (!n || s[0] == '#')
			continue;
		/* cur points into the users array; only a "user" line grows it, and that line sets cur anew */
		rc = parse_line(af, &cur, s, n, name, line, err, errlen);
		if (rc < 0)
			goto err;
	}
	if (af->n_users)
		qsort(af->users, af->n_users, sizeof(*af->users), section_cmp);
	*out = af;
	return 0;
err:
	aclfile_free(af);
	return rc;
}

int aclfile_load(const char *path, aclfile_t **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > FILE_MAX) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file of at most %u MiB", path, FILE_MAX >> 20);
		return -EINVAL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "%s: cannot read: %s", path, n < 0 ? strerror(-rc) : "file shrank");
			close(fd);
			free(buf);
			return rc;
		}
		got += (size_t)n;
	}
	close(fd);
	rc = aclfile_parse(buf, got, path, out, err, errlen);
	free(buf);
	return rc;
}

void aclfile_free(aclfile_t *af)
{
	if (!af)
		return;
	for (size_t i = 0; i < af->n_users; i++) {
		free(af->users[i].name);
		acl_unref(af->users[i].acl);
	}
	free(af->users);
	acl_unref(af->anon.acl);
	acl_unref(af->patterns);
	free(af);
}

acl_t *aclfile_anonymous(const aclfile_t *af)
{
	return af->anon.acl;
}

acl_t *aclfile_patterns(const aclfile_t *af)
{
	return af->patterns;
}

static const section_t *find(const aclfile_t *af, const void *user, size_t len)
{
	section_t key = { .name = (char *)user, .len = len };

	if (!af->n_users)
		return NULL;
	return bsearch(&key, af->users, af->n_users, sizeof(*af->users), section_cmp);
}

acl_t *aclfile_user(const aclfile_t *af, const void *user, size_t len)
{
	const section_t *s = find(af, user, len);

	return s ? s->acl : NULL;
}

const char *aclfile_user_at(const aclfile_t *af, size_t i, size_t *len)
{
	if (i >= af->n_users)
		return NULL;
	*len = af->users[i].len;
	return af->users[i].name;
}

uint64_t aclfile_digest(const aclfile_t *af, const void *user, size_t len)
{
	const section_t *s = user ? find(af, user, len) : &af->anon;

	/* An empty section digests as no section: either way the user has the patterns only. */
	return s ? s->digest : 0;
}

/* pwfile.c — mosquitto_passwd password files and password hashes (see pwfile.h). */
#include "pwfile.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define SHA512_LEN 64
#define SALT_LEN 12               /* what mosquitto_passwd writes; any length is read */
#define SALT_MAX 64
#define FILE_MAX (64u << 20)      /* a password file larger than this is a mistake, not a user list */

typedef struct entry {
	const char *user;         /* NUL-terminated, inside pwfile_t.text */
	size_t ulen;
	const char *hash;
	unsigned line;
} entry_t;

struct pwfile {
	char *text;               /* a copy of the file with NULs written over ':' and line ends */
	size_t text_len;
	entry_t *v;
	size_t n;
};

/* --- base64 (RFC 4648, standard alphabet, '=' padding: what OpenSSL writes for mosquitto) ------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode len characters at s into out (cap bytes). Returns the byte count or -1 (bad character, missing or
 * bad padding, too long). */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	size_t n = 0, bits = 0, pad = 0;

	while (len && s[len - 1] == '=' && pad < 2) {
		len--;
		pad++;
	}
	/* Padded as OpenSSL writes it, always: crypt(3)'s SHA-crypt "$6$salt$hash" (86 characters of another
	 * alphabet, unpadded) must be refused at load, not decode by chance into a hash that never matches. */
	if ((len + pad) % 4)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64_val(s[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* Leftover bits must be zero, or two spellings would decode to the same bytes. */
	if (acc & ((1u << bits) - 1))
		return -1;
	return (int)n;
}

/* Encode n bytes with padding; out must hold 4 * ((n + 2) / 3) + 1. */
static size_t b64_encode(const uint8_t *p, size_t n, char *out)
{
	size_t o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

/* --- hash formats -------------------------------------------------------------------------------------- */

enum kind { H_BAD, H_SHA512, H_PBKDF2, H_BCRYPT };

typedef struct parsed {
	enum kind kind;
	unsigned iterations;
	uint8_t salt[SALT_MAX];
	int salt_len;
	uint8_t hash[SHA512_LEN];
} parsed_t;

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

/* bcrypt: "$2b$" + two-digit cost + "$" + 53 characters of its own base64 alphabet. */
static bool bcrypt_ok(const char *h)
{
	int cost;

	if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') ||
		h[3] != '$' || !all_digits(h + 4, 2) || h[6] != '$')
		return false;
	cost = (h[4] - '0') * 10 + (h[5] - '0');
	if (cost < 4 || cost > PWFILE_MAX_BCRYPT_COST)
		return false;
	for (const char *p = h + 7; *p; p++) {
		if (!(*p == '.' || *p == '/' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9')))
			return false;
	}
	return true;
}

static enum kind parse_hash(const char *h, parsed_t *out)
{
	const char *salt, *hash, *end;

	memset(out, 0, sizeof(*out));
	if (h[0] != '$')
		return H_BAD;
	if (h[1] == '2')
		return bcrypt_ok(h) ? (out->kind = H_BCRYPT) : H_BAD;
	if ((h[1] != '6' && h[1] != '7') || h[2] != '$')
		return H_BAD;
	salt = h + 3;
	if (h[1] == '7') {
		const char *d = strchr(salt, '$');
		unsigned long it;

		/* At most 7 digits: PWFILE_MAX_ITERATIONS fits, and strtoul cannot overflow. */
		if (!d || d - salt > 7 || !all_digits(salt, (size_t)(d - salt)))
			return H_BAD;
		it = strtoul(salt, NULL, 10);
		if (it < 1 || it > PWFILE_MAX_ITERATIONS)
			return H_BAD;
		out->iterations = (unsigned)it;
		salt = d + 1;
	}
	hash = strchr(salt, '$');
	if (!hash)
		return H_BAD;
	end = hash + 1 + strlen(hash + 1);
	out->salt_len = b64_decode(salt, (size_t)(hash - salt), out->salt, sizeof(out->salt));
	if (out->salt_len < 1)
		return H_BAD;
	if (b64_decode(hash + 1, (size_t)(end - hash - 1), out->hash, sizeof(out->hash)) != SHA512_LEN)
		return H_BAD;
	out->kind = h[1] == '7' ? H_PBKDF2 : H_SHA512;
	return out->kind;
}

bool pwfile_hash_valid(const char *hash)
{
	parsed_t p;

	return hash && parse_hash(hash, &p) != H_BAD;
}

static int verify_bcrypt(const char *hash, const void *password, size_t len)
{
	struct crypt_data *cd;
	char *pw;
	const char *r;
	int rc = -EACCES;

	/* bcrypt takes a C string: a password with a NUL byte cannot be the one that was hashed (and must not
	 * match the prefix before it). */
	if (memchr(password, '\0', len))
		return -EACCES;
	cd = calloc(1, sizeof(*cd));
	pw = malloc(len + 1);
	if (!cd || !pw) {
		free(cd);
		free(pw);
		return -ENOMEM;
	}
	memcpy(pw, password, len);
	pw[len] = '\0';
	/* crypt_rn, not crypt_r: same function, but the sanitizers' crypt_r interceptor does not find libxcrypt's
	 * versioned symbol and calls NULL (GCC 12), and crypt_rn returns NULL on failure instead of "*0". */
	r = crypt_rn(pw, hash, cd, (int)sizeof(*cd));
	if (!r || r[0] == '*')
		rc = -EINVAL;
	else if (strlen(r) == strlen(hash) && CRYPTO_memcmp(r, hash, strlen(hash)) == 0)
		rc = 0;
	OPENSSL_cleanse(pw, len);
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(pw);
	free(cd);
	return rc;
}

int pwfile_verify(const char *hash, const void *password, size_t len)
{
	uint8_t got[SHA512_LEN];
	parsed_t p;
	int rc = -EINVAL;

	if (!hash)
		return -EINVAL;
	if (len && !password)
		return -EACCES;
	switch (parse_hash(hash, &p)) {
	case H_BAD:
		return -EINVAL;
	case H_BCRYPT:
		return verify_bcrypt(hash, password ? password : "", len);
	case H_PBKDF2:
		if (!PKCS5_PBKDF2_HMAC(password ? password : "", (int)len, p.salt, p.salt_len, (int)p.iterations,
			    EVP_sha512(), SHA512_LEN, got))
			return -ENOMEM;
		break;
	case H_SHA512: {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();

		if (!ctx)
			return -ENOMEM;
		if (EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) && EVP_DigestUpdate(ctx, password, len) &&
			EVP_DigestUpdate(ctx, p.salt, (size_t)p.salt_len) && EVP_DigestFinal_ex(ctx, got, NULL))
			rc = 0;
		EVP_MD_CTX_free(ctx);
		if (rc)
			return -ENOMEM;
		break;
	}
	}
	rc = CRYPTO_memcmp(got, p.hash, SHA512_LEN) == 0 ? 0 : -EACCES;
	OPENSSL_cleanse(got, sizeof(got));
	return rc;
}

int pwfile_hash(const char *user, const void *password, size_t len, unsigned iterations, char *out,
	size_t outlen)
{
	uint8_t salt[SALT_LEN], dk[SHA512_LEN];
	char salt64[4 * ((SALT_LEN + 2) / 3) + 1], dk64[4 * ((SHA512_LEN + 2) / 3) + 1];
	int n;

	if (!iterations)
		iterations = PWFILE_ITERATIONS;
	if (!user || !user[0] || strpbrk(user, ":\r\n") || iterations > PWFILE_MAX_ITERATIONS || len > INT32_MAX)
		return -EINVAL;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -EIO;
	if (!PKCS5_PBKDF2_HMAC(password ? password : "", (int)len, salt, sizeof(salt), (int)iterations, EVP_sha512(),
		    sizeof(dk), dk))
		return -EIO;
	b64_encode(salt, sizeof(salt), salt64);
	b64_encode(dk, sizeof(dk), dk64);
	OPENSSL_cleanse(dk, sizeof(dk));
	n = snprintf(out, outlen, "%s:$7$%u$%s$%s", user, iterations, salt64, dk64);
	if (n < 0 || (size_t)n >= outlen)
		return -ENOSPC;
	return n;
}

/* --- the file ------------------------------------------------------------------------------------------ */

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

static int entry_cmp(const void *a, const void *b)
{
	const entry_t *x = a, *y = b;
	size_t n = x->ulen < y->ulen ? x->ulen : y->ulen;
	int c = memcmp(x->user, y->user, n);

	return c ? c : (x->ulen > y->ulen) - (x->ulen < y->ulen);
}

/* Names in error lines are user input: print at most 64 bytes, and nothing that would break the line. */
static const char *printable(const char *s, char *buf, size_t cap)
{
	size_t o = 0;

	for (; *s && o + 1 < cap; s++)
		buf[o++] = (*s >= 0x20 && *s != 0x7f) ? *s : '?';
	buf[o] = '\0';
	return buf;
}

int pwfile_parse(const char *text, size_t len, const char *name, pwfile_t **out, char *err, size_t errlen)
{
	pwfile_t *pf;
	size_t cap = 0, pos = 0;
	unsigned line = 0;
	char pb[65];
	int rc;

	*out = NULL;
	pf = calloc(1, sizeof(*pf));
	if (!pf || !(pf->text = malloc(len + 1))) {
		free(pf);
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	memcpy(pf->text, text, len);
	pf->text[len] = '\0';
	pf->text_len = len;
	while (pos < len) {
		char *s = pf->text + pos, *nl = memchr(s, '\n', len - pos), *colon, *e;
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		pos += n + 1;
		line++;
		s[n] = '\0';
		if (memchr(s, '\0', n)) {
			rc = fail(err, errlen, "%s:%u: NUL byte in the line", name, line);
			goto err;
		}
		for (e = s + n; e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'); e--)
			e[-1] = '\0';
		if (s[0] == '#' || s[strspn(s, " \t")] == '\0')
			continue;
		colon = strchr(s, ':');
		if (!colon || colon == s) {
			rc = fail(err, errlen, "%s:%u: not a \"user:hash\" line", name, line);
			goto err;
		}
		*colon = '\0';
		if (!pwfile_hash_valid(colon + 1)) {
			rc = fail(err, errlen,
				"%s:%u: user '%s': not a password hash ringmq can check (mosquitto_passwd $6$ or $7$, bcrypt "
				"$2b$; plain-text passwords are not accepted; at most %u iterations / bcrypt cost %d)",
				name, line, printable(s, pb, sizeof(pb)), PWFILE_MAX_ITERATIONS, PWFILE_MAX_BCRYPT_COST);
			goto err;
		}
		if (pf->n == cap) {
			entry_t *v = realloc(pf->v, (cap ? cap * 2 : 16) * sizeof(*v));

			if (!v) {
				snprintf(err, errlen, "%s: out of memory", name);
				rc = -ENOMEM;
				goto err;
			}
			pf->v = v;
			cap = cap ? cap * 2 : 16;
		}
		pf->v[pf->n++] = (entry_t){ .user = s, .ulen = (size_t)(colon - s), .hash = colon + 1, .line = line };
	}
	if (pf->n)
		qsort(pf->v, pf->n, sizeof(*pf->v), entry_cmp);
	for (size_t i = 1; i < pf->n; i++) {
		if (entry_cmp(&pf->v[i - 1], &pf->v[i]) == 0) {
			const entry_t *a = &pf->v[i - 1], *b = &pf->v[i];

			rc = fail(err, errlen, "%s:%u: user '%s' is already on line %u", name,
				a->line > b->line ? a->line : b->line, printable(a->user, pb, sizeof(pb)),
				a->line < b->line ? a->line : b->line);
			goto err;
		}
	}
	*out = pf;
	return 0;

err:
	pwfile_free(pf);
	return rc;
}

int pwfile_load(const char *path, pwfile_t **out, char *err, size_t errlen)
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
	rc = pwfile_parse(buf, got, path, out, err, errlen);
	/* The text holds hashes: do not leave a copy in freed memory. */
	OPENSSL_cleanse(buf, got);
	free(buf);
	return rc;
}

void pwfile_free(pwfile_t *pf)
{
	if (!pf)
		return;
	free(pf->v);
	if (pf->text)
		OPENSSL_cleanse(pf->text, pf->text_len);
	free(pf->text);
	free(pf);
}

size_t pwfile_count(const pwfile_t *pf)
{
	return pf ? pf->n : 0;
}

const char *pwfile_find(const pwfile_t *pf, const void *user, size_t len)
{
	entry_t key = { .user = user, .ulen = len };
	const entry_t *e;

	if (!pf || !pf->n)
		return NULL;
	e = bsearch(&key, pf->v, pf->n, sizeof(*pf->v), entry_cmp);
	return e ? e->hash : NULL;
}

bool pwfile_get(const pwfile_t *pf, size_t i, const char **user, size_t *ulen, const char **hash)
{
	if (!pf || i >= pf->n)
		return false;
	*user = pf->v[i].user;
	*ulen = pf->v[i].ulen;
	*hash = pf->v[i].hash;
	return true;
}

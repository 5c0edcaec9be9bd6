/*
 * bench_addr.c — ringmq-bench's broker address list (see bench_addr.h).
 */
#include "bench_addr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "slot.h"

/* One "H:P" item of len bytes at s (not NUL-terminated). */
static int
parse_item(baddr_t *a, const char *s, size_t len, char *err, size_t errlen)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = memchr(s, ':', len);
	size_t hlen;
	uint32_t port = 0;

	if (len == 0) {
		snprintf(err, errlen, "empty address in the list");
		return -EINVAL;
	}
	if (colon == NULL) {
		snprintf(err, errlen, "'%.*s': no port (H:P)", (int)len, s);
		return -EINVAL;
	}
	hlen = (size_t)(colon - s);
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(err, errlen, "'%.*s': not an IPv4 address", (int)len, s);
		return -EINVAL;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(&a->sa, 0, sizeof(a->sa));
	if (inet_pton(AF_INET, host, &a->sa.sin_addr) != 1) {
		snprintf(err, errlen, "'%.*s': not an IPv4 address", (int)len, s);
		return -EINVAL;
	}
	/* Digits only, no sign or spaces strtoul would let through; the bound check stops before overflow. */
	if (colon + 1 == s + len) {
		snprintf(err, errlen, "'%.*s': no port (H:P)", (int)len, s);
		return -EINVAL;
	}
	for (const char *p = colon + 1; p < s + len; p++) {
		if (*p < '0' || *p > '9' || (port = port * 10 + (uint32_t)(*p - '0')) > 65535) {
			snprintf(err, errlen, "'%.*s': port is not in 1..65535", (int)len, s);
			return -EINVAL;
		}
	}
	if (port == 0) {
		snprintf(err, errlen, "'%.*s': port is not in 1..65535", (int)len, s);
		return -EINVAL;
	}
	a->sa.sin_family = AF_INET;
	a->sa.sin_port = htons((uint16_t)port);
	inet_ntop(AF_INET, &a->sa.sin_addr, a->host, sizeof(a->host));
	return 0;
}

int
baddr_parse(baddr_list_t *l, const char *s, char *err, size_t errlen)
{
	const char *p = s;

	l->n = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		int r;

		if (l->n == BADDR_MAX) {
			snprintf(err, errlen, "more than %u addresses", BADDR_MAX);
			return -EINVAL;
		}
		r = parse_item(&l->a[l->n], p, len, err, errlen);
		if (r < 0)
			return r;
		l->n++;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

void
baddr_single(baddr_list_t *l, const struct sockaddr_in *sa)
{
	l->n = 1;
	l->a[0].sa = *sa;
	inet_ntop(AF_INET, &sa->sin_addr, l->a[0].host, sizeof(l->a[0].host));
}

uint32_t
baddr_pub_index(uint32_t pair, uint32_t n)
{
	return pair % n;
}

uint32_t
baddr_sub_index(uint32_t pair, uint32_t offset, uint32_t n)
{
	/* In 64 bits: pair + offset may pass UINT32_MAX, and a wrapped sum would break the mod-n placement. */
	return (uint32_t)(((uint64_t)pair + offset) % n);
}

uint32_t
baddr_next(uint32_t idx, uint32_t n)
{
	return (idx + 1) % n;
}

int
baddr_placed_id(char *id, size_t size, const char *prefix, uint32_t i, int workers, int shift)
{
	char sub[96];
	int n = snprintf(sub, sizeof(sub), "%s-s%u", prefix, i);
	int owner = (slot_owner(slot_of(sub, (size_t)n), workers) + shift) % workers;

	/* Each j lands on a given worker with probability 1/workers: the loop ends after ~workers tries. */
	for (uint32_t j = 0;; j++) {
		n = snprintf(id, size, "%s-p%u-k%u", prefix, i, j);
		if (slot_owner(slot_of(id, (size_t)n), workers) == owner)
			return n;
	}
}

int64_t
baddr_backoff_ns(uint32_t *rng)
{
	uint32_t x = *rng ? *rng : 0x9e3779b9u;

	/* xorshift32: jitter only needs to spread clients apart, not to be unpredictable. */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*rng = x;
	return BADDR_BACKOFF_MIN + (int64_t)(x % (uint32_t)(BADDR_BACKOFF_MAX - BADDR_BACKOFF_MIN));
}

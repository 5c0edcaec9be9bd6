/*
 * bench_addr.h — ringmq-bench's broker address list (--brokers) and which address each client uses.
 *
 * Pure: parsing and arithmetic, no I/O, no allocation, so the unit test covers it whole. The list is parsed
 * once by the main thread into a caller-owned baddr_list_t and read by the engine threads afterwards.
 *
 * Placement: pair i's publisher starts on address i mod n and its subscriber on (i + offset) mod n, so with
 * offset 1 (the default when n > 1) every message crosses from one node of a cluster to another, and with
 * offset 0 both ends of a pair share a node. A client whose connection is lost moves on to the next address
 * (index + 1 mod n) after a jittered backoff: a dead node's clients spread over the survivors in list order
 * instead of retrying in step against the same one.
 */
#ifndef RINGMQ_BENCH_ADDR_H
#define RINGMQ_BENCH_ADDR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define BADDR_MAX 32                     /* addresses in one list: more is a typo, not a cluster */
#define BADDR_BACKOFF_MIN INT64_C(100000000) /* a lost client waits [MIN, MAX) ns before the next address */
#define BADDR_BACKOFF_MAX INT64_C(500000000)

typedef struct baddr {
	struct sockaddr_in sa;
	char host[INET_ADDRSTRLEN];      /* the IPv4 literal: TLS server name, report */
} baddr_t;

typedef struct baddr_list {
	baddr_t a[BADDR_MAX];
	uint32_t n;
} baddr_list_t;

/*
 * Parse "H:P[,H:P...]": H an IPv4 literal, P in 1..65535, at most BADDR_MAX items, no empty item. Returns 0
 * with *l filled, or -EINVAL after writing one line to err (errlen bytes) naming the bad item; *l is then
 * unspecified. Any thread.
 */
int baddr_parse(baddr_list_t *l, const char *s, char *err, size_t errlen);
/* A one-address list from an address the caller resolved (--host/--port). */
void baddr_single(baddr_list_t *l, const struct sockaddr_in *sa);

/* First address index of pair i's publisher: i mod n (n >= 1). */
uint32_t baddr_pub_index(uint32_t pair, uint32_t n);
/* First address index of pair i's subscriber: (i + offset) mod n (n >= 1). */
uint32_t baddr_sub_index(uint32_t pair, uint32_t offset, uint32_t n);
/* The address a client tries after losing its connection on idx: (idx + 1) mod n (n >= 1). */
uint32_t baddr_next(uint32_t idx, uint32_t n);
/* A backoff in [BADDR_BACKOFF_MIN, BADDR_BACKOFF_MAX) ns, advancing the caller's generator state *rng (any
 * non-zero seed; zero is replaced). One state per thread: no locking. */
int64_t baddr_backoff_ns(uint32_t *rng);
/*
 * --colocate / --crosswise: pair i's publisher id on ringmqd worker (owner + shift) mod workers, where owner is
 * the worker (slot ranges of common/slot.h) of its subscriber "<prefix>-s<i>": "<prefix>-p<i>-k<j>" with the
 * smallest such j. Shift 0: no message crosses workers; 1: every message does. Writes the id NUL-terminated
 * to id (size bytes, enough for the prefix and three numbers) and returns its length.
 *
 * Why: the default ids "<prefix>-p<i>" and "-s<i>" differ in one byte at a fixed distance from the end, and
 * CRC16 is linear, so their slots differ by a constant per digit count: at 2 workers every pair with a 4-digit
 * index crosses (90 % of 9,800 pairs), at 4 or more every pair, where independent ids would cross with
 * probability 1 - 1/workers. These two options pin the proportion instead (docs/benchmarks.md).
 */
int baddr_placed_id(char *id, size_t size, const char *prefix, uint32_t i, int workers, int shift);

#endif

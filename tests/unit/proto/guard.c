/*
 * guard.c — see guard.h. The mapping is made once per process and kept: tests call this thousands of times.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard.h"

#define GUARD_DATA (64 * 1024)

static uint8_t *in_region, *out_region;
static size_t data_len;

static uint8_t *
map_guarded(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *r;

	data_len = (GUARD_DATA + page - 1) / page * page;
	r = mmap(NULL, data_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED || mprotect(r + data_len, page, PROT_NONE) != 0)
		abort();
	return r;
}

const uint8_t *
guard_copy(const void *data, size_t len)
{
	if (in_region == NULL)
		in_region = map_guarded();
	if (len > data_len)
		abort();
	if (len > 0)
		memcpy(in_region + data_len - len, data, len);
	return in_region + data_len - len;
}

uint8_t *
guard_out(size_t len)
{
	if (out_region == NULL)
		out_region = map_guarded();
	if (len > data_len)
		abort();
	memset(out_region, 0xA5, data_len);
	return out_region + data_len - len;
}

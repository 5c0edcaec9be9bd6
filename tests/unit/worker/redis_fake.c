/* redis_fake.c — answering the store's FCALLs in unit tests (see redis_fake.h). */
#include "redis_fake.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_io.h"

bool rf_is_restore(void)
{
	size_t len;
	const char *fn = fake_rds_argv(1, &len);

	return fn && strcmp(fn, "ringmq_restore") == 0;
}

size_t rf_ops(char *ops, size_t cap)
{
	size_t n = fake_rds_ops(ops, cap);

	ck_assert_msg(n != SIZE_MAX, "unknown store op");
	return n;
}

void rf_answer_load(const char *load, size_t load_len)
{
	fake_rds_answer_ok(load, load_len);
}

void rf_answer_ok(const char *load)
{
	fake_rds_answer_ok(load, load ? strlen(load) : 0);
}

void rf_answer_all(void)
{
	for (int round = 0; round < 100 && fake_rds_pending(); round++) {
		while (fake_rds_pending())
			rf_answer_ok(NULL);
		fake_turn();
	}
}

void rf_answer_error(const char *msg)
{
	char resp[256];
	int n = snprintf(resp, sizeof(resp), "-%s\r\n", msg);

	fake_rds_answer(resp, (size_t)n, 0);
}

void rf_start_len(config_t *cfg, int id, int n, const char *restore, size_t len)
{
	snprintf(cfg->store, sizeof(cfg->store), "redis");
	fake_init(cfg, id, n);
	fake_turn();
	ck_assert_uint_gt(fake_rds_pending(), 0);
	/* A few buckets are asked at a time: each answer lets the next one go at the next turn. */
	while (fake_rds_pending()) {
		ck_assert(rf_is_restore());
		if (restore) {
			fake_rds_answer(restore, len, 0);
			restore = NULL;
		} else {
			fake_rds_answer("*0\r\n", 4, 0);
		}
		fake_turn();
	}
}

void rf_start(config_t *cfg, int id, int n, const char *restore)
{
	rf_start_len(cfg, id, n, restore, restore ? strlen(restore) : 0);
}

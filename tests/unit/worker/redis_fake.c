/* redis_fake.c — answering the store's FCALLs in unit tests (see redis_fake.h). */
#include "redis_fake.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_io.h"

/* Arguments per operation (letter, client ID, then its own). */
static int op_args(char op)
{
	switch (op) {
	case 'X': case 'L': return 2;
	case 'O': case 'V': case 'D': case 'I': case 'J': case 'Q': return 3;
	case 'M': case 'U': case 'P': return 4;
	case 'A': return 5;
	default: return -1;
	}
}

bool rf_is_restore(void)
{
	size_t len;
	const char *fn = fake_rds_argv(1, &len);

	return fn && strcmp(fn, "ringmq_restore") == 0;
}

size_t rf_ops(char *ops, size_t cap)
{
	size_t argc = fake_rds_argc(), n = 0, len;

	/* FCALL ringmq_batch 1 key op... */
	for (size_t i = 4; i < argc && n + 1 < cap;) {
		const char *a = fake_rds_argv(i, &len);
		int k = op_args(a[0]);

		ck_assert_msg(len == 1 && k > 0, "unknown store op '%.*s'", (int)len, a);
		ops[n++] = a[0];
		i += (size_t)k;
	}
	ops[n] = '\0';
	return n;
}

void rf_answer_load(const char *load, size_t load_len)
{
	static const char empty[] = "*4\r\n*0\r\n*0\r\n*0\r\n*0\r\n";
	char ops[4096], *resp;
	size_t n, cap = 64, len = 0;

	if (rf_is_restore()) {
		fake_rds_answer("*0\r\n", 4, 0);
		return;
	}
	if (!load) {
		load = empty;
		load_len = sizeof(empty) - 1;
	}
	n = rf_ops(ops, sizeof(ops));
	for (size_t i = 0; i < n; i++)
		cap += ops[i] == 'L' ? load_len : 8;
	resp = malloc(cap);
	len += (size_t)snprintf(resp + len, cap - len, "*%zu\r\n", n);
	for (size_t i = 0; i < n; i++) {
		if (ops[i] == 'L') {
			memcpy(resp + len, load, load_len);
			len += load_len;
		} else {
			len += (size_t)snprintf(resp + len, cap - len, ":0\r\n");
		}
	}
	fake_rds_answer(resp, len, 0);
	free(resp);
}

void rf_answer_ok(const char *load)
{
	rf_answer_load(load, load ? strlen(load) : 0);
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

void rf_start(config_t *cfg, int id, int n, const char *restore)
{
	snprintf(cfg->store, sizeof(cfg->store), "redis");
	fake_init(cfg, id, n);
	fake_turn();
	ck_assert_uint_gt(fake_rds_pending(), 0);
	while (fake_rds_pending()) {
		ck_assert(rf_is_restore());
		if (restore) {
			fake_rds_answer(restore, strlen(restore), 0);
			restore = NULL;
		} else {
			fake_rds_answer("*0\r\n", 4, 0);
		}
	}
	fake_turn();
}

/*
 * redis_fake.h — answering the store's FCALLs in unit tests (on fake_io's Redis queue): a well-formed
 * result per operation of a ringmq_batch call, an empty restore, or whatever RESP text a test wants.
 */
#ifndef RINGMQ_TESTS_REDIS_FAKE_H
#define RINGMQ_TESTS_REDIS_FAKE_H

#include <stdbool.h>
#include <stddef.h>

/* Operations in the oldest pending FCALL ringmq_batch, their letters in ops (NUL-terminated). */
size_t rf_ops(char *ops, size_t cap);
/* Is the oldest pending command a restore (ringmq_restore)? */
bool rf_is_restore(void);
/* Answer the oldest command as Redis would: restore -> empty; batch -> 0 per write, `load` (RESP of one
 * 'L' result, NULL: an empty session) per load. */
void rf_answer_ok(const char *load);
/* The same with a binary load result of len bytes. */
void rf_answer_load(const char *load, size_t load_len);
/* Answer every pending command ok (and those they cause), up to `max` rounds. */
void rf_answer_all(void);
/* Answer the oldest with a Redis error reply. */
void rf_answer_error(const char *msg);
/* Start a worker on the fake Redis store (buckets: redis_buckets) and answer its restore with `restore`
 * (RESP array of session records; NULL: none). */
struct config;
void rf_start(struct config *cfg, int id, int n, const char *restore);
/* The same with a restore answer that holds NUL bytes (packed session records). */
void rf_start_len(struct config *cfg, int id, int n, const char *restore, size_t len);

#endif

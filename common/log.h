/*
 * log.h — one-line logging to stderr (journald picks it up under systemd).
 *
 * The level is checked before the arguments are evaluated. Each line carries a "<N>" syslog priority prefix
 * when stderr is the journal, the process role ("sup" or "w3") and, through log_conn(), a connection id.
 * errno is passed explicitly (0 for none) so a log call never depends on a global set elsewhere.
 * Process-wide state: set once per process (log_init in the supervisor, log_set_role after fork).
 */
#ifndef RINGMQ_COMMON_LOG_H
#define RINGMQ_COMMON_LOG_H

enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_max_level;

/* Parse "error|warn|info|debug" (case-insensitive; "err" and "warning" too); returns the level or -1. */
int log_level_parse(const char *s);
/* Set log_max_level (clamped to LOG_ERR..LOG_DEBUG) and detect whether stderr is the journal
 * (JOURNAL_STREAM). Call once per process before logging; logging without it uses LOG_INFO. */
void log_init(int level);
/* "sup", "w0", "ctl"...: copied (truncated to 15 bytes). Call after fork, before the child logs. */
void log_set_role(const char *role);
/*
 * Write one line "<time> <role> <LEVEL> <message>[: strerror(err)]" to stderr with a single write(2), or
 * "<N><role> <LEVEL> ..." under journald. Lines longer than 2 KiB are cut and end in "..."; embedded newlines
 * become spaces. Never allocates; preserves errno. Use the macros below, which check the level first.
 */
void log_write(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(err, ...) do { if (log_max_level >= LOG_ERR) log_write(LOG_ERR, (err), __VA_ARGS__); } while (0)
#define log_warn(err, ...) do { if (log_max_level >= LOG_WARN) log_write(LOG_WARN, (err), __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_max_level >= LOG_INFO) log_write(LOG_INFO, 0, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_max_level >= LOG_DEBUG) log_write(LOG_DEBUG, 0, __VA_ARGS__); } while (0)
/* Connection-scoped: prefixes "c<id> ". */
#define log_conn(level, cid, err, fmt, ...) do { if (log_max_level >= (level)) \
	log_write((level), (err), "c%llu " fmt, (unsigned long long)(cid), ##__VA_ARGS__); } while (0)

#endif

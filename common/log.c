/*
 * log.c — one-line logging to stderr.
 *
 * Every line is formatted into a stack buffer and handed to the kernel with a single write(2): the supervisor
 * and all workers share one stderr, and a line built from several writes would interleave with the lines of
 * other processes. Lines are capped below PIPE_BUF so a write to a pipe (journald, a test harness) is atomic.
 * No allocation, so logging works on the out-of-memory path too.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Below PIPE_BUF (4096 on Linux): a longer write to a pipe may be split and interleaved. */
#define LOG_LINE_MAX 2048

int log_max_level = LOG_INFO;

static char log_role[16] = "-";

/* -1: not yet looked at; 0: plain stderr; 1: stderr is the journal. */
static int log_journal = -1;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

/* syslog priorities understood by journald's stream protocol (sd-daemon.h SD_ERR, SD_WARNING, ...). */
static const char *const level_prio[] = { "<3>", "<4>", "<6>", "<7>" };

/*
 * systemd sets JOURNAL_STREAM to "<dev>:<ino>" of the stream it connected to stderr. A child whose stderr was
 * redirected elsewhere inherits the variable, so when the value parses we also check it still names our
 * stderr; an unparsable value is trusted, since the variable being set is the documented signal.
 */
static int
detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || js[0] == '\0')
		return 0;
	if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 1;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int
log_level_parse(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcasecmp(s, "error") == 0 || strcasecmp(s, "err") == 0)
		return LOG_ERR;
	if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
		return LOG_WARN;
	if (strcasecmp(s, "info") == 0)
		return LOG_INFO;
	if (strcasecmp(s, "debug") == 0)
		return LOG_DEBUG;
	return -1;
}

void
log_init(int level)
{
	if (level < LOG_ERR)
		level = LOG_ERR;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_max_level = level;
	log_journal = detect_journal();
}

void
log_set_role(const char *role)
{
	size_t n = strlen(role);

	if (n >= sizeof(log_role))
		n = sizeof(log_role) - 1;
	memcpy(log_role, role, n);
	log_role[n] = '\0';
}

/* Append to buf[*pos..cap) with snprintf semantics, clamping *pos so later appends see a full buffer. */
static void __attribute__((format(printf, 4, 0)))
vappend(char *buf, size_t cap, size_t *pos, const char *fmt, va_list ap)
{
	int n;

	if (*pos >= cap)
		return;
	n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
	if (n < 0)
		return;
	*pos += (size_t)n;
	if (*pos > cap)
		*pos = cap;
}

static void __attribute__((format(printf, 4, 5)))
append(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vappend(buf, cap, pos, fmt, ap);
	va_end(ap);
}

void
log_write(int level, int err, const char *fmt, ...)
{
	/* +1 so the newline always fits even when the text was truncated. */
	char buf[LOG_LINE_MAX + 1];
	/* vsnprintf needs room for its NUL; the line proper ends at LOG_LINE_MAX - 1 bytes before the newline. */
	size_t cap = LOG_LINE_MAX, pos = 0, off;
	int saved_errno = errno;
	va_list ap;
	ssize_t n;

	if (level < LOG_ERR)
		level = LOG_ERR;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	if (log_journal < 0)
		log_journal = detect_journal();

	if (log_journal) {
		/* journald stamps the time itself; the priority prefix sets the entry's level. */
		append(buf, cap, &pos, "%s%s %s ", level_prio[level], log_role, level_names[level]);
	} else {
		struct timespec ts;
		struct tm tm;

		/* UTC: gmtime_r never reads the time zone database, localtime_r may (and may allocate). */
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		append(buf, cap, &pos, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
		       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		       ts.tv_nsec / 1000000, log_role, level_names[level]);
	}

	va_start(ap, fmt);
	vappend(buf, cap, &pos, fmt, ap);
	va_end(ap);

	if (err != 0) {
		char ebuf[128];

		/* GNU strerror_r: returns a pointer to a static string or to ebuf, never fails. */
		append(buf, cap, &pos, ": %s", strerror_r(err, ebuf, sizeof(ebuf)));
	}

	if (pos >= cap) {
		/* Truncated: vsnprintf wrote cap - 1 bytes. Mark it so a reader knows the line was cut. */
		pos = cap - 1;
		memcpy(buf + pos - 3, "...", 3);
	}
	/* A message with an embedded newline would forge a second line (e.g. a client ID in the text). */
	for (size_t i = 0; i < pos; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[pos++] = '\n';

	for (off = 0; off < pos; off += (size_t)n) {
		n = write(STDERR_FILENO, buf + off, pos - off);
		if (n < 0) {
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			break;
		}
	}
	errno = saved_errno;
}

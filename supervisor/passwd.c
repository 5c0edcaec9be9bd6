/* passwd.c — `ringmqctl passwd` (see passwd.h). */
#include "passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "pwfile.h"

/* An MQTT password is a two-byte length + bytes: nothing longer can ever be sent. */
#define PW_MAX 65535

static const char usage_text[] =
	"Usage: ringmqctl passwd [-c] [--stdin] [--iterations N] FILE USER\n"
	"       ringmqctl passwd [--stdin] [--iterations N] USER\n"
	"\n"
	"Adds USER to the password file FILE, or changes its password (mosquitto_passwd format: PBKDF2-SHA512,\n"
	"$7$). Without FILE, prints the line. The password is asked twice on the terminal, or read as the first\n"
	"line of standard input with --stdin.\n"
	"\n"
	"  -c                 create FILE (an existing one is replaced)\n"
	"      --stdin        read the password from standard input\n"
	"      --iterations N PBKDF2 iterations (default %u; each CONNECT of USER costs them)\n";

static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

static void restore_tty(int sig)
{
	if (tty_changed)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line from fd without stdio (no copy of the password left in a FILE buffer). Returns its length without
 * the line end, or -1 (read error, or longer than cap - 1). */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 || c == '\n')
			break;
		if (n + 1 >= cap)
			return -1;
		buf[n++] = c;
	}
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return (ssize_t)n;
}

static ssize_t ask(const char *prompt, char *buf, size_t cap)
{
	struct termios t;
	ssize_t n;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return -1;
	t = saved_tty;
	t.c_lflag &= ~(tcflag_t)ECHO;
	t.c_lflag |= ECHONL;
	signal(SIGINT, restore_tty);
	signal(SIGTERM, restore_tty);
	tty_changed = 1;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
	n = read_line(STDIN_FILENO, buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	tty_changed = 0;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	return n;
}

/* The password into pw (PW_MAX + 1 bytes); its length, or -1 after a message. */
static ssize_t get_password(bool from_stdin, char *pw, char *again)
{
	ssize_t n, m;

	if (from_stdin) {
		n = read_line(STDIN_FILENO, pw, PW_MAX + 1);
		if (n < 0)
			fprintf(stderr, "ringmqctl passwd: cannot read the password from standard input (at most %d "
					"bytes)\n", PW_MAX);
		return n;
	}
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "ringmqctl passwd: standard input is not a terminal: give the password with --stdin\n");
		return -1;
	}
	n = ask("Password: ", pw, PW_MAX + 1);
	m = n < 0 ? -1 : ask("Reenter password: ", again, PW_MAX + 1);
	if (n < 0 || m < 0) {
		fprintf(stderr, "ringmqctl passwd: cannot read the password\n");
		return -1;
	}
	if (n != m || memcmp(pw, again, (size_t)n) != 0) {
		fprintf(stderr, "ringmqctl passwd: the passwords do not match\n");
		return -1;
	}
	return n;
}

/* Read the whole file into *out (NUL-terminated). 0; -ENOENT when it does not exist; -1 after a message. */
static int slurp(const char *path, char **out, size_t *len, mode_t *mode, uid_t *uid, gid_t *gid)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "ringmqctl passwd: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*mode = st.st_mode & 07777;
	*uid = st.st_uid;
	*gid = st.st_gid;
	for (;;) {
		ssize_t r;

		if (n + 4096 + 1 > cap) {
			char *b = realloc(buf, cap = (cap ? cap * 2 : 8192));

			if (!b) {
				fprintf(stderr, "ringmqctl passwd: out of memory\n");
				goto err;
			}
			buf = b;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "ringmqctl passwd: %s: %s\n", path, strerror(errno));
			goto err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
err:
	close(fd);
	free(buf);
	return -1;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* FILE with user's line replaced by line (or line appended), written beside it and renamed over it. */
static int update_file(const char *path, bool create, const char *user, const char *line)
{
	char *old = NULL, *tmp;
	size_t len = 0, ulen = strlen(user);
	mode_t mode = 0600;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	bool replaced = false;
	int fd, rc = 1;

	if (!create) {
		int r = slurp(path, &old, &len, &mode, &uid, &gid);

		if (r == -1)
			return 1;
		if (r == -ENOENT) {
			fprintf(stderr, "ringmqctl passwd: %s does not exist (-c creates it)\n", path);
			return 1;
		}
	}
	tmp = malloc(strlen(path) + 8);
	if (!tmp) {
		free(old);
		return 1;
	}
	sprintf(tmp, "%s.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "ringmqctl passwd: cannot create a file beside %s: %s\n", path, strerror(errno));
		free(tmp);
		free(old);
		return 1;
	}
	/* The new file is the old one's: same owner and group (the broker's user must still read it after root
	 * edits it; only root may give a file away, others keep what they can) and mode. */
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0 && fchown(fd, (uid_t)-1, gid) < 0) {
		/* neither root nor in its group: the file becomes ours, with the old mode */
	}
	fchmod(fd, mode);
	for (size_t pos = 0; pos < len;) {
		char *nl = memchr(old + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - old - pos) + 1 : len - pos;
		const char *l = old + pos;
		bool ok;

		pos += n;
		if (n > ulen && memcmp(l, user, ulen) == 0 && l[ulen] == ':') {
			/* The broker refuses a file naming a user twice: any later line of the user goes. */
			ok = replaced || (write_all(fd, line, strlen(line)) && write_all(fd, "\n", 1));
			replaced = true;
		} else {
			ok = write_all(fd, l, n) && (l[n - 1] == '\n' || write_all(fd, "\n", 1));
		}
		if (!ok)
			goto out;
	}
	if (!replaced && !(write_all(fd, line, strlen(line)) && write_all(fd, "\n", 1)))
		goto out;
	if (fsync(fd) < 0)
		goto out;
	if (rename(tmp, path) < 0)
		goto out;
	rc = 0;
out:
	if (rc) {
		fprintf(stderr, "ringmqctl passwd: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
	}
	close(fd);
	free(tmp);
	free(old);
	return rc;
}

int passwd_main(int argc, char **argv)
{
	const char *pos[2] = { NULL, NULL }, *file = NULL, *user;
	unsigned long iterations = PWFILE_ITERATIONS;
	bool create = false, from_stdin = false;
	char *pw, *again, line[PWFILE_HASH_MAX + 1024];
	ssize_t n;
	int npos = 0, rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf(usage_text, PWFILE_ITERATIONS);
			return 0;
		} else if (strcmp(a, "-c") == 0) {
			create = true;
		} else if (strcmp(a, "--stdin") == 0) {
			from_stdin = true;
		} else if (strcmp(a, "--iterations") == 0 || strncmp(a, "--iterations=", 13) == 0) {
			const char *v = a[12] == '=' ? a + 13 : (i + 1 < argc ? argv[++i] : "");
			char *end;

			errno = 0;
			iterations = strtoul(v, &end, 10);
			if (!*v || *end || errno || iterations < 1 || iterations > PWFILE_MAX_ITERATIONS) {
				fprintf(stderr, "ringmqctl passwd: --iterations: '%s' is not a number from 1 to %u\n", v,
					PWFILE_MAX_ITERATIONS);
				return 2;
			}
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "ringmqctl passwd: unknown option '%s' (see ringmqctl passwd --help)\n", a);
			return 2;
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			fprintf(stderr, "ringmqctl passwd: unexpected argument '%s' (see ringmqctl passwd --help)\n", a);
			return 2;
		}
	}
	if (npos == 0) {
		fprintf(stderr, "ringmqctl passwd: missing USER (see ringmqctl passwd --help)\n");
		return 2;
	}
	if (npos == 2)
		file = pos[0];
	user = pos[npos - 1];
	if (create && !file) {
		fprintf(stderr, "ringmqctl passwd: -c needs a FILE\n");
		return 2;
	}
	if (!user[0] || strpbrk(user, ":\r\n") || strlen(user) > 1000) {
		fprintf(stderr, "ringmqctl passwd: a user name must be 1 to 1000 bytes without ':' or a line end\n");
		return 2;
	}
	pw = malloc(PW_MAX + 1);
	again = malloc(PW_MAX + 1);
	if (!pw || !again) {
		free(pw);
		free(again);
		return 1;
	}
	n = get_password(from_stdin, pw, again);
	rc = n < 0 ? -1 : pwfile_hash(user, pw, (size_t)n, (unsigned)iterations, line, sizeof(line));
	explicit_bzero(pw, PW_MAX + 1);
	explicit_bzero(again, PW_MAX + 1);
	free(pw);
	free(again);
	if (n < 0)
		return 1;
	if (rc < 0) {
		fprintf(stderr, "ringmqctl passwd: cannot hash the password: %s\n", strerror(-rc));
		return 1;
	}
	if (!file) {
		puts(line);
		return 0;
	}
	return update_file(file, create, user, line);
}

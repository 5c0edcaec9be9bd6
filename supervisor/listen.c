/*
 * listen.c — per-worker SO_REUSEPORT TCP listeners (see listen.h).
 *
 * The kernel spreads incoming connections over the sockets of a SO_REUSEPORT group by hash; each worker
 * accepts only on its own. Sockets are created in the supervisor so their accept queues outlive any worker.
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

void
listen_format(char *buf, size_t cap, const char *host, uint16_t port)
{
	if (strchr(host, ':') != NULL && host[0] != '[')
		snprintf(buf, cap, "[%s]:%u", host, (unsigned)port);
	else
		snprintf(buf, cap, "%s:%u", host, (unsigned)port);
}

/* Resolve host for the address family its spelling implies. 0 or -1 after logging. */
static int
resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char name[256];
	size_t len = strlen(host);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	char portstr[8];
	int rc;

	/* "[::1]" is how people write IPv6 hosts next to a port; getaddrinfo wants the bare address. */
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(name)) {
		log_error(0, "listen_host '%s' is not a valid host", host);
		return -1;
	}
	memcpy(name, host, len);
	name[len] = '\0';
	hints.ai_family = strchr(name, ':') != NULL ? AF_INET6 : AF_INET;
	snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
	rc = getaddrinfo(name, portstr, &hints, &res);
	if (rc != 0 || res == NULL) {
		log_error(0, "cannot resolve listen_host '%s': %s", name, rc ? gai_strerror(rc) : "no address");
		if (res)
			freeaddrinfo(res);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
}

static void
log_bind_error(const char *host, uint16_t port, int err)
{
	char addr[128];

	listen_format(addr, sizeof(addr), host, port);
	if (err == EADDRINUSE)
		log_error(0, "cannot listen on %s: %s — another broker running? set --port", addr, strerror(err));
	else if (err == EACCES && port < 1024)
		log_error(0, "cannot listen on %s: %s — ports below 1024 need root or CAP_NET_BIND_SERVICE",
			addr, strerror(err));
	else if (err == EADDRNOTAVAIL)
		log_error(0, "cannot listen on %s: %s — listen_host is not an address of this machine", addr,
			strerror(err));
	else
		log_error(0, "cannot listen on %s: %s", addr, strerror(err));
}

/* A bound socket with the given options; -errno on failure. */
static int
bound_socket(const struct sockaddr_storage *ss, socklen_t sslen, bool reuseport)
{
	int one = 1, fd, err;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)ss, sslen) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

int
listen_open(const char *host, uint16_t port, int n, int *fds, uint16_t *bound_port)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int i, fd;

	for (i = 0; i < n; i++)
		fds[i] = -1;
	if (resolve(host, port, &ss, &sslen) < 0)
		return -1;
	/*
	 * SO_REUSEPORT lets any process of the same user join our group, so a second broker started by mistake
	 * would share the port and steal half the connections. A probe bound without SO_REUSEPORT fails when
	 * anyone holds the address, which turns that mistake into a clear start-up error.
	 */
	if (port != 0) {
		fd = bound_socket(&ss, sslen, false);
		if (fd < 0) {
			log_bind_error(host, port, -fd);
			return -1;
		}
		close(fd);
	}
	for (i = 0; i < n; i++) {
		fd = bound_socket(&ss, sslen, true);
		if (fd < 0) {
			log_bind_error(host, port, -fd);
			goto err;
		}
		fds[i] = fd;
		if (listen(fd, LISTEN_BACKLOG) < 0) {
			log_bind_error(host, port, errno);
			goto err;
		}
		if (i == 0 && port == 0) {
			struct sockaddr_storage got;
			socklen_t gotlen = sizeof(got);

			if (getsockname(fd, (struct sockaddr *)&got, &gotlen) < 0) {
				log_error(errno, "getsockname on the listener");
				goto err;
			}
			port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port :
				((struct sockaddr_in *)&got)->sin_port);
			set_port(&ss, port);
		}
	}
	*bound_port = port;
	return 0;
err:
	listen_close(fds, n);
	return -1;
}

void
listen_close(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

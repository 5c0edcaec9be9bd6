/*
 * listen.h — the broker's TCP listeners: one SO_REUSEPORT socket per worker.
 *
 * Created and held by the supervisor for the broker's whole life, so a worker that crashes and restarts gets
 * the same socket back and the connections the kernel queued on it meanwhile are not lost (docs/STYLE.md 16).
 * Supervisor only, before fork.
 */
#ifndef RINGMQ_SUPERVISOR_LISTEN_H
#define RINGMQ_SUPERVISOR_LISTEN_H

#include <stddef.h>
#include <stdint.h>

#define LISTEN_BACKLOG 4096

/*
 * Format host:port for logs and the control socket ("[::1]:1883" for IPv6) into buf (size cap).
 */
void listen_format(char *buf, size_t cap, const char *host, uint16_t port);
/*
 * Open n nonblocking, CLOEXEC listeners bound to host:port with SO_REUSEADDR and SO_REUSEPORT into fds[0..n).
 * The host is IPv6 when it contains ':' (brackets allowed), else IPv4 (a name is resolved). Port 0 binds the
 * first socket to an ephemeral port and the others to the same one; *bound_port receives the port in use.
 * Fails when any other socket already holds the address, even one that set SO_REUSEPORT itself, so two
 * brokers never silently share a port. Returns 0, or -1 after logging one line; no fd is left open then.
 */
int listen_open(const char *host, uint16_t port, int n, int *fds, uint16_t *bound_port);
/* Close fds[0..n) that are >= 0 and set them to -1. */
void listen_close(int *fds, int n);

#endif

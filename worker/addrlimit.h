/*
 * addrlimit.h — per source address limits on the sockets a worker accepts: connections open at once
 * (max_connections_per_address) and new connections per second (max_connect_rate). Checked at accept, before
 * a byte is read, so a flood from one address costs a close, not a handshake. Counts are per worker (the
 * kernel spreads an address's connections over the workers' listeners): the limits are per worker too.
 * Worker thread only.
 */
#ifndef RINGMQ_WORKER_ADDRLIMIT_H
#define RINGMQ_WORKER_ADDRLIMIT_H

#include <stdbool.h>
#include <stddef.h>

void addrlimit_init(void);
void addrlimit_finish(void);
/* A connection from host (its address without the port) arrives: true if it may stay (it is then counted
 * until addrlimit_release). False: over a limit (counted in rejected_address). */
bool addrlimit_admit(const char *host);
void addrlimit_release(const char *host);
/* Addresses tracked (tests). */
size_t addrlimit_count(void);

#endif

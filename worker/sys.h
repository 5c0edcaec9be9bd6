/*
 * sys.h — $SYS topics, worker side (docs/operations.md, "$SYS topics").
 *
 * The supervisor computes the broker-wide values (it gathers every worker's counters) and pushes them in a
 * CHAN_SYS record every sys_interval seconds, but only to workers that told it (CHAN_SYS_INTEREST) they have a
 * local subscription to a $SYS filter: with nobody subscribed, nothing is gathered, sent or published. A
 * worker publishes each value as a retained QoS 0 message to its own sessions only (never forwarded to other
 * workers or nodes: every interested worker gets the same record), so a later subscriber on that worker gets
 * the last values with its SUBACK. QoS 0 is never queued for offline sessions nor written to the store.
 * Clients cannot publish to $SYS nor leave a will there (handle_publish, handle_connect: not authorized).
 * Worker process only.
 */
#ifndef RINGMQ_WORKER_SYS_H
#define RINGMQ_WORKER_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Is this topic name or filter "$SYS" or under "$SYS/"? */
bool sys_topic(const uint8_t *name, size_t len);
/* The first local subscriber of filter f arrived / the last one left (route.c); $SYS filters are counted. */
void sys_filter_added(const char *f, size_t len);
void sys_filter_removed(const char *f, size_t len);
/* Tell the supervisor whether this worker wants $SYS values, if that changed since it was last told (or the
 * last attempt failed). Called on every change and from the control channel's tick. */
void sys_report(void);
/*
 * A CHAN_SYS payload: repeated { u16 topic length, topic, u16 value length, value } (host byte order, the
 * same machine). Each becomes a retained QoS 0 message delivered to matching local sessions. Returns the
 * number of values published, or -EPROTO (malformed: nothing more is read) / -ENOMEM.
 */
int sys_on_values(const uint8_t *p, size_t len);

#endif

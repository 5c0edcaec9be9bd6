/*
 * mesh.h — worker <-> worker channels: one SOCK_STREAM socketpair per pair of workers carrying frames
 * (frame.h), written once per loop turn through sock.h (so a channel's buffers live until its last send
 * has completed, even when the peer dies meanwhile).
 *
 * Frames that need an answer (a forwarded QoS>0 PUBLISH with a durable store or to the Kafka process, a
 * subscription change a SUBACK waits for) are acknowledged in order by counted ACK/NACK frames, so the sender
 * keeps a FIFO of tokens (the waiter to resolve) instead of ids. The receiver acknowledges a frame only when
 * what it caused is durable. With the memory store a forwarded PUBLISH asks for no ack: the publisher's
 * PUBACK does not wait for the peer (docs/architecture.md, "The path of one QoS 1 message across two
 * workers"), and the channel's output queue is what bounds a fast publisher (mesh_busy).
 *
 * When a peer dies: with the memory store its sessions died with it, so what waited for it is answered and
 * its interest forgotten. With a durable store its sessions live on in the store, so its interest is kept,
 * messages for it are held (their publishers not answered), and every message it had not acknowledged is
 * sent again to the restarted worker once that one has restored its sessions: a duplicate is possible, a
 * loss is not. Worker thread only.
 */
#ifndef RINGMQ_WORKER_MESH_H
#define RINGMQ_WORKER_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "waiter.h"
#include "worker.h"

struct msg;

enum mesh_pub_flags {
	MESH_DELIVER = 1 << 0,      /* deliver to matching local sessions */
	MESH_RETAIN_STORE = 1 << 1, /* update the retained store */
	MESH_GROUP = 1 << 2,        /* deliver to one member of the shared group named in the frame */
};

/* Open the channels of args (paused until mesh_start) and register with the loop. */
void mesh_init(const worker_args_t *args);
void mesh_finish(void);
/* Sessions are restored: read the channels, and tell every peer our interest is complete (MF_SYNC). */
void mesh_start(void);
/* A new socket to peer k (after k restarted): resend what k had not acknowledged, send our interest. */
void mesh_set_fd(int k, int fd);
void mesh_peer_down(int k);
bool mesh_up(int k);
/* Messages held for dead peers exceed the bound, or a peer does not take its frames fast enough (output
 * queued to it over MESH_OUTQ_MAX): stop reading clients (conn.c asks each turn). */
bool mesh_busy(void);
/*
 * Frames. With w (a waiter), the frame asks for an ack and the waiter is counted; without, nothing waits.
 * mesh_send_pub asks for one only where the peer's ack means durability (a durable store, the Kafka
 * process): with the memory store w is left alone.
 * A frame for a dead peer is held (MF_PUB with w and a durable store) or dropped.
 */
void mesh_send_pub(int k, const struct msg *m, uint8_t flags, const char *group, size_t group_len,
	waiter_t *w);
void mesh_send_sub(int k, const char *filter, size_t len, bool add, waiter_t *w);
void mesh_send_group(int k, const char *key, size_t len, uint32_t members, uint32_t online, waiter_t *w);
/* A frame of another module's kind (relay.h) to peer k: the body to fill (body_len bytes), written with this
 * turn's flush; NULL when k is down or memory ran out. */
uint8_t *mesh_frame(int k, uint8_t type, size_t body_len, uint32_t a, uint32_t b);
/* Messages held or unacknowledged for peer k (stats, tests). */
uint32_t mesh_outstanding(int k);

#endif

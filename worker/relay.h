/*
 * relay.h — connections whose socket stays on the worker that accepted them while their session lives on the
 * owner worker: the way a TLS connection reaches its owner.
 *
 * A plain connection moves to its owner with its fd (SCM_RIGHTS). A TLS connection cannot: its CONNECT is
 * readable only after the handshake, in the accepting worker, and the TLS state (keys, sequence numbers) lives
 * in that worker's OpenSSL objects. So the accepting worker (the front) keeps the socket and the TLS session
 * and relays the client's MQTT bytes, decrypted, to the owner (the back) over the mesh channel, batched with
 * everything else of the loop turn; the owner runs the connection as any other (CONNECT, session, keepalive,
 * takeover) on a socket-less conn_t whose output goes back the same way, to be encrypted by the front.
 *
 * Frames (frame.h): RELAY_OPEN (link id, client address, certificate CN, the bytes read so far), RELAY_DATA,
 * RELAY_CLOSE (either side), RELAY_PAUSE (the back holds the client's input: the front stops reading it). The
 * link id is the front connection's id (unique across workers). When the peer worker dies, every link with
 * it closes: the client reconnects. Worker thread only.
 */
#ifndef RINGMQ_WORKER_RELAY_H
#define RINGMQ_WORKER_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct conn;

void relay_module_init(void);
void relay_module_finish(void);
/* Front: c (TLS, CONNECT parsed, owner c->handoff_to) becomes a relay; its bytes so far (c->rbuf) open the
 * link. 0, or -errno (the caller closes c). */
int relay_open(struct conn *c);
/* Front: plaintext from the client, for the owner. */
void relay_front_input(struct conn *c, const uint8_t *p, size_t n);
/* Either side: c closes (the other side is told) or is freed (the link forgotten). */
void relay_closed(struct conn *c);
void relay_forget(struct conn *c);
/* Back: the output of a socket-less connection goes to its front (sock_ops on_flush), and its input is held or
 * released (on_pause). */
void relay_back_flush(struct conn *c);
void relay_back_pause(struct conn *c, bool paused);
/* A relay frame from peer k (mesh.c). -EPROTO for one that cannot be right. */
int relay_on_frame(int k, const frame_hdr_t *h, const uint8_t *body);
/* Peer k died: every link with it closes. */
void relay_peer_down(int k);
/* Links open (stats). */
size_t relay_count(void);

#endif

/*
 * mesh.h — worker <-> worker channels: one SOCK_STREAM socketpair per pair of workers, length-prefixed frames,
 * written once per loop turn. Frames that need an answer (a forwarded QoS>0 PUBLISH, a subscription change a
 * SUBACK waits for) are acknowledged in order by a counted ACK frame, so the sender keeps a FIFO of tokens
 * instead of ids. Worker thread only.
 */
#ifndef RINGMQ_WORKER_MESH_H
#define RINGMQ_WORKER_MESH_H

#include "wk-t.h"

enum mesh_pub_flags {
	MESH_DELIVER = 1 << 0,      /* deliver to matching local sessions */
	MESH_RETAIN_STORE = 1 << 1, /* update the retained store */
	MESH_GROUP = 1 << 2,        /* deliver to one member of the shared group named in the frame */
};

void mesh_init(const worker_args_t *args);
void mesh_finish(void);
/* A new socket to peer k (first start or after k restarted). */
void mesh_set_fd(int k, int fd, bool send_dump);
void mesh_peer_down(int k);
static inline bool mesh_up(int k) { return W->peers[k].up; }
void mesh_on_recv(uint32_t k, uint32_t gen, struct io_uring_cqe *cqe);
void mesh_on_send(uint32_t k, uint32_t gen, struct io_uring_cqe *cqe);
void mesh_flush_all(void);
/* A store write for in-frame `seq` of peer k (generation gen) completed. */
void mesh_inwait_done(int k, uint32_t gen, uint64_t seq);
/* Frames. With c != NULL the frame asks for an ack that resolves reply `seq` of c. */
void mesh_send_pub(int k, const msg_t *m, uint8_t flags, const char *group, size_t group_len, conn_t *c,
	uint64_t seq);
void mesh_send_sub(int k, const char *filter, size_t len, bool add, conn_t *c, uint64_t seq);
void mesh_send_group(int k, const char *key, size_t len, uint32_t members, uint32_t online, conn_t *c,
	uint64_t seq);

#endif

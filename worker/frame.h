/*
 * frame.h — the worker-to-worker frame format (mesh.c's wire), pure: no I/O.
 *
 * A frame is a 24-byte header and a body, padded so every frame starts 8-byte aligned. Both ends are the
 * same binary on the same machine, so a msg_t header travels as is (native byte order and layout). Acks are
 * counted, not numbered: the channel is FIFO, so "the next n frames that asked for an ack are done" is
 * enough (MF_ACK for success, MF_NACK for frames whose work failed for good).
 */
#ifndef RINGMQ_WORKER_FRAME_H
#define RINGMQ_WORKER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct msg;

enum frame_type {
	MF_PUB = 1,                /* a message: flags say deliver / retain store / shared group */
	MF_SUB = 2,                /* the sender has local subscribers for this filter now */
	MF_UNSUB = 3,              /* ... no longer */
	MF_GROUP = 4,              /* shared group member counts: a = members, b = online */
	MF_ACK = 5,                /* a = count of acked frames */
	MF_NACK = 6,               /* a = count of frames whose work failed */
	MF_SYNC = 7,               /* the sender announced all its interest: drop what it did not announce */
	MF_RELAY_OPEN = 8,         /* relay.h: link (a, b) opens: client address, certificate CN, first bytes */
	MF_RELAY_DATA = 9,         /* relay.h: MQTT bytes of link (a, b) */
	MF_RELAY_CLOSE = 10,       /* relay.h: link (a, b) ends */
	MF_RELAY_PAUSE = 11,       /* relay.h: hold (reserved = 1) or release (0) link (a, b)'s input */
	MF_HANDOVER = 12,          /* owner.h, to the Kafka process: ask node a to let session (body) go */
	MF_RELEASE = 13,           /* owner.h, from it: node a asks for session (body) */
	MF_RELEASED = 14,          /* owner.h, to it: session let go for node a; body: id NUL filters NUL-separated */
	MF_HANDED = 15,            /* owner.h, from it: session (body) was let go by its previous owner */
	MF_ADOPT = 16,             /* owner.h, from it: node a is dead, take its sessions of your slots */
	MF_ADOPTED = 17,           /* owner.h, to it: done taking node a's sessions */
};

#define MF_ACK_WANTED 0x80
#define FRAME_MAX (512u << 20)

typedef struct frame_hdr {
	uint32_t len;              /* whole frame, header and padding included */
	uint32_t body;             /* body bytes, without padding */
	uint8_t type;
	uint8_t flags;             /* MF_ACK_WANTED | per-type flags */
	uint16_t group_len;        /* MF_PUB with a group: key bytes after the message data */
	uint32_t a, b;
	uint32_t reserved;
} frame_hdr_t;

/* Append a frame with body_len body bytes to out; returns the body to fill, or NULL (out unchanged). */
uint8_t *frame_put(buf_t *out, uint8_t type, uint8_t flags, size_t body_len, uint32_t a, uint32_t b);
/* Append an MF_PUB frame carrying m and an optional group key. 0 or -ENOMEM. */
int frame_put_pub(buf_t *out, const struct msg *m, uint8_t flags, const char *group, size_t group_len);
/*
 * The frame at the start of p[0..n): returns its length (> 0) with *h and *body set, 0 when more bytes are
 * needed, -EPROTO for a header that cannot be right.
 */
int64_t frame_next(const uint8_t *p, size_t n, frame_hdr_t *h, const uint8_t **body);
/* The parts of an MF_PUB body: the message header (copied), its data and the group key. -EPROTO if the
 * lengths disagree. */
int frame_get_pub(const frame_hdr_t *h, const uint8_t *body, struct msg *hdr, const uint8_t **data,
	const char **group);

#endif

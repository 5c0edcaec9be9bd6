/*
 * testutil.h — building raw packets by hand and decoding them from guarded memory.
 */
#ifndef RINGMQ_TEST_PROTO_UTIL_H
#define RINGMQ_TEST_PROTO_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "mqtt.h"

/* A packet body under construction; hand-written tests say what they mean, the builder counts lengths. */
typedef struct bb {
	uint8_t b[8192];
	size_t n;
} bb_t;

void bb_u8(bb_t *bb, uint8_t v);
void bb_u16(bb_t *bb, uint16_t v);
void bb_u32(bb_t *bb, uint32_t v);
void bb_vbi(bb_t *bb, uint32_t v);
void bb_raw(bb_t *bb, const void *p, size_t len);
/* Two-byte length + bytes of a C string. */
void bb_str(bb_t *bb, const char *s);
void bb_bin(bb_t *bb, const void *p, size_t len);
/* Append another builder's bytes preceded by their length as a VBI (a property block). */
void bb_props(bb_t *bb, const bb_t *props);
/* Whole packet (fixed header byte0 + remaining length + body) into out; returns its size. */
size_t bb_packet(uint8_t byte0, const bb_t *body, uint8_t *out);

/* A minimal valid CONNECT body: protocol name, level, flags, keep alive 60, empty v5 properties, client id
 * (NULL: none, so the caller appends the rest). */
void connect_body(bb_t *b, const char *name, uint8_t level, uint8_t flags, const char *client_id);
/* PUBLISH body: topic, packet id if qos > 0, v5 property block p (NULL: empty), payload "hi". */
void publish_body(bb_t *b, uint8_t version, const char *topic, uint8_t qos, uint16_t pid, const bb_t *p);

/* Run the decoder for f->type. PINGREQ/PINGRESP go to mqtt_decode_empty. */
int decode_any(const mqtt_frame_t *f, uint8_t version);
/* Frame (must succeed with the whole packet) and decode a packet placed against the guard page. */
int decode_pkt(const uint8_t *pkt, size_t len, uint8_t version);
/* bb_packet + decode_pkt. */
int decode_bb(uint8_t byte0, const bb_t *body, uint8_t version);

/* Fill every property allowed in `type` with distinct values, the user run in user_buf (>= 64 bytes). */
void fill_props(mqtt_props_t *p, uint8_t type, uint8_t *user_buf);
/* ck_assert that two property sets are the same (strings by content, user properties by iteration). */
void assert_props_eq(const mqtt_props_t *a, const mqtt_props_t *b);
void assert_str_eq(mqtt_str_t a, mqtt_str_t b);

#endif

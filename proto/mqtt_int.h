/*
 * mqtt_int.h — helpers shared by the proto/ codec files only; not part of the public API.
 *
 * The reader never trusts the input: every rd_* call checks the bytes are there before touching them and
 * returns false otherwise, so a decoder turns a short field into MQTT_E_MALFORMED. The writers do not check:
 * every encoder sizes the packet first and refuses a buffer smaller than that.
 */
#ifndef RINGMQ_PROTO_MQTT_INT_H
#define RINGMQ_PROTO_MQTT_INT_H

#include <string.h>

#include "mqtt.h"

/*
 * Sizes are summed in 64 bits and an unencodable piece (a string over 65535 bytes) counts as this much, so one
 * comparison against MQTT_VBI_MAX at the end catches it without a flag threaded through every size function.
 */
#define MQTT_TOO_BIG ((uint64_t)1 << 40)

typedef struct rd {
	const uint8_t *pos;
	const uint8_t *end;
} rd_t;

static inline size_t
rd_left(const rd_t *r)
{
	return (size_t)(r->end - r->pos);
}

static inline bool
rd_u8(rd_t *r, uint8_t *v)
{
	if (rd_left(r) < 1)
		return false;
	*v = r->pos[0];
	r->pos += 1;
	return true;
}

static inline bool
rd_u16(rd_t *r, uint16_t *v)
{
	if (rd_left(r) < 2)
		return false;
	*v = (uint16_t)(r->pos[0] << 8 | r->pos[1]);
	r->pos += 2;
	return true;
}

static inline bool
rd_u32(rd_t *r, uint32_t *v)
{
	if (rd_left(r) < 4)
		return false;
	*v = (uint32_t)r->pos[0] << 24 | (uint32_t)r->pos[1] << 16 | (uint32_t)r->pos[2] << 8 | r->pos[3];
	r->pos += 4;
	return true;
}

/* Two-byte length followed by that many bytes: UTF-8 strings and binary data share the layout. */
static inline bool
rd_bin(rd_t *r, mqtt_str_t *s)
{
	uint16_t len;

	if (!rd_u16(r, &len) || rd_left(r) < len)
		return false;
	s->p = r->pos;
	s->len = len;
	r->pos += len;
	return true;
}

/* Inside a packet the body length is known, so a VBI running off its end is malformed, not "need more". */
static inline bool
rd_vbi(rd_t *r, uint32_t *v)
{
	int n = mqtt_vbi_decode(r->pos, rd_left(r), v);

	if (n <= 0)
		return false;
	r->pos += n;
	return true;
}

static inline bool
str_eq(const mqtt_str_t *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->len == n && memcmp(s->p, lit, n) == 0;
}

static inline uint8_t *
wr_u8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static inline uint8_t *
wr_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static inline uint8_t *
wr_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint8_t *
wr_raw(uint8_t *p, const uint8_t *s, size_t len)
{
	if (len > 0)
		memcpy(p, s, len);
	return p + len;
}

static inline uint8_t *
wr_bin(uint8_t *p, const mqtt_str_t *s)
{
	p = wr_u16(p, (uint16_t)s->len);
	return wr_raw(p, s->p, s->len);
}

static inline uint8_t *
wr_vbi(uint8_t *p, uint32_t v)
{
	return p + mqtt_vbi_encode(p, v);
}

static inline uint64_t
bin_size(const mqtt_str_t *s)
{
	return s->len > 0xFFFF ? MQTT_TOO_BIG : 2 + (uint64_t)s->len;
}

/*
 * Decode a property block (length VBI + properties) at r for a packet of `type` (MQTT_WILL_PROPS for the
 * will), filling *out (zeroed first) and advancing r past the block. Returns MQTT_OK or a negative mqtt_err.
 */
int mqtt_props_decode_rd(rd_t *r, uint8_t type, mqtt_props_t *out);
/* Length of the encoded properties, without the leading length VBI; >= MQTT_TOO_BIG if unencodable. */
uint64_t mqtt_props_len(const mqtt_props_t *props);
/* Write the block (length VBI + `len` bytes of properties, len from mqtt_props_len()); returns the new end. */
uint8_t *mqtt_props_write(uint8_t *p, const mqtt_props_t *props, uint32_t len);

#endif

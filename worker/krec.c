#include "krec.h"

#include <errno.h>
#include <string.h>

#include "cluster.h"
#include "msg.h"
#include "record.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static void put_hdr(uint8_t *out, uint8_t kind, uint8_t flags, uint16_t group_len, uint32_t origin)
{
	put32(out, KREC_MAGIC);
	out[4] = kind;
	out[5] = flags;
	put16(out + 6, group_len);
	put32(out + 8, origin);
	put32(out + 12, 0);
}

int32_t krec_partition(int node)
{
	return node >= 0 && node < CLUSTER_MAX_NODES ? (int32_t)node : -1;
}

size_t krec_msg_size(const struct msg *m, uint16_t group_len)
{
	return KREC_HDR_SIZE + group_len + record_blob_size(m);
}

void krec_msg_encode(uint8_t *out, uint32_t origin, uint8_t flags, const char *group, uint16_t group_len,
	const struct msg *m, int64_t expire_ms)
{
	put_hdr(out, KREC_MSG, flags, group_len, origin);
	if (group_len)
		memcpy(out + KREC_HDR_SIZE, group, group_len);
	record_blob_encode(out + KREC_HDR_SIZE + group_len, m, m->qos, m->retain, 0, expire_ms);
}

size_t krec_note_encode(uint8_t *out, size_t cap, uint8_t kind, uint32_t origin, const char *id, size_t len)
{
	if (cap < KREC_HDR_SIZE + len)
		return 0;
	put_hdr(out, kind, 0, 0, origin);
	memcpy(out + KREC_HDR_SIZE, id, len);
	return KREC_HDR_SIZE + len;
}

int krec_parse(const void *val, size_t len, krec_t *out)
{
	const uint8_t *p = val;

	if (len < KREC_HDR_SIZE || get32(p) != KREC_MAGIC)
		return -EBADMSG;
	*out = (krec_t){ .kind = p[4], .flags = p[5], .group_len = get16(p + 6), .origin = get32(p + 8) };
	switch (out->kind) {
	case KREC_MSG:
		if ((size_t)KREC_HDR_SIZE + out->group_len > len)
			return -EBADMSG;
		out->group = (const char *)p + KREC_HDR_SIZE;
		out->body = p + KREC_HDR_SIZE + out->group_len;
		out->body_len = len - KREC_HDR_SIZE - out->group_len;
		return 0;
	case KREC_HANDOVER:
	case KREC_HANDED:
		if (out->group_len || len == KREC_HDR_SIZE)
			return -EBADMSG; /* a note names a client */
		out->body = p + KREC_HDR_SIZE;
		out->body_len = len - KREC_HDR_SIZE;
		return 0;
	default:
		return -EBADMSG;
	}
}

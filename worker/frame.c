/* frame.c — worker-to-worker frames (see frame.h). */
#include "frame.h"

#include <errno.h>
#include <string.h>

#include "msg.h"

uint8_t *frame_put(buf_t *out, uint8_t type, uint8_t flags, size_t body_len, uint32_t a, uint32_t b)
{
	size_t total = (sizeof(frame_hdr_t) + body_len + 7) & ~(size_t)7;
	frame_hdr_t h;
	uint8_t *d;

	if (total > FRAME_MAX || !(d = buf_reserve(out, total)))
		return NULL;
	memset(&h, 0, sizeof(h));
	h.len = (uint32_t)total;
	h.body = (uint32_t)body_len;
	h.type = type;
	h.flags = flags;
	h.a = a;
	h.b = b;
	memcpy(d, &h, sizeof(h));
	memset(d + sizeof(h) + body_len, 0, total - sizeof(h) - body_len);
	out->len += (uint32_t)total;
	return d + sizeof(h);
}

int frame_put_pub(buf_t *out, const msg_t *m, uint8_t flags, const char *group, size_t group_len)
{
	size_t dlen = msg_data_len(m);
	uint8_t *d;

	if (group_len > UINT16_MAX)
		return -EINVAL;
	d = frame_put(out, MF_PUB, flags, sizeof(msg_t) + dlen + group_len, 0, 0);
	if (!d)
		return -ENOMEM;
	((frame_hdr_t *)(d - sizeof(frame_hdr_t)))->group_len = (uint16_t)group_len;
	memcpy(d, m, sizeof(msg_t));
	memcpy(d + sizeof(msg_t), m->data, dlen);
	if (group_len)
		memcpy(d + sizeof(msg_t) + dlen, group, group_len);
	return 0;
}

int64_t frame_next(const uint8_t *p, size_t n, frame_hdr_t *h, const uint8_t **body)
{
	if (n < sizeof(*h))
		return 0;
	memcpy(h, p, sizeof(*h));
	if (h->len < sizeof(*h) || h->len > FRAME_MAX || h->len & 7 || h->body > h->len - sizeof(*h))
		return -EPROTO;
	if (n < h->len)
		return 0;
	*body = p + sizeof(*h);
	return h->len;
}

int frame_get_pub(const frame_hdr_t *h, const uint8_t *body, msg_t *hdr, const uint8_t **data,
	const char **group)
{
	if (h->body < sizeof(msg_t))
		return -EPROTO;
	memcpy(hdr, body, sizeof(*hdr));
	if (sizeof(msg_t) + msg_data_len(hdr) + h->group_len != h->body)
		return -EPROTO;
	*data = body + sizeof(msg_t);
	*group = (const char *)body + sizeof(msg_t) + msg_data_len(hdr);
	return 0;
}

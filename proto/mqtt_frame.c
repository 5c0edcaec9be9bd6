/*
 * mqtt_frame.c — fixed header and variable byte integers.
 *
 * mqtt_frame() is what the read path calls on every receive buffer, so it answers "need more" for anything
 * short, and refuses an oversized packet from its header alone: a client announcing 200 MB must be turned away
 * before we wait for (or buffer) the body.
 */
#include "mqtt_int.h"

int
mqtt_vbi_decode(const uint8_t *buf, size_t len, uint32_t *value)
{
	uint32_t v = 0;
	size_t i;

	/* Non-minimal encodings (0x80 0x00) are accepted: [MQTT-1.5.5-1] binds the sender, and refusing them
	 * buys nothing. A continuation bit on the fourth byte is malformed whether or not a fifth has arrived. */
	for (i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		v |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
		if ((buf[i] & 0x80) == 0) {
			*value = v;
			return (int)i + 1;
		}
	}
	return MQTT_E_MALFORMED;
}

int
mqtt_vbi_size(uint32_t value)
{
	if (value < 128)
		return 1;
	if (value < 16384)
		return 2;
	if (value < 2097152)
		return 3;
	if (value <= MQTT_VBI_MAX)
		return 4;
	return 0;
}

int
mqtt_vbi_encode(uint8_t *buf, uint32_t value)
{
	int n = 0;

	if (value > MQTT_VBI_MAX)
		return 0;
	do {
		uint8_t b = value & 0x7F;

		value >>= 7;
		if (value > 0)
			b |= 0x80;
		buf[n++] = b;
	} while (value > 0);
	return n;
}

int64_t
mqtt_frame(const uint8_t *buf, size_t len, uint32_t max_size, mqtt_frame_t *out)
{
	uint32_t remaining;
	uint64_t total;
	int n;

	if (len < 1)
		return 0;
	/* Type 0 is reserved in every version; failing on the first byte stops a stream of zeros early. */
	if ((buf[0] >> 4) == 0)
		return MQTT_E_MALFORMED;
	n = mqtt_vbi_decode(buf + 1, len - 1, &remaining);
	if (n < 0)
		return MQTT_E_MALFORMED;
	if (n == 0)
		return 0;
	total = 1 + (uint64_t)n + remaining;
	if (max_size != 0 && total > max_size)
		return MQTT_E_TOO_LARGE;
	if (len < total)
		return 0;
	out->type = buf[0] >> 4;
	out->flags = buf[0] & 0x0F;
	out->header_len = (uint8_t)(1 + n);
	out->remaining = remaining;
	out->body = buf + 1 + n;
	return (int64_t)total;
}

/*
 * mqtt_encode.c — packet encoders and their exact sizes.
 *
 * Every encoder computes its size with the same function the caller used to size the buffer, refuses a buffer
 * smaller than that, and only then writes, unchecked. Sizes are summed in 64 bits so that a field too large for
 * the wire format makes the whole packet unencodable (size 0) instead of wrapping.
 */
#include "mqtt_int.h"

/* Full packet size for a remaining length, 0 if it cannot be expressed. */
static uint32_t
packet_size(uint64_t rem)
{
	if (rem > MQTT_VBI_MAX)
		return 0;
	return (uint32_t)(1 + mqtt_vbi_size((uint32_t)rem) + rem);
}

static uint8_t *
wr_header(uint8_t *p, uint8_t type, uint8_t flags, uint64_t rem)
{
	p = wr_u8(p, (uint8_t)(type << 4 | flags));
	return wr_vbi(p, (uint32_t)rem);
}

/* Property block size (length VBI included) in a packet of `version`: nothing before MQTT 5. */
static uint64_t
props_part(uint8_t version, const mqtt_props_t *props, uint32_t *len)
{
	uint64_t n;

	*len = 0;
	if (version < MQTT_V5)
		return 0;
	n = mqtt_props_len(props);
	if (n > MQTT_VBI_MAX)
		return MQTT_TOO_BIG;
	*len = (uint32_t)n;
	return (uint64_t)mqtt_vbi_size(*len) + n;
}

static uint8_t *
wr_props(uint8_t *p, uint8_t version, const mqtt_props_t *props, uint32_t len)
{
	return version < MQTT_V5 ? p : mqtt_props_write(p, props, len);
}

static size_t
finish(uint8_t *buf, uint8_t *end)
{
	return (size_t)(end - buf);
}

/* --- CONNECT ------------------------------------------------------------------------------------------ */

static uint64_t
connect_rem(const mqtt_connect_t *c, uint32_t *plen, uint32_t *wplen)
{
	uint64_t n = (c->version == MQTT_V31 ? 2 + 6 : 2 + 4) + 1 + 1 + 2;

	n += props_part(c->version, &c->props, plen);
	n += bin_size(&c->client_id);
	*wplen = 0;
	if (c->will) {
		n += props_part(c->version, &c->will_props, wplen);
		n += bin_size(&c->will_topic) + bin_size(&c->will_payload);
	}
	if (c->has_username)
		n += bin_size(&c->username);
	if (c->has_password)
		n += bin_size(&c->password);
	return n;
}

uint32_t
mqtt_connect_size(const mqtt_connect_t *c)
{
	uint32_t plen, wplen;

	return packet_size(connect_rem(c, &plen, &wplen));
}

size_t
mqtt_encode_connect(uint8_t *buf, size_t cap, const mqtt_connect_t *c)
{
	uint32_t plen, wplen;
	uint64_t rem = connect_rem(c, &plen, &wplen);
	uint32_t total = packet_size(rem);
	uint8_t flags = 0, *p;

	if (total == 0 || cap < total)
		return 0;
	if (c->clean_start)
		flags |= 0x02;
	if (c->will)
		flags |= 0x04 | (uint8_t)((c->will_qos & 0x3) << 3) | (c->will_retain ? 0x20 : 0);
	if (c->has_password)
		flags |= 0x40;
	if (c->has_username)
		flags |= 0x80;

	p = wr_header(buf, MQTT_CONNECT, 0, rem);
	if (c->version == MQTT_V31)
		p = wr_raw(wr_u16(p, 6), (const uint8_t *)"MQIsdp", 6);
	else
		p = wr_raw(wr_u16(p, 4), (const uint8_t *)"MQTT", 4);
	p = wr_u8(p, c->version);
	p = wr_u8(p, flags);
	p = wr_u16(p, c->keep_alive);
	p = wr_props(p, c->version, &c->props, plen);
	p = wr_bin(p, &c->client_id);
	if (c->will) {
		p = wr_props(p, c->version, &c->will_props, wplen);
		p = wr_bin(p, &c->will_topic);
		p = wr_bin(p, &c->will_payload);
	}
	if (c->has_username)
		p = wr_bin(p, &c->username);
	if (c->has_password)
		p = wr_bin(p, &c->password);
	return finish(buf, p);
}

/* --- CONNACK ------------------------------------------------------------------------------------------ */

uint32_t
mqtt_connack_size(uint8_t version, const mqtt_connack_t *c)
{
	uint32_t plen;

	return packet_size(2 + props_part(version, &c->props, &plen));
}

size_t
mqtt_encode_connack(uint8_t *buf, size_t cap, uint8_t version, const mqtt_connack_t *c)
{
	uint32_t plen;
	uint64_t rem = 2 + props_part(version, &c->props, &plen);
	uint32_t total = packet_size(rem);
	uint8_t *p;

	if (total == 0 || cap < total)
		return 0;
	p = wr_header(buf, MQTT_CONNACK, 0, rem);
	/* 3.1's first byte is reserved: a 3.1 client may refuse a Session Present flag it does not know */
	p = wr_u8(p, c->session_present && version != MQTT_V31 ? 1 : 0);
	p = wr_u8(p, c->reason);
	p = wr_props(p, version, &c->props, plen);
	return finish(buf, p);
}

/* --- PUBLISH ------------------------------------------------------------------------------------------ */

static uint64_t
publish_rem(uint8_t version, const mqtt_publish_t *m, uint32_t *plen)
{
	return bin_size(&m->topic) + (m->qos > 0 ? 2 : 0) + props_part(version, &m->props, plen) + m->payload.len;
}

uint32_t
mqtt_publish_size(uint8_t version, const mqtt_publish_t *m)
{
	uint32_t plen;

	return packet_size(publish_rem(version, m, &plen));
}

size_t
mqtt_encode_publish(uint8_t *buf, size_t cap, uint8_t version, const mqtt_publish_t *m)
{
	uint32_t plen;
	uint64_t rem = publish_rem(version, m, &plen);
	uint32_t total = packet_size(rem);
	uint8_t flags, *p;

	if (total == 0 || cap < total)
		return 0;
	flags = (uint8_t)((m->dup ? 0x08 : 0) | (m->qos & 0x3) << 1 | (m->retain ? 0x01 : 0));
	p = wr_header(buf, MQTT_PUBLISH, flags, rem);
	p = wr_bin(p, &m->topic);
	if (m->qos > 0)
		p = wr_u16(p, m->packet_id);
	p = wr_props(p, version, &m->props, plen);
	p = wr_raw(p, m->payload.p, m->payload.len);
	return finish(buf, p);
}

/* --- PUBACK / PUBREC / PUBREL / PUBCOMP ----------------------------------------------------------------- */

/* Remaining length after the packet id: MQTT 5 section 3.4.2.1 lets both trailing fields go when unneeded. */
static uint64_t
reason_rem(uint8_t version, const mqtt_ack_t *a, uint32_t *plen)
{
	uint64_t props;

	*plen = 0;
	if (version < MQTT_V5)
		return 0;
	props = props_part(version, &a->props, plen);
	if (*plen == 0 && props < MQTT_TOO_BIG)
		return a->reason == 0 ? 0 : 1;
	return 1 + props;
}

static uint8_t *
wr_reason(uint8_t *p, const mqtt_ack_t *a, uint64_t rem, uint32_t plen)
{
	if (rem >= 1)
		p = wr_u8(p, a->reason);
	if (rem > 1)
		p = mqtt_props_write(p, &a->props, plen);
	return p;
}

uint32_t
mqtt_ack_size(uint8_t version, const mqtt_ack_t *a)
{
	uint32_t plen;

	return packet_size(2 + reason_rem(version, a, &plen));
}

size_t
mqtt_encode_ack(uint8_t *buf, size_t cap, uint8_t type, uint8_t version, const mqtt_ack_t *a)
{
	uint32_t plen, total;
	uint64_t rem = reason_rem(version, a, &plen);
	uint8_t *p;

	if (type < MQTT_PUBACK || type > MQTT_PUBCOMP)
		return 0;
	total = packet_size(2 + rem);
	if (total == 0 || cap < total)
		return 0;
	p = wr_header(buf, type, type == MQTT_PUBREL ? 0x2 : 0, 2 + rem);
	p = wr_u16(p, a->packet_id);
	p = wr_reason(p, a, rem, plen);
	return finish(buf, p);
}

/* --- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------------------------------- */

static uint64_t
sub_rem(uint8_t version, const mqtt_props_t *props, const mqtt_str_t *filters, uint32_t n, uint32_t per,
	uint32_t *plen)
{
	uint64_t rem = 2 + props_part(version, props, plen);
	uint32_t i;

	for (i = 0; i < n; i++)
		rem += bin_size(&filters[i]) + per;
	return rem;
}

uint32_t
mqtt_subscribe_size(uint8_t version, const mqtt_props_t *props, const mqtt_str_t *filters, uint32_t n)
{
	uint32_t plen;

	return packet_size(sub_rem(version, props, filters, n, 1, &plen));
}

size_t
mqtt_encode_subscribe(uint8_t *buf, size_t cap, uint8_t version, uint16_t packet_id,
	const mqtt_props_t *props, const mqtt_str_t *filters, const mqtt_subopts_t *opts, uint32_t n)
{
	uint32_t plen;
	uint64_t rem = sub_rem(version, props, filters, n, 1, &plen);
	uint32_t total = packet_size(rem);
	uint8_t *p;
	uint32_t i;

	if (total == 0 || cap < total)
		return 0;
	p = wr_header(buf, MQTT_SUBSCRIBE, 0x2, rem);
	p = wr_u16(p, packet_id);
	p = wr_props(p, version, props, plen);
	for (i = 0; i < n; i++) {
		uint8_t o = opts[i].qos & 0x3;

		/* 3.1.1 has only the QoS bits; the rest are reserved and must be 0 [MQTT-3.8.3-4] */
		if (version == MQTT_V5)
			o |= (uint8_t)((opts[i].no_local ? 0x04 : 0) | (opts[i].retain_as_published ? 0x08 : 0)
				| (opts[i].retain_handling & 0x3) << 4);
		p = wr_bin(p, &filters[i]);
		p = wr_u8(p, o);
	}
	return finish(buf, p);
}

uint32_t
mqtt_unsubscribe_size(uint8_t version, const mqtt_props_t *props, const mqtt_str_t *filters, uint32_t n)
{
	uint32_t plen;

	return packet_size(sub_rem(version, props, filters, n, 0, &plen));
}

size_t
mqtt_encode_unsubscribe(uint8_t *buf, size_t cap, uint8_t version, uint16_t packet_id,
	const mqtt_props_t *props, const mqtt_str_t *filters, uint32_t n)
{
	uint32_t plen;
	uint64_t rem = sub_rem(version, props, filters, n, 0, &plen);
	uint32_t total = packet_size(rem);
	uint8_t *p;
	uint32_t i;

	if (total == 0 || cap < total)
		return 0;
	p = wr_header(buf, MQTT_UNSUBSCRIBE, 0x2, rem);
	p = wr_u16(p, packet_id);
	p = wr_props(p, version, props, plen);
	for (i = 0; i < n; i++)
		p = wr_bin(p, &filters[i]);
	return finish(buf, p);
}

/* --- SUBACK / UNSUBACK -------------------------------------------------------------------------------- */

static uint64_t
suback_rem(uint8_t type, uint8_t version, const mqtt_suback_t *s, uint32_t *plen)
{
	uint64_t rem = 2 + props_part(version, &s->props, plen);

	if (!(type == MQTT_UNSUBACK && version < MQTT_V5))
		rem += s->count;
	return rem;
}

uint32_t
mqtt_suback_size(uint8_t version, const mqtt_suback_t *s)
{
	uint32_t plen;

	return packet_size(suback_rem(MQTT_SUBACK, version, s, &plen));
}

size_t
mqtt_encode_suback(uint8_t *buf, size_t cap, uint8_t type, uint8_t version, const mqtt_suback_t *s)
{
	uint32_t plen, total;
	uint64_t rem;
	uint8_t *p;

	if (type != MQTT_SUBACK && type != MQTT_UNSUBACK)
		return 0;
	rem = suback_rem(type, version, s, &plen);
	total = packet_size(rem);
	if (total == 0 || cap < total)
		return 0;
	p = wr_header(buf, type, 0, rem);
	p = wr_u16(p, s->packet_id);
	p = wr_props(p, version, &s->props, plen);
	if (!(type == MQTT_UNSUBACK && version < MQTT_V5))
		p = wr_raw(p, s->reasons, s->count);
	return finish(buf, p);
}

/* --- DISCONNECT / AUTH / PINGREQ / PINGRESP ----------------------------------------------------------- */

uint32_t
mqtt_disconnect_size(uint8_t version, const mqtt_ack_t *d)
{
	uint32_t plen;

	return packet_size(reason_rem(version, d, &plen));
}

static size_t
encode_reason_only(uint8_t *buf, size_t cap, uint8_t type, uint8_t version, const mqtt_ack_t *d)
{
	uint32_t plen, total;
	uint64_t rem = reason_rem(version, d, &plen);
	uint8_t *p;

	total = packet_size(rem);
	if (total == 0 || cap < total)
		return 0;
	p = wr_header(buf, type, 0, rem);
	p = wr_reason(p, d, rem, plen);
	return finish(buf, p);
}

size_t
mqtt_encode_disconnect(uint8_t *buf, size_t cap, uint8_t version, const mqtt_ack_t *d)
{
	return encode_reason_only(buf, cap, MQTT_DISCONNECT, version, d);
}

size_t
mqtt_encode_auth(uint8_t *buf, size_t cap, const mqtt_ack_t *a)
{
	return encode_reason_only(buf, cap, MQTT_AUTH, MQTT_V5, a);
}

size_t
mqtt_encode_empty(uint8_t *buf, size_t cap, uint8_t type)
{
	if (cap < 2 || type == 0 || type > MQTT_AUTH)
		return 0;
	buf[0] = (uint8_t)(type << 4 | (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE
		? 0x2 : 0));
	buf[1] = 0;
	return 2;
}

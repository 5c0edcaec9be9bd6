/*
 * mqtt_props.c — MQTT 5 properties (section 2.2.2): decoding with per-packet validation, sizing, encoding, and
 * walking the user property run.
 *
 * One table drives everything: each property's data type, where the value lives in mqtt_props_t, and the
 * packet types it may appear in. Decoding fills the struct and checks the value ranges the spec calls a
 * Protocol Error; encoding walks the same table in id order, which is also the order the spec lists them.
 */
#include <stddef.h>

#include "mqtt_int.h"

enum ptype {
	PT_NONE,
	PT_BYTE,
	PT_U16,
	PT_U32,
	PT_VBI,
	PT_UTF8,
	PT_BIN,
	PT_PAIR,
};

#define W(t) (1u << (t))
#define W_WILL W(MQTT_WILL_PROPS)
#define W_ACKS (W(MQTT_PUBACK) | W(MQTT_PUBREC) | W(MQTT_PUBREL) | W(MQTT_PUBCOMP))

#define PROP_ID_MAX MQTT_PROP_SHARED_SUB_AVAILABLE

struct prop_info {
	uint8_t type;          /* enum ptype */
	uint16_t off;          /* offset of the value in mqtt_props_t */
	uint16_t where;        /* W(packet type) bits */
};

#define P(id, t, field, w) [id] = { t, offsetof(mqtt_props_t, field), w }

/* MQTT 5 table 2-4. */
static const struct prop_info prop_table[PROP_ID_MAX + 1] = {
	P(MQTT_PROP_PAYLOAD_FORMAT, PT_BYTE, payload_format, W(MQTT_PUBLISH) | W_WILL),
	P(MQTT_PROP_MESSAGE_EXPIRY, PT_U32, message_expiry, W(MQTT_PUBLISH) | W_WILL),
	P(MQTT_PROP_CONTENT_TYPE, PT_UTF8, content_type, W(MQTT_PUBLISH) | W_WILL),
	P(MQTT_PROP_RESPONSE_TOPIC, PT_UTF8, response_topic, W(MQTT_PUBLISH) | W_WILL),
	P(MQTT_PROP_CORRELATION_DATA, PT_BIN, correlation_data, W(MQTT_PUBLISH) | W_WILL),
	P(MQTT_PROP_SUBSCRIPTION_ID, PT_VBI, sub_ids, W(MQTT_PUBLISH) | W(MQTT_SUBSCRIBE)),
	P(MQTT_PROP_SESSION_EXPIRY, PT_U32, session_expiry, W(MQTT_CONNECT) | W(MQTT_CONNACK) | W(MQTT_DISCONNECT)),
	P(MQTT_PROP_ASSIGNED_CLIENT_ID, PT_UTF8, assigned_client_id, W(MQTT_CONNACK)),
	P(MQTT_PROP_SERVER_KEEP_ALIVE, PT_U16, server_keep_alive, W(MQTT_CONNACK)),
	P(MQTT_PROP_AUTH_METHOD, PT_UTF8, auth_method, W(MQTT_CONNECT) | W(MQTT_CONNACK) | W(MQTT_AUTH)),
	P(MQTT_PROP_AUTH_DATA, PT_BIN, auth_data, W(MQTT_CONNECT) | W(MQTT_CONNACK) | W(MQTT_AUTH)),
	P(MQTT_PROP_REQUEST_PROBLEM_INFO, PT_BYTE, request_problem_info, W(MQTT_CONNECT)),
	P(MQTT_PROP_WILL_DELAY, PT_U32, will_delay, W_WILL),
	P(MQTT_PROP_REQUEST_RESPONSE_INFO, PT_BYTE, request_response_info, W(MQTT_CONNECT)),
	P(MQTT_PROP_RESPONSE_INFO, PT_UTF8, response_info, W(MQTT_CONNACK)),
	P(MQTT_PROP_SERVER_REFERENCE, PT_UTF8, server_reference, W(MQTT_CONNACK) | W(MQTT_DISCONNECT)),
	P(MQTT_PROP_REASON_STRING, PT_UTF8, reason_string, W(MQTT_CONNACK) | W_ACKS | W(MQTT_SUBACK)
		| W(MQTT_UNSUBACK) | W(MQTT_DISCONNECT) | W(MQTT_AUTH)),
	P(MQTT_PROP_RECEIVE_MAXIMUM, PT_U16, receive_maximum, W(MQTT_CONNECT) | W(MQTT_CONNACK)),
	P(MQTT_PROP_TOPIC_ALIAS_MAXIMUM, PT_U16, topic_alias_maximum, W(MQTT_CONNECT) | W(MQTT_CONNACK)),
	P(MQTT_PROP_TOPIC_ALIAS, PT_U16, topic_alias, W(MQTT_PUBLISH)),
	P(MQTT_PROP_MAXIMUM_QOS, PT_BYTE, maximum_qos, W(MQTT_CONNACK)),
	P(MQTT_PROP_RETAIN_AVAILABLE, PT_BYTE, retain_available, W(MQTT_CONNACK)),
	P(MQTT_PROP_USER_PROPERTY, PT_PAIR, user, W(MQTT_CONNECT) | W(MQTT_CONNACK) | W(MQTT_PUBLISH) | W_WILL
		| W_ACKS | W(MQTT_SUBSCRIBE) | W(MQTT_SUBACK) | W(MQTT_UNSUBSCRIBE) | W(MQTT_UNSUBACK)
		| W(MQTT_DISCONNECT) | W(MQTT_AUTH)),
	P(MQTT_PROP_MAXIMUM_PACKET_SIZE, PT_U32, maximum_packet_size, W(MQTT_CONNECT) | W(MQTT_CONNACK)),
	P(MQTT_PROP_WILDCARD_SUB_AVAILABLE, PT_BYTE, wildcard_sub_available, W(MQTT_CONNACK)),
	P(MQTT_PROP_SUB_ID_AVAILABLE, PT_BYTE, sub_id_available, W(MQTT_CONNACK)),
	P(MQTT_PROP_SHARED_SUB_AVAILABLE, PT_BYTE, shared_sub_available, W(MQTT_CONNACK)),
};

#define FIELD(p, info, T) ((T *)((char *)(p) + (info)->off))
#define CFIELD(p, info, T) ((const T *)((const char *)(p) + (info)->off))

bool
mqtt_prop_allowed(uint8_t type, uint8_t id)
{
	return id <= PROP_ID_MAX && prop_table[id].type != PT_NONE && type < 16 && (prop_table[id].where & W(type)) != 0;
}

/*
 * Value ranges: each of these is "a Protocol Error" in section 3 (receive maximum 0 [3.1.2.11.3], maximum
 * packet size 0 [3.1.2.11.4], topic alias 0 [MQTT-3.3.2-8], any boolean byte other than 0 or 1).
 */
static int
check_value(uint8_t id, uint32_t v)
{
	switch (id) {
	case MQTT_PROP_PAYLOAD_FORMAT:
	case MQTT_PROP_REQUEST_PROBLEM_INFO:
	case MQTT_PROP_REQUEST_RESPONSE_INFO:
	case MQTT_PROP_MAXIMUM_QOS:
	case MQTT_PROP_RETAIN_AVAILABLE:
	case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
	case MQTT_PROP_SUB_ID_AVAILABLE:
	case MQTT_PROP_SHARED_SUB_AVAILABLE:
		return v <= 1 ? MQTT_OK : MQTT_E_PROPERTY;
	case MQTT_PROP_RECEIVE_MAXIMUM:
	case MQTT_PROP_MAXIMUM_PACKET_SIZE:
	case MQTT_PROP_SUBSCRIPTION_ID:
		return v != 0 ? MQTT_OK : MQTT_E_PROPERTY;
	case MQTT_PROP_TOPIC_ALIAS:
		/* 0 is checked by the receiver with its Topic Alias Maximum: it answers 0x94, not 0x82. */
	default:
		return MQTT_OK;
	}
}

/* Read one property value of type t at r, without storing it. Used to skip and to validate. */
static int
read_value(rd_t *r, uint8_t t, uint32_t *num, mqtt_str_t *s1, mqtt_str_t *s2)
{
	uint8_t b;
	uint16_t w;

	switch (t) {
	case PT_BYTE:
		if (!rd_u8(r, &b))
			return MQTT_E_MALFORMED;
		*num = b;
		return MQTT_OK;
	case PT_U16:
		if (!rd_u16(r, &w))
			return MQTT_E_MALFORMED;
		*num = w;
		return MQTT_OK;
	case PT_U32:
		return rd_u32(r, num) ? MQTT_OK : MQTT_E_MALFORMED;
	case PT_VBI:
		return rd_vbi(r, num) ? MQTT_OK : MQTT_E_MALFORMED;
	case PT_UTF8:
	case PT_BIN:
		return rd_bin(r, s1) ? MQTT_OK : MQTT_E_MALFORMED;
	case PT_PAIR:
		return rd_bin(r, s1) && rd_bin(r, s2) ? MQTT_OK : MQTT_E_MALFORMED;
	default:
		return MQTT_E_MALFORMED;
	}
}

int
mqtt_props_decode_rd(rd_t *r, uint8_t type, mqtt_props_t *out)
{
	const uint8_t *user_first = NULL, *user_end = NULL;
	uint32_t len;
	rd_t pr;

	memset(out, 0, sizeof(*out));
	/* [MQTT-2.2.2-1]: the block must fit in what is left of the packet */
	if (!rd_vbi(r, &len) || len > rd_left(r))
		return MQTT_E_MALFORMED;
	pr.pos = r->pos;
	pr.end = r->pos + len;
	r->pos += len;

	while (pr.pos < pr.end) {
		const uint8_t *start = pr.pos;
		const struct prop_info *info;
		mqtt_str_t s1 = { NULL, 0 }, s2 = { NULL, 0 };
		uint32_t num = 0;
		uint64_t bit;
		uint8_t id = *pr.pos++;
		bool repeatable;
		int rc;

		/*
		 * MQTT 5 2.2.2.2: "contains an Identifier which is not valid for its packet type ... is a Malformed
		 * Packet" — unknown ids included. The id is a one-byte VBI: every defined id is below 0x80, so a
		 * multi-byte id is unknown as well.
		 */
		if (!mqtt_prop_allowed(type, id))
			return MQTT_E_MALFORMED;
		info = &prop_table[id];
		bit = MQTT_PROP_BIT(id);
		repeatable = id == MQTT_PROP_USER_PROPERTY || (id == MQTT_PROP_SUBSCRIPTION_ID && type == MQTT_PUBLISH);
		if ((out->present & bit) && !repeatable)
			return MQTT_E_PROPERTY;
		out->present |= bit;

		rc = read_value(&pr, info->type, &num, &s1, &s2);
		if (rc < 0)
			return rc;
		if ((rc = check_value(id, num)) < 0)
			return rc;

		switch (info->type) {
		case PT_BYTE:
			*FIELD(out, info, uint8_t) = (uint8_t)num;
			break;
		case PT_U16:
			*FIELD(out, info, uint16_t) = (uint16_t)num;
			break;
		case PT_U32:
			*FIELD(out, info, uint32_t) = num;
			break;
		case PT_VBI:
			/* Beyond MQTT_MAX_SUB_IDS the ids are validated but dropped: a client that subscribes with
			 * more overlapping identifiers than that gets the first ones. */
			if (out->n_sub_ids < MQTT_MAX_SUB_IDS)
				out->sub_ids[out->n_sub_ids++] = num;
			break;
		case PT_UTF8:
			if (!mqtt_utf8_valid(s1.p, s1.len))
				return MQTT_E_UTF8;
			/* [MQTT-3.3.2-14]: the response topic is a topic name, wildcards not allowed */
			if (id == MQTT_PROP_RESPONSE_TOPIC && !mqtt_topic_name_valid(s1.p, s1.len))
				return MQTT_E_PROPERTY;
			*FIELD(out, info, mqtt_str_t) = s1;
			break;
		case PT_BIN:
			*FIELD(out, info, mqtt_str_t) = s1;
			break;
		case PT_PAIR:
			if (!mqtt_utf8_valid(s1.p, s1.len) || !mqtt_utf8_valid(s2.p, s2.len))
				return MQTT_E_UTF8;
			if (user_first == NULL)
				user_first = start;
			user_end = pr.pos;
			break;
		}
	}
	if (user_first != NULL) {
		out->user.p = user_first;
		out->user.len = (uint32_t)(user_end - user_first);
	}
	/* "It is a Protocol Error to include Authentication Data if there is no Authentication Method" */
	if ((out->present & MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA)) && !(out->present & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)))
		return MQTT_E_PROPERTY;
	return MQTT_OK;
}

/*
 * Find the next user property in a run, skipping any other property interleaved in it. Sets [*s, *e) to the
 * whole entry (id byte included) and its key and value. Stops (false) at the end or at anything unparsable,
 * so a hand-built run that is garbage is encoded up to its first bad entry, never beyond its end.
 */
static bool
user_next(rd_t *it, const uint8_t **s, mqtt_str_t *key, mqtt_str_t *value)
{
	while (it->pos < it->end) {
		const uint8_t *start = it->pos;
		uint32_t num;
		uint8_t id = *it->pos++;

		if (id > PROP_ID_MAX || prop_table[id].type == PT_NONE
		    || read_value(it, prop_table[id].type, &num, key, value) < 0) {
			it->pos = it->end;
			return false;
		}
		if (id == MQTT_PROP_USER_PROPERTY) {
			*s = start;
			return true;
		}
	}
	return false;
}

void
mqtt_user_prop_iter(const mqtt_props_t *p, mqtt_iter_t *it)
{
	/* no arithmetic on a NULL view: that is undefined even for + 0 */
	it->pos = p->user.p;
	it->end = p->user.p != NULL ? p->user.p + p->user.len : NULL;
}

bool
mqtt_user_prop_next(mqtt_iter_t *it, mqtt_str_t *key, mqtt_str_t *value)
{
	rd_t r = { it->pos, it->end };
	const uint8_t *s;
	bool ok;

	if (it->pos == NULL)
		return false;
	ok = user_next(&r, &s, key, value);
	it->pos = r.pos;
	return ok;
}

static bool
present(const mqtt_props_t *p, uint8_t id)
{
	return (p->present & MQTT_PROP_BIT(id)) != 0;
}

uint64_t
mqtt_props_len(const mqtt_props_t *p)
{
	uint64_t n = 0;
	unsigned id, i;

	if (p == NULL)
		return 0;
	for (id = 1; id <= PROP_ID_MAX; id++) {
		const struct prop_info *info = &prop_table[id];

		if (info->type == PT_NONE || !present(p, (uint8_t)id))
			continue;
		switch (info->type) {
		case PT_BYTE:
			n += 2;
			break;
		case PT_U16:
			n += 3;
			break;
		case PT_U32:
			n += 5;
			break;
		case PT_VBI:
			for (i = 0; i < p->n_sub_ids && i < MQTT_MAX_SUB_IDS; i++) {
				int vs = mqtt_vbi_size(p->sub_ids[i]);

				n += vs > 0 ? 1 + (uint64_t)vs : MQTT_TOO_BIG;
			}
			break;
		case PT_UTF8:
		case PT_BIN:
			n += 1 + bin_size(CFIELD(p, info, mqtt_str_t));
			break;
		case PT_PAIR: {
			mqtt_str_t k, v;
			const uint8_t *s;
			rd_t r;

			if (p->user.p == NULL)
				break;
			r.pos = p->user.p;
			r.end = p->user.p + p->user.len;
			while (user_next(&r, &s, &k, &v))
				n += (uint64_t)(r.pos - s);
			break;
		}
		}
	}
	return n;
}

uint8_t *
mqtt_props_write(uint8_t *p, const mqtt_props_t *pr, uint32_t len)
{
	unsigned id, i;

	p = wr_vbi(p, len);
	if (pr == NULL)
		return p;
	for (id = 1; id <= PROP_ID_MAX; id++) {
		const struct prop_info *info = &prop_table[id];

		if (info->type == PT_NONE || !present(pr, (uint8_t)id))
			continue;
		switch (info->type) {
		case PT_BYTE:
			p = wr_u8(p, (uint8_t)id);
			p = wr_u8(p, *CFIELD(pr, info, uint8_t));
			break;
		case PT_U16:
			p = wr_u8(p, (uint8_t)id);
			p = wr_u16(p, *CFIELD(pr, info, uint16_t));
			break;
		case PT_U32:
			p = wr_u8(p, (uint8_t)id);
			p = wr_u32(p, *CFIELD(pr, info, uint32_t));
			break;
		case PT_VBI:
			for (i = 0; i < pr->n_sub_ids && i < MQTT_MAX_SUB_IDS; i++) {
				p = wr_u8(p, (uint8_t)id);
				p = wr_vbi(p, pr->sub_ids[i]);
			}
			break;
		case PT_UTF8:
		case PT_BIN:
			p = wr_u8(p, (uint8_t)id);
			p = wr_bin(p, CFIELD(pr, info, mqtt_str_t));
			break;
		case PT_PAIR: {
			mqtt_str_t k, v;
			const uint8_t *s;
			rd_t r;

			if (pr->user.p == NULL)
				break;
			r.pos = pr->user.p;
			r.end = pr->user.p + pr->user.len;
			while (user_next(&r, &s, &k, &v))
				p = wr_raw(p, s, (size_t)(r.pos - s));
			break;
		}
		}
	}
	return p;
}

uint32_t
mqtt_props_size(const mqtt_props_t *props)
{
	uint64_t len = mqtt_props_len(props);

	if (len > MQTT_VBI_MAX)
		return 0;
	return (uint32_t)(mqtt_vbi_size((uint32_t)len) + len);
}

size_t
mqtt_props_encode(uint8_t *buf, size_t cap, const mqtt_props_t *pr)
{
	uint64_t len = mqtt_props_len(pr);
	uint32_t total;

	if (len > MQTT_VBI_MAX)
		return 0;
	total = (uint32_t)(mqtt_vbi_size((uint32_t)len) + len);
	if (cap < total)
		return 0;
	return (size_t)(mqtt_props_write(buf, pr, (uint32_t)len) - buf);
}

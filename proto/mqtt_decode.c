/*
 * mqtt_decode.c — one decoder per packet type, over a frame from mqtt_frame().
 *
 * A decoder reads only inside [f->body, f->body + f->remaining), fills the caller's struct with views into that
 * range and returns the first rule the packet breaks. Structural problems come first (they make the rest of the
 * packet meaningless); semantic ones (a client id we must reject) are reported only for a packet that parsed
 * to its last byte. Which errors close the connection and which earn a CONNACK or DISCONNECT reason is
 * decided in mqtt_err.c, not here.
 */
#include "mqtt_int.h"

static void
rd_init(rd_t *r, const mqtt_frame_t *f)
{
	r->pos = f->body;
	r->end = f->body + f->remaining;
}

/* Fixed header flags of every type but PUBLISH are fixed [MQTT-2.2.2-1], [MQTT-2.1.3-1]. */
static uint8_t
required_flags(uint8_t type)
{
	return type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE ? 0x2 : 0x0;
}

static bool
header_ok(const mqtt_frame_t *f, uint8_t type)
{
	return f->type == type && f->flags == required_flags(type);
}

/*
 * MQTT 5 reason codes each packet may carry (sections 3.2.2.2, 3.4.2.1, 3.6.2.1, 3.9.3, 3.11.3, 3.14.2.1,
 * 3.15.2.1). A code outside the list is a protocol error: the peer is not speaking MQTT 5 as we know it.
 */
static const uint8_t rc_connack[] = { 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
	0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F };
static const uint8_t rc_puback[] = { 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99 };
static const uint8_t rc_pubrel[] = { 0x00, 0x92 };
static const uint8_t rc_suback[] = { 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2 };
static const uint8_t rc_unsuback[] = { 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91 };
static const uint8_t rc_disconnect[] = { 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F,
	0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2 };
static const uint8_t rc_auth[] = { 0x00, 0x18, 0x19 };
static const uint8_t rc_suback_v3[] = { 0x00, 0x01, 0x02, 0x80 };

#define RC_IN(rc, set) rc_in(rc, set, sizeof(set))

static bool
rc_in(uint8_t rc, const uint8_t *set, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (set[i] == rc)
			return true;
	}
	return false;
}

int
mqtt_decode_connect(const mqtt_frame_t *f, mqtt_connect_t *out)
{
	mqtt_str_t name;
	uint8_t level, flags;
	rd_t r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!header_ok(f, MQTT_CONNECT))
		return MQTT_E_MALFORMED;
	rd_init(&r, f);
	if (!rd_bin(&r, &name) || !rd_u8(&r, &level))
		return MQTT_E_MALFORMED;
	/*
	 * The level is kept even when refused, so the caller can answer in the client's own dialect: with a wrong
	 * protocol name too, since the byte after the name is where every MQTT version puts its level, and a
	 * client that wrote 5 there is asking for MQTT 5's answer (CONNACK 0x84) [MQTT-3.1.2-1].
	 */
	out->version = level;
	if (!str_eq(&name, "MQTT") && !str_eq(&name, "MQIsdp"))
		return MQTT_E_PROTOCOL_NAME;
	/* [MQTT-3.1.2-2]: a level we do not speak is refused as such (CONNACK 1 / 0x84); a level we speak with
	 * the other version's name ("MQIsdp" at 4, "MQTT" at 3) is a wrong protocol name for that level
	 * [MQTT-3.1.2-1]: a 3.x client is closed without CONNACK. */
	if (level != MQTT_V31 && level != MQTT_V311 && level != MQTT_V5)
		return MQTT_E_VERSION;
	if (str_eq(&name, "MQIsdp") != (level == MQTT_V31))
		return MQTT_E_PROTOCOL_NAME;
	if (!rd_u8(&r, &flags) || !rd_u16(&r, &out->keep_alive))
		return MQTT_E_MALFORMED;

	/* [MQTT-3.1.2-3] */
	if (flags & 0x01)
		return MQTT_E_MALFORMED;
	out->clean_start = (flags & 0x02) != 0;
	out->will = (flags & 0x04) != 0;
	out->will_qos = (flags >> 3) & 0x3;
	out->will_retain = (flags & 0x20) != 0;
	out->has_password = (flags & 0x40) != 0;
	out->has_username = (flags & 0x80) != 0;
	/* [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]: will QoS and retain only with a will; QoS 3 never */
	if (!out->will && (out->will_qos != 0 || out->will_retain))
		return MQTT_E_MALFORMED;
	if (out->will_qos == 3)
		return MQTT_E_MALFORMED;
	/* [MQTT-3.1.2-22]: 3.1.1 wants a user name with every password; MQTT 5 dropped the rule (3.1.2.9) */
	if (level < MQTT_V5 && out->has_password && !out->has_username)
		return MQTT_E_MALFORMED;

	if (level == MQTT_V5 && (rc = mqtt_props_decode_rd(&r, MQTT_CONNECT, &out->props)) < 0)
		return rc;
	if (!rd_bin(&r, &out->client_id))
		return MQTT_E_MALFORMED;
	if (out->will) {
		if (level == MQTT_V5 && (rc = mqtt_props_decode_rd(&r, MQTT_WILL_PROPS, &out->will_props)) < 0)
			return rc;
		if (!rd_bin(&r, &out->will_topic) || !rd_bin(&r, &out->will_payload))
			return MQTT_E_MALFORMED;
		if (!mqtt_utf8_valid(out->will_topic.p, out->will_topic.len))
			return MQTT_E_UTF8;
		/* [MQTT-3.1.3-11] */
		if (!mqtt_topic_name_valid(out->will_topic.p, out->will_topic.len))
			return MQTT_E_TOPIC_NAME;
	}
	if (out->has_username) {
		if (!rd_bin(&r, &out->username))
			return MQTT_E_MALFORMED;
		if (!mqtt_utf8_valid(out->username.p, out->username.len))
			return MQTT_E_UTF8;
	}
	if (out->has_password && !rd_bin(&r, &out->password))
		return MQTT_E_MALFORMED;
	if (r.pos != r.end)
		return MQTT_E_MALFORMED;

	/* [MQTT-3.1.3-4], [MQTT-1.5.3-1], [MQTT-1.5.3-2]: a client id that is not a valid UTF-8 string makes the
	 * CONNECT malformed (3.1.1 closes, MQTT 5 answers 0x81); return code 2 is for ids we choose to refuse */
	if (!mqtt_utf8_valid(out->client_id.p, out->client_id.len))
		return MQTT_E_UTF8;
	/* [MQTT-3.1.3-8]: 3.1.1 rejects an empty id that asks for a persistent session; 3.1 wants 1..23 chars,
	 * and we enforce only the lower bound since every broker in use accepts longer ids. */
	if (out->client_id.len == 0 && (level == MQTT_V31 || (level == MQTT_V311 && !out->clean_start)))
		return MQTT_E_CLIENT_ID;
	return MQTT_OK;
}

int
mqtt_decode_connack(const mqtt_frame_t *f, uint8_t version, mqtt_connack_t *out)
{
	uint8_t ack_flags;
	rd_t r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!header_ok(f, MQTT_CONNACK))
		return MQTT_E_MALFORMED;
	rd_init(&r, f);
	if (!rd_u8(&r, &ack_flags) || !rd_u8(&r, &out->reason))
		return MQTT_E_MALFORMED;
	/* [MQTT-3.2.2-1]: bits 7..1 reserved */
	if (ack_flags & 0xFE)
		return MQTT_E_MALFORMED;
	/* 3.1 has no Session Present flag; reading bit 0 as one would make up a session */
	out->session_present = (ack_flags & 0x01) && version != MQTT_V31;
	if (version == MQTT_V5) {
		if ((rc = mqtt_props_decode_rd(&r, MQTT_CONNACK, &out->props)) < 0)
			return rc;
		if (!RC_IN(out->reason, rc_connack))
			return MQTT_E_PROTOCOL;
	} else if (out->reason > MQTT_V3_NOT_AUTHORIZED) {
		return MQTT_E_PROTOCOL;
	}
	if (r.pos != r.end)
		return MQTT_E_MALFORMED;
	/* [MQTT-3.2.2-4], [MQTT-3.2.2-6]: a refusal never comes with a session */
	if (out->reason != 0 && out->session_present)
		return MQTT_E_PROTOCOL;
	return MQTT_OK;
}

int
mqtt_decode_publish(const mqtt_frame_t *f, uint8_t version, mqtt_publish_t *out)
{
	rd_t r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (f->type != MQTT_PUBLISH)
		return MQTT_E_MALFORMED;
	out->dup = (f->flags & 0x08) != 0;
	out->qos = (f->flags >> 1) & 0x3;
	out->retain = (f->flags & 0x01) != 0;
	/* [MQTT-3.3.1-4] */
	if (out->qos == 3)
		return MQTT_E_QOS;
	/* [MQTT-3.3.1-2] */
	if (out->dup && out->qos == 0)
		return MQTT_E_MALFORMED;
	rd_init(&r, f);
	if (!rd_bin(&r, &out->topic))
		return MQTT_E_MALFORMED;
	if (out->qos > 0) {
		if (!rd_u16(&r, &out->packet_id))
			return MQTT_E_MALFORMED;
		/* [MQTT-2.2.1-3] */
		if (out->packet_id == 0)
			return MQTT_E_PACKET_ID;
	}
	if (version == MQTT_V5 && (rc = mqtt_props_decode_rd(&r, MQTT_PUBLISH, &out->props)) < 0)
		return rc;
	out->payload.p = r.pos;
	out->payload.len = (uint32_t)rd_left(&r);

	if (out->topic.len == 0) {
		/* 3.1.1 [MQTT-4.7.3-1]: at least one character. MQTT 5 3.3.2.3.4 allows it when a topic alias
		 * supplies the name (which the receiver resolves), and calls it a Protocol Error otherwise. */
		if (version != MQTT_V5)
			return MQTT_E_TOPIC_NAME;
		if (out->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))
			return MQTT_OK;
		return MQTT_E_PROTOCOL;
	}
	if (!mqtt_utf8_valid(out->topic.p, out->topic.len))
		return MQTT_E_UTF8;
	/* [MQTT-3.3.2-2] */
	if (!mqtt_topic_name_valid(out->topic.p, out->topic.len))
		return MQTT_E_TOPIC_NAME;
	return MQTT_OK;
}

/* Reason code + properties, each omittable from the end (MQTT 5 sections 3.4.2.1, 3.14.2.1, 3.15.2.1). */
static int
reason_and_props(rd_t *r, uint8_t type, mqtt_ack_t *out)
{
	int rc;

	if (rd_left(r) == 0)
		return MQTT_OK;
	(void)rd_u8(r, &out->reason);
	if (rd_left(r) == 0)
		return MQTT_OK;
	if ((rc = mqtt_props_decode_rd(r, type, &out->props)) < 0)
		return rc;
	return r->pos == r->end ? MQTT_OK : MQTT_E_MALFORMED;
}

int
mqtt_decode_ack(const mqtt_frame_t *f, uint8_t version, mqtt_ack_t *out)
{
	rd_t r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (f->type < MQTT_PUBACK || f->type > MQTT_PUBCOMP || !header_ok(f, f->type))
		return MQTT_E_MALFORMED;
	rd_init(&r, f);
	if (!rd_u16(&r, &out->packet_id))
		return MQTT_E_MALFORMED;
	if (version < MQTT_V5) {
		if (r.pos != r.end)
			return MQTT_E_MALFORMED;
	} else {
		if ((rc = reason_and_props(&r, f->type, out)) < 0)
			return rc;
		if (f->type == MQTT_PUBACK || f->type == MQTT_PUBREC ? !RC_IN(out->reason, rc_puback)
		    : !RC_IN(out->reason, rc_pubrel))
			return MQTT_E_PROTOCOL;
	}
	if (out->packet_id == 0)
		return MQTT_E_PACKET_ID;
	return MQTT_OK;
}

/* One entry of a SUBSCRIBE or UNSUBSCRIBE list: the filter rules, shared or not [MQTT-4.8.2-1..2]. */
int
mqtt_filter_check(const mqtt_str_t *filter, bool *shared)
{
	mqtt_str_t group, inner;
	int rc;

	if (!mqtt_utf8_valid(filter->p, filter->len))
		return MQTT_E_UTF8;
	rc = mqtt_share_parse(*filter, &group, &inner);
	*shared = false;
	if (rc < 0)
		return rc;
	*shared = rc == 1;
	if (rc == 1)
		return mqtt_topic_filter_valid(inner.p, inner.len) ? MQTT_OK : MQTT_E_TOPIC_FILTER;
	return mqtt_topic_filter_valid(filter->p, filter->len) ? MQTT_OK : MQTT_E_TOPIC_FILTER;
}

/* SUBSCRIBE and UNSUBSCRIBE share everything up to the payload entries. */
static int
sub_header(const mqtt_frame_t *f, uint8_t type, uint8_t version, rd_t *r, mqtt_subscribe_t *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->version = version;
	if (!header_ok(f, type))
		return MQTT_E_MALFORMED;
	rd_init(r, f);
	if (!rd_u16(r, &out->packet_id))
		return MQTT_E_MALFORMED;
	if (version == MQTT_V5 && (rc = mqtt_props_decode_rd(r, type, &out->props)) < 0)
		return rc;
	out->list.p = r->pos;
	out->list.len = (uint32_t)rd_left(r);
	return MQTT_OK;
}

/*
 * One topic-filter entry of SUBSCRIBE/UNSUBSCRIBE. A filter that breaks the syntax of 4.7.1 / 4.8.2 (or is not
 * UTF-8) makes the whole packet malformed: MQTT 5's per-entry 0x8F is left for well-formed filters the server
 * refuses, which is the handler's business, not the decoder's.
 */
static int
sub_entry(rd_t *r, mqtt_subscribe_t *out, bool *shared)
{
	mqtt_str_t filter;
	int rc;

	if (!rd_bin(r, &filter))
		return MQTT_E_MALFORMED;
	if ((rc = mqtt_filter_check(&filter, shared)) < 0)
		return rc;
	out->count++;
	return MQTT_OK;
}

/* [MQTT-3.8.3-3], [MQTT-3.10.3-2]: at least one entry; then a packet identifier is required. */
static int
sub_trailer(const mqtt_subscribe_t *out)
{
	if (out->count == 0)
		return MQTT_E_PROTOCOL;
	if (out->packet_id == 0)
		return MQTT_E_PACKET_ID;
	return MQTT_OK;
}

int
mqtt_decode_subscribe(const mqtt_frame_t *f, uint8_t version, mqtt_subscribe_t *out)
{
	rd_t r;
	int rc;

	if ((rc = sub_header(f, MQTT_SUBSCRIBE, version, &r, out)) < 0)
		return rc;
	while (r.pos < r.end) {
		uint8_t o;
		bool shared;

		if ((rc = sub_entry(&r, out, &shared)) < 0)
			return rc;
		if (!rd_u8(&r, &o))
			return MQTT_E_MALFORMED;
		/* [MQTT-3.8.3-5] (v5 bits 7..6), [MQTT-3-8.3-4] (3.1.1 bits 7..2) */
		if (version == MQTT_V5 ? (o & 0xC0) != 0 : (o & 0xFC) != 0)
			return MQTT_E_MALFORMED;
		if ((o & 0x3) == 3)
			return MQTT_E_MALFORMED;
		if (version == MQTT_V5) {
			if (((o >> 4) & 0x3) == 3)
				return MQTT_E_PROTOCOL;
			/* [MQTT-3.8.3-4]: no_local would keep a shared message from its own group member */
			if ((o & 0x04) && shared)
				return MQTT_E_PROTOCOL;
		}
	}
	return sub_trailer(out);
}

int
mqtt_decode_unsubscribe(const mqtt_frame_t *f, uint8_t version, mqtt_subscribe_t *out)
{
	rd_t r;
	int rc;

	if ((rc = sub_header(f, MQTT_UNSUBSCRIBE, version, &r, out)) < 0)
		return rc;
	while (r.pos < r.end) {
		bool shared;

		if ((rc = sub_entry(&r, out, &shared)) < 0)
			return rc;
	}
	return sub_trailer(out);
}

int
mqtt_decode_suback(const mqtt_frame_t *f, uint8_t version, mqtt_suback_t *out)
{
	rd_t r;
	uint32_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((f->type != MQTT_SUBACK && f->type != MQTT_UNSUBACK) || !header_ok(f, f->type))
		return MQTT_E_MALFORMED;
	rd_init(&r, f);
	if (!rd_u16(&r, &out->packet_id))
		return MQTT_E_MALFORMED;
	if (version == MQTT_V5 && (rc = mqtt_props_decode_rd(&r, f->type, &out->props)) < 0)
		return rc;
	out->reasons = r.pos;
	out->count = (uint32_t)rd_left(&r);
	if (f->type == MQTT_UNSUBACK && version < MQTT_V5) {
		/* 3.1.1 section 3.11: packet id only */
		if (out->count != 0)
			return MQTT_E_MALFORMED;
	} else {
		/* one code per requested filter, and a request has at least one */
		if (out->count == 0)
			return MQTT_E_PROTOCOL;
		for (i = 0; i < out->count; i++) {
			uint8_t c = out->reasons[i];
			bool ok = version < MQTT_V5 ? RC_IN(c, rc_suback_v3)
				: f->type == MQTT_SUBACK ? RC_IN(c, rc_suback) : RC_IN(c, rc_unsuback);

			if (!ok)
				return MQTT_E_PROTOCOL;
		}
	}
	if (out->packet_id == 0)
		return MQTT_E_PACKET_ID;
	return MQTT_OK;
}

int
mqtt_decode_disconnect(const mqtt_frame_t *f, uint8_t version, mqtt_ack_t *out)
{
	rd_t r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!header_ok(f, MQTT_DISCONNECT))
		return MQTT_E_MALFORMED;
	rd_init(&r, f);
	if (version < MQTT_V5)
		return f->remaining == 0 ? MQTT_OK : MQTT_E_MALFORMED;
	if ((rc = reason_and_props(&r, MQTT_DISCONNECT, out)) < 0)
		return rc;
	return RC_IN(out->reason, rc_disconnect) ? MQTT_OK : MQTT_E_PROTOCOL;
}

int
mqtt_decode_auth(const mqtt_frame_t *f, mqtt_ack_t *out)
{
	rd_t r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!header_ok(f, MQTT_AUTH))
		return MQTT_E_MALFORMED;
	rd_init(&r, f);
	if ((rc = reason_and_props(&r, MQTT_AUTH, out)) < 0)
		return rc;
	return RC_IN(out->reason, rc_auth) ? MQTT_OK : MQTT_E_PROTOCOL;
}

int
mqtt_decode_empty(const mqtt_frame_t *f)
{
	if (f->type == 0 || f->flags != required_flags(f->type) || f->remaining != 0)
		return MQTT_E_MALFORMED;
	return MQTT_OK;
}

void
mqtt_sub_iter(const mqtt_subscribe_t *s, mqtt_iter_t *it)
{
	it->pos = s->list.p;
	it->end = s->list.p != NULL ? s->list.p + s->list.len : NULL;
}

bool
mqtt_sub_next(mqtt_iter_t *it, mqtt_str_t *filter, mqtt_subopts_t *opts)
{
	rd_t r = { it->pos, it->end };
	uint8_t o;

	/* The list was validated, but the iterator still refuses to read past its end if handed anything else. */
	if (it->pos == NULL || !rd_bin(&r, filter) || !rd_u8(&r, &o)) {
		it->pos = it->end;
		return false;
	}
	it->pos = r.pos;
	opts->qos = o & 0x3;
	opts->no_local = (o & 0x04) != 0;
	opts->retain_as_published = (o & 0x08) != 0;
	opts->retain_handling = (o >> 4) & 0x3;
	return true;
}

bool
mqtt_unsub_next(mqtt_iter_t *it, mqtt_str_t *filter)
{
	rd_t r = { it->pos, it->end };

	if (it->pos == NULL || !rd_bin(&r, filter)) {
		it->pos = it->end;
		return false;
	}
	it->pos = r.pos;
	return true;
}

/*
 * fuzz_mqtt_decode.c — proto/ under libFuzzer: framing, every decoder (server and client side), the iterators,
 * topic matching, the error table, and the encoders as an oracle.
 *
 * Input: one selector byte, then the bytes a peer would send. Selector bits 0-1: the protocol level the stream
 * starts in (0: 3.1, 1: 3.1.1, 2-3: 5); bits 2-4: k, the maximum packet size given to mqtt_frame() (0: none,
 * else 2^(2k+1) bytes). Complete frames are cut with mqtt_frame(), copied to a buffer of their own size (so an
 * over-read hits ASan's redzone, not the next packet) and decoded with the decoder for their type;
 * a CONNECT that decodes switches the level, as it does for the broker.
 *
 * The oracle, for every packet that decodes: every view lies inside its frame; the encoder for the type
 * reproduces it at exactly the size its *_size() function promised, no larger than the original (the encoders
 * write the shortest form); decoding that encoding gives back the same fields; and encoding those again gives
 * the same bytes (the encoder's output is a fixed point). For every packet that does not, the error is one
 * a decoder may return and mqtt_err_answer() puts only valid codes on the wire. Topic matching is checked
 * against a naive reference matcher for every filter of a SUBSCRIBE against the last PUBLISH topic seen.
 */
#include <string.h>

#include "fuzz.h"
#include "mqtt.h"

typedef struct stream {
	const uint8_t *start, *end;   /* the whole input, for view checks */
	uint8_t version;
	uint8_t topic[256];           /* last PUBLISH topic seen (truncated copies are not kept) */
	size_t topic_len;
	bool have_topic;
} stream_t;

/* --- helpers ------------------------------------------------------------------------------------------ */

static void
check_view(const mqtt_frame_t *f, mqtt_str_t s)
{
	if (s.len == 0)
		return;
	FUZZ_CHECK(s.p != NULL);
	FUZZ_CHECK(s.p >= f->body && s.p + s.len <= f->body + f->remaining);
}

static bool
same_str(mqtt_str_t a, mqtt_str_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool
has(const mqtt_props_t *p, uint8_t id)
{
	return (p->present & MQTT_PROP_BIT(id)) != 0;
}

/* Views of a property set lie in the frame; user properties iterate and are UTF-8. */
static void
check_props(const mqtt_frame_t *f, const mqtt_props_t *p)
{
	mqtt_str_t k, v;
	mqtt_iter_t it;
	unsigned n = 0;

	check_view(f, p->content_type);
	check_view(f, p->response_topic);
	check_view(f, p->correlation_data);
	check_view(f, p->assigned_client_id);
	check_view(f, p->auth_method);
	check_view(f, p->auth_data);
	check_view(f, p->response_info);
	check_view(f, p->server_reference);
	check_view(f, p->reason_string);
	check_view(f, p->user);
	FUZZ_CHECK(p->n_sub_ids <= MQTT_MAX_SUB_IDS);
	FUZZ_CHECK((p->n_sub_ids > 0) == has(p, MQTT_PROP_SUBSCRIPTION_ID));
	{
		/* the block re-encodes at the size measured, and refuses one byte less */
		uint32_t psize = mqtt_props_size(p);
		uint8_t *pb = malloc(psize ? psize : 1);

		FUZZ_CHECK(pb != NULL && psize >= 1);
		FUZZ_CHECK(mqtt_props_encode(pb, psize, p) == psize);
		FUZZ_CHECK(mqtt_props_encode(pb, psize - 1, p) == 0);
		free(pb);
	}
	mqtt_user_prop_iter(p, &it);
	while (mqtt_user_prop_next(&it, &k, &v)) {
		check_view(f, k);
		check_view(f, v);
		FUZZ_CHECK(mqtt_utf8_valid(k.p, k.len) && mqtt_utf8_valid(v.p, v.len));
		n++;
	}
	FUZZ_CHECK(has(p, MQTT_PROP_USER_PROPERTY) == (n > 0));
}

static void
check_props_eq(const mqtt_props_t *a, const mqtt_props_t *b)
{
	mqtt_iter_t ia, ib;
	mqtt_str_t ka, va, kb, vb;
	bool more;
	unsigned i;

	FUZZ_CHECK(a->present == b->present);
#define SAME(id, field) FUZZ_CHECK(!has(a, id) || a->field == b->field)
#define SAME_STR(id, field) FUZZ_CHECK(!has(a, id) || same_str(a->field, b->field))
	SAME(MQTT_PROP_PAYLOAD_FORMAT, payload_format);
	SAME(MQTT_PROP_REQUEST_PROBLEM_INFO, request_problem_info);
	SAME(MQTT_PROP_REQUEST_RESPONSE_INFO, request_response_info);
	SAME(MQTT_PROP_MAXIMUM_QOS, maximum_qos);
	SAME(MQTT_PROP_RETAIN_AVAILABLE, retain_available);
	SAME(MQTT_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available);
	SAME(MQTT_PROP_SUB_ID_AVAILABLE, sub_id_available);
	SAME(MQTT_PROP_SHARED_SUB_AVAILABLE, shared_sub_available);
	SAME(MQTT_PROP_SERVER_KEEP_ALIVE, server_keep_alive);
	SAME(MQTT_PROP_RECEIVE_MAXIMUM, receive_maximum);
	SAME(MQTT_PROP_TOPIC_ALIAS_MAXIMUM, topic_alias_maximum);
	SAME(MQTT_PROP_TOPIC_ALIAS, topic_alias);
	SAME(MQTT_PROP_MESSAGE_EXPIRY, message_expiry);
	SAME(MQTT_PROP_SESSION_EXPIRY, session_expiry);
	SAME(MQTT_PROP_WILL_DELAY, will_delay);
	SAME(MQTT_PROP_MAXIMUM_PACKET_SIZE, maximum_packet_size);
	SAME_STR(MQTT_PROP_CONTENT_TYPE, content_type);
	SAME_STR(MQTT_PROP_RESPONSE_TOPIC, response_topic);
	SAME_STR(MQTT_PROP_CORRELATION_DATA, correlation_data);
	SAME_STR(MQTT_PROP_ASSIGNED_CLIENT_ID, assigned_client_id);
	SAME_STR(MQTT_PROP_AUTH_METHOD, auth_method);
	SAME_STR(MQTT_PROP_AUTH_DATA, auth_data);
	SAME_STR(MQTT_PROP_RESPONSE_INFO, response_info);
	SAME_STR(MQTT_PROP_SERVER_REFERENCE, server_reference);
	SAME_STR(MQTT_PROP_REASON_STRING, reason_string);
#undef SAME
#undef SAME_STR
	FUZZ_CHECK(a->n_sub_ids == b->n_sub_ids);
	for (i = 0; i < a->n_sub_ids; i++)
		FUZZ_CHECK(a->sub_ids[i] == b->sub_ids[i]);
	mqtt_user_prop_iter(a, &ia);
	mqtt_user_prop_iter(b, &ib);
	do {
		more = mqtt_user_prop_next(&ia, &ka, &va);
		FUZZ_CHECK(more == mqtt_user_prop_next(&ib, &kb, &vb));
		FUZZ_CHECK(!more || (same_str(ka, kb) && same_str(va, vb)));
	} while (more);
}

/* What only a decoder may return: packet errors, never a session-level one. */
static bool
decoder_err(int rc)
{
	switch (rc) {
	case MQTT_E_MALFORMED:
	case MQTT_E_PROTOCOL:
	case MQTT_E_UTF8:
	case MQTT_E_TOPIC_NAME:
	case MQTT_E_TOPIC_FILTER:
	case MQTT_E_VERSION:
	case MQTT_E_CLIENT_ID:
	case MQTT_E_PROPERTY:
	case MQTT_E_PACKET_ID:
	case MQTT_E_QOS:
	case MQTT_E_PROTOCOL_NAME:
		return true;
	default:
		return false;
	}
}

static const uint8_t connack_codes[] = { 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
	0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F };
static const uint8_t disconnect_codes[] = { 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
	0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2 };

static bool
code_in(uint8_t c, const uint8_t *set, size_t n)
{
	while (n-- > 0) {
		if (set[n] == c)
			return true;
	}
	return false;
}

static void
check_answer(int rc, uint8_t version)
{
	int phase;

	FUZZ_CHECK(decoder_err(rc));
	for (phase = 0; phase < 2; phase++) {
		mqtt_answer_t a = mqtt_err_answer(rc, version, phase == 0);

		FUZZ_CHECK(a.text != NULL && a.text[0] != '\0');
		if (a.action == MQTT_ACT_CONNACK && version == MQTT_V5)
			FUZZ_CHECK(code_in(a.code, connack_codes, sizeof(connack_codes)));
		else if (a.action == MQTT_ACT_CONNACK)
			FUZZ_CHECK(a.code >= 1 && a.code <= 5);
		else if (a.action == MQTT_ACT_DISCONNECT)
			FUZZ_CHECK(version == MQTT_V5 && code_in(a.code, disconnect_codes, sizeof(disconnect_codes)));
		else
			FUZZ_CHECK(a.action == MQTT_ACT_CLOSE);
	}
}

/*
 * The encoding oracle shared by every type: `size` is what *_size() promised, `enc` the encoder (called with
 * one byte less first, which must refuse), `orig` the frame's total length. Returns the encoding, framed into
 * *f2, in a heap buffer the caller frees.
 */
typedef size_t (*encode_fn)(uint8_t *buf, size_t cap, const void *ctx);

static uint8_t *
encode_checked(uint32_t size, encode_fn enc, const void *ctx, size_t orig, mqtt_frame_t *f2)
{
	uint8_t *buf;
	size_t n;

	FUZZ_CHECK(size >= 2 && size <= orig);
	buf = malloc(size);
	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(enc(buf, size - 1, ctx) == 0);
	n = enc(buf, size, ctx);
	FUZZ_CHECK(n == size);
	FUZZ_CHECK(mqtt_frame(buf, n, 0, f2) == (int64_t)n);
	return buf;
}

/* Encoding the re-decoded packet must give the very same bytes. */
static void
check_fixed_point(const uint8_t *first, uint32_t size, encode_fn enc, const void *ctx)
{
	uint8_t *again = malloc(size);

	FUZZ_CHECK(again != NULL);
	FUZZ_CHECK(enc(again, size, ctx) == size);
	FUZZ_CHECK(memcmp(first, again, size) == 0);
	free(again);
}

/* --- topic matching reference ----------------------------------------------------------------------------- */

/* Levels are matched one by one, recursively: slow and obvious, which is the point. */
static bool
ref_match_levels(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen, bool t_done)
{
	const uint8_t *fs = memchr(f, '/', flen);
	size_t fl = fs != NULL ? (size_t)(fs - f) : flen;

	if (fl == 1 && f[0] == '#' && fs == NULL)
		return true;
	if (t_done)
		return false;
	{
		const uint8_t *ts = memchr(t, '/', tlen);
		size_t tl = ts != NULL ? (size_t)(ts - t) : tlen;
		bool level_ok = (fl == 1 && f[0] == '+') || (fl == tl && memcmp(f, t, fl) == 0);

		if (!level_ok)
			return false;
		if (fs == NULL)
			return ts == NULL;
		if (ts == NULL)
			return ref_match_levels(fs + 1, flen - fl - 1, t, 0, true);
		return ref_match_levels(fs + 1, flen - fl - 1, ts + 1, tlen - tl - 1, false);
	}
}

static bool
ref_match(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen)
{
	if (tlen > 0 && t[0] == '$' && (f[0] == '#' || f[0] == '+'))
		return false;
	return ref_match_levels(f, flen, t, tlen, false);
}

static void
check_match(stream_t *st, mqtt_str_t filter)
{
	mqtt_str_t group, inner;
	bool shared;
	int rc;

	FUZZ_CHECK(mqtt_filter_check(&filter, &shared) == MQTT_OK);
	rc = mqtt_share_parse(filter, &group, &inner);
	FUZZ_CHECK(rc == (shared ? 1 : 0));
	if (shared) {
		FUZZ_CHECK(group.len > 0 && inner.len > 0);
		FUZZ_CHECK(memchr(group.p, '/', group.len) == NULL);
		filter = inner;
	}
	FUZZ_CHECK(mqtt_topic_filter_valid(filter.p, filter.len));
	if (st->have_topic)
		FUZZ_CHECK(mqtt_topic_match(filter.p, filter.len, st->topic, st->topic_len)
			== ref_match(filter.p, filter.len, st->topic, st->topic_len));
	/* a valid filter with no wildcard is a valid topic name and matches itself */
	if (memchr(filter.p, '+', filter.len) == NULL && memchr(filter.p, '#', filter.len) == NULL) {
		FUZZ_CHECK(mqtt_topic_name_valid(filter.p, filter.len));
		FUZZ_CHECK(mqtt_topic_match(filter.p, filter.len, filter.p, filter.len));
	}
}

/* --- one decoder per type, with its oracle ---------------------------------------------------------------- */

static size_t
enc_connect(uint8_t *buf, size_t cap, const void *ctx)
{
	return mqtt_encode_connect(buf, cap, ctx);
}

static void
check_connect_eq(const mqtt_connect_t *a, const mqtt_connect_t *b)
{
	FUZZ_CHECK(a->version == b->version && a->clean_start == b->clean_start && a->will == b->will);
	FUZZ_CHECK(a->will_qos == b->will_qos && a->will_retain == b->will_retain);
	FUZZ_CHECK(a->has_username == b->has_username && a->has_password == b->has_password);
	FUZZ_CHECK(a->keep_alive == b->keep_alive);
	FUZZ_CHECK(same_str(a->client_id, b->client_id));
	FUZZ_CHECK(same_str(a->will_topic, b->will_topic) && same_str(a->will_payload, b->will_payload));
	FUZZ_CHECK(same_str(a->username, b->username) && same_str(a->password, b->password));
	check_props_eq(&a->props, &b->props);
	check_props_eq(&a->will_props, &b->will_props);
}

static void
fuzz_connect(stream_t *st, const mqtt_frame_t *f, size_t total)
{
	mqtt_connect_t c, c2, c3;
	mqtt_frame_t f2;
	uint32_t size;
	uint8_t *buf;
	int rc = mqtt_decode_connect(f, &c);

	if (rc < 0) {
		check_answer(rc, c.version);
		return;
	}
	FUZZ_CHECK(rc == MQTT_OK);
	FUZZ_CHECK(c.version == MQTT_V31 || c.version == MQTT_V311 || c.version == MQTT_V5);
	check_view(f, c.client_id);
	check_view(f, c.will_topic);
	check_view(f, c.will_payload);
	check_view(f, c.username);
	check_view(f, c.password);
	check_props(f, &c.props);
	check_props(f, &c.will_props);
	FUZZ_CHECK(mqtt_utf8_valid(c.client_id.p, c.client_id.len));
	FUZZ_CHECK(!c.will || mqtt_topic_name_valid(c.will_topic.p, c.will_topic.len));
	if (c.version < MQTT_V5)
		FUZZ_CHECK(c.props.present == 0 && c.will_props.present == 0);

	size = mqtt_connect_size(&c);
	buf = encode_checked(size, enc_connect, &c, total, &f2);
	FUZZ_CHECK(mqtt_decode_connect(&f2, &c2) == MQTT_OK);
	check_connect_eq(&c, &c2);
	check_fixed_point(buf, size, enc_connect, &c2);
	/* the copy decodes identically from the original bytes too: decoding is deterministic */
	FUZZ_CHECK(mqtt_decode_connect(f, &c3) == MQTT_OK);
	check_connect_eq(&c, &c3);
	free(buf);
	st->version = c.version;
}

typedef struct ver_ctx {
	uint8_t version;
	uint8_t type;
	const void *pkt;
} ver_ctx_t;

static size_t
enc_connack(uint8_t *buf, size_t cap, const void *ctx)
{
	const ver_ctx_t *v = ctx;

	return mqtt_encode_connack(buf, cap, v->version, v->pkt);
}

static void
fuzz_connack(stream_t *st, const mqtt_frame_t *f, size_t total)
{
	mqtt_connack_t c, c2;
	mqtt_frame_t f2;
	ver_ctx_t ctx = { st->version, MQTT_CONNACK, &c };
	uint32_t size;
	uint8_t *buf;
	int rc = mqtt_decode_connack(f, st->version, &c);

	if (rc < 0) {
		check_answer(rc, st->version);
		return;
	}
	check_props(f, &c.props);
	FUZZ_CHECK(st->version != MQTT_V31 || !c.session_present);
	size = mqtt_connack_size(st->version, &c);
	buf = encode_checked(size, enc_connack, &ctx, total, &f2);
	FUZZ_CHECK(mqtt_decode_connack(&f2, st->version, &c2) == MQTT_OK);
	FUZZ_CHECK(c.session_present == c2.session_present && c.reason == c2.reason);
	check_props_eq(&c.props, &c2.props);
	ctx.pkt = &c2;
	check_fixed_point(buf, size, enc_connack, &ctx);
	free(buf);
}

static size_t
enc_publish(uint8_t *buf, size_t cap, const void *ctx)
{
	const ver_ctx_t *v = ctx;

	return mqtt_encode_publish(buf, cap, v->version, v->pkt);
}

static void
fuzz_publish(stream_t *st, const mqtt_frame_t *f, size_t total)
{
	mqtt_publish_t p, p2;
	mqtt_frame_t f2;
	ver_ctx_t ctx = { st->version, MQTT_PUBLISH, &p };
	uint32_t size;
	uint8_t *buf;
	int rc = mqtt_decode_publish(f, st->version, &p);

	if (rc < 0) {
		check_answer(rc, st->version);
		return;
	}
	check_view(f, p.topic);
	check_view(f, p.payload);
	check_props(f, &p.props);
	FUZZ_CHECK(p.qos <= 2 && (p.qos > 0) == (p.packet_id != 0));
	if (p.topic.len > 0) {
		FUZZ_CHECK(mqtt_topic_name_valid(p.topic.p, p.topic.len));
		if (p.topic.len <= sizeof(st->topic)) {
			memcpy(st->topic, p.topic.p, p.topic.len);
			st->topic_len = p.topic.len;
			st->have_topic = true;
		}
	} else {
		FUZZ_CHECK(st->version == MQTT_V5 && has(&p.props, MQTT_PROP_TOPIC_ALIAS));
	}
	size = mqtt_publish_size(st->version, &p);
	buf = encode_checked(size, enc_publish, &ctx, total, &f2);
	FUZZ_CHECK(mqtt_decode_publish(&f2, st->version, &p2) == MQTT_OK);
	FUZZ_CHECK(p.dup == p2.dup && p.qos == p2.qos && p.retain == p2.retain && p.packet_id == p2.packet_id);
	FUZZ_CHECK(same_str(p.topic, p2.topic) && same_str(p.payload, p2.payload));
	check_props_eq(&p.props, &p2.props);
	ctx.pkt = &p2;
	check_fixed_point(buf, size, enc_publish, &ctx);
	free(buf);
}

static size_t
enc_ack(uint8_t *buf, size_t cap, const void *ctx)
{
	const ver_ctx_t *v = ctx;

	return mqtt_encode_ack(buf, cap, v->type, v->version, v->pkt);
}

static void
fuzz_ack(stream_t *st, const mqtt_frame_t *f, size_t total)
{
	mqtt_ack_t a, a2;
	mqtt_frame_t f2;
	ver_ctx_t ctx = { st->version, f->type, &a };
	uint32_t size;
	uint8_t *buf;
	int rc = mqtt_decode_ack(f, st->version, &a);

	if (rc < 0) {
		check_answer(rc, st->version);
		return;
	}
	check_props(f, &a.props);
	size = mqtt_ack_size(st->version, &a);
	buf = encode_checked(size, enc_ack, &ctx, total, &f2);
	FUZZ_CHECK(f2.type == f->type);
	FUZZ_CHECK(mqtt_decode_ack(&f2, st->version, &a2) == MQTT_OK);
	FUZZ_CHECK(a.packet_id == a2.packet_id && a.reason == a2.reason);
	check_props_eq(&a.props, &a2.props);
	ctx.pkt = &a2;
	check_fixed_point(buf, size, enc_ack, &ctx);
	free(buf);
}

/* SUBSCRIBE and UNSUBSCRIBE: the encoders take arrays, so the walk fills them. */
typedef struct sub_ctx {
	uint8_t version;
	bool unsub;
	uint16_t packet_id;
	const mqtt_props_t *props;
	mqtt_str_t *filters;
	mqtt_subopts_t *opts;
	uint32_t n;
} sub_ctx_t;

static size_t
enc_sub(uint8_t *buf, size_t cap, const void *ctx)
{
	const sub_ctx_t *s = ctx;

	if (s->unsub)
		return mqtt_encode_unsubscribe(buf, cap, s->version, s->packet_id, s->props, s->filters, s->n);
	return mqtt_encode_subscribe(buf, cap, s->version, s->packet_id, s->props, s->filters, s->opts, s->n);
}

/* Walk a decoded list into arrays (which the caller frees); every entry checked on the way. */
static void
walk_sub(stream_t *st, const mqtt_frame_t *f, const mqtt_subscribe_t *s, bool unsub, sub_ctx_t *ctx)
{
	mqtt_iter_t it;
	mqtt_str_t filter;
	mqtt_subopts_t o;
	uint32_t n = 0;

	ctx->version = st->version;
	ctx->unsub = unsub;
	ctx->packet_id = s->packet_id;
	ctx->props = &s->props;
	ctx->filters = calloc(s->count ? s->count : 1, sizeof(*ctx->filters));
	ctx->opts = calloc(s->count ? s->count : 1, sizeof(*ctx->opts));
	FUZZ_CHECK(ctx->filters != NULL && ctx->opts != NULL);
	mqtt_sub_iter(s, &it);
	for (;;) {
		bool more = unsub ? mqtt_unsub_next(&it, &filter) : mqtt_sub_next(&it, &filter, &o);

		if (!more)
			break;
		FUZZ_CHECK(n < s->count);
		check_view(f, filter);
		check_match(st, filter);
		ctx->filters[n] = filter;
		if (!unsub) {
			FUZZ_CHECK(o.qos <= 2 && o.retain_handling <= 2);
			FUZZ_CHECK(st->version == MQTT_V5 || (!o.no_local && !o.retain_as_published
				&& o.retain_handling == 0));
			ctx->opts[n] = o;
		}
		n++;
	}
	FUZZ_CHECK(n == s->count && n > 0);
	ctx->n = n;
}

static void
fuzz_subscribe(stream_t *st, const mqtt_frame_t *f, size_t total, bool unsub)
{
	mqtt_subscribe_t s, s2;
	sub_ctx_t ctx, ctx2;
	mqtt_frame_t f2;
	uint32_t size, i;
	uint8_t *buf;
	int rc = unsub ? mqtt_decode_unsubscribe(f, st->version, &s) : mqtt_decode_subscribe(f, st->version, &s);

	if (rc < 0) {
		check_answer(rc, st->version);
		return;
	}
	FUZZ_CHECK(s.packet_id != 0);
	check_view(f, s.list);
	check_props(f, &s.props);
	walk_sub(st, f, &s, unsub, &ctx);
	size = unsub ? mqtt_unsubscribe_size(st->version, &s.props, ctx.filters, ctx.n)
		: mqtt_subscribe_size(st->version, &s.props, ctx.filters, ctx.n);
	buf = encode_checked(size, enc_sub, &ctx, total, &f2);
	rc = unsub ? mqtt_decode_unsubscribe(&f2, st->version, &s2) : mqtt_decode_subscribe(&f2, st->version, &s2);
	FUZZ_CHECK(rc == MQTT_OK);
	FUZZ_CHECK(s2.packet_id == s.packet_id && s2.count == s.count);
	check_props_eq(&s.props, &s2.props);
	walk_sub(st, &f2, &s2, unsub, &ctx2);
	for (i = 0; i < ctx.n; i++) {
		FUZZ_CHECK(same_str(ctx.filters[i], ctx2.filters[i]));
		FUZZ_CHECK(unsub || memcmp(&ctx.opts[i], &ctx2.opts[i], sizeof(ctx.opts[i])) == 0);
	}
	check_fixed_point(buf, size, enc_sub, &ctx2);
	free(ctx.filters);
	free(ctx.opts);
	free(ctx2.filters);
	free(ctx2.opts);
	free(buf);
}

static size_t
enc_suback(uint8_t *buf, size_t cap, const void *ctx)
{
	const ver_ctx_t *v = ctx;

	return mqtt_encode_suback(buf, cap, v->type, v->version, v->pkt);
}

static void
fuzz_suback(stream_t *st, const mqtt_frame_t *f, size_t total)
{
	mqtt_suback_t s, s2;
	mqtt_frame_t f2;
	ver_ctx_t ctx = { st->version, f->type, &s };
	uint32_t size;
	uint8_t *buf;
	int rc = mqtt_decode_suback(f, st->version, &s);

	if (rc < 0) {
		check_answer(rc, st->version);
		return;
	}
	check_props(f, &s.props);
	check_view(f, (mqtt_str_t){ s.reasons, s.count });
	size = mqtt_suback_size(st->version, &s);
	buf = encode_checked(size, enc_suback, &ctx, total, &f2);
	FUZZ_CHECK(f2.type == f->type);
	FUZZ_CHECK(mqtt_decode_suback(&f2, st->version, &s2) == MQTT_OK);
	FUZZ_CHECK(s.packet_id == s2.packet_id && s.count == s2.count);
	FUZZ_CHECK(s.count == 0 || memcmp(s.reasons, s2.reasons, s.count) == 0);
	check_props_eq(&s.props, &s2.props);
	ctx.pkt = &s2;
	check_fixed_point(buf, size, enc_suback, &ctx);
	free(buf);
}

static size_t
enc_disconnect(uint8_t *buf, size_t cap, const void *ctx)
{
	const ver_ctx_t *v = ctx;

	if (v->type == MQTT_AUTH)
		return mqtt_encode_auth(buf, cap, v->pkt);
	return mqtt_encode_disconnect(buf, cap, v->version, v->pkt);
}

/* DISCONNECT (either dialect) and AUTH (MQTT 5's form whatever the stream's level: the decoder does not ask). */
static void
fuzz_disconnect(stream_t *st, const mqtt_frame_t *f, size_t total)
{
	mqtt_ack_t d, d2;
	mqtt_frame_t f2;
	bool auth = f->type == MQTT_AUTH;
	uint8_t version = auth ? MQTT_V5 : st->version;
	ver_ctx_t ctx = { version, f->type, &d };
	uint32_t size;
	uint8_t *buf;
	int rc = auth ? mqtt_decode_auth(f, &d) : mqtt_decode_disconnect(f, version, &d);

	if (rc < 0) {
		check_answer(rc, st->version);
		return;
	}
	check_props(f, &d.props);
	size = mqtt_disconnect_size(version, &d);
	buf = encode_checked(size, enc_disconnect, &ctx, total, &f2);
	FUZZ_CHECK(f2.type == f->type);
	rc = auth ? mqtt_decode_auth(&f2, &d2) : mqtt_decode_disconnect(&f2, version, &d2);
	FUZZ_CHECK(rc == MQTT_OK);
	FUZZ_CHECK(d.reason == d2.reason);
	check_props_eq(&d.props, &d2.props);
	ctx.pkt = &d2;
	check_fixed_point(buf, size, enc_disconnect, &ctx);
	free(buf);
}

static void
fuzz_empty(stream_t *st, const mqtt_frame_t *f)
{
	uint8_t buf[2];
	int rc = mqtt_decode_empty(f);

	if (rc < 0) {
		check_answer(rc, st->version);
		return;
	}
	FUZZ_CHECK(f->remaining == 0);
	FUZZ_CHECK(mqtt_encode_empty(buf, 1, f->type) == 0);
	FUZZ_CHECK(mqtt_encode_empty(buf, 2, f->type) == 2);
	FUZZ_CHECK(buf[0] == (uint8_t)(f->type << 4 | f->flags) && buf[1] == 0);
}

/* --- the stream ------------------------------------------------------------------------------------------ */

/* mqtt_frame() on every proper prefix of a frame it accepted must ask for more (or refuse the size). */
static void
check_prefixes(const uint8_t *p, const mqtt_frame_t *f, size_t total, uint32_t max)
{
	mqtt_frame_t g;
	size_t cut[3] = { 0, f->header_len - 1u, total - 1 };
	uint32_t v;
	uint8_t vb[4];
	int i, n;

	for (i = 0; i < 3; i++)
		FUZZ_CHECK(mqtt_frame(p, cut[i], max, &g) == 0);
	FUZZ_CHECK(total == f->header_len + (size_t)f->remaining && (max == 0 || total <= max));
	n = mqtt_vbi_decode(p + 1, f->header_len - 1u, &v);
	FUZZ_CHECK(n == f->header_len - 1 && v == f->remaining);
	n = mqtt_vbi_encode(vb, v);
	FUZZ_CHECK(n == mqtt_vbi_size(v) && n >= 1 && n <= f->header_len - 1);
	FUZZ_CHECK(mqtt_vbi_decode(vb, (size_t)n, &v) == n && v == f->remaining);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t levels[4] = { MQTT_V31, MQTT_V311, MQTT_V5, MQTT_V5 };
	stream_t st;
	uint32_t max;
	size_t off;
	unsigned k;

	if (size < 1)
		return 0;
	memset(&st, 0, sizeof(st));
	st.start = data;
	st.end = data + size;
	st.version = levels[data[0] & 0x3];
	k = (data[0] >> 2) & 0x7;
	max = k ? 1u << (2 * k + 1) : 0;

	for (off = 1; off < size;) {
		const uint8_t *p = data + off;
		uint8_t *copy;
		mqtt_frame_t f;
		int64_t n = mqtt_frame(p, size - off, max, &f);

		if (n == 0)
			break;
		if (n < 0) {
			FUZZ_CHECK(n == MQTT_E_MALFORMED || n == MQTT_E_TOO_LARGE);
			FUZZ_CHECK(n != MQTT_E_TOO_LARGE || max != 0);
			break;
		}
		FUZZ_CHECK((size_t)n <= size - off && f.body == p + f.header_len);
		check_prefixes(p, &f, (size_t)n, max);
		/* Decode from an exact-size copy: in the stream the next packet follows, and a decoder reading past
		 * its frame would read it without ASan noticing. */
		copy = malloc((size_t)n);
		FUZZ_CHECK(copy != NULL);
		memcpy(copy, p, (size_t)n);
		FUZZ_CHECK(mqtt_frame(copy, (size_t)n, max, &f) == n);
		switch (f.type) {
		case MQTT_CONNECT:
			fuzz_connect(&st, &f, (size_t)n);
			break;
		case MQTT_CONNACK:
			fuzz_connack(&st, &f, (size_t)n);
			break;
		case MQTT_PUBLISH:
			fuzz_publish(&st, &f, (size_t)n);
			break;
		case MQTT_PUBACK:
		case MQTT_PUBREC:
		case MQTT_PUBREL:
		case MQTT_PUBCOMP:
			fuzz_ack(&st, &f, (size_t)n);
			break;
		case MQTT_SUBSCRIBE:
		case MQTT_UNSUBSCRIBE:
			fuzz_subscribe(&st, &f, (size_t)n, f.type == MQTT_UNSUBSCRIBE);
			break;
		case MQTT_SUBACK:
		case MQTT_UNSUBACK:
			fuzz_suback(&st, &f, (size_t)n);
			break;
		case MQTT_DISCONNECT:
		case MQTT_AUTH:
			fuzz_disconnect(&st, &f, (size_t)n);
			break;
		default:
			fuzz_empty(&st, &f);
			break;
		}
		free(copy);
		off += (size_t)n;
	}
	return 0;
}

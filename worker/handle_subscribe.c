/* handle_subscribe.c — SUBSCRIBE and UNSUBSCRIBE; the SUBACK waits until every worker knows the interest. */
#include "handle.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "route.h"

#define MAX_FILTERS 1024

/* Encode a SUBACK/UNSUBACK into a heap packet for the reply FIFO; a reason string explains failures when the
 * client asked for problem information. */
static int encode_reply(conn_t *c, uint8_t type, uint16_t pid, const uint8_t *reasons, uint32_t n,
	uint8_t **pkt, uint32_t *len)
{
	static const char why[] = "invalid topic filter";
	mqtt_suback_t s;

	memset(&s, 0, sizeof(s));
	s.packet_id = pid;
	s.reasons = reasons;
	s.count = n;
	for (uint32_t i = 0; i < n && c->version == MQTT_V5 && c->problem_info; i++) {
		if (reasons[i] == MQTT_RC_TOPIC_FILTER_INVALID) {
			s.props.present |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
			s.props.reason_string.p = (const uint8_t *)why;
			s.props.reason_string.len = sizeof(why) - 1;
			break;
		}
	}
	*len = mqtt_suback_size(c->version, &s);
	*pkt = malloc(*len);
	if (!*pkt)
		return CONN_E_NOMEM;
	*len = (uint32_t)mqtt_encode_suback(*pkt, *len, type, c->version, &s);
	return 0;
}

static int remember_retained(buf_t *b, mqtt_str_t filter)
{
	uint16_t len = (uint16_t)filter.len;

	if (buf_append(b, &len, sizeof(len)) < 0 || buf_append(b, filter.p, filter.len) < 0)
		return -1;
	return 0;
}

int handle_subscribe(conn_t *c, const mqtt_frame_t *f)
{
	static uint8_t reasons[MAX_FILTERS];
	mqtt_subscribe_t s;
	mqtt_iter_t it;
	mqtt_str_t filter;
	mqtt_subopts_t opts;
	uint32_t n = 0, subid = 0, waiting = 0;
	uint64_t seq;
	int64_t pseq;
	pend_t *pe;
	buf_t rbuf = { 0 };
	int err;

	err = mqtt_decode_subscribe(f, c->version, &s);
	if (err < 0)
		return err;
	if (s.count > MAX_FILTERS)
		return MQTT_E_PROTOCOL;
	if (s.props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
		subid = s.props.sub_ids[0];
	/* The SUBACK's slot in the reply FIFO is taken first so the peers' acks for the interest frames sent
	 * while subscribing resolve it; its bytes are encoded once the reasons are known. */
	pseq = handle_pend_push(c, MQTT_SUBACK, s.packet_id, 0, NULL, 0);
	if (pseq < 0)
		return CONN_E_NOMEM;
	seq = (uint64_t)pseq;
	W->wait = (waiter_t){ .kind = WAIT_CONN, .idx = c->idx, .gen = c->gen, .seq = seq };
	W->wait_count = 0;
	mqtt_sub_iter(&s, &it);
	while (mqtt_sub_next(&it, &filter, &opts)) {
		uint32_t w = 0;
		bool shared, retained = false;

		if (mqtt_filter_check(&filter, &shared) != MQTT_OK)
			reasons[n] = MQTT_RC_TOPIC_FILTER_INVALID;
		else
			reasons[n] = route_subscribe(c->sess, filter, &opts, subid, c, seq, &w, &retained);
		if (c->version != MQTT_V5 && reasons[n] >= 0x80)
			reasons[n] = 0x80;
		if (retained && remember_retained(&rbuf, filter) < 0) {
			W->wait.kind = WAIT_NONE;
			buf_finish(&rbuf);
			return CONN_E_NOMEM;
		}
		waiting += w;
		n++;
	}
	waiting += W->wait_count;
	W->wait.kind = WAIT_NONE;
	pe = handle_pend_get(c, seq);
	/* Retained messages go after the SUBACK, which may still wait for other workers. */
	pe->retained = rbuf.data;
	pe->retained_len = rbuf.len;
	err = encode_reply(c, MQTT_SUBACK, s.packet_id, reasons, n, &pe->packet, &pe->packet_len);
	if (err < 0)
		return err;
	pe->waiting += waiting;
	conn_pend_flush(c);
	return 0;
}

int handle_unsubscribe(conn_t *c, const mqtt_frame_t *f)
{
	static uint8_t reasons[MAX_FILTERS];
	mqtt_subscribe_t s;
	mqtt_iter_t it;
	mqtt_str_t filter;
	uint32_t n = 0, len;
	uint8_t *pkt;
	int err;

	err = mqtt_decode_unsubscribe(f, c->version, &s);
	if (err < 0)
		return err;
	if (s.count > MAX_FILTERS)
		return MQTT_E_PROTOCOL;
	mqtt_sub_iter(&s, &it);
	while (mqtt_unsub_next(&it, &filter)) {
		bool shared;

		if (mqtt_filter_check(&filter, &shared) != MQTT_OK)
			reasons[n++] = MQTT_RC_TOPIC_FILTER_INVALID;
		else
			reasons[n++] = route_unsubscribe(c->sess, filter);
	}
	err = encode_reply(c, MQTT_UNSUBACK, s.packet_id, reasons, n, &pkt, &len);
	if (err < 0)
		return err;
	if (handle_pend_push(c, MQTT_UNSUBACK, s.packet_id, 0, pkt, len) < 0) {
		free(pkt);
		return CONN_E_NOMEM;
	}
	conn_pend_flush(c);
	return 0;
}

/* handle_subscribe.c — SUBSCRIBE and UNSUBSCRIBE; the SUBACK waits until every worker knows the interest. */
#include "handle.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "route.h"

#define MAX_FILTERS 1024

static int queue_reply(conn_t *c, uint8_t type, uint16_t pid, const uint8_t *reasons, uint32_t n,
	uint64_t *seq_out)
{
	mqtt_suback_t s;
	uint8_t *pkt;
	uint32_t len;
	int64_t seq;

	memset(&s, 0, sizeof(s));
	s.packet_id = pid;
	s.reasons = reasons;
	s.count = n;
	len = mqtt_suback_size(c->version, &s);
	pkt = malloc(len);
	if (!pkt)
		return CONN_E_NOMEM;
	mqtt_encode_suback(pkt, len, type, c->version, &s);
	seq = handle_pend_push(c, type, pid, 0, pkt, len);
	if (seq < 0) {
		free(pkt);
		return CONN_E_NOMEM;
	}
	*seq_out = (uint64_t)seq;
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
	pend_t *pe;
	int err;

	err = mqtt_decode_subscribe(f, c->version, &s);
	if (err < 0)
		return err;
	if (s.count > MAX_FILTERS)
		return MQTT_E_PROTOCOL;
	if (s.props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
		subid = s.props.sub_ids[0];
	/* Reasons are filled below; the SUBACK's slot in the reply FIFO is taken first so the peers' acks for
	 * the interest frames sent while subscribing resolve it. */
	memset(reasons, 0, s.count);
	err = queue_reply(c, MQTT_SUBACK, s.packet_id, reasons, s.count, &seq);
	if (err < 0)
		return err;
	mqtt_sub_iter(&s, &it);
	while (mqtt_sub_next(&it, &filter, &opts)) {
		uint32_t w = 0;

		reasons[n] = route_subscribe(c->sess, filter, &opts, subid, c, seq, &w);
		if (c->version != MQTT_V5 && reasons[n] >= 0x80)
			reasons[n] = 0x80;
		waiting += w;
		n++;
	}
	pe = handle_pend_get(c, seq);
	/* Re-encode now that the reasons are known (same length: one byte per filter). */
	{
		mqtt_suback_t sa;

		memset(&sa, 0, sizeof(sa));
		sa.packet_id = s.packet_id;
		sa.reasons = reasons;
		sa.count = n;
		mqtt_encode_suback(pe->packet, pe->packet_len, MQTT_SUBACK, c->version, &sa);
	}
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
	uint32_t n = 0;
	uint64_t seq;
	int err;

	err = mqtt_decode_unsubscribe(f, c->version, &s);
	if (err < 0)
		return err;
	if (s.count > MAX_FILTERS)
		return MQTT_E_PROTOCOL;
	mqtt_sub_iter(&s, &it);
	while (mqtt_unsub_next(&it, &filter))
		reasons[n++] = route_unsubscribe(c->sess, filter);
	err = queue_reply(c, MQTT_UNSUBACK, s.packet_id, reasons, n, &seq);
	if (err < 0)
		return err;
	conn_pend_flush(c);
	return 0;
}

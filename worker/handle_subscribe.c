/* handle_subscribe.c — SUBSCRIBE and UNSUBSCRIBE; the SUBACK waits until the subscription is durable and
 * every other worker knows the interest, so a message published after it from anywhere cannot miss it. */
#include "handle.h"

#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "worker.h"

#define MAX_FILTERS 1024

static int remember_retained(buf_t *b, mqtt_str_t filter)
{
	uint16_t len = (uint16_t)filter.len;

	if (buf_append(b, &len, sizeof(len)) < 0 || buf_append(b, filter.p, filter.len) < 0)
		return -1;
	return 0;
}

int handle_subscribe(conn_t *c, const mqtt_frame_t *f)
{
	mqtt_subscribe_t s;
	mqtt_iter_t it;
	mqtt_str_t filter;
	mqtt_subopts_t opts;
	uint32_t n = 0, subid = 0;
	uint8_t *reasons;
	int64_t seq;
	reply_t *r;
	waiter_t w;
	buf_t rbuf = { 0 };
	int err;

	err = mqtt_decode_subscribe(f, c->version, &s);
	if (err < 0)
		return err;
	if (s.count > MAX_FILTERS)
		return MQTT_E_PROTOCOL;
	if (!handle_user_props_ok(&s.props)) {
		W->st.rejected_user_properties++;
		return MQTT_E_QUOTA;
	}
	if (s.props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
		subid = s.props.sub_ids[0];
	reasons = malloc(s.count ? s.count : 1);
	if (!reasons)
		return MQTT_E_NOMEM;
	/* The SUBACK's slot in the reply FIFO is taken first so that whatever the subscriptions wait for (the
	 * store, the other workers' acks) is counted on it. */
	seq = reply_push(c, MQTT_SUBACK, s.packet_id, 0);
	if (seq < 0) {
		free(reasons);
		return MQTT_E_NOMEM;
	}
	w = reply_waiter(c, (uint64_t)seq);
	mqtt_sub_iter(&s, &it);
	while (mqtt_sub_next(&it, &filter, &opts)) {
		bool shared, retained = false;

		/* The decoder refused malformed filters already; this is the worker's own guard. A well-formed filter
		 * longer or deeper than this broker takes is refused alone (0x8F), the others still subscribe. */
		if (mqtt_filter_check(&filter, &shared) != MQTT_OK) {
			reasons[n] = MQTT_RC_TOPIC_FILTER_INVALID;
		} else if (!handle_topic_ok(filter.p, filter.len)) {
			W->st.rejected_topic++;
			reasons[n] = MQTT_RC_TOPIC_FILTER_INVALID;
		} else if (!handle_may_subscribe(c, filter.p, filter.len)) {
			reasons[n] = MQTT_RC_NOT_AUTHORIZED; /* 0x80 for 3.1.1, below */
		} else
			reasons[n] = route_subscribe(c->sess, filter, &opts, subid, &w, &retained);
		if (c->version != MQTT_V5 && reasons[n] >= 0x80)
			reasons[n] = 0x80;
		if (retained && remember_retained(&rbuf, filter) < 0) {
			/* The subscription stands; only its retained messages cannot be remembered: say so. */
			reasons[n] = MQTT_RC_UNSPECIFIED;
		}
		n++;
	}
	r = reply_get(c, (uint64_t)seq);
	r->reasons = reasons;
	r->n_reasons = n;
	/* Retained messages go after the SUBACK, which may still wait. */
	r->retained = rbuf.data;
	r->retained_len = rbuf.len;
	r->failed = w.failed;
	reply_wait(c, (uint64_t)seq, w.count);
	reply_flush(c);
	return 0;
}

int handle_unsubscribe(conn_t *c, const mqtt_frame_t *f)
{
	mqtt_subscribe_t s;
	mqtt_iter_t it;
	mqtt_str_t filter;
	uint32_t n = 0;
	uint8_t *reasons;
	int64_t seq;
	reply_t *r;
	int err;

	err = mqtt_decode_unsubscribe(f, c->version, &s);
	if (err < 0)
		return err;
	if (s.count > MAX_FILTERS)
		return MQTT_E_PROTOCOL;
	reasons = malloc(s.count ? s.count : 1);
	if (!reasons)
		return MQTT_E_NOMEM;
	mqtt_sub_iter(&s, &it);
	while (mqtt_unsub_next(&it, &filter)) {
		bool shared;

		if (mqtt_filter_check(&filter, &shared) != MQTT_OK)
			reasons[n++] = MQTT_RC_TOPIC_FILTER_INVALID;
		else
			reasons[n++] = route_unsubscribe(c->sess, filter);
	}
	seq = reply_push(c, MQTT_UNSUBACK, s.packet_id, 0);
	if (seq < 0) {
		free(reasons);
		return MQTT_E_NOMEM;
	}
	r = reply_get(c, (uint64_t)seq);
	r->reasons = reasons;
	r->n_reasons = n;
	reply_flush(c);
	return 0;
}

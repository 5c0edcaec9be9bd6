/* handle_publish.c — inbound PUBLISH: topic aliases, receive maximum, QoS 2 duplicates, routing, ordered acks. */
#include "handle.h"

#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "msg.h"
#include "route.h"
#include "sess.h"
#include "sys.h"
#include "worker.h"

/* Resolve or record the client's topic alias. */
static int topic_alias(conn_t *c, mqtt_publish_t *p)
{
	uint16_t a = p->props.topic_alias;
	alias_t *e;

	if (!(p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
		if (!p->topic.len)
			return MQTT_E_PROTOCOL; /* [MQTT-3.3.2-1]: no topic and no alias */
		return 0;
	}
	if (a == 0 || a > W->cfg->topic_alias_maximum)
		return MQTT_E_TOPIC_ALIAS; /* [MQTT-3.3.2-9] */
	if (!c->alias_in) {
		c->alias_in = calloc((size_t)W->cfg->topic_alias_maximum + 1, sizeof(alias_t));
		if (!c->alias_in)
			return MQTT_E_NOMEM;
	}
	e = &c->alias_in[a];
	if (p->topic.len) {
		char *t = realloc(e->topic, p->topic.len);

		if (!t)
			return MQTT_E_NOMEM;
		memcpy(t, p->topic.p, p->topic.len);
		e->topic = t;
		e->len = (uint16_t)p->topic.len;
		return 0;
	}
	if (!e->topic)
		return MQTT_E_PROTOCOL; /* alias never set on this connection */
	p->topic.p = (const uint8_t *)e->topic;
	p->topic.len = e->len;
	return 0;
}

int handle_publish(conn_t *c, const mqtt_frame_t *f)
{
	mqtt_publish_t p;
	waiter_t w;
	uint8_t ack_type;
	int64_t seq;
	msg_t *m;
	bool matched;
	int err;

	err = mqtt_decode_publish(f, c->version, &p);
	if (err < 0)
		return err;
	if (c->version == MQTT_V5) {
		/* [MQTT-3.3.4-6]: a Subscription Identifier is the server's to send, never the client's. */
		if (p.props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
			return MQTT_E_PROTOCOL;
		if ((err = topic_alias(c, &p)) < 0)
			return err;
	}
	if (p.topic.len > 65535)
		return MQTT_E_TOPIC_NAME;
	if (!handle_topic_ok(p.topic.p, p.topic.len)) {
		W->st.rejected_topic++;
		return MQTT_E_TOPIC_NAME; /* longer or deeper than this broker takes: 0x90 */
	}
	if (!handle_user_props_ok(&p.props)) {
		W->st.rejected_user_properties++;
		return MQTT_E_QUOTA;
	}
	/* $SYS is the broker's own (sys.h): a client's message there is refused like one the rules forbid. */
	if (sys_topic(p.topic.p, p.topic.len) || !handle_may_publish(c, p.topic.p, p.topic.len)) {
		/* Dropped. MQTT 5 says why in the PUBACK/PUBREC (which ends a QoS 2 flow); 3.1.1 has no way to: its
		 * client gets the usual acknowledgement, or it would send the message again forever. */
		if (p.qos == 0)
			return 0;
		/* (A 3.1.1 PUBREL that follows gets its PUBCOMP whether or not the id is known.) */
		if (reply_push(c, p.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p.packet_id,
		    c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0) < 0)
			return MQTT_E_NOMEM;
		reply_flush(c);
		return 0;
	}
	W->st.msgs_in++;
	W->st.msgs_in_qos0 += p.qos == 0;
	W->st.msgs_in_qos1 += p.qos == 1;
	W->st.msgs_in_qos2 += p.qos == 2;
	if (p.qos == 0) {
		m = msg_create(&p, p.topic.p, (uint16_t)p.topic.len, c->id);
		if (!m)
			return MQTT_E_NOMEM;
		route_publish(m, NULL);
		msg_unref(m);
		return 0;
	}
	/* [MQTT-3.3.4-7]: more unacknowledged QoS>0 PUBLISHes than our Receive Maximum is an error; QoS 2 ids
	 * awaiting PUBREL have their own, lower bound (each holds state until the client releases it). */
	if (!(p.qos == 2 && sess_rx_has(c->sess, p.packet_id))) {
		if ((uint32_t)c->inflight_in + sess_rx_count(c->sess) >= W->cfg->receive_maximum)
			return MQTT_E_RECEIVE_MAX;
		if (p.qos == 2 && sess_rx_count(c->sess) >= W->cfg->max_qos2_pending) {
			W->st.rejected_qos2_pending++;
			return MQTT_E_RECEIVE_MAX;
		}
	}
	ack_type = p.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
	if (p.qos == 2 && sess_rx_has(c->sess, p.packet_id)) {
		/* A resent QoS 2 PUBLISH we already took: acknowledge again, deliver nothing ([MQTT-4.3.3-10]). */
		if (reply_push(c, MQTT_PUBREC, p.packet_id, 0) < 0)
			return MQTT_E_NOMEM;
		reply_flush(c);
		return 0;
	}
	m = msg_create(&p, p.topic.p, (uint16_t)p.topic.len, c->id);
	if (!m)
		return MQTT_E_NOMEM;
	seq = reply_push(c, ack_type, p.packet_id, 0);
	if (seq < 0) {
		msg_unref(m);
		return MQTT_E_NOMEM;
	}
	/* Latency histograms (hist.h): the PUBACK's and every subscriber's acknowledgement count from here. */
	m->rx_us = reply_get(c, (uint64_t)seq)->rx_us = hist_stamp();
	/* Every copy made while routing (subscriber copies in the store, frames to other workers, the QoS 2 id)
	 * is counted on w: the PUBACK/PUBREC leaves when all of them are durable. */
	w = reply_waiter(c, (uint64_t)seq);
	if (p.qos == 1) {
		c->inflight_in++;
	} else if (sess_rx_add(c->sess, p.packet_id, &w) < 0) {
		msg_unref(m);
		reply_get(c, (uint64_t)seq)->failed = true;
		reply_flush(c);
		return MQTT_E_NOMEM;
	}
	matched = route_publish(m, &w);
	msg_unref(m);
	if (!matched && c->version == MQTT_V5)
		reply_get(c, (uint64_t)seq)->reason = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
	if (w.failed)
		reply_get(c, (uint64_t)seq)->failed = true;
	reply_wait(c, (uint64_t)seq, w.count);
	reply_flush(c);
	return 0;
}

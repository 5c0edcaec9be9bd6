/* msg.c — refcounted application messages and their per-subscriber PUBLISH encoding (see msg.h). */
#include "msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "loop.h"
#include "worker.h"

msg_t *msg_create(const mqtt_publish_t *p, const uint8_t *topic, uint16_t topic_len, uint64_t origin)
{
	const mqtt_props_t *pr = &p->props;
	msg_t hdr;
	uint8_t *d;
	msg_t *m;

	memset(&hdr, 0, sizeof(hdr));
	hdr.topic_len = topic_len;
	hdr.ct_len = (uint16_t)pr->content_type.len;
	hdr.rt_len = (uint16_t)pr->response_topic.len;
	hdr.cd_len = (uint16_t)pr->correlation_data.len;
	hdr.user_len = pr->user.len;
	hdr.payload_len = p->payload.len;
	m = malloc(sizeof(*m) + msg_data_len(&hdr));
	if (!m)
		return NULL;
	*m = hdr;
	m->refs = 1;
	m->qos = p->qos;
	m->retain = p->retain;
	m->origin = origin;
	if (pr->present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT)) {
		m->flags |= MSG_HAS_PFI;
		m->pfi = pr->payload_format;
	}
	if (pr->present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY)) {
		m->flags |= MSG_HAS_EXPIRY;
		m->expire_at_ms = loop_now() + (uint64_t)pr->message_expiry * 1000;
	}
	d = m->data;
	memcpy(d, topic, topic_len);
	d += topic_len;
	if (m->ct_len)
		memcpy(d, pr->content_type.p, m->ct_len);
	d += m->ct_len;
	if (m->rt_len)
		memcpy(d, pr->response_topic.p, m->rt_len);
	d += m->rt_len;
	if (m->cd_len)
		memcpy(d, pr->correlation_data.p, m->cd_len);
	d += m->cd_len;
	if (m->user_len)
		memcpy(d, pr->user.p, m->user_len);
	d += m->user_len;
	if (m->payload_len)
		memcpy(d, p->payload.p, m->payload_len);
	return m;
}

msg_t *msg_create_raw(const msg_t *hdr, const uint8_t *data)
{
	size_t len = msg_data_len(hdr);
	msg_t *m = malloc(sizeof(*m) + len);

	if (!m)
		return NULL;
	*m = *hdr;
	m->refs = 1;
	memcpy(m->data, data, len);
	return m;
}

void msg_unref(msg_t *m)
{
	if (m && --m->refs == 0)
		free(m);
}

/* Pick an outbound topic alias: an existing one, a new one while there is room, else none (0). */
static uint16_t alias_for(conn_t *c, const msg_t *m, bool *is_new)
{
	*is_new = false;
	if (!c->alias_max_out)
		return 0;
	if (!c->alias_out) {
		c->alias_out = calloc((size_t)c->alias_max_out + 1, sizeof(alias_t));
		if (!c->alias_out)
			return 0;
	}
	for (uint16_t i = 1; i <= c->n_alias_out; i++) {
		if (c->alias_out[i].len == m->topic_len && memcmp(c->alias_out[i].topic, m->data, m->topic_len) == 0)
			return i;
	}
	if (c->n_alias_out < c->alias_max_out) {
		*is_new = true;
		return (uint16_t)(c->n_alias_out + 1);
	}
	return 0;
}

int msg_send(conn_t *c, const msg_t *m, uint8_t qos, uint8_t retain, uint16_t pid, uint32_t subid, bool dup)
{
	mqtt_publish_t p;
	const uint8_t *d = m->data;
	uint16_t alias = 0;
	bool alias_new = false;
	uint32_t size;
	uint8_t *out;

	memset(&p, 0, sizeof(p));
	p.dup = dup;
	p.qos = qos;
	p.retain = retain;
	p.packet_id = pid;
	p.topic.p = d;
	p.topic.len = m->topic_len;
	d += m->topic_len;
	if (c->version == MQTT_V5) {
		mqtt_props_t *pr = &p.props;

		if (m->flags & MSG_HAS_PFI) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
			pr->payload_format = m->pfi;
		}
		if (m->flags & MSG_HAS_EXPIRY) {
			/* [MQTT-3.3.2-6]: forward the time that is left, rounded up. */
			uint64_t left = m->expire_at_ms > loop_now() ? m->expire_at_ms - loop_now() : 0;

			pr->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
			pr->message_expiry = (uint32_t)((left + 999) / 1000);
		}
		if (m->ct_len) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
			pr->content_type.p = d;
			pr->content_type.len = m->ct_len;
		}
		d += m->ct_len;
		if (m->rt_len) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
			pr->response_topic.p = d;
			pr->response_topic.len = m->rt_len;
		}
		d += m->rt_len;
		if (m->cd_len) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
			pr->correlation_data.p = d;
			pr->correlation_data.len = m->cd_len;
		}
		d += m->cd_len;
		if (m->user_len) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
			pr->user.p = d;
			pr->user.len = m->user_len;
		}
		d += m->user_len;
		if (subid) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
			pr->sub_ids[0] = subid;
			pr->n_sub_ids = 1;
		}
		alias = alias_for(c, m, &alias_new);
		if (alias) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
			pr->topic_alias = alias;
			if (!alias_new)
				p.topic.len = 0;
		}
	} else {
		d += (size_t)m->ct_len + m->rt_len + m->cd_len + m->user_len;
	}
	p.payload.p = d;
	p.payload.len = m->payload_len;
	size = mqtt_publish_size(c->version, &p);
	if (size > conn_max_packet(c))
		return -EMSGSIZE;
	if (qos == 0 && !conn_qos0_room(c, size))
		return -ENOBUFS;
	out = conn_reserve(c, size);
	if (!out)
		return -ENOMEM;
	if (alias_new) {
		alias_t *a = &c->alias_out[alias];

		a->topic = malloc(m->topic_len);
		if (!a->topic) {
			conn_abort(c, MQTT_E_NOMEM);
			return -ENOMEM;
		}
		memcpy(a->topic, m->data, m->topic_len);
		a->len = m->topic_len;
		c->n_alias_out++;
	}
	conn_commit(c, mqtt_encode_publish(out, size, c->version, &p));
	W->st.msgs_out++;
	W->st.msgs_out_qos0 += qos == 0;
	W->st.msgs_out_qos1 += qos == 1;
	W->st.msgs_out_qos2 += qos == 2;
	return 0;
}

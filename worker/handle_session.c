/* handle_session.c — packet dispatch by state, PINGREQ, DISCONNECT, AUTH. */
#include "handle.h"

#include "sess.h"
#include "worker.h"

bool handle_topic_ok(const uint8_t *p, size_t len)
{
	uint32_t levels = 1;

	if (len > W->cfg->max_topic_length)
		return false;
	for (size_t i = 0; i < len; i++)
		levels += p[i] == '/';
	return levels <= W->cfg->max_topic_levels;
}

bool handle_user_props_ok(const mqtt_props_t *props)
{
	mqtt_str_t k, v;
	mqtt_iter_t it;
	uint32_t n = 0;

	if (!(props->present & MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY)))
		return true;
	mqtt_user_prop_iter(props, &it);
	while (mqtt_user_prop_next(&it, &k, &v)) {
		if (++n > W->cfg->max_user_properties)
			return false;
	}
	return true;
}

int handle_packet(conn_t *c, const mqtt_frame_t *f)
{
	if (c->state == CONN_NEW && f->type != MQTT_CONNECT)
		return MQTT_E_CLOSE; /* [MQTT-3.1.0-1]: the first packet must be CONNECT */
	switch (f->type) {
	case MQTT_CONNECT:
		return handle_connect(c, f);
	case MQTT_PUBLISH:
		return handle_publish(c, f);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return handle_ack(c, f);
	case MQTT_SUBSCRIBE:
		return handle_subscribe(c, f);
	case MQTT_UNSUBSCRIBE:
		return handle_unsubscribe(c, f);
	case MQTT_PINGREQ:
		return handle_pingreq(c, f);
	case MQTT_DISCONNECT:
		return handle_disconnect(c, f);
	case MQTT_AUTH:
		return handle_auth(c, f);
	default:
		/* CONNACK, SUBACK, ... are server-to-client only. */
		return MQTT_E_PROTOCOL;
	}
}

int handle_pingreq(conn_t *c, const mqtt_frame_t *f)
{
	uint8_t *p;
	int err = mqtt_decode_empty(f);

	if (err < 0)
		return err;
	p = conn_reserve(c, 2);
	if (p)
		conn_commit(c, mqtt_encode_empty(p, 2, MQTT_PINGRESP));
	return 0;
}

int handle_disconnect(conn_t *c, const mqtt_frame_t *f)
{
	mqtt_ack_t d;
	int err = mqtt_decode_disconnect(f, c->version, &d);

	if (err < 0)
		return err;
	if (d.props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) {
		/* [MQTT-3.14.2-2]: a session that was to end with the connection cannot be made to outlive it. */
		if (c->sess->expiry_s == 0 && d.props.session_expiry != 0)
			return MQTT_E_PROTOCOL;
		sess_set_expiry(c->sess, d.props.session_expiry > W->cfg->max_session_expiry ?
			W->cfg->max_session_expiry : d.props.session_expiry);
	}
	/* Reason 0x04 asks for the will to be published; every other normal DISCONNECT discards it. */
	c->graceful = d.reason != MQTT_RC_DISCONNECT_WITH_WILL;
	conn_close(c, MQTT_RC_SUCCESS);
	return 0;
}

int handle_auth(conn_t *c, const mqtt_frame_t *f)
{
	mqtt_ack_t a;
	int err;

	if (c->version != MQTT_V5)
		return MQTT_E_CLOSE;
	err = mqtt_decode_auth(f, &a);
	if (err < 0)
		return err;
	/* No authentication method was agreed in CONNECT, so any AUTH is out of place [MQTT-4.12.0-1]. */
	return MQTT_E_PROTOCOL;
}

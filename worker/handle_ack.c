/* handle_ack.c — PUBACK, PUBREC, PUBREL, PUBCOMP from the client. */
#include "handle.h"

#include "sess.h"

int handle_ack(conn_t *c, const mqtt_frame_t *f)
{
	mqtt_ack_t a;
	int rc, err;

	err = mqtt_decode_ack(f, c->version, &a);
	if (err < 0)
		return err;
	switch (f->type) {
	case MQTT_PUBACK:
		rc = sess_on_puback(c->sess, a.packet_id);
		break;
	case MQTT_PUBREC:
		rc = sess_on_pubrec(c->sess, a.packet_id, a.reason);
		/* [MQTT-4.3.3-4]: answer with PUBREL, also for an id we no longer know (0x92 in MQTT 5). */
		if (rc >= 0 && a.reason < 0x80)
			conn_send_ack(c, MQTT_PUBREL, a.packet_id, rc == SESS_ACK_UNKNOWN ?
				MQTT_RC_PACKET_ID_NOT_FOUND : 0, NULL);
		break;
	case MQTT_PUBCOMP:
		rc = sess_on_pubcomp(c->sess, a.packet_id);
		break;
	default: /* MQTT_PUBREL */
		rc = sess_rx_del(c->sess, a.packet_id) ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND;
		/* Through the reply FIFO: a PUBREC still waiting for the store must go out before this PUBCOMP. */
		if (reply_push(c, MQTT_PUBCOMP, a.packet_id, c->version == MQTT_V5 ? (uint8_t)rc : 0) < 0)
			return MQTT_E_NOMEM;
		reply_flush(c);
		return 0;
	}
	/* An acknowledgement of the wrong kind for a packet id in flight is a protocol violation. */
	return rc < 0 ? rc : 0;
}

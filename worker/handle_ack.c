/* handle_ack.c — PUBACK, PUBREC, PUBREL, PUBCOMP from the client. */
#include "handle.h"

#include "conn.h"
#include "sess.h"

int handle_ack(conn_t *c, const mqtt_frame_t *f)
{
	mqtt_ack_t a;
	uint8_t rc;
	int err;

	err = mqtt_decode_ack(f, c->version, &a);
	if (err < 0)
		return err;
	switch (f->type) {
	case MQTT_PUBACK:
		sess_on_puback(c->sess, a.packet_id);
		break;
	case MQTT_PUBREC:
		rc = sess_on_pubrec(c->sess, a.packet_id, a.reason);
		/* [MQTT-4.3.3-4]: answer with PUBREL, also for an id we no longer know (0x92 in MQTT 5). */
		if (a.reason < 0x80)
			conn_send_ack(c, MQTT_PUBREL, a.packet_id, rc);
		break;
	case MQTT_PUBCOMP:
		sess_on_pubcomp(c->sess, a.packet_id);
		break;
	case MQTT_PUBREL:
		rc = sess_rx_del(c->sess, a.packet_id) ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND;
		/* Through the reply FIFO: a PUBREC still waiting for peers must go out before this PUBCOMP. */
		if (handle_pend_push(c, MQTT_PUBCOMP, a.packet_id, c->version == MQTT_V5 ? rc : 0, NULL, 0) < 0)
			return CONN_E_NOMEM;
		conn_pend_flush(c);
		break;
	}
	return 0;
}

/*
 * mqtt_err.c — the one place decoder errors become MQTT 5 reason codes and 3.1.1 CONNACK return codes.
 */
#include "mqtt_int.h"

uint8_t
mqtt_err_reason(int err)
{
	switch (err) {
	case MQTT_OK:
		return MQTT_RC_SUCCESS;
	case MQTT_E_MALFORMED:
	case MQTT_E_UTF8:
	case MQTT_E_QOS:
		return MQTT_RC_MALFORMED;
	case MQTT_E_PROTOCOL:
	case MQTT_E_PROPERTY:
	case MQTT_E_PACKET_ID:
		return MQTT_RC_PROTOCOL_ERROR;
	case MQTT_E_TOO_LARGE:
		return MQTT_RC_PACKET_TOO_LARGE;
	case MQTT_E_TOPIC_NAME:
		return MQTT_RC_TOPIC_NAME_INVALID;
	case MQTT_E_TOPIC_FILTER:
		return MQTT_RC_TOPIC_FILTER_INVALID;
	case MQTT_E_VERSION:
		return MQTT_RC_UNSUPPORTED_VERSION;
	case MQTT_E_CLIENT_ID:
		return MQTT_RC_CLIENT_ID_INVALID;
	case MQTT_E_NOSPACE:
		/* our own buffer ran out: nothing the peer did wrong */
		return MQTT_RC_IMPL_SPECIFIC;
	default:
		return MQTT_RC_UNSPECIFIED;
	}
}

int
mqtt_err_connack_v3(int err)
{
	switch (err) {
	case MQTT_OK:
		return MQTT_V3_ACCEPTED;
	case MQTT_E_VERSION:
		return MQTT_V3_BAD_VERSION;   /* [MQTT-3.1.2-2] */
	case MQTT_E_CLIENT_ID:
		return MQTT_V3_ID_REJECTED;   /* [MQTT-3.1.3-8], [MQTT-3.1.3-9] */
	default:
		/* 3.1.1 has no return code for malformed or forbidden packets: close the connection [MQTT-4.8.0-1] */
		return -1;
	}
}

const char *
mqtt_err_str(int err)
{
	switch (err) {
	case MQTT_OK:
		return "success";
	case MQTT_NEED_MORE:
		return "need more data";
	case MQTT_E_MALFORMED:
		return "malformed packet";
	case MQTT_E_PROTOCOL:
		return "protocol error";
	case MQTT_E_TOO_LARGE:
		return "packet too large";
	case MQTT_E_UTF8:
		return "invalid UTF-8 string";
	case MQTT_E_TOPIC_NAME:
		return "invalid topic name";
	case MQTT_E_TOPIC_FILTER:
		return "invalid topic filter";
	case MQTT_E_VERSION:
		return "unsupported protocol version";
	case MQTT_E_CLIENT_ID:
		return "invalid client identifier";
	case MQTT_E_PROPERTY:
		return "invalid property";
	case MQTT_E_PACKET_ID:
		return "missing packet identifier";
	case MQTT_E_QOS:
		return "invalid QoS";
	case MQTT_E_NOSPACE:
		return "buffer too small";
	default:
		return "unknown error";
	}
}

const char *
mqtt_type_name(uint8_t type)
{
	static const char *const names[16] = {
		"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
	};

	return type < 16 ? names[type] : "UNKNOWN";
}

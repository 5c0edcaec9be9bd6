/* err.c — TEMPORARY (see err.h): the answer to each error until proto's mqtt_err_answer lands. */
#include "err.h"

static uint8_t reason(int err)
{
	switch (err) {
	case MQTT_E_RECEIVE_MAX: return MQTT_RC_RECEIVE_MAX_EXCEEDED;
	case MQTT_E_TOPIC_ALIAS: return MQTT_RC_TOPIC_ALIAS_INVALID;
	case MQTT_E_QUOTA: return MQTT_RC_QUOTA_EXCEEDED;
	case MQTT_E_UNAVAILABLE: return MQTT_RC_SERVER_UNAVAILABLE;
	case MQTT_E_BUSY: return MQTT_RC_SERVER_BUSY;
	case MQTT_E_AUTH_METHOD: return MQTT_RC_BAD_AUTH_METHOD;
	case MQTT_E_BAD_AUTH: return MQTT_RC_BAD_USER_OR_PASSWORD;
	case MQTT_E_NOT_AUTHORIZED: return MQTT_RC_NOT_AUTHORIZED;
	case MQTT_E_PROTOCOL_NAME: return MQTT_RC_UNSUPPORTED_VERSION;
	case MQTT_E_NOMEM: return MQTT_RC_UNSPECIFIED;
	case MQTT_E_CLOSE: return MQTT_RC_UNSPECIFIED;
	default: return mqtt_err_reason(err);
	}
}

static const char *text(int err)
{
	switch (err) {
	case MQTT_E_RECEIVE_MAX: return "receive maximum exceeded: more unacknowledged QoS 1/2 PUBLISHes than "
		"the Receive Maximum in CONNACK";
	case MQTT_E_TOPIC_ALIAS: return "topic alias invalid";
	case MQTT_E_QUOTA: return "quota exceeded";
	case MQTT_E_UNAVAILABLE: return "server unavailable";
	case MQTT_E_BUSY: return "server busy";
	case MQTT_E_AUTH_METHOD: return "bad authentication method";
	case MQTT_E_BAD_AUTH: return "bad user name or password";
	case MQTT_E_NOT_AUTHORIZED: return "not authorized";
	case MQTT_E_PROTOCOL_NAME: return "wrong protocol name";
	case MQTT_E_NOMEM: return "out of memory";
	case MQTT_E_CLOSE: return "protocol violation";
	default: return mqtt_err_str(err);
	}
}

mqtt_answer_t mqtt_err_answer(int err, uint8_t version, bool before_connack)
{
	mqtt_answer_t a = { .action = MQTT_ACT_CLOSE, .code = reason(err), .text = text(err) };
	int v3;

	if (err == MQTT_E_CLOSE)
		return a;
	if (before_connack) {
		if (version == MQTT_V5) {
			a.action = MQTT_ACT_CONNACK;
		} else if (err == MQTT_E_UNAVAILABLE || err == MQTT_E_BUSY || err == MQTT_E_QUOTA) {
			a.action = MQTT_ACT_CONNACK;
			a.code = MQTT_V3_SERVER_UNAVAILABLE;
		} else if (err == MQTT_E_BAD_AUTH || err == MQTT_E_NOT_AUTHORIZED) {
			a.action = MQTT_ACT_CONNACK;
			a.code = err == MQTT_E_BAD_AUTH ? MQTT_V3_BAD_USER_OR_PASSWORD : MQTT_V3_NOT_AUTHORIZED;
		} else if ((v3 = mqtt_err_connack_v3(err)) > 0) {
			a.action = MQTT_ACT_CONNACK;
			a.code = (uint8_t)v3;
		}
		return a;
	}
	if (version == MQTT_V5)
		a.action = MQTT_ACT_DISCONNECT;
	return a;
}

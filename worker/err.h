/*
 * err.h — TEMPORARY: the session-level error values the worker needs until proto's single error vocabulary
 * (enum mqtt_err + mqtt_err_answer) lands from branch a-proto-fuzz; then this file goes.
 */
#ifndef RINGMQ_WORKER_ERR_H
#define RINGMQ_WORKER_ERR_H

#include "mqtt.h"

enum {
	MQTT_E_RECEIVE_MAX = -13,
	MQTT_E_TOPIC_ALIAS = -14,
	MQTT_E_QUOTA = -15,
	MQTT_E_UNAVAILABLE = -16,
	MQTT_E_BUSY = -17,
	MQTT_E_AUTH_METHOD = -18,
	MQTT_E_BAD_AUTH = -19,
	MQTT_E_NOT_AUTHORIZED = -20,
	MQTT_E_PROTOCOL_NAME = -21,
	MQTT_E_CLOSE = -22,
	MQTT_E_NOMEM = -23,
};

enum mqtt_action { MQTT_ACT_CONNACK = 1, MQTT_ACT_DISCONNECT, MQTT_ACT_CLOSE };
typedef struct mqtt_answer {
	uint8_t action;
	uint8_t code;
	const char *text;
} mqtt_answer_t;
mqtt_answer_t mqtt_err_answer(int err, uint8_t version, bool before_connack);

#endif

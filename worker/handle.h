/*
 * handle.h — one handler per MQTT packet type. Each returns 0, HANDLE_HANDOFF (CONNECT only: the client
 * belongs to another worker), or a negative enum mqtt_err that conn_fail() — the one place errors become
 * MQTT answers — turns into a CONNACK, a DISCONNECT or a close. Worker thread only.
 */
#ifndef RINGMQ_WORKER_HANDLE_H
#define RINGMQ_WORKER_HANDLE_H

#include "conn.h"
#include "conn_send.h"
#include "mqtt.h"

/* Not an error: CONNECT names a client of another worker; the connection moves there. */
#define HANDLE_HANDOFF 1
/* Not an error: CONNECT is being authenticated; it stays in the input and is parsed again when that is done. */
#define HANDLE_AUTH 2

/* Limits on what a client's packets may carry (handle_session.c): a topic name or filter within
 * max_topic_length bytes and max_topic_levels levels, at most max_user_properties user properties. */
bool handle_topic_ok(const uint8_t *p, size_t len);
bool handle_user_props_ok(const mqtt_props_t *props);

/* Dispatch one framed packet by type and connection state. */
int handle_packet(conn_t *c, const mqtt_frame_t *f);

int handle_connect(conn_t *c, const mqtt_frame_t *f);
/* May c publish to topic (its rules, the defaults)? Counts a refusal. */
bool handle_may_publish(conn_t *c, const uint8_t *topic, size_t len);
bool handle_may_subscribe(conn_t *c, const uint8_t *filter, size_t len);
/* Drop the subscriptions of c's session that its rules no longer allow (after a reconnect or a reload). */
void handle_recheck_subscriptions(conn_t *c);
int handle_publish(conn_t *c, const mqtt_frame_t *f);
/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
int handle_ack(conn_t *c, const mqtt_frame_t *f);
int handle_subscribe(conn_t *c, const mqtt_frame_t *f);
int handle_unsubscribe(conn_t *c, const mqtt_frame_t *f);
int handle_pingreq(conn_t *c, const mqtt_frame_t *f);
int handle_disconnect(conn_t *c, const mqtt_frame_t *f);
int handle_auth(conn_t *c, const mqtt_frame_t *f);

#endif

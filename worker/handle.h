/*
 * handle.h — one handler per MQTT packet type. Each returns 0, CONN_HANDOFF_NEEDED (CONNECT only), or an
 * error (enum mqtt_err / enum conn_err) that conn_fail() turns into the MQTT answer. Worker thread only.
 */
#ifndef RINGMQ_WORKER_HANDLE_H
#define RINGMQ_WORKER_HANDLE_H

#include "wk-t.h"

/* Dispatch one framed packet by type and connection state. */
int handle_packet(conn_t *c, const mqtt_frame_t *f);

int handle_connect(conn_t *c, const mqtt_frame_t *f);
int handle_publish(conn_t *c, const mqtt_frame_t *f);
/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
int handle_ack(conn_t *c, const mqtt_frame_t *f);
int handle_subscribe(conn_t *c, const mqtt_frame_t *f);
int handle_unsubscribe(conn_t *c, const mqtt_frame_t *f);
/* PINGREQ, DISCONNECT, AUTH. */
int handle_disconnect(conn_t *c, const mqtt_frame_t *f);
int handle_pingreq(conn_t *c, const mqtt_frame_t *f);
int handle_auth(conn_t *c, const mqtt_frame_t *f);

/* Append a reply to c's ordered reply FIFO; returns its sequence number (for peer tokens) or -1. */
int64_t handle_pend_push(conn_t *c, uint8_t type, uint16_t pid, uint8_t reason, uint8_t *packet,
	uint32_t packet_len);
/* The pend entry with sequence seq, or NULL if it was already written. */
pend_t *handle_pend_get(conn_t *c, uint64_t seq);

#endif

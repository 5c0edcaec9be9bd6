/*
 * conn_send.h — the packets a connection answers with (acknowledgements, CONNACK, SUBACK/UNSUBACK, DISCONNECT),
 * encoded within the client's Maximum Packet Size: the Reason String and User Properties are dropped first
 * ([MQTT-3.1.2-25]); a packet that does not fit even bare closes the connection. Each returns 0 or a negative
 * enum mqtt_err (the connection is then closing). Worker thread only.
 */
#ifndef RINGMQ_WORKER_CONN_SEND_H
#define RINGMQ_WORKER_CONN_SEND_H

#include "conn.h"

int conn_send_ack(conn_t *c, uint8_t type, uint16_t pid, uint8_t reason, const char *reason_string);
int conn_send_connack(conn_t *c, mqtt_connack_t *ack);
int conn_send_disconnect(conn_t *c, uint8_t reason, const char *reason_string);
/* SUBACK / UNSUBACK (type) with one reason per filter; a Reason String explains 0x8F/0x97 when wanted. */
int conn_send_suback(conn_t *c, uint8_t type, uint16_t pid, const uint8_t *reasons, uint32_t n);
/* Add text as the Reason String of props when the client is MQTT 5 and asked for problem information. */
void conn_send_reason_string(const conn_t *c, mqtt_props_t *props, const char *text);

#endif

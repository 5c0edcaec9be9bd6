/*
 * tclient.h — an MQTT client for the worker's unit tests, on fake I/O (fake_io.h): packets are encoded with
 * proto's encoders and fed to a connection; what the connection writes is framed back into packets.
 */
#ifndef RINGMQ_TESTS_TCLIENT_H
#define RINGMQ_TESTS_TCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_io.h"
#include "mqtt.h"

typedef struct tcli {
	conn_t *c;
	uint64_t id;               /* the connection's id (the conn may be freed: look it up by id) */
	uint8_t version;
	uint8_t *in;               /* output of the connection not yet read by the test */
	size_t in_len;
	size_t in_off;
	uint8_t pkt[1 << 16];      /* the last packet read */
} tcli_t;

/* Connect (CONNECT with these options, the v5 properties in props or NULL) and read the CONNACK: returns its
 * reason code (or -1 when none came). */
int tc_open(tcli_t *t, uint8_t version, const char *cid, bool clean, uint32_t expiry, const mqtt_props_t *props);
void tc_send_raw(tcli_t *t, const void *p, size_t n);
void tc_publish(tcli_t *t, const char *topic, const char *payload, uint8_t qos, uint16_t pid);
void tc_subscribe(tcli_t *t, uint16_t pid, const char *filter, uint8_t qos);
void tc_unsubscribe(tcli_t *t, uint16_t pid, const char *filter);
void tc_ack(tcli_t *t, uint8_t type, uint16_t pid);
/* The next packet the connection wrote (after a fake_turn), or false. */
bool tc_recv(tcli_t *t, mqtt_frame_t *f);
/* Skip packets until one of type `type`; false when none. */
bool tc_expect(tcli_t *t, uint8_t type, mqtt_frame_t *f);
/* The reason code of the next acknowledgement of that type (its packet id in *pid), -1 when none came. */
int tc_ack_reason(tcli_t *t, uint8_t type, uint16_t *pid);
/* Is the connection still open? */
bool tc_alive(const tcli_t *t);
/* A client ID starting with base owned by worker k of n (static storage, valid until the next call). */
const char *tc_id_on(const char *base, int k, int n);
void tc_close(tcli_t *t);

#endif

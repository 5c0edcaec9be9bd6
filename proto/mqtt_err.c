/*
 * mqtt_err.c — the one place an error becomes an MQTT 5 reason code, a 3.1.1 CONNACK return code, a reason
 * string, and through mqtt_err_answer() a CONNACK, a DISCONNECT or a plain close.
 *
 * One row per error. The MQTT 5 code is split in two because CONNACK and DISCONNECT accept different sets
 * (sections 3.2.2.2 and 3.14.2.1): an error whose natural code one packet cannot carry gets the nearest code it
 * can, chosen here once rather than by each caller. Rows whose error cannot happen in a phase (a Receive Maximum
 * overrun before CONNACK, a second protocol name after it) still get a valid code, so a caller's slip can never
 * put an invalid reason code on the wire.
 */
#include "mqtt_int.h"

#define V3_CLOSE (-1)

struct err_row {
	uint8_t reason;         /* the MQTT 5 code that names the error: mqtt_err_reason() */
	uint8_t connack;        /* MQTT 5 CONNACK reason code */
	uint8_t disconnect;     /* MQTT 5 DISCONNECT reason code */
	int8_t v3;              /* 3.1 / 3.1.1 CONNACK return code, or V3_CLOSE */
	const char *text;
};

/* Indexed by MQTT_NEED_MORE - err, so MQTT_NEED_MORE is row 0, MQTT_OK row 1, MQTT_E_MALFORMED row 2... */
#define ROW(err, reason, connack, disconnect, v3, text) \
	[MQTT_NEED_MORE - (err)] = { reason, connack, disconnect, v3, text }

static const struct err_row rows[] = {
	ROW(MQTT_NEED_MORE, 0x80, 0x80, 0x80, V3_CLOSE, "need more data"),
	ROW(MQTT_OK, 0x00, 0x00, 0x00, 0, "success"),
	ROW(MQTT_E_MALFORMED, 0x81, 0x81, 0x81, V3_CLOSE, "malformed packet"),
	ROW(MQTT_E_PROTOCOL, 0x82, 0x82, 0x82, V3_CLOSE, "protocol error"),
	ROW(MQTT_E_TOO_LARGE, 0x95, 0x95, 0x95, V3_CLOSE, "packet too large: over the Maximum Packet Size"),
	ROW(MQTT_E_UTF8, 0x81, 0x81, 0x81, V3_CLOSE, "ill-formed UTF-8 string, or one containing U+0000"),
	ROW(MQTT_E_TOPIC_NAME, 0x90, 0x90, 0x90, V3_CLOSE, "invalid topic name"),
	/* The decision to treat a bad filter as a malformed SUBSCRIBE is mosquitto's too; 0x8F stays for filters
	 * that parse but are refused, which a handler answers per entry in SUBACK/UNSUBACK. */
	ROW(MQTT_E_TOPIC_FILTER, 0x81, 0x81, 0x81, V3_CLOSE, "invalid topic filter"),
	/* [MQTT-3.1.2-2]; after CONNACK only a second CONNECT could say it, and that is a protocol error */
	ROW(MQTT_E_VERSION, 0x84, 0x84, 0x82, MQTT_V3_BAD_VERSION, "unsupported protocol version"),
	/* [MQTT-3.1.3-8], [MQTT-3.1.3-9] */
	ROW(MQTT_E_CLIENT_ID, 0x85, 0x85, 0x82, MQTT_V3_ID_REJECTED, "client identifier not valid"),
	ROW(MQTT_E_PROPERTY, 0x82, 0x82, 0x82, V3_CLOSE, "property repeated or with a value not allowed"),
	ROW(MQTT_E_PACKET_ID, 0x82, 0x82, 0x82, V3_CLOSE, "packet identifier 0 where one is required"),
	ROW(MQTT_E_QOS, 0x81, 0x81, 0x81, V3_CLOSE, "QoS 3 in PUBLISH"),
	/* our encoder's buffer: nothing the peer did, and a 3.1.1 client has no code for it */
	ROW(MQTT_E_NOSPACE, 0x83, 0x83, 0x83, V3_CLOSE, "internal error: reply does not fit its buffer"),
	ROW(MQTT_E_RECEIVE_MAX, 0x93, 0x82, 0x93, V3_CLOSE,
	    "receive maximum exceeded: more unacknowledged QoS 1/2 PUBLISHes than the Receive Maximum in CONNACK"),
	ROW(MQTT_E_TOPIC_ALIAS, 0x94, 0x82, 0x94, V3_CLOSE,
	    "topic alias invalid: 0 or greater than the Topic Alias Maximum in CONNACK"),
	ROW(MQTT_E_QUOTA, 0x97, 0x97, 0x97, MQTT_V3_SERVER_UNAVAILABLE,
	    "quota exceeded: a per-client limit (memory, queue, pending replies or connections) was reached"),
	/* DISCONNECT has no 0x88: "busy, try later" is the nearest it has */
	ROW(MQTT_E_UNAVAILABLE, 0x88, 0x88, 0x89, MQTT_V3_SERVER_UNAVAILABLE, "server unavailable, try again later"),
	ROW(MQTT_E_BUSY, 0x89, 0x89, 0x89, MQTT_V3_SERVER_UNAVAILABLE, "server busy, try again later"),
	/* An AUTH after CONNACK without a method agreed in CONNECT is a protocol error [MQTT-4.12.0-1]; DISCONNECT
	 * has no 0x8C. 3.1.1 has no authentication methods, so a 3.x client cannot cause this: close. */
	ROW(MQTT_E_AUTH_METHOD, 0x8C, 0x8C, 0x82, V3_CLOSE, "authentication method not supported"),
	ROW(MQTT_E_BAD_AUTH, 0x86, 0x86, 0x87, MQTT_V3_BAD_USER_OR_PASSWORD, "bad user name or password"),
	ROW(MQTT_E_NOT_AUTHORIZED, 0x87, 0x87, 0x87, MQTT_V3_NOT_AUTHORIZED, "not authorized"),
	/* [MQTT-3.1.2-1]: MQTT 5 may answer 0x84, 3.1.1 closes */
	ROW(MQTT_E_PROTOCOL_NAME, 0x84, 0x84, 0x82, V3_CLOSE, "protocol name is not MQTT"),
	ROW(MQTT_E_CLOSE, 0x00, 0x80, 0x80, V3_CLOSE, "connection closed without an answer"),
	/*
	 * A failed allocation is ours and usually passes: 0x89 "Server busy" tells the client exactly that (try
	 * later), where 0x97 would blame a quota of its own and 0x80 would say nothing. Both CONNACK and DISCONNECT
	 * carry 0x89; 3.1.1's nearest is "server unavailable".
	 */
	ROW(MQTT_E_NOMEM, 0x89, 0x89, 0x89, MQTT_V3_SERVER_UNAVAILABLE, "server out of memory, try again later"),
};

static const struct err_row unknown = { 0x80, 0x80, 0x80, V3_CLOSE, "unknown error" };

static const struct err_row *
row_of(int err)
{
	long i = (long)MQTT_NEED_MORE - err;

	if (i < 0 || (size_t)i >= sizeof(rows) / sizeof(rows[0]) || rows[i].text == NULL)
		return &unknown;
	return &rows[i];
}

mqtt_answer_t
mqtt_err_answer(int err, uint8_t version, bool before_connack)
{
	const struct err_row *r = err < 0 ? row_of(err) : &unknown;
	mqtt_answer_t a = { MQTT_ACT_CLOSE, r->reason, r->text };

	if (err == MQTT_E_CLOSE || version == 0)
		return a;
	if (before_connack) {
		if (version == MQTT_V5) {
			a.action = MQTT_ACT_CONNACK;
			a.code = r->connack;
		} else if (r->v3 > 0) {
			a.action = MQTT_ACT_CONNACK;
			a.code = (uint8_t)r->v3;
		}
	} else if (version == MQTT_V5) {
		a.action = MQTT_ACT_DISCONNECT;
		a.code = r->disconnect;
	}
	return a;
}

uint8_t
mqtt_err_reason(int err)
{
	return row_of(err)->reason;
}

int
mqtt_err_connack_v3(int err)
{
	return row_of(err)->v3;
}

const char *
mqtt_err_str(int err)
{
	return row_of(err)->text;
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

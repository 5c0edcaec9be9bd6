/*
 * mqtt.h — pure MQTT 3.1 / 3.1.1 / 5.0 codec.
 *
 * No I/O and no allocation: decoders take (buf, len) and fill caller-owned structs whose string and binary
 * fields are views (pointer + length) into the caller's buffer, valid as long as that buffer is. Encoders write
 * into a caller buffer and return the number of bytes written, or 0 when the buffer is too small (call the
 * matching *_size() function first to size it). Every function may be called from any thread.
 *
 * Errors are negative enum mqtt_err values, shared by the decoders and by the broker's packet handlers;
 * mqtt_err_answer() is the one place that turns one into what goes on the wire (CONNACK, DISCONNECT, or a plain
 * close), for either protocol dialect.
 */
#ifndef RINGMQ_PROTO_MQTT_H
#define RINGMQ_PROTO_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15,
};

/* Protocol level byte of CONNECT. */
enum mqtt_version {
	MQTT_V31 = 3,
	MQTT_V311 = 4,
	MQTT_V5 = 5,
};

/*
 * Results of the decoders and validators here, and of the broker's packet handlers: one vocabulary for
 * everything that can end a connection. 0 is success; MQTT_NEED_MORE only from mqtt_frame(). The comment on
 * each names its MQTT 5 reason code and, where one exists, its 3.1.1 CONNACK return code; mqtt_err.c holds the
 * table and mqtt_err_answer() applies it. The values are stable (they appear in logs and tests) and all lie in
 * -1..-99, so callers may keep private codes at -100 and below.
 */
enum mqtt_err {
	MQTT_OK = 0,
	MQTT_NEED_MORE = 1,
	/* from the decoders */
	MQTT_E_MALFORMED = -1,       /* bad length, truncated field, bad flags, bad VBI, property not allowed in the
	                                packet type: 0x81 */
	MQTT_E_PROTOCOL = -2,        /* well-formed but forbidden by the spec: 0x82 */
	MQTT_E_TOO_LARGE = -3,       /* over the maximum packet size: 0x95 */
	MQTT_E_UTF8 = -4,            /* ill-formed UTF-8 / U+0000 / surrogate (client id included): 0x81 */
	MQTT_E_TOPIC_NAME = -5,      /* invalid topic name (wildcard; empty in 3.1.1): 0x90 */
	MQTT_E_TOPIC_FILTER = -6,    /* syntactically invalid filter in SUBSCRIBE/UNSUBSCRIBE: the packet is
	                                malformed, 0x81 (MQTT 5's 0x8F is for well-formed filters a server refuses) */
	MQTT_E_VERSION = -7,         /* protocol level not supported with that name: 0x84; 3.1.1 CONNACK 1 */
	MQTT_E_CLIENT_ID = -8,       /* client identifier refused: 0x85; 3.1.1 CONNACK 2 */
	MQTT_E_PROPERTY = -9,        /* property duplicated or with a forbidden value: 0x82 */
	MQTT_E_PACKET_ID = -10,      /* packet identifier 0 where one is required: 0x82 */
	MQTT_E_QOS = -11,            /* QoS 3: 0x81 */
	MQTT_E_NOSPACE = -12,        /* encoder: caller buffer too small: 0x83 */
	/* session-level failures, from the broker's handlers */
	MQTT_E_RECEIVE_MAX = -13,    /* more unacknowledged QoS 1/2 PUBLISHes than our Receive Maximum: 0x93 */
	MQTT_E_TOPIC_ALIAS = -14,    /* topic alias 0 or above our Topic Alias Maximum: 0x94 */
	MQTT_E_QUOTA = -15,          /* a per-client bound hit (memory, queue, reply FIFO, connection limit): 0x97;
	                                3.1.1 CONNACK 3 */
	MQTT_E_UNAVAILABLE = -16,    /* cannot serve sessions now: 0x88; 3.1.1 CONNACK 3 */
	MQTT_E_BUSY = -17,           /* server busy: 0x89; 3.1.1 CONNACK 3 */
	MQTT_E_AUTH_METHOD = -18,    /* authentication method not supported: 0x8C */
	MQTT_E_BAD_AUTH = -19,       /* bad user name or password: 0x86; 3.1.1 CONNACK 4 */
	MQTT_E_NOT_AUTHORIZED = -20, /* not authorized: 0x87; 3.1.1 CONNACK 5 */
	MQTT_E_PROTOCOL_NAME = -21,  /* CONNECT with a protocol name other than "MQTT"/"MQIsdp": MQTT 5 CONNACK
	                                0x84 [MQTT-3.1.2-1]; 3.1.1 close without CONNACK */
	MQTT_E_CLOSE = -22,          /* close without sending anything: a 3.1.1 protocol violation, or already
	                                answered */
	MQTT_E_NOMEM = -23,          /* our own allocation failed: 0x89 server busy; 3.1.1 CONNACK 3 */
};

/* MQTT 5 reason codes (also used for the 3.1.1 CONNACK return codes where they map). */
enum mqtt_rc {
	MQTT_RC_SUCCESS = 0x00,
	MQTT_RC_GRANTED_QOS1 = 0x01,
	MQTT_RC_GRANTED_QOS2 = 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	MQTT_RC_CONTINUE_AUTH = 0x18,
	MQTT_RC_REAUTHENTICATE = 0x19,
	MQTT_RC_UNSPECIFIED = 0x80,
	MQTT_RC_MALFORMED = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_IMPL_SPECIFIC = 0x83,
	MQTT_RC_UNSUPPORTED_VERSION = 0x84,
	MQTT_RC_CLIENT_ID_INVALID = 0x85,
	MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
	MQTT_RC_NOT_AUTHORIZED = 0x87,
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,
	MQTT_RC_SERVER_BUSY = 0x89,
	MQTT_RC_BANNED = 0x8A,
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
	MQTT_RC_BAD_AUTH_METHOD = 0x8C,
	MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
	MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_ID_IN_USE = 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
	MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	MQTT_RC_QUOTA_EXCEEDED = 0x97,
	MQTT_RC_ADMIN_ACTION = 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
	MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
	MQTT_RC_SERVER_MOVED = 0x9D,
	MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	MQTT_RC_MAX_CONNECT_TIME = 0xA0,
	MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
	MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1.1 CONNACK return codes. */
enum mqtt_connack_v3 {
	MQTT_V3_ACCEPTED = 0,
	MQTT_V3_BAD_VERSION = 1,
	MQTT_V3_ID_REJECTED = 2,
	MQTT_V3_SERVER_UNAVAILABLE = 3,
	MQTT_V3_BAD_USER_OR_PASSWORD = 4,
	MQTT_V3_NOT_AUTHORIZED = 5,
};

/* MQTT 5 property identifiers. */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1A,
	MQTT_PROP_SERVER_REFERENCE = 0x1C,
	MQTT_PROP_REASON_STRING = 0x1F,
	MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAXIMUM_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER_PROPERTY = 0x26,
	MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* A view into a caller buffer: a UTF-8 string or binary data. */
typedef struct mqtt_str {
	const uint8_t *p;
	uint32_t len;
} mqtt_str_t;

/* Bit in mqtt_props_t.present for property id `id`. */
#define MQTT_PROP_BIT(id) (UINT64_C(1) << (id))
#define MQTT_MAX_SUB_IDS 8

/*
 * Decoded MQTT 5 properties. `present` has MQTT_PROP_BIT(id) set for each property seen (for repeated ones:
 * seen at least once). User properties are kept as the raw encoded run of (0x26, key, value) entries in
 * `user`, so they can be iterated with mqtt_user_prop_next() and re-encoded verbatim.
 */
typedef struct mqtt_props {
	uint64_t present;
	uint8_t payload_format;
	uint8_t request_problem_info;
	uint8_t request_response_info;
	uint8_t maximum_qos;
	uint8_t retain_available;
	uint8_t wildcard_sub_available;
	uint8_t sub_id_available;
	uint8_t shared_sub_available;
	uint16_t server_keep_alive;
	uint16_t receive_maximum;
	uint16_t topic_alias_maximum;
	uint16_t topic_alias;
	uint32_t message_expiry;
	uint32_t session_expiry;
	uint32_t will_delay;
	uint32_t maximum_packet_size;
	uint32_t sub_ids[MQTT_MAX_SUB_IDS];
	uint8_t n_sub_ids;
	mqtt_str_t content_type;
	mqtt_str_t response_topic;
	mqtt_str_t correlation_data;
	mqtt_str_t assigned_client_id;
	mqtt_str_t auth_method;
	mqtt_str_t auth_data;
	mqtt_str_t response_info;
	mqtt_str_t server_reference;
	mqtt_str_t reason_string;
	mqtt_str_t user; /* raw run of encoded user properties (from the first to the last one seen; any other
	                  * property interleaved between them is skipped by the iterator and the encoder) */
} mqtt_props_t;

/* Fixed header of one complete packet, from mqtt_frame(). */
typedef struct mqtt_frame {
	uint8_t type;          /* enum mqtt_type */
	uint8_t flags;         /* low nibble of byte 1 */
	uint8_t header_len;    /* 2..5 */
	uint32_t remaining;    /* remaining length */
	const uint8_t *body;   /* variable header + payload, `remaining` bytes */
} mqtt_frame_t;

typedef struct mqtt_connect {
	uint8_t version;       /* enum mqtt_version */
	bool clean_start;
	bool will;
	uint8_t will_qos;
	bool will_retain;
	bool has_username;
	bool has_password;
	uint16_t keep_alive;
	mqtt_props_t props;
	mqtt_str_t client_id;
	mqtt_props_t will_props;
	mqtt_str_t will_topic;
	mqtt_str_t will_payload;
	mqtt_str_t username;
	mqtt_str_t password;
} mqtt_connect_t;

typedef struct mqtt_connack {
	bool session_present;
	uint8_t reason;        /* MQTT 5 reason code, or 3.1.1 return code */
	mqtt_props_t props;
} mqtt_connack_t;

typedef struct mqtt_publish {
	bool dup;
	uint8_t qos;
	bool retain;
	uint16_t packet_id;    /* 0 for QoS 0 */
	mqtt_str_t topic;      /* may be empty in MQTT 5 when a topic alias is used */
	mqtt_props_t props;
	mqtt_str_t payload;
} mqtt_publish_t;

/* PUBACK, PUBREC, PUBREL, PUBCOMP (and, with packet_id unused, DISCONNECT and AUTH). */
typedef struct mqtt_ack {
	uint16_t packet_id;
	uint8_t reason;
	mqtt_props_t props;
} mqtt_ack_t;

/* Subscription options byte. */
typedef struct mqtt_subopts {
	uint8_t qos;
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling; /* 0, 1 or 2 */
} mqtt_subopts_t;

/*
 * SUBSCRIBE / UNSUBSCRIBE. The topic list is left as a validated view; walk it with mqtt_sub_next() /
 * mqtt_unsub_next(). mqtt_decode_subscribe() has already validated every entry (each filter is a valid topic
 * filter, shared or not: a packet with an invalid one fails with MQTT_E_TOPIC_FILTER), so the walk cannot fail.
 */
typedef struct mqtt_subscribe {
	uint16_t packet_id;
	mqtt_props_t props;
	uint32_t count;
	mqtt_str_t list;       /* raw topic list */
	uint8_t version;
} mqtt_subscribe_t;

/* SUBACK / UNSUBACK: reason codes are a view of `count` bytes. */
typedef struct mqtt_suback {
	uint16_t packet_id;
	mqtt_props_t props;
	const uint8_t *reasons;
	uint32_t count;
} mqtt_suback_t;

/* Iterator state for walking a topic list or user properties. */
typedef struct mqtt_iter {
	const uint8_t *pos;
	const uint8_t *end;
} mqtt_iter_t;

/* --- framing ------------------------------------------------------------------------------------------ */

/*
 * Find one complete packet at the start of buf. Returns the packet's total length (> 0) and fills *out;
 * MQTT_NEED_MORE (as 0 bytes consumed: returns 0) when more bytes are needed; MQTT_E_MALFORMED for a remaining
 * length over 4 bytes or a bad type; MQTT_E_TOO_LARGE when the total length exceeds max_size (0 = no limit)
 * — detectable as soon as the length is readable, before the body arrives.
 */
int64_t mqtt_frame(const uint8_t *buf, size_t len, uint32_t max_size, mqtt_frame_t *out);

/* Variable byte integer: decode returns bytes used (1..4), 0 if more bytes needed, <0 if malformed. */
int mqtt_vbi_decode(const uint8_t *buf, size_t len, uint32_t *value);
/* Encode value (<= 268435455) into buf (>= 4 bytes); returns bytes written, 0 if value is too large. */
int mqtt_vbi_encode(uint8_t *buf, uint32_t value);
/* Bytes mqtt_vbi_encode() would write (1..4), 0 if value is too large. */
int mqtt_vbi_size(uint32_t value);
#define MQTT_VBI_MAX 268435455u

/* --- validation --------------------------------------------------------------------------------------- */

/* MQTT UTF-8 string rules [MQTT-1.5.4-1..3]: well-formed, no surrogates, no U+0000. */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);
/* Topic name: non-empty, valid UTF-8, no '+' or '#'. */
bool mqtt_topic_name_valid(const uint8_t *s, size_t len);
/* Topic filter: non-empty, '#' only last and alone in its level, '+' alone in its level. Does not accept
 * $share/ prefixes: use mqtt_share_parse() first. */
bool mqtt_topic_filter_valid(const uint8_t *s, size_t len);
/* If filter is "$share/<group>/<filter>", sets group and inner filter and returns 1; returns 0 if it is not a
 * shared subscription; MQTT_E_TOPIC_FILTER if it is one but malformed (empty group, wildcard in group, no
 * filter). */
int mqtt_share_parse(mqtt_str_t filter, mqtt_str_t *group, mqtt_str_t *inner);
/* Check one SUBSCRIBE/UNSUBSCRIBE entry's filter: MQTT_OK (and *shared), MQTT_E_UTF8, or MQTT_E_TOPIC_FILTER. */
int mqtt_filter_check(const mqtt_str_t *filter, bool *shared);
/* Does topic name match filter? Implements '+', '#', and [MQTT-4.7.2-1] ($-topics not matched by a leading
 * wildcard). */
bool mqtt_topic_match(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen);

/* --- decoding (server and client side) ---------------------------------------------------------------- */

/* Each takes the frame from mqtt_frame(). `version` is the connection's protocol level. Return MQTT_OK or a
 * negative enum mqtt_err; a property that the packet type does not allow is MQTT_E_MALFORMED (MQTT 5 2.2.2.2),
 * a repeated one or a forbidden value MQTT_E_PROPERTY. */

/*
 * CONNECT. out->version is set from the level byte as soon as it is read, before anything is judged, so that
 * even a refused CONNECT tells mqtt_err_answer() which dialect to answer in. A protocol name other than "MQTT"
 * or "MQIsdp" fails with MQTT_E_PROTOCOL_NAME, and out->version still holds the byte that follows the name:
 * every MQTT version puts its level there, so a 5 means the client expects MQTT 5's CONNACK 0x84, anything
 * else gets the 3.1.1 treatment (close). A known name with a level not its own ("MQTT" 3, "MQIsdp" 4, any
 * level 6+) fails with MQTT_E_VERSION. A client id that is not valid UTF-8 is MQTT_E_UTF8; an empty one where
 * the version forbids it, MQTT_E_CLIENT_ID.
 */
int mqtt_decode_connect(const mqtt_frame_t *f, mqtt_connect_t *out);
/* CONNACK (client side). In 3.1 (level 3) the first byte has no Session Present flag: session_present is
 * always false there. */
int mqtt_decode_connack(const mqtt_frame_t *f, uint8_t version, mqtt_connack_t *out);
/* PUBLISH. An empty topic is MQTT_E_TOPIC_NAME in 3.x; in MQTT 5 it decodes when a Topic Alias is present
 * (the receiver resolves the alias, and answers alias 0 or an unknown alias itself) and is MQTT_E_PROTOCOL
 * without one (3.3.2.3.4). */
int mqtt_decode_publish(const mqtt_frame_t *f, uint8_t version, mqtt_publish_t *out);
/* PUBACK/PUBREC/PUBREL/PUBCOMP. */
int mqtt_decode_ack(const mqtt_frame_t *f, uint8_t version, mqtt_ack_t *out);
/* SUBSCRIBE / UNSUBSCRIBE: a filter that is not valid UTF-8 fails with MQTT_E_UTF8, one that breaks the
 * filter syntax (empty; '#' not last or not alone in its level; '+' not alone in its level; "$share/" with an
 * empty or wildcard group or no filter after it) with MQTT_E_TOPIC_FILTER: the whole packet is refused. */
int mqtt_decode_subscribe(const mqtt_frame_t *f, uint8_t version, mqtt_subscribe_t *out);
int mqtt_decode_unsubscribe(const mqtt_frame_t *f, uint8_t version, mqtt_subscribe_t *out);
/* SUBACK / UNSUBACK (UNSUBACK in 3.1.1 has no reason codes: count = 0). */
int mqtt_decode_suback(const mqtt_frame_t *f, uint8_t version, mqtt_suback_t *out);
/* DISCONNECT and AUTH: reason + properties (packet_id unused). PINGREQ/PINGRESP: check flags/len only. */
int mqtt_decode_disconnect(const mqtt_frame_t *f, uint8_t version, mqtt_ack_t *out);
int mqtt_decode_auth(const mqtt_frame_t *f, mqtt_ack_t *out);
int mqtt_decode_empty(const mqtt_frame_t *f);

/* Walk a validated SUBSCRIBE / UNSUBSCRIBE list. Return true and fill the entry, false at the end. */
bool mqtt_sub_next(mqtt_iter_t *it, mqtt_str_t *filter, mqtt_subopts_t *opts);
bool mqtt_unsub_next(mqtt_iter_t *it, mqtt_str_t *filter);
void mqtt_sub_iter(const mqtt_subscribe_t *s, mqtt_iter_t *it);
/* Walk a user property run (mqtt_props_t.user). */
void mqtt_user_prop_iter(const mqtt_props_t *p, mqtt_iter_t *it);
bool mqtt_user_prop_next(mqtt_iter_t *it, mqtt_str_t *key, mqtt_str_t *value);

/* --- encoding ----------------------------------------------------------------------------------------- */

/* Encoded size of the property block (length VBI included) for a packet of type `type`. Only the properties
 * whose bit is set in props->present are written; user properties come from props->user verbatim. */
uint32_t mqtt_props_size(const mqtt_props_t *props);
/* Write the property block mqtt_props_size() measured (ascending id order, each sub_ids[] entry as its own
 * Subscription Identifier, the user run at id 0x26). Returns bytes written, 0 if cap is too small or the block
 * cannot be encoded (a string over 65535 bytes, a total over 268435455). */
size_t mqtt_props_encode(uint8_t *buf, size_t cap, const mqtt_props_t *props);

/* Pseudo packet type naming the Will Properties of CONNECT, for mqtt_prop_allowed(). */
#define MQTT_WILL_PROPS 0
/* May property `id` appear in a packet of `type` (MQTT 5 table 2-4)? MQTT_WILL_PROPS for the will. */
bool mqtt_prop_allowed(uint8_t type, uint8_t id);

/* Each *_size() returns the full packet size; each encoder writes the full packet and returns its size, or 0
 * if cap is too small. For version < 5, properties and reason codes that 3.1.1 lacks are omitted. */
uint32_t mqtt_connect_size(const mqtt_connect_t *c);
size_t mqtt_encode_connect(uint8_t *buf, size_t cap, const mqtt_connect_t *c);
/* CONNACK: for 3.1 (version 3) the first byte is always 0, whatever c->session_present says (3.1 has no
 * Session Present flag). */
uint32_t mqtt_connack_size(uint8_t version, const mqtt_connack_t *c);
size_t mqtt_encode_connack(uint8_t *buf, size_t cap, uint8_t version, const mqtt_connack_t *c);
uint32_t mqtt_publish_size(uint8_t version, const mqtt_publish_t *p);
size_t mqtt_encode_publish(uint8_t *buf, size_t cap, uint8_t version, const mqtt_publish_t *p);
/* PUBACK/PUBREC/PUBREL/PUBCOMP: `type` selects which. In v5, reason 0 with no properties is encoded in the
 * short 2-byte form. */
uint32_t mqtt_ack_size(uint8_t version, const mqtt_ack_t *a);
size_t mqtt_encode_ack(uint8_t *buf, size_t cap, uint8_t type, uint8_t version, const mqtt_ack_t *a);
/* SUBSCRIBE / UNSUBSCRIBE from arrays (client side). */
uint32_t mqtt_subscribe_size(uint8_t version, const mqtt_props_t *props, const mqtt_str_t *filters,
	uint32_t n);
size_t mqtt_encode_subscribe(uint8_t *buf, size_t cap, uint8_t version, uint16_t packet_id,
	const mqtt_props_t *props, const mqtt_str_t *filters, const mqtt_subopts_t *opts, uint32_t n);
uint32_t mqtt_unsubscribe_size(uint8_t version, const mqtt_props_t *props, const mqtt_str_t *filters,
	uint32_t n);
size_t mqtt_encode_unsubscribe(uint8_t *buf, size_t cap, uint8_t version, uint16_t packet_id,
	const mqtt_props_t *props, const mqtt_str_t *filters, uint32_t n);
/* SUBACK / UNSUBACK (type selects). In 3.1.1 UNSUBACK carries no reason codes: the encoder ignores
 * s->reasons there, and mqtt_suback_size() (which does not know the type) is exact for it only when
 * s->count = 0, an upper bound otherwise. */
uint32_t mqtt_suback_size(uint8_t version, const mqtt_suback_t *s);
size_t mqtt_encode_suback(uint8_t *buf, size_t cap, uint8_t type, uint8_t version, const mqtt_suback_t *s);
/* DISCONNECT (v5: reason + props; v3: 2 bytes) and AUTH. Reason 0 with no properties is sent as the 2-byte
 * form, a reason with no properties omits the property length. mqtt_disconnect_size(MQTT_V5, a) sizes AUTH. */
uint32_t mqtt_disconnect_size(uint8_t version, const mqtt_ack_t *d);
size_t mqtt_encode_disconnect(uint8_t *buf, size_t cap, uint8_t version, const mqtt_ack_t *d);
size_t mqtt_encode_auth(uint8_t *buf, size_t cap, const mqtt_ack_t *a);
/* PINGREQ / PINGRESP: 2 bytes. */
size_t mqtt_encode_empty(uint8_t *buf, size_t cap, uint8_t type);

/* --- errors ------------------------------------------------------------------------------------------- */

/* What to send for an error; every answer ends with closing the connection. */
enum mqtt_action {
	MQTT_ACT_CONNACK = 1,        /* CONNACK with `code` (a refusal), then close */
	MQTT_ACT_DISCONNECT,         /* MQTT 5 DISCONNECT with `code` and `text` as its reason string, then close */
	MQTT_ACT_CLOSE,              /* close without sending anything */
};

typedef struct mqtt_answer {
	uint8_t action;              /* enum mqtt_action */
	uint8_t code;                /* CONNACK: MQTT 5 reason code or 3.x return code (never 0); DISCONNECT: MQTT 5
	                                reason code; CLOSE: the MQTT 5 reason the error stands for, for logs only
	                                (0 for MQTT_E_CLOSE) */
	const char *text;            /* static, never NULL: for the Reason String property and for logs */
} mqtt_answer_t;

/*
 * The one place an error becomes wire behaviour. `version` is the connection's protocol level: the level byte
 * of its CONNECT (mqtt_connect_t.version, which mqtt_decode_connect() fills even when it fails, as soon as the
 * byte is read), 0 when not even that is known. `before_connack` is true until a CONNACK has been sent.
 *
 *   before CONNACK, version 5:   CONNACK with the MQTT 5 reason code (MQTT_E_PROTOCOL_NAME: 0x84)
 *   before CONNACK, other level: CONNACK with the 3.1.1 return code when the error has one (1..5), else close
 *                                (wrong protocol name, bad UTF-8 in the client id, any malformed CONNECT)
 *   after CONNACK, version 5:    DISCONNECT with a reason code valid in DISCONNECT and a reason string
 *   after CONNACK, 3.x:          close
 *   MQTT_E_CLOSE, or version 0:  close
 *
 * A level that is neither 3, 4 nor 5 (refused with MQTT_E_VERSION) gets the 3.1.1 form, which is what
 * [MQTT-3.1.2-2] asks of a server that does not know the client's level. err must be negative; anything not in
 * the table (and MQTT_OK / MQTT_NEED_MORE) is answered as an unspecified error (0x80, or close in 3.x). Pure:
 * any thread.
 */
mqtt_answer_t mqtt_err_answer(int err, uint8_t version, bool before_connack);
/* The MQTT 5 reason code naming err (its CONNACK code for CONNECT errors); 0 for MQTT_OK. Kept for callers that
 * build their own answer: prefer mqtt_err_answer(). */
uint8_t mqtt_err_reason(int err);
/* The MQTT 3.1.1 CONNACK return code for err, or -1 when 3.1.1 says to just close; 0 for MQTT_OK. */
int mqtt_err_connack_v3(int err);
/* Short description of err, for logs and reason strings (the same text mqtt_err_answer() gives). */
const char *mqtt_err_str(int err);
const char *mqtt_type_name(uint8_t type);

#endif

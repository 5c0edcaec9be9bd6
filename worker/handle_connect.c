/* handle_connect.c — CONNECT: validation, client-ID sharding, session takeover/resume, CONNACK. */
#include "handle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "auth.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "owner.h"
#include "sess.h"
#include "sys.h"
#include "slot.h"
#include "route.h"
#include "store.h"
#include "worker.h"

/* A generated ID must land on this worker, so the connection never has to move. */
static size_t generate_id(char *out, size_t cap)
{
	static uint64_t counter;
	size_t n;

	do {
		n = (size_t)snprintf(out, cap, "ringmq-%d-%llx-%llx", W->id, (unsigned long long)loop_now(),
			(unsigned long long)++counter);
	} while (slot_owner(slot_of(out, n), W->n) != W->id);
	return n;
}

static msg_t *will_create(const mqtt_connect_t *cn)
{
	mqtt_publish_t p;

	memset(&p, 0, sizeof(p));
	p.qos = cn->will_qos;
	p.retain = cn->will_retain;
	p.topic = cn->will_topic;
	p.props = cn->will_props;
	p.payload = cn->will_payload;
	return msg_create(&p, cn->will_topic.p, (uint16_t)cn->will_topic.len, 0);
}

static void set_client_limits(conn_t *c, const mqtt_connect_t *cn)
{
	const mqtt_props_t *pr = &cn->props;

	if (pr->present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
		c->recv_max_out = pr->receive_maximum;
	if (pr->present & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
		c->max_packet_out = pr->maximum_packet_size;
	if (pr->present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM)) {
		/* We keep at most 64 outbound aliases: enough for hot topics, bounded memory per connection. */
		c->alias_max_out = pr->topic_alias_maximum > 64 ? 64 : pr->topic_alias_maximum;
	}
	c->problem_info = !(pr->present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO)) ||
		pr->request_problem_info;
}

static int send_connack(conn_t *c, bool present, const mqtt_connect_t *cn, const char *assigned,
	size_t assigned_len, uint32_t expiry, bool expiry_changed)
{
	mqtt_connack_t ack;

	memset(&ack, 0, sizeof(ack));
	/* MQTT 3.1 has no Session Present flag: its CONNACK's first byte is always 0. */
	ack.session_present = present && c->version != MQTT_V31;
	if (c->version == MQTT_V5) {
		mqtt_props_t *pr = &ack.props;

		if (assigned) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
			pr->assigned_client_id.p = (const uint8_t *)assigned;
			pr->assigned_client_id.len = (uint32_t)assigned_len;
		}
		if (c->keepalive != cn->keep_alive) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
			pr->server_keep_alive = c->keepalive;
		}
		if (expiry_changed) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
			pr->session_expiry = expiry;
		}
		if (W->cfg->receive_maximum < 65535) {
			pr->present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
			pr->receive_maximum = W->cfg->receive_maximum;
		}
		pr->present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
		pr->maximum_packet_size = W->cfg->max_packet_size;
		pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
		pr->topic_alias_maximum = W->cfg->topic_alias_maximum;
	}
	return conn_send_connack(c, &ack);
}

static void auth_done(void *ctx, auth_result_t *res)
{
	conn_t *c = ctx;

	c->state = CONN_NEW;
	if (res->err < 0) {
		conn_fail(c, res->err);
		return;
	}
	if (res->username[0] && !(c->username = strdup(res->username))) {
		conn_fail(c, MQTT_E_NOMEM);
		return;
	}
	c->acl = res->acl;
	res->acl = NULL;
	c->cred = res->cred;
	c->authed = true;
	conn_auth_resume(c);
}

/* Hand the CONNECT's identity to the providers (auth.h); the CONNECT is parsed again when they answer. */
static int authenticate(conn_t *c, const mqtt_connect_t *cn, const uint8_t *id, size_t id_len)
{
	auth_identity_t ai = {
		.client_id = id, .client_id_len = id_len,
		.username = cn->has_username ? cn->username.p : NULL, .username_len = cn->username.len,
		.password = cn->has_password ? cn->password.p : NULL, .password_len = cn->password.len,
		.cert_cn = c->cert_cn, .addr = c->addr,
	};
	int err = auth_start(&ai, auth_done, c);

	if (err < 0)
		return err;
	c->state = CONN_AUTH;
	return HANDLE_AUTH;
}

static bool may(conn_t *c, bool publish, const char *id, size_t id_len, const uint8_t *t, size_t len)
{
	const acl_t *defaults = auth_default_acl();
	const char *user = c->username ? c->username : "";

	if (!c->acl && !defaults && publish)
		return len == 0 || t[0] != '$'; /* no rules: the one that always holds */
	if (publish)
		return acl_can_publish(c->acl, defaults, id, id_len, user, strlen(user), (const char *)t, len);
	return acl_can_subscribe(c->acl, defaults, id, id_len, user, strlen(user), (const char *)t, len);
}

bool handle_may_publish(conn_t *c, const uint8_t *topic, size_t len)
{
	if (may(c, true, c->sess->id, c->sess->id_len, topic, len))
		return true;
	W->st.acl_denied_publish++;
	log_conn(LOG_DEBUG, c->id, 0, "%s: not authorized to publish to '%.*s'", c->addr, (int)len, topic);
	return false;
}

bool handle_may_subscribe(conn_t *c, const uint8_t *filter, size_t len)
{
	if (may(c, false, c->sess->id, c->sess->id_len, filter, len))
		return true;
	W->st.acl_denied_subscribe++;
	log_conn(LOG_DEBUG, c->id, 0, "%s: not authorized to subscribe to '%.*s'", c->addr, (int)len, filter);
	return false;
}

void handle_recheck_subscriptions(conn_t *c)
{
	sess_t *s = c->sess;

	if (!c->acl && !auth_default_acl())
		return; /* no rules: every filter is allowed */
	for (sub_t *sub = s->subs, *next; sub; sub = next) {
		next = sub->next;
		if (may(c, false, s->id, s->id_len, (const uint8_t *)sub->filter, sub->filter_len))
			continue;
		W->st.acl_dropped_subscriptions++;
		log_conn(LOG_INFO, c->id, 0, "client '%.*s': subscription '%.*s' no longer authorized: removed",
			(int)s->id_len, s->id, (int)sub->filter_len, sub->filter);
		route_unsubscribe(s, (mqtt_str_t){ .p = (const uint8_t *)sub->filter, .len = sub->filter_len });
	}
}

int handle_connect(conn_t *c, const mqtt_frame_t *f)
{
	mqtt_connect_t cn;
	char gen_id[64];
	const uint8_t *id;
	size_t id_len;
	bool generated = false, present = false, expiry_changed = false;
	uint32_t expiry;
	sess_t *s;
	int err;

	if (c->state != CONN_NEW)
		return MQTT_E_PROTOCOL; /* [MQTT-3.1.0-2]: a second CONNECT */
	err = mqtt_decode_connect(f, &cn);
	c->version = (cn.version == MQTT_V31 || cn.version == MQTT_V311 || cn.version == MQTT_V5) ?
		cn.version : MQTT_V311;
	if (err < 0)
		return err;
	if (cn.props.present & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD))
		return MQTT_E_AUTH_METHOD; /* no enhanced authentication methods are offered */
	if (!handle_user_props_ok(&cn.props) || !handle_user_props_ok(&cn.will_props)) {
		W->st.rejected_user_properties++;
		return MQTT_E_QUOTA;
	}
	if (cn.will && !handle_topic_ok(cn.will_topic.p, cn.will_topic.len)) {
		W->st.rejected_topic++;
		return MQTT_E_TOPIC_NAME;
	}

	id = cn.client_id.p;
	id_len = cn.client_id.len;
	if (id_len == 0) {
		/* [MQTT-3.1.3-8]: 3.1.1 accepts an empty ID only with a clean session; 3.1 never. */
		if (cn.version == MQTT_V31 || (cn.version == MQTT_V311 && !cn.clean_start))
			return MQTT_E_CLIENT_ID;
		id_len = generate_id(gen_id, sizeof(gen_id));
		id = (const uint8_t *)gen_id;
		generated = true;
	}
	if (id_len > 65535)
		return MQTT_E_CLIENT_ID;
	c->handoff_to = (int16_t)slot_owner(slot_of(id, id_len), W->n);
	if (c->handoff_to != W->id)
		return HANDLE_HANDOFF;
	if (W->cfg->max_connections && conn_active_count() >= W->cfg->max_connections) {
		/* The limit counts the sessions this worker serves, wherever their sockets were accepted. */
		W->st.rejected_max_conn++;
		return MQTT_E_QUOTA;
	}
	if (!c->authed && auth_enabled())
		return authenticate(c, &cn, id, id_len);
	if (!c->claimed && !generated && !sess_find(id, id_len) && (owner_needed() ||
	    store_restore_pending((const char *)id, id_len))) {
		/* A cluster: the session may live on another node; it comes here first (owner.h). Or our sessions
		 * are being restored and this one may not be yet: it is read first, on its own. */
		err = owner_claim(c, id, id_len);
		if (err < 0)
			return err;
		c->state = CONN_AUTH;
		return HANDLE_AUTH;
	}
	if (cn.will && (sys_topic(cn.will_topic.p, cn.will_topic.len) ||
	    !may(c, true, (const char *)id, id_len, cn.will_topic.p, cn.will_topic.len))) {
		/* A will is a PUBLISH the client asks for in advance: refused now rather than dropped later. */
		W->st.acl_denied_will++;
		log_conn(LOG_INFO, c->id, 0, "%s: client '%.*s' not authorized to publish its will to '%.*s'",
			c->addr, (int)id_len, id, (int)cn.will_topic.len, cn.will_topic.p);
		return MQTT_E_NOT_AUTHORIZED;
	}

	set_client_limits(c, &cn);
	c->keepalive = cn.keep_alive;
	if (c->keepalive > W->cfg->max_keepalive || (c->keepalive == 0 && W->cfg->max_keepalive < 65535 &&
	    c->version == MQTT_V5))
		c->keepalive = W->cfg->max_keepalive;

	if (c->version == MQTT_V5)
		expiry = (cn.props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) ? cn.props.session_expiry : 0;
	else
		expiry = cn.clean_start ? 0 : UINT32_MAX;
	if (expiry > W->cfg->max_session_expiry) {
		expiry = W->cfg->max_session_expiry;
		expiry_changed = true;
	}

	s = sess_find(id, id_len);
	if (s && s->conn)
		conn_drain(s->conn);
	s = sess_find(id, id_len); /* a drained DISCONNECT may have ended it */
	if (s && s->conn) {
		conn_t *old = s->conn;

		/* [MQTT-3.1.4-3] takeover: the existing connection goes, with 0x8E for MQTT 5. An MQTT 5 will is
		 * cancelled when the session continues, as a reconnect within the Will Delay cancels it; 3.1.1 has
		 * no such rule and publishes it whenever the connection ends without DISCONNECT [MQTT-3.1.2-8]. */
		log_conn(LOG_INFO, old->id, 0, "session '%.*s' taken over by %s", (int)id_len, id, c->addr);
		if (old->version == MQTT_V5 && !cn.clean_start)
			old->graceful = true;
		conn_send_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
		conn_close(old, MQTT_RC_SESSION_TAKEN_OVER);
		s = sess_find(id, id_len); /* a non-persistent session ended with the old connection */
	}
	if (s && cn.clean_start) {
		sess_destroy(s);
		s = NULL;
	}
	if (s) {
		present = true;
	} else {
		s = sess_create(id, id_len);
		if (!s)
			return MQTT_E_NOMEM;
	}
	s->version = c->version;
	sess_set_expiry(s, expiry);
	sess_set_will(s, cn.will ? will_create(&cn) : NULL, (cn.will_props.present &
		MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)) ? cn.will_props.will_delay : 0);
	if (cn.will && !s->will)
		return MQTT_E_NOMEM;

	err = send_connack(c, present, &cn, generated ? gen_id : NULL, id_len, expiry, expiry_changed);
	if (err < 0)
		return err;
	conn_activated(c);
	log_conn(LOG_DEBUG, c->id, 0, "client '%.*s' connected from %s (v%u, clean %d, expiry %u, present %d)",
		(int)id_len, id, c->addr, c->version, cn.clean_start, expiry, present);
	sess_attach(c, s, present);
	if (present)
		handle_recheck_subscriptions(c); /* the rules may have changed while the session was away */
	return 0;
}

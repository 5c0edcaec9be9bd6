/*
 * acl.h — what a client may publish and subscribe to: rules of topic filters with %c (client ID) and %u (user
 * name) substitution. Pure (no I/O); rules are built once and shared by reference.
 *
 * A client's access is its own rules (from its credential) plus the defaults (from the configuration). A PUBLISH
 * is allowed when its topic matches a publish rule; a SUBSCRIBE filter when every topic it can match is allowed
 * by one subscribe rule (the filter lies within the rule's filter: "a/+/c" is within "a/#", "a/#" is not
 * within "a/+"); "$share/<group>/<f>" is checked as <f>. A deny rule (ACL_DENY, mosquitto's "topic deny")
 * wins over every allowing rule: a PUBLISH whose topic it matches, or a SUBSCRIBE filter that can match any
 * topic it matches, is refused. Wildcards at the first level never reach '$'-topics, as in matching
 * [MQTT-4.7.2-1]: "#" does not allow "$SYS/#".
 *
 * An identity that is empty, contains '+', '#' or '/', or would start a rule with '$' is never substituted:
 * an allowing rule then matches nothing, and in a deny rule each level holding it becomes '+' (the deny covers
 * every identity): a client cannot widen its rules, or slip past a deny, by choosing its ID or user name.
 * No client may publish to a topic starting with '$'.
 *
 * A NULL rule set means "not configured"; a rule set, even an empty one, allows only what its rules allow.
 * Worker thread only (reference counts are not atomic).
 */
#ifndef RINGMQ_WORKER_ACL_H
#define RINGMQ_WORKER_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum acl_access {
	ACL_PUB = 1 << 0,
	ACL_SUB = 1 << 1,
	ACL_DENY = 1 << 2,     /* with ACL_PUB and/or ACL_SUB: refuse those, over any allowing rule */
};

typedef struct acl acl_t;

/* A new empty rule set (one reference). NULL on allocation failure. */
acl_t *acl_create(void);
acl_t *acl_ref(acl_t *a);
/* NULL-safe. */
void acl_unref(acl_t *a);
/* Add a rule: access is a mask of enum acl_access; pattern a topic filter, possibly with %c / %u (anywhere in a
 * level; any other '%' is itself). 0, -EINVAL (not a valid filter once substituted with a harmless identity,
 * or access names neither ACL_PUB nor ACL_SUB), -ENOMEM. */
int acl_add(acl_t *a, unsigned access, const char *pattern, size_t len);
size_t acl_count(const acl_t *a);

/* May the client (id, user) publish to topic / subscribe to filter under own (NULL: none) and defaults (NULL:
 * none)? With neither, everything is allowed except publishing to $-topics. A filter that is not a valid
 * (shared) topic filter, and any allocation failure, is refused. */
bool acl_can_publish(const acl_t *own, const acl_t *defaults, const char *client_id, size_t id_len,
	const char *user, size_t user_len, const char *topic, size_t len);
bool acl_can_subscribe(const acl_t *own, const acl_t *defaults, const char *client_id, size_t id_len,
	const char *user, size_t user_len, const char *filter, size_t len);

#endif

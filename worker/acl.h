/*
 * acl.h — what a client may publish and subscribe to: rules of topic filters with %c (client ID) and %u (user
 * name) substitution. Pure (no I/O); rules are built once and shared by reference.
 *
 * A client's access is its own rules (from its credential) plus the defaults (from the configuration). A PUBLISH
 * is allowed when its topic matches a publish rule; a SUBSCRIBE filter when every topic it can match is allowed
 * by one subscribe rule (the filter lies within the rule's filter: "a/+/c" is within "a/#", "a/#" is not
 * within "a/+"). An identity containing '+', '#' or '/' is never substituted (the rule then matches nothing),
 * so a client cannot widen its rules by choosing its ID. No client may publish to a topic starting with '$'.
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
};

typedef struct acl acl_t;

/* A new empty rule set (one reference). NULL on allocation failure. */
acl_t *acl_create(void);
acl_t *acl_ref(acl_t *a);
/* NULL-safe. */
void acl_unref(acl_t *a);
/* Add a rule: access is a mask of enum acl_access; pattern a topic filter, possibly with %c / %u. 0, -EINVAL
 * (not a valid filter once substituted with a harmless identity), -ENOMEM. */
int acl_add(acl_t *a, unsigned access, const char *pattern, size_t len);
size_t acl_count(const acl_t *a);

/* May the client (id, user) publish to topic / subscribe to filter under own (NULL: none) and defaults (NULL:
 * none)? With neither, everything is allowed except publishing to $-topics. */
bool acl_can_publish(const acl_t *own, const acl_t *defaults, const char *client_id, size_t id_len,
	const char *user, size_t user_len, const char *topic, size_t len);
bool acl_can_subscribe(const acl_t *own, const acl_t *defaults, const char *client_id, size_t id_len,
	const char *user, size_t user_len, const char *filter, size_t len);

#endif

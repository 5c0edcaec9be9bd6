/*
 * aclfile.h — mosquitto's acl_file: rules for anonymous clients, for named users, and patterns for everyone.
 *
 *   # comment (the first non-blank character of the line)
 *   topic [read|write|readwrite|deny] <filter>     before any "user" line: anonymous clients only
 *   user <name>                                    the topic lines after it are that user's
 *   pattern [read|write|readwrite|deny] <filter>   every client, wherever the line stands; %c and %u
 *
 * read = subscribe, write = publish, no access word = readwrite, deny = neither (over any allowing rule). The
 * filter is the rest of the line (it may hold spaces). As in mosquitto, the anonymous rules do not apply to
 * clients with a user name (a user without a section has the patterns only). Unlike mosquitto, %c and %u in a
 * "topic" line are an error rather than literal text (write "pattern"), and "topic read" with no filter after
 * the access word is an error rather than a topic named "read".
 *
 * Pure (no I/O but the load); the rule sets are shared by reference (acl.h). Worker thread only.
 */
#ifndef RINGMQ_WORKER_ACLFILE_H
#define RINGMQ_WORKER_ACLFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"

typedef struct aclfile aclfile_t;

/*
 * Parse the text of an ACL file (len bytes). `name` prefixes error lines ("NAME:LINE: ..."). 0 and a new
 * aclfile_t in *out; -EINVAL (unknown keyword, bad access word, missing or invalid filter, %c/%u in a topic
 * line, user without a name) or -ENOMEM after writing one line to err.
 */
int aclfile_parse(const char *text, size_t len, const char *name, aclfile_t **out, char *err, size_t errlen);
/* Read and parse path: as aclfile_parse, plus -errno when it cannot be read. */
int aclfile_load(const char *path, aclfile_t **out, char *err, size_t errlen);
/* Drops the file's references; rule sets handed out with acl_ref live on. NULL-safe. */
void aclfile_free(aclfile_t *af);

/* The rules of clients without a user name (never NULL, possibly empty). */
acl_t *aclfile_anonymous(const aclfile_t *af);
/* The pattern rules, for every client (never NULL, possibly empty): the defaults of acl.h. */
acl_t *aclfile_patterns(const aclfile_t *af);
/* The section of user (len bytes), or NULL when the file has none. */
acl_t *aclfile_user(const aclfile_t *af, const void *user, size_t len);
/* Users with a section, in byte order of their names: name i (not NUL-terminated, *len bytes), or NULL. */
const char *aclfile_user_at(const aclfile_t *af, size_t i, size_t *len);
/*
 * A digest of the rules of user's section (user NULL: the anonymous rules), equal across two loads when the
 * rules are the same in the same order; 0 when there is no section. For telling whose rules a reload changed.
 */
uint64_t aclfile_digest(const aclfile_t *af, const void *user, size_t len);

#endif

/*
 * acl_stub.c — a stand-in for worker/acl.c (acl.h), linked into the PostgreSQL tests only while acl.c is not in
 * the tree (meson.build checks). It keeps what the credential store needs: reference counts, a rule count,
 * and acl_add refusing what is not a topic filter. Matching is not modelled.
 */
#include <errno.h>
#include <stdlib.h>

#include "acl.h"
#include "mqtt.h"

struct acl {
	unsigned refs;
	size_t n;
};

acl_t *acl_create(void)
{
	acl_t *a = calloc(1, sizeof(*a));

	if (a)
		a->refs = 1;
	return a;
}

acl_t *acl_ref(acl_t *a)
{
	a->refs++;
	return a;
}

void acl_unref(acl_t *a)
{
	if (a && !--a->refs)
		free(a);
}

int acl_add(acl_t *a, unsigned access, const char *pattern, size_t len)
{
	if (!access || !mqtt_topic_filter_valid((const uint8_t *)pattern, len))
		return -EINVAL;
	a->n++;
	return 0;
}

size_t acl_count(const acl_t *a)
{
	return a ? a->n : 0;
}

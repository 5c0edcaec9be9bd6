/* pg_conninfo.c — pg_conninfo made ready for PQconnectStartParams (see pg_conninfo.h). */
#include "pg_conninfo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Addresses kept per host name. */
#define MAX_ADDRS 8

void pg_conninfo_redact(const char *msg, char *out, size_t size)
{
	PQconninfoOption *defs = PQconndefaults();
	size_t o = 0;

	for (const char *p = msg; *p && o + 16 < size;) {
		const char *q = *p == '"' ? strchr(p + 1, '"') : NULL;
		size_t n;
		bool keep;

		if (!q) {
			out[o++] = *p == '\n' || *p == '\t' ? ' ' : *p;
			p++;
			continue;
		}
		n = (size_t)(q - p - 1);
		keep = n == 1 && p[1] == '=';
		for (PQconninfoOption *d = defs; d && d->keyword && !keep; d++)
			keep = strlen(d->keyword) == n && !strncmp(d->keyword, p + 1, n);
		o += (size_t)snprintf(out + o, size - o, "%.*s", keep ? (int)n + 2 : 5, keep ? p : "\"...\"");
		if (o >= size)
			o = size - 1;
		p = q + 1;
	}
	while (o && out[o - 1] == ' ')
		o--;
	out[o] = 0;
	PQconninfoFree(defs);
}

static int add(pg_params_t *p, uint32_t *n, const char *key, const char *val)
{
	char *k = strdup(key), *v = strdup(val);

	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	p->keys[*n] = k;
	p->vals[*n] = v;
	(*n)++;
	return 0;
}

static const char *opt(const PQconninfoOption *opts, const char *key)
{
	for (const PQconninfoOption *o = opts; o->keyword; o++)
		if (!strcmp(o->keyword, key))
			return o->val && *o->val ? o->val : NULL;
	return NULL;
}

/* The i-th item of a comma-separated list into buf ("" past the end). */
static const char *list_item(const char *list, int i, char *buf, size_t size)
{
	const char *p = list;

	for (; i > 0 && p; i--) {
		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
	}
	snprintf(buf, size, "%.*s", p ? (int)strcspn(p, ",") : 0, p ? p : "");
	return buf;
}

static int list_len(const char *list)
{
	int n = 1;

	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

static int append(char **list, const char *item)
{
	size_t have = *list ? strlen(*list) : 0, n = strlen(item);
	char *l = realloc(*list, have + n + 2);

	if (!l)
		return -ENOMEM;
	if (*list)
		l[have++] = ',';
	memcpy(l + have, item, n + 1);
	*list = l;
	return 0;
}

static int append3(char **host, const char *h, char **hostaddr, const char *a, char **port, const char *p)
{
	return append(host, h) < 0 || append(hostaddr, a) < 0 || append(port, p) < 0 ? -ENOMEM : 0;
}

/* One host/hostaddr/port entry per address of each name (see the header). 0 with the three lists set, or all
 * NULL when nothing needed resolving; -EINVAL (logged); -ENOMEM. */
static int resolve_hosts(const char *hosts, const char *ports, char **host, char **hostaddr, char **port)
{
	int n = list_len(hosts), n_ports = ports ? list_len(ports) : 0, err = 0;
	bool any = false;
	char h[256], p[32];

	*host = *hostaddr = *port = NULL;
	for (int i = 0; i < n && !err; i++) {
		struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
		char ips[MAX_ADDRS][INET6_ADDRSTRLEN];
		struct in6_addr a;
		int r, n_ips = 0;

		list_item(hosts, i, h, sizeof(h));
		list_item(ports ? ports : "", n_ports > 1 ? i : 0, p, sizeof(p));
		if (!*h || *h == '/' || *h == '@' || inet_pton(AF_INET, h, &a) == 1 || inet_pton(AF_INET6, h, &a) == 1) {
			err = append3(host, h, hostaddr, "", port, p);
			continue;
		}
		r = getaddrinfo(h, NULL, &hints, &res);
		if (r) {
			log_error(0, "pg_conninfo: host '%s' cannot be resolved: %s; set pg_conninfo (host names are "
				"resolved once, when the worker starts)", h, gai_strerror(r));
			err = -EHOSTUNREACH; /* may be DNS not ready yet: the worker is restarted to try again */
			break;
		}
		for (struct addrinfo *ai = res; ai && !err && n_ips < MAX_ADDRS; ai = ai->ai_next) {
			const void *sa = ai->ai_family == AF_INET ?
				(const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr :
				(const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
			bool dup = false;

			if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
				!inet_ntop(ai->ai_family, sa, ips[n_ips], sizeof(ips[n_ips])))
				continue;
			for (int j = 0; j < n_ips && !dup; j++)
				dup = !strcmp(ips[j], ips[n_ips]);
			if (dup)
				continue;
			err = append3(host, h, hostaddr, ips[n_ips], port, p);
			n_ips++;
		}
		freeaddrinfo(res);
		any |= n_ips > 0;
	}
	if (err || !any) {
		free(*host);
		free(*hostaddr);
		free(*port);
		*host = *hostaddr = *port = NULL;
	}
	return err;
}

/* Defaults the conninfo may override (NULL value: the application name given). */
static const char *const DEFAULTS[][2] = {
	{ "application_name", NULL },
	{ "keepalives_idle", "30" },
	{ "keepalives_interval", "10" },
	{ "keepalives_count", "3" },
	/* With a Kerberos credential cache around, "prefer" would have libpq ask the KDC for a ticket, blocking. */
	{ "gssencmode", "disable" },
};

int pg_params_build(pg_params_t *p, const char *conninfo, const char *application_name)
{
	char *errmsg = NULL, *host = NULL, *hostaddr = NULL, *port = NULL, m[512];
	PQconninfoOption *opts;
	const char *h, *to;
	uint32_t n = 0, cap = 16;
	int err = 0;

	memset(p, 0, sizeof(*p));
	opts = PQconninfoParse(conninfo, &errmsg);
	if (!opts) {
		if (!errmsg)
			return -ENOMEM;
		pg_conninfo_redact(errmsg, m, sizeof(m));
		log_error(0, "pg_conninfo does not parse: %s; set pg_conninfo to a libpq connection string such as "
			"'host=db.example dbname=ringmq user=ringmq'", m);
		PQfreemem(errmsg);
		return -EINVAL;
	}
	/* Room for every option, ours, and the NULL that ends the lists. */
	for (PQconninfoOption *o = opts; o->keyword; o++)
		cap++;
	p->keys = calloc(cap, sizeof(*p->keys));
	p->vals = calloc(cap, sizeof(*p->vals));
	if (!p->keys || !p->vals) {
		err = -ENOMEM;
		goto out;
	}
	h = opt(opts, "host") ? opt(opts, "host") : getenv("PGHOST");
	if (h && !opt(opts, "hostaddr") && !getenv("PGHOSTADDR")) {
		const char *ports = opt(opts, "port") ? opt(opts, "port") : getenv("PGPORT");

		if ((err = resolve_hosts(h, ports, &host, &hostaddr, &port)) < 0)
			goto out;
	}
	to = opt(opts, "connect_timeout");
	p->connect_timeout_ms = to && atoi(to) > 0 ? (uint32_t)atoi(to) * 1000 : 0;
	for (size_t i = 0; i < sizeof(DEFAULTS) / sizeof(DEFAULTS[0]) && !err; i++)
		if (!opt(opts, DEFAULTS[i][0]))
			err = add(p, &n, DEFAULTS[i][0], DEFAULTS[i][1] ? DEFAULTS[i][1] : application_name);
	for (PQconninfoOption *o = opts; o->keyword && !err; o++) {
		if (!o->val || (host && (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "port"))) ||
			!strcmp(o->keyword, "client_encoding"))
			continue;
		err = add(p, &n, o->keyword, o->val);
	}
	if (!err)
		err = add(p, &n, "client_encoding", "UTF8");
	if (host && !err && (add(p, &n, "host", host) < 0 || add(p, &n, "hostaddr", hostaddr) < 0 ||
		(*port && add(p, &n, "port", port) < 0)))
		err = -ENOMEM;
out:
	free(host);
	free(hostaddr);
	free(port);
	PQconninfoFree(opts);
	if (err)
		pg_params_free(p);
	return err;
}

void pg_params_free(pg_params_t *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; p->keys && p->keys[i]; i++) {
		free(p->keys[i]);
		free(p->vals[i]);
	}
	free(p->keys);
	free(p->vals);
	memset(p, 0, sizeof(*p));
}

const char *pg_params_get(const pg_params_t *p, const char *key)
{
	for (uint32_t i = 0; p->keys && p->keys[i]; i++)
		if (!strcmp(p->keys[i], key))
			return p->vals[i];
	return NULL;
}

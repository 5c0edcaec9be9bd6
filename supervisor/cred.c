/*
 * cred.c — `ringmqctl cred add|set|list|del` (see cred.h).
 *
 * Rules travel to PostgreSQL as one JSON array parameter per list (ARRAY(SELECT json_array_elements_text(...)))
 * rather than as an array literal we would have to quote; every value is a query parameter, never SQL text.
 * Each topic filter is checked here first (mqtt_topic_filter_valid): the broker would skip an invalid rule
 * with a log line, which is worse than refusing it now.
 */
#include "cred.h"

#include <crypt.h>
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "mqtt.h"

/* 2^10 rounds: tens of milliseconds per check on the broker's hashing threads. */
#define BCRYPT_COST_DEFAULT 10
/* bcrypt reads no further: a longer password would be silently cut. */
#define BCRYPT_MAX_PASSWORD 72

static const char usage_text[] =
	"Usage: ringmqctl cred COMMAND [OPTIONS]\n"
	"\n"
	"Edit the PostgreSQL credential store (docs/postgresql.md) directly; brokers hear of each change.\n"
	"\n"
	"Commands:\n"
	"  add  --username U [--client-id C] [--cert-cn CN] [--password-stdin | --password P]\n"
	"       [--pub FILTER]... [--sub FILTER]...      a new credential (--username may be left out when\n"
	"                                               --client-id or --cert-cn names it)\n"
	"  set  (--id N | --username U) [changes]       change one credential; with --id, --username sets it.\n"
	"       changes: --username U, --no-username, --client-id C, --cert-cn CN ('' removes either),\n"
	"       --password-stdin | --password P | --no-password, --pub F... | --no-pub, --sub F... | --no-sub\n"
	"       (rules given replace the credential's list)\n"
	"  list [--id N | --username U] [--json]        credentials, without their hashes\n"
	"  del  (--id N | --username U)                 delete one credential\n"
	"\n"
	"Options:\n"
	"  --pg-conninfo STR      libpq connection string (default: $RINGMQ_PG_CONNINFO, else pg_conninfo\n"
	"                         from --config FILE)\n"
	"  --config FILE          ringmqd's configuration file\n"
	"  --password-stdin       read the password from the first line of standard input (from a terminal:\n"
	"                         prompted, not echoed); --password P shows it to every process on the host\n"
	"  --bcrypt-cost N        bcrypt cost, 4..31 (default %d)\n"
	"  -j, --json             machine-readable output\n"
	"\n"
	"Exit status: 0 success, 1 failure (PostgreSQL unreachable or refusing, no such credential), 2 usage.\n";

typedef struct copts {
	const char *cmd;
	bool json;
	bool has_id;
	char id[24];
	const char *username, *client_id, *cert_cn, *password;
	bool no_username, password_stdin, no_password, no_pub, no_sub;
	int cost;
	const char **pub, **sub;
	int n_pub, n_sub;
} copts_t;

static int __attribute__((format(printf, 1, 2)))
usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ringmqctl: cred: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see ringmqctl cred --help)\n");
	return 2;
}

bool
cred_is_command(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-s") || !strcmp(a, "--socket") || !strcmp(a, "-w") || !strcmp(a, "--worker")) {
			i++;
			continue;
		}
		if (a[0] == '-' && a[1])
			continue;
		return !strcmp(a, "cred");
	}
	return false;
}

/* "--opt=VALUE" or "--opt VALUE"; NULL if a is not --opt. *bad when it is but has no value. */
static const char *
value(int argc, char **argv, int *i, const char *opt, bool *bad)
{
	size_t n = strlen(opt);

	if (strncmp(argv[*i], opt, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*bad = true;
		return NULL;
	}
	return argv[++*i];
}

static bool
rule_ok(const char *f)
{
	return mqtt_topic_filter_valid((const uint8_t *)f, strlen(f));
}

static int
parse(int argc, char **argv, copts_t *o)
{
	int npos = 0;

	o->cost = BCRYPT_COST_DEFAULT;
	o->pub = calloc((size_t)argc, sizeof(*o->pub));
	o->sub = calloc((size_t)argc, sizeof(*o->sub));
	if (!o->pub || !o->sub)
		return usage("out of memory");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		bool bad = false;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf(usage_text, BCRYPT_COST_DEFAULT);
			exit(0);
		} else if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
			o->json = true;
		} else if ((v = value(argc, argv, &i, "--socket", &bad)) || (v = value(argc, argv, &i, "-s", &bad))) {
			/* The broker's control socket: not used by cred. */
		} else if ((v = value(argc, argv, &i, "--id", &bad))) {
			char *end;
			unsigned long long id;

			errno = 0;
			id = strtoull(v, &end, 10);
			if (!*v || *end || errno || !id || id > INT64_MAX || *v == '-' || *v == '+')
				return usage("--id: '%s' is not a credential id", v);
			snprintf(o->id, sizeof(o->id), "%llu", id);
			o->has_id = true;
		} else if ((v = value(argc, argv, &i, "--username", &bad))) {
			o->username = v;
		} else if ((v = value(argc, argv, &i, "--client-id", &bad))) {
			o->client_id = v;
		} else if ((v = value(argc, argv, &i, "--cert-cn", &bad))) {
			o->cert_cn = v;
		} else if ((v = value(argc, argv, &i, "--password", &bad))) {
			o->password = v;
		} else if ((v = value(argc, argv, &i, "--pub", &bad))) {
			if (!rule_ok(v))
				return usage("--pub: '%s' is not a valid topic filter", v);
			o->pub[o->n_pub++] = v;
		} else if ((v = value(argc, argv, &i, "--sub", &bad))) {
			if (!rule_ok(v))
				return usage("--sub: '%s' is not a valid topic filter", v);
			o->sub[o->n_sub++] = v;
		} else if ((v = value(argc, argv, &i, "--bcrypt-cost", &bad))) {
			char *end;
			long c = strtol(v, &end, 10);

			if (!*v || *end || c < 4 || c > 31)
				return usage("--bcrypt-cost: '%s' is not 4..31", v);
			o->cost = (int)c;
		} else if (!strcmp(a, "--password-stdin")) {
			o->password_stdin = true;
		} else if (!strcmp(a, "--no-password")) {
			o->no_password = true;
		} else if (!strcmp(a, "--no-username")) {
			o->no_username = true;
		} else if (!strcmp(a, "--no-pub")) {
			o->no_pub = true;
		} else if (!strcmp(a, "--no-sub")) {
			o->no_sub = true;
		} else if (bad) {
			return usage("%s needs a value", a);
		} else if (a[0] == '-' && a[1]) {
			return usage("unknown option '%s'", a);
		} else if (npos == 0 && !strcmp(a, "cred")) {
			npos++;
		} else if (npos == 1) {
			o->cmd = a;
			npos++;
		} else {
			return usage("unexpected argument '%s'", a);
		}
	}
	if (!o->cmd)
		return usage("missing command: add, set, list or del");
	if (strcmp(o->cmd, "add") && strcmp(o->cmd, "set") && strcmp(o->cmd, "list") && strcmp(o->cmd, "del"))
		return usage("unknown command '%s'", o->cmd);
	if (!!o->password + o->password_stdin + o->no_password > 1)
		return usage("give one of --password, --password-stdin, --no-password");
	if ((o->n_pub && o->no_pub) || (o->n_sub && o->no_sub))
		return usage("--pub/--sub and --no-pub/--no-sub together");
	if (!strcmp(o->cmd, "add") && (o->has_id || o->no_username || o->no_password || o->no_pub || o->no_sub))
		return usage("add takes no --id and no --no-* option");
	if (!strcmp(o->cmd, "add") && !o->username && !(o->client_id && *o->client_id) &&
		!(o->cert_cn && *o->cert_cn))
		return usage("add needs --username (or --client-id / --cert-cn)");
	if ((!strcmp(o->cmd, "set") || !strcmp(o->cmd, "del")) && !o->has_id && !o->username)
		return usage("%s needs --id or --username", o->cmd);
	if (!strcmp(o->cmd, "list") || !strcmp(o->cmd, "del")) {
		if (o->client_id || o->cert_cn || o->password || o->password_stdin || o->no_password || o->n_pub ||
			o->n_sub || o->no_pub || o->no_sub || o->no_username)
			return usage("%s takes only --id or --username", o->cmd);
		if (o->has_id && o->username)
			return usage("give --id or --username, not both");
	}
	return 0;
}

/* ---- passwords ---- */

/* One line from standard input (not echoed when it is a terminal), without its line end. NULL: none. */
static char *
read_password(void)
{
	bool tty = isatty(0);
	struct termios old, quiet;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (tty) {
		fprintf(stderr, "Password: ");
		if (tcgetattr(0, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(0, TCSAFLUSH, &quiet);
		}
	}
	n = getline(&line, &cap, stdin);
	if (tty) {
		tcsetattr(0, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

/* A bcrypt hash of pw ($2b$, cost), malloc'ed; NULL after a message. */
static char *
hash_password(const char *pw, int cost)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	char *h, *out = NULL;

	if (!*pw) {
		fprintf(stderr, "ringmqctl: cred: empty password (use --no-password for a credential without one)\n");
		return NULL;
	}
	if (strlen(pw) > BCRYPT_MAX_PASSWORD) {
		fprintf(stderr, "ringmqctl: cred: bcrypt uses only the first %d bytes of a password: choose a shorter "
			"one\n", BCRYPT_MAX_PASSWORD);
		return NULL;
	}
	/* No random bytes given: libcrypt takes them from the system (getrandom). */
	if (!crypt_gensalt_rn("$2b$", (unsigned long)cost, NULL, 0, setting, sizeof(setting))) {
		fprintf(stderr, "ringmqctl: cred: cannot make a bcrypt salt: %s\n", strerror(errno));
		return NULL;
	}
	cd = calloc(1, sizeof(*cd));
	if (!cd)
		return NULL;
	h = crypt_r(pw, setting, cd);
	if (h && !strncmp(h, "$2b$", 4))
		out = strdup(h);
	else
		fprintf(stderr, "ringmqctl: cred: bcrypt hashing failed: %s\n", strerror(errno));
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return out;
}

/* ---- PostgreSQL ---- */

static void
report(const PGresult *r, PGconn *c)
{
	const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (!primary) {
		fprintf(stderr, "ringmqctl: cred: %s", PQerrorMessage(c));
		return;
	}
	fprintf(stderr, "ringmqctl: cred: %s%s%s\n", primary, detail ? ": " : "", detail ? detail : "");
	if (state && !strcmp(state, "42P01"))
		fprintf(stderr, "ringmqctl: cred: apply the schema first: scripts/pg/apply (docs/postgresql.md)\n");
}

/* Run sql with n text parameters (NULL ones are SQL NULL); the result, or NULL after a message. */
static PGresult *
exec(PGconn *c, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	report(r, c);
	PQclear(r);
	return NULL;
}

/* A JSON array of the rules (malloc'ed). */
static char *
rules_json(const char *const *rules, int n)
{
	json_t *a = json_array();
	char *s;

	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_string(rules[i]));
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

#define RULES_FROM(n) "ARRAY(SELECT e FROM json_array_elements_text($" #n "::json) WITH ORDINALITY AS t(e, i) " \
	"ORDER BY i)"

/* The id of the credential --id or --username names (into o->id). 0, or 1 after a message. */
static int
target(PGconn *c, copts_t *o)
{
	const char *p[1] = { o->username };
	PGresult *r;
	int rows;

	if (o->has_id)
		return 0;
	r = exec(c, "SELECT id FROM ringmq_credentials WHERE username = $1 ORDER BY id", 1, p);
	if (!r)
		return 1;
	rows = PQntuples(r);
	if (rows == 1)
		snprintf(o->id, sizeof(o->id), "%s", PQgetvalue(r, 0, 0));
	else if (rows == 0)
		fprintf(stderr, "ringmqctl: cred: no credential has username '%s'\n", o->username);
	else
		fprintf(stderr, "ringmqctl: cred: %d credentials have username '%s' (one per client ID): choose one "
			"with --id (ringmqctl cred list --username '%s')\n", rows, o->username, o->username);
	PQclear(r);
	if (rows != 1)
		return 1;
	o->has_id = true;
	return 0;
}

static void
done(const copts_t *o, const char *what, const char *id)
{
	if (o->json)
		printf("{\"%s\": %s}\n", what, id);
	else
		printf("%s credential %s\n", what, id);
}

/* The password the options ask for: *hash NULL for none. 0, or 1 after a message. */
static int
password_of(const copts_t *o, char **hash)
{
	char *pw = NULL;

	*hash = NULL;
	if (o->password_stdin) {
		pw = read_password();
		if (!pw) {
			fprintf(stderr, "ringmqctl: cred: --password-stdin: nothing on standard input\n");
			return 1;
		}
	}
	if (pw || o->password) {
		*hash = hash_password(pw ? pw : o->password, o->cost);
		if (pw) {
			explicit_bzero(pw, strlen(pw));
			free(pw);
		}
		return *hash ? 0 : 1;
	}
	return 0;
}

static const char *
or_null(const char *s)
{
	return s && *s ? s : NULL;
}

static int
cmd_add(PGconn *c, const copts_t *o)
{
	char *hash, *pub = NULL, *sub = NULL;
	const char *p[6];
	PGresult *r;
	int rc = 1;

	if (password_of(o, &hash))
		return 1;
	pub = rules_json(o->pub, o->n_pub);
	sub = rules_json(o->sub, o->n_sub);
	p[0] = o->username;
	p[1] = or_null(o->client_id);
	p[2] = or_null(o->cert_cn);
	p[3] = hash;
	p[4] = pub;
	p[5] = sub;
	r = exec(c, "INSERT INTO ringmq_credentials (username, client_id, cert_cn, password_hash, pub_rules, sub_rules) "
		"VALUES ($1, $2, $3, $4, " RULES_FROM(5) ", " RULES_FROM(6) ") RETURNING id", 6, p);
	if (r && PQntuples(r) == 1) {
		done(o, "added", PQgetvalue(r, 0, 0));
		rc = 0;
	}
	PQclear(r);
	free(hash);
	free(pub);
	free(sub);
	return rc;
}

static int
cmd_set(PGconn *c, copts_t *o)
{
	bool by_id = o->has_id;
	char sql[1024], *hash = NULL, *pub = NULL, *sub = NULL;
	const char *p[8];
	size_t len;
	PGresult *r;
	int n = 0, rc = 1;

	if (target(c, o) || password_of(o, &hash))
		return 1;
	len = (size_t)snprintf(sql, sizeof(sql), "UPDATE ringmq_credentials SET ");
#define SET(col, val) do { p[n++] = (val); len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s%s = $%d", \
	n > 1 ? ", " : "", col, n); } while (0)
#define SET_RULES(col, val) do { p[n++] = (val); len += (size_t)snprintf(sql + len, sizeof(sql) - len, \
	"%s%s = ARRAY(SELECT e FROM json_array_elements_text($%d::json) WITH ORDINALITY AS t(e, i) ORDER BY i)", \
	n > 1 ? ", " : "", col, n); } while (0)
	if (o->no_username)
		SET("username", NULL);
	else if (by_id && o->username)
		SET("username", o->username);
	if (o->client_id)
		SET("client_id", or_null(o->client_id));
	if (o->cert_cn)
		SET("cert_cn", or_null(o->cert_cn));
	if (hash || o->no_password)
		SET("password_hash", hash);
	if (o->n_pub || o->no_pub)
		SET_RULES("pub_rules", pub = rules_json(o->pub, o->n_pub));
	if (o->n_sub || o->no_sub)
		SET_RULES("sub_rules", sub = rules_json(o->sub, o->n_sub));
#undef SET
#undef SET_RULES
	if (!n) {
		free(hash);
		return usage("set: nothing to change");
	}
	p[n++] = o->id;
	snprintf(sql + len, sizeof(sql) - len, " WHERE id = $%d RETURNING id", n);
	r = exec(c, sql, n, p);
	if (r && PQntuples(r) == 1) {
		done(o, "updated", o->id);
		rc = 0;
	} else if (r) {
		fprintf(stderr, "ringmqctl: cred: no credential has id %s\n", o->id);
	}
	PQclear(r);
	free(hash);
	free(pub);
	free(sub);
	return rc;
}

static int
cmd_del(PGconn *c, copts_t *o)
{
	const char *p[1];
	PGresult *r;
	int rc = 1;

	if (target(c, o))
		return 1;
	p[0] = o->id;
	r = exec(c, "DELETE FROM ringmq_credentials WHERE id = $1 RETURNING id", 1, p);
	if (r && PQntuples(r) == 1) {
		done(o, "deleted", o->id);
		rc = 0;
	} else if (r) {
		fprintf(stderr, "ringmqctl: cred: no credential has id %s\n", o->id);
	}
	PQclear(r);
	return rc;
}

/* ---- list ---- */

enum col { C_ID, C_USERNAME, C_CLIENT_ID, C_CERT_CN, C_PASSWORD, C_PUB, C_SUB, C_CREATED, C_UPDATED, C_N };

static const char *const list_sql =
	"SELECT id, username, client_id, cert_cn, "
	"CASE WHEN password_hash IS NULL THEN NULL WHEN password_hash ~ '^\\$2[aby]\\$' THEN 'bcrypt' "
	"WHEN password_hash LIKE '$7$%' THEN 'pbkdf2-sha512' WHEN password_hash LIKE '$6$%' THEN 'sha512' "
	"ELSE 'other' END, array_to_json(pub_rules)::text, array_to_json(sub_rules)::text, "
	"to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM ringmq_credentials ";

/* A table cell: control characters shown as '?', so a name cannot forge lines of the listing. */
static char *
cell(const char *s)
{
	char *c = strdup(s ? s : "-");

	for (char *p = c; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return c;
}

/* "a/#,b/+" from a JSON array of strings. */
static char *
rules_cell(const char *json)
{
	json_t *a = json_loads(json ? json : "[]", 0, NULL), *v;
	size_t i, len = 0;
	char *out = calloc(1, 2);

	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);
		size_t n = s ? strlen(s) : 0;
		char *o = out ? realloc(out, len + n + 2) : NULL;

		if (!o)
			break;
		out = o;
		if (len)
			out[len++] = ',';
		memcpy(out + len, s ? s : "", n + 1);
		len += n;
	}
	json_decref(a);
	if (out && !len)
		strcpy(out, "-");
	return out;
}

static void
print_table(char **cells, int rows)
{
	static const enum col shown[] = { C_ID, C_USERNAME, C_CLIENT_ID, C_CERT_CN, C_PASSWORD, C_PUB, C_SUB,
		C_UPDATED };
	size_t w[C_N] = { 0 };

	for (int r = 0; r < rows; r++)
		for (int c = 0; c < C_N; c++)
			if (strlen(cells[r * C_N + c]) > w[c])
				w[c] = strlen(cells[r * C_N + c]);
	for (int r = 0; r < rows; r++) {
		for (size_t k = 0; k < sizeof(shown) / sizeof(shown[0]); k++) {
			int c = shown[k];
			bool last = k + 1 == sizeof(shown) / sizeof(shown[0]);

			if (last)
				printf("%s", cells[r * C_N + c]);
			else if (c == C_ID && r > 0)
				printf("%*s  ", (int)w[c], cells[r * C_N + c]);
			else
				printf("%-*s  ", (int)w[c], cells[r * C_N + c]);
		}
		putchar('\n');
	}
}

static json_t *
json_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static int
cmd_list(PGconn *c, const copts_t *o)
{
	static const char *const head[C_N] = { "ID", "USERNAME", "CLIENT_ID", "CERT_CN", "PASSWORD", "PUB", "SUB",
		"CREATED", "UPDATED" };
	const char *p[1] = { o->has_id ? o->id : o->username };
	char sql[1024];
	PGresult *r;
	int rows;

	snprintf(sql, sizeof(sql), "%s%s ORDER BY id", list_sql,
		o->has_id ? "WHERE id = $1" : o->username ? "WHERE username = $1" : "");
	r = exec(c, sql, o->has_id || o->username ? 1 : 0, p);
	if (!r)
		return 1;
	rows = PQntuples(r);
	if (o->json) {
		json_t *list = json_array();
		char *s;

		for (int i = 0; i < rows; i++) {
			json_t *e = json_object();

			json_object_set_new(e, "id", json_integer(strtoll(PQgetvalue(r, i, C_ID), NULL, 10)));
			json_object_set_new(e, "username", json_text(r, i, C_USERNAME));
			json_object_set_new(e, "client_id", json_text(r, i, C_CLIENT_ID));
			json_object_set_new(e, "cert_cn", json_text(r, i, C_CERT_CN));
			json_object_set_new(e, "password", json_text(r, i, C_PASSWORD));
			json_object_set_new(e, "pub", json_loads(PQgetvalue(r, i, C_PUB), 0, NULL));
			json_object_set_new(e, "sub", json_loads(PQgetvalue(r, i, C_SUB), 0, NULL));
			json_object_set_new(e, "created", json_text(r, i, C_CREATED));
			json_object_set_new(e, "updated", json_text(r, i, C_UPDATED));
			json_array_append_new(list, e);
		}
		s = json_dumps(list, JSON_INDENT(2));
		if (s)
			puts(s);
		free(s);
		json_decref(list);
	} else if (rows > 0) {
		char **cells = calloc((size_t)(rows + 1) * C_N, sizeof(*cells));

		for (int k = 0; cells && k < C_N; k++)
			cells[k] = cell(head[k]);
		for (int i = 0; cells && i < rows; i++)
			for (int k = 0; k < C_N; k++)
				cells[(i + 1) * C_N + k] = k == C_PUB || k == C_SUB ? rules_cell(PQgetvalue(r, i, k)) :
					cell(PQgetisnull(r, i, k) ? NULL : PQgetvalue(r, i, k));
		if (cells)
			print_table(cells, rows + 1);
		for (int k = 0; cells && k < (rows + 1) * C_N; k++)
			free(cells[k]);
		free(cells);
	}
	if (!o->json)
		printf("%d credential%s\n", rows, rows == 1 ? "" : "s");
	PQclear(r);
	return 0;
}

int
cred_main(int argc, char **argv)
{
	char **args = calloc((size_t)argc + 1, sizeof(*args)), err[512];
	static config_t cfg;
	copts_t o = { 0 };
	PGconn *c = NULL;
	int n = argc, rc;

	if (!args)
		return 1;
	memcpy(args, argv, (size_t)argc * sizeof(*args));
	/* --config FILE, RINGMQ_PG_CONNINFO, --pg-conninfo: the broker's own configuration rules. */
	if (config_load(&cfg, &n, args, err, sizeof(err)) < 0) {
		fprintf(stderr, "ringmqctl: %s\n", err);
		rc = 2;
		goto out;
	}
	rc = parse(n, args, &o);
	if (rc)
		goto out;
	if (!cfg.pg_conninfo[0]) {
		rc = usage("no PostgreSQL to talk to: give --pg-conninfo, RINGMQ_PG_CONNINFO or pg_conninfo in "
			"--config FILE");
		goto out;
	}
	c = PQconnectdb(cfg.pg_conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		/* libpq's message names host and port, never the password. */
		fprintf(stderr, "ringmqctl: cred: cannot connect to PostgreSQL: %s", PQerrorMessage(c));
		rc = 1;
		goto out;
	}
	if (!strcmp(o.cmd, "add"))
		rc = cmd_add(c, &o);
	else if (!strcmp(o.cmd, "set"))
		rc = cmd_set(c, &o);
	else if (!strcmp(o.cmd, "del"))
		rc = cmd_del(c, &o);
	else
		rc = cmd_list(c, &o);
out:
	PQfinish(c);
	free(o.pub);
	free(o.sub);
	free(args);
	return rc;
}

/*
 * cred.h — `ringmqctl cred add|set|list|del`: the PostgreSQL credential store (scripts/pg/, docs/postgresql.md)
 * edited directly with libpq; the broker is not involved (its workers hear of every change through the
 * schema's NOTIFY trigger). A command-line tool, so libpq blocks here.
 *
 * The connection string comes from --pg-conninfo, else RINGMQ_PG_CONNINFO, else pg_conninfo in the --config
 * file (config_load's order: file, environment, flags). Passwords are stored as bcrypt hashes ($2b$, libcrypt's
 * crypt_r with a setting from crypt_gensalt_rn and the system's random bytes); listings never show a hash.
 */
#ifndef RINGMQ_SUPERVISOR_CRED_H
#define RINGMQ_SUPERVISOR_CRED_H

#include <stdbool.h>

/* Is `cred` ringmqctl's command (its first argument that is neither an option nor an option's value)? */
bool cred_is_command(int argc, char **argv);
/* Run `ringmqctl ... cred SUBCOMMAND ...` (the whole argv). Exit status: 0 success, 1 failure (PostgreSQL
 * unreachable or refusing, no such credential), 2 usage error. */
int cred_main(int argc, char **argv);

#endif

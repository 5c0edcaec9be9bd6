/*
 * main.c — ringmqd: load the configuration, then hand over to the supervisor (sup.h), which forks the
 * workers. One binary, no exec: the workers are fork()ed copies of this process.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "build_config.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "sup.h"
#include "worker.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: ringmqd [--config PATH] [--<key> VALUE | --<key>=VALUE]...\n"
		"       ringmqd [--config PATH] [--<key> VALUE]... --check-config\n"
		"       ringmqd --help | --version\n"
		"\n"
		"ringmq MQTT broker: a supervisor process and one worker process per CPU.\n"
		"Settings, later wins: built-in defaults, the config file (--config or RINGMQ_CONFIG),\n"
		"environment variables RINGMQ_<KEY>, then command-line flags. Keys (current values):\n\n");
}

/* The broker holds a socket per client plus the worker mesh: lift the soft fd limit to the hard one. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn(errno, "cannot raise the open-file limit");
	}
}

static int
worker_count(const config_t *cfg)
{
	long n = cfg->workers;

	if (n <= 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
	}
	if (n > WORKER_MAX) {
		log_warn(0, "workers: %ld is more than %d; using %d", n, WORKER_MAX, WORKER_MAX);
		n = WORKER_MAX;
	}
	return (int)n;
}

/* Keys that are valid alone but not together: one log line each, exit status 2 (not restarted by systemd). */
static int
check_combinations(const config_t *cfg)
{
	if (strcmp(cfg->cluster, "kafka") == 0 && strcmp(cfg->store, "redis") != 0) {
		log_error(0, "config: cluster = kafka needs store = redis (the nodes share their sessions through Redis); "
			"set store = redis and redis_addrs, or cluster = none");
		return -1;
	}
	if (strcmp(cfg->plain_listener, "off") == 0 && !cfg->tls_port) {
		log_error(0, "config: plain_listener is off and tls_port is 0: nothing to listen on; set tls_port (and "
			"tls_certfile, tls_keyfile) or plain_listener = on");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static config_t cfg;
	static sup_t sup;
	char err[512];
	bool help = false, check = false;
	int level, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("ringmqd %s\n", RINGMQ_VERSION);
			return 0;
		}
	}
	if (config_load(&cfg, &argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "ringmqd: %s\n", err);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			help = true;
		} else if (strcmp(argv[i], "--check-config") == 0) {
			check = true;
		} else {
			fprintf(stderr, "ringmqd: unknown argument '%s' (see ringmqd --help)\n", argv[i]);
			return 2;
		}
	}
	if (help) {
		usage(stdout);
		config_print_help(&cfg, stdout);
		return 0;
	}

	level = log_level_parse(cfg.log_level);
	log_init(level < 0 ? LOG_INFO : level);
	log_set_role("sup");
	raise_nofile();

	if (check_combinations(&cfg) < 0 || metrics_check_config(&cfg) < 0)
		return 2;
	if (check) {
		/* What start-up checks before it opens anything: the keys, their values, their combinations (files the
		 * keys name are read by the workers at start and reported there). For an image build or a deploy. */
		printf("ringmqd: configuration OK\n");
		return 0;
	}
	if (sup_init(&sup, &cfg, worker_count(&cfg)) < 0) {
		/* 2 when what failed is the configuration (a metrics_address this host does not have). */
		rc = sup.exit_code == 2 ? 2 : 1;
		sup_finish(&sup);
		return rc;
	}
	rc = sup_run(&sup);
	sup_finish(&sup);
	return rc;
}

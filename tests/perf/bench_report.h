/*
 * bench_report.h — ringmq-bench output: the periodic line, the final report and the --json file.
 *
 * Pure formatting over a bench_result_t the main thread filled after joining the engine threads; nothing here
 * touches a running engine. Main thread only.
 */
#ifndef RINGMQ_BENCH_REPORT_H
#define RINGMQ_BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench_cfg.h"
#include "bench_conn.h"
#include "bench_stats.h"

typedef struct bench_result {
	const bench_cfg_t *cfg;
	bstat_totals_t tot;          /* whole run, warmup included: the loss verdict */
	bconn_interval_t win;        /* messages sent inside the measured window */
	double window_s;
	double ramp_subs_s;          /* time to connect and subscribe every subscriber */
	double ramp_pubs_s;
	double drain_s;              /* time from the end of publishing until nothing was outstanding */
	bool drained;                /* false: the drain timeout expired first */
	bool setup_failed;
	bool interrupted;
	uint64_t connect_errors;
	uint64_t disconnects;
	uint64_t session_lost;
	uint64_t proto_errors;
	uint64_t sub_refused;
	uint64_t skipped;
	uint64_t foreign;
	uint64_t inflight_end;       /* never acked (not counted as lost) */
	uint64_t reconnects_pub;     /* READY again after an established connection was lost */
	uint64_t reconnects_sub;
	uint64_t unacked_on_disconnect; /* not PUBACKed when their connection was lost: forgotten, not lost */
	uint64_t received_after_reconnect; /* first receipts by subscriber connections made after a loss */
	uint64_t refused;            /* CONNACKs with a failure code */
	uint64_t tls_full;           /* TLS handshakes, whole run */
	uint64_t tls_resumed;
	uint64_t tls_errors;
	unsigned long last_tls_err;  /* btls_describe() */
	long last_tls_verify;
	int last_errno;
	bool tls_resume;             /* --tls-resume */
	uint64_t rlimit_nofile;
	bconn_thread_t *const *threads;
	uint32_t nthreads;
} bench_result_t;

/* One periodic line: t seconds since publishing started, counters of the last `secs` seconds. */
void report_interval(FILE *fp, double t, double secs, const bconn_interval_t *iv, uint32_t subs_up,
	uint32_t pubs_up, uint32_t pairs, uint64_t inflight, uint64_t outstanding);
/* BENCH_MODE_CONNECT's periodic line: cycles per second and handshake/CONNACK latencies. */
void report_interval_connect(FILE *fp, double t, double secs, const bconn_interval_t *iv, bool tls,
	uint64_t connect_errors);
/* The final human-readable report (either mode). */
void report_print(FILE *fp, const bench_result_t *r);
/* Write the report as JSON to path ("-" is stdout); per-pair rows too when with_pairs. 0 or -errno. */
int report_json(const char *path, const bench_result_t *r, bool with_pairs);
/* The process exit status for a result: 0 ok, 1 PUBACKed messages lost, 2 setup failed / interrupted (connect
 * mode: also when no connection completed in the window). */
int report_status(const bench_result_t *r);

#endif

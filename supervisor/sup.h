/*
 * sup.h — the supervisor: forks the workers, restarts them when they die, relays client handoffs between
 * them, answers the control socket (ctl.h) and runs the graceful shutdown.
 *
 * One sup_t per broker, in the supervisor process; nothing here runs in a worker except the code between
 * fork() and worker_run(). The loop is epoll over a signalfd, the workers' control channels and the control
 * socket; signals only set flags and the loop acts on them (docs/STYLE.md 15).
 */
#ifndef RINGMQ_SUPERVISOR_SUP_H
#define RINGMQ_SUPERVISOR_SUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "sendq.h"
#include "worker.h"

struct ctl;
struct wdog;
struct metrics;
struct systopic;

enum sup_wstate {
	SUP_W_STARTING,    /* forked, has not sent CHAN_READY yet */
	SUP_W_UP,          /* sent CHAN_READY */
	SUP_W_RESTARTING,  /* died; waiting out the restart backoff */
	SUP_W_STOPPING,    /* running, told to shut down */
	SUP_W_STOPPED,     /* exited during shutdown */
};

typedef struct sup_worker {
	pid_t pid;              /* 0 while no process runs */
	enum sup_wstate state;
	int listen_fd;          /* held for the broker's life */
	int tls_listen_fd;      /* the TLS port's, -1 without TLS */
	int ctl_fd;             /* supervisor end of the control channel; -1 while no process runs */
	bool out_armed;         /* EPOLLOUT requested on ctl_fd: records wait in the sendq */
	unsigned restarts;      /* restarts of this slot so far (worker_args_t.restart_count) */
	unsigned streak;        /* consecutive crashes within SUP_STABLE_MS, for the backoff */
	uint64_t started_ms;    /* monotonic time of the fork */
	uint64_t restart_at_ms; /* SUP_W_RESTARTING: when to fork again */
	uint64_t eof_kill_ms;   /* channel hit EOF but the process was not reaped yet: SIGKILL it at this time */
} sup_worker_t;

typedef struct sup {
	const config_t *cfg;
	int n_workers;
	int n_procs;                 /* n_workers, plus the Kafka process at index n_workers in a cluster */
	int epfd;
	int sigfd;
	pid_t pid;
	uint64_t start_ms;           /* monotonic */
	char listen_str[96];         /* "host:port" as bound */
	char tls_listen_str[96];     /* "" without TLS */
	uint8_t ticket_key[80];      /* TLS session ticket key given to every worker (worker_args_t) */
	uint64_t ticket_key_ms;      /* when it was made: rotated every SUP_TICKET_ROTATE_MS */
	sup_worker_t w[WORKER_MAX + 1]; /* the workers, then the Kafka process (cluster = kafka) */
	sendq_t sendq;
	struct ctl *ctl;
	struct wdog *wdog;           /* heartbeats, systemd watchdog, probes (watchdog.h) */
	struct metrics *metrics;     /* counters gathered from the workers, /metrics (metrics.h) */
	struct systopic *systopic;   /* $SYS values (systopic.h) */
	bool ready_once;             /* every worker has been up at the same time */
	bool stopping;
	bool killed;                 /* stragglers got SIGKILL */
	int exit_code;               /* sup_run's result: 2 after a worker's configuration error */
	uint64_t stop_deadline_ms;
	/* Dropped sendq records not logged yet; logged at most once a second (they come in bursts). */
	unsigned drops_full, drops_expired, drops_handoffs;
	uint64_t drops_log_ms;
	/* Set by signals, acted on by the loop. */
	bool sig_term;
	bool sig_chld;
	bool sig_hup;
} sup_t;

/* TLS session tickets are encrypted with a key rotated this often (the workers keep the previous one too, so a
 * ticket lives between one and two periods). */
#define SUP_TICKET_ROTATE_MS (12ull * 3600 * 1000)

/* Epoll tags: the event kind in the top byte, a generation in the next three, an index in the low 32 bits. */
enum sup_ev { SUP_EV_SIGNAL = 1, SUP_EV_WORKER = 2, SUP_EV_CTL_LISTEN = 3, SUP_EV_CTL_CONN = 4,
	SUP_EV_METRICS = 8 /* the metrics HTTP server's epoll fd (metrics.h) */ };
#define SUP_TAG(kind, gen, idx) (((uint64_t)(kind) << 56) | ((uint64_t)((gen) & 0xffffffu) << 32) | \
	(uint64_t)(uint32_t)(idx))
#define SUP_TAG_KIND(tag) ((unsigned)((tag) >> 56))
#define SUP_TAG_GEN(tag) ((uint32_t)(((tag) >> 32) & 0xffffffu))
#define SUP_TAG_IDX(tag) ((uint32_t)(tag))

/* Monotonic clock in milliseconds. */
uint64_t sup_now_ms(void);
/* "up", "starting", "restarting", "stopping", "stopped". */
const char *sup_state_name(enum sup_wstate st);

/*
 * Set up the supervisor: signals, listeners (one per worker), control socket, then fork every worker. cfg
 * must outlive the sup_t. Returns 0, or -1 after logging one line (everything opened is closed again).
 */
int sup_init(sup_t *s, const config_t *cfg, int n_workers);
/* Run the loop until the graceful shutdown has finished. Returns the process exit status. */
int sup_run(sup_t *s);
/* Close everything sup_init opened and unlink the control socket. Safe after a failed sup_init. */
void sup_finish(sup_t *s);

/*
 * Deliver one record to worker k's control channel, or queue it in the sendq when the channel is full or
 * earlier records wait. Takes ownership of fd (closed once sent or dropped). When worker k has no process:
 * handoffs are queued for its restart if queue_if_down, anything else is dropped. Returns 0 when sent or
 * queued, -ENOTCONN when dropped because k is down, another -errno when dropped for another reason.
 */
int sup_send(sup_t *s, int k, uint16_t type, int32_t worker, uint32_t seq, const void *payload, uint32_t len,
	int fd, bool queue_if_down);
/* Start the graceful shutdown (idempotent); why goes into the log line. */
void sup_begin_shutdown(sup_t *s, const char *why);
/* Reload what can be reloaded without a restart (TLS certificates and CRL, password and ACL files): every
 * worker is told; each logs what it did. why goes into the log line. */
void sup_reload(sup_t *s, const char *why);

#endif

/* worker.c — one worker process: set up, serve until told to stop, tear down (see worker.h). */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addrlimit.h"
#include "auth.h"
#include "conn.h"
#include "ctl.h"
#include "log.h"
#include "loop.h"
#include "mesh.h"
#include "owner.h"
#include "relay.h"
#include "reply.h"
#include "route.h"
#include "sess.h"
#include "slot.h"
#include "sock.h"
#include "store.h"
#include "tls.h"

wk_t *W;

void worker_serve(void)
{
	/* Our sessions are restored: read the channels (messages for them), announce that our interest is
	 * complete (MF_SYNC), and route publishes once every peer has done the same (route_complete). */
	mesh_start();
	route_check_complete();
	/* In a cluster, clients wait in the listen backlog until the Kafka process has read the cluster's state
	 * (its first MF_SYNC: mesh.c), which it sends once our channel is read. */
	if (W->n_peers > W->n)
		ctl_send_ready();
}

static bool ready_sent;

/* Tell the supervisor we serve once the store can take writes (at once for memory; for redis once connected):
 * a worker whose Redis is down at start accepts and holds its clients, but is not reported ready, so a
 * readiness probe sends new clients elsewhere. The restore may still be under way. */
static void report_ready(void)
{
	if (ready_sent || !store_reachable())
		return;
	ready_sent = true;
	ctl_send_ready();
}

/* Take clients at once, even while sessions are being restored: a CONNECT loads its own session first
 * (owner.h) and a PUBLISH waits for complete routing (route.h). */
static void accept_clients(void)
{
	if (W->n_peers > W->n)
		return;
	conn_start_accepting();
	loop_on_flush(report_ready, LOOP_ORDER_CTL);
}

void worker_stop(const char *why)
{
	if (loop_stopping())
		return;
	log_info("%s: %u connections to close", why, conn_count());
	loop_stop();
	conn_stop_all();
}

static void teardown(void)
{
	/* Free what is left so leak checkers see a clean exit; the durable store keeps its own copy. */
	sess_module_finish();
	owner_finish();
	auth_finish();
	ctl_finish();
	store_finish();
	relay_module_finish();
	addrlimit_finish();
	tls_module_finish();
	route_finish();
	mesh_finish();
	loop_finish();
	sock_module_finish();
	if (W->listen_fd >= 0)
		close(W->listen_fd);
	if (W->tls_listen_fd >= 0)
		close(W->tls_listen_fd);
	close(W->ctl_fd);
}

int worker_run(const worker_args_t *args)
{
	static wk_t w;
	loop_config_t lc;
	int rc;

	memset(&w, 0, sizeof(w));
	W = &w;
	W->id = args->id;
	W->n = args->n_workers;
	W->n_peers = args->n_workers + (strcmp(args->cfg->cluster, "kafka") == 0);
	W->cfg = args->cfg;
	W->listen_fd = args->listen_fd;
	W->tls_listen_fd = args->tls_listen_fd;
	W->ctl_fd = args->ctl_fd;
	signal(SIGPIPE, SIG_IGN);
	lc = (loop_config_t){ .sq_entries = W->cfg->ring_entries, .buf_count = W->cfg->buf_ring_entries,
		.buf_size = W->cfg->buf_size, .tick_ms = 250 };
	if (loop_init(&lc) < 0)
		return 1;
	sock_module_init();
	reply_module_init();
	conn_module_init();
	sess_module_init();
	relay_module_init();
	addrlimit_init();
	if (tls_module_init(args->tls_ticket_key) < 0)
		return WORKER_EXIT_CONFIG;
	if (route_init() < 0) {
		log_error(ENOMEM, "cannot allocate the subscription trie");
		return 1;
	}
	mesh_init(args);
	ctl_init();
	/* A host name that does not resolve may be DNS not ready yet (a fresh pod): restarted with backoff. */
	if ((rc = auth_init()) < 0)
		return rc == -EHOSTUNREACH ? 1 : WORKER_EXIT_CONFIG;
	auth_on_revoked(conn_revoke);
	if (store_init(worker_serve) < 0)
		return 1;
	owner_init(); /* after store_init, which starts the store's state afresh */
	accept_clients();
	/* With a durable store the store calls worker_serve once this worker's sessions are restored. */
	if (store_ready())
		worker_serve();
	log_info("worker %d up: slots %u..%u%s", W->id, slot_first(W->id, W->n),
		slot_first(W->id + 1, W->n) - 1, args->restart_count ? " (restarted)" : "");
	rc = loop_run();
	teardown();
	log_info("worker %d stopped", W->id);
	return rc;
}

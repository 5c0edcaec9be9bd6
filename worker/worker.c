/* worker.c — one worker process: set up, serve until told to stop, tear down (see worker.h). */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "ctl.h"
#include "log.h"
#include "loop.h"
#include "mesh.h"
#include "route.h"
#include "sess.h"
#include "slot.h"
#include "store.h"
#include "wk-t.h"

wk_t *W;

static void teardown(void)
{
	strmap_entry_t *e;
	size_t pos = 0;

	/* Free what is left so leak checkers see a clean exit; sessions are in memory and end with us. */
	while ((e = strmap_next(&W->sessions, &pos))) {
		sess_destroy(e->value);
		pos = 0;
	}
	strmap_finish(&W->sessions);
	store_finish();
	route_finish();
	mesh_finish();
	loop_finish();
	free(W->conns);
	free(W->conn_gen);
	free(W->free_idx);
	close(W->listen_fd);
	close(W->ctl_fd);
}

void worker_serve(void)
{
	conn_start_accepting();
	ctl_send_ready();
}

int worker_run(const worker_args_t *args)
{
	static wk_t w;
	int rc;

	memset(&w, 0, sizeof(w));
	W = &w;
	W->id = args->id;
	W->n = args->n_workers;
	W->cfg = args->cfg;
	W->listen_fd = args->listen_fd;
	W->ctl_fd = args->ctl_fd;
	W->now_ms = loop_now_ms();
	signal(SIGPIPE, SIG_IGN);
	strmap_init(&W->sessions);
	if (loop_init() < 0)
		return 1;
	if (route_init() < 0) {
		log_error(ENOMEM, "cannot allocate the subscription trie");
		return 1;
	}
	mesh_init(args);
	ctl_init();
	if (store_init() < 0)
		return 1;
	/* With a durable store, clients wait in the accept queue until this worker's sessions are restored,
	 * so a CONNECT never sees a half-restored session (store.c starts accepting then). */
	if (W->store_ready)
		worker_serve();
	log_info("worker %d up: slots %u..%u%s", W->id, slot_first(W->id, W->n),
		slot_first(W->id + 1, W->n) - 1, args->restart_count ? " (restarted: sessions start empty)" : "");
	rc = loop_run();
	teardown();
	log_info("worker %d stopped", W->id);
	return rc;
}

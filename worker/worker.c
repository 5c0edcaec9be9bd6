/* Temporary stub: replaced by the real worker loop. Waits for EOF on the control channel. */
#include "worker.h"
#include "chan.h"
#include <poll.h>
#include <stdlib.h>
#include <errno.h>

int worker_run(const worker_args_t *args)
{
	static char payload[CHAN_MAX_PAYLOAD];
	chan_hdr_t h;
	int fd;

	for (;;) {
		struct pollfd p = { .fd = args->ctl_fd, .events = POLLIN };
		poll(&p, 1, -1);
		int r = chan_recv(args->ctl_fd, &h, payload, &fd);
		if (r == -EPIPE || (r == 0 && h.type == CHAN_SHUTDOWN))
			return 0;
	}
}

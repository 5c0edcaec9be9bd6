/* sys.c — $SYS topics, worker side (see sys.h). */
#include "sys.h"

#include <errno.h>
#include <string.h>

#include "chan.h"
#include "log.h"
#include "msg.h"
#include "route.h"
#include "worker.h"

static struct {
	uint32_t filters;  /* distinct local $SYS filters */
	uint8_t told;      /* what the supervisor was last told (it starts a worker as not interested) */
} S;

static uint8_t data[CHAN_MAX_PAYLOAD];

bool sys_topic(const uint8_t *name, size_t len)
{
	return len >= 4 && memcmp(name, "$SYS", 4) == 0 && (len == 4 || name[4] == '/');
}

void sys_report(void)
{
	uint8_t want = S.filters > 0;

	if (S.told == want || W->ctl_fd < 0)
		return;
	/* A full channel (-EAGAIN) is retried by the next tick; the record is one byte. */
	if (chan_send(W->ctl_fd, CHAN_SYS_INTEREST, W->id, 0, &want, 1, -1) == 0)
		S.told = want;
}

void sys_filter_added(const char *f, size_t len)
{
	if (!sys_topic((const uint8_t *)f, len))
		return;
	if (S.filters++ == 0)
		sys_report();
}

void sys_filter_removed(const char *f, size_t len)
{
	if (!sys_topic((const uint8_t *)f, len) || S.filters == 0)
		return;
	if (--S.filters == 0)
		sys_report();
}

static bool get16(const uint8_t *p, size_t len, size_t *off, const uint8_t **v, uint16_t *n)
{
	if (len - *off < 2)
		return false;
	memcpy(n, p + *off, 2);
	*off += 2;
	if (len - *off < *n)
		return false;
	*v = p + *off;
	*off += *n;
	return true;
}

int sys_on_values(const uint8_t *p, size_t len)
{
	size_t off = 0;
	int n = 0;

	while (off < len) {
		const uint8_t *topic, *val;
		uint16_t tlen, vlen;
		msg_t hdr, *m;

		if (!get16(p, len, &off, &topic, &tlen) || !get16(p, len, &off, &val, &vlen) || !sys_topic(topic, tlen))
			return -EPROTO;
		memset(&hdr, 0, sizeof(hdr));
		hdr.retain = 1;
		hdr.topic_len = tlen;
		hdr.payload_len = vlen;
		memcpy(data, topic, tlen);
		memcpy(data + tlen, val, vlen);
		m = msg_create_raw(&hdr, data);
		if (!m)
			return -ENOMEM;
		route_retain_store(m);
		route_deliver_local(m, NULL);
		msg_unref(m);
		n++;
	}
	return n;
}

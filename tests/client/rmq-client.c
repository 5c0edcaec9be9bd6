/*
 * rmq-client.c — a small blocking MQTT 3.1.1 / 5 client for the integration tests, built on proto/ only.
 *
 *   rmq-client [options] sub FILTER    print each message as "topic<TAB>payload<TAB>dup=D<TAB>qos=Q"
 *   rmq-client [options] pub TOPIC     publish --count messages, waiting for every PUBACK / PUBCOMP
 *
 * It is deliberately independent of the broker's event loop: plain sockets, poll() with deadlines, one
 * thread. Status lines ("connack ...", "suback ...", "disconnect ...") go to stderr, messages to stdout (line
 * buffered), so a test can wait for "suback" before it publishes.
 *
 * Exit codes: 0 done, 1 usage, 2 connect failed or refused, 3 protocol error, 4 timeout, 5 closed by broker.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mqtt.h"

enum { EXIT_USAGE = 1, EXIT_CONNECT = 2, EXIT_PROTO = 3, EXIT_TIMEOUT = 4, EXIT_CLOSED = 5 };

#define MAX_PACKET (16u * 1024 * 1024)
#define MAX_WINDOW 64

struct opts {
	const char *host;
	const char *port;
	const char *id;
	int version;
	int clean;
	long expiry;        /* -1: not sent */
	int keepalive;
	int qos;
	int retain;
	long count;
	double timeout;     /* seconds, for the whole run */
	long no_ack_after;  /* -1: always acknowledge */
	const char *payload;
	const char *cmd;
	const char *topic;
};

struct conn {
	int fd;
	uint8_t version;
	uint8_t *buf;       /* received bytes not yet consumed */
	size_t len, cap;
	size_t consumed;    /* bytes of the packet last returned by read_packet(), dropped on the next call */
	uint16_t receive_max; /* the server's, from CONNACK */
	double deadline;
	double last_send;
	int keepalive;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
status(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("rmq-client: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void
usage(void)
{
	fputs("usage: rmq-client [--host H] [--port P] [--id ID] [--version 4|5] [--clean 0|1] [--expiry S]\n"
	      "                  [--keepalive S] [--qos Q] [--retain] [--count N] [--timeout S]\n"
	      "                  [--no-ack-after K] [--payload FMT] (sub FILTER | pub TOPIC)\n"
	      "FMT may contain %d, replaced by the message index (0..N-1).\n", stderr);
}

static int
send_all(struct conn *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			status("send: %s", strerror(errno));
			return -EXIT_CLOSED;
		}
		p += w;
		n -= (size_t)w;
	}
	c->last_send = now_s();
	return 0;
}

/* Send a packet built by an encoder into a stack buffer (acks, pings, disconnect). */
static int
send_small(struct conn *c, const uint8_t *p, size_t n)
{
	if (n == 0) {
		status("encoder refused a packet");
		return -EXIT_PROTO;
	}
	return send_all(c, p, n);
}

static int
send_ack(struct conn *c, uint8_t type, uint16_t pid)
{
	uint8_t b[16];
	mqtt_ack_t a = { .packet_id = pid };

	return send_small(c, b, mqtt_encode_ack(b, sizeof(b), type, c->version, &a));
}

static int
send_ping_if_due(struct conn *c)
{
	uint8_t b[2];

	if (c->keepalive <= 0 || now_s() - c->last_send < c->keepalive / 2.0)
		return 0;
	return send_small(c, b, mqtt_encode_empty(b, sizeof(b), MQTT_PINGREQ));
}

/*
 * Read the next complete packet into *f (a view into c->buf, valid until the next call). Returns 0, or
 * -EXIT_TIMEOUT at the deadline, -EXIT_CLOSED on EOF, -EXIT_PROTO on a framing error.
 */
static int
read_packet(struct conn *c, mqtt_frame_t *f)
{
	if (c->consumed) {
		memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
		c->len -= c->consumed;
		c->consumed = 0;
	}
	for (;;) {
		int64_t n = mqtt_frame(c->buf, c->len, MAX_PACKET, f);
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		double left, wait;
		ssize_t r;

		if (n > 0) {
			c->consumed = (size_t)n;
			return 0;
		}
		if (n < 0) {
			status("bad packet from broker: %s", mqtt_err_str((int)n));
			return -EXIT_PROTO;
		}
		left = c->deadline - now_s();
		if (left <= 0)
			return -EXIT_TIMEOUT;
		if (send_ping_if_due(c) < 0)
			return -EXIT_CLOSED;
		wait = left;
		if (c->keepalive > 0 && wait > c->keepalive / 4.0)
			wait = c->keepalive / 4.0;
		if (poll(&pfd, 1, (int)(wait * 1000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			return -EXIT_PROTO;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (c->cap - c->len < 65536) {
			size_t ncap = c->cap ? c->cap * 2 : 131072;
			uint8_t *nb;

			if (ncap > 2 * (size_t)MAX_PACKET) {
				status("receive buffer overflow");
				return -EXIT_PROTO;
			}
			nb = realloc(c->buf, ncap);
			if (!nb)
				return -EXIT_PROTO;
			c->buf = nb;
			c->cap = ncap;
		}
		r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			status("connection closed by broker");
			return -EXIT_CLOSED;
		}
		c->len += (size_t)r;
	}
}

static int
tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, one = 1, rc;

	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		status("%s:%s: %s", host, port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		status("connect %s:%s: %s", host, port, strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* A DISCONNECT from the broker (MQTT 5): report it and end with EXIT_CLOSED. */
static int
on_disconnect(struct conn *c, const mqtt_frame_t *f)
{
	mqtt_ack_t d;

	if (mqtt_decode_disconnect(f, c->version, &d) != MQTT_OK)
		return -EXIT_PROTO;
	status("disconnect reason=0x%02x", d.reason);
	return -EXIT_CLOSED;
}

static int
mqtt_connect(struct conn *c, const struct opts *o)
{
	mqtt_connect_t m;
	mqtt_connack_t ca;
	mqtt_frame_t f;
	uint8_t *b;
	uint32_t n;
	size_t w;
	int rc;

	memset(&m, 0, sizeof(m));
	m.version = (uint8_t)o->version;
	m.clean_start = o->clean != 0;
	m.keep_alive = (uint16_t)o->keepalive;
	m.client_id.p = (const uint8_t *)o->id;
	m.client_id.len = (uint32_t)strlen(o->id);
	if (o->version == MQTT_V5 && o->expiry >= 0) {
		m.props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		m.props.session_expiry = (uint32_t)o->expiry;
	}
	n = mqtt_connect_size(&m);
	b = n ? malloc(n) : NULL;
	if (!b)
		return -EXIT_CONNECT;
	w = mqtt_encode_connect(b, n, &m);
	rc = w ? send_all(c, b, w) : -EXIT_PROTO;
	free(b);
	if (rc < 0)
		return rc;
	rc = read_packet(c, &f);
	if (rc < 0)
		return rc == -EXIT_CLOSED ? -EXIT_CONNECT : rc;
	if (f.type != MQTT_CONNACK || mqtt_decode_connack(&f, c->version, &ca) != MQTT_OK) {
		status("expected CONNACK, got %s", mqtt_type_name(f.type));
		return -EXIT_PROTO;
	}
	status("connack session_present=%d reason=0x%02x", ca.session_present, ca.reason);
	if (ca.reason != 0)
		return -EXIT_CONNECT;
	c->receive_max = 65535;
	if (ca.props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
		c->receive_max = ca.props.receive_maximum;
	if (ca.props.present & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE))
		c->keepalive = ca.props.server_keep_alive;
	return 0;
}

static void
print_message(const mqtt_publish_t *p)
{
	fwrite(p->topic.p, 1, p->topic.len, stdout);
	fputc('\t', stdout);
	fwrite(p->payload.p, 1, p->payload.len, stdout);
	printf("\tdup=%d\tqos=%d\n", p->dup ? 1 : 0, p->qos);
	fflush(stdout);
}

static int
run_sub(struct conn *c, const struct opts *o)
{
	mqtt_str_t filter = { (const uint8_t *)o->topic, (uint32_t)strlen(o->topic) };
	mqtt_subopts_t so = { .qos = (uint8_t)o->qos };
	mqtt_props_t none;
	uint8_t b[4096];
	mqtt_frame_t f;
	long got = 0;
	size_t w;
	int rc;

	memset(&none, 0, sizeof(none));
	if (mqtt_subscribe_size(c->version, &none, &filter, 1) > sizeof(b)) {
		status("filter too long");
		return -EXIT_USAGE;
	}
	w = mqtt_encode_subscribe(b, sizeof(b), c->version, 1, &none, &filter, &so, 1);
	if ((rc = send_small(c, b, w)) < 0)
		return rc;
	while (got < o->count) {
		if ((rc = read_packet(c, &f)) < 0)
			return rc;
		switch (f.type) {
		case MQTT_SUBACK: {
			mqtt_suback_t sa;

			if (mqtt_decode_suback(&f, c->version, &sa) != MQTT_OK || sa.count != 1)
				return -EXIT_PROTO;
			status("suback granted=%d", sa.reasons[0]);
			if (sa.reasons[0] >= 0x80)
				return -EXIT_PROTO;
			if (o->count == 0)
				return 0;
			break;
		}
		case MQTT_PUBLISH: {
			mqtt_publish_t p;
			int ack = o->no_ack_after < 0 || got < o->no_ack_after;

			if (mqtt_decode_publish(&f, c->version, &p) != MQTT_OK) {
				status("bad PUBLISH");
				return -EXIT_PROTO;
			}
			print_message(&p);
			got++;
			if (ack && p.qos == 1)
				rc = send_ack(c, MQTT_PUBACK, p.packet_id);
			else if (ack && p.qos == 2)
				rc = send_ack(c, MQTT_PUBREC, p.packet_id);
			if (rc < 0)
				return rc;
			break;
		}
		case MQTT_PUBREL: {
			mqtt_ack_t a;

			if (mqtt_decode_ack(&f, c->version, &a) != MQTT_OK)
				return -EXIT_PROTO;
			if ((rc = send_ack(c, MQTT_PUBCOMP, a.packet_id)) < 0)
				return rc;
			break;
		}
		case MQTT_PINGRESP:
			break;
		case MQTT_DISCONNECT:
			return on_disconnect(c, &f);
		default:
			status("unexpected %s", mqtt_type_name(f.type));
			return -EXIT_PROTO;
		}
	}
	return 0;
}

/* Expand the payload format: every "%d" becomes the index; "%%" is a percent sign. */
static size_t
format_payload(char *out, size_t cap, const char *fmt, long i)
{
	size_t n = 0;

	for (const char *s = fmt; *s && n + 24 < cap; s++) {
		if (s[0] == '%' && s[1] == 'd') {
			n += (size_t)snprintf(out + n, cap - n, "%ld", i);
			s++;
		} else if (s[0] == '%' && s[1] == '%') {
			out[n++] = '%';
			s++;
		} else {
			out[n++] = *s;
		}
	}
	return n;
}

static int
run_pub(struct conn *c, const struct opts *o)
{
	size_t tlen = strlen(o->topic), cap = tlen + 65536 + 64;
	uint8_t *b = malloc(cap);
	char payload[65536];
	unsigned window = c->receive_max < MAX_WINDOW ? c->receive_max : MAX_WINDOW;
	unsigned inflight = 0;
	long sent = 0, done = 0;
	uint16_t pid = 0;
	mqtt_frame_t f;
	int rc = 0;

	if (!b)
		return -EXIT_PROTO;
	if (window == 0)
		window = 1;
	while (done < o->count) {
		while (sent < o->count && (o->qos == 0 || inflight < window)) {
			mqtt_publish_t p;
			size_t w;

			memset(&p, 0, sizeof(p));
			p.qos = (uint8_t)o->qos;
			p.retain = o->retain != 0;
			p.topic.p = (const uint8_t *)o->topic;
			p.topic.len = (uint32_t)tlen;
			p.payload.p = (const uint8_t *)payload;
			p.payload.len = (uint32_t)format_payload(payload, sizeof(payload), o->payload, sent);
			if (o->qos > 0) {
				pid = (uint16_t)(pid % 65535 + 1);
				p.packet_id = pid;
			}
			w = mqtt_encode_publish(b, cap, c->version, &p);
			if ((rc = send_small(c, b, w)) < 0)
				goto out;
			sent++;
			if (o->qos == 0)
				done++;
			else
				inflight++;
		}
		if (done >= o->count)
			break;
		if ((rc = read_packet(c, &f)) < 0)
			goto out;
		switch (f.type) {
		case MQTT_PUBACK:
		case MQTT_PUBCOMP:
		case MQTT_PUBREC: {
			mqtt_ack_t a;

			if (mqtt_decode_ack(&f, c->version, &a) != MQTT_OK) {
				rc = -EXIT_PROTO;
				goto out;
			}
			if (a.reason >= 0x80) {
				status("%s reason=0x%02x for packet %u", mqtt_type_name(f.type), a.reason, a.packet_id);
				rc = -EXIT_PROTO;
				goto out;
			}
			if (f.type == MQTT_PUBREC) {
				if ((rc = send_ack(c, MQTT_PUBREL, a.packet_id)) < 0)
					goto out;
			} else {
				inflight--;
				done++;
			}
			break;
		}
		case MQTT_PINGRESP:
			break;
		case MQTT_DISCONNECT:
			rc = on_disconnect(c, &f);
			goto out;
		default:
			status("unexpected %s", mqtt_type_name(f.type));
			rc = -EXIT_PROTO;
			goto out;
		}
	}
	status("published %ld", done);
out:
	free(b);
	return rc;
}

/* Half-close, then discard what the broker still sends until it closes too (at most 5 s). */
static void
drain_close(struct conn *c)
{
	uint8_t b[4096];
	double end = now_s() + 5;

	shutdown(c->fd, SHUT_WR);
	while (now_s() < end) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		if (poll(&pfd, 1, 100) > 0 && recv(c->fd, b, sizeof(b), 0) <= 0)
			break;
	}
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "host", required_argument, 0, 'h' }, { "port", required_argument, 0, 'p' },
		{ "id", required_argument, 0, 'i' }, { "version", required_argument, 0, 'V' },
		{ "clean", required_argument, 0, 'c' }, { "expiry", required_argument, 0, 'x' },
		{ "keepalive", required_argument, 0, 'k' }, { "qos", required_argument, 0, 'q' },
		{ "retain", no_argument, 0, 'r' }, { "count", required_argument, 0, 'n' },
		{ "timeout", required_argument, 0, 't' }, { "no-ack-after", required_argument, 0, 'a' },
		{ "payload", required_argument, 0, 'm' }, { 0, 0, 0, 0 },
	};
	int ch;

	*o = (struct opts){ .host = "127.0.0.1", .port = "1883", .id = "", .version = 4, .clean = 1, .expiry = -1,
		.keepalive = 60, .qos = 0, .count = 1, .timeout = 10, .no_ack_after = -1, .payload = "msg-%d" };
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'h': o->host = optarg; break;
		case 'p': o->port = optarg; break;
		case 'i': o->id = optarg; break;
		case 'V': o->version = atoi(optarg); break;
		case 'c': o->clean = atoi(optarg); break;
		case 'x': o->expiry = strtol(optarg, NULL, 10); break;
		case 'k': o->keepalive = atoi(optarg); break;
		case 'q': o->qos = atoi(optarg); break;
		case 'r': o->retain = 1; break;
		case 'n': o->count = strtol(optarg, NULL, 10); break;
		case 't': o->timeout = strtod(optarg, NULL); break;
		case 'a': o->no_ack_after = strtol(optarg, NULL, 10); break;
		case 'm': o->payload = optarg; break;
		default: return -1;
		}
	}
	if (argc - optind != 2 || (o->version != 4 && o->version != 5) || o->qos < 0 || o->qos > 2 ||
	    o->count < 0 || o->keepalive < 0 || o->keepalive > 65535)
		return -1;
	o->cmd = argv[optind];
	o->topic = argv[optind + 1];
	if (strcmp(o->cmd, "sub") != 0 && strcmp(o->cmd, "pub") != 0)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct conn c;
	int rc;

	if (parse_args(argc, argv, &o) < 0) {
		usage();
		return EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&c, 0, sizeof(c));
	c.version = (uint8_t)o.version;
	c.keepalive = o.keepalive;
	c.deadline = now_s() + o.timeout;
	c.fd = tcp_connect(o.host, o.port);
	if (c.fd < 0)
		return EXIT_CONNECT;
	rc = mqtt_connect(&c, &o);
	if (rc == 0)
		rc = strcmp(o.cmd, "sub") == 0 ? run_sub(&c, &o) : run_pub(&c, &o);
	if (rc == 0 && o.no_ack_after < 0) {
		uint8_t b[8];
		mqtt_ack_t d = { .reason = 0 };

		send_small(&c, b, mqtt_encode_disconnect(b, sizeof(b), c.version, &d));
	}
	/* With --no-ack-after the connection just drops, like a crashed client: the session keeps its
	 * unacknowledged messages for redelivery. Either way half-close and drain first: closing with unread
	 * data (a late SUBACK, a message beyond --count) would send a RST, and the broker could lose the
	 * acknowledgements still in its receive queue. */
	if (rc == 0)
		drain_close(&c);
	if (rc == -EXIT_TIMEOUT)
		status("timeout");
	close(c.fd);
	free(c.buf);
	return rc < 0 ? -rc : 0;
}

/* kafka.c — librdkafka on the Kafka process's ring (see kafka.h). */
#include "kafka.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cluster.h"
#include "log.h"
#include "loop.h"
#include "worker.h"

#define STATE_PARTITIONS 8         /* P.interest; P.nodes has one */
#define COMMIT_EVERY_MS 100
#define MAX_INTEREST_PARTS 512
/* librdkafka 2.0.2 never retries the fetch of a partition's committed offset when the whole request is refused
 * (NOT_COORDINATOR while the group's coordinator moves or loads; librdkafka issue 5586): the partition is never
 * fetched. An inbox that neither delivered a record nor reached its end this long after its assignment is
 * assigned again, which fetches its committed offset anew. */
#define INBOX_STALL_MS 3000

static struct {
	const kafka_ops_t *ops;
	rd_kafka_t *prod, *cons;
	rd_kafka_queue_t *prod_q, *cons_q;
	int efd;
	uint8_t kind;
	bool armed;
	uint64_t efd_val;
	char names[KT_COUNT][96];
	int32_t interest_parts;
	uint32_t eof_left;          /* partitions not yet read to their end once */
	bool eof_seen[KT_COUNT][MAX_INTEREST_PARTS];
	bool inbox_live[CLUSTER_MAX_NODES];        /* fetching: a record or its end was seen since assigned */
	uint64_t inbox_assigned_ms[CLUSTER_MAX_NODES];
	uint32_t inbox_reassigns;
	uint64_t commit_errors;
	/* counters (ringmqctl stats / cluster: "kafka") */
	uint64_t produced, produced_bytes, acked, failed, consumed, consumed_bytes;
	bool caught_up;
	uint32_t pending;
	int64_t commit_next[CLUSTER_MAX_NODES], committed[CLUSTER_MAX_NODES];
	uint64_t commit_ms;
	bool down_logged;
	rd_kafka_t *adopt[CLUSTER_MAX_NODES];      /* consumers of adopted nodes' inboxes */
	rd_kafka_queue_t *adopt_q[CLUSTER_MAX_NODES];
} K;

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 3)
		log_error(0, "kafka %s: %s", fac, buf);
	else if (level <= 5)
		log_warn(0, "kafka %s: %s", fac, buf);
	else
		log_debug("kafka %s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
	    err == RD_KAFKA_RESP_ERR__RESOLVE) {
		if (!K.down_logged)
			log_error(0, "Kafka %s unreachable: %s; check kafka_brokers and that Kafka runs (messages to "
				"other nodes wait, nothing is acknowledged that Kafka does not hold)",
				W->cfg->kafka_brokers, reason);
		K.down_logged = true;
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[256];

		rd_kafka_fatal_error(rk, why, sizeof(why));
		log_error(0, "Kafka: fatal error: %s", why);
		return;
	}
	log_warn(0, "Kafka: %s: %s", rd_kafka_err2str(err), reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	K.pending--;
	if (m->err)
		K.failed++;
	else
		K.acked++;
	if (m->err) {
		log_warn(0, "Kafka: a record to %s[%d] was not acknowledged: %s", rd_kafka_topic_name(m->rkt),
			(int)m->partition, rd_kafka_err2str(m->err));
	} else if (K.down_logged) {
		log_info("Kafka %s reachable again", W->cfg->kafka_brokers);
		K.down_logged = false;
	}
	K.ops->delivered(m->_private, m->err ? -EIO : 0);
}

static int set(rd_kafka_conf_t *c, const char *k, const char *v)
{
	char err[256];

	if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
		log_error(0, "Kafka: cannot set %s = %s: %s", k, v, err);
		return -EINVAL;
	}
	return 0;
}

/* kafka_options: "key=value;key=value", librdkafka's own names (TLS and SASL to Kafka, timeouts...). */
static int apply_options(rd_kafka_conf_t *c)
{
	char buf[sizeof(W->cfg->kafka_options)], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", W->cfg->kafka_options);
	for (char *item = strtok_r(buf, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(item, '=');

		while (*item == ' ')
			item++;
		if (!*item)
			continue;
		if (!eq || eq == item) {
			log_error(0, "config: kafka_options: '%s' is not key=value (items are separated by ';')", item);
			return -EINVAL;
		}
		*eq = '\0';
		if (set(c, item, eq + 1) < 0)
			return -EINVAL;
	}
	return 0;
}

static rd_kafka_conf_t *base_conf(void)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	char v[32];

	snprintf(v, sizeof(v), "ringmqd-n%u", W->cfg->node_id);
	if (set(c, "bootstrap.servers", W->cfg->kafka_brokers) < 0 || set(c, "client.id", v) < 0 ||
	    set(c, "log.queue", "true") < 0 || set(c, "socket.nagle.disable", "true") < 0) {
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	if (apply_options(c) < 0) {
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	/* librdkafka's own debug contexts ("broker,eos,msg"...), for diagnosis; shown with log_level = debug. */
	if (getenv("RINGMQ_KAFKA_DEBUG") && set(c, "debug", getenv("RINGMQ_KAFKA_DEBUG")) < 0) {
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	rd_kafka_conf_set_log_cb(c, on_log);
	rd_kafka_conf_set_error_cb(c, on_error);
	return c;
}

static rd_kafka_t *make(rd_kafka_type_t type, rd_kafka_conf_t *c)
{
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof(err));

	if (!rk) {
		log_error(0, "Kafka: cannot create a %s: %s", type == RD_KAFKA_PRODUCER ? "producer" : "consumer", err);
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	rd_kafka_set_log_queue(rk, NULL); /* logs come through the main queue: on our thread */
	return rk;
}

static int make_producer(void)
{
	rd_kafka_conf_t *c = base_conf();
	char v[32];

	if (!c)
		return -EINVAL;
	snprintf(v, sizeof(v), "%u", W->cfg->kafka_linger_ms);
	/* One request in flight per broker: librdkafka 2.0.2's idempotent producer with several spins its broker
	 * thread for seconds at a time (measured: 3 nodes at 4,000 msg/s, 0.69 cores of ringmqd with stalls of
	 * 3-10 s, against 0.23 cores and PUBACK p99 13 ms with one; docs/benchmarks-cluster.md). Batching by
	 * linger keeps requests large; order and idempotence stay. */
	if (set(c, "enable.idempotence", "true") < 0 || set(c, "acks", "all") < 0 || set(c, "linger.ms", v) < 0 ||
	    set(c, "max.in.flight.requests.per.connection", "1") < 0 ||
	    set(c, "compression.codec", W->cfg->kafka_compression) < 0) {
		rd_kafka_conf_destroy(c);
		return -EINVAL;
	}
	snprintf(v, sizeof(v), "%u", W->cfg->kafka_timeout_ms);
	if (set(c, "message.timeout.ms", v) < 0) {
		rd_kafka_conf_destroy(c);
		return -EINVAL;
	}
	/* Our own bound (kafka_max_pending) stops publishers first; librdkafka's queue only needs to hold it. */
	snprintf(v, sizeof(v), "%u", W->cfg->kafka_max_pending + 10000);
	if (set(c, "queue.buffering.max.messages", v) < 0) {
		rd_kafka_conf_destroy(c);
		return -EINVAL;
	}
	rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
	K.prod = make(RD_KAFKA_PRODUCER, c);
	if (!K.prod)
		return -EINVAL;
	K.prod_q = rd_kafka_queue_get_main(K.prod);
	return 0;
}

/* A commit refused (coordinator moving, Kafka down) is made again at the next tick: a partition's committed
 * offset only ever lags what workers made durable, which re-delivers (idempotent), never skips. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
	void *opaque)
{
	(void)rk;
	(void)opaque;
	for (int i = 0; offsets && i < offsets->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &offsets->elems[i];
		int32_t p = tp->partition;

		if (!(err || tp->err) || p < 0 || p >= CLUSTER_MAX_NODES)
			continue;
		K.commit_errors++;
		if (tp->offset <= K.committed[p])
			K.committed[p] = tp->offset - 1;
	}
}

/* A consumer whose offsets are committed under node's group (this node's, or an adopted one's). */
static rd_kafka_t *new_consumer(int node, rd_kafka_queue_t **q)
{
	rd_kafka_conf_t *c = base_conf();
	char group[160];
	rd_kafka_t *rk;

	if (!c)
		return NULL;
	snprintf(group, sizeof(group), "%s.node.%d", W->cfg->kafka_topic_prefix, node);
	if (set(c, "group.id", group) < 0 || set(c, "enable.auto.commit", "false") < 0 ||
	    set(c, "enable.auto.offset.store", "false") < 0 || set(c, "auto.offset.reset", "earliest") < 0 ||
	    set(c, "enable.partition.eof", "true") < 0 || set(c, "fetch.wait.max.ms", "10") < 0) {
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	rd_kafka_conf_set_offset_commit_cb(c, on_commit);
	rk = make(RD_KAFKA_CONSUMER, c);
	if (!rk)
		return NULL;
	rd_kafka_poll_set_consumer(rk);
	*q = rd_kafka_queue_get_consumer(rk);
	return rk;
}

static int make_consumer(void)
{
	K.cons = new_consumer((int)W->cfg->node_id, &K.cons_q);
	return K.cons ? 0 : -EINVAL;
}

/* Create the cluster's topics if they are missing (Kafka's defaults for replication). Blocks up to the
 * timeout: the Kafka process has nothing else to do before the cluster is known. */
static int create_topics(void)
{
	rd_kafka_NewTopic_t *nt[KT_COUNT];
	rd_kafka_queue_t *q = rd_kafka_queue_new(K.prod);
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(K.prod, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	const int parts[KT_COUNT] = { 1, STATE_PARTITIONS, CLUSTER_MAX_NODES };
	rd_kafka_event_t *ev;
	char err[256];
	int rc = 0;

	/* Short: an unreachable Kafka is said in the log within seconds, and tried again. */
	int timeout_ms = W->cfg->kafka_timeout_ms < 5000 ? (int)W->cfg->kafka_timeout_ms : 5000;

	rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, err, sizeof(err));
	for (int t = 0; t < KT_COUNT; t++) {
		nt[t] = rd_kafka_NewTopic_new(K.names[t], parts[t], -1, err, sizeof(err));
		if (t != KT_INBOX)
			rd_kafka_NewTopic_set_config(nt[t], "cleanup.policy", "compact");
		else
			rd_kafka_NewTopic_set_config(nt[t], "retention.ms", "604800000");
	}
	rd_kafka_CreateTopics(K.prod, nt, KT_COUNT, o, q);
	ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
	if (!ev || rd_kafka_event_error(ev)) {
		log_error(0, "Kafka %s: cannot create the cluster's topics: %s; check kafka_brokers and that Kafka "
			"runs", W->cfg->kafka_brokers, ev ? rd_kafka_event_error_string(ev) : "timed out");
		rc = -EAGAIN;
	} else {
		size_t n;
		const rd_kafka_topic_result_t **res =
			rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);

		for (size_t i = 0; i < n; i++) {
			rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);

			if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
				log_error(0, "Kafka: cannot create topic %s: %s", rd_kafka_topic_result_name(res[i]),
					rd_kafka_topic_result_error_string(res[i]));
				rc = -EIO;
			}
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	for (int t = 0; t < KT_COUNT; t++)
		rd_kafka_NewTopic_destroy(nt[t]);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	return rc;
}

/* How many partitions topic t has (an operator may have made it with other counts); fallback when Kafka does not
 * say. */
static int32_t partitions_of(enum kafka_topic t, int32_t fallback)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(K.cons, K.names[t], NULL);
	int32_t n = fallback;

	if (rd_kafka_metadata(K.cons, 0, rkt, &md, (int)W->cfg->kafka_timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (md->topic_cnt == 1 && md->topics[0].partition_cnt > 0)
			n = md->topics[0].partition_cnt;
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return n;
}

static int assign(void)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(K.interest_parts + 2);
	rd_kafka_resp_err_t e;

	rd_kafka_topic_partition_list_add(l, K.names[KT_NODES], 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
	for (int32_t p = 0; p < K.interest_parts; p++)
		rd_kafka_topic_partition_list_add(l, K.names[KT_INTEREST], p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_topic_partition_list_add(l, K.names[KT_INBOX], (int32_t)W->cfg->node_id)->offset =
		RD_KAFKA_OFFSET_STORED;
	/* The state partitions and our inbox: caught up once each was read to its end (the inbox's end also says
	 * its committed offset was found and fetching works, so records sent to us from now on are read). */
	K.eof_left = (uint32_t)K.interest_parts + 2;
	K.inbox_live[W->cfg->node_id] = false;
	K.inbox_assigned_ms[W->cfg->node_id] = loop_now();
	e = rd_kafka_assign(K.cons, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		log_error(0, "Kafka: cannot assign the cluster's partitions: %s", rd_kafka_err2str(e));
		return -EIO;
	}
	return 0;
}

static void arm(void)
{
	struct io_uring_sqe *sqe;

	if (K.armed || K.efd < 0)
		return;
	sqe = loop_sqe();
	io_uring_prep_read(sqe, K.efd, &K.efd_val, sizeof(K.efd_val), 0);
	io_uring_sqe_set_data64(sqe, ud_make(K.kind, 0, 0));
	K.armed = true;
}

static enum kafka_topic topic_of(const rd_kafka_message_t *m)
{
	const char *n;

	if (!m->rkt)
		return KT_COUNT; /* an error of the consumer itself, not of a partition */
	n = rd_kafka_topic_name(m->rkt);
	for (int t = 0; t < KT_COUNT; t++)
		if (strcmp(n, K.names[t]) == 0)
			return (enum kafka_topic)t;
	return KT_COUNT;
}

static void consumed(rd_kafka_message_t *m)
{
	enum kafka_topic t = topic_of(m);

	if (t == KT_INBOX && m->partition >= 0 && m->partition < CLUSTER_MAX_NODES &&
	    (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF))
		K.inbox_live[m->partition] = true;
	if (t == KT_INBOX && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->partition != (int32_t)W->cfg->node_id)
		return; /* an adopted inbox */
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		/* A partition signals its end again after every new record: count each one once. */
		if (t == KT_COUNT || m->partition < 0 || m->partition >= MAX_INTEREST_PARTS || K.eof_seen[t][m->partition])
			return;
		K.eof_seen[t][m->partition] = true;
		if (!K.caught_up && K.eof_left && --K.eof_left == 0) {
			K.caught_up = true;
			K.ops->caught_up();
		}
		return;
	}
	if (m->err) {
		log_warn(0, "Kafka: consuming %s: %s", t < KT_COUNT ? K.names[t] : "(consumer)", rd_kafka_message_errstr(m));
		return;
	}
	K.consumed++;
	K.consumed_bytes += m->len + m->key_len;
	if (t == KT_INBOX)
		K.ops->inbox((int)m->partition, m->offset, m->payload, m->len);
	else if (t < KT_COUNT)
		K.ops->state(t, m->key, m->key_len, m->payload, m->payload ? m->len : 0);
}

/* Drain both handles: delivery reports, logs, errors, records. librdkafka signals the eventfd only when a queue
 * goes from empty to non-empty, so everything queued must be taken now. */
static void drain(void)
{
	rd_kafka_message_t *m;

	while (rd_kafka_poll(K.prod, 0) > 0)
		;
	while ((m = rd_kafka_consumer_poll(K.cons, 0))) {
		consumed(m);
		rd_kafka_message_destroy(m);
	}
	for (int j = 0; j < CLUSTER_MAX_NODES; j++) {
		while (K.adopt[j] && (m = rd_kafka_consumer_poll(K.adopt[j], 0))) {
			consumed(m);
			rd_kafka_message_destroy(m);
		}
	}
}

static void on_cqe(uint64_t ud, struct io_uring_cqe *cqe)
{
	(void)ud;
	(void)cqe;
	K.armed = false;
	drain();
	arm();
}

static void commit_one(rd_kafka_t *rk, int node)
{
	rd_kafka_topic_partition_list_t *l;

	if (!rk || K.commit_next[node] <= K.committed[node])
		return;
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, K.names[KT_INBOX], node)->offset = K.commit_next[node];
	(void)rd_kafka_commit(rk, l, 1);
	rd_kafka_topic_partition_list_destroy(l);
	K.committed[node] = K.commit_next[node];
}

/* Assign rk's partitions again at the positions reached, but the inbox of node at its committed offset, which
 * librdkafka then fetches anew (INBOX_STALL_MS). */
static void reassign(rd_kafka_t *rk, int node)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_resp_err_t e;

	if (rd_kafka_assignment(rk, &l) || !l)
		return;
	(void)rd_kafka_position(rk, l);
	for (int i = 0; i < l->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &l->elems[i];

		if (strcmp(tp->topic, K.names[KT_INBOX]) == 0)
			tp->offset = RD_KAFKA_OFFSET_STORED;
		else if (tp->offset < 0)
			tp->offset = RD_KAFKA_OFFSET_BEGINNING; /* nothing read yet: from the start, as first assigned */
	}
	e = rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	K.inbox_reassigns++;
	log_warn(0, "Kafka: the inbox of node %d is not read %d ms after it was assigned (its committed offset was "
		"not fetched); assigned again%s%s", node, INBOX_STALL_MS, e ? ": " : "", e ? rd_kafka_err2str(e) : "");
}

/* Once a tick (not every loop turn): inboxes that never started being read. */
static void check_stalled(void)
{
	uint64_t now = loop_now();

	for (int j = 0; j < CLUSTER_MAX_NODES; j++) {
		rd_kafka_t *rk = j == (int)W->cfg->node_id ? K.cons : K.adopt[j];

		if (!rk || K.inbox_live[j] || now - K.inbox_assigned_ms[j] < INBOX_STALL_MS)
			continue;
		K.inbox_assigned_ms[j] = now;
		reassign(rk, j);
	}
}

static void flush(void)
{
	uint64_t now = loop_now();

	if (now - K.commit_ms >= COMMIT_EVERY_MS) {
		commit_one(K.cons, (int)W->cfg->node_id);
		for (int j = 0; j < CLUSTER_MAX_NODES; j++)
			commit_one(K.adopt[j], j);
		K.commit_ms = now;
	}
	/* Records produced this turn leave now, not after linger, when nothing else is queued behind them. */
	arm();
}

int kafka_init(const kafka_ops_t *ops)
{
	static const char *suffix[KT_COUNT] = { "nodes", "interest", "inbox" };
	int32_t n_inbox;
	int rc;

	memset(&K, 0, sizeof(K));
	K.ops = ops;
	K.efd = -1;
	for (int j = 0; j < CLUSTER_MAX_NODES; j++)
		K.committed[j] = K.commit_next[j] = -1;
	for (int t = 0; t < KT_COUNT; t++)
		snprintf(K.names[t], sizeof(K.names[t]), "%s.%s", W->cfg->kafka_topic_prefix, suffix[t]);
	if ((rc = make_producer()) < 0 || (rc = make_consumer()) < 0)
		goto err;
	while ((rc = create_topics()) == -EAGAIN && !loop_stopping())
		sleep(2);
	if (rc < 0)
		goto err;
	K.interest_parts = partitions_of(KT_INTEREST, STATE_PARTITIONS);
	/* Node i's inbox is partition i: a topic made with fewer partitions cannot carry this node's messages. */
	n_inbox = partitions_of(KT_INBOX, CLUSTER_MAX_NODES);
	if (n_inbox <= (int32_t)W->cfg->node_id) {
		log_error(0, "Kafka: topic %s has %d partitions, node_id %u needs at least %u (ringmq makes it with %d); "
			"add partitions (kafka-topics.sh --alter --partitions %d) or use a new kafka_topic_prefix",
			K.names[KT_INBOX], n_inbox, W->cfg->node_id, W->cfg->node_id + 1, CLUSTER_MAX_NODES,
			CLUSTER_MAX_NODES);
		rc = -EINVAL;
		goto err;
	}
	if (K.interest_parts > MAX_INTEREST_PARTS) {
		log_error(0, "Kafka: topic %s has %d partitions, ringmq reads at most %d; recreate it with fewer",
			K.names[KT_INTEREST], K.interest_parts, MAX_INTEREST_PARTS);
		rc = -EINVAL;
		goto err;
	}
	if ((rc = assign()) < 0)
		goto err;
	K.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (K.efd < 0) {
		rc = -errno;
		log_error(errno, "Kafka: eventfd");
		goto err;
	}
	rd_kafka_queue_io_event_enable(K.prod_q, K.efd, "\1\0\0\0\0\0\0\0", 8);
	rd_kafka_queue_io_event_enable(K.cons_q, K.efd, "\1\0\0\0\0\0\0\0", 8);
	K.kind = loop_register("kafka", on_cqe);
	loop_on_flush(flush, LOOP_ORDER_RDS);
	loop_on_tick(check_stalled);
	drain();
	arm();
	log_info("Kafka %s: topics %s.{nodes,interest,inbox}, node %u", W->cfg->kafka_brokers,
		W->cfg->kafka_topic_prefix, W->cfg->node_id);
	return 0;
err:
	kafka_finish(0);
	return rc;
}

void kafka_finish(uint32_t timeout_ms)
{
	for (int j = 0; j < CLUSTER_MAX_NODES; j++)
		kafka_unadopt(j);
	if (K.prod && timeout_ms)
		rd_kafka_flush(K.prod, (int)timeout_ms);
	if (K.cons) {
		rd_kafka_queue_io_event_enable(K.cons_q, -1, NULL, 0);
		rd_kafka_queue_destroy(K.cons_q);
		(void)rd_kafka_consumer_close(K.cons);
		rd_kafka_destroy(K.cons);
	}
	if (K.prod) {
		rd_kafka_queue_io_event_enable(K.prod_q, -1, NULL, 0);
		rd_kafka_queue_destroy(K.prod_q);
		rd_kafka_destroy(K.prod);
	}
	if (K.efd >= 0)
		close(K.efd);
	K.prod = K.cons = NULL;
	K.efd = -1;
}

int kafka_produce(enum kafka_topic t, int32_t partition, const void *key, size_t klen, const void *val,
	size_t vlen, void *opaque)
{
	rd_kafka_resp_err_t e = rd_kafka_producev(K.prod, RD_KAFKA_V_TOPIC(K.names[t]),
		RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
		RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);

	if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return -ENOBUFS;
	if (e) {
		log_warn(0, "Kafka: cannot produce to %s: %s", K.names[t], rd_kafka_err2str(e));
		return -EIO;
	}
	K.pending++;
	K.produced++;
	K.produced_bytes += klen + vlen;
	return 0;
}

void kafka_commit(int node, int64_t next_offset)
{
	if (node >= 0 && node < CLUSTER_MAX_NODES && next_offset > K.commit_next[node])
		K.commit_next[node] = next_offset;
}

int kafka_adopt(int node)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t e;

	if (node < 0 || node >= CLUSTER_MAX_NODES || K.adopt[node])
		return node < 0 || node >= CLUSTER_MAX_NODES ? -EINVAL : 0;
	K.adopt[node] = new_consumer(node, &K.adopt_q[node]);
	if (!K.adopt[node])
		return -EIO;
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, K.names[KT_INBOX], node)->offset = RD_KAFKA_OFFSET_STORED;
	K.inbox_live[node] = false;
	K.inbox_assigned_ms[node] = loop_now();
	e = rd_kafka_assign(K.adopt[node], l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		log_error(0, "Kafka: cannot read the inbox of node %d: %s", node, rd_kafka_err2str(e));
		kafka_unadopt(node);
		return -EIO;
	}
	rd_kafka_queue_io_event_enable(K.adopt_q[node], K.efd, "\1\0\0\0\0\0\0\0", 8);
	K.committed[node] = K.commit_next[node] = -1;
	drain();
	return 0;
}

void kafka_unadopt(int node)
{
	if (node < 0 || node >= CLUSTER_MAX_NODES || !K.adopt[node])
		return;
	commit_one(K.adopt[node], node);
	rd_kafka_queue_io_event_enable(K.adopt_q[node], -1, NULL, 0);
	rd_kafka_queue_destroy(K.adopt_q[node]);
	(void)rd_kafka_consumer_close(K.adopt[node]);
	rd_kafka_destroy(K.adopt[node]);
	K.adopt[node] = NULL;
	K.adopt_q[node] = NULL;
}

bool kafka_adopting(int node)
{
	return node >= 0 && node < CLUSTER_MAX_NODES && K.adopt[node] != NULL;
}

const char *kafka_topic_name(enum kafka_topic t)
{
	return K.names[t];
}

uint32_t kafka_pending(void)
{
	return K.pending;
}

bool kafka_caught_up(void)
{
	return K.caught_up;
}

/* Records of node's inbox not yet read here: its end as last fetched minus our position (locally known, no
 * request; 0 before the first fetch). */
static int64_t lag_of(rd_kafka_t *rk, int node)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	int64_t lo = 0, hi = 0, lag = 0;
	rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, K.names[KT_INBOX], node);

	if (rd_kafka_position(rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR && tp->offset >= 0 &&
	    rd_kafka_get_watermark_offsets(rk, K.names[KT_INBOX], node, &lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    hi > tp->offset)
		lag = hi - tp->offset;
	rd_kafka_topic_partition_list_destroy(l);
	return lag;
}

json_t *kafka_json(void)
{
	int64_t lag = 0;

	for (int j = 0; j < CLUSTER_MAX_NODES; j++) {
		rd_kafka_t *rk = j == (int)W->cfg->node_id ? K.cons : K.adopt[j];

		if (rk)
			lag += lag_of(rk, j);
	}
	return json_pack("{sI sI sI sI sI sI sI sI sI sI}", "produced", (json_int_t)K.produced, "produced_bytes",
		(json_int_t)K.produced_bytes, "acknowledged", (json_int_t)K.acked, "errors", (json_int_t)K.failed,
		"pending", (json_int_t)K.pending, "consumed", (json_int_t)K.consumed, "consumed_bytes",
		(json_int_t)K.consumed_bytes, "lag", (json_int_t)lag, "commit_errors", (json_int_t)K.commit_errors,
		"inbox_reassigns", (json_int_t)K.inbox_reassigns);
}

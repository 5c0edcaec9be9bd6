/*
 * rmq-kafka.c — a small librdkafka tool for the tests and for scripts/kafka: topic administration, and a check
 * that the librdkafka this machine has can use every Kafka feature ringmq relies on, against a real cluster.
 *
 *   rmq-kafka -b BOOTSTRAP create-topic NAME PARTITIONS REPLICATION [KEY=VALUE...]
 *   rmq-kafka -b BOOTSTRAP delete-topic NAME
 *   rmq-kafka -b BOOTSTRAP topic-config NAME        print the topic's configuration, "key=value" per line
 *   rmq-kafka -b BOOTSTRAP check [PREFIX]           the feature check below; one "ok"/"FAIL" line per step
 *
 * The check creates PREFIX.data (3 partitions) and PREFIX.compact (cleanup.policy=compact), with the
 * cluster's default replication, and then, each step a line:
 *   - produce with enable.idempotence=true and acks=all, every delivery report a success, no fatal error;
 *   - consume in a group with partition.assignment.strategy=cooperative-sticky and a group.instance.id
 *     (static membership), the rebalance callback answering with incremental assign/unassign;
 *   - commit synchronously and read the committed offsets back (rd_kafka_committed);
 *   - close, rejoin with the same group.instance.id: resume at the committed offsets, nothing read twice,
 *     the consumer queue's readiness signalled through rd_kafka_queue_io_event_enable into an eventfd (how the
 *     worker's io_uring loop will wait for librdkafka, docs/STYLE.md rule 13);
 *   - a second member joins: a cooperative (incremental) rebalance, the first member keeps part of its
 *     partitions without losing all of them first;
 *   - the compacted topic: keyed records and a tombstone go in, a record without a key is refused, and the
 *     topic's configuration reads back cleanup.policy=compact.
 * Topics are deleted at the end. The check gives up after CHECK_TIME_S, with a FAIL line naming the step that
 * was running. Exit codes: 0 all done/ok, 1 usage, 2 a step failed (or an administrative request did).
 */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define TIMEOUT_MS     30000
#define CHECK_MESSAGES 300
#define CHECK_PARTS    3
#define CHECK_TIME_S   100 /* the whole check; a step still running then is reported as hung */

static const char *bootstrap;
static bool debug;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rmq-kafka: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char err[512];
	if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
		die("%s=%s: %s", key, value, err);
}

static rd_kafka_conf_t *conf_base(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	conf_set(conf, "bootstrap.servers", bootstrap);
	conf_set(conf, "client.id", "rmq-kafka");
	if (debug)
		conf_set(conf, "debug", "broker,protocol,cgrp,eos");
	return conf;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
	if (!rk)
		die("rd_kafka_new: %s", err);
	return rk;
}

/* --- administration --- */

static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TIMEOUT_MS + 5000);
	if (!ev)
		die("no answer from the cluster within %d ms", TIMEOUT_MS + 5000);
	if (rd_kafka_event_type(ev) != type)
		die("unexpected admin event %s", rd_kafka_event_name(ev));
	if (rd_kafka_event_error(ev))
		die("%s", rd_kafka_event_error_string(ev));
	return ev;
}

static rd_kafka_AdminOptions_t *admin_opts(rd_kafka_t *rk, rd_kafka_admin_op_t op)
{
	char err[512];
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
	if (rd_kafka_AdminOptions_set_request_timeout(o, TIMEOUT_MS, err, sizeof(err)) ||
		(op != RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS &&
			rd_kafka_AdminOptions_set_operation_timeout(o, TIMEOUT_MS, err, sizeof(err))))
		die("admin options: %s", err);
	return o;
}

/* Returns 0, or the error code for one topic (the name is in the message); configs are "key=value". */
static rd_kafka_resp_err_t topic_create(rd_kafka_t *rk, const char *name, int parts, int repl,
	char *const *configs, int nconfigs, bool quiet)
{
	char err[512];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, parts, repl, err, sizeof(err));
	if (!nt)
		die("topic %s: %s", name, err);
	for (int i = 0; i < nconfigs; i++) {
		const char *eq = strchr(configs[i], '=');
		if (!eq)
			die("topic %s: config %s is not KEY=VALUE", name, configs[i]);
		char *key = strndup(configs[i], (size_t)(eq - configs[i]));
		if (!key || rd_kafka_NewTopic_set_config(nt, key, eq + 1))
			die("topic %s: bad config %s", name, configs[i]);
		free(key);
	}
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = admin_opts(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_CreateTopics(rk, &nt, 1, o, q);
	rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT);
	size_t n;
	const rd_kafka_topic_result_t **tr =
		rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
	rd_kafka_resp_err_t rc = n == 1 ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
	if (rc && !quiet)
		fprintf(stderr, "rmq-kafka: create topic %s: %s\n", name,
			n == 1 ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
	rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	rd_kafka_NewTopic_destroy(nt);
	return rc;
}

static rd_kafka_resp_err_t topic_delete(rd_kafka_t *rk, const char *name)
{
	rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(name);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = admin_opts(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
	rd_kafka_DeleteTopics(rk, &dt, 1, o, q);
	rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT);
	size_t n;
	const rd_kafka_topic_result_t **tr =
		rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
	rd_kafka_resp_err_t rc = n == 1 ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
	if (rc)
		fprintf(stderr, "rmq-kafka: delete topic %s: %s\n", name,
			n == 1 ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
	rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	rd_kafka_DeleteTopic_destroy(dt);
	return rc;
}

/* The value of one configuration key of a topic (malloc'd, NULL if unset), or every key printed (key NULL). */
static char *topic_config(rd_kafka_t *rk, const char *name, const char *key)
{
	rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = admin_opts(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
	rd_kafka_DescribeConfigs(rk, &cr, 1, o, q);
	rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT);
	size_t nres, nent;
	const rd_kafka_ConfigResource_t **res =
		rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nres);
	if (nres != 1 || rd_kafka_ConfigResource_error(res[0]))
		die("describe configs of %s: %s", name,
			nres == 1 ? rd_kafka_ConfigResource_error_string(res[0]) : "no result");
	const rd_kafka_ConfigEntry_t **ents = rd_kafka_ConfigResource_configs(res[0], &nent);
	char *found = NULL;
	for (size_t i = 0; i < nent; i++) {
		const char *k = rd_kafka_ConfigEntry_name(ents[i]), *v = rd_kafka_ConfigEntry_value(ents[i]);
		if (!key)
			printf("%s=%s\n", k, v ? v : "");
		else if (!strcmp(k, key) && v)
			found = strdup(v);
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	rd_kafka_ConfigResource_destroy(cr);
	return found;
}

/* --- the feature check --- */

static int failures;
static const char *volatile current_step = "start";

static void on_alarm(int sig)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "FAIL %s: still running after %d s, the check gives up\n", current_step,
		CHECK_TIME_S);
	if (write(STDOUT_FILENO, line, (size_t)n) < 0)
		_exit(3);
	_exit(2);
}

static void step_begin(const char *what)
{
	current_step = what;
}

static void step(bool ok, const char *what, const char *fmt, ...)
{
	va_list ap;
	printf("%s %s", ok ? "ok  " : "FAIL", what);
	if (fmt && *fmt) {
		fputs(": ", stdout);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
	failures += !ok;
}

struct delivery {
	int ok, failed;
	rd_kafka_resp_err_t last_err;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct delivery *d = opaque;
	if (m->err) {
		d->failed++;
		d->last_err = m->err;
	} else {
		d->ok++;
	}
}

static rd_kafka_t *producer_new(struct delivery *d)
{
	rd_kafka_conf_t *conf = conf_base();
	conf_set(conf, "enable.idempotence", "true");
	conf_set(conf, "acks", "all");
	conf_set(conf, "linger.ms", "5");
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, d);
	return client_new(RD_KAFKA_PRODUCER, conf);
}

/* Produces and waits for its delivery report: the error, 0 on success. */
static rd_kafka_resp_err_t produce_one(rd_kafka_t *rk, struct delivery *d, const char *topic, int32_t part,
	const char *key, const char *value)
{
	int before = d->ok + d->failed;
	rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
		RD_KAFKA_V_KEY(key, key ? strlen(key) : 0), RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	if (e)
		return e;
	rd_kafka_flush(rk, TIMEOUT_MS);
	if (d->ok + d->failed == before)
		return RD_KAFKA_RESP_ERR__TIMED_OUT;
	return d->ok + d->failed == before + 1 && d->failed == 0 ? 0 : d->last_err;
}

struct member {
	rd_kafka_t *rk;
	const char *name;
	int assigned;       /* partitions currently assigned */
	int assigns, revokes; /* rebalance callbacks seen */
	int revoked_all;    /* revocations that took every partition held */
	bool cooperative;
	char error[256];
};

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
	void *opaque)
{
	struct member *m = opaque;
	rd_kafka_error_t *e = NULL;
	const char *proto = rd_kafka_rebalance_protocol(rk); /* NULL once the consumer is closing */
	if (proto)
		m->cooperative = !strcmp(proto, "COOPERATIVE");
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		m->assigns++;
		m->assigned += parts->cnt;
		if (m->cooperative)
			e = rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
	} else {
		m->revokes++;
		if (parts->cnt > 0 && parts->cnt == m->assigned)
			m->revoked_all++;
		m->assigned -= parts->cnt;
		if (m->cooperative)
			e = rd_kafka_incremental_unassign(rk, parts);
		else
			rd_kafka_assign(rk, NULL);
	}
	if (e) {
		snprintf(m->error, sizeof(m->error), "%s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

static void member_start(struct member *m, const char *name, const char *group, const char *instance,
	const char *topic)
{
	memset(m, 0, sizeof(*m));
	m->name = name;
	rd_kafka_conf_t *conf = conf_base();
	conf_set(conf, "group.id", group);
	conf_set(conf, "group.instance.id", instance);
	conf_set(conf, "partition.assignment.strategy", "cooperative-sticky");
	conf_set(conf, "enable.auto.commit", "false");
	conf_set(conf, "auto.offset.reset", "earliest");
	conf_set(conf, "session.timeout.ms", "10000");
	conf_set(conf, "heartbeat.interval.ms", "500");
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_opaque(conf, m);
	m->rk = client_new(RD_KAFKA_CONSUMER, conf);
	rd_kafka_poll_set_consumer(m->rk);
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(m->rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (e)
		die("%s: subscribe: %s", name, rd_kafka_err2str(e));
}

/* Polls once; counts a message whose value starts with "m" into seen[] (index from the value); errors other
 * than end-of-partition go to m->error. Returns true if a message came. */
static bool member_poll(struct member *m, int timeout_ms, int *seen, int nseen)
{
	rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, timeout_ms);
	if (!msg)
		return false;
	bool got = false;
	if (msg->err) {
		if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			snprintf(m->error, sizeof(m->error), "%s", rd_kafka_message_errstr(msg));
	} else {
		got = true;
		int i = -1;
		if (msg->len > 1 && ((char *)msg->payload)[0] == 'm')
			i = (int)strtol((char *)msg->payload + 1, NULL, 10);
		if (seen && i >= 0 && i < nseen)
			seen[i]++;
	}
	rd_kafka_message_destroy(msg);
	return got;
}

static void member_close(struct member *m)
{
	rd_kafka_consumer_close(m->rk);
	rd_kafka_destroy(m->rk);
	m->rk = NULL;
}

/* Sum of committed offsets on topic's partitions (-1 if any is missing), as the group coordinator has them. */
static int64_t committed_total(rd_kafka_t *rk, const char *topic, int parts)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
	for (int p = 0; p < parts; p++)
		rd_kafka_topic_partition_list_add(l, topic, p);
	rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, TIMEOUT_MS);
	int64_t sum = 0;
	for (int p = 0; p < parts && !e; p++) {
		if (l->elems[p].err || l->elems[p].offset < 0)
			sum = -1;
		if (sum >= 0)
			sum += l->elems[p].offset;
	}
	rd_kafka_topic_partition_list_destroy(l);
	return e ? -1 : sum;
}

static int64_t high_total(rd_kafka_t *rk, const char *topic, int parts)
{
	int64_t sum = 0, lo, hi;
	for (int p = 0; p < parts; p++) {
		if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, TIMEOUT_MS))
			return -1;
		sum += hi;
	}
	return sum;
}

static int check(const char *prefix)
{
	char data[200], compact[200], group[200], inst1[200], inst2[200], msg[32];
	snprintf(data, sizeof(data), "%s.data", prefix);
	snprintf(compact, sizeof(compact), "%s.compact", prefix);
	snprintf(group, sizeof(group), "%s.group", prefix);
	snprintf(inst1, sizeof(inst1), "%s.member-1", prefix);
	snprintf(inst2, sizeof(inst2), "%s.member-2", prefix);
	printf("librdkafka %s\n", rd_kafka_version_str());
	signal(SIGALRM, on_alarm);
	alarm(CHECK_TIME_S);

	struct delivery d = { 0 };
	step_begin("create topics");
	rd_kafka_t *prod = producer_new(&d);
	char *compact_cfg[] = { "cleanup.policy=compact" };
	rd_kafka_resp_err_t e1 = topic_create(prod, data, CHECK_PARTS, -1, NULL, 0, false);
	rd_kafka_resp_err_t e2 = topic_create(prod, compact, 1, -1, compact_cfg, 1, false);
	step(!e1 && !e2, "create topics", "%s (%d partitions), %s (compacted)", data, CHECK_PARTS, compact);
	if (e1 || e2)
		return 2;

	/* Idempotent, acks=all. */
	step_begin("idempotent produce, acks=all");
	double t0 = now();
	for (int i = 0; i < CHECK_MESSAGES; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		rd_kafka_resp_err_t e = rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(data), RD_KAFKA_V_KEY(msg, strlen(msg)),
			RD_KAFKA_V_VALUE(msg, strlen(msg)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (e)
			die("produce: %s", rd_kafka_err2str(e));
		rd_kafka_poll(prod, 0);
	}
	rd_kafka_flush(prod, TIMEOUT_MS);
	char fatal[512] = "";
	rd_kafka_resp_err_t fe = rd_kafka_fatal_error(prod, fatal, sizeof(fatal));
	int64_t high = high_total(prod, data, CHECK_PARTS);
	step(d.ok == CHECK_MESSAGES && !d.failed && !fe && high == CHECK_MESSAGES,
		"idempotent produce, acks=all", "%d delivered, %d failed (%s), fatal: %s, high watermarks %" PRId64
		", %.2f s", d.ok, d.failed, rd_kafka_err2str(d.last_err), fe ? fatal : "none", high, now() - t0);

	/* A group member with cooperative-sticky and static membership reads everything, commits. */
	step_begin("group consume, cooperative-sticky, group.instance.id");
	int seen[CHECK_MESSAGES + 1] = { 0 };
	struct member a, b;
	t0 = now();
	member_start(&a, "member-1", group, inst1, data);
	int got = 0;
	double deadline = now() + TIMEOUT_MS / 1000.0;
	while (got < CHECK_MESSAGES && now() < deadline)
		got += member_poll(&a, 200, seen, CHECK_MESSAGES);
	int dup = 0;
	for (int i = 0; i < CHECK_MESSAGES; i++)
		dup += seen[i] > 1;
	step(got == CHECK_MESSAGES && !dup && a.cooperative && a.assigned == CHECK_PARTS && !a.error[0],
		"group consume, cooperative-sticky, group.instance.id", "%d of %d read, %d twice, protocol %s, "
		"%d partitions assigned in %d assign calls, member id %s, %.2f s%s%s", got, CHECK_MESSAGES, dup,
		a.cooperative ? "COOPERATIVE" : "EAGER", a.assigned, a.assigns, rd_kafka_memberid(a.rk), now() - t0,
		a.error[0] ? ", error: " : "", a.error);

	step_begin("commit offsets");
	rd_kafka_resp_err_t ce = rd_kafka_commit(a.rk, NULL, 0);
	int64_t committed = committed_total(a.rk, data, CHECK_PARTS);
	step(!ce && committed == CHECK_MESSAGES, "commit offsets", "commit: %s, committed offsets add up to %" PRId64,
		rd_kafka_err2str(ce), committed);

	step_begin("close the group member");
	member_close(&a);

	/* The same static member rejoins: it resumes at the commit; its queue wakes an eventfd. */
	step_begin("static member rejoins at the commit, queue wakes an eventfd");
	t0 = now();
	member_start(&a, "member-1", group, inst1, data);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(a.rk);
	static const uint64_t one = 1; /* an eventfd takes 8-byte writes only */
	rd_kafka_queue_io_event_enable(cq, efd, &one, sizeof(one));
	int again = 0;
	deadline = now() + 2.0;
	while (now() < deadline)
		again += member_poll(&a, 100, NULL, 0);
	e1 = produce_one(prod, &d, data, 0, "m300", "m300");
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	int woke = poll(&pfd, 1, TIMEOUT_MS);
	int fresh = 0;
	deadline = now() + 10.0;
	while (!fresh && now() < deadline)
		fresh += member_poll(&a, 200, seen, CHECK_MESSAGES + 1);
	step(!again && !e1 && woke == 1 && fresh == 1 && seen[CHECK_MESSAGES] == 1 && a.assigned == CHECK_PARTS,
		"static member rejoins at the commit, queue wakes an eventfd", "%d old messages read again, new one "
		"produced (%s), eventfd %s, read %d, %d partitions assigned, %.2f s", again, rd_kafka_err2str(e1),
		woke == 1 ? "readable" : "silent", fresh, a.assigned, now() - t0);

	/* A second member joins: cooperative rebalance, the first keeps some partitions throughout. */
	step_begin("cooperative rebalance on join");
	t0 = now();
	member_start(&b, "member-2", group, inst2, data);
	deadline = now() + TIMEOUT_MS / 1000.0;
	while ((b.assigned == 0 || a.assigned + b.assigned != CHECK_PARTS) && now() < deadline) {
		member_poll(&a, 50, NULL, 0);
		member_poll(&b, 50, NULL, 0);
	}
	step(b.assigned > 0 && a.assigned > 0 && a.assigned + b.assigned == CHECK_PARTS && !a.revoked_all &&
		!a.error[0] && !b.error[0], "cooperative rebalance on join", "member-1 holds %d, member-2 holds %d, "
		"member-1 revoked everything %d times (%d partial revokes), %.2f s", a.assigned, b.assigned,
		a.revoked_all, a.revokes - a.revoked_all, now() - t0);
	rd_kafka_queue_io_event_enable(cq, -1, NULL, 0);
	rd_kafka_queue_destroy(cq);
	close(efd);
	step_begin("close both group members");
	member_close(&a);
	member_close(&b);

	/* Compaction: keys and tombstones go in, keyless records are refused. */
	step_begin("compacted topic");
	e1 = produce_one(prod, &d, compact, 0, "k1", "v1");
	e2 = produce_one(prod, &d, compact, 0, "k1", "v2");
	rd_kafka_resp_err_t e3 = produce_one(prod, &d, compact, 0, "k2", NULL);
	int failed_before = d.failed;
	rd_kafka_resp_err_t e4 = produce_one(prod, &d, compact, 0, NULL, "no key");
	d.failed = failed_before;
	char *policy = topic_config(prod, compact, "cleanup.policy");
	fe = rd_kafka_fatal_error(prod, fatal, sizeof(fatal));
	step(!e1 && !e2 && !e3 && e4 && policy && !strcmp(policy, "compact") && !fe, "compacted topic",
		"keyed records %s/%s, tombstone %s, keyless record refused with %s, cleanup.policy=%s, producer fatal "
		"error: %s", rd_kafka_err2name(e1), rd_kafka_err2name(e2), rd_kafka_err2name(e3), rd_kafka_err2name(e4),
		policy ? policy : "?", fe ? fatal : "none");
	free(policy);

	step_begin("delete topics");
	topic_delete(prod, data);
	topic_delete(prod, compact);
	rd_kafka_destroy(prod);
	printf("%s\n", failures ? "librdkafka check FAILED" : "librdkafka check passed");
	return failures ? 2 : 0;
}

static void usage(void)
{
	fputs("usage: rmq-kafka [-d] -b BOOTSTRAP create-topic NAME PARTITIONS REPLICATION [KEY=VALUE...]\n"
	      "       rmq-kafka [-d] -b BOOTSTRAP delete-topic NAME\n"
	      "       rmq-kafka [-d] -b BOOTSTRAP topic-config NAME\n"
	      "       rmq-kafka [-d] -b BOOTSTRAP check [PREFIX]\n"
	      "  -d: librdkafka debug logs (broker,protocol,cgrp,eos) on stderr\n",
		stderr);
	exit(1);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "+b:d")) != -1) {
		if (opt == 'b')
			bootstrap = optarg;
		else if (opt == 'd')
			debug = true;
		else
			usage();
	}
	argv += optind;
	argc -= optind;
	if (!bootstrap || argc < 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *cmd = argv[0];
	if (!strcmp(cmd, "check")) {
		char prefix[100];
		if (argc > 1)
			snprintf(prefix, sizeof(prefix), "%s", argv[1]);
		else
			snprintf(prefix, sizeof(prefix), "rmq-kafka-check-%ld", (long)getpid());
		return check(prefix);
	}
	if (argc < 2)
		usage();
	rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf_base());
	int rc = 0;
	if (!strcmp(cmd, "create-topic") && argc >= 4) {
		rc = topic_create(rk, argv[1], atoi(argv[2]), atoi(argv[3]), argv + 4, argc - 4, false) ? 2 : 0;
	} else if (!strcmp(cmd, "delete-topic") && argc == 2) {
		rc = topic_delete(rk, argv[1]) ? 2 : 0;
	} else if (!strcmp(cmd, "topic-config") && argc == 2) {
		topic_config(rk, argv[1], NULL);
	} else {
		usage();
	}
	rd_kafka_destroy(rk);
	return rc;
}

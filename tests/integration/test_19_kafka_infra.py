"""The Kafka that ringmq clusters over (issue 10; scripts/kafka/README.md), before any broker code uses it: the
cluster scripts/kafka starts and tests/integration/kafkaserver.py drives, and the librdkafka 2.0.2 features
ringmq relies on, checked against it. Skipped without Java 17, Maven (or fetched jars) or kcat.

One node: topics are created as asked (partitions, replication, compaction; no auto-creation), durable
(acks=all, idempotent) produce and consume round-trip, a compacted topic really keeps only the last value per
key, a keyless record is refused by a compacted topic together with the rest of its batch, and `rmq-kafka
check` passes. Three nodes (one cluster for the class): a node SIGKILLed while a producer (acks=all,
idempotent) and a static group member (cooperative-sticky) keep going loses nothing and duplicates nothing, it
comes back on its port with its data and catches up; a cleanly stopped node likewise; `rmq-kafka check` passes
with replication 3 and min.insync.replicas 2."""
import queue
import subprocess
import sys
import threading
import time
import unittest

from kafkaserver import DURABLE, RMQ_KAFKA, KafkaCluster, kafka_missing

SKIP = kafka_missing()


def log(msg):
    sys.stderr.write('  [kafka] %s\n' % msg)


def rmq_kafka_check(test, kafka, prefix):
    try:  # rmq-kafka gives up by itself after 100 s, naming the step that hung
        r = subprocess.run([RMQ_KAFKA, '-b', kafka.bootstrap, 'check', prefix], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired as e:
        test.fail('rmq-kafka check hung:\n%s\n%s' % (e.stdout, (e.stderr or '')[-3000:]))
    test.assertEqual(r.returncode, 0, 'rmq-kafka check failed:\n%s\n%s' % (r.stdout, r.stderr[-3000:]))
    test.assertIn('librdkafka check passed', r.stdout)
    test.assertNotIn('FAIL', r.stdout)
    return r.stdout


@unittest.skipIf(SKIP, SKIP)
class OneNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.kafka = KafkaCluster(brokers=1).start()
        log('1 node up in %.1f s (Kafka %s)' % (time.monotonic() - t0, cls.kafka.info['version']))

    @classmethod
    def tearDownClass(cls):
        cls.kafka.cleanup()

    def test_topics_created_as_asked(self):
        k = self.kafka
        k.create_topic('one.plain', partitions=3)
        k.create_topic('one.compact', compacted=True, configs={'min.compaction.lag.ms': '0'})
        parts = k.partitions('one.plain')
        self.assertEqual([p['partition'] for p in parts], [0, 1, 2])
        self.assertTrue(all(p['replicas'] == [1] and p['isrs'] == [1] and p['leader'] == 1 for p in parts), parts)
        self.assertEqual(k.topic_config('one.plain')['cleanup.policy'], 'delete')
        cfg = k.topic_config('one.compact')
        self.assertEqual((cfg['cleanup.policy'], cfg['min.compaction.lag.ms']), ('compact', '0'))
        self.assertEqual(cfg['min.insync.replicas'], '1')
        with self.assertRaisesRegex(AssertionError, 'already exists'):
            k.create_topic('one.plain', partitions=3)
        # auto.create.topics.enable=false: a producer cannot make a topic by naming it.
        r = k.kcat(['-P', '-t', 'one.nonexistent'] + DURABLE + ['-X', 'message.timeout.ms=3000'], input='x\n')
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn('one.nonexistent', [t['topic'] for t in k.metadata()['topics']])

    def test_durable_produce_consume_roundtrip(self):
        k = self.kafka
        k.create_topic('one.roundtrip', partitions=3)
        keys = ['key-%d' % (i % 7) for i in range(200)]
        values = ['value-%03d' % i for i in range(200)]
        k.produce('one.roundtrip', values, keys=keys)
        got = k.consume('one.roundtrip')
        self.assertEqual(sorted(v for _, _, v in got), values)
        by_key = {}
        for part, key, value in got:
            by_key.setdefault(key, (part, []))[1].append(value)
            self.assertEqual(by_key[key][0], part, 'key %s in two partitions' % key)
        for key, (_, vals) in by_key.items():  # one key, one partition: its order is the produce order
            self.assertEqual(vals, [v for kk, v in zip(keys, values) if kk == key])

    def test_compacted_topic_keeps_the_last_value(self):
        k = self.kafka
        # Segments roll after 100 ms and any dirt is worth cleaning; the broker's cleaner looks every second
        # (log.cleaner.backoff.ms in scripts/kafka/start). Only rolled segments are cleaned: the last record
        # ('roll') opens a new segment so that the ones before it can be.
        k.create_topic('one.compacted', compacted=True, configs={'segment.ms': '100', 'min.compaction.lag.ms': '0',
                                                                 'min.cleanable.dirty.ratio': '0.01'})
        for i in range(5):
            k.produce('one.compacted', ['a%d' % i, 'b%d' % i], keys=['a', 'b'])
            time.sleep(0.15)
        k.produce('one.compacted', [None], keys=['b'])  # tombstone
        time.sleep(0.15)
        k.produce('one.compacted', ['x'], keys=['roll'])
        deadline = time.monotonic() + 30
        while True:
            got = k.consume('one.compacted')
            values = [(key, v) for _, key, v in got]
            if [kv for kv in values if kv[0] == 'a'] == [('a', 'a4')] and \
                    all(kv == ('b', None) for kv in values if kv[0] == 'b'):
                break
            self.assertLess(time.monotonic(), deadline, 'not compacted within 30 s: %s' % values)
            time.sleep(0.5)
        self.assertEqual(values[-1], ('roll', 'x'))
        log('compacted: %s' % values)

    def test_compacted_topic_refuses_a_keyless_batch(self):
        # A compacted topic refuses a record without a key, and with it every record of the same produce
        # batch (the broker validates batches whole): ringmq must key every record it writes to one.
        k = self.kafka
        k.create_topic('one.keyless', compacted=True)
        r = k.kcat(['-P', '-t', 'one.keyless', '-K', '\t', '-Z'] + DURABLE + ['-X', 'linger.ms=100'],
                   input='k1\tv1\n\tno key\nk2\tv2\n')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('failed to validate record', r.stderr)
        self.assertEqual(k.consume('one.keyless'), [])
        k.produce('one.keyless', ['v1'], keys=['k1'])
        self.assertEqual(k.consume('one.keyless'), [(0, 'k1', 'v1')])

    def test_librdkafka_features(self):
        out = rmq_kafka_check(self, self.kafka, 'one.check')
        self.assertIn('librdkafka 2.', out)


class GroupMember:
    """A kcat group member in the background (static membership, cooperative-sticky), collecting values."""

    def __init__(self, kafka, group, instance, topic):
        self.proc = subprocess.Popen(['kcat', '-b', kafka.bootstrap, '-G', group, topic, '-q', '-u', '-f', '%s\n',
                                      '-X', 'partition.assignment.strategy=cooperative-sticky',
                                      '-X', 'group.instance.id=' + instance, '-X', 'auto.offset.reset=earliest'],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = queue.Queue()
        self.err = []
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err.append), daemon=True)]
        for t in self.readers:
            t.start()

    @staticmethod
    def _read(f, put):
        for line in f:
            put(line.rstrip('\n'))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self.readers:
            t.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def collect(self, seen, want, timeout):
        """Add messages to seen (value -> count) until every value in want has come; False at the deadline."""
        deadline = time.monotonic() + timeout
        while not want <= seen.keys():
            try:
                v = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            seen[v] = seen.get(v, 0) + 1
        return True


@unittest.skipIf(SKIP, SKIP)
class ThreeNodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.kafka = KafkaCluster(brokers=3).start()
        log('3 nodes up in %.1f s' % (time.monotonic() - t0))

    @classmethod
    def tearDownClass(cls):
        cls.kafka.cleanup()

    def setUp(self):
        for n in self.kafka.nodes():  # a failed test may have left a node down
            self.kafka.start_node(n)

    def test_replication_settings(self):
        k = self.kafka
        k.create_topic('three.settings', partitions=3)
        parts = k.wait_isr('three.settings')
        self.assertTrue(all(sorted(p['replicas']) == [1, 2, 3] for p in parts), parts)
        self.assertEqual(k.topic_config('three.settings')['min.insync.replicas'], '2')
        self.assertEqual(len(k.metadata()['brokers']), 3)

    def test_sigkill_of_a_leader_loses_nothing(self):
        k = self.kafka
        topic = 'three.failover'
        k.create_topic(topic, partitions=3)
        parts = k.wait_isr(topic)
        victim = parts[0]['leader']
        # A kcat producer sends only once its input ends: each chunk is one kcat run, delivered before the next.
        consumer = GroupMember(k, 'three.failover.group', 'three.failover.member', topic)
        seen = {}
        try:
            batch = ['m%04d' % i for i in range(300)]
            k.produce(topic, batch[:100])
            self.assertTrue(consumer.collect(seen, set(batch[:100]), 60), 'before the kill: %d of 100 (%s)' %
                            (len(seen), consumer.err[-5:]))
            t0 = time.monotonic()
            k.kill(victim)
            for i in range(100, 200, 20):
                k.produce(topic, batch[i:i + 20])
            produced = time.monotonic() - t0
            self.assertTrue(consumer.collect(seen, set(batch[:200]), 60), 'node %d down: %d of 200 (%s)' %
                            (victim, len(seen), consumer.err[-5:]))
            failover = time.monotonic() - t0
            moved = k.partitions(topic)
            self.assertNotIn(victim, [p['leader'] for p in moved], moved)
            t1 = time.monotonic()
            k.start_node(victim)
            k.wait_isr(topic)
            rejoin = time.monotonic() - t1
            k.produce(topic, batch[200:])
            self.assertTrue(consumer.collect(seen, set(batch), 60), 'after the restart: %d of 300 (%s)' %
                            (len(seen), consumer.err[-5:]))
        finally:
            consumer.stop()
        log('node %d SIGKILLed: 100 more produced %.1f s and consumed %.1f s after the kill; back in every ISR '
            '%.1f s after its restart' % (victim, produced, failover, rejoin))
        self.assertEqual({v: n for v, n in seen.items() if n != 1}, {}, 'consumed more than once')
        stored = [v for _, _, v in k.consume(topic)]
        self.assertEqual(sorted(stored), batch, 'the topic holds each message once')

    def test_clean_stop_and_restart_of_a_node(self):
        k = self.kafka
        topic = 'three.stop'
        k.create_topic(topic, partitions=3)
        k.wait_isr(topic)
        t0 = time.monotonic()
        k.stop(3)  # SIGTERM: controlled shutdown, its leaderships handed over first
        stopped = time.monotonic() - t0
        k.produce(topic, ['s%d' % i for i in range(50)])  # 2 of 3 replicas: min.insync.replicas holds
        t1 = time.monotonic()
        k.start_node(3)
        parts = k.wait_isr(topic)
        log('node 3: controlled shutdown %.1f s, back in every ISR %.1f s after its start' %
            (stopped, time.monotonic() - t1))
        self.assertTrue(all(3 in p['isrs'] for p in parts), parts)
        self.assertEqual(sorted(v for _, _, v in k.consume(topic)), sorted('s%d' % i for i in range(50)))

    def test_librdkafka_features(self):
        rmq_kafka_check(self, self.kafka, 'three.check')


if __name__ == '__main__':
    unittest.main(verbosity=2)

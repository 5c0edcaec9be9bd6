"""A Kafka broker dies mid-stream under a ringmq cluster and comes back: nothing PUBACKed is lost.

Three Kafka brokers (KRaft, replication 3, min.insync.replicas 2: scripts/kafka/start) under two ringmqd nodes
and one Redis. A publisher on node 0 sends QoS 1 messages steadily to a subscriber online on node 1 and to a
persistent subscriber offline on node 1 (its copies go through node 1's inbox into Redis). Mid-stream the leader
of node 1's inbox partition is SIGKILLed: publishing goes on (two replicas in sync still acknowledge), then the
broker is started again and publishing goes on. Every PUBACKed message reaches both subscribers (duplicates
allowed at QoS 1, losses not). Then every Kafka broker stops: a cross-node message is not PUBACKed while Kafka
is away, the node logs it in one line naming kafka_brokers, and once Kafka is back the PUBACK comes and the
message arrives.
"""
import os
import threading
import time
import unittest

from harness import RedisServer, wait_until
import rawmqtt as R
from kafkaserver import KafkaCluster
from clusterlib import SKIP, ClusterMixin, Node


@unittest.skipIf(SKIP, SKIP)
class KafkaFaultTest(ClusterMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = KafkaCluster(brokers=3).start(timeout=120)
        cls.redis = RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.kafka.cleanup()

    def setUp(self):
        self.prefix = 'kf%d' % os.getpid()
        self.nodes = []
        self._clients = []
        self.addCleanup(self._close_clients)
        for i in range(2):
            n = Node(i, self.kafka, self.redis, self.prefix).start(timeout=90)
            self.nodes.append(n)
            self.addCleanup(self._stop, n)
        self.wait_cluster(2)

    def collect(self, r, into, stop):
        """Read r until stop is set, acknowledging; payloads into the set `into`."""
        while not stop.is_set():
            try:
                into.update(self.read_n(r, 1, timeout=0.5))
            except TimeoutError:
                pass
            except OSError:
                return

    def test_kafka_broker_killed_and_restarted_mid_stream(self):
        off = self.raw(1, 'kf-off', clean=False, expiry=3600)
        self.sub(off, 'kf/+')
        off.send(R.disconnect(5))
        off.close()
        on = self.raw(1, 'kf-on', clean=False, expiry=3600)
        self.sub(on, 'kf/+')
        self.interest_seen(0, 1)
        inbox = self.prefix + '.inbox'
        parts = self.kafka.wait_isr(inbox)
        leader = [p['leader'] for p in parts if p['partition'] == 1][0]

        got_on = set()
        stop_reading = threading.Event()
        reader = threading.Thread(target=self.collect, args=(on, got_on, stop_reading), daemon=True)
        reader.start()
        p = self.raw(0, 'kf-pub')
        acked = []
        refused = []
        stop = threading.Event()

        def publish():
            i = 0
            while not stop.is_set():
                body = b'%05d' % i
                p.send(R.publish('kf/x', body, qos=1, pid=(i % 60000) + 1, version=5))
                ack = p.expect(R.PUBACK, 60)
                (acked if ack.reason < 0x80 else refused).append(body)
                i += 1
                time.sleep(0.005)
        t = threading.Thread(target=publish, daemon=True)
        t.start()
        wait_until(lambda: len(acked) >= 100, 30, what='publishing under way')
        self.kafka.kill(leader)
        n_at_kill = len(acked)
        wait_until(lambda: len(acked) >= n_at_kill + 200, 90, what='publishing goes on without Kafka broker %d'
                   % leader)
        self.kafka.start_node(leader, timeout=90)
        n_at_restart = len(acked)
        wait_until(lambda: len(acked) >= n_at_restart + 200, 90, what='publishing goes on after the restart')
        stop.set()
        t.join(90)
        self.assertFalse(t.is_alive(), 'the publisher got its last PUBACK')

        try:
            wait_until(lambda: set(acked) <= got_on, 60, what='the online subscriber has every PUBACKed message')
        except AssertionError:
            pass  # the assertion below says what is missing
        stop_reading.set()
        reader.join(10)
        missing = sorted(set(acked) - got_on)
        self.assertEqual(missing, [], 'online subscriber: %d of %d PUBACKed messages lost (from %s)\n%s'
                         % (len(missing), len(acked), missing[:1], self.diag()))

        off = self.raw(1, 'kf-off', clean=False, expiry=3600)
        self.assertTrue(off.connack.session_present)
        got_off = self.read_until(off, acked)
        missing = sorted(set(acked) - got_off)
        self.assertEqual(missing, [], 'offline subscriber: %d of %d PUBACKed messages lost' % (len(missing),
                                                                                             len(acked)))
        self.assertEqual(refused, [], 'no publish refused while two replicas were in sync')

    def test_kafka_down_then_back_loses_nothing(self):
        """Every Kafka broker stopped: a message for another node is not acknowledged (nothing is PUBACKed that
        Kafka does not hold), the node says so in one line naming kafka_brokers; Kafka back: the PUBACKs come
        and the messages arrive."""
        s = self.raw(1, 'kd-sub', clean=False, expiry=3600)
        self.sub(s, 'kd/+')
        self.interest_seen(0, 1)
        p = self.raw(0, 'kd-pub')
        self.publish_all(p, 'kd/x', [b'before'])
        self.assertEqual(self.read_n(s, 1), [b'before'])
        self.kafka.stop()  # all three, controlled
        p.send(R.publish('kd/x', b'during', qos=1, pid=2, version=5))
        p.expect_nothing(3)  # not acknowledged while Kafka is away
        def log0():
            with open(self.nodes[0].log_path) as f:
                return f.read()
        wait_until(lambda: 'unreachable' in log0(), 30, what='node 0 logs that Kafka is unreachable')
        self.assertIn('check kafka_brokers', log0())
        self.kafka.start(timeout=120)
        ack = p.expect(R.PUBACK, 60)
        self.assertEqual((ack.pid, ack.reason), (2, 0))
        self.assertEqual(self.read_n(s, 1, timeout=60), [b'during'])


if __name__ == '__main__':
    unittest.main()

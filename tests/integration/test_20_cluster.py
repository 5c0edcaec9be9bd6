"""A cluster of ringmqd nodes over a real Kafka (KRaft, scripts/kafka) and one real Redis (ringmq only; skipped
without Java/Maven/kcat): messages cross nodes (paho and mosquitto clients), a persistent session offline on one
node continues on another with its queue in order, a client taking its session over on another node closes the
old connection (MQTT 5: 0x8E), retained messages and wills cross nodes, `ringmqctl cluster` shows every node, and
a node SIGKILLed mid-stream loses nothing that was PUBACKed (its sessions and inbox are adopted). Three nodes
share one Kafka broker and one Redis; each test uses its own topic prefix-free client IDs and topics.
"""
import os
import shutil
import subprocess
import threading
import time
import unittest

import harness
from harness import RedisServer, wait_until
import rawmqtt as R
from kafkaserver import KafkaCluster
from clusterlib import SKIP, ClusterMixin, Node

MOSQ_SUB = shutil.which('mosquitto_sub')
MOSQ_PUB = shutil.which('mosquitto_pub')


@unittest.skipIf(SKIP, SKIP)
class ClusterTest(ClusterMixin, unittest.TestCase):
    prefix_n = 0

    @classmethod
    def setUpClass(cls):
        cls.kafka = KafkaCluster(brokers=1).start()
        cls.redis = RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.kafka.cleanup()

    def setUp(self):
        ClusterTest.prefix_n += 1
        self.prefix = 'rt%d-%d' % (os.getpid(), ClusterTest.prefix_n)
        self.nodes = []
        for i in range(3):
            n = Node(i, self.kafka, self.redis, self.prefix).start(timeout=60)
            self.nodes.append(n)
            self.addCleanup(self._stop, n)
        self._clients = []
        self.addCleanup(self._close_clients)
        self.wait_cluster(3)  # every node sees every other before the test starts

    def test_messages_cross_nodes_in_order(self):
        s = self.raw(1, 'x-sub')
        self.sub(s, 'europe/ua/kyiv/1/+')
        self.interest_seen(0, 1)
        p = self.raw(0, 'x-pub')
        payloads = [b'm%03d' % i for i in range(50)]
        self.publish_all(p, 'europe/ua/kyiv/1/0', payloads)
        self.assertEqual(self.read_n(s, 50), payloads)

    @unittest.skipUnless(MOSQ_SUB and MOSQ_PUB, 'mosquitto clients missing')
    def test_mosquitto_clients_across_nodes(self):
        sub = subprocess.Popen([MOSQ_SUB, '-h', harness.HOST, '-p', str(self.nodes[2].port), '-t', 'mq/+', '-q',
                                '1', '-C', '3', '-W', '30', '-i', 'mq-sub'], stdout=subprocess.PIPE, text=True)
        try:
            self.interest_seen(1, 1)
            for i in range(3):
                subprocess.run([MOSQ_PUB, '-h', harness.HOST, '-p', str(self.nodes[1].port), '-t', 'mq/x', '-m',
                                'hi %d' % i, '-q', '1'], check=True, timeout=30)
            out, _ = sub.communicate(timeout=30)
        finally:
            sub.kill()
            sub.wait()
        self.assertEqual(out.split('\n')[:3], ['hi 0', 'hi 1', 'hi 2'])

    def test_persistent_session_moves_with_its_queue(self):
        s = self.raw(1, 'move-sub', clean=False, expiry=3600)
        self.sub(s, 'move/+')
        s.send(R.disconnect(5))
        s.close()
        self.interest_seen(0, 1)
        p = self.raw(0, 'move-pub')
        payloads = [b'q%02d' % i for i in range(20)]
        self.publish_all(p, 'move/x', payloads)
        s2 = self.raw(2, 'move-sub', clean=False, expiry=3600)
        self.assertTrue(s2.connack.session_present)
        self.assertEqual(self.read_n(s2, 20), payloads)
        # and it stays routed to its new node
        self.publish_all(p, 'move/x', [b'live'])
        self.assertEqual(self.read_n(s2, 1), [b'live'])

    def test_takeover_across_nodes(self):
        a = self.raw(0, 'tk', clean=False, expiry=3600)
        self.sub(a, 'tk/#')
        b = self.raw(2, 'tk', clean=False, expiry=3600)
        self.assertTrue(b.connack.session_present)
        packets = a.wait_closed(10)
        self.assertTrue(any(x.type == R.DISCONNECT and x.reason == 0x8E for x in packets), packets)
        p = self.raw(1, 'tk-pub')
        self.interest_seen(1, 1)
        self.publish_all(p, 'tk/1', [b'after takeover'])
        self.assertEqual(self.read_n(b, 1), [b'after takeover'])

    def test_retained_and_will_cross_nodes(self):
        p = self.raw(0, 'ret-pub')
        p.send(R.publish('ret/a', b'kept', qos=1, pid=1, retain=True, version=5))
        p.expect(R.PUBACK)
        s = self.raw(2, 'ret-sub')
        # the retained message reaches node 2 through Kafka: a subscriber there gets it once it has arrived
        got = []

        def try_sub():
            s.send(R.subscribe(s.next_pid, [('ret/#', 1)], version=5))
            s.next_pid += 1
            s.expect(R.SUBACK)
            try:
                got.extend(self.read_n(s, 1, timeout=1))
            except TimeoutError:
                return False
            return True
        wait_until(try_sub, 15, 0.2, 'retained message on node 2')
        self.assertEqual(got[:1], [b'kept'])
        w = self.raw(1, 'will-watch')
        self.sub(w, 'wills/+')
        self.interest_seen(0, 2)
        dying = self.raw(0, 'dying', will={'topic': 'wills/dying', 'payload': b'bye', 'qos': 1})
        dying.close()  # no DISCONNECT: the will goes
        self.assertEqual(self.read_n(w, 1), [b'bye'])

    def test_node_sigkilled_mid_stream_loses_nothing(self):
        """A persistent subscriber offline on node 1, a publisher on node 0 sending steadily; node 1 is SIGKILLed
        mid-stream. Its session and inbox are adopted: every PUBACKed message reaches the subscriber when it
        comes back (on node 2), duplicates allowed, losses not."""
        s = self.raw(1, 'k-sub', clean=False, expiry=3600)
        self.sub(s, 'k/+')
        s.send(R.disconnect(5))
        s.close()
        self.interest_seen(0, 1)
        p = self.raw(0, 'k-pub')
        acked = []
        stop = threading.Event()

        def publish():
            i = 0
            while not stop.is_set() and i < 400:
                body = b'%04d' % i
                p.send(R.publish('k/x', body, qos=1, pid=(i % 60000) + 1, version=5))
                if p.expect(R.PUBACK, 30).reason < 0x80:
                    acked.append(body)
                i += 1
                time.sleep(0.01)
        t = threading.Thread(target=publish, daemon=True)
        t.start()
        wait_until(lambda: len(acked) >= 50, 30, what='publishing under way')
        self.nodes[1].crash()
        wait_until(lambda: len(acked) >= 250, 60, what='publishing goes on after the kill')
        stop.set()
        t.join(60)
        # adopted by the lowest live node (0)
        wait_until(lambda: any(x['node'] == 1 and x.get('adopted_here')
                               for x in self.nodes[0].ctl('cluster')['nodes']), 30, what='node 1 adopted')
        s2 = self.raw(2, 'k-sub', clean=False, expiry=3600)
        self.assertTrue(s2.connack.session_present)
        got = self.read_until(s2, acked)
        missing = sorted(set(acked) - got)
        self.assertEqual(missing, [], '%d of %d PUBACKed messages lost' % (len(missing), len(acked)))

    def test_subscriber_moves_before_its_dead_node_is_adopted(self):
        """Node 1 dies with a persistent subscriber online; the subscriber reconnects to node 2 at once (before
        node 1 is judged dead and adopted): it takes its session over without node 1's answer, and every
        message PUBACKed before, during and after the move reaches it."""
        s = self.raw(1, 'mv-sub', clean=False, expiry=3600)
        self.sub(s, 'mv/+')
        self.interest_seen(0, 1)
        p = self.raw(0, 'mv-pub')
        before = [b'b%02d' % i for i in range(5)]
        self.publish_all(p, 'mv/x', before)
        self.assertEqual(self.read_n(s, 5), before)
        self.nodes[1].crash()
        during = [b'd%02d' % i for i in range(5)]
        self.publish_all(p, 'mv/x', during)
        s2 = self.raw(2, 'mv-sub', clean=False, expiry=3600)
        self.assertTrue(s2.connack.session_present)
        after = [b'a%02d' % i for i in range(5)]
        self.publish_all(p, 'mv/x', after)
        got = self.read_until(s2, during + after, 30)
        missing = sorted(set(during + after) - got)
        self.assertEqual(missing, [], 'PUBACKed messages lost\n%s' % self.diag())

    def test_shared_subscription_across_nodes(self):
        a = self.raw(1, 'sh-a')
        self.sub(a, '$share/g/sh/+')
        b = self.raw(2, 'sh-b')
        self.sub(b, '$share/g/sh/+')
        # node 0 has no member: it knows the group through the other nodes' records
        wait_until(lambda: self.nodes[0].ctl('cluster')['remote_group_nodes'] >= 2, 15,
                   what='node 0 knows the group\'s members on nodes 1 and 2')
        p = self.raw(0, 'sh-pub')
        payloads = [b's%02d' % i for i in range(20)]
        self.publish_all(p, 'sh/x', payloads)
        got_a, got_b = [], []
        deadline = time.monotonic() + 15
        while len(got_a) + len(got_b) < 20 and time.monotonic() < deadline:
            for r, got in ((a, got_a), (b, got_b)):
                try:
                    got.extend(self.read_n(r, 1, timeout=0.2))
                except TimeoutError:
                    pass
        self.assertEqual(sorted(got_a + got_b), payloads, 'each message once, to one member (%r %r %s)' % (got_a, got_b, [
            (n.node_id, n.ctl('stats')['total'].get('msgs_out'), n.ctl('stats')['total'].get('msgs_in'), n.ctl('cluster'),
             n.log_tail()) for n in self.nodes]))
        self.assertTrue(got_a and got_b, 'both nodes\' members served: %d / %d' % (len(got_a), len(got_b)))

    def test_ringmqctl_cluster(self):
        s = self.raw(1, 'ctl-sub')
        self.sub(s, 'ctl/+')
        self.interest_seen(0, 1)
        p = self.raw(0, 'ctl-pub')
        self.publish_all(p, 'ctl/x', [b'one'])
        self.assertEqual(self.read_n(s, 1), [b'one'])
        out = self.nodes[0].ctl_raw('cluster', json_out=False).stdout.decode()
        for i in range(3):
            self.assertIn('node %d' % i, out)
        self.assertIn('(this node)', out)
        self.assertIn('kafka: produced', out)
        cp = subprocess.run([harness.RINGMQCTL, '--socket', self.nodes[0].sock_path, 'cluster', '--json'],
                            capture_output=True, text=True, timeout=10)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        # what each node owns: node 1's filter, seen from node 0
        nodes = {n['node']: n for n in self.nodes[0].ctl('cluster')['nodes']}
        self.assertEqual(nodes[1]['filters'], 1, nodes)
        # Kafka counters in stats: the message (and heartbeats) produced and acknowledged; node 1 consumed it
        k0 = self.nodes[0].ctl('stats')['kafka']
        self.assertGreater(k0['produced'], 0, k0)
        self.assertGreater(k0['acknowledged'], 0, k0)
        self.assertEqual(k0['errors'], 0, k0)
        wait_until(lambda: self.nodes[1].ctl('stats')['kafka']['lag'] == 0, 15, what='node 1 has read its inbox')
        self.assertGreater(self.nodes[1].ctl('stats')['kafka']['consumed'], 0)
    def test_duplicate_node_id_stops_the_younger_node(self):
        twin = Node(1, self.kafka, self.redis, self.prefix)
        rc, log = self.start_expecting_exit(twin)
        self.assertEqual(rc, 2, log)
        self.assertIn('another ringmqd runs with node_id 1', log)
        # the first node 1 goes on: a message still crosses to it
        s = self.raw(1, 'twin-sub')
        self.sub(s, 'twin/+')
        self.interest_seen(0, 1)
        p = self.raw(0, 'twin-pub')
        self.publish_all(p, 'twin/x', [b'still'])
        self.assertEqual(self.read_n(s, 1), [b'still'])

    def test_inbox_topic_too_small_is_a_config_error(self):
        prefix = self.prefix + 'small'
        self.kafka.create_topic(prefix + '.inbox', partitions=2)
        n = Node(2, self.kafka, self.redis, prefix)
        rc, log = self.start_expecting_exit(n)
        self.assertEqual(rc, 2, log)
        self.assertIn('has 2 partitions, node_id 2 needs at least 3', log)

    def test_bad_kafka_option_is_a_config_error(self):
        n = Node(2, self.kafka, self.redis, self.prefix + 'opt', kafka_options='no.such.property=1')
        rc, log = self.start_expecting_exit(n)
        self.assertEqual(rc, 2, log)
        self.assertIn('cannot set no.such.property = 1', log)


@unittest.skipIf(harness.IS_MOSQUITTO, 'ringmq-specific')
class ClusterConfigTest(unittest.TestCase):
    def test_cluster_without_redis_is_a_config_error(self):
        cp = subprocess.run([harness.RINGMQD, '--cluster', 'kafka', '--port', '0', '--control-socket',
                             '/tmp/ringmq-cfg-%d.sock' % os.getpid()], capture_output=True, text=True, timeout=20)
        self.assertEqual(cp.returncode, 2, cp.stderr)
        self.assertIn('cluster = kafka needs store = redis', cp.stderr)


if __name__ == '__main__':
    unittest.main()

"""Helpers of the cluster tests (test_20_cluster, test_21_cluster_kafka_fault): a ringmqd node of a cluster over
Kafka and one Redis, and raw MQTT helpers bound to a test's nodes."""
import os
import time

import harness
from harness import Broker, wait_until
import rawmqtt as R
from kafkaserver import kafka_missing

SKIP = (harness.IS_MOSQUITTO and 'ringmq-specific') or kafka_missing() or \
    (not os.path.exists(harness.REDIS_SERVER) and 'redis-server not installed')
NODE_TIMEOUT_MS = 3000


class Node(Broker):
    def __init__(self, node_id, kafka, redis, prefix, kafka_options='socket.keepalive.enable=true; client.rack=r1'):
        super().__init__(2, ['--cluster', 'kafka', '--node-id', str(node_id), '--kafka-brokers', kafka.bootstrap,
                             '--kafka-topic-prefix', prefix, '--kafka-node-timeout-ms', str(NODE_TIMEOUT_MS),
                             '--store', 'redis', '--redis-addrs', redis.addr, '--kafka-options', kafka_options] +
                         (['--log-level', os.environ['RINGMQ_TEST_LOG_LEVEL']] if os.environ.get('RINGMQ_TEST_LOG_LEVEL')
                          else []))
        self.node_id = node_id


class ClusterMixin:
    """Needs self.nodes (Node list) and self._clients (closed by _close_clients, registered as a cleanup)."""

    def _stop(self, n):
        if n.proc is not None:
            n.stop()

    def _close_clients(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass

    def raw(self, node, cid, version=5, clean=True, expiry=None, will=None):
        r = R.RawClient(self.nodes[node].port, version)
        self._clients.append(r)
        plist = [(R.P_SESSION_EXPIRY, expiry)] if expiry is not None and version == 5 else None
        r.send(R.connect(cid, version=version, clean=clean, plist=plist, will=will))
        r.connack = r.expect(R.CONNACK, 15)
        self.assertEqual(r.connack.reason, 0, r.connack)
        return r

    def sub(self, r, flt, qos=1):
        r.send(R.subscribe(r.next_pid, [(flt, qos)], version=r.version))
        r.next_pid += 1
        self.assertEqual(r.expect(R.SUBACK).reasons, [qos])

    def interest_seen(self, node, n_filters):
        """Node `node` knows of at least n_filters filters of the other nodes (cross-node interest is
        visible once every node has read it from Kafka)."""
        wait_until(lambda: self.nodes[node].ctl('cluster')['remote_filters'] >= n_filters, 15,
                   what='node %d sees the interest' % node)

    def publish_all(self, r, topic, payloads):
        for i, p in enumerate(payloads):
            r.send(R.publish(topic, p, qos=1, pid=(i % 60000) + 1, version=r.version))
            ack = r.expect(R.PUBACK, 15)
            self.assertIn(ack.reason, (0, 0x10))

    def read_n(self, r, n, timeout=15):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            p = r.read_packet(max(0.1, deadline - time.monotonic()))
            if p.type == R.PUBLISH:
                got.append(p.payload)
                if p.qos:
                    r.send(R.ack(R.PUBACK, p.pid, version=r.version))
        return got

    def wait_cluster(self, n_alive):
        for n in self.nodes:
            wait_until(lambda n=n: sum(x['alive'] for x in n.ctl('cluster')['nodes']) >= n_alive, 30,
                       what='node %d sees the cluster' % n.node_id)

    def diag(self):
        """What each node says of the cluster, and its log's end: for failure messages."""
        out = []
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                out.append('node %d: %s' % (n.node_id, n.ctl('cluster')))
            except Exception as e:  # noqa: BLE001
                out.append('node %d: ringmqctl cluster failed: %s' % (n.node_id, e))
            out.append(n.log_tail())
        return '\n'.join(out)

    def read_until(self, r, want, timeout=60):
        """Read r (acknowledging) until every payload of want arrived or timeout; the set of payloads read."""
        got = set()
        deadline = time.monotonic() + timeout
        while not set(want) <= got and time.monotonic() < deadline:
            try:
                got.update(self.read_n(r, 1, timeout=min(2, max(0.1, deadline - time.monotonic()))))
            except TimeoutError:
                pass
        return got

    def start_expecting_exit(self, node, timeout=60):
        """Start a node that is to stop by itself (a configuration it refuses): (exit status, its log)."""
        try:
            node.start(timeout=timeout)
        except AssertionError:
            pass  # it may stop before it is ready
        try:
            rc = node.wait_exit(timeout)
            with open(node.log_path) as f:
                return rc, f.read()
        finally:
            node.cleanup()


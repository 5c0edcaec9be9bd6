"""Redis session store on a real 3-master Redis Cluster (ringmq only): a persistent QoS 1 subscriber's offline
queue is filled, the cluster slot holding its bucket keys is migrated to another master (the broker then gets
MOVED from the old owner), more messages are PUBACKed, and the subscriber receives all of them in order."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Broker, BrokerTest, IS_MOSQUITTO, wait_until

N_WORKERS = 2
REDIS_BUCKETS = 1024                  # ringmqd's default --redis-buckets
REDIS_CLI = os.environ.get('REDIS_CLI') or shutil.which('redis-cli') or '/usr/bin/redis-cli'


def bucket_key_slot(client_id):
    """Redis cluster slot of the broker's keys for client_id: hash tag "{bN}" of "rmq:{bN}"."""
    bucket = harness.slot_of(client_id) * REDIS_BUCKETS // harness.SLOT_COUNT
    return harness.crc16_xmodem('b%d' % bucket) % harness.SLOT_COUNT


def cli(port, *args, timeout=15.0):
    r = subprocess.run([REDIS_CLI, '-h', harness.HOST, '-p', str(port)] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return r.stdout.decode(errors='replace').strip()


def _bindable(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((harness.HOST, port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def cluster_port():
    """A free port whose cluster bus port (port + 10000) is a valid, free port too."""
    for _ in range(1000):
        port = harness.free_port()
        if port + 10000 <= 65535 and _bindable(port + 10000):
            return port
    for port in range(20000, 55000, 7):
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError('no free port pair for a cluster node')


class ClusterNode:
    """One cluster-enabled redis-server on a free port, in its own temporary directory, no persistence."""

    def __init__(self):
        self.port = cluster_port()
        self.dir = tempfile.mkdtemp(prefix='ringmq-rcluster-')
        self.proc = None
        self._log = None

    def start(self, timeout=20.0):
        self._log = open(os.path.join(self.dir, 'redis.log'), 'ab')
        argv = [harness.REDIS_SERVER, '--port', str(self.port), '--bind', harness.HOST, '--save', '',
                '--appendonly', 'no', '--dir', self.dir, '--daemonize', 'no', '--protected-mode', 'no',
                '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
                '--cluster-node-timeout', '5000']
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if cli(self.port, 'PING', timeout=2) == 'PONG':
                return self
            time.sleep(0.05)
        raise AssertionError('redis-server :%d not up (exit %s)\n%s' % (self.port, self.proc.poll(),
                                                                        self.log_tail()))

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.dir, 'redis.log'), 'rb') as f:
                return '\n'.join(f.read().decode(errors='replace').splitlines()[-n:])
        except OSError:
            return ''

    def node_id(self):
        return cli(self.port, 'CLUSTER', 'MYID')

    def owns(self, slot):
        for line in cli(self.port, 'CLUSTER', 'NODES').splitlines():
            f = line.split()
            if len(f) < 8 or 'myself' not in f[2]:
                continue
            for r in f[8:]:
                if r.startswith('['):
                    continue
                lo, _, hi = r.partition('-')
                if int(lo) <= slot <= int(hi or lo):
                    return True
        return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log:
            self._log.close()
            self._log = None
        if os.environ.get('RINGMQ_KEEP_TMP') is None:
            shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipIf(IS_MOSQUITTO, 'ringmq redis session store')
class RedisClusterTest(BrokerTest):

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(harness.RINGMQD):
            raise unittest.SkipTest('ringmqd not built (%s)' % harness.RINGMQD)
        if not os.path.exists(harness.REDIS_SERVER) or not os.path.exists(REDIS_CLI):
            raise unittest.SkipTest('redis-server / redis-cli not installed')

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        self.broker = None
        self.nodes = []
        for _ in range(3):
            n = ClusterNode()
            self.addCleanup(n.stop)
            self.nodes.append(n.start())
        out = subprocess.run([REDIS_CLI, '--cluster', 'create'] +
                             ['%s:%d' % (harness.HOST, n.port) for n in self.nodes] +
                             ['--cluster-replicas', '0', '--cluster-yes'],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        text = (out.stdout + out.stderr).decode(errors='replace')
        self.assertIn('All 16384 slots covered', text, text)
        for n in self.nodes:
            wait_until(lambda: 'cluster_state:ok' in cli(n.port, 'CLUSTER', 'INFO'), 20, 0.05,
                       'cluster_state:ok on :%d' % n.port)
        self.broker = Broker(N_WORKERS, ['--store', 'redis', '--redis-addrs',
                                         '%s:%d' % (harness.HOST, self.nodes[1].port)]).start()
        self.addCleanup(self._stop_broker)
        super().setUp()

    def _stop_broker(self):
        if self.broker is not None and self.broker.proc is not None:
            self.broker.stop()

    def migrate_slot(self, slot):
        src = [n for n in self.nodes if n.owns(slot)]
        self.assertEqual(len(src), 1, 'one owner of slot %d' % slot)
        src = src[0]
        dst = next(n for n in self.nodes if n is not src)
        src_id, dst_id = src.node_id(), dst.node_id()
        self.assertEqual(cli(dst.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', src_id), 'OK')
        self.assertEqual(cli(src.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', dst_id), 'OK')
        moved = 0
        while True:
            keys = cli(src.port, 'CLUSTER', 'GETKEYSINSLOT', slot, 100).split()
            if not keys:
                break
            self.assertEqual(cli(src.port, 'MIGRATE', harness.HOST, dst.port, '', 0, 5000, 'KEYS', *keys), 'OK')
            moved += len(keys)
        for n in [dst, src] + [n for n in self.nodes if n is not src and n is not dst]:
            self.assertEqual(cli(n.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', dst_id), 'OK')
        self.assertTrue(dst.owns(slot) and not src.owns(slot))
        self.assertEqual(cli(src.port, 'CLUSTER', 'COUNTKEYSINSLOT', slot), '0')
        self.assertEqual(int(cli(dst.port, 'CLUSTER', 'COUNTKEYSINSLOT', slot)), moved)
        return src, dst, moved

    def test_offline_queue_across_slot_migration(self):
        t = self.topic()
        sub_id = self.cid(1, 's')
        slot = bucket_key_slot(sub_id)
        s = self.client(sub_id, version=4, clean=False)
        self.assertFalse(s.session_present)
        self.assertEqual(s.subscribe(t, 1), [1])
        s.disconnect()

        pub = self.raw_connected(self.cid(0, 'p'))
        for i in range(50):
            self.publish_many(pub, t, [b'%d' % i])
        # The subscriber's bucket keys exist (written through the broker) before we move their slot.
        owner = next(n for n in self.nodes if n.owns(slot))
        wait_until(lambda: int(cli(owner.port, 'CLUSTER', 'COUNTKEYSINSLOT', slot)) > 0, 10, 0.05,
                   'bucket keys in slot %d' % slot)

        src, dst, moved = self.migrate_slot(slot)
        self.assertGreater(moved, 0)

        for i in range(50, 100):
            self.publish_many(pub, t, [b'%d' % i])
        pub.close()

        s = self.client(sub_id, version=4, clean=False)
        self.assertTrue(s.session_present, 'session restored from redis')
        self.assertEqual([int(m.payload) for m in s.get_n(100, timeout=30)], list(range(100)))
        s.expect_none(0.5)
        s.disconnect()
        # The new owner now holds the slot's keys, the old one none.
        self.assertEqual(cli(src.port, 'CLUSTER', 'COUNTKEYSINSLOT', slot), '0')
        self.assertGreater(int(cli(dst.port, 'CLUSTER', 'COUNTKEYSINSLOT', slot)), 0)


if __name__ == '__main__':
    harness.main()

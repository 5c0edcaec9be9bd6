"""A broker restarting over a Redis store with many persistent sessions (ringmq only) serves clients while it
restores them: a CONNECT is answered with its session before the restore has finished, and a PUBLISH (or a
will) that the restore is not ready to route is held, not PUBACKed, until every session is known, then
delivered.

The sessions are written straight into Redis in ringmqd's own format by scripts/bench-restart's generator (its
calibration checks that format against what ringmqd writes). To make "before the restore has finished"
certain rather than a race, one bucket of worker 1 lists a client whose record is a value of the wrong type:
the bucket's restore call is refused (WRONGTYPE) and retried until the test deletes that value, so the restore
is still running, provably (the log says so and nothing says it ended), for as long as the test needs."""
import importlib.machinery
import importlib.util
import os
import socket
import unittest

import harness
from harness import Broker, BrokerTest, RedisServer, IS_MOSQUITTO, wait_until
import rawmqtt as R

N_SESSIONS = 50000
BUCKETS = 1024


def _bench_restart():
    path = os.path.join(harness.SRCDIR, 'scripts', 'bench-restart')
    loader = importlib.machinery.SourceFileLoader('bench_restart', path)
    spec = importlib.util.spec_from_loader('bench_restart', loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _resp(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


def _pipe(redis, data):
    """Send RESP commands in one stream and wait until Redis has run them all (a PING behind them)."""
    with socket.create_connection((harness.HOST, redis.port), timeout=60) as s:
        s.sendall(data + _resp('PING'))
        tail = b''
        while not tail.endswith(b'+PONG\r\n'):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise AssertionError('redis closed the connection')
            if b'-' in chunk and b'\r\n-' in b'\r\n' + chunk:
                raise AssertionError('redis refused a command: %r' % chunk[:200])
            tail = (tail + chunk)[-16:]


@unittest.skipIf(IS_MOSQUITTO, 'ringmq redis session store')
class RestoreWhileServingTest(BrokerTest):

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(harness.RINGMQD):
            raise unittest.SkipTest('ringmqd not built (%s)' % harness.RINGMQD)
        if not os.path.exists(harness.REDIS_SERVER):
            raise unittest.SkipTest('redis-server not installed')
        cls.gen = _bench_restart()

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        gen = self.gen
        self.redis = RedisServer(appendonly=False).start()
        self.addCleanup(self.redis.stop)
        expire_ms = 0x7fffffffffff  # messages never expire here (none are queued)
        chunks = [gen.session_commands(i, 0, BUCKETS, expire_ms) for i in range(N_SESSIONS)]
        _pipe(self.redis, b''.join(chunks))
        # The stuck bucket: worker 1's bucket of session kyiv-<first i owned by worker 1>.
        first = next(i for i in range(N_SESSIONS)
                     if harness.slot_owner(harness.slot_of(gen.client_id(i)), 2) == 1)
        self.tag = gen.tag_of(gen.client_id(first), BUCKETS)
        self.members = [i for i in range(N_SESSIONS) if gen.tag_of(gen.client_id(i), BUCKETS) == self.tag]
        self.assertGreaterEqual(len(self.members), 4, 'sessions in the stuck bucket')
        # A member of the bucket's index whose record is a string, not a hash: the restore call of this bucket
        # fails on it (WRONGTYPE) and is retried; every other operation of the bucket works as usual.
        _pipe(self.redis, _resp('SET', self.tag + ':stuck:m', 'not a hash') + _resp('SADD', self.tag + ':idx', 'stuck'))
        self.broker = Broker(2, ['--store', 'redis', '--redis-addrs', self.redis.addr,
                                 '--redis-buckets', str(BUCKETS)]).start()
        self.addCleanup(self.broker.stop)
        super().setUp()
        wait_until(lambda: 'WRONGTYPE' in self.broker.log_text(), 30, what='the stuck bucket refused')

    def unstick(self):
        _pipe(self.redis, _resp('DEL', self.tag + ':stuck:m'))

    def restoring(self):
        """Worker 1's restore has started and its end (logged with the count) has not come."""
        lines = self.broker.log_text().splitlines()
        return (any('w1 INFO redis store: restoring' in ln for ln in lines) and
                not any('w1 INFO' in ln and 'persistent sessions restored' in ln for ln in lines))

    def stats(self):
        return self.broker.ctl('stats')['total']

    def test_connect_answered_and_publish_held_during_restore(self):
        gen = self.gen
        early, target, cleaned, will_target = self.members[:4]
        self.assertTrue(self.restoring())
        # A client whose session is in the bucket not restored yet: CONNACK with its session, at once.
        c = self.raw(4)
        ca = c.connect(gen.client_id(early), clean=False, timeout=10)
        self.assertEqual(ca.session_present, 1, 'session loaded on demand')
        # A clean start during the restore ends its stored session: the restore must not bring it back.
        d = self.raw(4)
        ca = d.connect(gen.client_id(cleaned), clean=True, timeout=10)
        self.assertEqual(ca.session_present, 0)
        d.disconnect()
        # A client that dies during the restore: its will, for a session not restored yet, waits too.
        w = self.raw(4)
        w.connect(self.cid(0, 'will'), clean=True, timeout=10,
                  will={'topic': gen.topic_of(will_target), 'payload': b'will', 'qos': 1})
        w.close()
        # A publish for a session not restored yet (target: offline, in the stuck bucket) is held.
        p = self.raw(4)
        p.connect(self.cid(0, 'pub'), clean=True, timeout=10)
        p.send(R.publish(gen.topic_of(target), b'held', qos=1, pid=1))
        wait_until(lambda: self.stats()['publishes_held'] >= 1, 10, what='publisher held')
        p.expect_nothing(1.0)
        self.assertTrue(self.restoring(), 'the restore is still running')
        self.assertGreaterEqual(self.stats()['sessions_loaded_on_demand'], 1)
        # Once the bucket can be read the restore ends; only then the PUBACK.
        self.unstick()
        ack = p.expect(R.PUBACK, timeout=30)
        self.assertEqual(ack.pid, 1)
        self.assertFalse(self.restoring())
        self.assertIn('routing complete', self.broker.log_text())
        wait_until(lambda: self.stats()['sessions'] >= N_SESSIONS - 1, 30, what='every session restored')
        # The held message reached its session.
        t = self.raw(4)
        ca = t.connect(gen.client_id(target), clean=False, timeout=10)
        self.assertEqual(ca.session_present, 1)
        m = t.receive(10)
        self.assertEqual((m.topic, m.payload), (gen.topic_of(target), b'held'))
        t.disconnect()
        self.assertIn('and 1 wills were held', self.broker.log_text())
        wt = self.raw(4)
        self.assertEqual(wt.connect(gen.client_id(will_target), clean=False, timeout=10).session_present, 1)
        m = wt.receive(10)
        self.assertEqual((m.topic, m.payload), (gen.topic_of(will_target), b'will'))
        wt.disconnect()
        self.assertNotIn('set aside', self.broker.log_text())
        # The session loaded early is the one in memory; the cleaned one stayed gone (deleted from Redis too).
        c.disconnect()
        c = self.raw(4)
        self.assertEqual(c.connect(gen.client_id(early), clean=False).session_present, 1)
        c.disconnect()
        d = self.raw(4)
        self.assertEqual(d.connect(gen.client_id(cleaned), clean=False).session_present, 0)
        d.disconnect()
        self.assertEqual(self.redis.command('EXISTS', '%s:%s:u' % (self.tag, gen.client_id(cleaned))), b':0\r\n')


if __name__ == '__main__':
    harness.main()

"""Redis session store (ringmq only): every test starts its own redis-server (append-only, no snapshots) on a
free port and a 2-worker ringmqd with --store redis. Offline queues survive a SIGKILL of the whole broker,
restored sessions are routed to before their clients reconnect, the queue limit and message expiry hold in
Redis, inbound QoS 2 state survives a restart (exactly once), and a Redis restart mid-stream loses no
PUBACKed message."""
import os
import signal
import socket
import threading
import time
import unittest

import harness
from harness import Broker, BrokerTest, RedisServer, IS_MOSQUITTO, wait_until
import rawmqtt as R

N_WORKERS = 2


def _port_bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((harness.HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class RedisBroker(Broker):
    """A ringmqd with --store redis that can be restarted on the same port (clients reconnect to it)."""

    def __init__(self, redis, port=None, **config):
        extra = ['--store', 'redis', '--redis-addrs', redis.addr]
        if 'redis_write_grace_ms' in config:
            extra += ['--redis-write-grace-ms', str(config.pop('redis_write_grace_ms'))]
        super().__init__(N_WORKERS, extra, **config)
        self.fixed_port = port

    def start(self, timeout=30.0):
        if self.fixed_port is None:
            return super().start(timeout)
        # The killed broker's listeners close asynchronously (io_uring teardown): wait until the port binds.
        wait_until(lambda: _port_bindable(self.fixed_port), 20, 0.05, 'port %d free again' % self.fixed_port)
        # Same port as the broker this one replaces: patch the harness's port choice for this one start.
        saved = harness.free_port
        harness.free_port = lambda: self.fixed_port
        try:
            return super().start(timeout)
        finally:
            harness.free_port = saved


@unittest.skipIf(IS_MOSQUITTO, 'ringmq redis session store')
class RedisStoreTest(BrokerTest):
    broker_config = {}

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(harness.RINGMQD):
            raise unittest.SkipTest('ringmqd not built (%s)' % harness.RINGMQD)
        if not os.path.exists(harness.REDIS_SERVER):
            raise unittest.SkipTest('redis-server not installed')

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        self.broker = None
        self.broker = self.start_broker()
        self.addCleanup(self._stop_broker)
        super().setUp()

    def _stop_broker(self):
        if self.broker is not None and self.broker.proc is not None:
            self.broker.stop()

    def start_broker(self, port=None):
        return RedisBroker(self.redis, port, **dict(self.broker_config)).start()

    def restart_broker(self, hard=True):
        """SIGKILL (or SIGTERM) the whole broker and start a new one on the same port and Redis."""
        port = self.broker.port
        if hard:
            self.broker.crash()
        else:
            self.broker.stop(timeout=20)
        self.broker = self.start_broker(port)

    def persistent_sub(self, cid, topic, qos=1, version=4):
        kw = {'clean': False} if version == 4 else {'clean': False, 'session_expiry': 3600}
        s = self.client(cid, version=version, **kw)
        self.assertFalse(s.session_present)
        self.assertEqual(s.subscribe(topic, qos), [qos])
        s.disconnect()
        return cid

    def reconnect(self, cid, version=4):
        kw = {'clean': False} if version == 4 else {'clean': False, 'session_expiry': 3600}
        s = self.client(cid, version=version, **kw)
        self.assertTrue(s.session_present, 'session restored from redis')
        return s

    # 1
    def test_offline_queue_survives_sigkill(self):
        t = self.topic()
        sub = self.persistent_sub(self.cid(1, 's'), t)
        pub = self.raw_connected(self.cid(0, 'p'))
        self.publish_many(pub, t, [b'%d' % i for i in range(200)])
        pub.close()
        self.restart_broker(hard=True)
        s = self.reconnect(sub)
        self.assertEqual([int(m.payload) for m in s.get_n(200, timeout=30)], list(range(200)))
        s.expect_none(0.5)
        s.disconnect()

    # 2
    def test_route_to_restored_offline_session(self):
        t = self.topic()
        sub = self.persistent_sub(self.cid(1, 's'), t)
        self.restart_broker(hard=False)
        # Publish at once, before the subscriber reconnects: the restored subscription must route.
        pub = self.raw_connected(self.cid(0, 'p'))
        self.publish_many(pub, t, [b'%d' % i for i in range(50)])
        pub.disconnect()
        s = self.reconnect(sub)
        self.assertEqual([int(m.payload) for m in s.get_n(50, timeout=20)], list(range(50)))
        s.expect_none(0.5)
        s.disconnect()

    # 3b
    def _kill_subscriber_worker_mid_stream(self, online):
        """Publisher on worker 0, persistent subscriber on worker 1 (connected or not). Worker 1 is SIGKILLed
        after 50 PUBACKs while the publisher keeps going. Its sessions live on in Redis: worker 0 must hold
        what worker 1 had not acknowledged and what comes while it is down, send it to the restarted worker,
        and PUBACK only then — every PUBACKed message reaches the subscriber, none is lost."""
        t = self.topic()
        sid = self.cid(1, 's')
        self.persistent_sub(sid, t)
        s = self.reconnect(sid) if online else None
        pub = self.raw_connected(self.cid(0, 'p'), version=4)
        n = 400
        old = self.broker.worker_pid(1)
        acked = []
        for i in range(n):
            pub.send(R.publish(t, b'%d' % i, qos=1, pid=i + 1))
            if i == 100:
                while len(acked) < 50:
                    acked.append(pub.expect(R.PUBACK, timeout=10).pid)
                os.kill(old, signal.SIGKILL)
        while len(acked) < n:
            acked.append(pub.expect(R.PUBACK, timeout=20).pid)
        self.assertEqual(sorted(acked), list(range(1, n + 1)))
        wait_until(lambda: any(w['id'] == 1 and w['state'] == 'up' and w['pid'] != old
                               for w in self.broker.worker_info()), timeout=20, what='worker 1 restarted')
        got = set()
        if s is not None:
            # What the first connection received (and acknowledged) before the kill counts too.
            s.wait_disconnected(10)
            while True:
                try:
                    got.add(int(s.get(0.2).payload))
                except AssertionError:
                    break
        s = self.reconnect(sid)
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            try:
                got.add(int(s.get(max(0.01, deadline - time.monotonic())).payload))
            except AssertionError:
                break
        self.assertEqual(sorted(set(range(n)) - got), [], 'PUBACKed messages lost with worker 1')
        s.disconnect()
        pub.disconnect()

    def test_subscriber_worker_killed_offline_session(self):
        self._kill_subscriber_worker_mid_stream(online=False)

    def test_subscriber_worker_killed_online_session(self):
        self._kill_subscriber_worker_mid_stream(online=True)

    # 4
    def test_message_expiry_while_offline(self):
        t = self.topic()
        sub = self.persistent_sub(self.cid(1, 's'), t, version=5)
        pub = self.client(self.cid(0, 'p'), version=5)
        pub.publish(t, b'expires', qos=1, props={'MessageExpiryInterval': 1})
        time.sleep(2.5)
        pub.publish(t, b'marker', qos=1)
        s = self.reconnect(sub, version=5)
        m = s.get(10)
        self.assertEqual(m.payload, b'marker', 'the message with a 1 s expiry must not be delivered after 2.5 s')
        s.expect_none(0.5)
        s.disconnect()
        pub.disconnect()

    # 5
    def test_qos2_exactly_once_across_restart(self):
        t = self.topic()
        sub = self.persistent_sub(self.cid(1, 's'), t, qos=2)
        pcid = self.cid(0, 'p')
        plist = [(R.P_SESSION_EXPIRY, 3600)]
        pub = self.raw(5)
        pub.connect(pcid, clean=False, plist=plist)
        pid = 7
        pub.send(R.publish(t, b'once', 2, pid, version=5))
        self._read_until(pub, R.PUBREC, pid)
        pub.close()
        self.restart_broker(hard=True)
        pub = self.raw(5)
        ca = pub.connect(pcid, clean=False, plist=plist)
        self.assertTrue(ca.session_present, 'publisher session restored')
        # Resent at once, while the broker may still be loading the session's QoS 2 state from Redis: it must
        # hold the packet until the state is back, not take it as a new message.
        pub.send(R.publish(t, b'once', 2, pid, dup=True, version=5))
        rec = self._read_until(pub, R.PUBREC, pid)
        self.assertLess(rec.reason, 0x80, rec)
        pub.send(R.ack(R.PUBREL, pid, 5))
        comp = self._read_until(pub, R.PUBCOMP, pid)
        self.assertEqual(comp.reason, 0)
        pub.disconnect()
        s = self.raw(4)
        ca = s.connect(sub, clean=False)
        self.assertTrue(ca.session_present)
        p = s.receive(10)
        self.assertEqual((p.topic, p.payload, p.qos), (t, b'once', 2))
        s.expect_nothing(1.0)
        s.disconnect()

    def _read_until(self, raw, ptype, pid, ack=True, timeout=10.0):
        """Next packet of ptype for pid, skipping PUBLISHes of the client's own subscription (acknowledged
        if ack)."""
        deadline = time.monotonic() + timeout
        while True:
            p = raw.read_packet(max(deadline - time.monotonic(), 0.001))
            if p.type == R.PUBLISH:
                if ack:
                    raw.ack_publish(p)
                continue
            self.assertEqual((p.type, p.pid), (ptype, pid), p)
            return p

    # 6
    def test_redis_restart_mid_stream(self):
        t = self.topic()
        n = 300
        sub = self.persistent_sub(self.cid(1, 's'), t)
        pub = self.client(self.cid(0, 'p'), version=4)
        acked = []
        for i in range(n):
            if i == 100:
                self.redis.kill(signal.SIGKILL)
                threading.Timer(1.0, self.redis.start).start()
            pub.publish(t, b'%d' % i, qos=1, timeout=60)
            acked.append(i)
        pub.disconnect()
        s = self.reconnect(sub)
        got = [int(m.payload) for m in s.get_n(len(acked), timeout=60)]
        self.assertEqual(sorted(set(got)), acked, 'every PUBACKed message delivered')
        self.assertEqual(got, acked, 'in order, no duplicates')
        s.expect_none(0.5)
        s.disconnect()

    # 7
    def test_queue_of_the_previous_format_is_loaded(self):
        """Before, packet ids of sent messages lived in a separate hash <cid>:p. A queue stored that way is
        loaded after an upgrade: the sent message is resent with its id (DUP), the others follow, and the old
        hash is folded into the queue; an id whose message is gone is dropped."""
        t = self.topic()
        sid = self.persistent_sub(self.cid(1, 's'), t)
        pub = self.raw_connected(self.cid(0, 'p'))
        self.publish_many(pub, t, [b'%d' % i for i in range(3)])
        pub.disconnect()
        self.broker.stop(timeout=20)
        [q] = _redis(self.redis, 'KEYS', 'rmq:*:%s:q' % sid)
        pkey = q[:-1] + b'p'
        self.assertEqual(sorted(_redis(self.redis, 'HKEYS', q)), [b'1', b'2', b'3'])
        _redis(self.redis, 'HSET', pkey, '1', '7,1', '99', '8,1')  # 1 sent as id 7 (PUBACK due); 99 orphaned
        self.broker = self.start_broker(self.broker.port)
        s = self.raw(4)
        self.assertTrue(s.connect(sid, clean=False).session_present)
        first = s.receive(10)
        self.assertEqual((first.payload, first.pid, first.dup), (b'0', 7, True))
        self.assertEqual([s.receive(10).payload for _ in range(2)], [b'1', b'2'])
        s.expect_nothing(0.5)
        self.assertEqual(_redis(self.redis, 'EXISTS', pkey), 0, 'the old packet-id hash is folded into q')
        s.disconnect()
        self.assertEqual(_redis(self.redis, 'HLEN', q), 0)

    def _raw_sub(self, cid, t):
        s = self.raw(4)
        s.connect(cid, clean=False)
        s.subscribe(t)
        return s

    def _ten_unacked(self, t, sid):
        """sid subscribes (persistent, raw client), a publisher sends 10 QoS 1 messages, the subscriber reads
        them in order without acknowledging any. Returns (subscriber, publisher, the 10 PUBLISH packets)."""
        s = self._raw_sub(sid, t)
        pub = self.raw_connected(self.cid(0, 'p'))
        for i in range(10):
            pub.send(R.publish(t, b'%d' % i, qos=1, pid=i + 1))
        ps = [s.receive(10, auto_ack=False) for _ in range(10)]
        self.assertEqual([int(p.payload) for p in ps], list(range(10)))
        return s, pub, ps


@unittest.skipIf(IS_MOSQUITTO, 'ringmq redis session store')
class RedisQueueLimitTest(RedisStoreTest):
    broker_config = {'max_queued': 20}

    # 3
    def test_queue_limit_drops_oldest(self):
        t = self.topic()
        sub = self.persistent_sub(self.cid(1, 's'), t)
        pub = self.raw_connected(self.cid(0, 'p'))
        self.publish_many(pub, t, [b'%d' % i for i in range(50)])
        pub.disconnect()
        s = self.reconnect(sub)
        self.assertEqual([int(m.payload) for m in s.get_n(20, timeout=20)], list(range(30, 50)))
        s.expect_none(0.5)
        s.disconnect()
        st = self.broker.ctl('stats')
        self.assertGreaterEqual(st['total'].get('dropped_queue_full', 0), 30, st['total'])


    def test_bound_holds_after_online_traffic(self):
        """Online, the worker bounds the queue and the script does not count it; once offline the script
        bounds it from the oldest message still held, so what was delivered meanwhile does not matter."""
        t = self.topic()
        sid = self.cid(1, 's')
        s = self.client(sid, clean=False)
        self.assertEqual(s.subscribe(t, 1), [1])
        pub = self.raw_connected(self.cid(0, 'p'))
        self.publish_many(pub, t, [b'x%d' % i for i in range(100)])
        self.assertEqual(len(s.get_n(100)), 100)
        s.disconnect()
        self.publish_many(pub, t, [b'%d' % i for i in range(50)])
        pub.disconnect()
        s = self.reconnect(sid)
        self.assertEqual([int(m.payload) for m in s.get_n(20, timeout=20)], list(range(30, 50)))
        s.expect_none(0.5)
        s.disconnect()

    def test_bound_ignores_packet_ids_of_unacked_copies(self):
        """Copies sent but not acknowledged are stored with their packet id ('p<seq>' in the same hash): the
        offline bound counts messages, not hash fields, so 10 unacknowledged + 8 offline (18 of 20) all stay."""
        t = self.topic()
        sid = self.cid(1, 's')
        s, pub, _ = self._ten_unacked(t, sid)
        s.close()
        for _ in range(10):
            pub.expect(R.PUBACK, 10)
        self.publish_many(pub, t, [b'%d' % i for i in range(10, 18)])
        pub.disconnect()
        s = self.reconnect(sid)
        self.assertEqual([int(m.payload) for m in s.get_n(18, timeout=20)], list(range(18)))
        s.expect_none(0.5)
        s.disconnect()
        st = self.broker.ctl('stats')
        self.assertEqual(st['total'].get('dropped_queue_full', 0), 0, st['total'])

    def test_bound_after_disconnect_during_load(self):
        """The subscriber leaves while its stored queue is still loading: the offline mark must not claim the
        oldest live message is one that arrived meanwhile, or the bound drops new messages and keeps the old."""
        t = self.topic()
        sid = self.cid(1, 's')
        self.persistent_sub(sid, t)
        pub = self.raw_connected(self.cid(0, 'p'))
        self.publish_many(pub, t, [b'%d' % i for i in range(15)])
        # Redis holds the load back; the session is online and loading, what arrives is queued in memory.
        _redis(self.redis, 'CLIENT', 'PAUSE', 3000, 'ALL')
        s = self.raw(4)
        s.connect(sid, clean=False)
        for i in range(15, 20):
            pub.send(R.publish(t, b'%d' % i, qos=1, pid=i + 1))
        wait_until(lambda: self.broker.ctl('client', sid)['client']['queued'] == 5, timeout=2.5,
                   what='5 messages queued while loading')
        s.close()
        self.assertEqual(sorted(pub.expect(R.PUBACK, 10).pid for _ in range(5)), list(range(16, 21)))
        self.publish_many(pub, t, [b'%d' % i for i in range(20, 30)])
        pub.disconnect()
        s = self.reconnect(sid)
        self.assertEqual([int(m.payload) for m in s.get_n(20, timeout=20)], list(range(10, 30)))
        s.expect_none(0.5)
        s.disconnect()

    def test_bound_after_sigkill_while_online(self):
        """The broker dies while the subscriber is online (no offline mark was ever written): once restored,
        the offline bound still drops the oldest messages, not each new one."""
        t = self.topic()
        sid = self.cid(1, 's')
        s, pub, _ = self._ten_unacked(t, sid)
        # Not acknowledged: PUBACKed once the held copies are written (the default grace).
        self.assertEqual(sorted(pub.expect(R.PUBACK, 10).pid for _ in range(10)), list(range(1, 11)))
        self.restart_broker(hard=True)
        pub = self.raw_connected(self.cid(0, 'p'))
        self.publish_many(pub, t, [b'%d' % i for i in range(10, 25)])
        pub.disconnect()
        s = self.reconnect(sid)
        self.assertEqual([int(m.payload) for m in s.get_n(20, timeout=20)], list(range(5, 25)))
        s.expect_none(0.5)
        s.disconnect()

    # the inherited tests run in RedisStoreTest only
    test_offline_queue_survives_sigkill = None
    test_route_to_restored_offline_session = None
    test_message_expiry_while_offline = None
    test_qos2_exactly_once_across_restart = None
    test_redis_restart_mid_stream = None
    test_queue_of_the_previous_format_is_loaded = None
    test_subscriber_worker_killed_offline_session = None
    test_subscriber_worker_killed_online_session = None


def _redis(redis, *args):
    """One command; the reply parsed (bulk strings as bytes, arrays as lists, errors raised)."""
    out = b'*%d\r\n' % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b'$%d\r\n%s\r\n' % (len(a), a)
    with socket.create_connection((harness.HOST, redis.port), timeout=5) as sk:
        sk.sendall(out)
        f = sk.makefile('rb')

        def one():
            line = f.readline()[:-2]
            t, rest = line[:1], line[1:]
            if t == b'+':
                return rest
            if t == b'-':
                raise AssertionError('redis: %s' % rest.decode())
            if t == b':':
                return int(rest)
            if t == b'$':
                n = int(rest)
                return None if n < 0 else f.read(n + 2)[:-2]
            if t == b'*':
                n = int(rest)
                return None if n < 0 else [one() for _ in range(n)]
            raise AssertionError('redis: bad reply %r' % line)
        return one()


def _redis_info(redis, section):
    """INFO <section> of redis as {key: value} (a bulk reply, read whole)."""
    with socket.create_connection((harness.HOST, redis.port), timeout=5) as sk:
        sk.sendall(b'*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n' % (len(section), section.encode()))
        data = b''
        while b'\r\n' not in data:
            data += sk.recv(65536)
        head, rest = data.split(b'\r\n', 1)
        need = int(head[1:]) + 2
        while len(rest) < need:
            rest += sk.recv(65536)
    out = {}
    for line in rest[:need - 2].decode().splitlines():
        if ':' in line:
            k, v = line.split(':', 1)
            out[k] = v
    return out


def _calls(redis, cmd):
    """How many times redis ran cmd (commandstats; FCALL bodies included)."""
    v = _redis_info(redis, 'commandstats').get('cmdstat_' + cmd)
    return int(v.split('calls=')[1].split(',')[0]) if v else 0


@unittest.skipIf(IS_MOSQUITTO, 'ringmq redis session store')
class RedisWriteGraceTest(RedisStoreTest):
    """redis_write_grace_ms: a copy for an online subscriber is held that long before its write; acknowledged
    meanwhile, it never reaches Redis, yet the publisher is answered only once the subscriber or Redis has it.
    A long grace here makes "within the grace" certain under any load."""
    broker_config = {'redis_write_grace_ms': 10000}

    def _pubacks(self, pub, timeout):
        """Every PUBACK arriving within timeout (pids)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(pub.expect(R.PUBACK, max(deadline - time.monotonic(), 0.001)).pid)
            except (AssertionError, TimeoutError):
                return got

    def test_copy_acked_within_grace_never_written(self):
        t = self.topic()
        sid = self.cid(1, 's')
        s = self.client(sid, clean=False)
        self.assertEqual(s.subscribe(t, 1), [1])
        base = (_calls(self.redis, 'hlen'), _calls(self.redis, 'hexists'), _calls(self.redis, 'hdel'))
        pub = self.raw_connected(self.cid(0, 'p'))
        t0 = time.monotonic()
        self.publish_many(pub, t, [b'%d' % i for i in range(50)], timeout=30)
        # Answered by the subscriber's acknowledgements, not by the end of the 10 s grace.
        self.assertLess(time.monotonic() - t0, 8.0)
        self.assertEqual([int(m.payload) for m in s.get_n(50)], list(range(50)))
        # Nothing of those copies ran in Redis: no add (HLEN), no packet id (HEXISTS), no delete (HDEL).
        self.assertEqual((_calls(self.redis, 'hlen'), _calls(self.redis, 'hexists'), _calls(self.redis, 'hdel')),
                         base, 'copies acknowledged within the grace were written to Redis')
        s.disconnect()
        pub.disconnect()
        # The session itself is stored and comes back with nothing queued.
        s = self.reconnect(sid)
        s.expect_none(0.5)
        s.disconnect()

    def test_held_copies_written_when_subscriber_leaves(self):
        t = self.topic()
        sid = self.cid(1, 's')
        s, pub, _ = self._ten_unacked(t, sid)
        # Neither acknowledged nor durable yet: no PUBACK.
        pub.expect_nothing(0.5)
        t0 = time.monotonic()
        s.close()
        # The subscriber went away: its held copies are written at once, and then acknowledged.
        self.assertEqual(sorted(self._pubacks(pub, 5.0)), list(range(1, 11)))
        self.assertLess(time.monotonic() - t0, 6.0, 'PUBACKs waited for the grace, not for the write')
        s = self.reconnect(sid)
        self.assertEqual([int(m.payload) for m in s.get_n(10, timeout=20)], list(range(10)))
        s.expect_none(0.5)
        s.disconnect()
        pub.disconnect()

    def _crash_with_half_acknowledged(self, t, sid):
        """10 copies delivered to sid's subscriber, which acknowledges the first half only: those may be
        PUBACKed, the rest must wait; then every process of the broker is SIGKILLed and it starts again.
        Returns the packet ids the publisher got PUBACKs for."""
        s, pub, ps = self._ten_unacked(t, sid)
        for p in ps[:5]:
            s.ack_publish(p)
        acked = self._pubacks(pub, 1.5)
        self.assertEqual(sorted(acked), [1, 2, 3, 4, 5])
        self.restart_broker(hard=True)
        return acked

    def test_sigkill_during_grace_loses_nothing_pubacked(self):
        t = self.topic()
        sid = self.cid(1, 's')
        acked = self._crash_with_half_acknowledged(t, sid)
        s = self.reconnect(sid)
        got = set(range(5))
        while True:
            try:
                got.add(int(s.get(1.0).payload))
            except AssertionError:
                break
        self.assertEqual(sorted({p - 1 for p in acked} - got), [], 'PUBACKed messages lost')
        s.disconnect()

    def test_crash_during_grace(self):
        """Every worker SIGKILLed (nothing of them runs) with 5 copies acknowledged and 5 held: only the
        acknowledged ones were PUBACKed, nothing reached Redis, and the restarted broker's sequence numbers
        (reused: nothing was written) meet no stale entry."""
        t = self.topic()
        sid = self.cid(1, 's')
        self._crash_with_half_acknowledged(t, sid)
        keys = _redis(self.redis, 'KEYS', '*%s:q' % sid)
        self.assertEqual(keys, [], 'held copies reached Redis')
        s = self.reconnect(sid)
        s.expect_none(0.5)
        pub = self.raw_connected(self.cid(0, 'p'))
        self.publish_many(pub, t, [b'n%d' % i for i in range(3)])
        self.assertEqual([m.payload for m in s.get_n(3)], [b'n0', b'n1', b'n2'])
        s.expect_none(0.5)
        s.disconnect()
        self.assertEqual(_redis(self.redis, 'KEYS', '*%s:q' % sid), [])
        pub.disconnect()

    def test_takeover_during_grace_writes_held_copies_first(self):
        """A second connection takes the session over while copies are held: they are written before the
        session is loaded again, so the new connection gets them (DUP, same ids) and the publisher its
        PUBACKs."""
        t = self.topic()
        sid = self.cid(1, 's')
        s = self._raw_sub(sid, t)
        pub = self.raw_connected(self.cid(0, 'p'))
        for i in range(5):
            pub.send(R.publish(t, b'%d' % i, qos=1, pid=i + 1))
        first = [s.receive(10, auto_ack=False) for _ in range(5)]
        pub.expect_nothing(0.3)
        s2 = self.raw(4)
        self.assertTrue(s2.connect(sid, clean=False).session_present)
        again = [s2.receive(10) for _ in range(5)]
        self.assertEqual([(p.payload, p.pid, p.dup) for p in again], [(p.payload, p.pid, True) for p in first])
        self.assertEqual(sorted(self._pubacks(pub, 5.0)), [1, 2, 3, 4, 5])
        s2.disconnect()
        pub.disconnect()

    def test_qos2_copies_written_at_once(self):
        """A QoS 2 copy is never held: the publisher's PUBREC makes its packet id "seen", so the copy must be in
        Redis, not only with a subscriber in the middle of its own flow."""
        t = self.topic()
        sid = self.cid(1, 's')
        s = self.client(sid, clean=False)
        self.assertEqual(s.subscribe(t, 2), [2])
        base = _calls(self.redis, 'hmget')
        pub = self.raw_connected(self.cid(0, 'p'))
        t0 = time.monotonic()
        for i in range(5):
            self.assertLess(pub.publish(t, b'%d' % i, qos=2, timeout=8).reason, 0x80)
        self.assertLess(time.monotonic() - t0, 8.0, 'QoS 2 waited for the grace')
        self.assertEqual([int(m.payload) for m in s.get_n(5)], list(range(5)))
        self.assertGreaterEqual(_calls(self.redis, 'hmget') - base, 5, 'QoS 2 copies were not written')
        s.disconnect()
        pub.disconnect()

    test_offline_queue_survives_sigkill = None
    test_route_to_restored_offline_session = None
    test_message_expiry_while_offline = None
    test_qos2_exactly_once_across_restart = None
    test_redis_restart_mid_stream = None
    test_queue_of_the_previous_format_is_loaded = None
    test_subscriber_worker_killed_offline_session = None
    test_subscriber_worker_killed_online_session = None


if __name__ == '__main__':
    harness.main()

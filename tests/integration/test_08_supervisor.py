"""Supervisor and control socket (ringmq only): every ringmqctl command in human and --json form, a killed
worker restarted while the other worker's clients stay connected, no acknowledged message lost when the
publisher's worker dies, graceful shutdown on SIGTERM (MQTT 5 clients get DISCONNECT 0x8B)."""
import os
import signal
import time
import unittest

import harness
from harness import Broker, BrokerTest, ringmq_only, wait_until
import rawmqtt as R


def ppid_of(pid):
    with open('/proc/%d/stat' % pid) as f:
        return int(f.read().rsplit(')', 1)[1].split()[1])


@ringmq_only
class CtlTest(BrokerTest):

    def test_status(self):
        c = self.client(self.cid(0))
        st = self.broker.ctl('status')
        self.assertEqual(st['workers'], 2)
        self.assertEqual(st['workers_up'], 2)
        self.assertGreaterEqual(st['connections'], 1)
        out = self.broker.ctl_raw('status', json_out=False).stdout.decode()
        self.assertIn('connections', out)
        c.disconnect()

    def test_workers(self):
        ws = sorted(self.broker.worker_info(), key=lambda w: w['id'])
        self.assertEqual([w['id'] for w in ws], [0, 1])
        self.assertEqual([w['slots'] for w in ws], [[0, 8191], [8192, 16383]])
        for w in ws:
            self.assertEqual(w['state'], 'up')
            self.assertEqual(w['restarts'], 0)
            self.assertEqual(ppid_of(w['pid']), self.broker.proc.pid, 'workers are children of the supervisor')
            self.assertIn('uptime_s', w)
            self.assertIn('connections', w)
        self.assertNotEqual(ws[0]['pid'], ws[1]['pid'])
        out = self.broker.ctl_raw('workers', json_out=False).stdout.decode()
        for w in ws:
            self.assertIn(str(w['pid']), out)

    def test_worker_connection_counts(self):
        before = {w['id']: w['connections'] for w in self.broker.worker_info()}
        cs = [self.client(self.cid(1, 'c%d' % i)) for i in range(3)]

        def counted():
            now = {w['id']: w['connections'] for w in self.broker.worker_info()}
            return now[1] - before[1] >= 3
        wait_until(counted, what='worker 1 counts its 3 connections (sessions live on the owner)')
        for c in cs:
            c.disconnect()

    def test_clients_and_client(self):
        a = self.client(self.cid(0, 'a'), version=5)
        b = self.client(self.cid(1, 'b'), version=4)
        ids = self.broker.client_ids()
        self.assertTrue({a.client_id, b.client_id} <= ids, ids)
        w0 = {c['id'] for c in self.broker.ctl('clients', '--worker', 0)['clients']}
        w1 = {c['id'] for c in self.broker.ctl('clients', '--worker', 1)['clients']}
        self.assertIn(a.client_id, w0)
        self.assertNotIn(b.client_id, w0)
        self.assertIn(b.client_id, w1)
        self.assertNotIn(a.client_id, w1)
        out = self.broker.ctl_raw('clients', json_out=False).stdout.decode()
        self.assertIn(a.client_id, out)
        self.assertIn(b.client_id, out)
        one = self.broker.ctl('client', b.client_id)
        obj = one.get('client', one)
        self.assertEqual(obj['id'], b.client_id)
        out = self.broker.ctl_raw('client', a.client_id, json_out=False).stdout.decode()
        self.assertIn(a.client_id, out)
        missing = self.broker.ctl_raw('client', 'no-such-client-xyz', check=False)
        self.assertNotEqual(missing.returncode, 0, 'unknown client is an error')

    def test_kick(self):
        for k in (0, 1):
            with self.subTest(worker=k):
                cid = self.cid(k)
                r = self.raw_connected(cid, version=5)
                rep = self.broker.ctl('kick', cid)
                self.assertTrue(rep.get('kicked'), rep)
                got = r.wait_closed()
                self.assertEqual([p.type for p in got], [R.DISCONNECT])
                self.assertGreaterEqual(got[0].reason, 0x80)
                wait_until(lambda: cid not in self.broker.client_ids(), what='kicked client gone')
        cid = self.cid(1)
        v3 = self.raw_connected(cid, version=4)
        out = self.broker.ctl_raw('kick', cid, json_out=False)
        self.assertEqual(out.returncode, 0)
        self.assertEqual(v3.wait_closed(), [])
        bad = self.broker.ctl_raw('kick', 'no-such-client-xyz', check=False)
        self.assertNotEqual(bad.returncode, 0)

    def test_stats(self):
        st = self.broker.ctl('stats')
        self.assertIn('connections', st['total'])
        self.assertIn('dropped_queue_full', st['total'])
        self.assertEqual(len(st['workers']), 2)
        out = self.broker.ctl_raw('stats', json_out=False)
        self.assertEqual(out.returncode, 0)
        self.assertTrue(out.stdout.strip())

    def test_bad_socket_path(self):
        import subprocess
        cp = subprocess.run([harness.RINGMQCTL, '--socket', '/nonexistent/ringmq.sock', 'status'],
                            capture_output=True, timeout=10)
        self.assertNotEqual(cp.returncode, 0)
        self.assertTrue(cp.stderr)


@ringmq_only
class FreshBroker(BrokerTest):
    """A broker per test: these tests kill workers or stop the broker."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(harness.RINGMQD):
            raise unittest.SkipTest('ringmqd not built')

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        self.broker = Broker(2, **self.broker_config).start()
        self.addCleanup(self.broker.stop)
        super().setUp()


@ringmq_only
class WorkerRestartTest(FreshBroker):

    def _wait_restarted(self, k, old_pid, restarts):
        def up():
            for w in self.broker.worker_info():
                if w['id'] == k and w['state'] == 'up' and w['pid'] != old_pid and w['restarts'] == restarts:
                    return w
            return None
        return wait_until(up, timeout=20, what='worker %d restarted (%d)' % (k, restarts))

    def test_killed_worker_restarted_others_stay_connected(self):
        t = self.topic()
        a = self.client(self.cid(1, 'a'), version=5)
        a.subscribe(t, 1)
        b = self.client(self.cid(1, 'b'), version=4)
        victim = self.client(self.cid(0, 'v'), version=5)
        b.publish(t, b'before', qos=1)
        self.assertEqual(a.get().payload, b'before')
        old = self.broker.worker_pid(0)
        os.kill(old, signal.SIGKILL)
        victim.wait_disconnected(10)
        # Worker 1's clients keep working while worker 0 is down and coming back.
        for i in range(5):
            b.publish(t, b'during-%d' % i, qos=1)
            self.assertEqual(a.get().payload, b'during-%d' % i)
        w = self._wait_restarted(0, old, 1)
        self.assertEqual(ppid_of(w['pid']), self.broker.proc.pid)
        self.assertTrue(a.is_connected() and b.is_connected(), 'worker 1 clients stayed connected')
        self.assertEqual(self.broker.ctl('status')['workers_up'], 2)
        # The restarted worker serves its slots again, across workers both ways.
        c = self.client(self.cid(0, 'c'), version=5)
        c.subscribe(t, 1)
        b.publish(t, b'after', qos=1)
        self.assertEqual(a.get().payload, b'after')
        self.assertEqual(c.get().payload, b'after')
        c.publish(t, b'from-0', qos=1)
        self.assertEqual(a.get().payload, b'from-0')
        self.assertEqual(c.get().payload, b'from-0')
        one = [w for w in self.broker.worker_info() if w['id'] == 1][0]
        self.assertEqual(one['restarts'], 0)

    def test_restart_counts_and_new_connections_spread(self):
        for n in (1, 2):
            old = self.broker.worker_pid(1)
            os.kill(old, signal.SIGKILL)
            self._wait_restarted(1, old, n)
        # New connections from many source ports work whichever worker accepts them.
        t = self.topic()
        s = self.client(self.cid(1, 's'), version=5)
        s.subscribe(t, 1)
        for i in range(8):
            r = self.raw_connected(self.cid(i % 2, 'p%d' % i), version=4)
            r.publish(t, b'%d' % i, qos=1)
            r.disconnect()
        self.assertEqual([int(m.payload) for m in s.get_n(8)], list(range(8)))

    def test_acked_messages_survive_publisher_worker_death(self):
        """A PUBACK means the owner worker of every matching session has the message: kill the publisher's
        worker mid-stream and every acknowledged message must still reach the subscriber."""
        t = self.topic()
        sid = self.cid(1, 's')
        s = self.client(sid, version=4, clean=False)
        s.subscribe(t, 1)
        s.disconnect()
        pub = self.raw_connected(self.cid(0, 'p'), version=4)
        n = 300
        for i in range(n):
            pub.send(R.publish(t, b'%d' % i, qos=1, pid=i + 1))
        acked = []
        killed = False
        old = self.broker.worker_pid(0)
        while True:
            try:
                p = pub.read_packet(timeout=10)
            except (R.Closed, ConnectionError):
                break
            self.assertEqual(p.type, R.PUBACK)
            acked.append(p.pid)
            if len(acked) == 50 and not killed:
                os.kill(old, signal.SIGKILL)
                killed = True
            if len(acked) == n:
                break
        self.assertGreaterEqual(len(acked), 50)
        self._wait_restarted(0, old, 1)
        s = self.client(sid, version=4, clean=False)
        self.assertTrue(s.session_present, 'the session lives on worker 1, untouched')
        got = set()
        want = {pid - 1 for pid in acked}
        deadline = time.monotonic() + 20
        while not want <= got and time.monotonic() < deadline:
            try:
                got.add(int(s.get(max(0.01, deadline - time.monotonic())).payload))
            except AssertionError:
                break
        self.assertEqual(sorted(want - got), [], 'acknowledged messages lost')


@ringmq_only
class ShutdownTest(FreshBroker):
    broker_config = {'shutdown_timeout_ms': 3000}

    def test_sigterm_graceful(self):
        self.expect_broker_exit()
        v5 = [self.raw_connected(self.cid(k, 'v5'), version=5) for k in (0, 1)]
        v3 = [self.raw_connected(self.cid(k, 'v3'), version=4) for k in (0, 1)]
        paho5 = self.client(self.cid(1, 'paho'), version=5)
        self.broker.signal(signal.SIGTERM)
        for r in v5:
            got = r.wait_closed(10)
            self.assertEqual([(p.type, p.reason) for p in got], [(R.DISCONNECT, R.RC_SERVER_SHUTTING_DOWN)])
        for r in v3:
            self.assertEqual(r.wait_closed(10), [])
        self.assertEqual(paho5.wait_disconnected(10), R.RC_SERVER_SHUTTING_DOWN)
        self.assertEqual(self.broker.wait_exit(10), 0)

    def test_sigterm_with_persistent_sessions_and_traffic(self):
        self.expect_broker_exit()
        t = self.topic()
        s = self.client(self.cid(1, 's'), version=4, clean=False)
        s.subscribe(t, 1)
        s.disconnect()
        pub = self.raw_connected(self.cid(0, 'p'), version=4)
        self.publish_many(pub, t, [b'%d' % i for i in range(100)])
        live = self.client(self.cid(0, 'l'), version=5)
        live.subscribe(t, 1)
        self.broker.signal(signal.SIGTERM)
        self.assertEqual(self.broker.wait_exit(10), 0)

    def test_ctl_shutdown(self):
        self.expect_broker_exit()
        r = self.raw_connected(self.cid(0), version=5)
        out = self.broker.ctl_raw('shutdown', json_out=False)
        self.assertEqual(out.returncode, 0)
        got = r.wait_closed(10)
        self.assertEqual([(p.type, p.reason) for p in got], [(R.DISCONNECT, R.RC_SERVER_SHUTTING_DOWN)])
        self.assertEqual(self.broker.wait_exit(10), 0)

    def test_ctl_shutdown_json(self):
        self.expect_broker_exit()
        rep = self.broker.ctl('shutdown')
        self.assertIsInstance(rep, dict)
        self.assertEqual(self.broker.wait_exit(10), 0)


if __name__ == '__main__':
    harness.main()

"""Drives the project's own C client (tests/client/rmq-client, path in $RMQ_CLIENT): pub/sub at every QoS in
3.1.1 and 5, persistent sessions, redelivery with DUP after --no-ack-after, clients on different workers."""
import os
import queue
import subprocess
import threading
import unittest

import harness
from harness import BrokerTest


class RmqClient:
    """One rmq-client run in the background: stdout lines are messages, stderr lines are status."""

    def __init__(self, test, args):
        self.argv = [harness.RMQ_CLIENT, '--host', harness.HOST, '--port', str(test.port)] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.out = queue.Queue()
        self.status = []
        self.suback = threading.Event()
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self):
        for line in self.proc.stdout:
            self.out.put(line.decode(errors='replace').rstrip('\n'))

    def _read_err(self):
        for line in self.proc.stderr:
            line = line.decode(errors='replace').rstrip('\n')
            self.status.append(line)
            if 'suback' in line:
                self.suback.set()

    def wait_suback(self, timeout=10):
        if not self.suback.wait(timeout):
            raise AssertionError('rmq-client: no SUBACK: %r' % self.status)

    def wait(self, timeout=30):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError('rmq-client did not exit: %r' % self.status)
        for t in self._threads:
            t.join(5)
        return rc

    def lines(self):
        out = []
        while True:
            try:
                out.append(self.out.get_nowait())
            except queue.Empty:
                return out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def parse(line):
    topic, payload, dup, qos = line.split('\t')
    return topic, payload, int(dup.split('=')[1]), int(qos.split('=')[1])


@unittest.skipUnless(harness.RMQ_CLIENT and os.access(harness.RMQ_CLIENT, os.X_OK),
                     'rmq-client not built (RMQ_CLIENT unset)')
class CClientTest(BrokerTest):

    def run_client(self, *args):
        c = RmqClient(self, args)
        self.addCleanup(c.kill)
        return c

    def pub(self, *args, expect_rc=0):
        c = self.run_client(*args)
        rc = c.wait()
        self.assertEqual(rc, expect_rc, c.status)
        return c

    def test_pub_sub_cross_worker_all_qos(self):
        for version in (4, 5):
            for qos in (0, 1, 2):
                with self.subTest(version=version, qos=qos):
                    t = self.topic('v%dq%d' % (version, qos))
                    s = self.run_client('--id', self.cid(1, 's'), '--version', version, '--qos', qos,
                                        '--count', 20, 'sub', t)
                    s.wait_suback()
                    self.pub('--id', self.cid(0, 'p'), '--version', version, '--qos', qos, '--count', 20,
                             '--payload', 'msg-%d', 'pub', t)
                    self.assertEqual(s.wait(), 0, s.status)
                    got = [parse(x) for x in s.lines()]
                    self.assertEqual(got, [(t, 'msg-%d' % i, 0, qos) for i in range(20)])

    def test_c_client_with_paho(self):
        t = self.topic()
        p = self.client(self.cid(0, 'paho'), version=5)
        p.subscribe(t, 2)
        self.pub('--id', self.cid(1, 'c'), '--version', 5, '--qos', 2, '--count', 50, 'pub', t)
        self.assertEqual([m.payload for m in p.get_n(50)], [b'msg-%d' % i for i in range(50)])

    def test_persistent_session_and_redelivery_with_dup(self):
        for version in (4, 5):
            with self.subTest(version=version):
                t = self.topic('v%d' % version)
                sid = self.cid(1, 's')
                common = ['--id', sid, '--version', version, '--clean', 0, '--qos', 1]
                if version == 5:
                    common += ['--expiry', 300]
                s = self.run_client(*common, '--count', 0, 'sub', t)
                self.assertEqual(s.wait(), 0, s.status)
                self.pub('--id', self.cid(0, 'p'), '--version', version, '--qos', 1, '--count', 200,
                         '--payload', 'n%d', 'pub', t)
                # Take 160 but acknowledge only the first 150, then drop the connection (10 unacknowledged stay
                # well inside any in-flight window).
                s = self.run_client(*common, '--count', 160, '--no-ack-after', 150, 'sub', t)
                self.assertEqual(s.wait(), 0, s.status)
                self.assertTrue(any('session_present=1' in x for x in s.status), s.status)
                got = [parse(x) for x in s.lines()]
                self.assertEqual([g[1] for g in got], ['n%d' % i for i in range(160)])
                self.assertTrue(all(g[2] == 0 for g in got))
                # The 10 unacknowledged come again first, DUP=1, in order; then the 40 never sent.
                s = self.run_client(*common, '--count', 50, 'sub', t)
                self.assertEqual(s.wait(), 0, s.status)
                got = [parse(x) for x in s.lines()]
                self.assertEqual([(g[0], g[1], g[3]) for g in got], [(t, 'n%d' % i, 1) for i in range(150, 200)])
                dups = [g[2] for g in got]
                # Messages the broker had already sent (even if unread by the client) are DUP too.
                self.assertEqual(dups[:10], [1] * 10, '[MQTT-4.4.0-1] unacknowledged ones re-sent with DUP')
                self.assertEqual(dups, sorted(dups, reverse=True), 'DUP ones first, then new ones')
                # And nothing more is pending.
                s = self.run_client(*common, '--count', 1, '--timeout', 1, 'sub', t)
                rc = s.wait()
                self.assertEqual((rc, s.lines()), (4, []), 'timeout: nothing left to deliver')

    def test_many_publishers_both_workers(self):
        t = self.topic()
        s = self.run_client('--id', self.cid(0, 's'), '--version', 5, '--qos', 1, '--count', 400, 'sub', t + '/#')
        s.wait_suback()
        pubs = [self.run_client('--id', self.cid(k % 2, 'p%d' % k), '--version', 4 + k % 2, '--qos', 1,
                                '--count', 100, '--payload', '%d' % k + '-%d', 'pub', '%s/%d' % (t, k))
                for k in range(4)]
        for p in pubs:
            self.assertEqual(p.wait(), 0, p.status)
        self.assertEqual(s.wait(), 0, s.status)
        got = [parse(x) for x in s.lines()]
        for k in range(4):
            self.assertEqual([g[1] for g in got if g[0] == '%s/%d' % (t, k)],
                             ['%d-%d' % (k, i) for i in range(100)], 'order per publisher %d' % k)

    def test_exit_codes(self):
        c = self.run_client('--id', self.cid(), '--count', 1, '--timeout', 0.5, 'sub', self.topic())
        self.assertEqual(c.wait(), 4, 'timeout')
        c = RmqClient(self, ['--version', 7, 'sub', 'x'])
        self.assertEqual(c.wait(), 1, 'usage')
        port = harness.free_port()
        c = subprocess.run([harness.RMQ_CLIENT, '--port', str(port), 'pub', 'x'], capture_output=True, timeout=10)
        self.assertEqual(c.returncode, 2, 'connection refused')
        for version in (4, 5):
            c = self.run_client('--id', self.cid(), '--version', version, '--qos', 1, '--count', 1,
                                'pub', 'bad/+/topic')
            self.assertEqual(c.wait(), 5, 'the broker closes on a wildcard topic: %r' % c.status)
            if version == 5:
                self.assertTrue(any('disconnect reason=0x' in x for x in c.status) or harness.IS_MOSQUITTO,
                                c.status)


if __name__ == '__main__':
    harness.main()

"""End to end with Debian's mosquitto_pub / mosquitto_sub (MQTT 3.1.1 and 5): QoS 0/1/2, properties,
retained messages, persistent sessions (-c -i -q 1), will messages, clients on different workers."""
import queue
import shutil
import signal
import subprocess
import threading
import time
import unittest

import harness
from harness import BrokerTest

SEP = '|'


class Sub:
    """mosquitto_sub in the background; start() returns once the broker acknowledged the subscription."""

    def __init__(self, test, args, fmt='%t|%q|%r|%p'):
        # stdbuf: mosquitto_sub's stdio would block-buffer a pipe and hide the SUBACK debug line.
        self.argv = ['stdbuf', '-oL', 'mosquitto_sub', '-h', harness.HOST, '-p', str(test.port), '-d', '-F', fmt] + args
        self.lines = queue.Queue()
        self.debug = []
        self.proc = None

    def start(self, timeout=10, wait_suback=True):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.subacked = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if wait_suback and not self.subacked.wait(timeout):
            self.kill()
            raise AssertionError('mosquitto_sub: no SUBACK: %r' % self.debug)
        return self

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors='replace').rstrip('\n')
            if line.startswith(('Client ', 'Subscribed ', 'Timed out')):
                self.debug.append(line)
                if 'received SUBACK' in line:
                    self.subacked.set()
            else:
                self.lines.put(line)

    def get_n(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                out.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError('mosquitto_sub: %d of %d lines: %r %r' % (len(out), n, out, self.debug[-5:]))
        return out

    def wait(self, timeout=15):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError('mosquitto_sub did not exit')

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(5)


@unittest.skipUnless(shutil.which('mosquitto_sub') and shutil.which('mosquitto_pub'),
                     'mosquitto-clients not installed')
class MosquittoClientsTest(BrokerTest):

    def pub(self, *args, stdin=None):
        argv = ['mosquitto_pub', '-h', harness.HOST, '-p', str(self.port)] + list(args)
        cp = subprocess.run(argv, input=stdin, capture_output=True, timeout=20)
        self.assertEqual(cp.returncode, 0, '%s: %s' % (' '.join(argv), cp.stderr.decode(errors='replace')))

    def sub(self, *args, fmt='%t|%q|%r|%p', wait_suback=True):
        s = Sub(self, list(args), fmt)
        self.addCleanup(s.kill)
        return s.start(wait_suback=wait_suback)

    def test_pub_sub_all_qos_cross_worker(self):
        for version in ('mqttv311', 'mqttv5'):
            for qos in (0, 1, 2):
                with self.subTest(version=version, qos=qos):
                    t = self.topic('%s-%d' % (version, qos))
                    s = self.sub('-V', version, '-q', str(qos), '-t', t, '-C', '3', '-W', '20',
                                 '-i', self.cid(1, 's'))
                    self.pub('-V', version, '-q', str(qos), '-t', t, '-l', '-i', self.cid(0, 'p'),
                             stdin=b'one\ntwo\nthree\n')
                    self.assertEqual(s.get_n(3), ['%s|%d|0|%s' % (t, qos, p) for p in ('one', 'two', 'three')])
                    self.assertEqual(s.wait(), 0)

    def test_v5_properties(self):
        t = self.topic()
        s = self.sub('-V', 'mqttv5', '-q', '1', '-t', t, '-C', '1', '-W', '20', '-i', self.cid(0, 's'),
                     fmt='%P|%C|%R|%p')
        self.pub('-V', 'mqttv5', '-q', '1', '-t', t, '-m', 'body', '-i', self.cid(1, 'p'),
                 '-D', 'publish', 'user-property', 'k1', 'v1',
                 '-D', 'publish', 'content-type', 'text/x',
                 '-D', 'publish', 'response-topic', 'r/t')
        self.assertEqual(s.get_n(1), ['k1:v1|text/x|r/t|body'])
        s.wait()

    def test_retained(self):
        t = self.topic()
        self.pub('-t', t, '-m', 'kept', '-r', '-q', '1')
        s = self.sub('-t', t, '-C', '1', '-W', '20', '-q', '1')
        self.assertEqual(s.get_n(1), ['%s|1|1|kept' % t])
        s.wait()
        self.pub('-t', t, '-n', '-r', '-q', '1')
        s = self.sub('-t', t, '-W', '1', '-q', '1')  # -W 1: a bounded wait proving nothing comes
        s.wait()
        self.assertTrue(s.lines.empty(), 'cleared retained message not sent')

    def _persistent(self, version, extra):
        t = self.topic(version)
        sid = self.cid(1, 'ps')
        s = self.sub('-V', version, '-c', '-i', sid, '-q', '1', '-t', t, '-E', *extra, wait_suback=False)
        self.assertEqual(s.wait(), 0)
        self.assertTrue(s.subacked.wait(10), "SUBACK seen (the reader thread may lag the exit)")
        self.pub('-V', version, '-q', '1', '-t', t, '-l', '-i', self.cid(0, 'pp'),
                 stdin=b''.join(b'm%d\n' % i for i in range(5)))
        # The queued messages may arrive before the SUBACK of the (repeated) subscription.
        s = self.sub('-V', version, '-c', '-i', sid, '-q', '1', '-t', t, '-C', '5', '-W', '20', *extra,
                     wait_suback=False)
        self.assertEqual(s.get_n(5), ['%s|1|0|m%d' % (t, i) for i in range(5)])
        self.assertEqual(s.wait(), 0)

    def test_persistent_session_v311(self):
        self._persistent('mqttv311', [])

    def test_persistent_session_v5(self):
        self._persistent('mqttv5', ['-x', '60'])

    def test_will_of_killed_client(self):
        t = self.topic()
        watcher = self.client(self.cid(0, 'w'), version=5)
        watcher.subscribe(t, 1)
        s = self.sub('-t', self.topic('other'), '-i', self.cid(1, 'dying'), '--will-topic', t,
                     '--will-payload', 'bye', '--will-qos', '1')
        s.kill(signal.SIGKILL)
        m = watcher.get(10)
        self.assertEqual(m.payload, b'bye')

    def test_paho_to_mosquitto_sub_and_back(self):
        t = self.topic()
        s = self.sub('-V', 'mqttv5', '-t', t + '/in', '-q', '2', '-C', '2', '-W', '20', '-i', self.cid(0, 's'))
        p = self.client(self.cid(1, 'paho'), version=5)
        p.subscribe(t + '/out', 2)
        p.publish(t + '/in', b'a', qos=2)
        p.publish(t + '/in', b'b', qos=1)
        # Sorted: libmosquitto hands a QoS 2 message over at PUBREL, so b (QoS 1) may be printed first.
        self.assertEqual(sorted(s.get_n(2)), ['%s/in|1|0|b' % t, '%s/in|2|0|a' % t])
        self.pub('-V', 'mqttv5', '-t', t + '/out', '-q', '2', '-m', 'back')
        m = p.get()
        self.assertEqual((m.payload, m.qos), (b'back', 2))


if __name__ == '__main__':
    harness.main()

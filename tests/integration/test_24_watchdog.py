"""Heartbeats, the systemd watchdog and the probes (ringmq only; supervisor/watchdog.h, docs/operations.md).

The supervisor pings every worker's loop over its control channel; a loop that does not answer (here: a
SIGSTOPped worker) stops the WATCHDOG=1 notifications, makes `ringmqctl live` fail, and after heartbeat_misses
unanswered heartbeats is killed and restarted. The tests play systemd: they bind their own AF_UNIX datagram
socket, start ringmqd with NOTIFY_SOCKET and WATCHDOG_USEC, and read what it sends. Every wait is on the socket
(recv with a timeout) or wait_until; a gap in the pings is proved by a recv that times out.
"""
import contextlib
import os
import signal
import socket
import tempfile
import time
import unittest

import harness
from harness import Broker, IS_MOSQUITTO, RedisServer, wait_until

WATCHDOG_MS = 1000  # WATCHDOG_USEC given to ringmqd: heartbeats every 250 ms (a quarter of it)


class Notify:
    """The service manager's end of sd_notify: a datagram socket; every message is (monotonic time, text)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='ringmq-notify-')
        self.path = os.path.join(self.dir, 'notify.sock')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.log = []

    def recv(self, timeout):
        """The next message, or None when none came within timeout seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        m = (time.monotonic(), data.decode(errors='replace'))
        self.log.append(m)
        return m

    def wait_for(self, text, timeout):
        """The time at which a message containing the line `text` arrives; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                raise AssertionError('no %s within %.1f s (got %r)' % (text, timeout, self.log[-5:]))
            if text in m[1].split('\n'):
                return m[0]

    def wait_gap(self, gap, within):
        """Wait until `gap` seconds pass without WATCHDOG=1, starting no later than `within` seconds from now.
        Returns the time of the last WATCHDOG=1 before the gap (or None)."""
        deadline = time.monotonic() + within
        last = None
        while time.monotonic() < deadline:
            m = self.recv(gap)
            if m is None:
                return last
            if 'WATCHDOG=1' in m[1].split('\n'):
                last = m[0]
        raise AssertionError('WATCHDOG=1 kept coming for %.1f s (no gap of %.1f s): %r' % (within, gap,
                                                                                       self.log[-8:]))

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass


@contextlib.contextmanager
def environ(**env):
    """Set (value) or unset (None) environment variables for the broker started inside the block."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stopped(pid):
    with open('/proc/%d/stat' % pid) as f:
        return f.read().rsplit(')', 1)[1].split()[0] == 'T'


@unittest.skipIf(IS_MOSQUITTO, 'ringmq supervisor')
class WatchdogTest(unittest.TestCase):

    def start(self, watchdog_pid=None, args=()):
        self.notify = Notify()
        self.addCleanup(self.notify.close)
        b = Broker(2, list(args))
        with environ(NOTIFY_SOCKET=self.notify.path, WATCHDOG_USEC=str(WATCHDOG_MS * 1000),
                     WATCHDOG_PID=watchdog_pid):
            b.start()
        self.addCleanup(b.stop)
        self.ready_at = self.notify.wait_for('READY=1', 10)
        return b

    def cont(self, pid):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def test_pings_while_every_worker_answers(self):
        b = self.start()
        times = [self.notify.wait_for('WATCHDOG=1', WATCHDOG_MS / 1000.0) for _ in range(5)]
        # Every interval shorter than the watchdog's: systemd never fires on a healthy broker.
        for a, c in zip(times, times[1:]):
            self.assertLess(c - a, WATCHDOG_MS / 1000.0)
        self.assertIn('systemd watchdog: 1000 ms; heartbeat every 250 ms', b.log_text())
        live = b.ctl('live')
        self.assertTrue(live['live'], live)
        self.assertEqual(live['watchdog_ms'], WATCHDOG_MS)
        self.assertEqual(live['heartbeat_ms'], WATCHDOG_MS // 4)

    def test_stopped_worker_stops_pings_until_it_runs_again(self):
        # heartbeat_misses 0: the supervisor never kills it, so the pings must stay off while it is stopped.
        b = self.start(args=['--heartbeat-misses', '0'])
        self.notify.wait_for('WATCHDOG=1', 2)
        pid = b.worker_pid(1)
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(self.cont, pid)
        t_stop = time.monotonic()
        wait_until(lambda: stopped(pid), 5, what='worker 1 stopped')
        # A ping answered just before the stop may still be counted once; after that none until it runs: a
        # gap of twice the watchdog interval (systemd would have killed the service) within a few heartbeats.
        last = self.notify.wait_gap(2 * WATCHDOG_MS / 1000.0, within=3.0)
        if last is not None:
            self.assertLess(last - t_stop, 1.5 * WATCHDOG_MS / 1000.0, 'last WATCHDOG=1 long after the stop')
        live = b.ctl_raw('live', check=False)
        self.assertEqual(live.returncode, 1, live.stdout)
        self.assertIn(b'worker 1 (pid %d) has not answered a heartbeat' % pid, live.stdout)
        self.assertIn('worker 1 (pid %d) has not answered a heartbeat' % pid, b.log_text())
        os.kill(pid, signal.SIGCONT)
        t_cont = time.monotonic()
        self.notify.wait_for('WATCHDOG=1', 3 * WATCHDOG_MS / 1000.0)
        self.assertLess(time.monotonic() - t_cont, 3 * WATCHDOG_MS / 1000.0)
        self.assertEqual(b.worker_pid(1), pid, 'the stopped worker was not restarted')
        wait_until(lambda: b.ctl_raw('live', check=False).returncode == 0, 5, what='live again')

    def test_wedged_worker_is_killed_and_restarted(self):
        b = self.start(args=['--heartbeat-misses', '8'])
        self.notify.wait_for('WATCHDOG=1', 2)
        pid = b.worker_pid(1)
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(self.cont, pid)
        # No ping while it hangs (a gap longer than the watchdog interval), then it is killed after 8 misses (~2 s)
        # and the pings resume with its successor.
        self.notify.wait_gap(WATCHDOG_MS / 1000.0, within=3.0)
        self.notify.wait_for('WATCHDOG=1', 10)
        wait_until(lambda: b.worker_pid(1) not in (None, pid), 10, what='worker 1 restarted')
        log = b.log_text()
        self.assertIn('worker 1 (pid %d) has not answered a heartbeat for' % pid, log)
        self.assertIn('its loop is stuck; killing it (SIGKILL)', log)
        self.assertEqual([w['restarts'] for w in b.worker_info()], [0, 1])
        # Serving again: pings keep coming, the probes pass.
        for _ in range(3):
            self.notify.wait_for('WATCHDOG=1', WATCHDOG_MS / 1000.0)
        wait_until(lambda: b.ctl_raw('live', check=False).returncode == 0, 5, what='live again')
        wait_until(lambda: b.ctl_raw('ready', check=False).returncode == 0, 5, what='ready again')

    def test_watchdog_of_another_process_is_not_ours(self):
        # WATCHDOG_PID names the process systemd watches (a wrapper that exec'd us would be another pid).
        b = self.start(watchdog_pid=str(os.getpid()))
        m = self.notify.recv(3 * WATCHDOG_MS / 1000.0)
        self.assertIsNone(m, 'WATCHDOG=1 sent although WATCHDOG_PID is not ringmqd')
        self.assertEqual(b.ctl('live')['watchdog_ms'], 0)


@unittest.skipIf(IS_MOSQUITTO, 'ringmq probes')
class ProbeTest(unittest.TestCase):
    """ringmqctl live / ready: the exec probes of the Kubernetes StatefulSet."""

    def probe(self, b, what):
        return b.ctl_raw(what, json_out=False, check=False)

    def test_stopped_worker_is_not_live(self):
        b = Broker(2, ['--heartbeat-ms', '200', '--heartbeat-misses', '0']).start()
        self.addCleanup(b.stop)
        self.assertEqual(self.probe(b, 'live').returncode, 0)
        self.assertEqual(self.probe(b, 'ready').returncode, 0)
        pid = b.worker_pid(0)
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(self.cont, pid)
        cp = wait_until(lambda: (lambda c: c if c.returncode == 1 else None)(self.probe(b, 'live')), 5,
                        what='live failing')
        self.assertIn(b'not live: worker 0 (pid %d) has not answered a heartbeat' % pid, cp.stdout)
        cp = self.probe(b, 'ready')
        self.assertEqual(cp.returncode, 1)
        self.assertIn(b'worker 0 does not answer heartbeats', cp.stdout)
        os.kill(pid, signal.SIGCONT)
        wait_until(lambda: self.probe(b, 'live').returncode == 0, 5, what='live again')
        wait_until(lambda: self.probe(b, 'ready').returncode == 0, 5, what='ready again')

    def cont(self, pid):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def test_redis_down_is_live_but_not_ready(self):
        redis = RedisServer().start()
        self.addCleanup(redis.stop)
        b = Broker(2, ['--store', 'redis', '--redis-addrs', redis.addr, '--heartbeat-ms', '200']).start()
        self.addCleanup(b.stop)
        wait_until(lambda: self.probe(b, 'ready').returncode == 0, 5, what='ready with Redis up')
        redis.kill()
        cp = wait_until(lambda: (lambda c: c if c.returncode == 1 else None)(self.probe(b, 'ready')), 10,
                        what='not ready with Redis down')
        self.assertIn(b'cannot reach Redis', cp.stdout)
        self.assertEqual(self.probe(b, 'live').returncode, 0)
        redis.start()
        wait_until(lambda: self.probe(b, 'ready').returncode == 0, 20, what='ready once Redis is back')
        self.assertEqual(self.probe(b, 'live').returncode, 0)

    def test_redis_down_at_start_is_live_but_not_ready(self):
        # Nothing listens on this port: the workers wait for their sessions to be restored, their loops run.
        b = Broker(2, ['--store', 'redis', '--redis-addrs', '127.0.0.1:%d' % harness.free_port(),
                       '--heartbeat-ms', '200'])
        b.wait_ready = lambda timeout: wait_until(lambda: b.alive() and os.path.exists(b.sock_path), timeout,
                                                  what='control socket')
        b.start()
        self.addCleanup(b.stop)
        # Both workers answer heartbeats (a few of them, so no miss is pending) and neither is up.
        wait_until(lambda: all(w['last_answer_ms_ago'] is not None for w in b.ctl('live')['workers']), 5,
                   what='first heartbeats answered')
        self.assertEqual(self.probe(b, 'live').returncode, 0, b.log_tail())
        cp = self.probe(b, 'ready')
        self.assertEqual(cp.returncode, 1)
        self.assertIn(b'worker 0 is starting', cp.stdout)
        ready = b.ctl_raw('ready', check=False)
        self.assertEqual(ready.returncode, 1)

    @unittest.skipUnless(os.path.exists(harness.REDIS_SERVER), 'redis-server not installed')
    def test_node_without_kafka_is_live_but_not_ready(self):
        # cluster = kafka with Kafka unreachable: the Kafka process blocks in its start-up (creating the topics)
        # and tries again every few seconds. That is no stuck loop: it is not killed, the broker stays live.
        redis = RedisServer().start()
        self.addCleanup(redis.stop)
        b = Broker(2, ['--cluster', 'kafka', '--store', 'redis', '--redis-addrs', redis.addr,
                       '--kafka-brokers', '127.0.0.1:%d' % harness.free_port(), '--kafka-timeout-ms', '1000',
                       '--heartbeat-ms', '100', '--heartbeat-misses', '3'])
        b.wait_ready = lambda timeout: wait_until(lambda: b.alive() and os.path.exists(b.sock_path), timeout,
                                                  what='control socket')
        b.start()
        self.addCleanup(b.stop)
        # Its first attempt failed (the line comes after the attempt's timeout, many heartbeats later).
        wait_until(lambda: "cannot create the cluster's topics" in b.log_text(), 20, what='Kafka attempt logged')
        self.assertNotIn('killing it', b.log_text())
        self.assertEqual(self.probe(b, 'live').returncode, 0, b.log_tail())
        cp = self.probe(b, 'ready')
        self.assertEqual(cp.returncode, 1)
        self.assertIn(b'the Kafka process is starting', cp.stdout)
        procs = b.ctl('live')['workers']
        self.assertEqual(len(procs), 3)
        self.assertTrue(procs[2]['kafka'])


if __name__ == '__main__':
    harness.main()

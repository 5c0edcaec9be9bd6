"""Prometheus metrics (ringmq only): /metrics scraped from a running broker under real traffic (paho), the
exposition format parsed strictly (HELP/TYPE for every family, valid names and labels, _total counters,
cumulative histogram buckets whose +Inf equals _count), counters and latency histogram counts moving by exactly
the traffic sent, worker restarts counted, a stopped worker not blocking a scrape, metrics_port off = nothing
more listens, a bad metrics_address = one clear line and exit status 2."""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import Broker, BrokerTest, ringmq_only, wait_until, free_port
import rawmqtt as R


def built_with_metrics():
    try:
        with open(os.path.join(harness.BUILDDIR, 'build_config.h')) as f:
            return '#define HAVE_MICROHTTPD 1' in f.read()
    except OSError:
        return False


needs_metrics = unittest.skipUnless(built_with_metrics(), 'ringmqd built without libmicrohttpd (-Dmetrics)')

NAME = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"')
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')


def parse_labels(text, line):
    labels = {}
    pos = 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise AssertionError('bad labels in %r' % line)
        if m.group(1) in labels:
            raise AssertionError('label %s twice in %r' % (m.group(1), line))
        labels[m.group(1)] = m.group(2)
        pos = m.end()
        if pos < len(text):
            if text[pos] != ',':
                raise AssertionError('bad label separator in %r' % line)
            pos += 1
    return labels


def parse(text):
    """Strict text format 0.0.4 parser: returns ({(name, frozenset(labels.items())): value}, {family: type})."""
    assert text.endswith('\n'), 'exposition must end with a newline'
    helps, types, samples, done = {}, {}, {}, set()
    current = None
    for line in text.splitlines():
        if line.startswith('#'):
            parts = line.split(' ', 3)
            if len(parts) < 3 or parts[1] not in ('HELP', 'TYPE'):
                continue  # a plain comment
            fam = parts[2]
            assert NAME.match(fam), 'bad metric name %r' % fam
            if fam != current:
                assert fam not in done, 'family %s split in two blocks' % fam
                if current is not None:
                    done.add(current)
                current = fam
            table = helps if parts[1] == 'HELP' else types
            assert fam not in table, '%s twice for %s' % (parts[1], fam)
            if parts[1] == 'TYPE':
                assert len(parts) == 4 and parts[3] in TYPES, 'bad TYPE line %r' % line
            else:
                assert len(parts) == 4 and parts[3], 'empty HELP for %s' % fam
            table[fam] = parts[3]
            continue
        m = SAMPLE.match(line)
        assert m, 'bad sample line %r' % line
        name, ltext, value = m.groups()
        fam = name
        for suffix in ('_bucket', '_sum', '_count'):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == 'histogram':
                fam = name[:-len(suffix)]
        assert fam in helps and fam in types, 'sample %r without HELP and TYPE' % line
        assert fam == current, 'sample %r outside its family block (%s)' % (line, current)
        labels = parse_labels(ltext or '', line)
        if types[fam] == 'counter':
            assert fam.endswith('_total'), 'counter %s does not end in _total' % fam
        v = float(value)  # raises on a bad number
        key = (name, frozenset(labels.items()))
        assert key not in samples, 'duplicate sample %r' % line
        samples[key] = v
    for fam, t in types.items():
        assert fam in helps, 'TYPE without HELP: %s' % fam
        if t == 'histogram':
            check_histogram(fam, samples)
    return samples, types


def check_histogram(fam, samples):
    series = {}
    for (name, labels), v in samples.items():
        if name == fam + '_bucket':
            d = dict(labels)
            le = d.pop('le')
            series.setdefault(frozenset(d.items()), []).append((float('inf') if le == '+Inf' else float(le), v))
    for labels, buckets in series.items():
        buckets.sort()
        assert buckets[-1][0] == float('inf'), '%s %s has no +Inf bucket' % (fam, dict(labels))
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), '%s %s buckets not cumulative: %r' % (fam, dict(labels), buckets)
        assert samples[(fam + '_count', labels)] == counts[-1], '%s +Inf != _count' % fam
        assert (fam + '_sum', labels) in samples, '%s has no _sum' % fam


def total(samples, name, **want):
    return sum(v for (n, labels), v in samples.items()
               if n == name and all(dict(labels).get(k) == str(x) for k, x in want.items()))


@ringmq_only
@needs_metrics
class MetricsTest(BrokerTest):

    @classmethod
    def setUpClass(cls):
        cls.metrics_port = free_port()
        cls.broker_args = ('--metrics-port', str(cls.metrics_port), '--sys-interval', '0')
        super().setUpClass()

    def get(self, path='/metrics', method='GET', timeout=10.0):
        req = urllib.request.Request('http://127.0.0.1:%d%s' % (self.metrics_port, path), method=method)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get('Content-Type'), r.read().decode()

    def scrape(self):
        status, ctype, text = self.get()
        self.assertEqual(status, 200)
        self.assertEqual(ctype, 'text/plain; version=0.0.4; charset=utf-8')
        return parse(text)[0]

    def test_format_strict(self):
        c = self.client(self.cid(0))
        c.subscribe('fmt/#', qos=1)
        c.publish('fmt/x', b'1', qos=1)
        c.get()
        samples, types = parse(self.get()[2])
        for fam in ('ringmq_connections', 'ringmq_sessions', 'ringmq_messages_received_total',
                    'ringmq_messages_sent_total', 'ringmq_received_bytes_total', 'ringmq_sent_bytes_total',
                    'ringmq_puback_latency_seconds', 'ringmq_delivery_latency_seconds', 'ringmq_queued_messages',
                    'ringmq_queued_messages_largest_session', 'ringmq_messages_dropped_total',
                    'ringmq_store_operations_total', 'ringmq_store_pending_operations',
                    'ringmq_worker_restarts_total', 'ringmq_postgresql_queries_total', 'ringmq_auth_ok_total'):
            self.assertIn(fam, types)
        self.assertEqual(types['ringmq_puback_latency_seconds'], 'histogram')
        self.assertEqual(types['ringmq_connections'], 'gauge')
        # Gauges are never exported a second time as counters by the catch-all for the workers' counters.
        for fam in types:
            if fam.endswith('_total'):
                self.assertNotIn(fam[:-len('_total')], types, 'gauge %s also exported as a counter' % fam)
        for w in (0, 1):
            self.assertIn(('ringmq_messages_received_total', frozenset({'worker': str(w), 'qos': '1'}.items())),
                          samples)
        self.assertEqual(self._status('/nothing-here'), 404)
        self.assertEqual(self._status('/metrics', 'POST'), 405)

    def _status(self, path, method='GET'):
        try:
            return self.get(path, method)[0]
        except urllib.error.HTTPError as e:
            return e.code

    def test_counters_and_histograms_move(self):
        sub = self.client(self.cid(1, 'sub'))
        sub.subscribe('move/#', qos=1)
        pub = self.client(self.cid(0, 'pub'))
        # Settle: what this test's own connections did so far is in the baseline.
        before = self.scrape()
        n1, n0, size = 20, 7, 100
        for i in range(n1):
            pub.publish('move/q1', b'x' * size, qos=1)
        for i in range(n0):
            pub.publish('move/q0', b'y' * size, qos=0)
        got = sub.get_n(n1 + n0)
        self.assertEqual(len(got), n1 + n0)

        def delta(s, name, **labels):
            return total(s, name, **labels) - total(before, name, **labels)

        def moved():
            s = self.scrape()
            return s if delta(s, 'ringmq_delivery_latency_seconds_count') >= n1 and \
                delta(s, 'ringmq_messages_sent_total', qos=0) >= n0 else None
        after = wait_until(moved, timeout=10, interval=0.2, what='the scraped counters to move')
        d = lambda name, **labels: delta(after, name, **labels)  # noqa: E731
        self.assertEqual(d('ringmq_messages_received_total', qos=1), n1)
        self.assertEqual(d('ringmq_messages_received_total', qos=0), n0)
        self.assertEqual(d('ringmq_messages_received_total', qos=2), 0)
        self.assertEqual(d('ringmq_messages_received_total', worker=0), n1 + n0, 'counted on the publisher\'s worker')
        self.assertEqual(d('ringmq_messages_sent_total', qos=1), n1)
        self.assertEqual(d('ringmq_messages_sent_total', qos=0), n0)
        self.assertEqual(d('ringmq_messages_sent_total', worker=1), n1 + n0, 'counted on the subscriber\'s worker')
        # PUBACKs on the publisher's worker, subscriber acknowledgements on the subscriber's.
        self.assertEqual(d('ringmq_puback_latency_seconds_count'), n1)
        self.assertEqual(d('ringmq_puback_latency_seconds_count', worker=0), n1)
        self.assertEqual(d('ringmq_delivery_latency_seconds_count', worker=1), n1)
        self.assertGreater(d('ringmq_puback_latency_seconds_sum'), 0)
        self.assertLess(d('ringmq_puback_latency_seconds_sum'), n1 * 5.0)
        self.assertGreaterEqual(d('ringmq_received_bytes_total', worker=0), (n1 + n0) * size)
        self.assertGreaterEqual(d('ringmq_sent_bytes_total', worker=1), (n1 + n0) * size)
        # The gauges agree with ringmqctl.
        st = self.broker.ctl('stats')
        for w in st['workers']:
            k = w['worker']
            self.assertEqual(total(after, 'ringmq_sessions', worker=k), w['sessions'])
        self.assertEqual(total(after, 'ringmq_connections'), self.broker.ctl('status')['connections'])

    def test_offline_session_and_queue_depth(self):
        cid = self.cid(1, 'off')
        s = self.client(cid, clean=False)
        s.subscribe('depth/#', qos=1)
        s.disconnect()
        pub = self.client(self.cid(0, 'p'))
        for i in range(5):
            pub.publish('depth/x', b'q', qos=1)

        def queued():
            s = self.scrape()
            return s if total(s, 'ringmq_queued_messages', worker=1) >= 5 else None
        after = wait_until(queued, timeout=10, interval=0.2, what='5 queued messages in the metrics')
        self.assertGreaterEqual(total(after, 'ringmq_queued_messages_largest_session', worker=1), 5)
        self.assertGreaterEqual(total(after, 'ringmq_sessions', worker=1, state='offline'), 1)
        r = self.client(cid, clean=False)
        r.get_n(5)
        r.disconnect(); self.client(cid, clean=True).disconnect()  # noqa: E702 - end the session

    def test_worker_restart_counted_and_stopped_worker_does_not_block(self):
        pid = self.broker.worker_pid(1)
        os.kill(pid, signal.SIGSTOP)
        try:
            took = []

            def unanswered():
                # A snapshot younger than 1 s is served as it is; the next gather finds worker 1 stopped.
                t0 = time.monotonic()
                s = self.scrape()
                took.append(time.monotonic() - t0)
                return s if total(s, 'ringmq_worker_answered', worker=1) == 0 else None
            s = wait_until(unanswered, timeout=10, interval=0.1, what='a scrape without worker 1')
            self.assertLess(max(took), 4.0, 'a scrape waits at most the gather deadline (2 s)')
            self.assertEqual(total(s, 'ringmq_worker_answered', worker=0), 1)
            self.assertNotIn(('ringmq_connections', frozenset({'worker': '1'}.items())), s)
        finally:
            os.kill(pid, signal.SIGCONT)
        before = total(self.scrape(), 'ringmq_worker_restarts_total', worker=1)
        os.kill(pid, signal.SIGKILL)

        def restarted():
            s = self.scrape()
            return s if total(s, 'ringmq_worker_restarts_total', worker=1) == before + 1 and \
                total(s, 'ringmq_worker_up', worker=1) == 1 and \
                total(s, 'ringmq_worker_answered', worker=1) == 1 else None
        wait_until(restarted, timeout=20, interval=0.2, what='worker 1 restarted and counted')

    def test_concurrent_scrapes(self):
        results = []

        def one():
            try:
                results.append(parse(self.get()[2])[0])
            except Exception as e:  # noqa: BLE001 - reported below
                results.append(e)
        ts = [threading.Thread(target=one) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(15)
        self.assertEqual(len(results), 8)
        for r in results:
            self.assertIsInstance(r, dict, repr(r))
        # ringmqctl still works beside the metrics gathers.
        self.assertEqual(self.broker.ctl('status')['workers_up'], 2)


def listening_ports(pid):
    """TCP ports in LISTEN state held by process pid (its fds against /proc/net/tcp and tcp6)."""
    inodes = set()
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            target = os.readlink('/proc/%d/fd/%s' % (pid, fd))
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    ports = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(table) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[3] == '0A' and parts[9] in inodes:
                    ports.add(int(parts[1].rsplit(':', 1)[1], 16))
    return ports


@ringmq_only
class MetricsOffTest(BrokerTest):
    """Without metrics_port (the default) the broker listens on its MQTT port only."""

    def test_nothing_else_listens(self):
        pids = [self.broker.proc.pid] + [w['pid'] for w in self.broker.worker_info()]
        for pid in pids:
            self.assertEqual(listening_ports(pid), {self.broker.port}, 'process %d' % pid)
        self.assertEqual(self.broker.ctl('status')['workers_up'], 2)


@ringmq_only
class BadAddressTest(unittest.TestCase):

    def run_broker(self, *args):
        with tempfile.TemporaryDirectory(prefix='ringmq-itest-') as d:
            argv = [harness.RINGMQD, '--workers', '2', '--port', str(free_port()), '--listen-host', '127.0.0.1',
                    '--control-socket', os.path.join(d, 'ctl.sock')] + list(args)
            cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20, cwd=d)
            return cp.returncode, (cp.stdout + cp.stderr).decode(errors='replace')

    @needs_metrics
    def test_not_an_address(self):
        rc, out = self.run_broker('--metrics-port', str(free_port()), '--metrics-address', 'localhost:x')
        self.assertEqual(rc, 2, out)
        lines = [l for l in out.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, out)
        self.assertIn("metrics_address 'localhost:x'", lines[0])

    @needs_metrics
    def test_address_not_on_this_host(self):
        # 192.0.2.1 is TEST-NET-1: never an address of this machine.
        rc, out = self.run_broker('--metrics-port', str(free_port()), '--metrics-address', '192.0.2.1')
        self.assertEqual(rc, 2, out)
        bad = [l for l in out.splitlines() if 'metrics_address' in l]
        self.assertEqual(len(bad), 1, out)
        self.assertIn('192.0.2.1', bad[0])
        self.assertNotIn('worker 0 up', out, 'no worker starts')

    def test_port_in_use_is_one_line(self):
        if not built_with_metrics():
            self.skipTest('no metrics in this build')
        import socket
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        s.listen(1)
        try:
            rc, out = self.run_broker('--metrics-port', str(s.getsockname()[1]))
        finally:
            s.close()
        self.assertEqual(rc, 1, out)
        self.assertEqual(len([l for l in out.splitlines() if 'metrics' in l]), 1, out)


if __name__ == '__main__':
    unittest.main(verbosity=2)

"""Resource bounds and error paths (ringmq only): large CONNECTs on either worker, the port after exit, clients
that never read (QoS 0 fan-in, PUBREL and UNSUBSCRIBE floods), and the per-session subscription limit.

Each test starts its own 2-worker broker so its memory figures start from a fresh process. Worker memory is
VmRSS from /proc/<pid>/status of the worker pids that `ringmqctl workers` reports; a bound is "no worker grew
by more than RSS_SLACK_MIB over its figure before the abuse".

Names marked ASSUMPTION below are the contract the lead is implementing; they are kept in one place so a
rename is a one-line change here.
"""
import itertools
import os
import select
import signal
import socket
import threading
import time
import unittest

import harness
from harness import Broker, BrokerTest, ringmq_only, wait_until
import rawmqtt as R

# Under AddressSanitizer every freed block waits in a quarantine (256 MiB by default) before it is reused, so a
# worker that frees what it allocates still grows by up to that much: these brokers get a small one, so that
# their RSS says what ringmq holds, not what ASan keeps to catch use-after-free (the rest of the suite keeps
# the default).
if 'ASAN_OPTIONS' in os.environ and 'quarantine_size_mb' not in os.environ['ASAN_OPTIONS']:
    os.environ['ASAN_OPTIONS'] += ':quarantine_size_mb=4'

# --- ASSUMPTIONS to be confirmed by the lead --------------------------------------------------------------
# Output buffered for one client beyond which QoS 0 messages to it are dropped (config key, default 1 MiB);
# the hard bound on a client's output (acks included) is max_outbuf (8 MiB by default). The tests run with the
# defaults; the names are here for reference and for scripts/bench-abuse.
MAX_OUTBUF_KEY = 'max_outbuf_qos0'             # ringmqd --max-outbuf-qos0
MAX_OUTBUF_DEFAULT = 1 << 20
# A client that takes no output byte for this long while output waits is disconnected (write_timeout_ms);
# the never-reading tests lower it so "eventually disconnected" is observable within SLOW_DISCONNECT_S.
WRITE_TIMEOUT_FLAG = '--write-timeout-ms'
WRITE_TIMEOUT_MS = 5000
# `ringmqctl stats --json` counter (in "total" and per worker) of QoS 0 messages dropped that way.
STAT_DROPPED_QOS0_OUTBUF = 'dropped_qos0_outbuf'
# Subscriptions per session (config key max_subscriptions); over it SUBACK 0x97 (MQTT 5) / 0x80 (3.1.1) for
# each filter that would add one. The tests pass the flag explicitly with MAX_SUBSCRIPTIONS.
MAX_SUBSCRIPTIONS_FLAG = '--max-subscriptions'
MAX_SUBSCRIPTIONS = 1000

# --- bounds these tests hold the broker to ----------------------------------------------------------------
RSS_SLACK_MIB = 64          # growth of any worker's RSS during an abuse
TINY_RCVBUF = 4096          # SO_RCVBUF of the clients that never read
FLOOD_QOS0_MIB = 100        # QoS 0 bytes published toward a subscriber that never reads
FLOOD_OUT_MIB = 96          # replies (PUBCOMP / UNSUBACK) a never-reading flooder would make the broker queue
SLOW_DISCONNECT_S = 30      # after the flood, the never-reading subscriber is gone within this time
WITNESS_MAX_S = 5.0         # a witness round trip during an abuse
STALL_S = 3.0               # a sender that made no progress for this long is throttled by the broker

_seq = itertools.count()


def vm_rss_kb(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssWatch(threading.Thread):
    """Peak VmRSS of each worker process, sampled every 50 ms from start() to stop()."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = list(pids)
        self.start_kb = {p: vm_rss_kb(p) for p in self.pids}
        self.peak_kb = dict(self.start_kb)
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            for p in self.pids:
                self.peak_kb[p] = max(self.peak_kb[p], vm_rss_kb(p))
            self._halt.wait(0.05)

    def stop(self):
        self._halt.set()
        self.join(5)
        for p in self.pids:
            self.peak_kb[p] = max(self.peak_kb[p], vm_rss_kb(p))

    def growth_mib(self):
        """{pid: peak - start} in MiB."""
        return {p: (self.peak_kb[p] - self.start_kb[p]) / 1024.0 for p in self.pids}

    def describe(self):
        return ', '.join('worker pid %d: %.1f -> peak %.1f MiB' % (p, self.start_kb[p] / 1024.0,
                                                                   self.peak_kb[p] / 1024.0) for p in self.pids)


def flood(sock, chunk, total, deadline, stall=STALL_S):
    """Write `chunk` over and over (a whole number of packets, so any prefix of the stream is well framed)
    until `total` bytes went out. Never reads. Returns (outcome, bytes sent) with outcome 'completed',
    'closed' (the broker closed or reset the connection), 'throttled' (no progress for `stall` seconds: the
    broker stopped reading) or 'deadline'."""
    sock.setblocking(False)
    view = memoryview(chunk)
    off = sent = 0
    last = time.monotonic()
    while sent < total:
        now = time.monotonic()
        if now >= deadline:
            return 'deadline', sent
        try:
            n = sock.send(view[off:])
        except BlockingIOError:
            n = 0
        except (BrokenPipeError, ConnectionResetError):
            return 'closed', sent
        if n:
            sent += n
            off = (off + n) % len(chunk)
            last = now
            continue
        if now - last >= stall:
            return 'throttled', sent
        select.select([], [sock], [], 0.05)
    return 'completed', sent


class FreshBroker(BrokerTest):
    """A broker per test (broker_args / broker_config of the class); the test may stop it itself."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(harness.RINGMQD):
            raise unittest.SkipTest('ringmqd not built')

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        self.broker = Broker(2, self.broker_args, **self.broker_config).start()
        self.addCleanup(self._stop_broker)
        super().setUp()

    def _stop_broker(self):
        if self.broker.proc is not None:
            self.broker.stop()

    def worker_pids(self):
        return [w['pid'] for w in sorted(self.broker.worker_info(), key=lambda w: w['id'])]

    def stats_total(self):
        return self.broker.ctl('stats')['total']

    def short_topic(self, tag):
        return 'l/%s/%d/%d' % (tag, os.getpid() & 0xFFF, next(_seq))


# --- large CONNECTs on either worker ---------------------------------------------------------------------

def big_connect(client_id, version, size_kib=200):
    """A CONNECT of about size_kib KiB: user name, password and will payload near their 64 KiB maximum, and
    for MQTT 5 user properties in the CONNECT and will properties (no single field can hold 200 KB)."""
    filler = 64000
    will = {'topic': 'big/will/%s' % client_id, 'payload': b'W' * filler, 'qos': 1}
    plist = None
    extra = size_kib * 1024 - 3 * filler  # 3.1.1 has no properties: its three fields make ~188 KiB
    if version == 5 and extra > 0:
        plist = [(R.P_USER_PROPERTY, ('k%d' % i, 'v' * min(extra - i * 60000, 60000)))
                 for i in range((extra + 59999) // 60000)]
    return R.connect(client_id, version, clean=True, plist=plist, will=will, username='u' * filler,
                     password=b'p' * filler)


@ringmq_only
class LargeConnectTest(FreshBroker):

    maxDiff = None

    def test_large_connect_on_either_worker(self):
        """16 CONNECTs of ~190-200 KiB (under max_packet_size, 1 MiB by default), 8 owned by each worker, half
        MQTT 3.1.1 and half MQTT 5; the kernel spreads the sockets over both workers' listeners, so some are
        accepted by the owner and some handed off. Every one gets CONNACK 0 and can subscribe and publish;
        then the broker stops on SIGTERM within 5 s with exit status 0 and no WARN about a handoff."""
        before = self.stats_total()
        conns = []
        for k in (0, 1):
            for i in range(8):
                v = 4 if i % 2 else 5
                cid = self.cid(k, 'big%d' % v)
                r = self.raw(v)
                pkt = big_connect(cid, v)
                self.assertGreater(len(pkt), 160 * 1024)
                r.send(pkt)
                conns.append((k, v, cid, r))
        unanswered = []
        deadline = time.monotonic() + 15
        for k, v, cid, r in conns:
            try:
                ca = r.expect(R.CONNACK, timeout=max(deadline - time.monotonic(), 0.01))
                self.assertEqual(ca.reason, 0, '%s: %r' % (cid, ca))
                r.connack = ca
            except (TimeoutError, R.Closed) as e:
                unanswered.append((k, v, cid, type(e).__name__))
        after = self.stats_total()
        handoffs = after['handoffs_in'] - before['handoffs_in']
        self.assertEqual(unanswered, [], 'CONNECTs without CONNACK (owner worker, version, id, outcome); '
                         '%d handoffs counted' % handoffs)
        self.assertGreater(handoffs, 0, 'precondition: some CONNECTs were accepted by the other worker')
        for k, v, cid, r in conns:
            t = 'big/t/' + cid
            self.assertEqual(r.subscribe([(t, 1)]).reasons, [1])
            # QoS 0 to itself: MQTT orders no PUBACK against the copy a client gets of its own message.
            r.publish(t, b'hello ' + cid.encode(), qos=0)
            self.assertEqual(r.receive().payload, b'hello ' + cid.encode())
        for k, v, cid, r in conns:
            r.disconnect()
        ids = self.broker.client_ids()
        self.assertFalse({c for _, _, c, _ in conns} & ids, 'all disconnected')
        self._check_clean_exit()

    def _check_clean_exit(self):
        self.expect_broker_exit()
        t0 = time.monotonic()
        self.broker.signal(signal.SIGTERM)
        rc = self.broker.wait_exit(5)
        took = time.monotonic() - t0
        text = self.broker.log_text()
        self.broker.finish()
        self.assertEqual(rc, 0, 'exit status\n' + text[-3000:])
        warn = [ln for ln in text.splitlines() if ' WARN ' in ln and 'handoff' in ln.lower()]
        self.assertEqual(warn, [], 'WARN lines about handoffs')
        self.assertLess(took, 5.0)


# --- the port after exit ---------------------------------------------------------------------------------

@ringmq_only
class PortAfterExitTest(unittest.TestCase):

    CYCLES = 20

    def test_connection_refused_after_exit(self):
        """20 start/stop cycles (no client, a client on worker 0, on worker 1, on both when SIGTERM arrives):
        as soon as ringmqd has exited, a connection to its port is refused (ECONNREFUSED), five times in a
        row. Nothing still holds a listening socket that accepts a connection and then resets it."""
        if not os.path.exists(harness.RINGMQD):
            self.skipTest('ringmqd not built')
        problems = []
        for cycle in range(self.CYCLES):
            b = Broker(2).start()
            try:
                pids = [w['pid'] for w in b.worker_info()]
                clients = []
                on_workers = ((), (0,), (1,), (0, 1))[cycle % 4]
                for k in on_workers:
                    r = R.RawClient(b.port, 5)
                    r.connect(harness.client_id_on_worker(k, 2, 'exit%d' % cycle))
                    clients.append(r)
                b.signal(signal.SIGTERM)
                rc = b.wait_exit(10)
                outcomes = []
                for _ in range(5):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.settimeout(1.0)
                    try:
                        s.connect((harness.HOST, b.port))
                        outcomes.append('accepted')
                    except ConnectionRefusedError:
                        outcomes.append('refused')
                    except OSError as e:
                        outcomes.append(type(e).__name__)
                    finally:
                        s.close()
                alive = [p for p in pids if os.path.exists('/proc/%d' % p) and not _zombie(p)]
                if rc != 0 or outcomes != ['refused'] * 5:
                    problems.append('cycle %d (clients on workers %s): exit %s, connects %s, workers still '
                                    'alive %s' % (cycle, on_workers, rc, outcomes, alive))
                for r in clients:
                    r.close()
            finally:
                b.finish()
        self.assertEqual(problems, [])


def _zombie(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


# --- clients that never read -----------------------------------------------------------------------------

@ringmq_only
class NeverReadingClientTest(FreshBroker):

    broker_args = (WRITE_TIMEOUT_FLAG, str(WRITE_TIMEOUT_MS))

    def watch_witness(self, done, latencies, failures):
        """Witness round trips (publisher worker 0 -> subscriber worker 1, the abused worker) until done."""
        while not done.is_set():
            t0 = time.monotonic()
            try:
                self.check_served('during the abuse')
                latencies.append(time.monotonic() - t0)
            except AssertionError as e:
                failures.append(str(e))
                return
            done.wait(0.25)

    def run_abuse(self, label, abuse, deadline_s=180):
        """Run abuse() (returns an outcome) in a thread while the witness is checked and worker RSS sampled.
        Returns (outcome, RssWatch, witness latencies, witness failures)."""
        self.witness()
        self.check_served('before ' + label)
        rss = RssWatch(self.worker_pids())
        rss.start()
        out = {}
        th = threading.Thread(target=lambda: out.setdefault('r', abuse()), daemon=True)
        done = threading.Event()
        latencies, failures = [], []
        th.start()
        wt = threading.Thread(target=self.watch_witness, args=(done, latencies, failures), daemon=True)
        wt.start()
        th.join(deadline_s)
        done.set()
        wt.join(30)
        rss.stop()
        self.assertFalse(th.is_alive(), '%s: still running after %ds' % (label, deadline_s))
        return out.get('r'), rss, latencies, failures

    def check_bounds(self, label, rss, latencies, failures):
        with self.subTest(check='worker RSS bounded'):
            growth = rss.growth_mib()
            self.assertLessEqual(max(growth.values()), RSS_SLACK_MIB, '%s: %s' % (label, rss.describe()))
        with self.subTest(check='witness served'):
            self.assertEqual(failures, [], label)
            self.assertTrue(latencies, '%s: no witness round trip completed' % label)
            self.assertLessEqual(max(latencies), WITNESS_MAX_S, '%s: witness round trips %r' % (
                label, ['%.3f' % x for x in sorted(latencies)[-5:]]))
            self.check_served('after ' + label)

    def test_qos0_to_subscriber_that_never_reads(self):
        """A subscriber (worker 1, SO_RCVBUF 4 KiB, QoS 0) that never reads while a publisher on worker 0 sends
        it 100 MiB of QoS 0: the worker's RSS stays within RSS_SLACK_MIB of its start, a witness subscriber on
        the same worker is served throughout, the dropped messages are counted (STAT_DROPPED_QOS0_OUTBUF), and
        the subscriber is disconnected."""
        t = self.short_topic('q0')
        slow_cid = self.cid(1, 'slow')
        slow = R.RawClient(self.port, 5, rcvbuf=TINY_RCVBUF)
        self._clients.append(slow)
        slow.connect(slow_cid)
        slow.subscribe([(t, 0)])
        pub = self.raw_connected(self.cid(0, 'flood'), version=4)
        pkt = R.publish(t, b'Q' * 65536, qos=0)
        total = FLOOD_QOS0_MIB << 20
        deadline = time.monotonic() + 150
        outcome, rss, latencies, failures = self.run_abuse(
            'QoS 0 flood', lambda: flood(pub.sock, pkt, total, deadline))
        with self.subTest(check='publisher not throttled'):
            self.assertEqual(outcome[0], 'completed', 'the QoS 0 publisher itself is not slow: %r' % (outcome,))
        self.check_bounds('QoS 0 flood', rss, latencies, failures)
        with self.subTest(check='drops counted'):
            st = self.stats_total()
            self.assertIn(STAT_DROPPED_QOS0_OUTBUF, st, 'stats key (ASSUMPTION) missing: %s' % sorted(st))
            self.assertGreater(st[STAT_DROPPED_QOS0_OUTBUF], 0)
        with self.subTest(check='slow subscriber disconnected'):
            wait_until(lambda: slow_cid not in self.broker.client_ids(), timeout=SLOW_DISCONNECT_S,
                       interval=0.2, what='the never-reading subscriber disconnected')

    def _reply_flood(self, label, make, reply_size):
        """A client (worker 1, SO_RCVBUF 4 KiB) sends packets make(pid) for pid 1..65535 over and over
        without reading the replies (reply_size bytes each), enough for FLOOD_OUT_MIB of unread replies. The
        broker must close it or stop reading it (throttle), keep its worker within RSS_SLACK_MIB and keep
        serving the witness."""
        r = R.RawClient(self.port, 5, rcvbuf=TINY_RCVBUF)
        self._clients.append(r)
        r.connect(self.cid(1, 'flood'))
        chunk = b''.join(make(pid) for pid in range(1, 65536))
        total = (FLOOD_OUT_MIB << 20) // reply_size * (len(chunk) // 65535)
        deadline = time.monotonic() + 150
        outcome, rss, latencies, failures = self.run_abuse(label, lambda: flood(r.sock, chunk, total, deadline))
        with self.subTest(check='closed or throttled'):
            self.assertIn(outcome[0], ('closed', 'throttled'), '%s: %r after sending %.1f MiB' % (
                label, outcome, outcome[1] / 1048576.0))
        self.check_bounds(label, rss, latencies, failures)

    def test_pubrel_flood_never_reading(self):
        """PUBREL for unknown packet ids (each answered PUBCOMP 0x92, 5 bytes) without reading the PUBCOMPs."""
        self._reply_flood('PUBREL flood', lambda pid: R.ack(R.PUBREL, pid, 5), reply_size=5)

    def test_unsubscribe_flood_never_reading(self):
        """UNSUBSCRIBE of a filter never subscribed (UNSUBACK 0x11, 6 bytes) without reading the UNSUBACKs."""
        self._reply_flood('UNSUBSCRIBE flood', lambda pid: R.unsubscribe(pid, ['u'], 5), reply_size=6)


# --- subscriptions per session ---------------------------------------------------------------------------

@ringmq_only
class SubscriptionQuotaTest(FreshBroker):
    broker_args = (MAX_SUBSCRIPTIONS_FLAG, str(MAX_SUBSCRIPTIONS))

    def _ten_thousand(self, version):
        """10,000 distinct filters in SUBSCRIBEs of 100: the first MAX_SUBSCRIPTIONS are granted, every later
        one refused (0x97 quota exceeded in MQTT 5, 0x80 in 3.1.1); worker RSS within RSS_SLACK_MIB."""
        refused = R.RC_QUOTA_EXCEEDED if version == 5 else 0x80
        rss = RssWatch(self.worker_pids())
        rss.start()
        r = self.raw_connected(self.cid(1, 'many%d' % version), version=version)
        base = self.short_topic('s%d' % version)
        reasons = []
        for batch in range(100):
            sa = r.subscribe([('%s/%d' % (base, batch * 100 + i), 1) for i in range(100)])
            reasons += sa.reasons
        rss.stop()
        self.assertEqual(len(reasons), 10000)
        granted = [i for i, rc in enumerate(reasons) if rc < 0x80]
        self.assertEqual((len(granted), granted[-1]), (MAX_SUBSCRIPTIONS, MAX_SUBSCRIPTIONS - 1),
                         '(how many, last) granted of 10,000: the first %d' % MAX_SUBSCRIPTIONS)
        self.assertEqual(set(reasons[MAX_SUBSCRIPTIONS:]), {refused})
        self.assertLessEqual(max(rss.growth_mib().values()), RSS_SLACK_MIB, rss.describe())
        # At the limit: re-subscribing an existing filter replaces it (granted); a new one is refused.
        sa = r.subscribe([('%s/%d' % (base, 0), 0), ('%s/new' % base, 1)])
        self.assertEqual(sa.reasons, [0, refused])
        # Unsubscribing frees room.
        r.send(R.unsubscribe(r.alloc_pid(), ['%s/%d' % (base, i) for i in range(10)], version))
        r.expect(R.UNSUBACK)
        sa = r.subscribe([('%s/new%d' % (base, i), 1) for i in range(11)])
        self.assertEqual(sa.reasons, [1] * 10 + [refused])
        # A granted subscription works.
        pub = self.raw_connected(self.cid(0, 'p'), version=4)
        pub.publish('%s/new3' % base, b'ok', qos=1)
        self.assertEqual(r.receive().payload, b'ok')
        r.disconnect()

    def test_max_subscriptions_v5(self):
        self._ten_thousand(5)

    def test_max_subscriptions_v311(self):
        self._ten_thousand(4)


if __name__ == '__main__':
    harness.main()

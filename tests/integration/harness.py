"""Integration test harness: starts a broker on a free loopback port and gives the tests clients to drive it.

BROKER=ringmq (default) runs $RINGMQD with --workers 2 and a control socket; BROKER=mosquitto runs Debian's
mosquitto with an equivalent config so every test marked portable can be checked against a known-good broker.
Every wait has a deadline and is driven by an event, a queue or a poll; sleeping is only used to prove that
something does NOT happen within a bounded time.
"""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import rawmqtt as R

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError:  # pragma: no cover - the pyenv python on PATH lacks paho; run with /usr/bin/python3
    sys.stderr.write('paho-mqtt missing: run the tests with /usr/bin/python3 (python3-paho-mqtt)\n')
    raise

HOST = '127.0.0.1'
BROKER_KIND = os.environ.get('BROKER', 'ringmq')
IS_MOSQUITTO = BROKER_KIND == 'mosquitto'
SRCDIR = os.environ.get('RINGMQ_SRCDIR') or os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BUILDDIR = os.environ.get('RINGMQ_BUILDDIR') or os.path.join(SRCDIR, 'build')
RINGMQD = os.environ.get('RINGMQD') or os.path.join(BUILDDIR, 'supervisor', 'ringmqd')
RINGMQCTL = os.environ.get('RINGMQCTL') or os.path.join(BUILDDIR, 'supervisor', 'ringmqctl')
RMQ_CLIENT = os.environ.get('RMQ_CLIENT', '')

SANITIZER_MARKERS = ('AddressSanitizer', 'runtime error:', 'LeakSanitizer')

# Decorator for tests of ringmq-only features (control socket, workers, slots, ringmq's own limits).
ringmq_only = unittest.skipIf(IS_MOSQUITTO, 'ringmq-specific (control socket / workers / ringmq config)')


def mosquitto_lacks(what):
    """Skip a test under BROKER=mosquitto because mosquitto 2.0 does not implement `what` as ringmq does."""
    return unittest.skipIf(IS_MOSQUITTO, 'mosquitto 2.0 deviation: ' + what)


# --- slots ----------------------------------------------------------------------------------------------

SLOT_COUNT = 16384


def crc16_xmodem(data):
    """CRC16/XMODEM (poly 0x1021, init 0, no reflection): the Redis Cluster key hash."""
    if isinstance(data, str):
        data = data.encode()
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


assert crc16_xmodem(b'123456789') == 0x31C3


def slot_of(client_id):
    return crc16_xmodem(client_id) % SLOT_COUNT


def slot_owner(slot, n_workers):
    """Worker k owns [k*16384/n, (k+1)*16384/n)."""
    for k in range(n_workers):
        if k * SLOT_COUNT // n_workers <= slot < (k + 1) * SLOT_COUNT // n_workers:
            return k
    raise ValueError(slot)


def client_id_on_worker(k, n_workers, prefix):
    """The first ID "<prefix>-<i>" whose slot is owned by worker k of n_workers."""
    for i in range(100000):
        cid = '%s-%d' % (prefix, i)
        if slot_owner(slot_of(cid), n_workers) == k:
            return cid
    raise RuntimeError('no id for worker %d' % k)


# --- helpers --------------------------------------------------------------------------------------------

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_pki(directory):
    """A test PKI (scripts/gen-certs): returns {name: path} (ca_cert, server_cert, server_key, client_cert_client1,
    client_key_client1, revoked_cert, crl, expired_cert, rogue_cert, ...)."""
    out = subprocess.run([os.path.join(SRCDIR, 'scripts', 'gen-certs'), directory], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return dict(line.split('=', 1) for line in out.split() if '=' in line)


def pid_gone(pid):
    """pid has exited (gone, or a zombie its parent has not reaped)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def wait_until(pred, timeout=10.0, interval=0.02, what='condition'):
    """Poll pred() until it returns a truthy value (returned) or raise AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, what))
        time.sleep(interval)


# Config keys accepted by Broker(**config) -> (ringmqd flag, mosquitto option, mosquitto value scaling).
_CONFIG = {
    'max_queued': ('--max-queued', 'max_queued_messages'),
    'max_packet_size': ('--max-packet-size', 'max_packet_size'),
    'max_inflight': ('--max-inflight', 'max_inflight_messages'),
    'receive_maximum': ('--receive-maximum', 'max_inflight_messages'),
    'topic_alias_maximum': ('--topic-alias-maximum', 'max_topic_alias'),
    'max_keepalive': ('--max-keepalive', 'max_keepalive'),
    'max_connections': ('--max-connections', 'max_connections'),
    'connect_timeout_ms': ('--connect-timeout-ms', None),
    'shutdown_timeout_ms': ('--shutdown-timeout-ms', None),
}


class Broker:
    """One broker process on a free loopback port.

    config: keys of _CONFIG (e.g. max_queued=100). extra_args: raw ringmqd arguments.
    """

    def __init__(self, workers=2, extra_args=(), **config):
        for k in config:
            if k not in _CONFIG:
                raise ValueError('unknown broker config %s' % k)
        self.workers = workers
        self.config = config
        self.extra_args = list(extra_args)
        self.kind = BROKER_KIND
        self.host = HOST
        self.port = None
        self.proc = None
        self.tmpdir = None
        self.log_path = None
        self.sock_path = None
        self._log = None
        self.ready_port = None  # the port that must accept before the broker counts as ready (default: port)

    # lifecycle

    def start(self, timeout=20.0):
        self.tmpdir = tempfile.mkdtemp(prefix='ringmq-itest-')
        self.port = free_port()
        self.log_path = os.path.join(self.tmpdir, 'broker.log')
        self._log = open(self.log_path, 'wb')
        if IS_MOSQUITTO:
            argv = self._mosquitto_argv()
        else:
            self.sock_path = os.path.join(self.tmpdir, 'ctl.sock')
            argv = [RINGMQD, '--workers', str(self.workers), '--port', str(self.port),
                    '--listen-host', HOST, '--control-socket', self.sock_path, '--log-level', 'info']
            for k, v in self.config.items():
                argv += [_CONFIG[k][0], str(v)]
            argv += self.extra_args
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.tmpdir)
        self.wait_ready(timeout)
        return self

    def _mosquitto_argv(self):
        lines = ['listener %d %s' % (self.port, HOST), 'allow_anonymous true', 'persistence false',
                 'log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice',
                 'set_tcp_nodelay true']
        opts = {'max_queued_messages': 10000}
        for k, v in self.config.items():
            opt = _CONFIG[k][1]
            if opt is None:
                continue
            if k == 'max_connections':  # ringmq's limit is per worker
                v = v * self.workers
            opts[opt] = v
        for k, v in opts.items():
            lines.append('%s %s' % (k, v))
        conf = os.path.join(self.tmpdir, 'mosquitto.conf')
        with open(conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return ['mosquitto', '-c', conf]

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError('broker exited early with %s\n%s' % (self.proc.returncode, self.log_tail()))
            if IS_MOSQUITTO:
                try:
                    socket.create_connection((HOST, self.port), timeout=0.5).close()
                    return
                except OSError as e:
                    last = e
            else:
                try:
                    st = self.ctl('status')
                    if st.get('workers_up') == self.workers:
                        # The listeners are held by the supervisor, but make sure one accepts too.
                        socket.create_connection((HOST, self.ready_port or self.port), timeout=0.5).close()
                        return
                    last = st
                except (AssertionError, OSError, ValueError) as e:
                    last = e
            time.sleep(0.02)
        self.kill()
        raise AssertionError('broker not ready within %.0fs (last: %r)\n%s' % (timeout, last, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if not self.alive():
            raise AssertionError('broker died (rc=%s)\n%s' % (self.proc.returncode, self.log_tail()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('broker did not exit within %.0fs\n%s' % (timeout, self.log_tail()))

    def stop(self, timeout=10.0):
        """SIGTERM; the broker must exit 0 within timeout and its log must be free of sanitizer reports."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.kill()
                    raise AssertionError('broker did not exit within %.0fs of SIGTERM\n%s'
                                         % (timeout, self.log_tail()))
            else:
                rc = self.proc.returncode
            self.check_log()
            if rc != 0:
                raise AssertionError('broker exit code %s\n%s' % (rc, self.log_tail()))
        finally:
            self.cleanup()

    def finish(self):
        """After the test itself made the broker exit: check the log and clean up."""
        try:
            self.check_log()
        finally:
            self.cleanup()

    def crash(self):
        """A crash of the whole broker, then finish(): every child (workers, Kafka process) SIGKILLed, then the
        supervisor. The supervisor is stopped first: killed first, its children would see their control sockets
        close before their PDEATHSIG arrives and could run one more loop turn (write held copies, offline marks,
        commit) on the way down — a near-graceful stop, not a crash."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            with open('/proc/%d/task/%d/children' % (self.proc.pid, self.proc.pid)) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            wait_until(lambda: pid_gone(pid), 10, what='process %d gone' % pid)
        self.proc.kill()
        self.proc.wait(10)
        self.finish()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        self.kill()
        if self._log:
            self._log.close()
            self._log = None
        if self.tmpdir and os.environ.get('RINGMQ_KEEP_TMP') is None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        self.proc = None

    def log_text(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode(errors='replace')
        except (OSError, TypeError):
            return ''

    def log_tail(self, n=60):
        lines = self.log_text().splitlines()
        return '--- broker log (last %d lines) ---\n%s' % (n, '\n'.join(lines[-n:]))

    def check_log(self):
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            if m in text:
                i = text.index(m)
                raise AssertionError('broker log contains %r:\n%s' % (m, text[max(0, i - 2000):i + 6000]))

    # control socket

    def ctl_raw(self, *args, json_out=True, timeout=10.0, check=True):
        """Run ringmqctl; returns CompletedProcess."""
        if IS_MOSQUITTO:
            raise unittest.SkipTest('ringmqctl is ringmq-specific')
        argv = [RINGMQCTL, '--socket', self.sock_path] + [str(a) for a in args]
        if json_out:
            argv.append('--json')
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if check and cp.returncode != 0:
            raise AssertionError('%s -> rc %d\nstdout: %s\nstderr: %s' % (
                ' '.join(argv), cp.returncode, cp.stdout.decode(errors='replace'), cp.stderr.decode(errors='replace')))
        return cp

    def ctl(self, *args, timeout=10.0):
        """Run `ringmqctl --socket S <args> --json` and return the parsed JSON."""
        cp = self.ctl_raw(*args, timeout=timeout)
        try:
            return json.loads(cp.stdout)
        except ValueError:
            raise AssertionError('ringmqctl %s: not JSON: %r' % (' '.join(map(str, args)), cp.stdout))

    def worker_info(self):
        return self.ctl('workers')['workers']

    def worker_pid(self, k):
        for w in self.worker_info():
            if w['id'] == k:
                return w['pid']
        raise AssertionError('no worker %d' % k)

    def client_ids(self):
        return {c['id'] for c in self.ctl('clients')['clients']}


# --- paho clients ---------------------------------------------------------------------------------------

class Msg:
    __slots__ = ('topic', 'payload', 'qos', 'retain', 'dup', 'props', 'mid')

    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.dup = bool(m.dup)
        self.props = getattr(m, 'properties', None)
        self.mid = m.mid

    def __repr__(self):
        return '<Msg %s %r qos=%d retain=%d dup=%d>' % (self.topic, self.payload[:40], self.qos, self.retain,
                                                         self.dup)


class Client:
    """A paho-mqtt client (3.1.1 or 5) run by its own network thread, with blocking, deadline-bound helpers.

    Unlike paho's loop_start() it never reconnects by itself: a takeover or kick must stay visible.
    """

    def __init__(self, port, client_id='', version=4, clean=True, session_expiry=None, keepalive=60,
                 will=None, connect_props=None, host=HOST, tls=None, username=None, password=None):
        self.port = port
        self.host = host
        self.version = version
        self.client_id = client_id
        self.clean = clean
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.connect_props = connect_props or {}
        if version == 5:
            self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311,
                                 reconnect_on_failure=False)
        # 0 = unlimited: paho reorders messages it has to queue behind a full in-flight window.
        self.c.max_inflight_messages_set(0)
        if tls:
            # tls: {'ca': path, 'cert': path or None, 'key': path or None}; the server name is checked.
            self.c.tls_set(ca_certs=tls['ca'], certfile=tls.get('cert'), keyfile=tls.get('key'))
        if username is not None:
            self.c.username_pw_set(username, password)
        if will:
            wp = None
            if version == 5 and will.get('props'):
                wp = Properties(PacketTypes.WILLMESSAGE)
                for k, v in will['props'].items():
                    setattr(wp, k, v)
            self.c.will_set(will['topic'], will.get('payload', b''), will.get('qos', 0), will.get('retain', False),
                            properties=wp)
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None
        self.disconnect_reasons = []
        self.disconnect_props = None
        self._cond = threading.Condition()
        self._acked = {}
        self._subacks = {}
        self._unsubacks = {}
        self._thread = None
        self._stop = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe

    # callbacks (network thread)

    def _on_connect(self, c, userdata, flags, rc, properties=None):
        rc = rc.value if hasattr(rc, 'value') else rc
        self.connack = {'session_present': bool(flags.get('session present')), 'rc': rc,
                        'props': properties}
        rm = getattr(properties, 'ReceiveMaximum', None) if properties is not None else None
        if rm:  # honour the server's receive maximum [MQTT-3.3.4-7]
            c.max_inflight_messages_set(rm)
        self.connected.set()

    def _on_disconnect(self, c, userdata, rc, properties=None):
        self.disconnect_reasons.append(rc.value if hasattr(rc, 'value') else rc)
        if properties is not None:
            self.disconnect_props = properties
        self.disconnected.set()

    def _on_message(self, c, userdata, m):
        self.messages.put(Msg(m))

    def _on_publish(self, c, userdata, mid):
        with self._cond:
            self._acked[mid] = True
            self._cond.notify_all()

    def _on_subscribe(self, c, userdata, mid, granted, properties=None):
        codes = [g.value if hasattr(g, 'value') else g for g in granted]
        with self._cond:
            self._subacks[mid] = codes
            self._cond.notify_all()

    def _on_unsubscribe(self, c, userdata, mid, properties=None, reasons=None):
        with self._cond:
            self._unsubacks[mid] = reasons
            self._cond.notify_all()

    def _run(self):
        while not self._stop.is_set():
            rc = self.c.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS and self.disconnected.is_set():
                break
            if rc == mqtt.MQTT_ERR_NO_CONN:
                break

    # API (test thread)

    def connect(self, timeout=10.0, expect_rc=0):
        kwargs = {}
        if self.version == 5:
            p = Properties(PacketTypes.CONNECT)
            if self.session_expiry is not None:
                p.SessionExpiryInterval = self.session_expiry
            for k, v in self.connect_props.items():
                setattr(p, k, v)
            kwargs = {'clean_start': self.clean, 'properties': p}
        self.c.connect(self.host, self.port, self.keepalive, **kwargs)
        self._thread = threading.Thread(target=self._run, name='paho-%s' % self.client_id, daemon=True)
        # paho writes from the calling thread when it believes no network thread runs (it only knows its own
        # loop_start thread): two threads writing one TLS socket break its record stream (ssl "bad length").
        # Telling it ours exists makes every write happen on the network thread.
        self.c._thread = self._thread
        self._thread.start()
        if not self.connected.wait(timeout):
            raise AssertionError('%s: no CONNACK within %.0fs' % (self.client_id, timeout))
        if expect_rc is not None and self.connack['rc'] != expect_rc:
            raise AssertionError('%s: CONNACK rc %r' % (self.client_id, self.connack['rc']))
        return self.connack

    @property
    def session_present(self):
        return self.connack['session_present']

    def _wait(self, table, mid, timeout, what):
        with self._cond:
            if not self._cond.wait_for(lambda: mid in table or self.disconnected.is_set(), timeout):
                raise AssertionError('%s: no %s for mid %d within %.0fs' % (self.client_id, what, mid, timeout))
            if mid not in table:
                raise AssertionError('%s: disconnected (%r) waiting for %s' % (self.client_id,
                                                                                self.disconnect_reasons, what))
            return table.pop(mid)

    def subscribe(self, topic, qos=1, no_local=False, rap=False, rh=0, props=None, timeout=10.0):
        """Subscribe and wait for the SUBACK; returns the list of granted QoS / reason codes."""
        p = None
        if self.version == 5:
            opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap, retainHandling=rh)
            if props:
                p = Properties(PacketTypes.SUBSCRIBE)
                for k, v in props.items():
                    setattr(p, k, v)
            rc, mid = self.c.subscribe(topic, options=opts, properties=p)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        return self._wait(self._subacks, mid, timeout, 'SUBACK')

    def unsubscribe(self, topic, timeout=10.0):
        rc, mid = self.c.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        return self._wait(self._unsubacks, mid, timeout, 'UNSUBACK')

    def publish(self, topic, payload=b'', qos=0, retain=False, props=None, wait=True, timeout=10.0):
        """Publish; for QoS > 0 with wait=True return only once the PUBACK/PUBCOMP arrived."""
        p = None
        if self.version == 5 and props:
            p = Properties(PacketTypes.PUBLISH)
            for k, v in props.items():
                setattr(p, k, v)
        info = self.c.publish(topic, payload, qos, retain, properties=p)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError('publish rc %d' % info.rc)
        if wait and qos > 0:
            self._wait(self._acked, info.mid, timeout, 'PUBACK/PUBCOMP')
        return info.mid

    def wait_published(self, mids, timeout=30.0):
        deadline = time.monotonic() + timeout
        for mid in mids:
            self._wait(self._acked, mid, max(deadline - time.monotonic(), 0.01), 'PUBACK/PUBCOMP')

    def get(self, timeout=5.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('%s: no message within %.1fs' % (self.client_id, timeout))

    def get_n(self, n, timeout=10.0):
        """Exactly the next n messages (deadline for all of them)."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                out.append(self.messages.get(timeout=max(deadline - time.monotonic(), 0.001)))
            except queue.Empty:
                raise AssertionError('%s: got %d of %d messages within %.1fs: last %r' % (
                    self.client_id, len(out), n, timeout, out[-3:]))
        return out

    def get_all(self, timeout=5.0, window=0.5):
        """The next message and any others arriving within `window` seconds after it."""
        out = [self.get(timeout)]
        while True:
            try:
                out.append(self.messages.get(timeout=window))
            except queue.Empty:
                return out

    def expect_none(self, timeout=0.5):
        """Assert that no message arrives within timeout (bounded wait proving a negative)."""
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError('%s: unexpected message %r' % (self.client_id, m))

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def wait_disconnected(self, timeout=5.0):
        if not self.disconnected.wait(timeout):
            raise AssertionError('%s: still connected after %.1fs' % (self.client_id, timeout))
        return self.disconnect_reasons[0]

    def is_connected(self):
        return self.connected.is_set() and not self.disconnected.is_set()

    def disconnect(self, reason=None, props=None, timeout=5.0):
        """Send DISCONNECT and wait for the network thread to end."""
        if not self.disconnected.is_set():
            if self.version == 5:
                from paho.mqtt.reasoncodes import ReasonCodes
                rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reason or 0)
                p = None
                if props:
                    p = Properties(PacketTypes.DISCONNECT)
                    for k, v in props.items():
                        setattr(p, k, v)
                self.c.disconnect(rc, p)
            else:
                self.c.disconnect()
            self.disconnected.wait(timeout)
        self.close()

    def drop(self, timeout=5.0):
        """Close the TCP connection without DISCONNECT (the broker sees a network failure)."""
        s = self.c.socket()
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.disconnected.wait(timeout)
        self.close()

    def close(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        try:
            s = self.c.socket()
            if s is not None:
                s.close()
        except OSError:
            pass


def gather(clients, n, timeout=10.0):
    """Messages arriving at any of several clients until n arrived in total (deadline for all); returns a list
    per client. Used where it is up to the broker which client gets a message (shared subscriptions)."""
    deadline = time.monotonic() + timeout
    out = [[] for _ in clients]
    total = 0
    while total < n:
        if time.monotonic() >= deadline:
            raise AssertionError('got %d of %d messages within %.1fs: %r' % (total, n, timeout,
                                                                             [len(o) for o in out]))
        for i, c in enumerate(clients):
            try:
                out[i].append(c.messages.get(timeout=0.01))
                total += 1
            except queue.Empty:
                pass
    return out


# --- test base ------------------------------------------------------------------------------------------

class BrokerTest(unittest.TestCase):
    """Starts one broker per TestCase class (broker_config / workers class attributes) and closes every
    client a test opened. Subclasses get unique client IDs per test through self.cid()."""

    workers = 2
    broker_config = {}
    broker_args = ()

    @classmethod
    def setUpClass(cls):
        if not IS_MOSQUITTO and not os.path.exists(RINGMQD):
            raise unittest.SkipTest('ringmqd not built (%s)' % RINGMQD)
        cls.broker = Broker(cls.workers, cls.broker_args, **cls.broker_config).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def setUp(self):
        self.broker.assert_alive()
        self.broker_exits = False
        self._clients = []
        self._n = 0
        self.addCleanup(self._close_clients)

    def _close_clients(self):
        for c in reversed(self._clients):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        if not self.broker_exits:
            self.broker.assert_alive()

    def expect_broker_exit(self):
        """This test stops the broker itself: do not require it alive afterwards."""
        self.broker_exits = True

    @property
    def port(self):
        return self.broker.port

    def cid(self, worker=None, tag=''):
        """A client ID unique to this test; with worker=k, one owned by worker k."""
        self._n += 1
        prefix = '%s%s-%d' % (self._testMethodName.replace('test_', '')[:30], tag, self._n)
        if worker is None:
            return prefix
        return client_id_on_worker(worker, self.broker.workers, prefix)

    def client(self, client_id=None, version=4, connect=True, **kw):
        c = Client(self.port, client_id if client_id is not None else self.cid(), version=version, **kw)
        self._clients.append(c)
        if connect:
            c.connect()
        return c

    def raw(self, version=4):
        r = R.RawClient(self.port, version)
        self._clients.append(r)
        return r

    def publish_many(self, raw, topic, payloads, qos=1, timeout=60.0):
        """Publish in order over a raw connection, pipelined up to the server's receive maximum, and wait for
        every acknowledgement (QoS 1 or 2). Unlike paho it can never reorder."""
        window = raw.connack.props.get(R.P_RECEIVE_MAXIMUM, 65535) if raw.version == 5 else 1000
        deadline = time.monotonic() + timeout
        pending = {}
        it = iter(payloads)
        done = False
        while True:
            while not done and len(pending) < window:
                try:
                    payload = next(it)
                except StopIteration:
                    done = True
                    break
                pid = raw.alloc_pid()
                pending[pid] = True
                raw.send(R.publish(topic, payload, qos, pid, version=raw.version))
            if not pending:
                return
            p = raw.read_packet(max(deadline - time.monotonic(), 0.001))
            if p.type == R.PUBACK or p.type == R.PUBCOMP:
                self.assertIn(p.pid, pending)
                self.assertLess(p.reason, 0x80, p)
                del pending[p.pid]
            elif p.type == R.PUBREC:
                self.assertLess(p.reason, 0x80, p)
                raw.send(R.ack(R.PUBREL, p.pid, raw.version))
            else:
                self.fail('unexpected %r while publishing' % p)

    def raw_connected(self, client_id=None, version=4, **kw):
        r = self.raw(version)
        r.connect(client_id if client_id is not None else self.cid(), **kw)
        return r

    def topic(self, name=''):
        return 'it/%s/%s' % (self._testMethodName, name) if name else 'it/%s' % self._testMethodName

    def witness(self, topic=None):
        """A subscriber + publisher pair on different workers: check_served() proves the broker still serves
        other clients (used after every abuse)."""
        t = topic or self.topic('witness')
        sub = self.client(self.cid(1, 'ws'), version=5)
        sub.subscribe(t, 1)
        pub = self.client(self.cid(0, 'wp'), version=4)
        self._witness = (sub, pub, t)
        return sub

    def check_served(self, label=''):
        sub, pub, t = self._witness
        payload = ('alive %s %f' % (label, time.monotonic())).encode()
        pub.publish(t, payload, qos=1)
        m = sub.get(10)
        self.assertEqual(m.payload, payload, 'witness after %s' % label)
        self.assertTrue(sub.is_connected() and pub.is_connected(), 'witness clients still connected')


def main():
    unittest.main(verbosity=2)


# --- redis (for the redis session store) ----------------------------------------------------------------

REDIS_SERVER = os.environ.get('REDIS_SERVER') or shutil.which('redis-server') or '/usr/bin/redis-server'


class RedisServer:
    """A redis-server on a free loopback port, append-only file in its own temporary directory (no RDB
    snapshots). kill() + start() restarts it on the same port and directory, so it reloads its AOF."""

    def __init__(self, appendonly=True):
        self.appendonly = appendonly
        self.port = None
        self.dir = None
        self.proc = None
        self._log = None

    @property
    def addr(self):
        return '%s:%d' % (HOST, self.port)

    def start(self, timeout=20.0):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix='ringmq-redis-')
        if self.port is None:
            self.port = free_port()
        self._log = open(os.path.join(self.dir, 'redis.log'), 'ab')
        argv = [REDIS_SERVER, '--port', str(self.port), '--bind', HOST, '--save', '',
                '--appendonly', 'yes' if self.appendonly else 'no', '--dir', self.dir, '--daemonize', 'no',
                '--protected-mode', 'no']
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError('redis-server exited early with %s\n%s' % (self.proc.returncode,
                                                                               self.log_tail()))
            try:
                if self.ping():
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError('redis-server not ready within %.0fs\n%s' % (timeout, self.log_tail()))

    def command(self, *args, timeout=5.0):
        """One command in RESP; returns the raw reply bytes (enough for PING/DBSIZE-style checks)."""
        out = b'*%d\r\n' % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b'$%d\r\n%s\r\n' % (len(a), a)
        with socket.create_connection((HOST, self.port), timeout=timeout) as s:
            s.sendall(out)
            data = b''
            while not data.endswith(b'\r\n'):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data

    def ping(self):
        return self.command('PING', timeout=0.5).startswith(b'+PONG')

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        if self._log:
            self._log.close()
            self._log = None

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.dir, 'redis.log'), 'rb') as f:
                return '--- redis log ---\n' + '\n'.join(f.read().decode(errors='replace').splitlines()[-n:])
        except (OSError, TypeError):
            return ''

    def stop(self):
        try:
            self.kill(signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
        if self.dir and os.environ.get('RINGMQ_KEEP_TMP') is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

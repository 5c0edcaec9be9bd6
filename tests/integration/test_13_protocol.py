"""Protocol behaviour clients rely on: "no matching subscribers" acks, will messages on session takeover,
the client's Maximum Packet Size for every packet the server sends, MQTT 3.1 CONNACK flags, acknowledgements
of the wrong kind, wrong protocol names, exact MQTT 5 reason codes for malformed and forbidden input,
invalid topic filters, and the server's packet identifiers (first id, no collision after wrap-around).

paho (3.1.1 / 5) or mosquitto_pub where a client library can produce the input and show the answer; raw
sockets (rawmqtt.py) for exact bytes and sizes. Tests marked mosquitto_lacks / ringmq_only state where Debian's
mosquitto 2.0.11 answers differently from the decisions taken for ringmq.
"""
import itertools
import os
import re
import shutil
import struct
import subprocess
import threading
import time

import harness
from harness import BrokerTest, IS_MOSQUITTO, mosquitto_lacks, ringmq_only, wait_until
import rawmqtt as R

import paho.mqtt.client as mqtt

# ringmq's own reason strings are not specified; a test only needs "present and non-empty".
RECEIVE_MAX = 2

# ASSUMPTION (to be confirmed by the lead): the per-session subscription limit is the config key
# max_subscriptions, flag --max-subscriptions; over it the SUBACK says 0x97 for that filter.
MAX_SUBSCRIPTIONS_FLAG = '--max-subscriptions'

_topic_seq = itertools.count()


def short_topic():
    """A topic unique to this process and short enough for the tiny Maximum Packet Size tests."""
    return 'm/%x/%d' % (os.getpid() & 0xFFF, next(_topic_seq))


def wire_size(p):
    """Bytes the broker put on the wire for packet p (fixed header + remaining length + body)."""
    return 1 + len(R.vbi(len(p.body))) + len(p.body)


class SizedClient(R.RawClient):
    """A raw MQTT 5 client that announced Maximum Packet Size `limit`: every packet the broker sends it is
    checked against the limit [MQTT-3.1.2-24] and recorded in self.got as (name, size)."""

    def __init__(self, port, limit, version=5):
        super().__init__(port, version)
        self.limit = limit
        self.got = []

    def read_packet(self, timeout=5.0):
        p = super().read_packet(timeout)
        n = wire_size(p)
        self.got.append((p.name, n))
        if n > self.limit:
            raise AssertionError('[MQTT-3.1.2-24] broker sent %r of %d bytes to a client whose Maximum Packet '
                                 'Size is %d' % (p, n, self.limit))
        return p


def connect_named(name, level, client_id, clean=True, keepalive=60, v5_props=b'\x00'):
    """A CONNECT with any protocol name and level (rawmqtt.connect always says "MQTT")."""
    body = R.mstr(name) + bytes([level, 0x02 if clean else 0]) + struct.pack('>H', keepalive)
    if level == 5:
        body += v5_props
    body += R.mstr(client_id)
    return R.packet(R.CONNECT, 0, body)


def until_closed(r, label, allowed=(R.DISCONNECT,), timeout=5.0):
    """The packets the broker sends until it closes the connection (like RawClient.wait_closed), but a packet
    whose type is not in `allowed` (a SUBACK, PUBACK... meaning the input was taken as valid) fails at once,
    and a connection still open at the deadline is a test failure, not an error."""
    deadline = time.monotonic() + timeout
    got = []
    while True:
        try:
            p = r.read_packet(max(deadline - time.monotonic(), 0.001))
        except (R.Closed, ConnectionError):
            return got
        except TimeoutError:
            raise AssertionError('%s: connection still open after %.0fs (received %r)' % (label, timeout, got))
        got.append(p)
        if p.type not in allowed:
            expected = '/'.join(R.TYPE_NAMES[t] for t in allowed) + ' then a close' if allowed else 'a close'
            raise AssertionError('%s: the broker answered %r (expected %s)' % (label, p, expected))


PUBACK_RC = re.compile(r'received PUBACK \(Mid: \d+, RC:(\d+)\)')


class ProtocolTest(BrokerTest):
    broker_config = {'max_queued': 100000}

    def sized(self, limit, client_id=None, plist=(), **kw):
        r = SizedClient(self.port, limit)
        self._clients.append(r)
        r.connect(client_id or self.cid(), plist=[(R.P_MAXIMUM_PACKET_SIZE, limit)] + list(plist), **kw)
        return r

    def each_version(self, fn):
        for version in (4, 5):
            with self.subTest(version=version):
                fn(version)

    # --- 1. PUBACK / PUBREC 0x10 "No matching subscribers" ------------------------------------------------

    def mosquitto_pub_rc(self, client_id, topic, qos=1):
        """Publish once with mosquitto_pub -V 5 and return the PUBACK reason code it printed."""
        if not shutil.which('mosquitto_pub'):
            self.skipTest('mosquitto_pub not installed')
        cp = subprocess.run(['mosquitto_pub', '-h', harness.HOST, '-p', str(self.port), '-V', '5', '-d',
                             '-i', client_id, '-q', str(qos), '-t', topic, '-m', 'x'],
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
        out = cp.stdout.decode(errors='replace')
        m = PUBACK_RC.search(out)
        self.assertIsNotNone(m, 'mosquitto_pub printed no PUBACK (rc %d): %s %s' % (
            cp.returncode, out, cp.stderr.decode(errors='replace')))
        return int(m.group(1))

    def raw_pubrec_rc(self, r, topic):
        """QoS 2 over a raw connection: returns the PUBREC reason (mosquitto_pub does not print it), then
        completes the flow (PUBREL / PUBCOMP 0x00)."""
        pid = r.alloc_pid()
        r.send(R.publish(topic, b'x', qos=2, pid=pid, version=5))
        rec = r.expect(R.PUBREC)
        self.assertEqual(rec.pid, pid)
        if rec.reason < 0x80:
            r.send(R.ack(R.PUBREL, pid, 5))
            comp = r.expect(R.PUBCOMP)
            self.assertEqual((comp.pid, comp.reason), (pid, 0))
        return rec.reason

    def test_MQTT_3_4_2_1_puback_no_matching_subscribers(self):
        """A QoS 1 PUBLISH nobody subscribed to: PUBACK 0x10; QoS 2: PUBREC 0x10 (publishers on both
        workers)."""
        for k in (0, 1):
            with self.subTest(worker=k):
                t = self.topic('nobody%d' % k)
                self.assertEqual(self.mosquitto_pub_rc(self.cid(k), t, 1), R.RC_NO_MATCHING_SUBSCRIBERS)
                r = self.raw_connected(self.cid(k), version=5)
                rc = self.raw_pubrec_rc(r, t)
                if not IS_MOSQUITTO:  # mosquitto 2.0.11 routes QoS 2 at PUBREL: its PUBREC says 0x00
                    self.assertEqual(rc, R.RC_NO_MATCHING_SUBSCRIBERS, 'PUBREC')
                r.disconnect()

    def test_MQTT_3_4_2_1_puback_success_with_subscriber(self):
        """A subscriber on the same worker, on the other worker, a shared subscription on the other worker,
        and an offline persistent session are all matches: 0x00, and the message arrives."""
        cases = [('same worker', 0, ''), ('other worker', 1, ''), ('shared, other worker', 1, '$share/g13/')]
        for label, sub_worker, prefix in cases:
            with self.subTest(case=label):
                t = self.topic(label.replace(' ', '-').replace(',', ''))
                s = self.client(self.cid(sub_worker, 's'), version=5)
                s.subscribe(prefix + t, 1)
                self.assertEqual(self.mosquitto_pub_rc(self.cid(0, 'p'), t, 1), R.RC_SUCCESS)
                self.assertEqual(s.get().payload, b'x')
                r = self.raw_connected(self.cid(0, 'p2'), version=5)
                self.assertEqual(self.raw_pubrec_rc(r, t), R.RC_SUCCESS)
                self.assertEqual(s.get().payload, b'x')
                r.disconnect()
                s.disconnect()
        with self.subTest(case='offline persistent session'):
            t = self.topic('offline')
            cid = self.cid(1, 'off')
            s = self.client(cid, version=5, clean=False, session_expiry=60)
            s.subscribe(t, 1)
            s.disconnect()
            self.assertEqual(self.mosquitto_pub_rc(self.cid(0, 'p'), t, 1), R.RC_SUCCESS,
                             'a queued message has a subscriber')
            s = self.client(cid, version=5, clean=False, session_expiry=60)
            self.assertEqual(s.get().payload, b'x')
            s.disconnect(props={'SessionExpiryInterval': 0})

    def test_MQTT_3_4_2_1_no_matching_after_unsubscribe(self):
        """Once the only subscriber (other worker) unsubscribed, the PUBACK says 0x10 again."""
        t = self.topic()
        s = self.client(self.cid(1), version=5)
        s.subscribe(t, 1)
        r = self.raw_connected(self.cid(0), version=5)
        self.assertEqual(r.publish(t, b'a', qos=1).reason, R.RC_SUCCESS)
        s.unsubscribe(t)
        # The other worker forgets the interest asynchronously after the UNSUBACK: poll with a deadline.
        wait_until(lambda: r.publish(t, b'b', qos=1).reason == R.RC_NO_MATCHING_SUBSCRIBERS, timeout=5,
                   interval=0.05, what='PUBACK 0x10 after the unsubscribe')
        r.disconnect()

    # --- 2. will messages on session takeover ------------------------------------------------------------

    def will_watcher(self, t):
        w = self.client(self.cid(0, 'watch'), version=5)
        w.subscribe(t, 1)
        return w

    @mosquitto_lacks('2.0.11 sends no DISCONNECT 0x8E on takeover')
    def test_MQTT_3_1_4_3_takeover_resumed_session_no_will(self):
        """MQTT 5, will delay 0, session expiry > 0: a new connection with clean_start=0 takes over. The old
        one gets DISCONNECT 0x8E; the session goes on, so the will is not published."""
        for k in (0, 1):
            with self.subTest(worker=k):
                t = self.topic('w%d' % k)
                w = self.will_watcher(t)
                cid = self.cid(k)
                a = self.client(cid, version=5, clean=False, session_expiry=60,
                                will={'topic': t, 'payload': b'will-a', 'qos': 1})
                b = self.client(cid, version=5, clean=False, session_expiry=60)
                self.assertTrue(b.session_present)
                self.assertEqual(a.wait_disconnected(), R.RC_SESSION_TAKEN_OVER, '[MQTT-3.1.4-3]')
                w.expect_none(1.0)
                b.disconnect(props={'SessionExpiryInterval': 0})  # b has no will: nothing published now
                w.expect_none(0.3)

    def test_MQTT_3_1_2_8_takeover_clean_start_publishes_will(self):
        """MQTT 5: a takeover with clean_start=1 ends the old session: its will is published."""
        for k in (0, 1):
            with self.subTest(worker=k):
                t = self.topic('w%d' % k)
                w = self.will_watcher(t)
                cid = self.cid(k)
                a = self.client(cid, version=5, clean=False, session_expiry=60,
                                will={'topic': t, 'payload': b'will-a', 'qos': 1})
                b = self.client(cid, version=5, clean=True)
                self.assertFalse(b.session_present)
                reason = a.wait_disconnected()
                if not IS_MOSQUITTO:
                    self.assertEqual(reason, R.RC_SESSION_TAKEN_OVER)
                m = w.get()
                self.assertEqual((m.topic, m.payload, m.qos), (t, b'will-a', 1))
                w.expect_none(0.3)
                b.disconnect()

    def test_MQTT_3_1_2_8_v311_takeover_publishes_will(self):
        """MQTT 3.1.1 has no will delay: the will goes whenever the network connection closes without
        DISCONNECT, a takeover included (persistent and clean sessions)."""
        for clean in (False, True):
            if clean is False and IS_MOSQUITTO:
                continue  # mosquitto 2.0.11 publishes no will when a persistent 3.1.1 session is taken over
            with self.subTest(clean_session=clean):
                t = self.topic('c%d' % clean)
                w = self.will_watcher(t)
                cid = self.cid(1)
                a = self.client(cid, version=4, clean=clean, will={'topic': t, 'payload': b'will-a', 'qos': 1})
                b = self.client(cid, version=4, clean=clean)
                a.wait_disconnected()
                m = w.get()
                self.assertEqual((m.topic, m.payload), (t, b'will-a'), '[MQTT-3.1.2-8] v3.1.1')
                w.expect_none(0.3)
                b.disconnect()
                if not clean:
                    self.client(cid, version=4, clean=True).disconnect()  # drop the persistent session

    # --- 3. the client's Maximum Packet Size -------------------------------------------------------------

    def test_MQTT_3_1_2_25_publish_over_client_maximum_dropped(self):
        """Maximum Packet Size 40: a PUBLISH of exactly 40 bytes is delivered, 41 bytes is discarded and the
        next small one still arrives. With Receive Maximum 1 a discarded QoS 1 message must not hold the
        window. Publisher on the same and on the other worker."""
        limit = 40
        for qos in (0, 1):
            if qos == 1 and IS_MOSQUITTO:
                continue  # mosquitto 2.0.11: the discarded QoS 1 message keeps its in-flight slot forever
            for k in (0, 1):
                with self.subTest(qos=qos, publisher_worker=k):
                    t = short_topic()
                    sub = self.sized(limit, self.cid(1, 's'), plist=[(R.P_RECEIVE_MAXIMUM, 1)])
                    sub.subscribe([(t, 1)])
                    pub = self.raw_connected(self.cid(k, 'p'), version=5)
                    # PUBLISH to the subscriber: 1 + 1 + (2 + len(t)) + (2 if qos) + 1 (no properties) + payload
                    fixed = 1 + 1 + 2 + len(t) + (2 if qos else 0) + 1
                    exact = b'E' * (limit - fixed)
                    # mosquitto 2.0.11 leaves the fixed header byte out of its size check: 1 byte more there.
                    over = b'O' * (limit - fixed + (2 if IS_MOSQUITTO else 1))
                    for payload in (over, exact, over, b'small'):
                        pub.publish(t, payload, qos=qos)
                    got = [sub.receive().payload for _ in range(2)]
                    self.assertEqual(got, [exact, b'small'], 'over-size ones discarded, the others delivered')
                    self.assertEqual([n for name, n in sub.got if name == 'PUBLISH'], [limit, fixed + 5])
                    sub.expect_nothing(0.3)
                    sub.disconnect()
                    pub.disconnect()

    def test_MQTT_3_1_2_25_large_queue_drains_past_dropped(self):
        """A burst alternating over-size and small QoS 1 messages toward Receive Maximum 2: every small one
        arrives, in order."""
        limit = 64
        t = short_topic()
        sub = self.sized(limit, self.cid(1, 's'), plist=[(R.P_RECEIVE_MAXIMUM, 2)])
        sub.subscribe([(t, 1)])
        pub = self.raw_connected(self.cid(0, 'p'), version=5)
        payloads = []
        for i in range(50):
            payloads.append(b'big%d' % i + b'B' * limit)
            payloads.append(b'%d' % i)
        self.publish_many(pub, t, payloads, qos=1)
        got = [sub.receive().payload for _ in range(50)]
        self.assertEqual(got, [b'%d' % i for i in range(50)])
        sub.expect_nothing(0.3)

    def _bare_connack_size(self):
        """Size of the CONNACK this broker sends a plain MQTT 5 CONNECT (with its own properties)."""
        r = self.raw_connected(self.cid(), version=5)
        n = wire_size(r.connack)
        r.disconnect()
        return n

    @mosquitto_lacks('2.0.11 sends its CONNACK even when it exceeds the client maximum')
    def test_MQTT_3_2_2_19_connack_fits_or_connection_closed(self):
        """Maximum Packet Size exactly the size of the CONNACK: CONNACK 0x00 arrives and fits. One byte less:
        the connection is closed without any CONNACK [MQTT-3.1.2-24]."""
        bare = self._bare_connack_size()
        r = SizedClient(self.port, bare)
        self._clients.append(r)
        ca = r.connect(self.cid(), plist=[(R.P_MAXIMUM_PACKET_SIZE, bare)])
        self.assertLessEqual(wire_size(ca), bare)
        r.disconnect()
        self.witness()
        for limit in (bare - 1, 5, 2):
            with self.subTest(limit=limit):
                r = R.RawClient(self.port, 5)
                self._clients.append(r)
                r.send(R.connect(self.cid(), 5, plist=[(R.P_MAXIMUM_PACKET_SIZE, limit)]))
                got = until_closed(r, 'CONNACK over maximum %d' % limit, allowed=())
                self.assertEqual(got, [], 'nothing fits in %d bytes: closed without CONNACK' % limit)
                self.check_served('CONNACK over maximum %d' % limit)

    def test_MQTT_3_2_2_19_error_connack_fits(self):
        """A refused CONNECT (unsupported authentication method -> 0x8C) whose client allows only 5 bytes:
        whatever the broker sends fits (a bare error CONNACK is 5 bytes)."""
        r = SizedClient(self.port, 5)
        self._clients.append(r)
        r.send(R.connect(self.cid(), 5, plist=[(R.P_MAXIMUM_PACKET_SIZE, 5), (0x15, 'NO-SUCH-METHOD')]))
        got = until_closed(r, 'error CONNACK', allowed=(R.CONNACK,))
        for p in got:
            self.assertEqual(p.type, R.CONNACK, got)
            self.assertGreaterEqual(p.reason, 0x80)

    @mosquitto_lacks('2.0.11 closes without DISCONNECT on a second CONNECT')
    def test_MQTT_3_14_2_3_disconnect_reason_string_dropped(self):
        """Request Problem Information 1 (default) and a Maximum Packet Size that fits the CONNACK and a bare
        DISCONNECT but not one with its reason string: a protocol error (second CONNECT) is answered with
        DISCONNECT 0x82 without the reason string [MQTT-3.14.2-3]."""
        bare_connack = self._bare_connack_size()
        # How large is the DISCONNECT with its reason string, when nothing limits it?
        r = self.raw_connected(self.cid(), version=5)
        r.send(R.connect(self.cid(), 5))
        full = until_closed(r, 'second CONNECT, no limit')
        self.assertEqual([p.reason for p in full], [R.RC_PROTOCOL_ERROR])
        full_size = wire_size(full[0])
        self.assertTrue(full[0].props.get(R.P_REASON_STRING), 'precondition: the DISCONNECT explains itself')
        limit = max(bare_connack, 4)
        if full_size <= limit:
            self.skipTest('the full DISCONNECT (%d bytes) fits the CONNACK-sized limit %d' % (full_size, limit))
        r = self.sized(limit)
        r.send(R.connect(self.cid(), 5))
        got = until_closed(r, 'second CONNECT, limit %d' % limit)
        self.assertEqual([(p.type, p.reason) for p in got], [(R.DISCONNECT, R.RC_PROTOCOL_ERROR)],
                         'DISCONNECT 0x82 kept, its reason string dropped')
        self.assertNotIn(R.P_REASON_STRING, got[0].props)
        self.assertNotIn(R.P_USER_PROPERTY, got[0].props)

    def test_MQTT_3_14_2_3_disconnect_never_over_maximum(self):
        """Every DISCONNECT a small-limit client can provoke fits (malformed, protocol error, topic name
        invalid, packet too large, receive maximum...)."""
        bare_connack = self._bare_connack_size()
        provocations = [
            ('malformed', R.packet(R.PUBLISH, 0, struct.pack('>H', 100) + b'short')),
            ('second CONNECT', R.connect('again', 5)),
            ('wildcard topic', R.publish('a/#', b'x', version=5)),
            ('alias 0', R.publish('a', b'x', version=5, plist=[(R.P_TOPIC_ALIAS, 0)])),
        ]
        for label, pkt in provocations:
            with self.subTest(case=label):
                r = self.sized(bare_connack)
                r.send(pkt)
                got = until_closed(r, label)
                self.assertTrue(all(p.type == R.DISCONNECT for p in got), got)

    # --- 4. MQTT 3.1 ---------------------------------------------------------------------------------------

    def test_mqtt31_connack_flags_zero_with_session(self):
        """MQTT 3.1 (MQIsdp, level 3) has no Session Present flag: the CONNACK's first byte is 0 even when a
        session was resumed (paho MQTTv31 and raw bytes)."""
        cid = self.cid(1)
        for attempt in range(2):
            got = {}
            done = threading.Event()
            c = mqtt.Client(client_id=cid, clean_session=False, protocol=mqtt.MQTTv31)

            def on_connect(client, userdata, flags, rc):
                got['flags'], got['rc'] = dict(flags), rc
                done.set()
            c.on_connect = on_connect
            c.connect(harness.HOST, self.port, 60)
            c.loop_start()
            try:
                self.assertTrue(done.wait(10), 'paho MQTTv31: no CONNACK')
            finally:
                c.disconnect()
                c.loop_stop()
            self.assertEqual(got['rc'], 0)
            self.assertEqual(got['flags'].get('session present'), 0, 'attempt %d' % attempt)
        r = self.raw(3)
        r.send(connect_named('MQIsdp', 3, cid, clean=False))
        p = r.read_packet()
        self.assertEqual((p.type, p.body), (R.CONNACK, b'\x00\x00'), 'CONNACK flags 0, return code 0')
        r.disconnect()
        self.client(cid, version=4, clean=True).disconnect()  # end the persistent session

    # --- 5. acknowledgement of the wrong kind --------------------------------------------------------------

    def test_wrong_ack_kind_for_inflight_packet_id(self):
        """The broker sent PUBLISH id X at QoS 1 (or 2); the client answers X with the other flow's packet:
        protocol error. 3.1.1: connection closed; 5: DISCONNECT 0x82, then closed."""
        self.witness()
        cases = [(1, R.PUBCOMP), (1, R.PUBREC), (2, R.PUBACK)]
        for v in (4, 5):
            for qos, wrong in cases:
                with self.subTest(version=v, qos=qos, answer=R.TYPE_NAMES[wrong]):
                    t = self.topic('v%dq%d%s' % (v, qos, R.TYPE_NAMES[wrong]))
                    sub = self.raw_connected(self.cid(1, 's'), version=v)
                    sub.subscribe([(t, qos)])
                    pub = self.client(self.cid(0, 'p'))
                    pub.publish(t, b'x', qos=qos)
                    p = sub.receive(auto_ack=False)
                    self.assertEqual(p.qos, qos)
                    sub.send(R.ack(wrong, p.pid, v))
                    got = until_closed(sub, 'wrong ack')
                    if v == 5 and not (IS_MOSQUITTO and got == []):  # mosquitto 2.0.11 just closes
                        self.assertEqual([(x.type, x.reason) for x in got], [(R.DISCONNECT, R.RC_PROTOCOL_ERROR)])
                    else:
                        self.assertEqual(got, [])
                    self.check_served('%s for QoS %d v%d' % (R.TYPE_NAMES[wrong], qos, v))

    # --- 6. protocol name, client identifier ---------------------------------------------------------------

    def test_MQTT_3_1_2_1_v311_wrong_protocol_name_closed(self):
        """3.1.1 level with protocol name "MQTX" (and "MQIsdp" with level 4): closed without CONNACK."""
        self.witness()
        for name, level in (('MQTX', 4), ('MQIsdp', 4), ('mqtt', 4)):
            if name == 'MQIsdp' and IS_MOSQUITTO:
                continue  # mosquitto 2.0.11 reads it as MQTT 3.1 and answers CONNACK 1 (bad protocol level)
            with self.subTest(name=name, level=level):
                r = self.raw(4)
                r.send(connect_named(name, level, self.cid()))
                until_closed(r, '[MQTT-3.1.2-1] protocol name %s: no CONNACK' % name, allowed=())
                self.check_served('protocol name %s' % name)

    @mosquitto_lacks('2.0.11 closes without CONNACK 0x84 on a wrong protocol name at level 5')
    def test_MQTT_3_1_2_2_v5_wrong_protocol_name_connack_84(self):
        self.witness()
        r = self.raw(5)
        r.send(connect_named('MQTX', 5, self.cid()))
        got = until_closed(r, 'v5 MQTX', allowed=(R.CONNACK,))
        self.assertEqual([(p.type, p.reason) for p in got], [(R.CONNACK, 0x84)])
        self.check_served('v5 protocol name MQTX')

    def test_MQTT_1_5_3_1_v311_ill_formed_utf8_client_id_closed(self):
        """3.1.1: ill-formed UTF-8 or U+0000 in the client identifier: closed, no CONNACK [MQTT-1.5.3-1],
        [MQTT-1.5.3-2]."""
        self.witness()
        for cid in (b'id\xff', b'id\xc0\x80', b'id\xed\xa0\x80', b'id\x00x'):
            with self.subTest(client_id=cid):
                r = self.raw(4)
                r.send(R.connect(cid, 4))
                until_closed(r, 'client id %r: closed without CONNACK' % cid, allowed=())
                self.check_served('client id %r' % cid)

    # --- 7. exact MQTT 5 reason codes ----------------------------------------------------------------------

    def assert_disconnect(self, r, code, label):
        got = until_closed(r, label)
        if not (IS_MOSQUITTO and got == []):  # mosquitto 2.0.11 often closes without DISCONNECT
            self.assertEqual([(p.type, p.reason) for p in got], [(R.DISCONNECT, code)], label)
        self.check_served(label)
        return got[0] if got else None

    def test_property_not_allowed_in_publish_malformed(self):
        """Session Expiry Interval in a PUBLISH: an identifier not valid for the packet type makes it a
        Malformed Packet (MQTT 5 2.2.2.2): DISCONNECT 0x81."""
        self.witness()
        for pid, val in ((R.P_SESSION_EXPIRY, 5), (R.P_RECEIVE_MAXIMUM, 5), (R.P_REASON_STRING, 'r')):
            with self.subTest(property=pid):
                r = self.raw_connected(self.cid(), version=5)
                r.send(R.publish(self.topic(), b'x', qos=1, pid=1, version=5, plist=[(pid, val)]))
                self.assert_disconnect(r, R.RC_MALFORMED, 'property 0x%02x in PUBLISH' % pid)

    def test_truncated_property_malformed(self):
        """A property whose value runs past the end of the property block (into the payload): 0x81."""
        self.witness()
        blocks = [
            ('string past block', b'\x05' + b'\x03' + struct.pack('>H', 10) + b'ab'),
            ('u32 past block', b'\x03' + b'\x02' + b'\x00\x00'),
            ('u16 past block', b'\x02' + b'\x23' + b'\x00'),
        ]
        for label, block in blocks:
            with self.subTest(case=label):
                r = self.raw_connected(self.cid(), version=5)
                body = R.mstr(self.topic()) + struct.pack('>H', 1) + block + b'payload-bytes-follow'
                r.send(R.packet(R.PUBLISH, 0x02, body))
                self.assert_disconnect(r, R.RC_MALFORMED, label)

    def test_duplicate_message_expiry_protocol_error(self):
        """Message Expiry Interval twice in one PUBLISH: "It is a Protocol Error to include the Message Expiry
        Interval more than once" (3.3.2.3.3): DISCONNECT 0x82."""
        self.witness()
        r = self.raw_connected(self.cid(), version=5)
        r.send(R.publish(self.topic(), b'x', qos=1, pid=1, version=5,
                         plist=[(R.P_MESSAGE_EXPIRY, 5), (R.P_MESSAGE_EXPIRY, 6)]))
        self.assert_disconnect(r, R.RC_PROTOCOL_ERROR, 'duplicate message expiry')

    def test_empty_topic_without_alias_protocol_error(self):
        """A zero-length topic name with no Topic Alias is a Protocol Error (3.3.2.1): 0x82 exactly."""
        self.witness()
        r = self.raw_connected(self.cid(), version=5)
        r.send(R.publish('', b'x', qos=1, pid=1, version=5))
        self.assert_disconnect(r, R.RC_PROTOCOL_ERROR, 'empty topic, no alias')

    # --- 8. Subscription Identifier from a client ----------------------------------------------------------

    @mosquitto_lacks('2.0.11 accepts a Subscription Identifier in a PUBLISH from a client')
    def test_MQTT_3_3_4_6_publish_with_subscription_identifier(self):
        """A PUBLISH from a client MUST NOT contain a Subscription Identifier: DISCONNECT 0x82."""
        self.witness()
        for qos in (0, 1):
            with self.subTest(qos=qos):
                r = self.raw_connected(self.cid(), version=5)
                r.send(R.publish(self.topic(), b'x', qos=qos, pid=1 if qos else None, version=5,
                                 plist=[(R.P_SUBSCRIPTION_ID, 5)]))
                self.assert_disconnect(r, R.RC_PROTOCOL_ERROR, 'subscription id in PUBLISH qos %d' % qos)

    # --- 9. syntactically invalid topic filters ------------------------------------------------------------

    INVALID_FILTERS = ['', 'a/#/b', 'a/b#', 'a+/b', '#/a', 'a/+b', '$share/g+/x']
    INVALID_SHARED = ['$share//x', '$share/g', '$share/g/', '$share/g#/x']  # MQTT 5 shared subscriptions
    MOSQ_ACCEPTS = {'$share//x', '$share/g', '$share/g/'}  # mosquitto 2.0.11 SUBACKs/UNSUBACKs these

    def _invalid_filter(self, v, make, label):
        r = self.raw_connected(self.cid(), version=v)
        r.send(make(v))
        got = until_closed(r, label)
        if v == 5 and not (IS_MOSQUITTO and got == []):  # mosquitto 2.0.11 may close without DISCONNECT
            self.assertEqual([(p.type, p.reason) for p in got], [(R.DISCONNECT, R.RC_MALFORMED)], label)
        else:
            self.assertEqual(got, [], label)
        self.check_served(label)

    def test_MQTT_4_7_1_invalid_filter_subscribe_malformed(self):
        """SUBSCRIBE with a syntactically invalid filter [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1],
        [MQTT-4.8.2-1], [MQTT-4.8.2-2]: the packet is malformed. 3.1.1: closed; 5: DISCONNECT 0x81."""
        self.witness()
        for v in (4, 5):
            for f in self.INVALID_FILTERS + (self.INVALID_SHARED if v == 5 else []):
                if IS_MOSQUITTO and f in self.MOSQ_ACCEPTS:
                    continue
                with self.subTest(version=v, filter=f):
                    # With a valid filter in front: the whole packet is refused, not one entry.
                    self._invalid_filter(v, lambda v: R.subscribe(1, [('ok/' + self.topic(), 1), (f, 1)], v),
                                         'SUBSCRIBE %r v%d' % (f, v))

    def test_MQTT_4_7_1_invalid_filter_unsubscribe_malformed(self):
        self.witness()
        for v in (4, 5):
            for f in self.INVALID_FILTERS + (self.INVALID_SHARED if v == 5 else []):
                if IS_MOSQUITTO and f in self.MOSQ_ACCEPTS:
                    continue
                with self.subTest(version=v, filter=f):
                    self._invalid_filter(v, lambda v: R.unsubscribe(1, [f], v), 'UNSUBSCRIBE %r v%d' % (f, v))

    def test_valid_unusual_filters_accepted(self):
        """The border cases that ARE valid keep working: '#', '+', '/', '+/+', 'a//b', '$share/g/#'."""
        for v in (4, 5):
            with self.subTest(version=v):
                r = self.raw_connected(self.cid(), version=v)
                filters = ['#', '+', '/', '+/+', 'a//b', '/#', 'a/+/#'] + (['$share/g/#', '$share/g/+/x']
                                                                          if v == 5 else [])
                sa = r.subscribe([(f, 1) for f in filters])
                self.assertEqual(sa.reasons, [1] * len(filters))
                r.send(R.unsubscribe(2, filters, v))
                self.assertEqual(r.expect(R.UNSUBACK).pid, 2)
                r.disconnect()

    # --- 10. first packet identifier --------------------------------------------------------------------------

    def test_first_server_packet_id_is_1(self):
        """On a fresh session the first QoS 1 PUBLISH the server sends carries packet id 1: 10 fresh sessions
        per protocol version on each worker, one after the other (each reuses memory the previous session
        freed: short topics keep the messages out of the way), and a clean reconnect of an ID that had a
        session."""
        firsts = []
        for v in (4, 5):
            for i in range(20):
                k = i % 2
                t = short_topic()
                sub = self.raw_connected(self.cid(k, 's'), version=v)
                sub.subscribe([(t, 1)])
                pub = self.raw_connected(self.cid(1 - k, 'p'), version=4)
                pub.publish(t, b'first', qos=1)
                p = sub.receive()
                self.assertEqual(p.payload, b'first')
                firsts.append((v, k, p.pid))
                sub.disconnect()
                pub.disconnect()
        self.assertEqual([f for f in firsts if f[2] != 1], [], '(version, worker, first id) other than 1')
        cid = self.cid(1, 'again')
        t = short_topic()
        pub = self.raw_connected(self.cid(0, 'p'), version=4)
        sub = self.raw_connected(cid, version=4, clean=False)
        sub.subscribe([(t, 1)])
        for i in range(3):
            pub.publish(t, b'%d' % i, qos=1)
        self.assertEqual([sub.receive().pid for _ in range(3)], [1, 2, 3])
        sub.disconnect()
        sub = self.raw_connected(cid, version=4, clean=True)
        sub.subscribe([(t, 1)])
        pub.publish(t, b'fresh', qos=1)
        self.assertEqual(sub.receive().pid, 1, 'clean session: ids start over')
        sub.disconnect()

    # --- 11. packet identifiers after wrap-around --------------------------------------------------------

    @mosquitto_lacks('2.0.11 reuses a packet id still in flight once its ids wrap past 65535')
    def test_MQTT_2_2_1_4_packet_ids_skip_inflight_after_wrap(self):
        """A subscriber with Receive Maximum 10 holds 5 QoS 1 messages unacknowledged and acknowledges
        everything else while 70,000 messages go through: after the 16-bit ids wrap, no new PUBLISH reuses a
        held id [MQTT-2.2.1-4]; the held ones are still redelivered with their own ids after a reconnect."""
        n_total = int(os.environ.get('RINGMQ_WRAP_MESSAGES', '70000'))
        t = self.topic()
        cid = self.cid(1, 's')
        plist = [(R.P_RECEIVE_MAXIMUM, 10), (R.P_SESSION_EXPIRY, 300)]
        sub = self.raw_connected(cid, version=5, clean=True, plist=plist)
        sub.subscribe([(t, 1)])
        pub = self.raw_connected(self.cid(0, 'p'), version=5)
        held = {}
        seen = 0
        errors = []
        deadline = time.monotonic() + 120

        def reader():
            nonlocal seen
            try:
                while seen < n_total and time.monotonic() < deadline:
                    p = sub.read_packet(max(deadline - time.monotonic(), 0.01))
                    if p.type != R.PUBLISH:
                        continue
                    seen += 1
                    if p.pid in held:
                        errors.append('PUBLISH %r reused held id %d (message %d)' % (p.payload, p.pid, seen))
                        return
                    if len(held) < 5:
                        held[p.pid] = p.payload
                    else:
                        sub.send(R.ack(R.PUBACK, p.pid, 5))
            except Exception as e:  # noqa: BLE001 - reported by the test thread
                errors.append(repr(e))
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        payloads = (b'%d' % i for i in range(n_total))
        self.publish_many(pub, t, payloads, qos=1, timeout=120)
        th.join(max(deadline - time.monotonic(), 1))
        self.assertFalse(th.is_alive(), 'reader still running: %d of %d seen' % (seen, n_total))
        self.assertEqual(errors, [])
        self.assertEqual(seen, n_total)
        self.assertEqual(sorted(held.values()), sorted(b'%d' % i for i in range(5)))
        sub.close()
        sub = self.raw_connected(cid, version=5, clean=False, plist=plist)
        self.assertTrue(sub.connack.session_present)
        again = {}
        for _ in range(5):
            p = sub.receive()
            self.assertTrue(p.dup)
            again[p.pid] = p.payload
        self.assertEqual(again, held, 'held messages redelivered with their ids')
        sub.expect_nothing(0.3)
        sub.disconnect(plist=[(R.P_SESSION_EXPIRY, 0)])


class ReceiveMaximumTest(BrokerTest):
    broker_config = {'receive_maximum': RECEIVE_MAX}

    @mosquitto_lacks('does not disconnect a client exceeding its receive maximum')
    def test_MQTT_3_3_4_9_receive_maximum_exceeded_reason_string(self):
        """Receive Maximum 2: a third unreleased QoS 2 PUBLISH (distinct ids, no PUBREL) is answered with
        DISCONNECT 0x93 carrying a non-empty Reason String (Request Problem Information defaults to 1)."""
        self.witness()
        r = self.raw_connected(self.cid(), version=5)
        self.assertEqual(r.connack.props.get(R.P_RECEIVE_MAXIMUM), RECEIVE_MAX)
        for pid in range(1, RECEIVE_MAX + 1):
            r.send(R.publish(self.topic(), b'x', qos=2, pid=pid, version=5))
            self.assertEqual(r.expect(R.PUBREC).pid, pid)
        r.send(R.publish(self.topic(), b'x', qos=2, pid=RECEIVE_MAX + 1, version=5))
        got = until_closed(r, 'receive maximum exceeded')
        self.assertEqual([(p.type, p.reason) for p in got], [(R.DISCONNECT, R.RC_RECEIVE_MAX_EXCEEDED)])
        self.assertTrue(got[0].props.get(R.P_REASON_STRING), 'reason string present and non-empty')
        self.check_served('receive maximum exceeded')


@ringmq_only
class SubackReasonStringTest(BrokerTest):
    """A SUBACK that carries a reason string (ringmq explains the 0x97 "quota exceeded" of its per-session
    subscription limit) loses the reason string when it would exceed the client's Maximum Packet Size."""
    broker_args = (MAX_SUBSCRIPTIONS_FLAG, '2')

    def _over_quota(self, limit=None):
        plist = [(R.P_MAXIMUM_PACKET_SIZE, limit)] if limit else []
        r = SizedClient(self.port, limit or 1 << 28)
        self._clients.append(r)
        r.connect(self.cid(), plist=plist)
        t = short_topic()
        return r, r.subscribe([(t + '/1', 1), (t + '/2', 1), (t + '/3', 1)])

    def test_suback_quota_exceeded_explained(self):
        r, sa = self._over_quota()
        self.assertEqual(sa.reasons, [1, 1, R.RC_QUOTA_EXCEEDED])
        self.assertTrue(sa.props.get(R.P_REASON_STRING), 'ringmq explains a failed subscription')

    def test_MQTT_3_9_2_1_suback_reason_string_dropped(self):
        r, sa = self._over_quota()
        full = wire_size(sa)
        bare = 2 + 2 + 1 + 3  # header, packet id, property length 0, three reason codes
        self.assertGreater(full, bare, 'precondition: the SUBACK carries a reason string')
        r, sa = self._over_quota(limit=max(bare, 16))
        self.assertEqual(sa.reasons, [1, 1, R.RC_QUOTA_EXCEEDED])
        self.assertNotIn(R.P_REASON_STRING, sa.props)


if __name__ == '__main__':
    harness.main()

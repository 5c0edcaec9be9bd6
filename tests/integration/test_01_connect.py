"""CONNECT / CONNACK (MQTT 3.1.1 and 5): assigned client identifier, server keep alive, clean start and
session present, keep alive 1.5x, connect timeout, connection limits."""
import socket
import time

import harness
from harness import BrokerTest, IS_MOSQUITTO, mosquitto_lacks, ringmq_only
import rawmqtt as R


class ConnectTest(BrokerTest):
    broker_config = {'max_keepalive': 30, 'connect_timeout_ms': 1000}

    def test_MQTT_3_2_2_v311_connack(self):
        r = self.raw(4)
        ca = r.connect(self.cid(), clean=True)
        self.assertEqual(ca.reason, 0)
        self.assertFalse(ca.session_present, '[MQTT-3.2.2-1] clean session -> session present 0')
        self.assertEqual(len(ca.body), 2, 'v3.1.1 CONNACK has exactly 2 bytes of variable header')
        r.send(R.PINGREQ_BYTES)
        r.expect(R.PINGRESP)

    def test_MQTT_3_2_2_v5_connack(self):
        r = self.raw(5)
        ca = r.connect(self.cid(), clean=True)
        self.assertEqual(ca.reason, 0)
        self.assertFalse(ca.session_present)
        # Values the server advertises must be sane when present.
        if R.P_RECEIVE_MAXIMUM in ca.props:
            self.assertGreater(ca.props[R.P_RECEIVE_MAXIMUM], 0)
        if R.P_MAXIMUM_QOS in ca.props:
            self.assertIn(ca.props[R.P_MAXIMUM_QOS], (0, 1))

    def test_MQTT_3_1_3_v311_zero_length_id_clean(self):
        r = self.raw(4)
        ca = r.connect('', clean=True)
        self.assertEqual(ca.reason, 0, '[MQTT-3.1.3-6] zero-length client id with clean session is accepted')

    def test_MQTT_3_1_3_8_v311_zero_length_id_persistent_rejected(self):
        r = self.raw(4)
        r.send(R.connect('', 4, clean=False))
        ca = r.expect(R.CONNACK)
        self.assertEqual(ca.reason, 2, '[MQTT-3.1.3-8] identifier rejected')
        r.wait_closed()

    def test_MQTT_3_2_2_assigned_client_identifier(self):
        ids = set()
        for _ in range(4):  # from several source ports, so more than one worker is likely to accept
            r = self.raw(5)
            ca = r.connect('', clean=True)
            self.assertEqual(ca.reason, 0)
            self.assertIn(R.P_ASSIGNED_CLIENT_ID, ca.props, '[MQTT-3.2.2-16] assigned client identifier')
            aid = ca.props[R.P_ASSIGNED_CLIENT_ID]
            self.assertTrue(aid)
            ids.add(aid)
        self.assertEqual(len(ids), 4, 'assigned identifiers are unique')

    def test_MQTT_3_2_2_assigned_id_is_usable(self):
        r = self.raw(5)
        ca = r.connect('', clean=True)
        aid = ca.props[R.P_ASSIGNED_CLIENT_ID]
        r.subscribe(self.topic(), plist=None)
        pub = self.client(version=4)
        pub.publish(self.topic(), b'to-assigned', qos=1)
        m = r.receive()
        self.assertEqual(m.payload, b'to-assigned')
        # The assigned identifier is a real session name: taking it over closes the first connection.
        r2 = self.raw(5)
        r2.connect(aid, clean=True)
        r.wait_closed()

    def test_MQTT_3_2_2_server_keep_alive(self):
        r = self.raw(5)
        ca = r.connect(self.cid(), keepalive=120)
        self.assertEqual(ca.props.get(R.P_SERVER_KEEP_ALIVE), 30,
                         '[MQTT-3.2.2-21] server keep alive replaces a keep alive over max_keepalive')
        r2 = self.raw(5)
        ca2 = r2.connect(self.cid(), keepalive=10)
        self.assertIn(ca2.props.get(R.P_SERVER_KEEP_ALIVE), (None, 10),
                      'a keep alive within the limit is kept')

    def test_v311_keepalive_over_max_accepted(self):
        """3.1.1 has no server keep alive: a keep alive over the limit must still be accepted."""
        r = self.raw(4)
        ca = r.connect(self.cid(), keepalive=120)
        self.assertEqual(ca.reason, 0)

    def test_MQTT_3_1_2_4_clean_session_v311(self):
        cid = self.cid()
        r = self.raw(4)
        self.assertFalse(r.connect(cid, clean=False).session_present, 'new session')
        r.subscribe(self.topic())
        r.disconnect()
        r = self.raw(4)
        self.assertTrue(r.connect(cid, clean=False).session_present, '[MQTT-3.2.2-2] session present')
        r.disconnect()
        r = self.raw(4)
        self.assertFalse(r.connect(cid, clean=True).session_present, '[MQTT-3.1.2-6] clean discards it')
        r.disconnect()
        r = self.raw(4)
        self.assertFalse(r.connect(cid, clean=False).session_present,
                         'a clean session is not kept after disconnect [MQTT-3.1.2-6]')
        r.disconnect()

    def test_MQTT_3_1_2_4_clean_start_v5(self):
        cid = self.cid()
        plist = [(R.P_SESSION_EXPIRY, 60)]
        r = self.raw(5)
        self.assertFalse(r.connect(cid, clean=False, plist=plist).session_present)
        r.subscribe(self.topic())
        r.disconnect()
        r = self.raw(5)
        self.assertTrue(r.connect(cid, clean=False, plist=plist).session_present, '[MQTT-3.1.2-5]')
        r.disconnect()
        r = self.raw(5)
        self.assertFalse(r.connect(cid, clean=True, plist=plist).session_present, '[MQTT-3.1.2-4]')
        r.disconnect()

    def test_session_present_on_both_workers(self):
        for k in range(self.broker.workers):
            cid = self.cid(k)
            a = self.client(cid, version=4, clean=False)
            self.assertFalse(a.session_present)
            a.subscribe(self.topic(str(k)))
            a.disconnect()
            b = self.client(cid, version=4, clean=False)
            self.assertTrue(b.session_present, 'worker %d keeps the session' % k)
            b.disconnect()

    def test_MQTT_3_1_2_24_keepalive_one_and_a_half(self):
        """No packet within 1.5 x keep alive: the server closes the connection (v5 may send 0x8D first)."""
        for version in (4, 5):
            with self.subTest(version=version):
                r = self.raw(version)
                r.connect(self.cid(), keepalive=1)
                t0 = time.monotonic()
                got = r.wait_closed(timeout=10)
                elapsed = time.monotonic() - t0
                self.assertGreaterEqual(elapsed, 0.9, 'closed before the keep alive expired')
                # mosquitto 2.0 checks keep alives only every 5 s: a known deviation, tolerated there.
                self.assertLess(elapsed, 7.0 if IS_MOSQUITTO else 3.5, 'not closed near 1.5 x keep alive')
                for p in got:
                    self.assertEqual(p.type, R.DISCONNECT, p)
                    self.assertEqual(p.reason, R.RC_KEEP_ALIVE_TIMEOUT)

    def test_keepalive_kept_by_pings(self):
        r = self.raw(4)
        r.connect(self.cid(), keepalive=1)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            r.send(R.PINGREQ_BYTES)
            r.expect(R.PINGRESP, timeout=2)
            time.sleep(0.4)  # the client's own ping interval, below the keep alive
        r.send(R.PINGREQ_BYTES)
        r.expect(R.PINGRESP)

    @mosquitto_lacks('no configurable CONNECT timeout')
    def test_connect_timeout_silent_client(self):
        """A client that connects and sends nothing is closed after connect_timeout_ms; others are served."""
        self.witness()
        socks = [socket.create_connection((harness.HOST, self.port)) for _ in range(4)]
        t0 = time.monotonic()
        for s in socks:
            s.settimeout(max(0.1, t0 + 8 - time.monotonic()))
            try:
                self.assertEqual(s.recv(16), b'', 'closed without data')
            except ConnectionResetError:
                pass
            s.close()
        self.assertLess(time.monotonic() - t0, 6.0)
        self.check_served('silent clients')
        if not harness.IS_MOSQUITTO:
            self.assertGreaterEqual(self.broker.ctl('stats')['total']['closed_connect_timeout'], 4)

    @mosquitto_lacks('no configurable CONNECT timeout')
    def test_connect_timeout_partial_connect(self):
        self.witness()
        r = self.raw(4)
        r.send(R.connect(self.cid(), 4)[:7])  # half a CONNECT, then nothing
        r.wait_closed(timeout=8)
        self.check_served('partial connect')


class ConnectionLimitTest(BrokerTest):
    broker_config = {'max_connections': 2}

    def _try_connect(self, cid):
        """CONNECT; returns the connection if accepted, None if refused (error CONNACK or close)."""
        r = self.raw(5)
        try:
            r.send(R.connect(cid, 5))
            p = r.read_packet(timeout=5)
        except (R.Closed, ConnectionError):
            return None
        if p.type == R.CONNACK and p.reason == 0:
            return r
        self.assertEqual(p.type, R.CONNACK, p)
        self.assertIn(p.reason, (R.RC_SERVER_BUSY, R.RC_QUOTA_EXCEEDED, 0x9F), p)
        r.wait_closed()
        return None

    @ringmq_only
    def test_max_connections_per_owner_worker(self):
        """Sessions live on the worker owning their slot: with every ID owned by one worker, that worker holds
        at most max_connections of them, whichever worker accepted the TCP connections."""
        limit = self.broker_config['max_connections']
        for k in (0, 1):
            with self.subTest(worker=k):
                accepted = [r for r in (self._try_connect(self.cid(k)) for _ in range(limit + 4)) if r]
                counts = {w['id']: w['connections'] for w in self.broker.worker_info()}
                for r in accepted:
                    r.disconnect()
                self.assertEqual(len(accepted), limit, 'accepted %d; worker connections %r' % (len(accepted),
                                                                                               counts))
                self.assertLessEqual(counts[k], limit, 'worker %d holds %r connections' % (k, counts))
                harness.wait_until(lambda: self.broker.ctl('status')['connections'] == 0, what='all closed')

    def test_max_connections(self):
        limit = self.broker_config['max_connections']
        total_max = limit * self.broker.workers
        accepted, refused = [], 0
        for i in range(total_max + 4):
            r = self._try_connect(self.cid())
            if r:
                accepted.append(r)
            else:
                refused += 1
        # mosquitto 2.0 lets max_connections + 1 in (off by one): tolerated there.
        self.assertLessEqual(len(accepted), total_max + (1 if IS_MOSQUITTO else 0),
                             'at most max_connections per worker')
        self.assertGreaterEqual(len(accepted), limit)
        self.assertEqual(refused + len(accepted), total_max + 4)
        self.assertGreaterEqual(refused, 3 if IS_MOSQUITTO else 4)
        # The accepted ones still work.
        for r in accepted:
            r.send(R.PINGREQ_BYTES)
            r.expect(R.PINGRESP)
        # Freeing the connections makes room again.
        for r in accepted:
            r.disconnect()
        if not IS_MOSQUITTO:
            harness.wait_until(lambda: self.broker.ctl('status')['connections'] == 0, what='connections == 0')

        def can_connect():
            r = self.raw(4)
            try:
                r.send(R.connect(self.cid(), 4))
                return r.read_packet(timeout=2).reason == 0
            except (R.Closed, ConnectionError, TimeoutError):
                return False
        harness.wait_until(can_connect, timeout=10, what='a connection after the others left')


if __name__ == '__main__':
    harness.main()

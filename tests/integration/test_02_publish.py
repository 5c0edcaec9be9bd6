"""PUBLISH at QoS 0/1/2 both ways, exactly-once QoS 2, PUBACK only after every matching session took the
message, order per publisher, publisher and subscriber on different workers."""
import harness
from harness import BrokerTest
import rawmqtt as R


class PublishTest(BrokerTest):

    def _matrix(self, version, pub_worker, sub_worker):
        t = self.topic('v%d-%d%d' % (version, pub_worker, sub_worker))
        subs = []
        for sq in range(3):
            s = self.client(self.cid(sub_worker, 's%d' % sq), version=version)
            self.assertEqual(s.subscribe(t, sq), [sq])
            subs.append(s)
        pub = self.client(self.cid(pub_worker, 'p'), version=version)
        for pq in range(3):
            pub.publish(t, b'qos%d' % pq, qos=pq)
        for sq, s in enumerate(subs):
            got = s.get_n(3)
            self.assertEqual([m.payload for m in got], [b'qos0', b'qos1', b'qos2'], 'order kept (sub qos %d)' % sq)
            self.assertEqual([m.qos for m in got], [min(pq, sq) for pq in range(3)],
                             '[MQTT-3.8.4-8] delivered QoS = min(publish QoS, granted QoS)')
            self.assertTrue(all(not m.dup and not m.retain for m in got))
            s.expect_none(0.2)

    def test_MQTT_3_8_4_qos_matrix_cross_worker(self):
        for version in (4, 5):
            for pw, sw in ((0, 1), (1, 0), (0, 0), (1, 1)):
                with self.subTest(version=version, pub_worker=pw, sub_worker=sw):
                    self._matrix(version, pw, sw)

    def test_MQTT_4_3_3_qos2_exactly_once_inbound(self):
        """A re-sent QoS 2 PUBLISH (DUP) before PUBREL is delivered once; the id is free after PUBCOMP."""
        for version in (4, 5):
            with self.subTest(version=version):
                t = self.topic('v%d' % version)
                sub = self.client(self.cid(1, 's'), version=5)
                sub.subscribe(t, 2)
                r = self.raw_connected(self.cid(0, 'p'), version=version)
                r.send(R.publish(t, b'once', qos=2, pid=7, version=version))
                self.assertEqual(r.expect(R.PUBREC).pid, 7)
                r.send(R.publish(t, b'once', qos=2, pid=7, dup=True, version=version))
                self.assertEqual(r.expect(R.PUBREC).pid, 7, '[MQTT-4.3.3-9] PUBREC again for the re-sent PUBLISH')
                # Onward delivery may start at PUBLISH (method B) or at PUBREL (method A): check it after.
                r.send(R.ack(R.PUBREL, 7, version))
                self.assertEqual(r.expect(R.PUBCOMP).pid, 7)
                r.send(R.ack(R.PUBREL, 7, version))  # a re-sent PUBREL must be answered too
                self.assertEqual(r.expect(R.PUBCOMP).pid, 7)
                self.assertEqual(sub.get().payload, b'once')
                sub.expect_none(0.3)
                # After PUBCOMP the packet id may be reused for a new message.
                r.send(R.publish(t, b'twice', qos=2, pid=7, version=version))
                r.expect(R.PUBREC)
                r.send(R.ack(R.PUBREL, 7, version))
                r.expect(R.PUBCOMP)
                self.assertEqual(sub.get().payload, b'twice')
                sub.expect_none(0.3)

    def test_MQTT_4_3_3_qos2_exactly_once_outbound(self):
        for version in (4, 5):
            with self.subTest(version=version):
                t = self.topic('v%d' % version)
                r = self.raw_connected(self.cid(1, 's'), version=version)
                self.assertEqual(r.subscribe([(t, 2)]).reasons, [2])
                pub = self.client(self.cid(0, 'p'), version=4)
                pub.publish(t, b'q2', qos=2)
                p = r.expect(R.PUBLISH)
                self.assertEqual((p.qos, p.payload, p.dup), (2, b'q2', False))
                self.assertNotEqual(p.pid, 0)
                r.send(R.ack(R.PUBREC, p.pid, version))
                rel = r.expect(R.PUBREL)
                self.assertEqual(rel.pid, p.pid)
                self.assertEqual(rel.flags, 0x02, '[MQTT-3.6.1-1] PUBREL flags')
                r.send(R.ack(R.PUBCOMP, p.pid, version))
                r.expect_nothing(0.3)

    def test_MQTT_4_3_2_qos1_outbound_flow(self):
        r = self.raw_connected(self.cid(0, 's'), version=4)
        r.subscribe([(self.topic(), 1)])
        pub = self.client(self.cid(1, 'p'))
        for i in range(5):
            pub.publish(self.topic(), b'%d' % i, qos=1)
        pids = []
        for i in range(5):
            p = r.expect(R.PUBLISH)
            self.assertEqual((p.payload, p.qos), (b'%d' % i, 1))
            pids.append(p.pid)
            r.send(R.ack(R.PUBACK, p.pid))
        self.assertEqual(len(set(pids)), 5, 'in-flight packet ids are distinct')

    def test_puback_after_every_session_took_it(self):
        """PUBACK means every matching session has the message: offline persistent sessions on both workers,
        reconnected right after each PUBACK, must find it queued."""
        t = self.topic()
        ids = [self.cid(0, 'a'), self.cid(1, 'b'), self.cid(1, 'c')]
        for cid in ids:
            s = self.raw_connected(cid, version=4, clean=False)
            s.subscribe([(t, 1)])
            s.disconnect()
        for version in (4, 5):
            for pw in (0, 1):
                pub = self.raw_connected(self.cid(pw, 'p'), version=version)
                for i in range(5):
                    payload = b'v%d-w%d-%d' % (version, pw, i)
                    ack = pub.publish(t, payload, qos=1)
                    self.assertIn(ack.reason, (0, R.RC_NO_MATCHING_SUBSCRIBERS) if version == 5 else (0,))
                    for cid in ids:
                        s = self.raw(4)
                        self.assertTrue(s.connect(cid, clean=False).session_present)
                        m = s.receive()
                        self.assertEqual(m.payload, payload, cid)
                        s.disconnect()
                pub.disconnect()

    def test_puback_reason_v5(self):
        r = self.raw_connected(self.cid(), version=5)
        ack = r.publish(self.topic('nobody'), b'x', qos=1)
        self.assertIn(ack.reason, (0, R.RC_NO_MATCHING_SUBSCRIBERS))
        sub = self.client(self.cid(), version=5)
        sub.subscribe(self.topic('somebody'), 1)
        ack = r.publish(self.topic('somebody'), b'x', qos=1)
        self.assertEqual(ack.reason, 0)

    def test_MQTT_4_6_order_per_publisher(self):
        """Two publishers (one per worker) each stream QoS 0 and QoS 1 messages; subscribers on both workers
        see every publisher's messages in the order they were sent."""
        n = 300
        t = self.topic()
        subs = [self.client(self.cid(k, 's'), version=5) for k in (0, 1)]
        for s in subs:
            s.subscribe(t + '/#', 1)
        # Raw publishers pipeline every PUBLISH at once: no client-side queue can reorder them.
        pubs = [self.raw_connected(self.cid(k, 'p'), version=4) for k in (0, 1)]
        for i in range(n):
            for k, p in enumerate(pubs):
                qos = 1 if i % 3 else 0
                p.send(R.publish('%s/%d' % (t, k), b'%d' % i, qos=qos, pid=i + 1 if qos else None))
        for k, p in enumerate(pubs):
            acked = [p.expect(R.PUBACK, timeout=30).pid for i in range(n) if i % 3]
            self.assertEqual(acked, [i + 1 for i in range(n) if i % 3], 'PUBACKs in order [MQTT-4.6.0-2]')
        for s in subs:
            got = s.get_n(2 * n, timeout=60)
            for k in (0, 1):
                for qos in (0, 1):
                    # [MQTT-4.6.0-6] holds per QoS: a QoS 0 message may overtake QoS 1 messages waiting for
                    # the subscriber's in-flight window.
                    seq = [int(m.payload) for m in got if m.topic == '%s/%d' % (t, k) and m.qos == qos]
                    self.assertEqual(seq, [i for i in range(n) if (1 if i % 3 else 0) == qos],
                                     'publisher %d QoS %d order seen by %s' % (k, qos, s.client_id))

    def test_MQTT_4_7_wildcards_cross_worker(self):
        base = self.topic()
        cases = [('%s/+/x' % base, ['a/x', 'b/x'], ['a/y', 'a/b/x']),
                 ('%s/#' % base, ['a', 'a/b/c'], []),
                 ('%s/a/#' % base, ['a', 'a/b'], ['b']),
                 ('%s/+' % base, ['q'], ['q/r'])]
        pub = self.client(self.cid(0, 'p'))
        for i, (flt, yes, no) in enumerate(cases):
            with self.subTest(filter=flt):
                s = self.client(self.cid(1, 's%d' % i))
                s.subscribe(flt, 1)
                for tail in no + yes:
                    pub.publish('%s/%s' % (base, tail), tail.encode(), qos=1)
                got = [m.payload.decode() for m in s.get_n(len(yes))]
                self.assertEqual(got, yes)
                s.expect_none(0.2)
                s.disconnect()

    def test_MQTT_4_7_2_1_dollar_topics_not_matched(self):
        s = self.client(self.cid(1))
        s.subscribe('#', 0)
        s.subscribe('+/' + self.topic(), 0)
        pub = self.client(self.cid(0))
        pub.publish('$it/' + self.topic(), b'hidden', qos=1)
        s.expect_none(0.3)
        s.unsubscribe('#')

    def test_unsubscribe_stops_delivery(self):
        for version in (4, 5):
            with self.subTest(version=version):
                s = self.client(self.cid(1), version=version)
                s.subscribe(self.topic(), 1)
                pub = self.client(self.cid(0))
                pub.publish(self.topic(), b'one', qos=1)
                self.assertEqual(s.get().payload, b'one')
                s.unsubscribe(self.topic())
                pub.publish(self.topic(), b'two', qos=1)
                s.expect_none(0.3)

    def test_large_payload_cross_worker(self):
        payload = bytes(range(256)) * 1024  # 256 KiB
        s = self.client(self.cid(1), version=5)
        s.subscribe(self.topic(), 1)
        pub = self.client(self.cid(0), version=5)
        pub.publish(self.topic(), payload, qos=1)
        self.assertEqual(s.get(10).payload, payload)

    def test_output_released_and_regrown_delivers_intact(self):
        """A client's output buffer is given back once written; the next message grows a new one. Small and large
        (up to ~900 KiB, under max_packet_size) messages alternate, on the same worker and across: one at a time
        (each written, its buffer freed, before the next, QoS 0 and 1), then as a burst that queues behind a send
        in flight. Every payload arrives whole and in order."""
        def payload(i, n):
            return (b'%06d' % i) + bytes((i * 31 + k) & 0xff for k in range(256)) * (n // 256)
        sizes = [10, 300 * 1024, 20, 900 * 1024, 1, 64 * 1024 + 3, 5]
        for pub_worker, sub_worker in ((0, 1), (1, 1)):
            with self.subTest(pub=pub_worker, sub=sub_worker):
                t = self.topic('regrow%d%d' % (pub_worker, sub_worker))
                s = self.client(self.cid(sub_worker, 's'), version=5)
                s.subscribe(t, 1)
                pub = self.client(self.cid(pub_worker, 'p'), version=5)
                for i, n in enumerate(sizes):
                    p = payload(i, n)
                    pub.publish(t, p, qos=i % 2)
                    self.assertTrue(s.get(10).payload == p, 'message %d (%d bytes) intact' % (i, len(p)))
                want = [payload(100 + i, n) for i, n in enumerate(sizes)]
                for p in want:
                    pub.publish(t, p, qos=1)
                got = [m.payload for m in s.get_n(len(want), 20)]
                self.assertEqual([len(g) for g in got], [len(w) for w in want])
                self.assertTrue(got == want, 'burst intact and in order')

    def test_many_subscribers_both_workers(self):
        subs = [self.client(self.cid(k % 2, 's%d' % k)) for k in range(10)]
        for s in subs:
            s.subscribe(self.topic(), 1)
        pub = self.client(self.cid(0))
        for i in range(20):
            pub.publish(self.topic(), b'%d' % i, qos=1)
        for s in subs:
            self.assertEqual([int(m.payload) for m in s.get_n(20)], list(range(20)))


if __name__ == '__main__':
    harness.main()

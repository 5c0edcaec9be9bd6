"""Retained messages: set, replace, clear, retain handling 0/1/2, retain-as-published, delivery to subscribers
on both workers, QoS of retained delivery."""
import harness
from harness import BrokerTest


class RetainedTest(BrokerTest):

    def test_MQTT_3_3_1_5_retained_to_new_subscribers_on_both_workers(self):
        t = self.topic()
        pub = self.client(self.cid(0, 'p'))
        pub.publish(t, b'kept', qos=1, retain=True)
        for k in (0, 1):
            for version in (4, 5):
                with self.subTest(worker=k, version=version):
                    s = self.client(self.cid(k, 's'), version=version)
                    s.subscribe(t, 1)
                    m = s.get()
                    self.assertEqual((m.payload, m.retain, m.qos), (b'kept', True, 1),
                                     '[MQTT-3.3.1-8] retained message sent with RETAIN=1')
                    s.expect_none(0.2)
        pub.publish(t, b'', qos=1, retain=True)

    def test_MQTT_3_3_1_7_replace(self):
        t = self.topic()
        pub = self.client(self.cid(1))
        pub.publish(t, b'v1', qos=1, retain=True)
        pub.publish(t, b'v2', qos=1, retain=True)
        s = self.client(self.cid(0))
        s.subscribe(t, 1)
        self.assertEqual(s.get().payload, b'v2')
        s.expect_none(0.3)
        pub.publish(t, b'', qos=1, retain=True)

    def test_MQTT_3_3_1_10_clear_with_empty_payload(self):
        t = self.topic()
        pub = self.client(self.cid(0))
        pub.publish(t, b'v1', qos=1, retain=True)
        pub.publish(t, b'', qos=1, retain=True)
        for k in (0, 1):
            s = self.client(self.cid(k))
            s.subscribe(t, 1)
            s.expect_none(0.3)

    def test_MQTT_3_3_1_9_live_delivery_clears_retain_flag(self):
        t = self.topic()
        s4 = self.client(self.cid(1, 's4'), version=4)
        s4.subscribe(t, 1)
        s5 = self.client(self.cid(0, 's5'), version=5)
        s5.subscribe(t, 1)
        pub = self.client(self.cid(0))
        pub.publish(t, b'live', qos=1, retain=True)
        for s in (s4, s5):
            m = s.get()
            self.assertEqual(m.payload, b'live')
            self.assertFalse(m.retain, 'RETAIN=0 to an established subscription (retain as published off)')
        pub.publish(t, b'', qos=1, retain=True)

    def test_MQTT_3_3_1_12_retain_as_published(self):
        t = self.topic()
        s = self.client(self.cid(1), version=5)
        s.subscribe(t, 1, rap=True)
        pub = self.client(self.cid(0), version=5)
        pub.publish(t, b'r', qos=1, retain=True)
        pub.publish(t, b'n', qos=1, retain=False)
        a, b = s.get_n(2)
        self.assertEqual((a.payload, a.retain), (b'r', True), '[MQTT-3.3.1-13] RAP=1 keeps RETAIN')
        self.assertEqual((b.payload, b.retain), (b'n', False))
        pub.publish(t, b'', qos=1, retain=True)

    def test_MQTT_3_3_1_9_retain_handling(self):
        t = self.topic()
        pub = self.client(self.cid(0), version=5)
        pub.publish(t, b'kept', qos=1, retain=True)
        # 0: sent at every subscribe, also when the subscription already exists.
        s = self.client(self.cid(1, 'rh0'), version=5)
        s.subscribe(t, 1, rh=0)
        self.assertEqual(s.get().payload, b'kept')
        s.subscribe(t, 1, rh=0)
        self.assertEqual(s.get().payload, b'kept', '[MQTT-3.3.1-9] rh=0: re-subscribe resends')
        # 1: only if the subscription did not exist.
        s = self.client(self.cid(0, 'rh1'), version=5)
        s.subscribe(t, 1, rh=1)
        self.assertEqual(s.get().payload, b'kept')
        s.subscribe(t, 1, rh=1)
        s.expect_none(0.3)
        # 2: never.
        s = self.client(self.cid(1, 'rh2'), version=5)
        s.subscribe(t, 1, rh=2)
        s.expect_none(0.3)
        pub.publish(t, b'', qos=1, retain=True)

    def test_retain_handling_1_after_reconnect(self):
        """rh=1 on a persistent session that already has the subscription: nothing sent."""
        t = self.topic()
        pub = self.client(self.cid(0), version=5)
        pub.publish(t, b'kept', qos=1, retain=True)
        cid = self.cid(1)
        s = self.client(cid, version=5, clean=False, session_expiry=60)
        s.subscribe(t, 1, rh=1)
        self.assertEqual(s.get().payload, b'kept')
        s.disconnect()
        s = self.client(cid, version=5, clean=False, session_expiry=60)
        self.assertTrue(s.session_present)
        s.subscribe(t, 1, rh=1)
        s.expect_none(0.3)
        s.disconnect(props={'SessionExpiryInterval': 0})
        pub.publish(t, b'', qos=1, retain=True)

    def test_MQTT_3_8_4_retained_wildcards_and_qos(self):
        base = self.topic()
        pub = self.client(self.cid(0))
        for i in range(3):
            pub.publish('%s/%d' % (base, i), b'%d' % i, qos=i, retain=True)
        for k in (0, 1):
            s = self.client(self.cid(k))
            s.subscribe(base + '/+', 1)
            got = sorted((m.topic, m.payload, m.qos) for m in s.get_n(3))
            self.assertEqual(got, [('%s/%d' % (base, i), b'%d' % i, min(i, 1)) for i in range(3)])
            self.assertTrue(True)
        for i in range(3):
            pub.publish('%s/%d' % (base, i), b'', qos=1, retain=True)

    def test_retained_set_from_other_worker_visible_everywhere(self):
        """Retained messages set by publishers on either worker reach subscribers on either worker."""
        base = self.topic()
        for pw in (0, 1):
            pub = self.client(self.cid(pw))
            pub.publish('%s/from%d' % (base, pw), b'w%d' % pw, qos=1, retain=True)
        for k in (0, 1):
            s = self.client(self.cid(k), version=5)
            s.subscribe(base + '/#', 1)
            self.assertEqual(sorted(m.payload for m in s.get_n(2)), [b'w0', b'w1'])
        for pw in (0, 1):
            self.client(self.cid(pw)).publish('%s/from%d' % (base, pw), b'', qos=1, retain=True)

    def test_retained_raw_v311(self):
        t = self.topic()
        r = self.raw_connected(self.cid(0), version=4)
        r.publish(t, b'raw', qos=1, retain=True)
        s = self.raw_connected(self.cid(1), version=4)
        s.subscribe([(t, 1)])
        m = s.receive()
        self.assertTrue(m.retain)
        self.assertEqual(m.payload, b'raw')
        r.publish(t, b'', qos=1, retain=True)


if __name__ == '__main__':
    harness.main()

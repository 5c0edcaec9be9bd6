"""Shared subscriptions ($share/group/filter): spread over the online members across workers, each message
to one member per group, queued for a persistent group when no member is online."""
import harness
from harness import BrokerTest, mosquitto_lacks
import rawmqtt as R


class SharedTest(BrokerTest):

    def test_MQTT_4_8_2_spread_over_members_on_both_workers(self):
        t = self.topic()
        members = [self.client(self.cid(k % 2, 'm%d' % k), version=5) for k in range(4)]
        for m in members:
            m.subscribe('$share/g/' + t, 1)
        plain = self.client(self.cid(1, 'plain'), version=5)
        plain.subscribe(t, 1)
        pub = self.client(self.cid(0, 'p'))
        n = 40
        mids = [pub.publish(t, b'%d' % i, qos=1, wait=False) for i in range(n)]
        pub.wait_published(mids)
        self.assertEqual(sorted(int(m.payload) for m in plain.get_n(n)), list(range(n)),
                         'a non-shared subscriber still gets every message')
        per = harness.gather(members, n)
        total = [int(m.payload) for msgs in per for m in msgs]
        got = {i: msgs for i, msgs in enumerate(per) if msgs}
        self.assertEqual(sorted(total), list(range(n)), 'each message to exactly one member of the group')
        self.assertGreaterEqual(len(got), 2, 'spread over more than one member: %r' % {k: len(v) for k, v in
                                                                                    got.items()})
        self.assertEqual({i % 2 for i in got}, {0, 1}, 'members on both workers get messages')
        for m in members:
            m.expect_none(0.1)

    def test_two_groups_each_get_every_message(self):
        t = self.topic()
        groups = {}
        for g in ('a', 'b'):
            groups[g] = [self.client(self.cid(k, g), version=5) for k in (0, 1)]
            for m in groups[g]:
                m.subscribe('$share/%s/%s' % (g, t), 1)
        pub = self.client(self.cid(1, 'p'))
        for i in range(10):
            pub.publish(t, b'%d' % i, qos=1)
        for g, ms in groups.items():
            seen = [int(m.payload) for msgs in harness.gather(ms, 10) for m in msgs]
            self.assertEqual(sorted(seen), list(range(10)), 'group %s' % g)

    def test_shared_with_wildcard_filter_and_v311_member(self):
        t = self.topic()
        a = self.client(self.cid(0, 'a'), version=4)
        a.subscribe('$share/w/%s/+' % t, 1)
        pub = self.client(self.cid(1, 'p'))
        pub.publish(t + '/x', b'1', qos=1)
        self.assertEqual(a.get().payload, b'1')

    def test_member_leaving_gets_no_more(self):
        t = self.topic()
        a = self.client(self.cid(0, 'a'), version=5)
        b = self.client(self.cid(1, 'b'), version=5)
        for m in (a, b):
            m.subscribe('$share/g/' + t, 1)
        a.unsubscribe('$share/g/' + t)
        pub = self.client(self.cid(0, 'p'))
        for i in range(6):
            pub.publish(t, b'%d' % i, qos=1)
        self.assertEqual([int(m.payload) for m in b.get_n(6)], list(range(6)))
        a.expect_none(0.2)
        b.disconnect()
        for i in range(3):
            pub.publish(t, b'%d' % i, qos=1)
        a.expect_none(0.3)

    def test_queued_for_persistent_group_when_none_online(self):
        t = self.topic()
        ids = [self.cid(0, 'pa'), self.cid(1, 'pb')]
        for cid in ids:
            m = self.client(cid, version=5, clean=False, session_expiry=120)
            m.subscribe('$share/pg/' + t, 1)
            m.disconnect()
        pub = self.client(self.cid(0, 'p'))
        n = 10
        for i in range(n):
            pub.publish(t, b'%d' % i, qos=1)
        members = [self.client(cid, version=5, clean=False, session_expiry=120) for cid in ids]
        seen = [int(m.payload) for msgs in harness.gather(members, n) for m in msgs]
        self.assertEqual(sorted(seen), list(range(n)), 'queued messages delivered once across the group')
        for m in members:
            m.expect_none(0.1)
            m.disconnect(props={'SessionExpiryInterval': 0})

    @mosquitto_lacks('round-robins over offline members too')
    def test_online_member_preferred_over_offline(self):
        """With one member online and one persistent member offline, messages go to the online one (spread
        over online members)."""
        t = self.topic()
        off_id = self.cid(1, 'off')
        off = self.client(off_id, version=5, clean=False, session_expiry=120)
        off.subscribe('$share/og/' + t, 1)
        off.disconnect()
        on = self.client(self.cid(0, 'on'), version=5)
        on.subscribe('$share/og/' + t, 1)
        pub = self.client(self.cid(1, 'p'))
        for i in range(8):
            pub.publish(t, b'%d' % i, qos=1)
        got = on.get_n(8, timeout=5)
        self.assertEqual(sorted(int(m.payload) for m in got), list(range(8)))
        off = self.client(off_id, version=5, clean=False, session_expiry=120)
        off.expect_none(0.3)
        off.disconnect(props={'SessionExpiryInterval': 0})

    @mosquitto_lacks('does not reject No Local on a shared subscription')
    def test_MQTT_3_8_3_4_no_local_on_shared_is_protocol_error(self):
        r = self.raw_connected(self.cid(), version=5)
        r.send(R.subscribe(1, [('$share/g/' + self.topic(), R.subopts(1, no_local=True))], 5))
        got = r.wait_closed()
        self.assertEqual([(p.type, p.reason) for p in got], [(R.DISCONNECT, R.RC_PROTOCOL_ERROR)])

    def test_invalid_share_filters(self):
        for flt in ('$share/g', '$share//t', '$share/g+/t'):
            with self.subTest(filter=flt):
                r = self.raw_connected(self.cid(), version=5)
                r.send(R.subscribe(1, [(flt, 1)], 5))
                try:
                    p = r.read_packet()
                except R.Closed:
                    continue  # closing is an acceptable answer to a malformed filter
                if p.type == R.SUBACK and harness.IS_MOSQUITTO and flt != '$share/g+/t':
                    continue  # mosquitto 2.0.11 takes these as ordinary filters
                if p.type == R.SUBACK:
                    self.assertEqual(p.reasons, [R.RC_TOPIC_FILTER_INVALID], flt)
                else:
                    self.assertEqual(p.type, R.DISCONNECT)
                    self.assertIn(p.reason, (R.RC_TOPIC_FILTER_INVALID, R.RC_MALFORMED, R.RC_PROTOCOL_ERROR))


if __name__ == '__main__':
    harness.main()

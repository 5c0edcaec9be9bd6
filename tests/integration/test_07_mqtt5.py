"""The rest of MQTT 5: topic aliases both ways, receive maximum both ways, maximum packet size both ways,
message expiry, subscription identifiers, no local, property passthrough, request problem information, will
messages and will delay, QoS 2 reason codes."""
import time

import harness
from harness import BrokerTest, IS_MOSQUITTO, mosquitto_lacks, ringmq_only
import rawmqtt as R

ALIAS_MAX = 10
RECEIVE_MAX = 5


class Mqtt5Test(BrokerTest):
    broker_config = {'topic_alias_maximum': ALIAS_MAX, 'receive_maximum': RECEIVE_MAX}

    # --- topic aliases -------------------------------------------------------------------------------------

    def test_MQTT_3_2_2_topic_alias_maximum_advertised(self):
        r = self.raw_connected(self.cid(), version=5)
        self.assertEqual(r.connack.props.get(R.P_TOPIC_ALIAS_MAXIMUM), ALIAS_MAX)

    def test_MQTT_3_3_2_topic_alias_client_to_server(self):
        t = self.topic()
        s = self.client(self.cid(1), version=5)
        s.subscribe(t + '/#', 1)
        r = self.raw_connected(self.cid(0), version=5)
        r.publish(t + '/a', b'1', qos=1, plist=[(R.P_TOPIC_ALIAS, 1)])
        r.publish('', b'2', qos=1, plist=[(R.P_TOPIC_ALIAS, 1)])
        r.publish(t + '/b', b'3', qos=1, plist=[(R.P_TOPIC_ALIAS, 1)])  # re-map alias 1
        r.publish('', b'4', qos=1, plist=[(R.P_TOPIC_ALIAS, 1)])
        r.publish('', b'5', qos=0, plist=[(R.P_TOPIC_ALIAS, 1)])
        got = [(m.topic, m.payload) for m in s.get_n(5)]
        self.assertEqual(got, [(t + '/a', b'1'), (t + '/a', b'2'), (t + '/b', b'3'), (t + '/b', b'4'),
                               (t + '/b', b'5')])

    def test_MQTT_3_3_2_topic_alias_invalid(self):
        self.witness()
        for alias in (0, ALIAS_MAX + 1):
            with self.subTest(alias=alias):
                r = self.raw_connected(self.cid(), version=5)
                r.send(R.publish(self.topic(), b'x', qos=0, version=5, plist=[(R.P_TOPIC_ALIAS, alias)]))
                got = r.wait_closed()
                self.assertTrue(all(p.type == R.DISCONNECT for p in got), got)
                if not IS_MOSQUITTO:
                    self.assertEqual([p.reason for p in got], [R.RC_TOPIC_ALIAS_INVALID])
                self.check_served('alias %d' % alias)

    def test_MQTT_3_3_4_unknown_alias_with_empty_topic(self):
        self.witness()
        r = self.raw_connected(self.cid(), version=5)
        r.send(R.publish('', b'x', qos=0, version=5, plist=[(R.P_TOPIC_ALIAS, 3)]))
        got = r.wait_closed()
        self.assertTrue(all(p.type == R.DISCONNECT for p in got), got)
        if not IS_MOSQUITTO:
            self.assertEqual([p.reason for p in got], [R.RC_PROTOCOL_ERROR])
        self.check_served('unknown alias')

    def test_MQTT_3_3_2_topic_alias_server_to_client(self):
        t = self.topic('a-long-topic-name-worth-an-alias')
        r = self.raw_connected(self.cid(1), version=5, plist=[(R.P_TOPIC_ALIAS_MAXIMUM, 3)])
        r.subscribe([(t, 1)])
        pub = self.client(self.cid(0), version=5)
        for i in range(4):
            pub.publish(t, b'%d' % i, qos=1)
        used_alias = 0
        for i in range(4):
            m = r.receive()
            self.assertEqual((m.topic, m.payload), (t, b'%d' % i))
            alias = m.props.get(R.P_TOPIC_ALIAS)
            if alias is not None:
                self.assertTrue(1 <= alias <= 3, '[MQTT-3.3.2-9] alias within the client maximum')
                used_alias += 1
        if not IS_MOSQUITTO:
            self.assertGreater(used_alias, 0, 'ringmq uses topic aliases toward clients that allow them')

    def test_MQTT_3_3_2_no_alias_when_client_allows_none(self):
        t = self.topic()
        r = self.raw_connected(self.cid(1), version=5)
        r.subscribe([(t, 1)])
        pub = self.client(self.cid(0), version=5)
        for i in range(3):
            pub.publish(t, b'%d' % i, qos=1)
        for i in range(3):
            m = r.receive()
            self.assertNotIn(R.P_TOPIC_ALIAS, m.props, '[MQTT-3.3.2-8]')
            self.assertEqual(m.topic, t)

    # --- receive maximum -----------------------------------------------------------------------------------

    @mosquitto_lacks('frees a receive-maximum slot at PUBREC instead of PUBCOMP')
    def test_MQTT_3_3_4_9_receive_maximum_server_to_client(self):
        t = self.topic()
        r = self.raw_connected(self.cid(1), version=5, plist=[(R.P_RECEIVE_MAXIMUM, 2)])
        r.subscribe([(t, 2)])
        pub = self.client(self.cid(0))
        for i in range(6):
            pub.publish(t, b'%d' % i, qos=1 if i % 2 else 2)
        got = [r.receive(auto_ack=False) for _ in range(2)]
        r.expect_nothing(0.5)
        for i in range(4):
            p = got[i]
            if p.qos == 1:
                r.send(R.ack(R.PUBACK, p.pid, 5))
            else:  # QoS 2 stays in flight until PUBCOMP
                r.send(R.ack(R.PUBREC, p.pid, 5))
                self.assertEqual(r.expect(R.PUBREL).pid, p.pid)
                r.expect_nothing(0.2)
                r.send(R.ack(R.PUBCOMP, p.pid, 5))
            got.append(r.receive(auto_ack=False))
        self.assertEqual([p.payload for p in got], [b'%d' % i for i in range(6)])
        for p in got[4:]:
            r.ack_publish(p)

    @mosquitto_lacks('does not disconnect a client exceeding its receive maximum')
    def test_MQTT_3_2_2_receive_maximum_client_to_server(self):
        r = self.raw_connected(self.cid(), version=5)
        self.assertEqual(r.connack.props.get(R.P_RECEIVE_MAXIMUM), RECEIVE_MAX)
        self.witness()
        for i in range(RECEIVE_MAX):
            r.send(R.publish(self.topic(), b'x', qos=2, pid=i + 1, version=5))
            self.assertEqual(r.expect(R.PUBREC).pid, i + 1)
        r.send(R.publish(self.topic(), b'x', qos=2, pid=RECEIVE_MAX + 1, version=5))
        got = r.wait_closed()
        self.assertTrue(all(p.type == R.DISCONNECT for p in got), got)
        if not IS_MOSQUITTO:
            self.assertEqual([p.reason for p in got], [R.RC_RECEIVE_MAX_EXCEEDED], '[MQTT-3.3.4-9]')
        self.check_served('receive maximum exceeded')

    def test_receive_maximum_respected_is_fine(self):
        r = self.raw_connected(self.cid(), version=5)
        for rounds in range(3):
            for i in range(RECEIVE_MAX):
                r.send(R.publish(self.topic(), b'x', qos=2, pid=i + 1, version=5))
                r.expect(R.PUBREC)
            for i in range(RECEIVE_MAX):
                r.send(R.ack(R.PUBREL, i + 1, 5))
                r.expect(R.PUBCOMP)

    # --- maximum packet size -------------------------------------------------------------------------------

    def test_MQTT_3_1_2_25_server_drops_too_large_for_client(self):
        t = self.topic()
        for qos in (0, 1):
            with self.subTest(qos=qos):
                r = self.raw_connected(self.cid(1), version=5, plist=[(R.P_MAXIMUM_PACKET_SIZE, 200)])
                r.subscribe([(t, 1)])
                pub = self.client(self.cid(0), version=5)
                pub.publish(t, b'L' * 400, qos=qos)
                pub.publish(t, b'small', qos=qos)
                m = r.receive()
                self.assertEqual(m.payload, b'small', 'the too-large message is discarded, the next arrives')
                r.expect_nothing(0.3)
                r.disconnect()

    # --- message expiry ------------------------------------------------------------------------------------

    def test_MQTT_3_3_2_6_message_expiry_live_forwarded(self):
        t = self.topic()
        s = self.client(self.cid(1), version=5)
        s.subscribe(t, 1)
        pub = self.client(self.cid(0), version=5)
        pub.publish(t, b'exp', qos=1, props={'MessageExpiryInterval': 30})
        pub.publish(t, b'noexp', qos=1)
        a, b = s.get_n(2)
        self.assertTrue(0 < a.props.MessageExpiryInterval <= 30)
        self.assertFalse(hasattr(b.props, 'MessageExpiryInterval'), 'no expiry when none was set')

    def test_MQTT_3_3_2_5_message_expiry_offline_and_retained(self):
        """While the subscriber is offline: the 1 s message expires, the 60 s one is delivered with the
        remaining interval; a retained message with expiry 1 s is gone for new subscribers."""
        t = self.topic()
        cid = self.cid(1)
        s = self.client(cid, version=5, clean=False, session_expiry=60)
        s.subscribe(t + '/q', 1)
        s.disconnect()
        pub = self.client(self.cid(0), version=5)
        pub.publish(t + '/q', b'short', qos=1, props={'MessageExpiryInterval': 1})
        pub.publish(t + '/q', b'long', qos=1, props={'MessageExpiryInterval': 60})
        pub.publish(t + '/r', b'retained-short', qos=1, retain=True, props={'MessageExpiryInterval': 1})
        pub.publish(t + '/r2', b'retained-long', qos=1, retain=True, props={'MessageExpiryInterval': 60})
        time.sleep(2.2)  # bounded wait past the 1 s expiry: proves the short ones are gone
        s = self.client(cid, version=5, clean=False, session_expiry=60)
        self.assertTrue(s.session_present)
        m = s.get()
        self.assertEqual(m.payload, b'long', '[MQTT-3.3.2-5] expired message not delivered')
        self.assertLessEqual(m.props.MessageExpiryInterval, 59, '[MQTT-3.3.2-6] remaining interval forwarded')
        self.assertGreater(m.props.MessageExpiryInterval, 50)
        s.expect_none(0.2)
        n = self.client(self.cid(0), version=5)
        n.subscribe(t + '/#', 1)
        m = n.get()
        self.assertEqual(m.payload, b'retained-long')
        self.assertLessEqual(m.props.MessageExpiryInterval, 59)
        n.expect_none(0.2)
        s.disconnect(props={'SessionExpiryInterval': 0})
        pub.publish(t + '/r2', b'', qos=1, retain=True)

    # --- subscription identifiers --------------------------------------------------------------------------

    def test_MQTT_3_8_2_subscription_identifiers(self):
        t = self.topic()
        s = self.client(self.cid(1), version=5)
        s.subscribe(t + '/#', 1, props={'SubscriptionIdentifier': 7})
        s.subscribe(t + '/+', 1, props={'SubscriptionIdentifier': 9})
        s.subscribe(t + '/x/none', 1)
        pub = self.client(self.cid(0), version=5)
        pub.publish(t + '/a', b'both', qos=1)
        # Overlapping subscriptions: one copy carrying every id, or one copy per subscription.
        got = s.get_all()
        self.assertEqual(set(i for m in got for i in getattr(m.props, 'SubscriptionIdentifier', [])), {7, 9},
                         '[MQTT-3.3.4-3] every matching subscription identifier')
        pub.publish(t + '/x/none', b'none', qos=1)
        got = s.get_all()
        self.assertEqual(set(i for m in got for i in getattr(m.props, 'SubscriptionIdentifier', [])), {7},
                         'only the matching identifiers; none for the id-less subscription')
        if len(got) == 2:
            self.assertEqual(sorted(len(getattr(m.props, 'SubscriptionIdentifier', [])) for m in got), [0, 1])

    def test_subscription_identifier_replaced_on_resubscribe(self):
        t = self.topic()
        s = self.client(self.cid(0), version=5)
        s.subscribe(t, 1, props={'SubscriptionIdentifier': 3})
        s.subscribe(t, 1, props={'SubscriptionIdentifier': 4})
        pub = self.client(self.cid(1), version=5)
        pub.publish(t, b'x', qos=1)
        self.assertEqual(s.get().props.SubscriptionIdentifier, [4])

    # --- no local ------------------------------------------------------------------------------------------

    def test_MQTT_3_8_3_3_no_local(self):
        for k in (0, 1):
            with self.subTest(worker=k):
                t = self.topic('w%d' % k)
                c = self.client(self.cid(k), version=5)
                c.subscribe(t, 1, no_local=True)
                other = self.client(self.cid(1 - k), version=5)
                c.publish(t, b'own', qos=1)
                other.publish(t, b'other', qos=1)
                self.assertEqual(c.get().payload, b'other')
                c.expect_none(0.3)
                c2 = self.client(self.cid(k), version=5)
                c2.subscribe(t, 1)  # no_local off: own messages come back
                c2.publish(t, b'mine', qos=1)
                self.assertEqual(c2.get().payload, b'mine')

    # --- property passthrough ------------------------------------------------------------------------------

    def test_MQTT_3_3_2_properties_passthrough(self):
        t = self.topic()
        r = self.raw_connected(self.cid(1), version=5)
        r.subscribe([(t, 1)])
        user = [('k1', 'v1'), ('k2', 'v2'), ('k1', 'v3')]
        plist = [(R.P_PAYLOAD_FORMAT, 1), (R.P_CONTENT_TYPE, 'text/plain; charset=utf-8'),
                 (R.P_RESPONSE_TOPIC, t + '/reply'), (R.P_CORRELATION_DATA, b'\x00\x01corr\xff')]
        plist += [(R.P_USER_PROPERTY, kv) for kv in user]
        pub = self.raw_connected(self.cid(0), version=5)
        pub.publish(t, 'héllo'.encode(), qos=1, plist=plist)
        m = r.receive()
        self.assertEqual(m.payload, 'héllo'.encode())
        self.assertEqual(m.props.get(R.P_PAYLOAD_FORMAT), 1)
        self.assertEqual(m.props.get(R.P_CONTENT_TYPE), 'text/plain; charset=utf-8')
        self.assertEqual(m.props.get(R.P_RESPONSE_TOPIC), t + '/reply')
        self.assertEqual(m.props.get(R.P_CORRELATION_DATA), b'\x00\x01corr\xff')
        self.assertEqual(m.props.get(R.P_USER_PROPERTY), user, '[MQTT-3.3.2-17/18] user properties in order')

    def test_properties_through_offline_queue(self):
        t = self.topic()
        cid = self.cid(0)
        s = self.client(cid, version=5, clean=False, session_expiry=60)
        s.subscribe(t, 1)
        s.disconnect()
        pub = self.client(self.cid(1), version=5)
        pub.publish(t, b'q', qos=1, props={'UserProperty': [('a', 'b')], 'ResponseTopic': 'rt',
                                           'CorrelationData': b'cd'})
        s = self.client(cid, version=5, clean=False, session_expiry=60)
        m = s.get()
        self.assertEqual((m.props.UserProperty, m.props.ResponseTopic, m.props.CorrelationData),
                         ([('a', 'b')], 'rt', b'cd'))
        s.disconnect(props={'SessionExpiryInterval': 0})

    def test_request_response_roundtrip(self):
        t = self.topic()
        responder = self.client(self.cid(0, 'resp'), version=5)
        responder.subscribe(t + '/req', 1)
        requester = self.client(self.cid(1, 'req'), version=5)
        requester.subscribe(t + '/reply', 1)
        requester.publish(t + '/req', b'ping', qos=1, props={'ResponseTopic': t + '/reply',
                                                             'CorrelationData': b'42'})
        req = responder.get()
        responder.publish(req.props.ResponseTopic, b'pong', qos=1,
                          props={'CorrelationData': req.props.CorrelationData})
        rep = requester.get()
        self.assertEqual((rep.payload, rep.props.CorrelationData), (b'pong', b'42'))

    # --- request problem information / reason strings ------------------------------------------------------

    def test_MQTT_3_1_2_29_request_problem_information_0(self):
        """RPI=0: no Reason String or User Property outside PUBLISH, CONNACK and DISCONNECT, also with the
        non-error reason codes a server might explain (PUBACK / PUBREC 0x10, UNSUBACK 0x11)."""
        r = self.raw_connected(self.cid(), version=5, plist=[(R.P_REQUEST_PROBLEM_INFO, 0)])
        got = [r.publish(self.topic('nobody'), b'x', qos=1)]
        pid = r.alloc_pid()
        r.send(R.publish(self.topic('nobody'), b'x', qos=2, pid=pid, version=5))
        got.append(r.expect(R.PUBREC))
        r.send(R.ack(R.PUBREL, pid, 5))
        got.append(r.expect(R.PUBCOMP))
        r.send(R.unsubscribe(r.alloc_pid(), [self.topic('never')], 5))
        got.append(r.expect(R.UNSUBACK))
        for p in got:
            self.assertNotIn(R.P_REASON_STRING, p.props, '[MQTT-3.1.2-29] no reason string when RPI=0: %r' % p)
            self.assertNotIn(R.P_USER_PROPERTY, p.props, p)

    @ringmq_only
    def test_reason_string_when_problem_information_requested(self):
        """A syntactically invalid filter makes the SUBSCRIBE malformed (test_13): the DISCONNECT 0x81 explains
        itself with a reason string."""
        r = self.raw_connected(self.cid(), version=5)
        r.send(R.subscribe(1, [(self.topic() + '/#/bad', 1), (self.topic(), 1)], 5))
        p = r.read_packet()
        self.assertEqual((p.type, p.reason), (R.DISCONNECT, R.RC_MALFORMED), p)
        self.assertTrue(p.props.get(R.P_REASON_STRING), 'ringmq explains a failure with a reason string')
        self.assertEqual(r.wait_closed(), [])

    @ringmq_only
    def test_reason_string_in_disconnect(self):
        r = self.raw_connected(self.cid(), version=5)
        r.send(R.publish('a/+', b'x', version=5))
        got = r.wait_closed()
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0].props.get(R.P_REASON_STRING), 'DISCONNECT 0x90 carries a reason string')
        r = self.raw_connected(self.cid(), version=5, plist=[(R.P_REQUEST_PROBLEM_INFO, 0)])
        r.send(R.publish('a/+', b'x', version=5))
        got = r.wait_closed()
        self.assertEqual(len(got), 1)  # DISCONNECT may keep its reason string even with RPI=0

    # --- will messages -------------------------------------------------------------------------------------

    def _will_watcher(self, t):
        w = self.client(self.cid(0, 'watch'), version=5)
        w.subscribe(t, 1)
        return w

    def test_MQTT_3_1_2_8_will_on_network_failure(self):
        for version in (4, 5):
            for k in (0, 1):
                with self.subTest(version=version, worker=k):
                    t = self.topic('v%dw%d' % (version, k))
                    w = self._will_watcher(t)
                    r = self.raw_connected(self.cid(k), version=version,
                                           will={'topic': t, 'payload': b'gone', 'qos': 1})
                    r.close()
                    m = w.get()
                    self.assertEqual((m.payload, m.qos), (b'gone', 1))

    def test_MQTT_3_1_2_10_no_will_on_disconnect(self):
        for version in (4, 5):
            with self.subTest(version=version):
                t = self.topic('v%d' % version)
                w = self._will_watcher(t)
                r = self.raw_connected(self.cid(1), version=version, will={'topic': t, 'payload': b'gone'})
                r.disconnect()
                w.expect_none(0.5)

    def test_MQTT_3_14_4_disconnect_with_will(self):
        t = self.topic()
        w = self._will_watcher(t)
        r = self.raw_connected(self.cid(1), version=5, will={'topic': t, 'payload': b'asked'})
        r.disconnect(reason=0x04)
        self.assertEqual(w.get().payload, b'asked')

    def test_will_on_keepalive_timeout_and_protocol_error(self):
        t = self.topic()
        w = self._will_watcher(t)
        r = self.raw_connected(self.cid(1), version=5, will={'topic': t, 'payload': b'proto'})
        r.send(R.publish('a/#', b'x', version=5))
        self.assertEqual(w.get().payload, b'proto', 'will published after a protocol error')
        r2 = self.raw_connected(self.cid(0), version=4, keepalive=1, will={'topic': t, 'payload': b'ka'})
        self.assertEqual(w.get(10).payload, b'ka', 'will published after keep alive expiry')
        r2.close()

    def test_will_retained_and_properties(self):
        t = self.topic()
        w = self._will_watcher(t)
        r = self.raw_connected(self.cid(1), version=5, will={
            'topic': t, 'payload': b'ret', 'qos': 1, 'retain': True,
            'props': [(R.P_CONTENT_TYPE, 'ct'), (R.P_USER_PROPERTY, ('wk', 'wv'))]})
        r.close()
        m = w.get()
        self.assertEqual(m.props.ContentType, 'ct')
        self.assertEqual(m.props.UserProperty, [('wk', 'wv')])
        late = self.client(self.cid(0), version=5)
        late.subscribe(t, 1)
        m = late.get()
        self.assertEqual((m.payload, m.retain), (b'ret', True), 'will with retain is retained')
        late.publish(t, b'', qos=1, retain=True)

    def test_MQTT_3_1_3_9_will_delay(self):
        t = self.topic()
        w = self._will_watcher(t)
        will = {'topic': t, 'payload': b'delayed', 'props': [(R.P_WILL_DELAY, 2)]}
        r = self.raw_connected(self.cid(1), version=5, clean=False, plist=[(R.P_SESSION_EXPIRY, 60)], will=will)
        r.close()
        t0 = time.monotonic()
        w.expect_none(1.0)
        m = w.get(6)
        self.assertEqual(m.payload, b'delayed')
        self.assertGreaterEqual(time.monotonic() - t0, 1.5, 'sent after the will delay')

    def test_MQTT_3_1_3_9_reconnect_within_will_delay_cancels(self):
        t = self.topic()
        w = self._will_watcher(t)
        cid = self.cid(0)
        will = {'topic': t, 'payload': b'cancelled', 'props': [(R.P_WILL_DELAY, 2)]}
        r = self.raw_connected(cid, version=5, clean=False, plist=[(R.P_SESSION_EXPIRY, 60)], will=will)
        r.close()
        r = self.raw_connected(cid, version=5, clean=False, plist=[(R.P_SESSION_EXPIRY, 60)])
        w.expect_none(3.0)
        r.disconnect(plist=[(R.P_SESSION_EXPIRY, 0)])

    def test_will_delay_longer_than_session_expiry(self):
        """The will is sent when the session ends, even if the will delay has not passed [MQTT-3.1.3-9]."""
        t = self.topic()
        w = self._will_watcher(t)
        will = {'topic': t, 'payload': b'at-session-end', 'props': [(R.P_WILL_DELAY, 30)]}
        r = self.raw_connected(self.cid(1), version=5, clean=False, plist=[(R.P_SESSION_EXPIRY, 1)], will=will)
        r.close()
        self.assertEqual(w.get(6).payload, b'at-session-end')

    # --- QoS 2 reason codes --------------------------------------------------------------------------------

    def test_MQTT_4_3_3_pubrel_unknown_packet_id(self):
        r = self.raw_connected(self.cid(), version=5)
        r.send(R.ack(R.PUBREL, 999, 5))
        comp = r.expect(R.PUBCOMP)
        # mosquitto 2.0.11 answers 0x00: tolerated there.
        self.assertEqual((comp.pid, comp.reason), (999, 0 if IS_MOSQUITTO else R.RC_PACKET_ID_NOT_FOUND))

    def test_MQTT_4_3_3_pubrec_error_ends_flow(self):
        """A PUBREC with a reason >= 0x80 ends the QoS 2 flow: no PUBREL, the slot is free again."""
        t = self.topic()
        r = self.raw_connected(self.cid(1), version=5, plist=[(R.P_RECEIVE_MAXIMUM, 1)])
        r.subscribe([(t, 2)])
        pub = self.client(self.cid(0), version=5)
        pub.publish(t, b'refused', qos=2)
        pub.publish(t, b'next', qos=2)
        p = r.receive(auto_ack=False)
        self.assertEqual(p.payload, b'refused')
        r.send(R.ack(R.PUBREC, p.pid, 5, reason=0x80))
        n = r.read_packet()
        self.assertEqual((n.type, n.payload), (R.PUBLISH, b'next'), 'no PUBREL after a failed PUBREC')
        r.ack_publish(n)
        r.expect_nothing(0.3)

    def test_qos2_v5_end_to_end_cross_worker(self):
        t = self.topic()
        s = self.client(self.cid(1), version=5)
        s.subscribe(t, 2)
        pub = self.client(self.cid(0), version=5)
        for i in range(50):
            pub.publish(t, b'%d' % i, qos=2)
        got = s.get_n(50)
        self.assertEqual([int(m.payload) for m in got], list(range(50)))
        self.assertTrue(all(m.qos == 2 for m in got))
        s.expect_none(0.3)


if __name__ == '__main__':
    harness.main()

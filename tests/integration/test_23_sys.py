"""$SYS topics (ringmq only): $SYS/broker/... values published every sys_interval to subscribers of $SYS
filters on either worker, consistent with ringmqctl stats; never matched by '#' or '+/...' [MQTT-4.7.2-1];
retained QoS 0, so a new subscriber gets the last values at once; nothing published (nothing retained) while
nobody subscribes; clients cannot publish to $SYS; sys_interval = 0 turns it off."""
import time
import unittest

from harness import BrokerTest, ringmq_only, wait_until
import rawmqtt as R

TOPICS = ('$SYS/broker/version', '$SYS/broker/uptime', '$SYS/broker/clients/connected',
          '$SYS/broker/clients/total', '$SYS/broker/clients/disconnected', '$SYS/broker/messages/received',
          '$SYS/broker/messages/sent', '$SYS/broker/subscriptions/count', '$SYS/broker/store/messages/count',
          '$SYS/broker/bytes/received', '$SYS/broker/load/messages/received/1min')


class SysWatcher:
    """Collects the latest value of every $SYS topic a client receives."""

    def __init__(self, client):
        self.c = client
        self.values = {}
        self.count = 0

    def pump(self):
        while True:
            try:
                m = self.c.messages.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                return
            assert m.topic.startswith('$SYS/'), m
            assert m.qos == 0, m
            self.values[m.topic] = m.payload.decode()
            self.count += 1

    def value(self, topic):
        self.pump()
        return self.values.get(topic)


@ringmq_only
class SysTest(BrokerTest):
    broker_args = ('--sys-interval', '1')

    def stats_total(self):
        return self.broker.ctl('stats')['total']

    def test_published_to_subscribers_on_both_workers(self):
        for k in (0, 1):
            c = self.client(self.cid(k, 'w'))
            c.subscribe('$SYS/#', qos=1)
            w = SysWatcher(c)
            wait_until(lambda: all(w.value(t) is not None for t in TOPICS), timeout=5,
                       what='every $SYS topic on worker %d' % k)
            self.assertTrue(w.value('$SYS/broker/version').startswith('ringmq '))
            self.assertRegex(w.value('$SYS/broker/uptime'), r'^\d+ seconds$')
            # Periodic: a later publication comes within the interval (1 s) plus a gather.
            n = w.count
            wait_until(lambda: (w.pump(), w.count > n)[1], timeout=4, what='the next $SYS publication')

    def test_values_consistent_with_ringmqctl_stats(self):
        watcher = self.client(self.cid(0, 'watch'))
        watcher.subscribe('$SYS/broker/#', qos=0)
        w = SysWatcher(watcher)
        extra = [self.client(self.cid(i % 2, 'x%d' % i)) for i in range(3)]
        pub = self.client(self.cid(1, 'pub'))
        for i in range(7):
            pub.publish('cons/t', b'v', qos=1)

        def consistent():
            # The values of one publication and the stats a moment later agree while nothing else happens.
            st = self.stats_total()
            return (w.value('$SYS/broker/clients/connected') == str(st['connections']) and
                    w.value('$SYS/broker/clients/total') == str(st['sessions']) and
                    w.value('$SYS/broker/messages/received') == str(st['msgs_in']) and
                    w.value('$SYS/broker/subscriptions/count') == str(st['subscriptions']))
        wait_until(consistent, timeout=8, interval=0.1, what='$SYS values equal to ringmqctl stats totals')
        self.assertGreaterEqual(int(w.value('$SYS/broker/clients/connected')), 5)
        self.assertGreaterEqual(int(w.value('$SYS/broker/messages/received')), 7)
        for c in extra:
            c.disconnect()

    def test_wildcards_first_never_match(self):
        # [MQTT-4.7.2-1]: '#', '+/...' do not match topics beginning with '$'.
        hashes = [self.client(self.cid(k, 'h')) for k in (0, 1)]
        for h in hashes:
            h.subscribe('#', qos=1)
        plus = self.client(self.cid(1, 'p'))
        plus.subscribe('+/broker/#', qos=1)
        plus.subscribe('+/broker/uptime', qos=1)
        sys_sub = self.client(self.cid(0, 's'))
        sys_sub.subscribe('$SYS/#', qos=0)
        w = SysWatcher(sys_sub)
        wait_until(lambda: w.value('$SYS/broker/uptime') is not None, timeout=5, what='$SYS values')
        n = w.count
        wait_until(lambda: (w.pump(), w.count > n)[1], timeout=4, what='a periodic $SYS publication')
        # Control message: the '#' subscribers do receive ordinary topics, and nothing else.
        hashes[0].publish('ordinary/t', b'o', qos=1)
        for h in hashes:
            msgs = h.get_all(timeout=5, window=1.2)
            self.assertEqual([m.topic for m in msgs], ['ordinary/t'], msgs)
        plus.expect_none(timeout=0.5)

    def test_retained_for_a_new_subscriber(self):
        first = self.client(self.cid(1, 'a'))
        first.subscribe('$SYS/broker/version', qos=0)
        self.assertTrue(first.get(timeout=5).payload.startswith(b'ringmq '))
        # The same worker holds the value retained: the next subscriber gets it with its SUBACK (retain set).
        second = self.client(self.cid(1, 'b'))
        second.subscribe('$SYS/broker/version', qos=0)
        m = second.get(timeout=5)
        self.assertEqual(m.topic, '$SYS/broker/version')
        self.assertTrue(m.retain, 'a retained copy, delivered with the SUBACK')
        self.assertEqual(m.qos, 0)

    def test_clients_cannot_publish_to_sys(self):
        r = self.raw(version=5)
        r.connect(self.cid(0, 'r'))
        r.send(R.publish('$SYS/broker/version', b'fake', qos=1, pid=1, version=5))
        self.assertEqual(r.expect(R.PUBACK).reason, 0x87)
        # Nor leave a will there: the CONNECT is refused as not authorized.
        self.client(self.cid(1, 'w'), version=5, connect=False,
                    will={'topic': '$SYS/broker/version', 'payload': b'fake'}).connect(expect_rc=0x87)
        self.client(self.cid(1, 'w4'), version=4, connect=False,
                    will={'topic': '$SYS/broker/version', 'payload': b'fake'}).connect(expect_rc=5)
        watch = self.client(self.cid(0, 'v'))
        watch.subscribe('$SYS/broker/version', qos=0)
        self.assertNotEqual(watch.get(timeout=5).payload, b'fake')


@ringmq_only
class SysQuietTest(BrokerTest):
    """With nobody subscribed nothing is published; after the last subscriber leaves publications stop."""
    broker_args = ('--sys-interval', '1')

    def test_no_work_without_subscribers(self):
        # Two intervals without a $SYS subscriber: no value was made (nothing retained), nothing sent.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            st = self.broker.ctl('stats')['total']
            self.assertEqual(st['retained'], 0)
            self.assertEqual(st['msgs_out'], 0)
            time.sleep(0.25)  # proving a negative over a bounded time
        c = self.client(self.cid(0))
        c.subscribe('$SYS/broker/uptime', qos=0)
        c.get(timeout=5)
        c.unsubscribe('$SYS/broker/uptime')
        c.drain()
        sent = self.broker.ctl('stats')['total']['msgs_out']
        # No subscriber any more: no further publication within three intervals.
        time.sleep(3)  # proving a negative
        self.assertEqual(self.broker.ctl('stats')['total']['msgs_out'], sent)


@ringmq_only
class SysOffTest(BrokerTest):
    broker_args = ('--sys-interval', '0')

    def test_off(self):
        c = self.client(self.cid(0))
        c.subscribe('$SYS/#', qos=0)
        c.expect_none(timeout=2.0)


if __name__ == '__main__':
    unittest.main(verbosity=2)

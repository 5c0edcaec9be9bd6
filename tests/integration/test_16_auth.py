"""Authentication with a password file and authorization with an acl_file (ringmq only): paho, mosquitto
clients and raw packets; right and wrong passwords, unknown users, anonymous clients refused, ACL denials for
SUBSCRIBE (per filter), PUBLISH (MQTT 5 reason codes, 3.1.1 dropped), wills and retained messages, $-topics,
%c/%u substitution, reloads that revoke changed users and drop subscriptions their new rules refuse, and the
per-address failure limit. Clients are spread over both workers so the owner worker decides every time.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness
from harness import Broker, BrokerTest, ringmq_only, wait_until
import rawmqtt as R

MOSQ_PUB = shutil.which('mosquitto_pub')
MOSQ_SUB = shutil.which('mosquitto_sub')

ACL = """
# anonymous clients (none get in: allow_anonymous is false) would have these
topic read public/#

user alice
topic readwrite alice/#
topic write alerts
topic deny alice/secret/#

user bob
topic read alice/#
topic read alerts

user admin
topic readwrite #

pattern readwrite devices/%c/#
pattern read users/%u/inbox
"""


def add_user(path, user, password):
    create = [] if os.path.exists(path) else ['-c']
    subprocess.run([harness.RINGMQCTL, 'passwd', '--stdin', '--iterations', '1000'] + create + [path, user],
                   input=(password + '\n').encode(), check=True, capture_output=True)


class AuthTest(BrokerTest):
    """One broker with a password file (alice, bob, admin, dev-%u users) and the ACL above."""

    auth_fail_limit = 1000

    @classmethod
    def setUpClass(cls):
        if harness.IS_MOSQUITTO or not os.path.exists(harness.RINGMQD):
            raise unittest.SkipTest('ringmq-specific')
        cls.tmp = tempfile.mkdtemp(prefix='ringmq-auth-')
        cls.pw = os.path.join(cls.tmp, 'passwd')
        cls.acl = os.path.join(cls.tmp, 'acl')
        for u in ('alice', 'bob', 'admin', 'a+b'):
            add_user(cls.pw, u, u + '-pw')
        with open(cls.acl, 'w') as f:
            f.write(ACL)
        cls.broker = Broker(2, ['--password-file', cls.pw, '--acl-file', cls.acl, '--auth-fail-limit',
                                str(cls.auth_fail_limit)]).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def user(self, name, version=4, worker=None, **kw):
        return self.client(self.cid(worker), version=version, username=name, password=name + '-pw', **kw)

    def stat(self, name):
        return self.broker.ctl('stats')['total'].get(name, 0)

    def raw_connect(self, user, password, version=5, client_id=None, **kw):
        r = self.raw(version)
        r.send(R.connect(client_id or self.cid(), version=version, username=user, password=password, **kw))
        return r, r.expect(R.CONNACK)


@ringmq_only
class PasswordFileTest(AuthTest):

    def test_right_password_on_both_workers(self):
        for k in (0, 1):
            c = self.user('alice', worker=k)
            self.assertTrue(c.is_connected())

    def test_wrong_password_unknown_user_and_anonymous(self):
        failed = self.stat('auth_failed')
        # MQTT 5: 0x86 bad user name or password, 0x87 not authorized (anonymous).
        _, ack = self.raw_connect('alice', 'nope')
        self.assertEqual(ack.reason, 0x86)
        _, ack = self.raw_connect('mallory', 'x')
        self.assertEqual(ack.reason, 0x86)
        _, ack = self.raw_connect(None, None)
        self.assertEqual(ack.reason, 0x87)
        # 3.1.1: 4 and 5.
        _, ack = self.raw_connect('alice', 'nope', version=4)
        self.assertEqual(ack.reason, 4)
        _, ack = self.raw_connect(None, None, version=4)
        self.assertEqual(ack.reason, 5)
        self.assertGreaterEqual(self.stat('auth_failed'), failed + 4)
        log = self.broker.log_text()
        self.assertIn('mallory', log)
        self.assertNotIn('nope', log, 'a password must never be logged')

    def test_paho_refused(self):
        c = self.client(self.cid(), username='alice', password='wrong', connect=False)
        ack = c.connect(expect_rc=None)
        self.assertEqual(ack['rc'], 4)

    @unittest.skipUnless(MOSQ_PUB and MOSQ_SUB, 'mosquitto clients missing')
    def test_mosquitto_clients_with_credentials(self):
        topic = 'alice/m/%s' % self.cid()
        sub = subprocess.Popen([MOSQ_SUB, '-h', harness.HOST, '-p', str(self.port), '-u', 'bob', '-P', 'bob-pw',
                                '-t', topic, '-C', '1', '-W', '20', '-q', '1', '-d'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: 'SUBACK' in (sub.stdout.peek() if hasattr(sub.stdout, 'peek') else '') or
                       self.broker.ctl('stats')['total'].get('connects', 0) > 0, what='mosquitto_sub connected')
            # the subscription is in place once the retained-free topic sees the first publish: publish until the
            # subscriber exits (each publish a separate QoS 1 PUBACKed message)
            for _ in range(100):
                cp = subprocess.run([MOSQ_PUB, '-h', harness.HOST, '-p', str(self.port), '-u', 'alice', '-P',
                                     'alice-pw', '-t', topic, '-m', 'hello', '-q', '1'], capture_output=True,
                                    text=True, timeout=20)
                self.assertEqual(cp.returncode, 0, cp.stderr)
                try:
                    out, _ = sub.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self.fail('mosquitto_sub never got the message')
            self.assertIn('hello', out)
            cp = subprocess.run([MOSQ_PUB, '-h', harness.HOST, '-p', str(self.port), '-u', 'alice', '-P', 'bad',
                                 '-t', topic, '-m', 'x', '-q', '1'], capture_output=True, text=True, timeout=20)
            self.assertNotEqual(cp.returncode, 0)
        finally:
            sub.kill()
            sub.wait()


@ringmq_only
class AclTest(AuthTest):

    def test_subscribe_denied_per_filter(self):
        denied = self.stat('acl_denied_subscribe')
        r, ack = self.raw_connect('bob', 'bob-pw')
        self.assertEqual(ack.reason, 0)
        r.send(R.subscribe(1, [('alice/#', 1), ('bob/#', 1), ('alerts', 0), ('#', 0)], version=5))
        self.assertEqual(r.expect(R.SUBACK).reasons, [1, 0x87, 0, 0x87])
        r4, ack = self.raw_connect('bob', 'bob-pw', version=4)
        r4.send(R.subscribe(1, [('alerts', 1), ('alice/secretish/+', 1), ('nobody', 1)]))
        self.assertEqual(r4.expect(R.SUBACK).reasons, [1, 1, 0x80])
        self.assertEqual(self.stat('acl_denied_subscribe'), denied + 3)

    def test_deny_rule_wins(self):
        a = self.user('alice', version=5)
        self.assertEqual(a.subscribe('alice/#')[0], 0x87)  # could receive alice/secret/...
        self.assertEqual(a.subscribe('alice/secret/x')[0], 0x87)
        self.assertEqual(a.subscribe('alice/open/#')[0], 1)

    def test_publish_denied_mqtt5_reason_codes(self):
        watcher = self.user('admin')
        watcher.subscribe('nope/#')
        denied = self.stat('acl_denied_publish')
        r, _ = self.raw_connect('bob', 'bob-pw')
        r.send(R.publish('nope/1', b'x', qos=1, pid=7, version=5))
        ack = r.expect(R.PUBACK)
        self.assertEqual((ack.pid, ack.reason), (7, 0x87))
        r.send(R.publish('nope/2', b'x', qos=2, pid=8, version=5))
        ack = r.expect(R.PUBREC)
        self.assertEqual((ack.pid, ack.reason), (8, 0x87))
        r.send(R.publish('nope/0', b'x', qos=0, version=5))
        # an allowed publish after them is acknowledged in order and delivered; the denied ones never are
        r.send(R.publish('devices/%s/x' % 'none', b'x', qos=1, pid=9, version=5))
        ack = r.expect(R.PUBACK)
        self.assertEqual(ack.pid, 9)
        self.assertEqual(ack.reason, 0x87)  # devices/%c/# is for the client's own ID only
        wait_until(lambda: self.stat('acl_denied_publish') >= denied + 4, what='denials counted')
        watcher.expect_none(0.3)

    def test_publish_denied_mqtt311_dropped_but_acknowledged(self):
        watcher = self.user('admin')
        watcher.subscribe('nope/#', qos=1)
        r, ack = self.raw_connect('bob', 'bob-pw', version=4)
        r.send(R.publish('nope/1', b'x', qos=1, pid=3))
        self.assertEqual(r.expect(R.PUBACK).pid, 3)
        r.send(R.publish('nope/2', b'x', qos=2, pid=4))
        self.assertEqual(r.expect(R.PUBREC).pid, 4)
        r.send(R.ack(R.PUBREL, 4))
        self.assertEqual(r.expect(R.PUBCOMP).pid, 4)
        watcher.expect_none(0.3)
        self.assertTrue(watcher.is_connected())

    def test_allowed_flow_and_patterns(self):
        cid = self.cid()
        a = self.client(cid, username='alice', password='alice-pw', version=5)
        b = self.user('bob')
        self.assertEqual(b.subscribe('alice/news', qos=1)[0], 1)
        self.assertEqual(a.subscribe('devices/%s/#' % cid, qos=1)[0], 1)   # pattern %c
        self.assertEqual(a.subscribe('users/alice/inbox', qos=0)[0], 0)            # pattern %u (read)
        self.assertEqual(a.subscribe('users/bob/inbox', qos=0)[0], 0x87)
        a.publish('alice/news', b'n1', qos=1)
        self.assertEqual(b.get().payload, b'n1')
        a.publish('devices/%s/state' % cid, b'd1', qos=1)
        self.assertEqual(a.get().payload, b'd1')

    def test_identity_with_wildcards_not_substituted(self):
        # a user named a+b: users/%u/inbox must not become a filter with a wildcard
        c, _ = self.raw_connect('a+b', 'a+b-pw')
        c.send(R.subscribe(1, [('users/+/inbox', 0)], version=5))
        self.assertEqual(c.expect(R.SUBACK).reasons, [0x87])
        # a client ID with '/' gets no devices/%c/# rights at all
        r, ack = self.raw_connect('alice', 'alice-pw', client_id='x/y')
        r.send(R.subscribe(1, [('devices/x/y/#', 1)], version=5))
        self.assertEqual(r.expect(R.SUBACK).reasons, [0x87])

    def test_dollar_topics(self):
        r, _ = self.raw_connect('admin', 'admin-pw')
        r.send(R.publish('$SYS/fake', b'x', qos=1, pid=1, version=5))
        self.assertEqual(r.expect(R.PUBACK).reason, 0x87)
        r.send(R.subscribe(2, [('#', 0), ('$SYS/#', 0)], version=5))
        self.assertEqual(r.expect(R.SUBACK).reasons, [0, 0x87])

    def test_will_denied(self):
        denied = self.stat('acl_denied_will')
        _, ack = self.raw_connect('bob', 'bob-pw', will={'topic': 'alice/will', 'payload': b'w'})
        self.assertEqual(ack.reason, 0x87)
        _, ack = self.raw_connect('bob', 'bob-pw', version=4, will={'topic': 'alice/will', 'payload': b'w'})
        self.assertEqual(ack.reason, 5)
        self.assertEqual(self.stat('acl_denied_will'), denied + 2)
        # an allowed will is published when its client goes
        w = self.user('bob')
        w.subscribe('alerts', qos=1)
        r, ack = self.raw_connect('alice', 'alice-pw', will={'topic': 'alerts', 'payload': b'bye', 'qos': 1})
        self.assertEqual(ack.reason, 0)
        r.close()
        self.assertEqual(w.get().payload, b'bye')

    def test_retained(self):
        admin = self.user('admin')
        admin.publish('alice/ret/%s' % self.cid(), b'kept', qos=1, retain=True)
        bob = self.user('bob')
        # bob may read alice/#: he gets the retained message
        self.assertEqual(bob.subscribe('alice/ret/#', qos=1)[0], 1)
        self.assertEqual(bob.get().payload, b'kept')
        # a retained publish that is denied is neither delivered nor kept
        r, _ = self.raw_connect('bob', 'bob-pw')
        topic = 'alice/ret2/%s' % self.cid()
        r.send(R.publish(topic, b'forged', qos=1, pid=1, retain=True, version=5))
        self.assertEqual(r.expect(R.PUBACK).reason, 0x87)
        late = self.user('admin')
        late.subscribe(topic, qos=1)
        late.expect_none(0.3)
        # a subscriber that may not read a retained topic gets 0x87 and not the message
        a = self.user('alice', version=5)
        secret = 'alice/secret/%s' % self.cid()
        admin.publish(secret, b'hush', qos=1, retain=True)
        self.assertEqual(a.subscribe(secret)[0], 0x87)
        a.expect_none(0.3)


@ringmq_only
class ReloadTest(AuthTest):
    """Reloads change the files under the broker; each test restores them."""

    def setUp(self):
        super().setUp()
        with open(self.pw) as f:
            saved_pw = f.read()
        self.addCleanup(self._restore, saved_pw)

    def _restore(self, saved_pw):
        with open(self.pw, 'w') as f:
            f.write(saved_pw)
        with open(self.acl, 'w') as f:
            f.write(ACL)
        self.broker.ctl_raw('reload', json_out=False)

    def test_password_change_disconnects_and_new_password_works(self):
        c = self.user('bob', version=5, worker=1)
        other = self.user('alice', worker=0)
        add_user(self.pw, 'bob', 'new-secret')
        self.broker.ctl_raw('reload', json_out=False)
        self.assertTrue(c.wait_disconnected(10), 'bob still connected after his password changed')
        self.assertIn(0x87, c.disconnect_reasons)
        self.assertTrue(other.is_connected())
        _, ack = self.raw_connect('bob', 'bob-pw')
        self.assertEqual(ack.reason, 0x86)
        _, ack = self.raw_connect('bob', 'new-secret')
        self.assertEqual(ack.reason, 0)

    def test_deleted_user_disconnected_on_sighup(self):
        c = self.user('bob', worker=0)
        with open(self.pw) as f:
            lines = [ln for ln in f if not ln.startswith('bob:')]
        with open(self.pw, 'w') as f:
            f.writelines(lines)
        self.broker.signal(signal.SIGHUP)
        self.assertTrue(c.wait_disconnected(10))
        _, ack = self.raw_connect('bob', 'bob-pw')
        self.assertEqual(ack.reason, 0x86)

    def test_rules_change_drops_subscription_of_persistent_session(self):
        cid = self.cid()
        bob = self.client(cid, username='bob', password='bob-pw', clean=False)
        self.assertEqual(bob.subscribe('alerts', qos=1)[0], 1)
        with open(self.acl, 'w') as f:
            f.write(ACL.replace('user bob\ntopic read alice/#\ntopic read alerts\n', 'user bob\ntopic read alice/#\n'))
        dropped = self.stat('acl_dropped_subscriptions')
        self.broker.ctl_raw('reload', json_out=False)
        self.assertTrue(bob.wait_disconnected(10), 'a user whose rules changed must reconnect')
        bob2 = self.client(cid, username='bob', password='bob-pw', clean=False)
        self.assertTrue(bob2.session_present)
        self.assertEqual(self.stat('acl_dropped_subscriptions'), dropped + 1)
        alice = self.user('alice')
        alice.publish('alerts', b'not for bob', qos=1)
        bob2.expect_none(0.5)

    def test_pattern_change_applies_to_connected_clients(self):
        cid = self.cid()
        a = self.client(cid, username='alice', password='alice-pw', version=5)
        self.assertEqual(a.subscribe('devices/%s/#' % cid, qos=1)[0], 1)
        with open(self.acl, 'w') as f:
            f.write(ACL.replace('pattern readwrite devices/%c/#\n', ''))
        self.broker.ctl_raw('reload', json_out=False)
        wait_until(lambda: self.stat('acl_dropped_subscriptions') >= 1, what='subscription dropped')
        admin = self.user('admin')
        admin.publish('devices/%s/cmd' % cid, b'x', qos=1)
        a.expect_none(0.5)
        self.assertTrue(a.is_connected())

    def test_broken_file_keeps_previous_users(self):
        with open(self.pw, 'a') as f:
            f.write('garbage line without a hash\n')
        self.broker.ctl_raw('reload', json_out=False)
        wait_until(lambda: 'password_file' in self.broker.log_text() and 'keeping' in self.broker.log_text(),
                   what='reload error logged')
        c = self.user('alice')
        self.assertTrue(c.is_connected())


@ringmq_only
class FailureLimitTest(AuthTest):
    auth_fail_limit = 3

    def test_address_refused_after_failures(self):
        # The limit is kept by each worker for the clients it owns (one worker decides each client).
        limited = self.stat('auth_rate_limited')
        for _ in range(3):
            _, ack = self.raw_connect('alice', 'wrong', version=4, client_id=self.cid(1))
            self.assertEqual(ack.reason, 4)
        # the next attempt from this address is refused before any check, even with the right password
        _, ack = self.raw_connect('alice', 'alice-pw', version=5, client_id=self.cid(1))
        self.assertEqual(ack.reason, 0x89)
        self.assertGreater(self.stat('auth_rate_limited'), limited)


@ringmq_only
class BadFilesTest(unittest.TestCase):
    """A password or ACL file that does not load stops the broker at start with the file, the line and exit
    status 2, instead of workers restarting into the same error forever."""

    def run_broker(self, *args):
        tmp = tempfile.mkdtemp(prefix='ringmq-badauth-')
        self.addCleanup(shutil.rmtree, tmp, True)
        argv = [harness.RINGMQD, '--workers', '2', '--port', str(harness.free_port()), '--listen-host',
                harness.HOST, '--control-socket', os.path.join(tmp, 'ctl.sock')] + list(args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=tmp)

    def test_bad_password_file(self):
        tmp = tempfile.mkdtemp(prefix='ringmq-badpw-')
        self.addCleanup(shutil.rmtree, tmp, True)
        pw = os.path.join(tmp, 'passwd')
        with open(pw, 'w') as f:
            f.write('# users\nalice:plaintext\n')
        cp = self.run_broker('--password-file', pw)
        self.assertEqual(cp.returncode, 2, cp.stderr)
        self.assertIn('%s:2:' % pw, cp.stderr)
        self.assertIn('cannot work with this configuration', cp.stderr)
        self.assertNotIn('restarting worker', cp.stderr)

    def test_missing_acl_file(self):
        cp = self.run_broker('--acl-file', '/nonexistent/acl')
        self.assertEqual(cp.returncode, 2, cp.stderr)
        self.assertIn('/nonexistent/acl', cp.stderr)


if __name__ == '__main__':
    unittest.main()

"""Authentication against a real PostgreSQL (ringmq only; skipped without PostgreSQL): credentials found by user
name, by client ID and by certificate CN, bcrypt and PBKDF2 hashes, each credential's own rules, the per-worker
cache (a second CONNECT asks PostgreSQL nothing; none with pg_cache_size 0), a credential changed or deleted while its client is connected
(NOTIFY: disconnected), PostgreSQL down when the broker starts (one clear log line, "server unavailable", then
recovery when it comes up) and restarted under a running broker.
"""
import os
import shutil
import socket
import ssl
import tempfile
import unittest

import harness
from harness import Broker, BrokerTest, ringmq_only, wait_until
import rawmqtt as R
from pgserver import PgServer, bcrypt_hash, pg_missing, pbkdf2_hash

SKIP = pg_missing() or (harness.IS_MOSQUITTO and 'ringmq-specific')


class PgAuthTest(BrokerTest):
    pg_match = 'username'
    extra = ()

    @classmethod
    def setUpClass(cls):
        if SKIP or not os.path.exists(harness.RINGMQD):
            raise unittest.SkipTest(SKIP or 'ringmqd not built')
        cls.pg = PgServer().start()
        try:
            cls.broker = Broker(2, ['--pg-conninfo', cls.pg.conninfo, '--pg-match', cls.pg_match] +
                                list(cls.extra_args())).start()
        except Exception:
            cls.pg.cleanup()
            raise

    @classmethod
    def extra_args(cls):
        return cls.extra

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
        finally:
            cls.pg.cleanup()

    def stat(self, name):
        return self.broker.ctl('stats')['total'].get(name, 0)

    def raw_connect(self, user, password, version=5, client_id=None, **kw):
        r = self.raw(version)
        r.send(R.connect(client_id or self.cid(), version=version, username=user, password=password, **kw))
        return r, r.expect(R.CONNACK)


@ringmq_only
class ByUsernameTest(PgAuthTest):

    def test_passwords_bcrypt_and_pbkdf2(self):
        u1, u2 = 'u1-' + self.cid(), 'u2-' + self.cid()
        self.pg.add_credential(username=u1, password='s3cret', pub=['#'], sub=['#'])
        self.pg.add_credential(username=u2, password_hash=pbkdf2_hash('pw2'), pub=['#'], sub=['#'])
        for k in (0, 1):
            _, ack = self.raw_connect(u1, 's3cret', client_id=self.cid(k))
            self.assertEqual(ack.reason, 0)
            _, ack = self.raw_connect(u2, 'pw2', client_id=self.cid(k), version=4)
            self.assertEqual(ack.reason, 0)
        _, ack = self.raw_connect(u1, 'wrong')
        self.assertEqual(ack.reason, 0x86)
        _, ack = self.raw_connect('nobody-' + self.cid(), 'x')
        self.assertEqual(ack.reason, 0x86)
        _, ack = self.raw_connect(None, None)
        self.assertEqual(ack.reason, 0x87, 'anonymous clients are refused once PostgreSQL is configured')

    def test_credential_rules(self):
        u = 'rules-' + self.cid()
        self.pg.add_credential(username=u, password='p', pub=['out/%u/#'], sub=['in/%c/#', 'news'])
        cid = self.cid()
        r, ack = self.raw_connect(u, 'p', client_id=cid)
        self.assertEqual(ack.reason, 0)
        r.send(R.subscribe(1, [('in/%s/#' % cid, 1), ('in/other/#', 1), ('news', 0), ('#', 0)], version=5))
        self.assertEqual(r.expect(R.SUBACK).reasons, [1, 0x87, 0, 0x87])
        r.send(R.publish('out/%s/x' % u, b'ok', qos=1, pid=2, version=5))
        self.assertIn(r.expect(R.PUBACK).reason, (0, 0x10))
        r.send(R.publish('news', b'no', qos=1, pid=3, version=5))
        self.assertEqual(r.expect(R.PUBACK).reason, 0x87)

    def test_cache_warm_connect_asks_nothing(self):
        u = 'cache-' + self.cid()
        self.pg.add_credential(username=u, password='p', pub=['#'], sub=['#'])
        cid = self.cid(0)
        _, ack = self.raw_connect(u, 'p', client_id=cid)
        self.assertEqual(ack.reason, 0)
        queries = self.stat('pg_queries')
        hits = self.stat('pg_cache_hits')
        _, ack = self.raw_connect(u, 'p', client_id=self.cid(0))
        self.assertEqual(ack.reason, 0)
        self.assertEqual(self.stat('pg_queries'), queries)
        self.assertEqual(self.stat('pg_cache_hits'), hits + 1)

    def test_deleted_credential_disconnects(self):
        u = 'del-' + self.cid()
        cred = self.pg.add_credential(username=u, password='p', pub=['#'], sub=['#'])
        c = self.client(self.cid(1), version=5, username=u, password='p')
        bystander_user = 'by-' + self.cid()
        self.pg.add_credential(username=bystander_user, password='p', pub=['#'], sub=['#'])
        other = self.client(self.cid(1), username=bystander_user, password='p')
        self.pg.delete_credential(cred)
        self.assertTrue(c.wait_disconnected(10), 'client still connected after its credential was deleted')
        self.assertIn(0x87, c.disconnect_reasons)
        self.assertTrue(other.is_connected())
        _, ack = self.raw_connect(u, 'p')
        self.assertEqual(ack.reason, 0x86)
        self.assertGreaterEqual(self.stat('auth_revoked'), 1)

    def test_changed_password_disconnects_and_new_one_works(self):
        u = 'chg-' + self.cid()
        cred = self.pg.add_credential(username=u, password='old', pub=['#'], sub=['#'])
        c = self.client(self.cid(0), username=u, password='old')
        self.pg.update_credential(cred, password='new')
        self.assertTrue(c.wait_disconnected(10))
        _, ack = self.raw_connect(u, 'old', client_id=self.cid(0))
        self.assertEqual(ack.reason, 0x86)
        _, ack = self.raw_connect(u, 'new', client_id=self.cid(0))
        self.assertEqual(ack.reason, 0)

    def test_notification_during_the_check_looks_again(self):
        # The NOTIFY of the insert that made a row can arrive after a lookup already read that row, while its
        # password is being checked: the client must be judged again, not refused "server unavailable".
        u = 'slow-' + self.cid()
        cred = self.pg.add_credential(username=u, password_hash=bcrypt_hash('p', cost=13), pub=['#'], sub=['#'])
        queries = self.stat('pg_queries')
        r = self.raw(5)
        r.send(R.connect(self.cid(), version=5, username=u, password='p'))
        wait_until(lambda: self.stat('pg_queries') > queries, timeout=10, what='the lookup of the slow credential')
        self.pg.psql("SELECT pg_notify('ringmq_credentials', :'id')", id=str(cred))
        self.assertEqual(r.expect(R.CONNACK, timeout=20).reason, 0)

    def test_restart_under_running_broker(self):
        u = 'rst-' + self.cid()
        self.pg.add_credential(username=u, password='p', pub=['#'], sub=['#'])
        self.pg.stop('immediate')
        try:
            # A worker that had not seen the failure yet may still answer from its cache; fresh names must wait.
            def unavailable():
                _, ack = self.raw_connect('fresh-' + self.cid(), 'x', version=4)
                return ack.reason == 3
            wait_until(unavailable, timeout=20, what='"server unavailable" while PostgreSQL is down')
        finally:
            self.pg.start()

        def back():
            _, ack = self.raw_connect(u, 'p')
            return ack.reason == 0
        wait_until(back, timeout=30, interval=0.2, what='authentication works again')


@ringmq_only
class NoCacheTest(PgAuthTest):
    extra = ('--pg-cache-size', '0')

    def test_every_connect_asks(self):
        u = 'nocache-' + self.cid()
        self.pg.add_credential(username=u, password='p', pub=['#'], sub=['#'])
        queries = self.stat('pg_queries')
        for _ in range(3):
            _, ack = self.raw_connect(u, 'p', client_id=self.cid(0))
            self.assertEqual(ack.reason, 0)
        self.assertEqual(self.stat('pg_queries'), queries + 3)
        self.assertEqual(self.stat('pg_cache_hits'), 0)


@ringmq_only
class DownAtStartTest(BrokerTest):
    """The broker starts while PostgreSQL is not up: it says so once, answers "server unavailable", and
    authenticates as soon as PostgreSQL is there."""

    @classmethod
    def setUpClass(cls):
        if SKIP or not os.path.exists(harness.RINGMQD):
            raise unittest.SkipTest(SKIP or 'ringmqd not built')
        cls.pg = PgServer().start()
        cls.cred_user = 'late'
        cls.pg.add_credential(username='late', password='p', pub=['#'], sub=['#'])
        cls.pg.stop('fast')
        cls.broker = Broker(2, ['--pg-conninfo', cls.pg.conninfo]).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
        finally:
            cls.pg.cleanup()

    def test_unavailable_then_recovery(self):
        wait_until(lambda: 'unreachable' in self.broker.log_text(), what='the unreachable line')
        lines = [ln for ln in self.broker.log_text().splitlines() if 'unreachable' in ln]
        self.assertIn('pg_conninfo', lines[0])
        r = self.raw(5)
        r.send(R.connect(self.cid(), version=5, username='late', password='p'))
        self.assertEqual(r.expect(R.CONNACK).reason, 0x88)
        self.pg.start()

        def works():
            r = self.raw(4)
            r.send(R.connect(self.cid(), version=4, username='late', password='p'))
            return r.expect(R.CONNACK).reason == 0
        wait_until(works, timeout=30, interval=0.2, what='authentication once PostgreSQL is up')
        # one line per worker while down, not one per CONNECT or retry
        self.assertLessEqual(len([ln for ln in self.broker.log_text().splitlines() if 'unreachable' in ln]), 2)


@ringmq_only
class ByCertificateTest(PgAuthTest):
    """pg_match = cert_cn with client certificates required: the certificate is the proof, the row the rules."""
    pg_match = 'cert_cn'

    @classmethod
    def extra_args(cls):
        cls.tmp = tempfile.mkdtemp(prefix='ringmq-pgcert-')
        cls.pki = harness.make_pki(os.path.join(cls.tmp, 'pki'))
        cls.tls_port = harness.free_port()
        return ['--tls-port', str(cls.tls_port), '--tls-certfile', cls.pki['server_cert'], '--tls-keyfile',
                cls.pki['server_key'], '--tls-cafile', cls.pki['ca_cert'], '--tls-client-auth', 'required',
                '--tls-identity', 'cn', '--auth-order', 'pg']

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tls_client(self, cn, cid, **kw):
        tls = {'ca': self.pki['ca_cert'], 'cert': self.pki['client_cert_%s' % cn],
               'key': self.pki['client_key_%s' % cn]}
        c = harness.Client(self.tls_port, cid, tls=tls, **kw)
        self._clients.append(c)
        return c

    def client1_row(self):
        if not any(c['cert_cn'] == 'client1' for c in self.pg.credentials()):
            self.pg.add_credential(cert_cn='client1', pub=['dev/%u/#'], sub=['cmd/%u'])

    def test_certificate_with_row_connects_with_its_rules(self):
        self.client1_row()
        for k in (0, 1):  # either worker accepts; the owner decides (relayed when it is the other)
            c = self.tls_client('client1', self.cid(k), version=5)
            c.connect()
            self.assertEqual(c.subscribe('cmd/client1', qos=1)[0], 1)
            self.assertEqual(c.subscribe('cmd/client2', qos=1)[0], 0x87)

    def test_connect_in_the_same_flight_as_the_finished(self):
        """A client that sends CONNECT right behind its TLS Finished (one segment, as ringmq-bench and many
        devices do): the CN must be known before that CONNECT is authenticated."""
        self.client1_row()
        ctx = ssl.create_default_context(cafile=self.pki['ca_cert'])
        ctx.load_cert_chain(self.pki['client_cert_client1'], self.pki['client_key_client1'])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        for k in (0, 1):
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(inc, out, server_hostname='localhost')
            sock = socket.create_connection((harness.HOST, self.tls_port), timeout=10)
            self.addCleanup(sock.close)
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(out.read())
                    data = sock.recv(65536)
                    self.assertTrue(data, 'closed during the handshake')
                    inc.write(data)
            tls.write(R.connect(self.cid(k), version=5))
            sock.sendall(out.read())  # the client's Finished and the CONNECT record together
            buf = b''
            while len(buf) < 4:
                try:
                    buf += tls.read(1024)
                except ssl.SSLWantReadError:
                    data = sock.recv(65536)
                    self.assertTrue(data, 'closed before CONNACK')
                    inc.write(data)
            self.assertEqual(buf[0], 0x20)
            self.assertEqual(buf[3], 0, 'CONNACK reason 0x%02x' % buf[3])

    def test_certificate_without_row_refused(self):
        c = self.tls_client('client2', self.cid(), version=5)
        ack = c.connect(expect_rc=None)
        self.assertEqual(ack['rc'], 0x87)

    def test_deleted_row_disconnects_certificate_client(self):
        cred = self.pg.add_credential(cert_cn='client3', pub=['#'], sub=['#'])
        c = self.tls_client('client3', self.cid(), version=5)
        c.connect()
        self.pg.delete_credential(cred)
        self.assertTrue(c.wait_disconnected(10))
        self.assertIn(0x87, c.disconnect_reasons)


if __name__ == '__main__':
    unittest.main()

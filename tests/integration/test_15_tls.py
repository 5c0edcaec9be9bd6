"""TLS listeners (ringmq only): mosquitto clients, paho and openssl s_client over TLS through both workers (a TLS
connection owned by the other worker is relayed), client certificates (none / revoked / expired / unknown CA),
plain and TLS on the wrong ports, the handshake timeout, session resumption whichever worker accepts the
reconnect (shared ticket keys), and certificate reload without dropping connections.

Certificates come from scripts/gen-certs in a temporary directory per class.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Broker, BrokerTest, ringmq_only, wait_until, HOST
import rawmqtt as R

OPENSSL = shutil.which('openssl')
MOSQ_PUB = shutil.which('mosquitto_pub')
MOSQ_SUB = shutil.which('mosquitto_sub')


class TlsBroker(Broker):
    """A broker with a TLS listener on its own free port (self.tls_port)."""

    def __init__(self, pki, client_auth='none', extra=(), **config):
        self.tls_port = harness.free_port()
        args = ['--tls-port', str(self.tls_port), '--tls-certfile', pki['server_cert'], '--tls-keyfile',
                pki['server_key'], '--tls-client-auth', client_auth, '--tls-handshake-timeout-ms', '2000']
        if client_auth != 'none':
            args += ['--tls-cafile', pki['ca_cert'], '--tls-crlfile', pki['crl']]
        super().__init__(2, args + list(extra), **config)


class TlsTest(BrokerTest):
    client_auth = 'none'

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(harness.RINGMQD) or not OPENSSL:
            raise unittest.SkipTest('ringmqd or openssl missing')
        cls.tmp = tempfile.mkdtemp(prefix='ringmq-tls-')
        cls.pki = harness.make_pki(os.path.join(cls.tmp, 'pki'))
        cls.broker = TlsBroker(cls.pki, cls.client_auth).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tls_client(self, cid, cert=None, **kw):
        tls = {'ca': self.pki['ca_cert']}
        if cert:
            tls['cert'] = self.pki['client_cert_%s' % cert] if cert.startswith('client') else self.pki[cert + '_cert']
            tls['key'] = self.pki['client_key_%s' % cert] if cert.startswith('client') else self.pki[cert + '_key']
        c = harness.Client(self.broker.tls_port, cid, tls=tls, **kw)
        self._clients.append(c)
        return c

    def ssl_socket(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.pki['ca_cert'])
        if cert:
            ctx.load_cert_chain(self.pki['client_cert_%s' % cert], self.pki['client_key_%s' % cert])
        raw = socket.create_connection((HOST, self.broker.tls_port), timeout=5)
        return ctx.wrap_socket(raw, server_hostname='localhost')

    def stat(self, name):
        return self.broker.ctl('stats')['total'].get(name, 0)


@ringmq_only
class TlsListenerTest(TlsTest):

    def test_mosquitto_clients_over_tls_on_both_workers(self):
        """mosquitto_sub/pub with --cafile: client IDs owned by each worker; whichever worker accepts, every
        message arrives (the ones accepted by the non-owner travel a relay)."""
        if not MOSQ_PUB or not MOSQ_SUB:
            self.skipTest('mosquitto clients missing')
        before = self.stat('relay_opened')
        subs = []
        for k in range(2):
            for i in range(4):
                cid = self.cid(k, 'sub%d' % i)
                t = 'tls/%s' % cid
                p = subprocess.Popen([MOSQ_SUB, '-h', HOST, '-p', str(self.broker.tls_port), '--cafile',
                                      self.pki['ca_cert'], '-i', cid, '-t', t, '-q', '1', '-C', '1', '-W', '10'],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                subs.append((cid, t, p))
        wait_until(lambda: {c for c, _, _ in subs} <= self.broker.client_ids(), timeout=10, what='subscribers up')
        for cid, t, _ in subs:
            subprocess.run([MOSQ_PUB, '-h', HOST, '-p', str(self.broker.tls_port), '--cafile', self.pki['ca_cert'],
                            '-i', cid + 'p', '-t', t, '-q', '1', '-m', 'hello ' + cid], check=True, timeout=10)
        for cid, t, p in subs:
            out, _ = p.communicate(timeout=15)
            self.assertEqual(out.strip(), 'hello ' + cid)
        self.assertGreater(self.stat('relay_opened') - before, 0, 'some TLS clients were relayed')
        self.assertGreater(self.stat('tls_handshakes'), 0)

    def test_persistent_session_over_tls_relay(self):
        """A persistent MQTT 5 session over TLS: offline messages wait and arrive after the reconnect, whichever
        worker terminates TLS."""
        for k in range(2):
            cid = self.cid(k, 'pers')
            t = 'tls/pers/%s' % cid
            s = self.tls_client(cid, version=5, clean=False, session_expiry=600)
            s.connect()
            s.subscribe(t, 1)
            s.disconnect()
            p = self.tls_client(self.cid(1 - k, 'pub'), version=5)
            p.connect()
            for i in range(20):
                p.publish(t, b'%d' % i, qos=1)
            p.disconnect()
            s = self.tls_client(cid, version=5, clean=False, session_expiry=600)
            s.connect()
            self.assertTrue(s.session_present)
            self.assertEqual([int(m.payload) for m in s.get_n(20, timeout=20)], list(range(20)))
            s.disconnect()

    def test_plain_client_on_tls_port_and_tls_client_on_plain_port(self):
        """A plain CONNECT on the TLS port fails the handshake and is closed; a TLS ClientHello on the plain port
        is not an MQTT packet: closed. The broker serves both ports afterwards."""
        s = socket.create_connection((HOST, self.broker.tls_port), timeout=5)
        s.sendall(R.connect('plain-on-tls', 4))
        s.settimeout(5)
        got = b''
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                got += d
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        self.assertNotIn(b'\x20\x02', got[:2], 'no CONNACK in clear')
        ctx = ssl.create_default_context(cafile=self.pki['ca_cert'])
        raw = socket.create_connection((HOST, self.broker.port), timeout=5)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            ctx.wrap_socket(raw, server_hostname='localhost')
        raw.close()
        c = self.tls_client(self.cid(0, 'after'))
        c.connect()
        c.disconnect()
        r = self.raw_connected(self.cid(1, 'plain'))
        r.disconnect()

    def test_handshake_timeout(self):
        """A TCP connection to the TLS port that never starts the handshake is closed after
        tls_handshake_timeout_ms (2 s here); one that completes it but sends no CONNECT likewise."""
        s = socket.create_connection((HOST, self.broker.tls_port), timeout=10)
        t0 = time.monotonic()
        self.assertEqual(s.recv(1), b'')
        self.assertLess(time.monotonic() - t0, 6)
        s.close()
        t = self.ssl_socket()
        t0 = time.monotonic()
        try:
            self.assertEqual(t.recv(1), b'')
        except (ConnectionResetError, ssl.SSLError):
            pass
        self.assertLess(time.monotonic() - t0, 6)
        t.close()

    def _s_client(self, *args):
        """One openssl s_client connection that stays up half a second (long enough to take the TLS 1.3 ticket
        the server sends after the handshake), then closes; returns its output."""
        argv = [OPENSSL, 's_client', '-connect', '%s:%d' % (HOST, self.broker.tls_port), '-CAfile',
                self.pki['ca_cert'], '-servername', 'localhost', '-tls1_3'] + list(args)
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.5)  # not a synchronisation: s_client has no event to wait for, only its stdin to close
        out, _ = p.communicate(input=b'', timeout=10)
        return out.decode(errors='replace')

    def test_session_resumed_on_either_worker(self):
        """Session tickets are encrypted with keys every worker shares: 16 reconnects with the saved session are
        all resumed, and both workers resumed some (the kernel spreads the connections over them)."""
        sess = os.path.join(self.tmp, 'sess.pem')
        self.assertIn('Verify return code: 0', self._s_client('-sess_out', sess))
        before = self.broker.ctl('stats')
        reused = sum('Reused, TLSv1.3' in self._s_client('-sess_in', sess) for _ in range(16))
        self.assertEqual(reused, 16)
        after = self.broker.ctl('stats')
        per_worker = [after['workers'][k]['tls_resumed'] - before['workers'][k]['tls_resumed']
                      for k in range(2)] if 'workers' in after else None
        if per_worker is not None:
            self.assertTrue(all(n > 0 for n in per_worker), 'resumed on both workers: %r' % per_worker)

    def test_resumed_connection_gets_a_fresh_ticket(self):
        """TLS 1.3 tickets are meant for one use (RFC 8446 C.4): a client that resumed must be given a new ticket,
        or its next reconnect is a full handshake (OpenSSL clients then alternate full and resumed)."""
        ctx = ssl.create_default_context(cafile=self.pki['ca_cert'])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3

        def session_after(session=None):
            raw = socket.create_connection((HOST, self.broker.tls_port), timeout=5)
            t = ctx.wrap_socket(raw, server_hostname='localhost', session=session)
            t.sendall(R.connect(self.cid(), version=4))
            buf = t.recv(4)  # the CONNACK: tickets come before it, sent as the handshake completed
            self.assertEqual(buf[:1], b'\x20')
            reused, new = t.session_reused, t.session
            t.close()
            return reused, new

        _, s1 = session_after()
        reused, s2 = session_after(s1)
        self.assertTrue(reused)
        self.assertNotEqual(s2.id, s1.id, 'no new ticket after a resumption')
        reused, _ = session_after(s2)
        self.assertTrue(reused)


@ringmq_only
class TlsOnlyTest(TlsTest):
    """plain_listener = off: only the TLS port listens, so no password can travel in clear text."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(harness.RINGMQD) or not OPENSSL:
            raise unittest.SkipTest('ringmqd or openssl missing')
        cls.tmp = tempfile.mkdtemp(prefix='ringmq-tlsonly-')
        cls.pki = harness.make_pki(os.path.join(cls.tmp, 'pki'))
        cls.broker = TlsBroker(cls.pki, extra=['--plain-listener', 'off'])
        cls.broker.ready_port = cls.broker.tls_port
        cls.broker.start()

    def test_only_tls_listens(self):
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((HOST, self.broker.port), timeout=5).close()
        c = self.tls_client(self.cid(), version=5)
        c.connect()
        self.assertEqual(c.subscribe('t/only', qos=1)[0], 1)
        c.publish('t/only', b'x', qos=1)
        self.assertEqual(c.get().payload, b'x')
        self.assertEqual(self.broker.ctl('status')['listen'], '')

    def test_off_without_tls_port_is_a_config_error(self):
        cp = subprocess.run([harness.RINGMQD, '--plain-listener', 'off', '--control-socket',
                             os.path.join(self.tmp, 'x.sock')], capture_output=True, text=True, timeout=20)
        self.assertEqual(cp.returncode, 2, cp.stderr)
        self.assertIn('plain_listener is off and tls_port is 0', cp.stderr)


@ringmq_only
class MutualTlsTest(TlsTest):
    client_auth = 'required'

    def test_valid_client_certificate(self):
        c = self.tls_client(self.cid(0, 'mtls'), cert='client1', version=5)
        c.connect()
        c.subscribe('m/t', 1)
        c.publish('m/t', b'x', qos=1)
        self.assertEqual(c.get().payload, b'x')
        c.disconnect()

    def _refused(self, cert):
        tls = {'ca': self.pki['ca_cert']}
        if cert:
            tls['cert'] = self.pki[cert + '_cert']
            tls['key'] = self.pki[cert + '_key']
        c = harness.Client(self.broker.tls_port, self.cid(0, 'x'), tls=tls)
        self._clients.append(c)
        with self.assertRaises(Exception):
            c.connect(timeout=5)

    def test_no_revoked_expired_or_foreign_certificate(self):
        """Required client certificates: none, a revoked one (CRL), an expired one and one from an unknown CA are
        all refused in the handshake, counted, and the broker goes on serving."""
        before = self.stat('tls_failed')
        self._refused(None)
        self._refused('revoked')
        self._refused('expired')
        self._refused('rogue')
        wait_until(lambda: self.stat('tls_failed') - before >= 4, timeout=10, what='failures counted')
        self.test_valid_client_certificate()


@ringmq_only
class TlsReloadTest(TlsTest):

    def _server_cert_serial(self):
        t = self.ssl_socket()
        der = t.getpeercert(binary_form=True)
        t.close()
        return der

    def _new_certificate_served(self, old):
        def served():
            try:
                return self._server_cert_serial() != old
            except ssl.SSLCertVerificationError:
                # The CA was replaced too: a worker that has not reloaded yet still serves the old certificate,
                # which the new CA does not verify. Not there yet.
                return False
        return served

    def test_reload_new_certificate_keeps_connections(self):
        """Replace the server certificate files and reload (ringmqctl tls reload, then SIGHUP): new handshakes get
        the new certificate; a client connected before stays connected and served."""
        keep = self.tls_client(self.cid(0, 'keep'), version=5)
        keep.connect()
        keep.subscribe('r/t', 1)
        old = self._server_cert_serial()
        subprocess.run([os.path.join(harness.SRCDIR, 'scripts', 'gen-certs'), '--force', '--quiet',
                        os.path.dirname(self.pki['ca_cert'])], check=True)
        # The CA changed too: our copy of its path is the same file, so new handshakes verify again.
        self.broker.ctl('reload')
        wait_until(self._new_certificate_served(old), timeout=10, what='new certificate served')
        p = self.tls_client(self.cid(1, 'pub'))
        p.connect()
        p.publish('r/t', b'after reload', qos=1)
        self.assertEqual(keep.get().payload, b'after reload')
        os.kill(self.broker.proc.pid, signal.SIGHUP)
        self.assertTrue(keep.c.is_connected())


if __name__ == '__main__':
    harness.main()

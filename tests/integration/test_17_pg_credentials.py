"""PostgreSQL credential store tooling (ringmq only; skipped without PostgreSQL): the schema applies and
re-applies cleanly (scripts/pg/apply too), pgserver.py's helpers write what `ringmqctl cred` reads and the other
way round, hashes are bcrypt $2b$ (or the PBKDF2-SHA512 format given), listings never show a hash, and a
server killed with `-m immediate` comes back with its credentials. The broker's side (worker/pg.c) is tested
against real servers in tests/unit/pg/test-pg.c."""
import json
import os
import subprocess
import unittest
import warnings

from pgserver import PgServer, SRCDIR, pg_missing, pbkdf2_hash

RINGMQCTL = os.environ.get('RINGMQCTL') or os.path.join(SRCDIR, 'build', 'supervisor', 'ringmqctl')

with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    import crypt


def ctl(pg, *args, stdin=None, env=None):
    e = dict(os.environ)
    e.pop('RINGMQ_PG_CONNINFO', None)
    e.update(env or {})
    return subprocess.run([RINGMQCTL, 'cred'] + list(args) + (['--pg-conninfo', pg.conninfo] if pg else []),
                          input=stdin, capture_output=True, text=True, timeout=60, env=e)


@unittest.skipIf(pg_missing(), pg_missing())
class PgCredentialTooling(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PgServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()

    def setUp(self):
        self.pg.clear_credentials()

    def test_schema_applies_again_and_through_the_script(self):
        self.assertEqual(self.pg.schema_version(), 1)
        self.pg.apply_schema()
        self.assertEqual(self.pg.schema_version(), 1)
        self.pg.create_database('other')
        conninfo = self.pg.conninfo.replace('dbname=postgres', 'dbname=other')
        for _ in range(2):
            r = subprocess.run([os.path.join(SRCDIR, 'scripts', 'pg', 'apply'), conninfo], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('schema version 1', r.stderr)
            self.assertNotIn('NOTICE', r.stderr)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM ringmq_credentials", dbname='other'), [['0']])

    def test_helper_writes_ctl_reads(self):
        a = self.pg.add_credential(username='alice', password='s3cret', pub=['a/#', 'dev/%c/+'], sub=['b/#'])
        b = self.pg.add_credential(client_id='dev-1', username='bob', password_hash=pbkdf2_hash('pw'))
        c = self.pg.add_credential(cert_cn='sensor.example')
        r = ctl(self.pg, 'list', '--json')
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = {x['id']: x for x in json.loads(r.stdout)}
        self.assertEqual(set(rows), {a, b, c})
        self.assertEqual(rows[a]['password'], 'bcrypt')
        self.assertEqual(rows[a]['pub'], ['a/#', 'dev/%c/+'])
        self.assertEqual(rows[b]['password'], 'pbkdf2-sha512')
        self.assertEqual(rows[b]['client_id'], 'dev-1')
        self.assertIsNone(rows[c]['password'])
        self.assertIsNone(rows[c]['username'])
        self.assertNotIn('$2b$', r.stdout)
        self.assertNotIn('$7$', r.stdout)
        text = ctl(self.pg, 'list').stdout
        self.assertIn('3 credentials', text)
        self.assertNotIn('$2b$', text)
        # The helper's update is what the broker would be notified of.
        self.pg.update_credential(a, password='n3w', sub=[])
        h = self.pg.credentials()[0]['password_hash']
        self.assertEqual(crypt.crypt('n3w', h), h)
        self.pg.delete_credential(b)
        self.assertEqual([x['id'] for x in self.pg.credentials()], [a, c])

    def test_ctl_writes_helper_reads(self):
        r = ctl(self.pg, 'add', '--username', 'eve', '--password-stdin', '--sub', 'x/+', stdin='pa ss\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        cid = int(r.stdout.split()[-1])
        row = self.pg.credentials()[0]
        self.assertEqual(row['id'], cid)
        self.assertTrue(row['password_hash'].startswith('$2b$10$'))
        self.assertEqual(crypt.crypt('pa ss', row['password_hash']), row['password_hash'])
        self.assertEqual(row['sub'], ['x/+'])
        r = ctl(None, 'set', '--username', 'eve', '--no-password', '--pub', 'y/#', '--json',
                env={'RINGMQ_PG_CONNINFO': self.pg.conninfo})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {'updated': cid})
        row = self.pg.credentials()[0]
        self.assertIsNone(row['password_hash'])
        self.assertEqual(row['pub'], ['y/#'])
        r = ctl(self.pg, 'del', '--id', str(cid))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.pg.credentials(), [])
        r = ctl(self.pg, 'del', '--username', 'eve')
        self.assertEqual(r.returncode, 1)
        self.assertIn("no credential has username 'eve'", r.stderr)

    def test_server_killed_immediate_comes_back(self):
        a = self.pg.add_credential(username='alice', password='x')
        self.pg.stop('immediate')
        r = ctl(self.pg, 'list')
        self.assertEqual(r.returncode, 1)
        self.assertIn('cannot connect to PostgreSQL', r.stderr)
        self.pg.start()
        self.assertEqual([x['id'] for x in self.pg.credentials()], [a])


if __name__ == '__main__':
    unittest.main(verbosity=2)

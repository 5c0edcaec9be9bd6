"""A throwaway PostgreSQL server for integration tests of the credential store (docs/postgresql.md).

    from pgserver import PgServer, pg_missing
    @unittest.skipIf(pg_missing(), pg_missing())
    class T(unittest.TestCase):
        def test_x(self):
            with PgServer() as pg:                      # initdb + start + scripts/pg/NNN_*.sql applied
                cid = pg.add_credential(username='alice', password='s3cret', pub=['a/#'], sub=['b/#'])
                broker_args = ['--pg-conninfo', pg.conninfo]
                pg.update_credential(cid, password='n3w')   # brokers hear of it (NOTIFY)
                pg.stop('immediate'); pg.start()          # same port and data: a crash and a restart

The cluster lives in its own temporary directory: data in <dir>/data, the Unix socket and server.log in <dir>.
Trust authentication on 127.0.0.1 and the socket, superuser "ringmq", database "postgres". PostgreSQL refuses
to run as root: as root the server runs as the "postgres" user (which the postgresql package creates). The
server dies with the test process (PR_SET_PDEATHSIG). SQL goes through psql (no Python driver needed), with
values passed as psql variables, never spliced into the text.

Run directly (`python3 tests/integration/pgserver.py`) it starts a server, prints its conninfo and waits for
Ctrl-C: a quick PostgreSQL for trying ringmqctl cred by hand.
"""
import base64
import ctypes
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings

SRCDIR = os.environ.get('RINGMQ_SRCDIR') or os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
HOST = '127.0.0.1'


def find_bindir():
    """The PostgreSQL server binaries: $PG_BINDIR, `pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin."""
    cands = []
    if os.environ.get('PG_BINDIR'):
        cands.append(os.environ['PG_BINDIR'])
    try:
        cands.append(subprocess.run(['pg_config', '--bindir'], capture_output=True, text=True, timeout=10)
                     .stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    cands += sorted(glob.glob('/usr/lib/postgresql/*/bin'), key=lambda p: int(p.split('/')[-2]), reverse=True)
    for d in cands:
        if d and os.access(os.path.join(d, 'initdb'), os.X_OK) and os.access(os.path.join(d, 'postgres'), os.X_OK):
            return d
    return None


def pg_missing():
    """A reason to skip ('' when PostgreSQL is usable)."""
    if not find_bindir():
        return 'PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BINDIR)'
    if not shutil.which('psql'):
        return 'psql not found (apt-get install postgresql-client)'
    if os.geteuid() == 0:
        try:
            pwd.getpwnam('postgres')
        except KeyError:
            return 'running as root needs a "postgres" user to run the server as'
    return ''


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _server_user_preexec():
    """In the child before exec: drop root (PostgreSQL refuses it), then die with the parent."""
    parent = os.getpid()

    def preexec():
        if os.geteuid() == 0:
            pw = pwd.getpwnam('postgres')
            os.setgid(pw.pw_gid)
            os.setgroups([])
            os.setuid(pw.pw_uid)
        # PR_SET_PDEATHSIG (1) = SIGKILL, after setuid (which clears it).
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return preexec


def bcrypt_hash(password, cost=10):
    """A $2b$ bcrypt hash (libcrypt through the crypt module, as ringmqctl makes them)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        import crypt  # deprecated in 3.11, gone in 3.13: Debian 12 has 3.11
    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << cost)
    h = crypt.crypt(password, salt)
    if not h or not h.startswith('$2b$'):
        raise RuntimeError('libcrypt made no bcrypt hash: %r' % h)
    return h


def pbkdf2_hash(password, iterations=101, salt=None):
    """mosquitto_passwd's PBKDF2-SHA512 format: $7$<iterations>$<base64 salt>$<base64 hash>."""
    salt = salt if salt is not None else os.urandom(12)
    dk = hashlib.pbkdf2_hmac('sha512', password.encode(), salt, iterations)
    return '$7$%d$%s$%s' % (iterations, base64.b64encode(salt).decode(), base64.b64encode(dk).decode())


class PgServer:
    """One PostgreSQL server on a free loopback port; the cluster (initdb) is made by the first start()."""

    def __init__(self, schema=True, server_args=()):
        self.bindir = find_bindir()
        if not self.bindir:
            raise RuntimeError(pg_missing())
        self.schema = schema
        self.server_args = list(server_args)
        self.dir = None
        self.port = None
        self.proc = None
        self.dbname = 'postgres'
        self.user = 'ringmq'

    # --- life cycle ---

    @property
    def conninfo(self):
        return 'host=%s port=%d dbname=%s user=%s' % (HOST, self.port, self.dbname, self.user)

    @property
    def socket_conninfo(self):
        """The same server through its Unix socket."""
        return 'host=%s port=%d dbname=%s user=%s' % (self.dir, self.port, self.dbname, self.user)

    def _initdb(self):
        self.dir = tempfile.mkdtemp(prefix='ringmq-pg-')
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam('postgres')
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        with open(os.path.join(self.dir, 'initdb.log'), 'ab') as log:
            rc = subprocess.call([os.path.join(self.bindir, 'initdb'), '-D', os.path.join(self.dir, 'data'),
                                  '-U', self.user, '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 preexec_fn=_server_user_preexec())
        if rc != 0:
            tail = self._tail('initdb.log')
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            raise AssertionError('initdb failed (%s)\n%s' % (rc, tail))

    def start(self, timeout=30.0):
        fresh = self.dir is None
        if fresh:
            self._initdb()
            self.port = _free_port()
        log = open(os.path.join(self.dir, 'server.log'), 'ab')
        argv = [os.path.join(self.bindir, 'postgres'), '-D', os.path.join(self.dir, 'data'), '-p', str(self.port),
                '-k', self.dir, '-c', 'listen_addresses=' + HOST, '-c', 'fsync=off'] + self.server_args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=_server_user_preexec())
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError('postgres exited early with %s\n%s' % (self.proc.returncode,
                                                                         self._tail('server.log')))
            if subprocess.call([os.path.join(self.bindir, 'pg_isready'), '-q', '-h', HOST, '-p', str(self.port),
                                '-d', self.dbname, '-U', self.user], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError('postgres not ready within %.0fs\n%s' % (timeout, self._tail('server.log')))
            time.sleep(0.05)
        if fresh and self.schema:
            self.apply_schema()
        return self

    def stop(self, mode='fast', timeout=30.0):
        """mode 'fast' (SIGINT: clean shutdown), 'immediate' (SIGQUIT: what `pg_ctl stop -m immediate` sends —
        every backend exits at once, crash recovery at the next start) or 'kill' (SIGKILL the postmaster)."""
        sig = {'fast': signal.SIGINT, 'immediate': signal.SIGQUIT, 'kill': signal.SIGKILL}[mode]
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
        self.proc = None

    def restart(self, mode='fast'):
        self.stop(mode)
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        """Stop the server and remove its directory."""
        self.stop('immediate')
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def _tail(self, name, n=40):
        try:
            with open(os.path.join(self.dir, name), errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    def log_text(self):
        return self._tail('server.log', 100000)

    # --- SQL ---

    def psql(self, sql, dbname=None, **params):
        """Run sql through psql; psql variables from params (None: SQL NULL) are written :'name' (a quoted
        literal) in sql. Returns the rows of the last statement, each a list of strings (None for NULL)."""
        argv = ['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-F', '\x1f', '-P', 'null=\x1e',
                '-d', 'host=%s port=%d dbname=%s user=%s' % (HOST, self.port, dbname or self.dbname, self.user)]
        for k, v in params.items():
            if v is None:
                sql = sql.replace(":'%s'" % k, 'NULL')
            else:
                argv += ['-v', '%s=%s' % (k, v)]
        r = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PGOPTIONS='-c client_min_messages=warning'))
        if r.returncode != 0:
            raise AssertionError('psql failed (%d): %s\n%s' % (r.returncode, r.stderr.strip(), sql))
        rows = []
        for line in r.stdout.split('\n'):
            if line == '':
                continue
            rows.append([None if c == '\x1e' else c for c in line.split('\x1f')])
        return rows

    def apply_schema(self, dbname=None):
        """Every scripts/pg/NNN_*.sql, in order (what scripts/pg/apply does)."""
        for path in sorted(glob.glob(os.path.join(SRCDIR, 'scripts', 'pg', '[0-9][0-9][0-9]_*.sql'))):
            with open(path) as f:
                self.psql(f.read(), dbname=dbname)

    def create_database(self, name, schema=False):
        """Another database on the same server (schema=False: without the credential tables)."""
        self.psql('CREATE DATABASE "%s"' % name.replace('"', '""'))
        if schema:
            self.apply_schema(name)

    def schema_version(self):
        return int(self.psql('SELECT max(version) FROM ringmq_schema_version')[0][0])

    # --- credentials ---

    def add_credential(self, username=None, client_id=None, cert_cn=None, password=None, password_hash=None,
                       pub=(), sub=()):
        """Insert one credential; returns its id. password is hashed with bcrypt ($2b$); password_hash is
        stored as given (e.g. pbkdf2_hash(...)); neither: a credential without a password."""
        if password is not None:
            password_hash = bcrypt_hash(password)
        rows = self.psql("INSERT INTO ringmq_credentials (username, client_id, cert_cn, password_hash, pub_rules, "
                         "sub_rules) VALUES (:'u', :'c', :'n', :'h', "
                         "ARRAY(SELECT json_array_elements_text(:'p'::json)), "
                         "ARRAY(SELECT json_array_elements_text(:'s'::json))) RETURNING id",
                         u=username, c=client_id, n=cert_cn, h=password_hash, p=json.dumps(list(pub)),
                         s=json.dumps(list(sub)))
        return int(rows[0][0])

    _UNSET = object()

    def update_credential(self, cred_id, username=_UNSET, client_id=_UNSET, cert_cn=_UNSET, password=None,
                          password_hash=_UNSET, pub=None, sub=None):
        """Change the given fields of credential cred_id (None clears a key or the password)."""
        sets, params = [], {'id': str(cred_id)}
        for col, v in (('username', username), ('client_id', client_id), ('cert_cn', cert_cn)):
            if v is not PgServer._UNSET:
                sets.append("%s = :'%s'" % (col, col))
                params[col] = v
        if password is not None:
            password_hash = bcrypt_hash(password)
        if password_hash is not PgServer._UNSET:
            sets.append("password_hash = :'h'")
            params['h'] = password_hash
        for col, v in (('pub_rules', pub), ('sub_rules', sub)):
            if v is not None:
                sets.append("%s = ARRAY(SELECT json_array_elements_text(:'%s'::json))" % (col, col))
                params[col] = json.dumps(list(v))
        if not sets:
            return
        self.psql("UPDATE ringmq_credentials SET %s WHERE id = :'id'" % ', '.join(sets), **params)

    def delete_credential(self, cred_id):
        self.psql("DELETE FROM ringmq_credentials WHERE id = :'id'", id=str(cred_id))

    def credentials(self):
        """Every row as a dict (rules as lists)."""
        rows = self.psql('SELECT id, username, client_id, cert_cn, password_hash, array_to_json(pub_rules), '
                         'array_to_json(sub_rules) FROM ringmq_credentials ORDER BY id')
        return [{'id': int(r[0]), 'username': r[1], 'client_id': r[2], 'cert_cn': r[3], 'password_hash': r[4],
                 'pub': json.loads(r[5]), 'sub': json.loads(r[6])} for r in rows]

    def clear_credentials(self):
        self.psql('TRUNCATE ringmq_credentials RESTART IDENTITY')


if __name__ == '__main__':
    why = pg_missing()
    if why:
        sys.exit(why)
    with PgServer() as pg:
        print('PostgreSQL up, schema version %d. Try:' % pg.schema_version())
        print("  RINGMQ_PG_CONNINFO='%s' ringmqctl cred list" % pg.conninfo)
        print('Ctrl-C stops it and removes %s' % pg.dir)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass

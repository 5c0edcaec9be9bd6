"""The container image's recipe, run without a container engine (Dockerfile, scripts/container/, docs/operations.md).

The Dockerfile's steps are scripts; this test runs the same scripts: scripts/container/build into a staging
directory, scripts/container/install into a staging root seeded like debian:bookworm-slim's /etc, and then
checks what the image would hold: both binaries run, every library `ldd` lists comes from
scripts/container/runtime-packages (the file the install script reads), its dependencies or the base image,
and no listed package is useless; the unprivileged user matches the Dockerfile's USER and the StatefulSet's
runAsUser; the default configuration and the Kubernetes ConfigMap's pass `ringmqd --check-config`; and (as
root) the staged broker starts as that user and answers the probes the StatefulSet uses.

The build directory is kept under the meson build directory (container-build), so later runs are
incremental; the staging directories are fresh each time.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import wait_until

SRC = harness.SRCDIR
CONTAINER = os.path.join(SRC, 'scripts', 'container')
UID = 10001


def runtime_packages():
    with open(os.path.join(CONTAINER, 'runtime-packages')) as f:
        return [line.split('#', 1)[0].strip() for line in f if line.split('#', 1)[0].strip()]


def dpkg_query(fmt, *pkgs):
    cp = subprocess.run(['dpkg-query', '-W', '-f', fmt] + list(pkgs), capture_output=True, text=True)
    return cp.stdout


def installed(pkg):
    return 'install ok installed' in dpkg_query('${Status}', pkg)


def owner_package(lib):
    """The Debian package that ships lib (trying the /lib and /usr/lib spellings of merged /usr)."""
    cands = []
    for p in (lib, os.path.realpath(lib)):
        cands.append(p)
        if p.startswith('/usr/lib/'):
            cands.append(p[len('/usr'):])
        elif p.startswith('/lib/'):
            cands.append('/usr' + p)
    for p in cands:
        cp = subprocess.run(['dpkg', '-S', p], capture_output=True, text=True)
        if cp.returncode == 0:
            return cp.stdout.split(':', 1)[0].strip()
    return None


def closure(pkgs):
    """pkgs and everything they depend on (first installed alternative of each dependency)."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        deps = dpkg_query('${Depends}, ${Pre-Depends}', p)
        for group in deps.split(','):
            for alt in group.split('|'):
                name = re.sub(r'\(.*?\)', '', alt).strip().split(':', 1)[0]
                if name and installed(name):
                    todo.append(name)
                    break
    return seen


def base_image_packages():
    """What debian:bookworm-slim holds: the Essential and Priority: required packages (debootstrap's minbase)
    and apt."""
    out = dpkg_query('${Package} ${Essential} ${Priority} ${Status}\n')
    base = {'apt'}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and 'installed' in line and (f[1] == 'yes' or f[2] == 'required'):
            base.add(f[0])
    return base


def ldd_libs(binary):
    cp = subprocess.run(['ldd', binary], capture_output=True, text=True, check=True)
    libs = {}
    for line in cp.stdout.splitlines():
        if '=>' not in line:
            continue
        name, rest = [s.strip() for s in line.split('=>', 1)]
        path = rest.split('(')[0].strip()
        libs[name] = path
    return libs


class ContainerRecipeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='ringmq-image-')
        os.chmod(cls.tmp, 0o755)  # the staged broker runs as the image's user below
        cls.stage = os.path.join(cls.tmp, 'stage')
        cls.root = os.path.join(cls.tmp, 'root')
        builddir = os.path.join(harness.BUILDDIR, 'container-build')
        # The base image's account files, as debian:bookworm-slim has them (the install script adds to them).
        etc = os.path.join(cls.root, 'etc')
        os.makedirs(etc)
        for name, text in (('passwd', 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:'
                                      '/usr/sbin/nologin\n'),
                           ('group', 'root:x:0:\nnogroup:x:65534:\n'),
                           ('shadow', 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n'),
                           ('gshadow', 'root:*::\nnogroup:*::\n')):
            with open(os.path.join(etc, name), 'w') as f:
                f.write(text)
        cls.build_out = subprocess.run([os.path.join(CONTAINER, 'build'), SRC, builddir, cls.stage],
                                       capture_output=True, text=True, timeout=900)
        if cls.build_out.returncode != 0:
            raise AssertionError('scripts/container/build failed (%d):\n%s\n%s' % (
                cls.build_out.returncode, cls.build_out.stdout[-3000:], cls.build_out.stderr[-3000:]))
        cls.install_out = subprocess.run([os.path.join(CONTAINER, 'install'), cls.stage, cls.root],
                                         capture_output=True, text=True, timeout=120)
        if cls.install_out.returncode != 0:
            raise AssertionError('scripts/container/install failed (%d):\n%s\n%s' % (
                cls.install_out.returncode, cls.install_out.stdout, cls.install_out.stderr))
        cls.ringmqd = os.path.join(cls.root, 'usr', 'local', 'bin', 'ringmqd')
        cls.ringmqctl = os.path.join(cls.root, 'usr', 'local', 'bin', 'ringmqctl')
        cls.conf = os.path.join(cls.root, 'etc', 'ringmq', 'ringmq.conf')

    @classmethod
    def tearDownClass(cls):
        if os.environ.get('RINGMQ_KEEP_TMP') is None:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def read(self, *path):
        with open(os.path.join(SRC, *path)) as f:
            return f.read()

    def test_dockerfile_runs_these_scripts(self):
        df = self.read('Dockerfile')
        froms = re.findall(r'^FROM\s+(\S+)', df, re.M)
        self.assertEqual(froms, ['debian:bookworm-slim', 'debian:bookworm-slim'], 'two stages on Debian 12 slim')
        runs = re.findall(r'^RUN\s+(.*?)(?<!\\)$', df, re.M | re.S)
        self.assertTrue(any('/src/scripts/container/build /src /build /stage' in r for r in runs), runs)
        self.assertTrue(any('/tmp/scripts/container/install /tmp/stage /' in r for r in runs), runs)
        self.assertRegex(df, r'(?m)^USER %d:%d$' % (UID, UID))
        # Every other RUN step is the build packages of scripts/deps.sh, the list scripts/test installs.
        self.assertTrue(any('ringmq_need_pkgs $RINGMQ_BUILD_PKGS' in r for r in runs), runs)

    def test_statefulset_uses_image_and_probes(self):
        sts = self.read('k8s', 'statefulset.yaml')
        version = re.search(r"version\s*:\s*'([^']+)'", self.read('meson.build')).group(1)
        self.assertRegex(sts, r'(?m)^\s+image: ringmq:%s$' % re.escape(version))
        probes = re.findall(r'(?m)^\s+(readiness|liveness)Probe:\n\s+exec:\n\s+command: \[(.*)\]$', sts)
        self.assertEqual([(k, c.split(', ')[-1]) for k, c in probes], [('readiness', '"ready"'), ('liveness', '"live"')])
        self.assertIn('localhostProfile: profiles/seccomp-ringmq.json', sts)

    def test_binaries_run(self):
        version = self.read('meson.build')
        m = re.search(r"version\s*:\s*'([^']+)'", version)
        for b, name in ((self.ringmqd, 'ringmqd'), (self.ringmqctl, 'ringmqctl')):
            cp = subprocess.run([b, '--version'], capture_output=True, text=True, timeout=10)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertEqual(cp.stdout.strip(), '%s %s' % (name, m.group(1)))

    def test_runtime_packages_cover_ldd(self):
        pkgs = runtime_packages()
        for p in pkgs:
            self.assertTrue(installed(p), '%s (runtime-packages) is not a Debian 12 package installed here' % p)
        have = closure(pkgs) | closure(base_image_packages())
        provided = set()
        for b in (self.ringmqd, self.ringmqctl):
            for name, path in ldd_libs(b).items():
                self.assertNotEqual(path, 'not found', '%s: %s not found' % (b, name))
                pkg = owner_package(path)
                self.assertIsNotNone(pkg, '%s: no package ships %s' % (b, path))
                self.assertIn(pkg, have, '%s needs %s from %s: add it to runtime-packages' % (
                    os.path.basename(b), name, pkg))
                provided.add(pkg)
        # Only runtime libraries: every package listed ships a library the binaries load.
        for p in pkgs:
            self.assertIn(p, provided, '%s is in runtime-packages but no library of it is loaded' % p)

    def test_unprivileged_user(self):
        with open(os.path.join(self.root, 'etc', 'passwd')) as f:
            users = {line.split(':')[0]: line.strip().split(':') for line in f}
        self.assertIn('ringmq', users)
        u = users['ringmq']
        self.assertEqual((int(u[2]), int(u[3])), (UID, UID))
        self.assertEqual(u[6], '/usr/sbin/nologin')
        with open(os.path.join(self.root, 'etc', 'group')) as f:
            self.assertIn('ringmq:x:%d:' % UID, f.read())
        sts = self.read('k8s', 'statefulset.yaml')
        self.assertIn('runAsUser: %d' % UID, sts)
        self.assertIn('runAsGroup: %d' % UID, sts)
        if os.geteuid() == 0:
            st = os.stat(os.path.join(self.root, 'run', 'ringmq'))
            self.assertEqual((st.st_uid, st.st_gid), (UID, UID))
            st = os.stat(self.conf)
            self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (0, UID, 0o640))

    def test_default_config_is_valid(self):
        cp = subprocess.run([self.ringmqd, '--config', self.conf, '--check-config'], capture_output=True, text=True,
                            timeout=10)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn('configuration OK', cp.stdout)
        # The check has teeth: a bad combination is refused with exit status 2.
        cp = subprocess.run([self.ringmqd, '--config', self.conf, '--cluster', 'kafka', '--check-config'],
                            capture_output=True, text=True, timeout=10)
        self.assertEqual(cp.returncode, 2)

    def test_configmap_config_is_valid(self):
        text = self.read('k8s', 'configmap.yaml')
        m = re.search(r'^  ringmq\.conf: \|\n((?:    .*\n|\s*\n)+)', text, re.M)
        self.assertIsNotNone(m, 'ringmq.conf block in k8s/configmap.yaml')
        conf = os.path.join(self.tmp, 'configmap.conf')
        with open(conf, 'w') as f:
            f.write(''.join(line[4:] + '\n' for line in m.group(1).splitlines()))
        cp = subprocess.run([self.ringmqd, '--config', conf, '--node-id', '0', '--check-config'],
                            capture_output=True, text=True, timeout=10)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    @unittest.skipIf(os.geteuid() != 0, 'needs root to run the broker as the image user')
    def test_staged_broker_runs_as_image_user(self):
        port = harness.free_port()
        sock = os.path.join(self.root, 'run', 'ringmq', 'ringmq.sock')
        log = open(os.path.join(self.tmp, 'broker.log'), 'wb')
        env = {'PATH': '/usr/bin:/bin', 'RINGMQ_CONFIG': self.conf, 'RINGMQ_CONTROL_SOCKET': sock}
        p = subprocess.Popen([self.ringmqd, '--workers', '1', '--port', str(port), '--listen-host', harness.HOST],
                             user=UID, group=UID, extra_groups=[], env=env, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, cwd='/')
        def log_text():
            with open(log.name) as f:
                return f.read()

        try:
            def probe(what):
                if p.poll() is not None:
                    raise AssertionError('broker exited (%s): %s' % (p.returncode, log_text()))
                return subprocess.run([self.ringmqctl, '--socket', sock, what], capture_output=True,
                                      timeout=10).returncode == 0
            wait_until(lambda: probe('ready'), 20, what='staged broker ready')
            self.assertTrue(probe('live'))
            with open('/proc/%d/status' % p.pid) as f:
                self.assertRegex(f.read(), r'(?m)^Uid:\s+%d\s' % UID)
        finally:
            p.terminate()
            rc = p.wait(15)
            log.close()
        self.assertEqual(rc, 0, log_text())


if __name__ == '__main__':
    harness.main()

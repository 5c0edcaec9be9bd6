"""A throwaway Apache Kafka cluster (KRaft mode, 1 or 3 nodes) for integration tests (scripts/kafka/README.md).

    from kafkaserver import KafkaCluster, kafka_missing
    @unittest.skipIf(kafka_missing(), kafka_missing())
    class T(unittest.TestCase):
        def test_x(self):
            with KafkaCluster(brokers=3) as kafka:         # fetch (once per machine), format, start, wait
                kafka.create_topic('t', partitions=3)      # replication: the cluster's default (3 here)
                broker_args = ['--kafka-brokers', kafka.bootstrap]
                kafka.kill(2)                              # SIGKILL node 2 (node ids are 1..N)
                kafka.start_node(2)                        # back on the same port with the same data
                kafka.wait_isr('t')                        # every replica of t in sync again

scripts/kafka/start --setup-only writes the configuration (the same as `scripts/kafka/start` from a shell) and
formats the storage in a temporary directory; this module runs each node's java command itself, so the nodes
die with the test process (PR_SET_PDEATHSIG) and each can be stopped, killed and started alone. Node N's log is
<dir>/node-N/server.log. Topics are created with rmq-kafka (tests/kafka, $RMQ_KAFKA); messages go in and out
through kcat (Debian's kcat links the same librdkafka as ringmq).

Run directly (`python3 tests/integration/kafkaserver.py [--brokers 3]`) it starts a cluster, prints its
bootstrap servers and waits for Ctrl-C.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRCDIR = os.environ.get('RINGMQ_SRCDIR') or os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BUILDDIR = os.environ.get('RINGMQ_BUILDDIR') or os.path.join(SRCDIR, 'build')
RMQ_KAFKA = os.environ.get('RMQ_KAFKA') or os.path.join(BUILDDIR, 'tests', 'kafka', 'rmq-kafka')
KAFKA_DIR = os.path.join(SRCDIR, 'scripts', 'kafka')
READY_LINE = b'Kafka Server started'
# Producer settings of every kcat producer here: what ringmq's own producer uses.
DURABLE = ['-X', 'acks=all', '-X', 'enable.idempotence=true']


def _java_major():
    java = os.path.join(os.environ['JAVA_HOME'], 'bin', 'java') if os.environ.get('JAVA_HOME') else 'java'
    try:
        out = subprocess.run([java, '-version'], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


def _fetched():
    return subprocess.run([os.path.join(KAFKA_DIR, 'fetch'), '--check'], capture_output=True).returncode == 0


def kafka_missing():
    """A reason to skip ('' when a Kafka cluster can be run here). A failed download is no reason to skip: with
    Java and Maven present, start() fetches and fails loudly if that fails."""
    major = _java_major()
    if major is None:
        return 'java not found: Kafka needs Java 17 or newer (apt-get install openjdk-17-jre-headless)'
    if major < 17:
        return 'java is Java %d: Kafka needs 17 or newer (apt-get install openjdk-17-jre-headless)' % major
    if not shutil.which('mvn') and not _fetched():
        return 'mvn not found and Kafka jars not fetched (apt-get install maven; scripts/kafka/fetch)'
    if not shutil.which('kcat'):
        return 'kcat not found (apt-get install kcat)'
    if not os.access(RMQ_KAFKA, os.X_OK):
        return 'rmq-kafka not built (%s)' % RMQ_KAFKA
    return ''


def _die_with_parent():
    parent = os.getpid()

    def preexec():
        # PR_SET_PDEATHSIG (1) = SIGKILL; new session so a terminal's Ctrl-C reaches only the test.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
        os.setsid()
    return preexec


class KafkaCluster:
    """brokers (1 or 3) KRaft nodes, each broker and controller, on free loopback ports. Replication factor and
    min.insync.replicas are 1/1 on one node and 3/2 on three (scripts/kafka/start)."""

    def __init__(self, brokers=1):
        if brokers not in (1, 3):
            raise ValueError('brokers must be 1 or 3')
        self.brokers = brokers
        self.dir = None
        self.info = {}
        self.procs = {}
        self.log_offset = {}  # node -> size of its server.log at its last launch: where to look for READY_LINE

    # --- life cycle ---

    @property
    def bootstrap(self):
        """'127.0.0.1:P1[,...]': every node, for bootstrap.servers."""
        return self.info['bootstrap']

    def port(self, node):
        return int(self.info['ports'].split(',')[node - 1])

    def nodes(self):
        return list(range(1, self.brokers + 1))

    def start(self, timeout=60.0):
        """Set up (first call) and start every node that is not running; returns once all serve."""
        if self.dir is None:
            err = os.environ.get('RINGMQ_KAFKA_FETCH_ERROR')
            if err:
                raise AssertionError('Kafka jars not fetched: ' + err)
            self.dir = tempfile.mkdtemp(prefix='ringmq-kafka-')
            r = subprocess.run([os.path.join(KAFKA_DIR, 'start'), '--setup-only', '--brokers', str(self.brokers),
                                '--dir', self.dir], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=600)
            if r.returncode != 0:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
                raise AssertionError('scripts/kafka/start --setup-only failed (%d): %s' % (r.returncode,
                                                                                          r.stderr.strip()))
            with open(os.path.join(self.dir, 'cluster')) as f:
                self.info = dict(line.rstrip('\n').split('=', 1) for line in f if '=' in line)
        started = [n for n in self.nodes() if self._launch(n)]
        deadline = time.monotonic() + timeout
        for n in started:
            self._wait_ready(n, deadline, timeout)
        return self

    def start_node(self, node, timeout=60.0):
        """Start one node (same port, same data) and wait until it serves."""
        if self._launch(node):
            self._wait_ready(node, time.monotonic() + timeout, timeout)

    def _launch(self, node):
        if self.alive(node):
            return False
        nd = os.path.join(self.dir, 'node-%d' % node)
        with open(os.path.join(nd, 'command')) as f:
            argv = [line.rstrip('\n') for line in f if line.strip()]
        log_path = os.path.join(nd, 'server.log')
        self.log_offset[node] = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        with open(log_path, 'ab') as log:
            self.procs[node] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                preexec_fn=_die_with_parent())
        return True

    def _wait_ready(self, node, deadline, timeout):
        log_path = os.path.join(self.dir, 'node-%d' % node, 'server.log')
        while True:
            with open(log_path, 'rb') as f:
                f.seek(self.log_offset[node])
                if READY_LINE in f.read():
                    break
            if not self.alive(node):
                raise AssertionError('Kafka node %d exited with %s\n%s' % (node, self.procs[node].returncode,
                                                                         self.log_text(node, 40)))
            if time.monotonic() > deadline:
                raise AssertionError('Kafka node %d not ready within %.0fs\n%s' % (node, timeout,
                                                                                 self.log_text(node, 40)))
            time.sleep(0.05)
        # The line comes once the broker is unfenced; its listener accepts by then, checked all the same.
        socket.create_connection(('127.0.0.1', self.port(node)), timeout=5).close()

    def stop(self, node=None, mode='term', timeout=30.0):
        """Stop one node (None: all). mode 'term' (SIGTERM: controlled shutdown, leadership handed over first)
        or 'kill' (SIGKILL: a crash). Nodes still up after timeout seconds get SIGKILL."""
        sig = {'term': signal.SIGTERM, 'kill': signal.SIGKILL}[mode]
        targets = self.nodes() if node is None else [node]
        for n in targets:
            if self.alive(n):
                self.procs[n].send_signal(sig)
        for n in targets:
            p = self.procs.pop(n, None)
            if p is None:
                continue
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def kill(self, node):
        self.stop(node, 'kill')

    def restart(self, node, mode='kill'):
        self.stop(node, mode)
        self.start_node(node)

    def alive(self, node):
        p = self.procs.get(node)
        return p is not None and p.poll() is None

    def cleanup(self):
        """Kill every node and remove the cluster's directory."""
        self.stop(mode='kill')
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def log_text(self, node, lines=None):
        try:
            with open(os.path.join(self.dir, 'node-%d' % node, 'server.log'), errors='replace') as f:
                text = f.readlines()
        except OSError:
            return ''
        return ''.join(text[-lines:] if lines else text)

    # --- topics ---

    def _rmq_kafka(self, *args, timeout=60):
        r = subprocess.run([RMQ_KAFKA, '-b', self.bootstrap] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError('rmq-kafka %s failed (%d): %s' % (' '.join(args), r.returncode, r.stderr.strip()))
        return r.stdout

    def create_topic(self, name, partitions=1, replication=None, compacted=False, configs=None):
        """Create a topic; replication None takes the cluster's default.replication.factor; compacted sets
        cleanup.policy=compact; configs is a dict of further topic settings."""
        cfg = dict(configs or {})
        if compacted:
            cfg.setdefault('cleanup.policy', 'compact')
        self._rmq_kafka('create-topic', name, str(partitions), str(replication or -1),
                        *['%s=%s' % kv for kv in cfg.items()])

    def delete_topic(self, name):
        self._rmq_kafka('delete-topic', name)

    def topic_config(self, name):
        """The topic's effective configuration as a dict."""
        out = self._rmq_kafka('topic-config', name)
        return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)

    def metadata(self, topic=None, timeout=30):
        """kcat -L -J: brokers, controller, and topics with each partition's leader, replicas and ISR."""
        r = self.kcat(['-L', '-J'] + (['-t', topic] if topic else []), timeout=timeout)
        if r.returncode != 0:
            raise AssertionError('kcat -L failed (%d): %s' % (r.returncode, r.stderr.strip()))
        return json.loads(r.stdout)

    def partitions(self, topic):
        """[{'partition', 'leader', 'replicas': [ids], 'isrs': [ids]}] of one topic."""
        for t in self.metadata(topic)['topics']:
            if t['topic'] == topic:
                return [{'partition': p['partition'], 'leader': p['leader'],
                         'replicas': [r['id'] for r in p['replicas']], 'isrs': [r['id'] for r in p['isrs']]}
                        for p in t['partitions']]
        return []

    def wait_isr(self, topic, timeout=60.0):
        """Wait until every partition of topic has all its replicas in sync and a leader."""
        deadline = time.monotonic() + timeout
        while True:
            parts = self.partitions(topic)
            if parts and all(p['leader'] >= 0 and sorted(p['isrs']) == sorted(p['replicas']) for p in parts):
                return parts
            if time.monotonic() > deadline:
                raise AssertionError('replicas of %s not in sync within %.0fs: %s' % (topic, timeout, parts))
            time.sleep(0.2)

    # --- messages, through kcat ---

    def kcat(self, args, input=None, timeout=60):
        return subprocess.run(['kcat', '-b', self.bootstrap] + list(args), input=input, capture_output=True,
                              text=True, timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)

    def produce(self, topic, values, keys=None, partition=None, timeout=60):
        """Produce values (str, no newline; None or '' is a null value: a tombstone when keyed) with acks=all and
        idempotence, one kcat run; keys, if given, pair up with values. Raises unless every message was
        delivered."""
        args = ['-P', '-t', topic, '-Z'] + DURABLE + (['-p', str(partition)] if partition is not None else [])
        if keys is not None:
            args += ['-K', '\t']
            lines = ['%s\t%s' % (k, '' if v is None else v) for k, v in zip(keys, values)]
        else:
            lines = list(values)
        r = self.kcat(args, input=''.join(line + '\n' for line in lines), timeout=timeout)
        if r.returncode != 0:
            raise AssertionError('kcat -P to %s failed (%d): %s' % (topic, r.returncode, r.stderr.strip()))

    def consume(self, topic, timeout=60):
        """Everything in topic from the beginning to its current end: [(partition, key, value)], value None for a
        tombstone, key None when absent."""
        r = self.kcat(['-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p\t%K\t%k\t%S\t%s\n'],
                      timeout=timeout)
        if r.returncode != 0:
            raise AssertionError('kcat -C from %s failed (%d): %s' % (topic, r.returncode, r.stderr.strip()))
        out = []
        for line in r.stdout.split('\n'):
            if not line:
                continue
            part, klen, key, vlen, value = line.split('\t', 4)
            out.append((int(part), None if int(klen) < 0 else key, None if int(vlen) < 0 else value))
        return out


if __name__ == '__main__':
    import argparse
    ap = argparse.ArgumentParser(description='Run a throwaway Kafka cluster until Ctrl-C.')
    ap.add_argument('--brokers', type=int, default=1, choices=(1, 3))
    a = ap.parse_args()
    why = kafka_missing()
    if why and not why.startswith(('kcat', 'rmq-kafka')):
        sys.exit(why)
    t0 = time.monotonic()
    with KafkaCluster(a.brokers) as kafka:
        print('Kafka %s up in %.1f s: bootstrap servers %s' % (kafka.info['version'], time.monotonic() - t0,
                                                              kafka.bootstrap))
        print('Ctrl-C stops it and removes %s' % kafka.dir)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass

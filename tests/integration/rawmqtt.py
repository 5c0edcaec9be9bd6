"""Byte-level MQTT 3.1.1 / 5.0 codec and a blocking raw-socket client for the integration tests.

Independent of the broker's proto/ library on purpose: the tests must not share a bug with the code under test.
Encoders build exact bytes (so the malformed-packet tests can corrupt any field); the decoder is lenient and
only used on what the broker sends back.
"""
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

TYPE_NAMES = {1: 'CONNECT', 2: 'CONNACK', 3: 'PUBLISH', 4: 'PUBACK', 5: 'PUBREC', 6: 'PUBREL', 7: 'PUBCOMP',
              8: 'SUBSCRIBE', 9: 'SUBACK', 10: 'UNSUBSCRIBE', 11: 'UNSUBACK', 12: 'PINGREQ', 13: 'PINGRESP',
              14: 'DISCONNECT', 15: 'AUTH'}

# MQTT 5 property identifiers and their wire types.
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_REQUEST_PROBLEM_INFO = 0x17
P_WILL_DELAY = 0x18
P_REQUEST_RESPONSE_INFO = 0x19
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_QOS = 0x24
P_RETAIN_AVAILABLE = 0x25
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27
P_WILDCARD_SUB_AVAILABLE = 0x28
P_SUB_ID_AVAILABLE = 0x29
P_SHARED_SUB_AVAILABLE = 0x2A

_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16 = {0x13, 0x21, 0x22, 0x23}
_U32 = {0x02, 0x11, 0x18, 0x27}
_VBI = {0x0B}
_STR = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BIN = {0x09, 0x16}
_PAIR = {0x26}
# Properties that may appear more than once: decoded as lists.
_MULTI = {P_USER_PROPERTY, P_SUBSCRIPTION_ID}

# Reason codes used by the tests.
RC_SUCCESS = 0x00
RC_NO_MATCHING_SUBSCRIBERS = 0x10
RC_UNSPECIFIED = 0x80
RC_MALFORMED = 0x81
RC_PROTOCOL_ERROR = 0x82
RC_SERVER_BUSY = 0x89
RC_SERVER_SHUTTING_DOWN = 0x8B
RC_KEEP_ALIVE_TIMEOUT = 0x8D
RC_SESSION_TAKEN_OVER = 0x8E
RC_TOPIC_FILTER_INVALID = 0x8F
RC_TOPIC_NAME_INVALID = 0x90
RC_PACKET_ID_NOT_FOUND = 0x92
RC_RECEIVE_MAX_EXCEEDED = 0x93
RC_TOPIC_ALIAS_INVALID = 0x94
RC_PACKET_TOO_LARGE = 0x95
RC_QUOTA_EXCEEDED = 0x97
RC_ADMIN_ACTION = 0x98


def vbi(n):
    """Variable byte integer encoding."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _b(x):
    return x.encode() if isinstance(x, str) else bytes(x)


def mstr(x):
    """Two-byte length prefixed string / binary data."""
    x = _b(x)
    return struct.pack('>H', len(x)) + x


def props(plist):
    """Encode a property block. plist: list of (id, value); user properties as (0x26, (key, value))."""
    if plist is None:
        return b'\x00'
    out = bytearray()
    for pid, val in plist:
        out += vbi(pid)
        if pid in _BYTE:
            out += struct.pack('>B', val)
        elif pid in _U16:
            out += struct.pack('>H', val)
        elif pid in _U32:
            out += struct.pack('>I', val)
        elif pid in _VBI:
            out += vbi(val)
        elif pid in _STR or pid in _BIN:
            out += mstr(val)
        elif pid in _PAIR:
            out += mstr(val[0]) + mstr(val[1])
        else:
            raise ValueError('unknown property 0x%02x' % pid)
    return vbi(len(out)) + bytes(out)


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + vbi(len(body)) + body


def connect(client_id, version=4, clean=True, keepalive=60, plist=None, will=None, username=None,
            password=None, reserved=False):
    """CONNECT. will = dict(topic, payload, qos=0, retain=False, props=None)."""
    flags = 0
    if clean:
        flags |= 0x02
    if will:
        flags |= 0x04 | (will.get('qos', 0) << 3) | (0x20 if will.get('retain') else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    if reserved:
        flags |= 0x01
    body = mstr('MQTT') + bytes([version, flags]) + struct.pack('>H', keepalive)
    if version == 5:
        body += props(plist or [])
    body += mstr(client_id)
    if will:
        if version == 5:
            body += props(will.get('props') or [])
        body += mstr(will['topic']) + mstr(will['payload'])
    if username is not None:
        body += mstr(username)
    if password is not None:
        body += mstr(password)
    return packet(CONNECT, 0, body)


def publish(topic, payload=b'', qos=0, pid=None, retain=False, dup=False, version=4, plist=None):
    flags = (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = mstr(topic)
    if qos > 0 or pid is not None:
        body += struct.pack('>H', pid if pid is not None else 1)
    if version == 5:
        body += props(plist or [])
    body += _b(payload)
    return packet(PUBLISH, flags, body)


def subopts(qos=0, no_local=False, rap=False, rh=0):
    return qos | (0x04 if no_local else 0) | (0x08 if rap else 0) | (rh << 4)


def subscribe(pid, topics, version=4, plist=None, flags=0x02):
    """topics: list of (filter, options byte) or plain filter strings (QoS 0)."""
    body = struct.pack('>H', pid)
    if version == 5:
        body += props(plist or [])
    for t in topics:
        if isinstance(t, (str, bytes)):
            t = (t, 0)
        body += mstr(t[0]) + bytes([t[1]])
    return packet(SUBSCRIBE, flags, body)


def unsubscribe(pid, topics, version=4, plist=None):
    body = struct.pack('>H', pid)
    if version == 5:
        body += props(plist or [])
    for t in topics:
        body += mstr(t)
    return packet(UNSUBSCRIBE, 0x02, body)


def ack(ptype, pid, version=4, reason=None, plist=None):
    """PUBACK / PUBREC / PUBREL / PUBCOMP."""
    body = struct.pack('>H', pid)
    if version == 5 and (reason not in (None, 0) or plist):
        body += bytes([reason or 0])
        if plist:
            body += props(plist)
    return packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def disconnect(version=4, reason=0, plist=None):
    if version == 5 and (reason or plist):
        return packet(DISCONNECT, 0, bytes([reason]) + (props(plist) if plist else b''))
    return packet(DISCONNECT, 0, b'')


PINGREQ_BYTES = b'\xc0\x00'


# --- decoding -------------------------------------------------------------------------------------------

def decode_vbi(buf, pos):
    mult, val = 1, 0
    for i in range(4):
        if pos + i >= len(buf):
            return None, pos
        b = buf[pos + i]
        val += (b & 0x7F) * mult
        if not b & 0x80:
            return val, pos + i + 1
        mult *= 128
    raise ValueError('variable byte integer over 4 bytes')


def decode_props(buf, pos):
    n, pos = decode_vbi(buf, pos)
    end = pos + n
    out = {}
    while pos < end:
        pid, pos = decode_vbi(buf, pos)
        if pid in _BYTE:
            val = buf[pos]
            pos += 1
        elif pid in _U16:
            val = struct.unpack_from('>H', buf, pos)[0]
            pos += 2
        elif pid in _U32:
            val = struct.unpack_from('>I', buf, pos)[0]
            pos += 4
        elif pid in _VBI:
            val, pos = decode_vbi(buf, pos)
        elif pid in _STR or pid in _BIN:
            ln = struct.unpack_from('>H', buf, pos)[0]
            val = bytes(buf[pos + 2:pos + 2 + ln])
            if pid in _STR:
                val = val.decode()
            pos += 2 + ln
        elif pid in _PAIR:
            kl = struct.unpack_from('>H', buf, pos)[0]
            k = bytes(buf[pos + 2:pos + 2 + kl]).decode()
            pos += 2 + kl
            vl = struct.unpack_from('>H', buf, pos)[0]
            v = bytes(buf[pos + 2:pos + 2 + vl]).decode()
            pos += 2 + vl
            val = (k, v)
        else:
            raise ValueError('unknown property 0x%02x' % pid)
        if pid in _MULTI:
            out.setdefault(pid, []).append(val)
        else:
            out[pid] = val
    return out, end


class Packet:
    """One packet read from the broker, decoded according to the connection's protocol version."""

    def __init__(self, ptype, flags, body, version):
        self.type = ptype
        self.flags = flags
        self.body = bytes(body)
        self.version = version
        self.props = {}
        self.reason = None
        self.pid = None
        self.reasons = None
        b = self.body
        if ptype == CONNACK:
            self.session_present = bool(b[0] & 1)
            self.reason = b[1]
            if version == 5 and len(b) > 2:
                self.props, _ = decode_props(b, 2)
        elif ptype == PUBLISH:
            self.qos = (flags >> 1) & 3
            self.dup = bool(flags & 0x08)
            self.retain = bool(flags & 1)
            tl = struct.unpack_from('>H', b, 0)[0]
            self.topic = b[2:2 + tl].decode()
            pos = 2 + tl
            if self.qos:
                self.pid = struct.unpack_from('>H', b, pos)[0]
                pos += 2
            if version == 5:
                self.props, pos = decode_props(b, pos)
            self.payload = b[pos:]
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = struct.unpack_from('>H', b, 0)[0]
            self.reason = b[2] if len(b) > 2 else 0
            if len(b) > 3:
                self.props, _ = decode_props(b, 3)
        elif ptype in (SUBACK, UNSUBACK):
            self.pid = struct.unpack_from('>H', b, 0)[0]
            pos = 2
            if version == 5:
                self.props, pos = decode_props(b, pos)
            self.reasons = list(b[pos:])
        elif ptype in (DISCONNECT, AUTH):
            self.reason = b[0] if b else 0
            if len(b) > 1:
                self.props, _ = decode_props(b, 1)

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, str(self.type))

    def __repr__(self):
        extra = ''
        if self.type == PUBLISH:
            extra = ' topic=%r qos=%d dup=%d retain=%d pid=%r payload=%r' % (
                self.topic, self.qos, self.dup, self.retain, self.pid, self.payload[:40])
        elif self.reason is not None:
            extra = ' reason=0x%02x' % self.reason
        return '<%s%s props=%r>' % (self.name, extra, self.props)


class Closed(Exception):
    """The broker closed the connection."""


class RawClient:
    """A blocking MQTT connection over a plain socket. Every wait has a deadline; nothing sleeps."""

    def __init__(self, port, version=4, host='127.0.0.1', connect_timeout=5.0, rcvbuf=None):
        """rcvbuf: SO_RCVBUF set before connecting (the window is fixed at the handshake), for clients that
        read slowly or never."""
        self.version = version
        if rcvbuf:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(connect_timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.closed = False
        self.next_pid = 1
        self.aliases = {}  # server -> client topic aliases

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data):
        """Send, ignoring a connection the broker already closed (returns False then)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError('no packet from broker before deadline')
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError('no packet from broker before deadline')
        except (ConnectionResetError, BrokenPipeError):
            data = b''
        if not data:
            self.closed = True
            raise Closed()
        self.buf += data

    def read_packet(self, timeout=5.0):
        """Next packet; raises Closed on EOF/reset and TimeoutError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                rl, pos = decode_vbi(self.buf, 1)
                if rl is not None and len(self.buf) >= pos + rl:
                    b0 = self.buf[0]
                    body = self.buf[pos:pos + rl]
                    del self.buf[:pos + rl]
                    p = Packet(b0 >> 4, b0 & 0x0F, body, self.version)
                    if p.type == PUBLISH and self.version == 5:
                        alias = p.props.get(P_TOPIC_ALIAS)
                        if alias is not None:
                            if p.topic:
                                self.aliases[alias] = p.topic
                            else:
                                p.topic = self.aliases.get(alias, '<unknown alias %d>' % alias)
                    return p
            self._fill(deadline)

    def expect(self, ptype, timeout=5.0):
        p = self.read_packet(timeout)
        if p.type != ptype:
            raise AssertionError('expected %s, got %r' % (TYPE_NAMES[ptype], p))
        return p

    def expect_nothing(self, timeout=0.5):
        """Assert no packet arrives within timeout (a bounded wait that proves a negative)."""
        try:
            p = self.read_packet(timeout)
        except TimeoutError:
            return
        raise AssertionError('unexpected packet %r' % p)

    def wait_closed(self, timeout=5.0):
        """Wait for the broker to close the connection. Returns the list of packets read before the close
        (e.g. a DISCONNECT). Raises TimeoutError if the connection is still open at the deadline."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            try:
                got.append(self.read_packet(max(deadline - time.monotonic(), 0.001)))
            except Closed:
                return got
            except ConnectionError:
                return got

    def alloc_pid(self):
        pid = self.next_pid
        self.next_pid = pid % 65535 + 1
        return pid

    # --- conveniences -----------------------------------------------------------------------------------

    def connect(self, client_id, clean=True, keepalive=60, plist=None, will=None, expect_reason=0,
                timeout=5.0):
        self.send(connect(client_id, self.version, clean, keepalive, plist, will))
        ca = self.expect(CONNACK, timeout)
        if expect_reason is not None and ca.reason != expect_reason:
            raise AssertionError('CONNACK reason 0x%02x, expected 0x%02x (%r)' % (ca.reason, expect_reason, ca))
        self.connack = ca
        return ca

    def subscribe(self, topics, plist=None, timeout=5.0):
        """topics: filter string, or list of filters / (filter, options byte). Returns the SUBACK."""
        if isinstance(topics, (str, bytes)):
            topics = [(topics, 1)]
        pid = self.alloc_pid()
        self.send(subscribe(pid, topics, self.version, plist))
        sa = self.expect(SUBACK, timeout)
        assert sa.pid == pid, sa
        return sa

    def publish(self, topic, payload=b'', qos=0, retain=False, plist=None, timeout=5.0):
        """Publish and complete the QoS flow. Returns the PUBACK/PUBCOMP (None for QoS 0)."""
        pid = self.alloc_pid() if qos else None
        self.send(publish(topic, payload, qos, pid, retain, version=self.version, plist=plist))
        if qos == 1:
            return self.expect(PUBACK, timeout)
        if qos == 2:
            rec = self.expect(PUBREC, timeout)
            if rec.reason >= 0x80:
                return rec
            self.send(ack(PUBREL, pid, self.version))
            return self.expect(PUBCOMP, timeout)
        return None

    def receive(self, timeout=5.0, auto_ack=True):
        """Next PUBLISH (other packets, e.g. PINGRESP, are skipped). Acknowledges it unless auto_ack=False;
        QoS 2 is completed up to PUBCOMP."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.read_packet(max(deadline - time.monotonic(), 0.001))
            if p.type == PUBLISH:
                if auto_ack:
                    self.ack_publish(p, deadline - time.monotonic())
                return p
            if p.type == PUBREL and auto_ack:
                self.send(ack(PUBCOMP, p.pid, self.version))

    def ack_publish(self, p, timeout=5.0):
        if p.qos == 1:
            self.send(ack(PUBACK, p.pid, self.version))
        elif p.qos == 2:
            self.send(ack(PUBREC, p.pid, self.version))
            rel = self.expect(PUBREL, max(timeout, 0.5))
            assert rel.pid == p.pid, rel
            self.send(ack(PUBCOMP, p.pid, self.version))

    def disconnect(self, reason=0, plist=None, timeout=5.0):
        """DISCONNECT, then half-close and read until the broker closes. Closing with unread data would
        make the kernel send a RST, and the broker could lose what it had not read yet (our last acks)."""
        if self.try_send(disconnect(self.version, reason, plist)):
            try:
                self.sock.shutdown(socket.SHUT_WR)
                self.wait_closed(timeout)
            except (OSError, TimeoutError):
                pass
        self.close()

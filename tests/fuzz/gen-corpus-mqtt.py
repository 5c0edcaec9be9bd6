#!/usr/bin/env python3
"""Write the seed corpus of fuzz-mqtt-decode into corpus/mqtt-decode/ (run from anywhere; rewrites the files).

Each seed is one selector byte (bits 0-1: starting level 0=3.1, 1=3.1.1, 2=5; bits 2-4: k, max packet size
2^(2k+1), 0 = none) followed by a byte stream: one valid packet of every type in every dialect, a few sessions
as a client would send them, and edge cases (non-minimal lengths, size limits, every property).
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'mqtt-decode')
V31, V311, V5 = 0, 1, 2


def vbi(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(x):
    if isinstance(x, str):
        x = x.encode()
    return struct.pack('>H', len(x)) + x


def u16(n):
    return struct.pack('>H', n)


def u32(n):
    return struct.pack('>I', n)


def pkt(byte0, body):
    return bytes([byte0]) + vbi(len(body)) + body


def props(*items):
    body = b''.join(bytes([pid]) + val for pid, val in items)
    return vbi(len(body)) + body


NOPROPS = props()
USER = (0x26, s('k') + s('v'))


def connect(level, client_id='c', flags=0x02, cprops=NOPROPS, will=None, user=None, password=None,
            name=None):
    if name is None:
        name = 'MQIsdp' if level == 3 else 'MQTT'
    if will:
        flags |= 0x04 | (will.get('qos', 0) << 3) | (0x20 if will.get('retain') else 0)
    if user is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = s(name) + bytes([level, flags]) + u16(60)
    if level == 5:
        body += cprops
    body += s(client_id)
    if will:
        if level == 5:
            body += will.get('props', NOPROPS)
        body += s(will['topic']) + s(will['payload'])
    if user is not None:
        body += s(user)
    if password is not None:
        body += s(password)
    return pkt(0x10, body)


def publish(v5, topic, payload=b'hi', qos=0, pid=1, dup=False, retain=False, pprops=NOPROPS):
    body = s(topic) + (u16(pid) if qos else b'') + (pprops if v5 else b'') + payload
    return pkt(0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0), body)


def ack(byte0, pid, v5=False, reason=None, aprops=None):
    body = u16(pid)
    if v5 and reason is not None:
        body += bytes([reason])
        if aprops is not None:
            body += aprops
    return pkt(byte0, body)


def subscribe(v5, entries, pid=1, sprops=NOPROPS):
    body = u16(pid) + (sprops if v5 else b'')
    for flt, opts in entries:
        body += s(flt) + bytes([opts])
    return pkt(0x82, body)


def unsubscribe(v5, filters, pid=1, sprops=NOPROPS):
    return pkt(0xA2, u16(pid) + (sprops if v5 else b'') + b''.join(s(f) for f in filters))


def suback(byte0, v5, codes, pid=1):
    return pkt(byte0, u16(pid) + (NOPROPS if v5 else b'') + bytes(codes))


def connack(v5, sp=0, rc=0, cprops=NOPROPS):
    return pkt(0x20, bytes([sp, rc]) + (cprops if v5 else b''))


def disconnect(v5, reason=None, dprops=None):
    body = b''
    if v5 and reason is not None:
        body = bytes([reason]) + (dprops if dprops is not None else b'')
    return pkt(0xE0, body)


PING = pkt(0xC0, b'')
PONG = pkt(0xD0, b'')

ALL_CONNECT_PROPS = props((0x11, u32(60)), (0x21, u16(10)), (0x27, u32(4096)), (0x22, u16(5)), (0x19, b'\x01'),
                          (0x17, b'\x00'), USER, (0x15, s('m')), (0x16, s('d')))
ALL_CONNACK_PROPS = props((0x11, u32(60)), (0x21, u16(20)), (0x24, b'\x01'), (0x25, b'\x01'),
                          (0x27, u32(1 << 20)), (0x12, s('auto-1')), (0x22, u16(10)), (0x1F, s('why')), USER,
                          (0x28, b'\x01'), (0x29, b'\x01'), (0x2A, b'\x00'), (0x13, u16(30)), (0x1A, s('ri')),
                          (0x1C, s('other:1883')))
ALL_PUBLISH_PROPS = props((0x01, b'\x01'), (0x02, u32(30)), (0x23, u16(1)), (0x08, s('reply/to')),
                          (0x09, s(b'\x00\x01')), USER, (0x0B, vbi(7)), (0x0B, vbi(300)), (0x03, s('text/plain')))
WILL_PROPS = props((0x18, u32(5)), (0x01, b'\x01'), (0x02, u32(9)), (0x03, s('ct')), (0x08, s('r/t')),
                   (0x09, s('cd')), USER)

seeds = {}


def seed(name, level, *packets, k=0):
    seeds[name] = bytes([level | (k << 2)]) + b''.join(packets)


# --- one packet of each type, per dialect ---
for lv, name in ((V31, 'v31'), (V311, 'v311'), (V5, 'v5')):
    v5 = lv == V5
    level = (3, 4, 5)[lv]
    seed(name + '-connect', lv, connect(level))
    seed(name + '-connect-full', lv, connect(level, 'client-1', flags=0x00,
                                             cprops=ALL_CONNECT_PROPS if v5 else NOPROPS,
                                             will={'topic': 'will/t', 'payload': 'bye', 'qos': 1, 'retain': True,
                                                   'props': WILL_PROPS},
                                             user='user', password='pw'))
    seed(name + '-connack', lv, connack(v5, sp=0 if lv == V31 else 1, cprops=ALL_CONNACK_PROPS))
    seed(name + '-connack-refused', lv, connack(v5, rc=0x87 if v5 else 5))
    seed(name + '-publish-qos0', lv, publish(v5, 'a/b', b'payload'))
    seed(name + '-publish-qos1', lv, publish(v5, 'a/b', qos=1, pid=7, retain=True))
    seed(name + '-publish-qos2-dup', lv, publish(v5, 'a/b/c', qos=2, pid=65535, dup=True,
                                                 pprops=ALL_PUBLISH_PROPS))
    for t, b0 in (('puback', 0x40), ('pubrec', 0x50), ('pubrel', 0x62), ('pubcomp', 0x70)):
        seed('%s-%s' % (name, t), lv, ack(b0, 9, v5))
    seed(name + '-subscribe', lv, subscribe(v5, [('a/+/c', 1), ('#', 2), ('$share/g/x/#', 0),
                                                 ('sport/tennis/+', 0x2E if v5 else 1)],
                                            sprops=props((0x0B, vbi(42)), USER)))
    seed(name + '-unsubscribe', lv, unsubscribe(v5, ['a/+/c', '$share/g/x', '#'], sprops=props(USER)))
    seed(name + '-suback', lv, suback(0x90, v5, [0, 1, 2, 0x80] + ([0x97, 0x8F] if v5 else [])))
    seed(name + '-unsuback', lv, suback(0xB0, v5, [0, 0x11] if v5 else []))
    seed(name + '-ping', lv, PING, PONG)
    seed(name + '-disconnect', lv, disconnect(v5))

# --- MQTT 5 only ---
seed('v5-puback-reason-props', V5, ack(0x40, 3, True, 0x10, props((0x1F, s('no subscribers')), USER)))
seed('v5-pubrec-reason', V5, ack(0x50, 3, True, 0x80))
seed('v5-pubrel-not-found', V5, ack(0x62, 3, True, 0x92, NOPROPS))
seed('v5-disconnect-will', V5, disconnect(True, 0x04))
seed('v5-disconnect-props', V5, disconnect(True, 0x8E, props((0x11, u32(0)), (0x1F, s('taken over')),
                                                             (0x1C, s('srv')), USER)))
seed('v5-auth', V5, pkt(0xF0, bytes([0x18]) + props((0x15, s('SCRAM')), (0x16, s('data')), (0x1F, s('r')))))
seed('v5-auth-short', V5, pkt(0xF0, b''))
seed('v5-publish-alias', V5, publish(True, 'a/b', pprops=props((0x23, u16(1)))),
     publish(True, '', b'again', pprops=props((0x23, u16(1)))))
seed('v5-publish-user-interleaved', V5, publish(True, 't', pprops=props(USER, (0x03, s('ct')), USER)))
seed('v5-publish-many-subids', V5, publish(True, 't', pprops=props(*[(0x0B, vbi(i)) for i in range(1, 12)])))

# --- sessions: a client's stream after its CONNECT (the level follows the CONNECT) ---
seed('session-v311', V5, connect(4, 'sess'), subscribe(False, [('s/+', 1)]), publish(False, 's/x', qos=1, pid=2),
     ack(0x40, 2), PING, unsubscribe(False, ['s/+'], pid=3), disconnect(False))
seed('session-v5', V311, connect(5, 'sess5', cprops=props((0x11, u32(30)))),
     subscribe(True, [('s/#', 0x12)], pid=4), publish(True, 's/y', qos=2, pid=5, pprops=props((0x02, u32(5)))),
     ack(0x62, 5, True), PING, disconnect(True, 0x00, NOPROPS))
seed('session-v31', V5, connect(3, 'old'), publish(False, 'x', qos=1, pid=1), ack(0x40, 1), disconnect(False))
seed('broker-replies-v5', V5, connack(True, 0, 0, props((0x21, u16(100)), (0x22, u16(10)))),
     suback(0x90, True, [1]), ack(0x40, 1, True), PONG, disconnect(True, 0x8B))

# --- edge cases ---
seed('edge-nonminimal-length', V311, bytes([0x30, 0x85, 0x00]) + s('t') + b'hi')  # remaining length 5 in 2 bytes
seed('edge-max-size', V5, publish(True, 'big', b'x' * 100), publish(True, 'ok', b''), k=3)
seed('edge-size-limit-small', V311, PING, publish(False, 't', b'1234'), k=1)
seed('edge-large-payload', V311, publish(False, 't/l', b'\xff' * 1500))
seed('edge-truncated', V311, publish(False, 'a/b', b'payload')[:-3])
seed('edge-bad-vbi', V311, bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))
seed('edge-utf8-topic', V5, publish(True, 'caf\u00e9/\u6771\u4eac/\U0001F600'))
seed('edge-share-filters', V5, subscribe(True, [('$share/grp/+/+/#', 1), ('$SYS/#', 0), ('/', 0), ('+', 0)]))
seed('edge-matching', V311, publish(False, 'sport/tennis/player1'),
     subscribe(False, [('sport/#', 0), ('sport/+', 0), ('sport/tennis/+', 1), ('+/+/+', 0), ('#', 0),
                       ('sport/tennis/player1/#', 0), ('+/tennis/#', 0)]),
     publish(False, '$SYS/x'), subscribe(False, [('#', 0), ('$SYS/+', 0), ('+/x', 0)]),
     publish(False, 'a/'), subscribe(False, [('a/+', 0), ('a/#', 0), ('+/+', 0)]))
seed('edge-wrong-name-v5', V5, connect(5, name='MQTT5'))
seed('edge-bad-level', V311, connect(6))
seed('edge-bad-filter', V5, subscribe(True, [('a/#/b', 0)]), unsubscribe(False, ['x+']))
seed('edge-bad-prop', V5, publish(True, 't', pprops=props((0x11, u32(1)))))
seed('edge-dup-prop', V5, publish(True, 't', pprops=props((0x02, u32(1)), (0x02, u32(2)))))

if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if not f.startswith('.'):
            os.unlink(os.path.join(OUT, f))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, name), 'wb') as fp:
            fp.write(data)
    print('%d seeds in %s' % (len(seeds), OUT))

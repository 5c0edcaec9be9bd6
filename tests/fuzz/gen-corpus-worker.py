#!/usr/bin/env python3
"""Seeds for the worker's fuzz targets: conn-input (client sessions as records) and store-records (RESP replies
and blobs). Rewrites tests/fuzz/corpus/{conn-input,store-records}/. Packets are built from the spec's layouts."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def vbi(n):
    out = b''
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack('>H', len(x)) + x


def pkt(byte0, body):
    return bytes([byte0]) + vbi(len(body)) + body


def connect(cid, v=4, clean=True, will=None, props=b'', expiry=None):
    flags = 0x02 if clean else 0
    payload = s(cid)
    if v == 5:
        pr = props
        if expiry is not None:
            pr += b'\x11' + struct.pack('>I', expiry)
        vh_props = vbi(len(pr)) + pr
    else:
        vh_props = b''
    if will:
        flags |= 0x04 | (1 << 3)
        payload += (vbi(0) if v == 5 else b'') + s(will[0]) + s(will[1])
    name = 'MQIsdp' if v == 3 else 'MQTT'
    return pkt(0x10, s(name) + bytes([v, flags]) + struct.pack('>H', 60) + vh_props + payload)


def publish(topic, payload, qos=0, pid=1, v=4, retain=False, props=b''):
    body = s(topic) + (struct.pack('>H', pid) if qos else b'') + (vbi(len(props)) + props if v == 5 else b'')
    return pkt(0x30 | (qos << 1) | (1 if retain else 0), body + payload)


def subscribe(filt, qos=1, pid=1, v=4):
    return pkt(0x82, struct.pack('>H', pid) + (b'\x00' if v == 5 else b'') + s(filt) + bytes([qos]))


def ack(t, pid, v=4):
    return pkt({4: 0x40, 5: 0x50, 6: 0x62, 7: 0x70}[t], struct.pack('>H', pid))


def rec(op, data=b''):
    out = b''
    while True:  # long data in several records of one op
        chunk, data = data[:255], data[255:]
        out += bytes([op, len(chunk)]) + chunk
        if not data:
            return out


SEND = lambda k, b: rec(k, b)
CLOCK = lambda ds: bytes([4, ds])
READ = lambda k: bytes([5, k])
DROP = lambda k: bytes([6, k])
REDIS_OK = bytes([7, 0])
REDIS_ERR = bytes([7, 1])
REDIS_LOST = bytes([7, 3])


def conn_seeds():
    c = {}
    c['p2p-v311'] = b'\x00' + SEND(0, connect('sub', clean=False)) + SEND(0, subscribe('europe/ua/kyiv/1/+')) \
        + SEND(1, connect('pub')) + SEND(1, publish('europe/ua/kyiv/1/0', b'x' * 62, 1, 7)) + READ(0) \
        + SEND(0, ack(4, 1)) + READ(1)
    c['p2p-v5'] = b'\x00' + SEND(0, connect('sub', 5, False, expiry=3600)) \
        + SEND(0, subscribe('europe/ua/kyiv/2/+', 1, 1, 5)) + SEND(1, connect('pub', 5)) \
        + SEND(1, publish('europe/ua/kyiv/2/0', b'x' * 62, 1, 1, 5)) + READ(0) + READ(1)
    c['offline-queue'] = b'\x00' + SEND(0, connect('s', clean=False)) + SEND(0, subscribe('q')) + DROP(0) \
        + SEND(1, connect('p')) + b''.join(SEND(1, publish('q', b'm%d' % i, 1, i + 1)) for i in range(5)) \
        + SEND(2, connect('s', clean=False)) + READ(2)
    c['qos2'] = b'\x00' + SEND(0, connect('a')) + SEND(0, subscribe('t', 2)) + SEND(1, connect('b')) \
        + SEND(1, publish('t', b'two', 2, 9)) + READ(1) + SEND(1, ack(6, 9)) + READ(0) \
        + SEND(0, ack(5, 1)) + READ(0) + SEND(0, ack(7, 1))
    c['takeover-will'] = b'\x00' + SEND(0, connect('w', 5, False, will=('will/w', b'bye'), expiry=60)) \
        + SEND(1, connect('watch')) + SEND(1, subscribe('will/#', 0)) + SEND(2, connect('w', 5, False, expiry=60)) \
        + READ(0) + READ(1) + CLOCK(20)
    c['keepalive'] = b'\x00' + SEND(0, connect('k')) + CLOCK(255) + CLOCK(255) + READ(0)
    c['retained'] = b'\x00' + SEND(0, connect('r')) + SEND(0, publish('r/1', b'keep', 1, 1, retain=True)) \
        + SEND(1, connect('s')) + SEND(1, subscribe('r/#')) + READ(1)
    c['shared'] = b'\x00' + SEND(0, connect('a')) + SEND(0, subscribe('$share/g/t/#')) + SEND(1, connect('b')) \
        + SEND(1, subscribe('$share/g/t/#')) + SEND(2, connect('p')) \
        + b''.join(SEND(2, publish('t/x', b'%d' % i)) for i in range(4)) + READ(0) + READ(1)
    c['alias-v5'] = b'\x00' + SEND(0, connect('a', 5)) \
        + SEND(0, publish('t/alias', b'1', 0, 0, 5, props=b'\x23\x00\x01')) \
        + SEND(0, publish('', b'2', 0, 0, 5, props=b'\x23\x00\x01')) + READ(0)
    c['small-bounds-flood'] = b'\x02' + SEND(0, connect('slow')) + SEND(0, subscribe('f', 0)) \
        + SEND(1, connect('p')) + b''.join(SEND(1, publish('f', b'y' * 200)) for i in range(30)) + CLOCK(255)
    c['recv-max'] = b'\x04' + SEND(0, connect('r', 5)) \
        + b''.join(SEND(0, publish('a', b'q', 2, i + 1, 5)) for i in range(6)) + READ(0)
    c['redis-p2p'] = b'\x01' + SEND(0, connect('sub', clean=False)) + REDIS_OK + SEND(0, subscribe('d/1')) \
        + REDIS_OK + DROP(0) + REDIS_OK + SEND(1, connect('pub')) + SEND(1, publish('d/1', b'z', 1, 3)) \
        + REDIS_ERR + CLOCK(3) + REDIS_LOST + CLOCK(3) + REDIS_OK + READ(1) + SEND(2, connect('sub', clean=False)) \
        + REDIS_OK + READ(2)
    c['redis-qos2-restart'] = b'\x01' + SEND(0, connect('q2', clean=False)) + REDIS_OK \
        + SEND(0, publish('x', b'2', 2, 5)) + REDIS_OK + READ(0) + DROP(0) + REDIS_OK \
        + SEND(1, connect('q2', clean=False)) + SEND(1, publish('x', b'2', 2, 5)) + REDIS_OK + READ(1)
    c['malformed'] = b'\x00' + SEND(0, b'\x10\xff\xff\xff\xff\x7f') + SEND(1, connect('m')) \
        + SEND(1, b'\x82\x05\x00\x01\x00\x00\x01') + READ(1)
    c['unsubscribe'] = b'\x00' + SEND(0, connect('u')) + SEND(0, subscribe('a/+')) \
        + SEND(0, pkt(0xa2, struct.pack('>H', 2) + s('a/+'))) + READ(0)
    return c


def bulk(b):
    b = b.encode() if isinstance(b, str) else b
    return b'$%d\r\n' % len(b) + b + b'\r\n'


def blob(topic, payload, qos=1, expire=2 ** 40):
    hdr = struct.pack('=IBBBBIIqIHHHH', 0x524d5131, qos, 0, 0, 0, 0, 0, expire, len(payload), len(topic), 0, 0, 0)
    return hdr + topic.encode() + payload


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def qblob(topic, payload, qos=1, expire=2 ** 40):
    """record.h's compact layout: mark, flags, pfi, varints subid, 4 lengths, user, payload, expiry."""
    return bytes([0xb2, qos, 0]) + varint(0) + varint(len(topic)) + varint(0) * 4 + varint(len(payload)) + \
        varint(expire) + topic.encode() + payload


def store_seeds():
    c = {}
    c['blob'] = b'\x00' + blob('a/b', b'payload')
    c['qblob'] = b'\x00' + qblob('a/b', b'payload')
    c['blob-expired'] = b'\x01' + blob('t', b'p', 1, 10)
    load = b'*4\r\n*0\r\n*4\r\n' + bulk('1') + bulk(blob('t', b'one')) + bulk('2') + bulk(blob('t', b'two', 2)) \
        + b'*2\r\n' + bulk('1') + bulk('7,1') + b'*1\r\n' + bulk('9')
    c['load'] = b'\x02' + load
    c['load-batch'] = b'\x02*3\r\n:0\r\n' + load + b':1\r\n'
    c['load-damaged'] = b'\x02*4\r\n*0\r\n*2\r\n' + bulk('3') + bulk(b'junk') + b'*0\r\n*0\r\n'
    rest = b'*2\r\n*3\r\n' + bulk('dev') + b'*6\r\n' + bulk('v') + bulk('5') + bulk('e') + bulk('60') + bulk('h') \
        + bulk('4') + b'*4\r\n' + bulk('a/+') + bulk('1,0,0,0,0') + bulk('$share/g/x') + bulk('0,0,0,0,3') \
        + b'*3\r\n' + bulk('bad') + b'*2\r\n' + bulk('v') + bulk('99') + b'*0\r\n'
    c['restore'] = b'\x02' + rest
    c['nil-and-ints'] = b'\x02*3\r\n$-1\r\n:5\r\n*-1\r\n'
    return c


def write(name, seeds):
    d = os.path.join(HERE, 'corpus', name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for k, v in seeds.items():
        with open(os.path.join(d, k), 'wb') as f:
            f.write(v)


if __name__ == '__main__':
    write('conn-input', conn_seeds())
    write('store-records', store_seeds())
    sys.exit(0)

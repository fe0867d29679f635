#!/usr/bin/env python3
"""Seeds for the recording, events and model fuzz targets, cut from the golden recordings in
tests/data (stdlib only; zlib.crc32 is the CRC32 the recording format uses).

    python3 fuzz/seeds_events.py      # rewrites corpus/{recording,events,model}/small-*

Recordings: version 1 and version 2 (blocks of 64 events, so a small seed has several), whole
and cut short; the first 150 events of each golden recording. Events: the same events, raw.
Model: the same events in the model target's 8-byte shape (fuzz/src/events.rs `shaped`).
"""
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, '..', 'tests', 'data')
N = 150


def read_v1(path):
    d = open(path, 'rb').read()
    assert d[:8] == b'GMPTREC1'
    hlen, = struct.unpack_from('<I', d, 8)
    header = d[12:12 + hlen]
    end = d.index(b'GMPTEND1', 12 + hlen)
    body = d[12 + hlen:end]
    flen, = struct.unpack_from('<I', d, end + 8)
    footer = d[end + 12:end + 12 + flen]
    return header, [body[i:i + 64] for i in range(0, len(body) - 63, 64)], footer


def v1(header, events, footer):
    return (b'GMPTREC1' + struct.pack('<I', len(header)) + header + b''.join(events)
            + b'GMPTEND1' + struct.pack('<I', len(footer)) + footer)


def framed(magic, body):
    return magic + struct.pack('<II', len(body), zlib.crc32(body)) + body


def v2(header, events, footer, per_block=64):
    out = [framed(b'GMPTREC2', header)]
    for index, i in enumerate(range(0, len(events), per_block)):
        data = b''.join(events[i:i + per_block])
        head = b'GMPB' + struct.pack('<II', len(data) // 64, zlib.crc32(data))
        own = zlib.crc32(head + struct.pack('<Q', index))
        out.append(head + struct.pack('<I', own) + data)
    out.append(framed(b'GMPTEND2', footer))
    return b''.join(out)


def shaped(events):
    """The model target's input: a Go-version byte, then 8 bytes per event."""
    out = bytearray([4])
    tids, last = {}, None
    for e in events:
        ts, kind, tid, _pid, p, goid, m, a0, a1, _a2 = struct.unpack('<QIIIiQqQQQ', e)
        t = tids.setdefault(tid, len(tids))
        dt = 0 if last is None else max(0, min((ts - last) // 97, 255))
        last = ts
        small = a0 if a0 < 10 else 0x80 | (a0 >> 24 & 0x7f)
        out += bytes([kind % 256, t % 6, (p + 1) % 6, goid % 12, (m + 1) % 8, small & 0xff,
                      (a1 % 10) | (0x80 if a0 >= 10 else 0), dt])
    return bytes(out)


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


for golden in ('fanout-go1.27.3', 'traced-go1.21.13'):
    header, events, footer = read_v1(os.path.join(DATA, golden + '.gmpt'))
    json.loads(header), json.loads(footer)
    ev = events[:N]
    whole = v2(header, ev, footer)
    write('recording', f'small-v2-{golden}', whole)
    write('recording', f'small-v2-cut-{golden}', whole[:len(whole) * 2 // 3])
    write('recording', f'small-v1-{golden}', v1(header, ev, footer))
    write('events', f'small-{golden}', b''.join(ev))
    write('model', f'small-{golden}', shaped(events[:1000]))

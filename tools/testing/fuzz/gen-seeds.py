#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write the seed corpus of dptr_fuzz (input format: see dptr_fuzz.c)."""
import os
import struct
import sys

PS = 4096
MAX_XFER = PS << 6


def seed(flags, regions, length, dptr, chunks=()):
    """regions: [(gap_pages, size_pages)]; chunks: [(region, gpa_off, [qwords])]."""
    b = struct.pack('<BB', flags, len(regions) - 1)
    for gap, size in regions:
        b += struct.pack('<BB', gap, size - 1)
    b += struct.pack('<I', (length - 1) % MAX_XFER)
    b += dptr
    for reg, off, qw in chunks:
        b += struct.pack('<BHB', reg, off // 8, len(qw))
        b += b''.join(struct.pack('<Q', q) for q in qw)
    return b


def prp(p1, p2):
    return struct.pack('<QQ', p1, p2)


def sgl(addr, length, typ):
    return struct.pack('<QI3xB', addr, length, typ)


def desc(addr, length, typ):
    return [addr, length | typ << 56]


DATA, SEG, LAST = 0x00, 0x20, 0x30
ONE = [(0, 8)]
TWO = [(0, 8), (1, 8)]

SEEDS = {
    'prp1-only': seed(0, ONE, PS, prp(0x1000, 0)),
    'prp1-offset': seed(0, ONE, 0x200, prp(0x1e00, 0)),
    'prp1-prp2': seed(0, ONE, PS, prp(0x1800, 0x3000)),
    'prp-list': seed(0, ONE, 4 * PS, prp(0x1000, 0x7000),
                     [(0, 0x7000, [0x2000, 0x3000, 0x4000])]),
    'prp-list-chain-4080': seed(0, TWO, 5 * PS, prp(0x1000, 0x6ff0),
                                [(0, 0x6ff0, [0x2000, 0x9000]),
                                 (1, 0, [0x3000, 0x4000, 0x5000])]),
    'prp-list-4088': seed(0, TWO, 3 * PS, prp(0x1000, 0x6ff8),
                          [(0, 0x6ff8, [0x9000]), (1, 0, [0x3000, 0x4000])]),
    'prp-mdts': seed(0, ONE, MAX_XFER, prp(0x1000, 0x7000),
                     [(0, 0x7000, [0x1000 * (1 + i % 6) for i in range(63)])]),
    'prp-top': seed(2, TWO, 2 * PS, prp(0xfffffffffffff000, 0x1000)),
    'prp-inject': seed(4 | 1 << 4, ONE, 4 * PS, prp(0x1000, 0x7000),
                       [(0, 0x7000, [0x2000, 0x3000, 0x4000])]),
    'sgl-data': seed(1, ONE, 2 * PS, sgl(0x1000, 2 * PS, DATA)),
    'sgl-data-cross': seed(1, [(0, 1), (0, 1)], 2 * PS, sgl(0x0, 2 * PS, DATA)),
    'sgl-last-seg': seed(1, ONE, 2 * PS, sgl(0x7000, 48, LAST),
                         [(0, 0x7000, desc(0x1000, PS, DATA) +
                           desc(0x3000, 0x800, DATA) +
                           desc(0x5000, 0x800, DATA))]),
    'sgl-seg-chain': seed(1, TWO, 3 * PS, sgl(0x7000, 32, SEG),
                          [(0, 0x7000, desc(0x1000, PS, DATA) +
                            desc(0x9000, 32, LAST)),
                           (1, 0, desc(0x2000, PS, DATA) +
                            desc(0x3000, PS, DATA))]),
    'sgl-self-loop': seed(1, ONE, PS, sgl(0x7000, 32, SEG),
                          [(0, 0x7000, desc(0x1000, 4, DATA) +
                            desc(0x7000, 32, SEG))]),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'seeds'
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()

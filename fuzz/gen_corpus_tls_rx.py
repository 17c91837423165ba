#!/usr/bin/env python3
"""Write the seed corpus of fuzz_tls_rx (fuzz/corpus/tls_rx/): one small program per
behaviour worth reaching, in the input language of fuzz_tls_rx.c (see fuzz/README.md).
Run from anywhere; rewrites the folder."""
import os
import struct

# variants[] in tests/tls/tls_helpers.h
V12 = {"aes128": 0, "aes256": 1, "ccm": 2, "chacha": 3, "sm4gcm": 4, "sm4ccm": 5,
       "aria128": 6, "aria256": 7}
V13 = {"aes128": 8, "aes256": 9, "ccm": 10, "chacha": 11, "sm4gcm": 12, "sm4ccm": 13}

FIN, NO_PAD, DEFER_RX, NONBLOCK, SEQ_WRAP = 1, 2, 4, 8, 16
DATA, ALERT, HS, KEYUPDATE, CCS, TYPE0 = 0, 3, 4, 5, 6, 7   # type selectors
PEEK, WAITALL = 1, 2
CMSG_NONE, CMSG_SHORT, CMSG_OK = 0, 3, 5


def length(n):
    """Record length field of a seal op."""
    if n < 256:
        return struct.pack(">H", n)
    assert n < 0x4000
    return struct.pack(">H", 0x4000 | n)


def seal(tsel, n, pad=0, seed=1):
    return bytes([0, tsel]) + length(n) + bytes([pad, seed])


def raw(b):
    return bytes([2, len(b)]) + b


def damage(kind, pos, val, tsel=DATA, n=20):
    return bytes([3, kind, val]) + struct.pack(">H", pos) + seal(tsel, n)[1:]


def recv(n, flags=0, split=0, cmsg=CMSG_OK):
    ln = struct.pack(">H", n if n < 256 else 0x4000 | n)
    return bytes([4, flags]) + ln + bytes([split, cmsg])


def write(n):
    return bytes([5]) + struct.pack(">H", n)


def setopt(which, val):
    return bytes([6, which]) + struct.pack(">H", val)


def prog(variant, opts, *ops):
    return bytes([variant, opts]) + b"".join(ops)


SEEDS = {
    "12-data": prog(V12["aes128"], 0, seal(DATA, 10), seal(DATA, 300), seal(DATA, 0)),
    "12-chacha-zero-len": prog(V12["chacha"], 0, seal(DATA, 0), seal(DATA, 0),
                               seal(ALERT, 2), seal(DATA, 11), recv(100)),
    "12-control-no-cmsg": prog(V12["ccm"], 0, seal(DATA, 5), seal(HS, 7),
                               recv(64, cmsg=CMSG_NONE), recv(64, cmsg=CMSG_NONE),
                               recv(64, cmsg=CMSG_SHORT), recv(64)),
    "12-keyupdate-stall": prog(V12["aes256"], 0, seal(DATA, 9), seal(KEYUPDATE, 5),
                               seal(DATA, 9)),
    "12-sm4-peek": prog(V12["sm4gcm"], 0, seal(DATA, 40), seal(DATA, 40),
                        recv(60, PEEK, split=2), recv(30), recv(100, PEEK)),
    "12-aria-waitall-fin": prog(V12["aria256"], FIN, seal(DATA, 100), seal(DATA, 100),
                                recv(150, WAITALL)),
    "12-type0": prog(V12["aes128"], 0, seal(DATA, 3), seal(TYPE0, 3), recv(10)),
    "13-padding": prog(V13["aes128"], 0, seal(DATA, 20, pad=33), seal(ALERT, 2, pad=5),
                       seal(DATA, 1, pad=0), recv(8, split=3), recv(100)),
    "13-no-pad-zc": prog(V13["chacha"], NO_PAD, seal(DATA, 100), seal(DATA, 100, pad=7),
                         seal(HS, 4), recv(300), recv(300)),
    "13-keyupdate": prog(V13["aes256"], 0, seal(DATA, 10), seal(KEYUPDATE, 5),
                         seal(DATA, 10), recv(100), recv(100), recv(100)),
    "13-keyupdate-peek": prog(V13["sm4ccm"], 0, seal(DATA, 10), seal(KEYUPDATE, 5),
                              seal(DATA, 10), recv(100, PEEK), recv(5)),
    "13-seq-wrap": prog(V13["ccm"], SEQ_WRAP, seal(DATA, 4), seal(DATA, 4), seal(DATA, 4),
                        seal(DATA, 4)),
    "13-big": prog(V13["aes128"], 0, seal(DATA, 16383), seal(DATA, 0x3fff, pad=1),
                   recv(20000 - 16384)),
    "13-prequeue-partial": prog(V13["sm4gcm"], DEFER_RX | NONBLOCK, seal(DATA, 50),
                                write(30), recv(100), seal(DATA, 50), recv(100)),
    "13-lowat": prog(V13["chacha"], FIN, setopt(1, 7), seal(DATA, 10), seal(DATA, 5),
                     recv(1), recv(6, WAITALL), recv(10)),
    "bad-tag": prog(V12["aes128"], 0, seal(DATA, 10), damage(0, 30, 1), recv(100),
                    recv(100)),
    "bad-version": prog(V13["aes128"], 0, seal(DATA, 10), damage(1, 1, 2), recv(100)),
    "bad-length": prog(V12["chacha"], 0, raw(bytes([23, 3, 3, 0x40, 0x11]) + b"\0" * 16),
                       recv(100), recv(100)),
    "short-record": prog(V12["chacha"], 0, raw(bytes([23, 3, 3, 0, 4, 1, 2, 3, 4])),
                         recv(100)),
    "truncated": prog(V13["aes256"], FIN, seal(DATA, 10), damage(2, 20, 0)),
    "replay": prog(V12["sm4ccm"], 0, seal(DATA, 10), damage(3, 0, 0), recv(100)),
    # Regression: a record held by MSG_PEEK must survive the parser stopping on a bad
    # header that follows it.
    "held-then-bad-header": prog(V13["aes128"], 0, seal(DATA, 0),
                                 raw(bytes([23, 3, 3, 0x7f, 0xff])), recv(100, PEEK),
                                 seal(DATA, 5), recv(100, PEEK | WAITALL)),
    # Regression: a non-blocking read while TCP holds part of a record says EAGAIN (on an
    # offloaded connection it waited for ever once the device had taken the bytes).
    "partial-nonblock": prog(V12["aes256"], NONBLOCK, seal(DATA, 50),
                             raw(bytes([23, 3, 3, 0, 100, 1])), recv(100), recv(100),
                             recv(100)),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tls_rx")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.unlink(os.path.join(out, f))
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()

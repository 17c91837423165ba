#!/usr/bin/env python3
"""Write the seed corpus of fuzz_nvme_pdu (fuzz/corpus/nvme_pdu/): one connection's byte
stream per behaviour worth reaching, in the input language of fuzz_nvme_pdu.c (byte 0 the
prelude and options, then framed items or raw bytes). Run from anywhere; rewrites the
folder."""
import os
import struct

# byte 0
PRE_NONE, PRE_ICREQ, PRE_ADMIN, PRE_IO = 0, 1, 2, 3
HD, DD = 4, 8
HPDA = {0: 0x00, 1: 0x10, 3: 0x20, 31: 0x30}
FRAMED, NO_SQFLOW = 0x40, 0x80
# item selectors and flags
CMD, H2C, ICREQ, H2CTERM = 0, 3, 5, 6
LAST, FIX_SGL, BAD_DD, BAD_HD = 0x04, 0x10, 0x40, 0x80
SGL_INCAP, SGL_TRANSPORT = 0x01, 0x5A
NQN = b"nqn.2026-11.io.ulpo:target"
HOSTNQN = b"nqn.2014-08.org.nvmexpress:uuid:0b4ee6c3-7e0b-4f0a-9d46-ulpo-tests"


def item(sel, flags, body):
    return bytes([sel, flags]) + struct.pack("<H", len(body)) + body


def sqe(op, cid, nsid=0, dlen=0, sgl=SGL_TRANSPORT, cdw=(0,) * 6, flags=0x40):
    return (struct.pack("<BBHI", op, flags, cid, nsid) + bytes(16) +
            struct.pack("<QI3xB", 0, dlen, sgl) + struct.pack("<6I", *cdw))


def cmd(op, cid, nsid=0, dlen=0, data=b"", cdw=(0,) * 6, fl=0, sgl=None):
    if sgl is None:
        sgl = SGL_INCAP if data else SGL_TRANSPORT
    return item(CMD, fl, sqe(op, cid, nsid, len(data) or dlen, sgl, cdw) + data)


def rw(op, cid, slba, nlb, data=b"", fl=0):
    return cmd(op, cid, 1, nlb * 512, data, (slba, 0, nlb - 1, 0, 0, 0), fl)


def h2c(cid, ttag, off, data, last=True, fl=0, datal=None):
    body = struct.pack("<HHII4x", cid, ttag, off, len(data) if datal is None else datal) + data
    return item(H2C, (LAST if last else 0) | fl, body)


def connect_data(cntlid=0xFFFF):
    d = bytearray(1024)
    d[0:16] = b"\x5a" * 16
    struct.pack_into("<H", d, 16, cntlid)
    d[256:256 + len(NQN)] = NQN
    d[512:512 + len(HOSTNQN)] = HOSTNQN
    return bytes(d)


def pat(n, seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


SEEDS = {
    # I/O queue: in-capsule write, read back, R2T write in one H2CData, flush, bad ones
    "io-rw": bytes([PRE_IO | FRAMED]) +
        rw(1, 10, 0, 8, pat(4096, 1)) + rw(2, 11, 0, 8) +
        rw(1, 12, 16, 16) + h2c(12, 0, 0, pat(8192, 2)) + rw(2, 13, 16, 16) +
        cmd(0, 14, 1) + rw(2, 15, 511, 2) + cmd(0x05, 16, 1) +
        cmd(1, 17, 2, data=pat(512, 1)),
    "io-digests": bytes([PRE_IO | HD | DD | FRAMED]) +
        rw(1, 10, 8, 8, pat(4096, 3)) + rw(1, 11, 8, 8, pat(4096, 4), fl=BAD_DD) +
        rw(1, 12, 0, 24) + h2c(12, 0, 0, pat(8192, 5), last=False) +
        h2c(12, 0, 8192, pat(4096, 6), fl=BAD_DD) + rw(2, 13, 0, 24),
    "io-hpda31-noflow": bytes([PRE_IO | DD | HPDA[31] | NO_SQFLOW | FRAMED]) +
        rw(1, 10, 0, 4, pat(2048, 7)) + rw(2, 11, 0, 300) + rw(2, 12, 0, 4),
    "io-hpda3": bytes([PRE_IO | HD | HPDA[3] | FRAMED]) + rw(2, 10, 0, 64) + rw(2, 11, 7, 1),
    "io-two-r2t": bytes([PRE_IO | FRAMED]) + rw(1, 10, 0, 16) + rw(1, 11, 32, 8) +
        h2c(11, 1, 0, pat(4096, 8)) + h2c(10, 0, 0, pat(8192, 9)),
    "io-h2c-range": bytes([PRE_IO | FRAMED]) + rw(1, 10, 0, 16) + h2c(10, 0, 4096, pat(8192, 1)),
    "io-h2c-ttag": bytes([PRE_IO | FRAMED]) + rw(1, 10, 0, 16) + h2c(10, 3, 0, pat(4096, 1), False),
    "io-h2c-last": bytes([PRE_IO | FRAMED]) + rw(1, 10, 0, 16) + h2c(10, 0, 0, pat(4096, 1), True),
    "io-h2c-datal": bytes([PRE_IO | FRAMED]) + rw(1, 10, 0, 16) +
        h2c(10, 0, 0, pat(4096, 1), False, datal=2048),
    "io-bad-hdgst": bytes([PRE_IO | HD | FRAMED]) + rw(2, 10, 0, 8) + cmd(0, 11, 1, fl=BAD_HD),
    "io-cid-conflict": bytes([PRE_IO | FRAMED]) + rw(1, 10, 0, 16) + rw(2, 10, 0, 8) +
        h2c(10, 0, 0, pat(8192, 1)),
    # admin queue on this connection
    "admin": bytes([PRE_ADMIN | FRAMED]) +
        cmd(6, 10, 0, 4096, cdw=(1, 0, 0, 0, 0, 0)) + cmd(6, 11, 1, 4096) +
        cmd(6, 12, 0, 4096, cdw=(2, 0, 0, 0, 0, 0)) + cmd(6, 13, 0, 4096, cdw=(9, 0, 0, 0, 0, 0)) +
        cmd(9, 14, cdw=(7, 0x00030003, 0, 0, 0, 0)) + cmd(0x0A, 15, cdw=(7, 0, 0, 0, 0, 0)) +
        cmd(9, 16, cdw=(0x0F, 5000, 0, 0, 0, 0)) + cmd(0x18, 17) +
        cmd(2, 18, 0xFFFFFFFF, 512, cdw=(0x007F0002, 0, 0, 0, 0, 0)) +
        cmd(0x0C, 19) + cmd(0x0C, 20) + cmd(0x0C, 21) + cmd(0x0C, 22) + cmd(0x0C, 23) +
        cmd(0x7F, 24, 4, cdw=(1, 0, 0, 0, 0, 0)) + cmd(0x7F, 25, 4, cdw=(0, 0x1C, 0, 0, 0, 0)) +
        cmd(0x7F, 26, 0, cdw=(0, 0x14, 0x4001, 0, 0, 0)) + cmd(0xC0, 27),
    "admin-noflow-digests": bytes([PRE_ADMIN | HD | DD | NO_SQFLOW | FRAMED]) +
        cmd(6, 10, 0, 4096, cdw=(1, 0, 0, 0, 0, 0)) + cmd(0x18, 11, fl=BAD_DD, data=b"x" * 8),
    # Connect by R2T on a fresh queue, then a second Connect
    "connect-r2t": bytes([PRE_ICREQ | FRAMED]) + cmd(0x7F, 1, 1, 1024, cdw=(0, 31, 0, 0, 0, 0)) +
        h2c(1, 0, 0, connect_data()) + cmd(0x7F, 2, 1, data=connect_data(), cdw=(0, 31, 0, 0, 0, 0)),
    "connect-bad": bytes([PRE_ICREQ | FRAMED]) +
        cmd(0x7F, 1, 1, data=connect_data(5), cdw=(0, 31, 0, 0, 0, 0)) +
        cmd(0x7F, 2, 1, data=connect_data(), cdw=(1, 31, 0, 0, 0, 0)) +
        cmd(0x7F, 3, 1, data=connect_data(1), cdw=(3 << 16, 31, 0, 0, 0, 0)) + cmd(6, 4),
    # transport-level sequences
    "icreq-twice": bytes([PRE_ICREQ | FRAMED]) + item(ICREQ, 0, bytes(120)),
    "host-term": bytes([PRE_ICREQ | FRAMED]) + item(H2CTERM, 0, struct.pack("<HI10x", 1, 0) + bytes(24)),
    "raw-icreq-cmd": bytes([PRE_NONE]) + struct.pack("<BBBBIHBBI", 0, 0, 128, 0, 128, 0, 0, 3, 0) +
        bytes(112) + struct.pack("<BBBBI", 4, 1, 72, 0, 76) + bytes(64) + bytes(4),
    "raw-garbage": bytes([PRE_NONE]) + b"\x42\x00\x18\x00\x18\x00\x00\x00" + bytes(16),
}


def main():
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "nvme_pdu")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    for name, data in SEEDS.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()

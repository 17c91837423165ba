#!/usr/bin/env python3
"""run_probe.py - the reference NVMe/TCP host (the Linux VM peer's nvmetcp_probe.py: ICReq,
Connect, properties, Identify, Set Features, Keep Alive, then an I/O queue with header and
data digests: in-capsule write, R2T write, read checked byte for byte) against ulpo's
target, started by target_main on a free port. Exit 77 when the probe is not here.

The probe was written for the VM's target, whose namespace 2 is the RAM disk; ulpo's target
has namespace 1 only. So it runs twice: unmodified, where everything must pass up to its
first I/O on namespace 2, which must fail with Invalid Namespace (0x400b) and nothing else;
then with Read/Write to namespace 2 sent to namespace 1, where it must pass entirely.
usage: run_probe.py TARGET_MAIN"""
import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import traceback

PROBE = os.environ.get("NVMETCP_PROBE", "/work/shared/peers/linux-vm/nvmetcp_probe.py")
NQN = "nqn.2026-11.io.ulpo:probe"


def load_probe(port):
    os.environ["PORT"], os.environ["NQN"] = str(port), NQN   # read at import
    spec = importlib.util.spec_from_file_location("nvmetcp_probe", PROBE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(mod):
    """The probe's main(): (output, exception or None)."""
    out = io.StringIO()
    err = None
    try:
        with contextlib.redirect_stdout(out):
            mod.main()
    except Exception as e:      # the probe's asserts are its verdict
        err = e
        out.write(traceback.format_exc())
    return out.getvalue(), err


def main():
    if not os.path.exists(PROBE):
        print("SKIP: no probe at " + PROBE)
        return 77
    tgt = subprocess.Popen([sys.argv[1], "--subnqn", NQN], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    failures = []
    try:
        port = int(tgt.stdout.readline().split()[1])
        mod = load_probe(port)

        out, err = run(mod)
        print("---- unmodified probe ----\n" + out)
        if not (isinstance(err, AssertionError) and "'status': 16395" in str(err)):
            failures.append("unmodified probe: expected Invalid Namespace on nsid 2, got %r" % err)
        for want in ("CSTS.RDY=1", "IdCtrl: ", "MN='ulpo NVMe/TCP target'", "IdNs 1: NSZE=131072",
                     "NSQA=4 NCQA=4", "KeepAlive -> status=0", "ICResp(io, HDGST+DDGST)"):
            if want not in out:
                failures.append("unmodified probe: no %r in its output" % want)

        orig = mod.sqe

        def sqe(opcode, nsid=0, *args, **kw):
            if opcode in (0x01, 0x02) and nsid == 2:
                nsid = 1
            return orig(opcode, nsid, *args, **kw)
        mod.sqe = sqe
        out, err = run(mod)
        print("---- probe, I/O on namespace 1 ----\n" + out)
        if err is not None or "PROBE_OK" not in out:
            failures.append("probe failed: %r" % err)
        m = re.search(r"'hdgst_ok': (\d+), 'ddgst_ok': (\d+)", out)
        if not m or int(m.group(1)) < 5 or int(m.group(2)) < 2:
            failures.append("probe checked too few digests: %s" % (m.group(0) if m else None))
        if "nullb0 read status=0" not in out:
            failures.append("the read of namespace 1 did not succeed")
    finally:
        tgt.stdin.close()
        stats = tgt.stdout.read()
        rc = tgt.wait(timeout=30)
    print("---- target ----\n" + stats)
    st = dict((k, int(v)) for k, v in (l.split() for l in stats.splitlines() if l.strip()))
    if rc != 0:
        failures.append("target_main exited %d" % rc)
    for k, want in (("connections", 4), ("term_reqs_sent", 0), ("ddgst_errors", 0),
                    ("hdgst_errors", 0), ("kato_expired", 0)):
        if st.get(k) != want:
            failures.append("target %s = %s, expected %d" % (k, st.get(k), want))
    if st.get("r2ts", 0) < 1 or st.get("write_bytes", 0) != 4096 + 65536:
        failures.append("target wrote %s bytes with %s R2Ts" % (st.get("write_bytes"), st.get("r2ts")))
    for f in failures:
        print("FAIL: " + f)
    print("probe: " + ("ok" if not failures else "%d failures" % len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""test_caps.py - `ulpo caps` against a running process, as a user would drive it.

usage: test_caps.py ULPO CAPS_TARGET

CAPS_TARGET (caps_target.c) makes a TLS pair over loopback and prints "path N", N the
client's ULPO_OFFLOAD_PATH (1: TX offloaded whole, 2: RX, 3: both), then a new pair for
each "again" on its stdin. Between pairs, `ulpo caps --pid P --set/--offload` changes its
page, and the next pair must get what the table says: tls-rx off -> 1; tls-rx on, toe off
-> 0; toe on, offload off -> 0; offload on -> 3. The listing, the JSON, the page itself after
each change, and the errors (unknown capability, unknown device, a capability the device
does not support, a pid without a page, a bad pid) are checked too. One line per check;
exit 1 if any failed.
"""
import json
import os
import selectors
import subprocess
import sys

ULPO, TARGET = sys.argv[1], sys.argv[2]
CAPS = ["toe", "tls-tx", "tls-rx", "ddp-nvme", "ddp-ddgst"]
failed = 0


def check(ok, what, detail=""):
    global failed
    print("%s - %s%s" % ("ok" if ok else "FAIL", what, "" if ok or not detail else ": " + detail))
    sys.stdout.flush()
    if not ok:
        failed += 1
    return ok


def caps(*args, env=None):
    p = subprocess.run([ULPO, "caps", *args], capture_output=True, text=True, timeout=30,
                       env=env)
    return p.returncode, p.stdout, p.stderr


def table_enabled(text, dev):
    """The enabled column of dev's line in the text table, as a set (None: no line)."""
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == dev:
            return set() if f[2] == "-" else set(f[2].split(","))
    return None


def page(pid):
    """The page of pid as `ulpo caps --pid P --json` shows it: (offload, {name: enabled})."""
    rc, out, err = caps("--pid", str(pid), "--json")
    if rc:
        return None, {}
    j = json.loads(out)
    return j["offload"], {d["name"]: set(d["enabled"]) for d in j["devices"]}


class Target:
    def __init__(self):
        self.p = subprocess.Popen([TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.p.stdout, selectors.EVENT_READ)

    def path(self):
        """The next "path N" line: N, or None (with the line) if none came in time."""
        if not self.sel.select(timeout=30):
            return None, "no line in 30 s"
        line = self.p.stdout.readline().strip()
        f = line.split()
        if len(f) < 2 or f[0] != "path":
            return None, "got %r (exit code %s)" % (line, self.p.poll())
        try:
            return int(f[1]), line
        except ValueError:
            return None, line

    def again(self):
        self.p.stdin.write("again\n")
        self.p.stdin.flush()
        return self.path()


def path_check(t, want, what):
    got, line = t.again()
    check(got == want, "next connection after %s: path %d" % (what, want), line)


def main():
    t = Target()
    pid = t.p.pid
    first, line = t.path()
    if not check(first is not None, "caps_target made its first TLS pair", line):
        t.p.kill()
        return 1
    print("info - first connection: %s" % line)

    # The listing.
    rc, out, err = caps("--pid", str(pid))
    check(rc == 0, "ulpo caps --pid P: exit 0", err.strip())
    check(out.startswith("pid %d (caps_target)" % pid), "names the process", out[:80])
    en = table_enabled(out, "sw")
    check(en is not None and {"toe", "tls-tx", "tls-rx"} <= en,
          "sw listed with toe,tls-tx,tls-rx enabled", out)
    check("offload: on (process-wide policy)" in out.splitlines(), "offload on", out)

    rc, out, err = caps("--pid", str(pid), "--json")
    try:
        j = json.loads(out)
        sw = [d for d in j["devices"] if d["name"] == "sw"]
        check(rc == 0 and j["pid"] == pid and j["offload"] is True and len(sw) == 1 and
              set(sw[0]["supported"]) == set(CAPS) and set(sw[0]["enabled"]) == set(CAPS) and
              set(sw[0]["limits"]) == {"max_conns", "sndbuf", "rcvbuf", "mem"} and
              isinstance(sw[0]["conns"], int),
              "--json: pid, offload, sw with its caps, limits, conns", out)
    except (ValueError, KeyError, TypeError) as e:
        check(False, "--json parses with json.loads", "%s: %r" % (e, out))

    rc, out, err = caps("--pid", str(pid), "--device", "sw")
    check(rc == 0 and table_enabled(out, "sw") is not None and
          sum(1 for l in out.splitlines()[2:] if not l.startswith("offload:")) == 1,
          "--device sw: only sw listed", out)

    # Changes, each seen by the page and then by the next connection.
    rc, out, err = caps("--pid", str(pid), "--set", "tls-rx=off")
    check(rc == 0 and table_enabled(out, "sw") == {"toe", "tls-tx", "ddp-nvme", "ddp-ddgst"},
          "--set tls-rx=off: table after the change", out + err)
    off, devs = page(pid)
    check(off is True and "tls-rx" not in devs.get("sw", {"tls-rx"}), "page: tls-rx off", str(devs))
    path_check(t, 1, "tls-rx=off")

    rc, out, err = caps("--pid", str(pid), "--set", "tls-rx=on,toe=off")
    off, devs = page(pid)
    check(rc == 0 and devs.get("sw") == {"tls-tx", "tls-rx", "ddp-nvme", "ddp-ddgst"},
          "--set tls-rx=on,toe=off: page changed", out + err)
    path_check(t, 0, "tls-rx=on,toe=off")

    rc, out, err = caps("--pid", str(pid), "--set", "toe=on", "--offload", "off")
    off, devs = page(pid)
    check(rc == 0 and off is False and devs.get("sw") == set(CAPS) and
          "offload: off (process-wide policy)" in out.splitlines(),
          "--set toe=on --offload off: page changed", out + err)
    path_check(t, 0, "toe=on --offload off")

    rc, out, err = caps("--pid", str(pid), "--offload", "on")
    off, devs = page(pid)
    check(rc == 0 and off is True and devs.get("sw") == set(CAPS), "--offload on: page changed",
          out + err)
    path_check(t, 3, "--offload on")

    # Errors; none may change the page.
    before = page(pid)
    rc, out, err = caps("--pid", str(pid), "--set", "bogus=on")
    check(rc == 2 and "unknown capability 'bogus'" in err and all(c in err for c in CAPS),
          "unknown capability: exit 2, valid names listed", "%d %s" % (rc, err))
    rc, out, err = caps("--pid", str(pid), "--device", "nosuch", "--set", "toe=off")
    check(rc == 1 and "no device nosuch (devices: sw" in err,
          "unknown device: exit 1, devices listed", "%d %s" % (rc, err))
    check(page(pid) == before, "errors left the page unchanged", str(page(pid)))

    # The fault device's table entry has only its TLS half (its DDP half is added when a
    # DDP queue first asks), so it does not support ddp-nvme here.
    env = dict(os.environ, ULPO_FAULT="record=1000000")
    rc, out, err = caps("--device", "fault", "--set", "ddp-nvme=on", env=env)
    check(rc == 1 and "device fault does not support ddp-nvme" in err,
          "enabling an unsupported cap: exit 1", "%d %s%s" % (rc, out, err))
    rc, out, err = caps("--set", "tls-rx=off", env=env)
    check(rc == 0 and table_enabled(out, "fault") == {"toe", "tls-tx"} and
          table_enabled(out, "sw") == {"toe", "tls-tx", "ddp-nvme", "ddp-ddgst"},
          "without --pid or --device: every device of this process", out + err)

    rc, out, err = caps("--pid", str(os.getpid()))
    check(rc == 1 and "has no ulpo page" in err and "not used ulpo TLS yet" in err,
          "a pid with no page: exit 1 and why", "%d %s" % (rc, err))
    gone = subprocess.Popen(["true"])
    gone.wait()
    rc, out, err = caps("--pid", str(gone.pid))
    check(rc == 1 and "no process with pid %d" % gone.pid in err, "a pid not running: exit 1",
          "%d %s" % (rc, err))
    rc, out, err = caps("--pid", "12abc")
    check(rc == 1 and "not a process id" in err, "a bad --pid: exit 1", "%d %s" % (rc, err))

    t.p.stdin.close()
    try:
        rc = t.p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        t.p.kill()
        rc = t.p.wait()
    check(rc == 0, "caps_target: every byte checked, exit 0", "exit %d" % rc)
    rc, out, err = caps("--pid", str(pid))
    check(rc == 1, "after it exited: exit 1", "%d %s" % (rc, err))
    print("%s: %d failed" % ("FAIL" if failed else "PASS", failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

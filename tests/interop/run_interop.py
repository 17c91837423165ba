#!/usr/bin/env python3
"""run_interop.py - one cell of the interop matrix: a real peer (gnutls-serv --echo,
gnutls-cli, openssl s_server or s_client) against interop_peer, which handshakes with
GnuTLS and then lets ulpo carry N MiB each way. Exit 0 pass, 1 fail, 77 peer missing.

Data paths (A and B are seeded patterns; every byte is checked where it arrives):
  gnutls-serv:      ulpo client --A--> gnutls-serv --echo --A--> ulpo client
  openssl-s_server: ulpo client --A--> s_server stdout -> check A
                    gen B -> s_server stdin --B--> ulpo client
  gnutls-cli / openssl-s_client (ulpo is the server):
                    gen A -> client stdin --A--> ulpo server --B--> client stdout -> check B
gnutls-cli prints what it receives one byte per write(2) (about 0.4 MB/s), so ulpo sends
it --mib-to-gnutls-cli MiB (default 2); every other stream is --mib (default 64).
"""
import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib

SKIP = 77

GNUTLS_CIPHER = {
    "aes-128-gcm": "AES-128-GCM",
    "aes-256-gcm": "AES-256-GCM",
    "chacha20-poly1305": "CHACHA20-POLY1305",
    "aes-128-ccm": "AES-128-CCM",
}
# The certificate is ECDSA, so TLS 1.2 suites are the ECDHE-ECDSA ones.
OPENSSL_12 = {
    "aes-128-gcm": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "aes-256-gcm": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "chacha20-poly1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "aes-128-ccm": "ECDHE-ECDSA-AES128-CCM",
}
OPENSSL_13 = {
    "aes-128-gcm": "TLS_AES_128_GCM_SHA256",
    "aes-256-gcm": "TLS_AES_256_GCM_SHA384",
    "chacha20-poly1305": "TLS_CHACHA20_POLY1305_SHA256",
    "aes-128-ccm": "TLS_AES_128_CCM_SHA256",
}
PEER_BINARY = {
    "gnutls-serv": "gnutls-serv",
    "gnutls-cli": "gnutls-cli",
    "openssl-s_server": "openssl",
    "openssl-s_client": "openssl",
}


def gnutls_priority(tls, cipher):
    return "NORMAL:-VERS-ALL:+VERS-TLS%s:-CIPHER-ALL:+%s" % (tls, GNUTLS_CIPHER[cipher])


def openssl_version_args(tls, cipher):
    if tls == "1.3":
        return ["-tls1_3", "-ciphersuites", OPENSSL_13[cipher]]
    return ["-tls1_2", "-cipher", OPENSSL_12[cipher]]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """Is anything listening on port? Read /proc so as not to use up a one-shot accept."""
    want = ":%04X" % port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "0A":
                        return True
        except OSError:
            pass
    return False


class Tail(threading.Thread):
    """Keep the last bytes a peer writes to stderr. gnutls-serv --echo prints every line
    it echoes there, so a log file would grow as large as the transfer."""

    def __init__(self, name, pipe, keep=4096):
        super().__init__(daemon=True)
        self.name, self.pipe, self.keep, self.data = name, pipe, keep, bytearray()
        self.start()

    def run(self):
        for chunk in iter(lambda: self.pipe.read1(65536), b""):
            self.data += chunk
            del self.data[:-self.keep]


class Cell:
    def __init__(self, args):
        self.a = args
        self.procs = []
        self.tails = []
        self.tmp = tempfile.mkdtemp(prefix="ulpo-interop-")
        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")
        self.mib = str(args.mib)
        name = "%s %s %s" % (args.peer, args.tls, args.cipher)
        seed = args.seed if args.seed is not None else zlib.crc32(name.encode())
        self.seed_a, self.seed_b = str(seed * 2 + 1), str(seed * 2 + 2)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def spawn_peer(self, argv, **kw):
        """A peer program, its stderr kept for the report."""
        p = self.spawn(argv, stderr=subprocess.PIPE, **kw)
        self.tails.append(Tail(argv[0] + " " + argv[1] if argv[0] == "openssl" else argv[0],
                               p.stderr))
        return p

    def peer_bin(self, mode, *extra):
        return [self.a.bin, mode, "--mib", self.mib] + list(extra)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dump_logs(self):
        for t in self.tails:
            t.join(timeout=2)
            if t.data:
                print("---- stderr of %s (last %d bytes) ----\n%s"
                      % (t.name, len(t.data), t.data.decode(errors="replace")))
        for name in sorted(os.listdir(self.tmp)):
            if name.endswith(".log"):
                with open(os.path.join(self.tmp, name), "rb") as f:
                    data = f.read()[-4096:]
                print("---- %s ----\n%s" % (name, data.decode(errors="replace")))

    def wait(self, p, timeout, what):
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print("FAIL: %s did not finish within %d s" % (what, timeout))
            p.kill()
            p.wait()
            return None

    # ---- ulpo is the client ----

    def start_server(self, make):
        """Start a listening peer on a free port; a port taken meanwhile costs a retry."""
        for _ in range(5):
            port = free_port()
            p = make(port)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and p.poll() is None:
                if listening(port):
                    return port, p
                time.sleep(0.02)
            if p.poll() is None:
                p.kill()
            p.wait()
        raise RuntimeError("the peer never listened")

    def no_pad(self):
        # TLS 1.3 with an OpenSSL peer (which does not pad) also runs ulpo's zero-copy
        # receive path; the GnuTLS cells keep the default path.
        return ["--rx-no-pad"] if self.a.tls == "1.3" and "openssl" in self.a.peer else []

    def ulpo_client(self, port, send_seed, recv_seed, text):
        argv = self.peer_bin("client", "--port", str(port), "--tls", self.a.tls,
                             "--cipher", self.a.cipher, "--send-seed", send_seed,
                             "--recv-seed", recv_seed) + (["--text"] if text else [])
        argv += self.no_pad()
        p = self.spawn(argv)
        return self.wait(p, self.a.timeout, "interop_peer client")

    def run_gnutls_serv(self):
        def make(port):
            return self.spawn_peer(
                ["gnutls-serv", "--echo", "--crlf", "--quiet", "--port", str(port),
                 "--x509certfile", self.cert, "--x509keyfile", self.key,
                 "--priority", gnutls_priority(self.a.tls, self.a.cipher)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        port, _ = self.start_server(make)
        # An echo server: what ulpo sends (A, as text lines) is what it must get back.
        return self.ulpo_client(port, self.seed_a, self.seed_a, True) == 0

    def run_openssl_s_server(self):
        gen = check = None

        def make(port):
            nonlocal gen, check
            gen = self.spawn(self.peer_bin("gen", "--seed", self.seed_b, "--hold"),
                             stdout=subprocess.PIPE)
            srv = self.spawn_peer(["openssl", "s_server", "-quiet", "-naccept", "1",
                                   "-accept", "127.0.0.1:%d" % port, "-cert", self.cert,
                                   "-key", self.key]
                                  + openssl_version_args(self.a.tls, self.a.cipher),
                                  stdin=gen.stdout, stdout=subprocess.PIPE)
            check = self.spawn(self.peer_bin("check", "--seed", self.seed_a), stdin=srv.stdout)
            gen.stdout.close()
            srv.stdout.close()
            return srv
        port, srv = self.start_server(make)
        ok = self.ulpo_client(port, self.seed_a, self.seed_b, False) == 0
        # s_server ends with its one connection; its stdout then ends for the checker.
        ok = self.wait(srv, 30, "openssl s_server") is not None and ok
        ok = self.wait(check, 30, "check of s_server's output") == 0 and ok
        return ok

    # ---- ulpo is the server ----

    def ulpo_server(self, text, send_mib):
        argv = self.peer_bin("server", "--tls", self.a.tls, "--cipher", self.a.cipher,
                             "--send-seed", self.seed_b, "--recv-seed", self.seed_a,
                             "--send-mib", str(send_mib)) + self.no_pad()
        p = self.spawn(argv + (["--text"] if text else []), stdout=subprocess.PIPE)
        ready, _, _ = select.select([p.stdout], [], [], 10)
        line = p.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError("interop_peer server did not report its port: %r" % line)
        return p, int(line.split()[1])

    def finish_server(self, srv, client, check, what):
        rc = self.wait(srv, self.a.timeout, "interop_peer server")
        sys.stdout.write(srv.stdout.read().decode(errors="replace"))
        ok = rc == 0
        ok = self.wait(client, 30, what) is not None and ok
        ok = self.wait(check, 30, "check of %s's output" % what) == 0 and ok
        return ok

    def run_client_peer(self, argv, text, send_mib):
        srv, port = self.ulpo_server(text, send_mib)
        t = ["--text"] if text else []
        gen = self.spawn(self.peer_bin("gen", "--seed", self.seed_a, "--hold", *t),
                         stdout=subprocess.PIPE)
        cli = self.spawn_peer([a.replace("{port}", str(port)) for a in argv], stdin=gen.stdout,
                              stdout=subprocess.PIPE)
        check = self.spawn([self.a.bin, "check", "--seed", self.seed_b, "--mib", str(send_mib)]
                           + t, stdin=cli.stdout)
        gen.stdout.close()
        cli.stdout.close()
        return self.finish_server(srv, cli, check, argv[0])

    def run_gnutls_cli(self):
        # gnutls-cli quits on EOF of stdin; gen --hold keeps it open until the end.
        return self.run_client_peer(
            ["gnutls-cli", "--insecure", "--port", "{port}",
             "--priority", gnutls_priority(self.a.tls, self.a.cipher),
             "--logfile", os.path.join(self.tmp, "gnutls-cli-info.log"), "127.0.0.1"],
            True, self.a.mib_to_gnutls_cli)

    def run_openssl_s_client(self):
        return self.run_client_peer(
            ["openssl", "s_client", "-quiet", "-nocommands", "-connect", "127.0.0.1:{port}"]
            + openssl_version_args(self.a.tls, self.a.cipher), False, self.a.mib)

    def run(self):
        subprocess.run([self.a.bin, "mkcert", self.cert, self.key], check=True)
        return {
            "gnutls-serv": self.run_gnutls_serv,
            "gnutls-cli": self.run_gnutls_cli,
            "openssl-s_server": self.run_openssl_s_server,
            "openssl-s_client": self.run_openssl_s_client,
        }[self.a.peer]()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="path to interop_peer")
    ap.add_argument("--peer", required=True, choices=sorted(PEER_BINARY))
    ap.add_argument("--tls", required=True, choices=["1.2", "1.3"])
    ap.add_argument("--cipher", required=True, choices=sorted(GNUTLS_CIPHER))
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--mib-to-gnutls-cli", type=int, default=2,
                    help="gnutls-cli writes its output one byte per write(2): "
                         "0.3-0.5 MB/s, so ulpo sends it less")
    ap.add_argument("--seed", type=int, help="default: derived from the cell's name")
    ap.add_argument("--timeout", type=int, default=150, help="seconds for ulpo's side")
    a = ap.parse_args()

    prog = PEER_BINARY[a.peer]
    if not shutil.which(prog):
        pkg = "gnutls-bin" if "gnutls" in prog else "openssl"
        print("SKIP: %s not installed (Debian package %s)" % (prog, pkg))
        return SKIP
    sys.stdout.reconfigure(line_buffering=True)
    to_peer = a.mib_to_gnutls_cli if a.peer == "gnutls-cli" else a.mib
    print("cell: %s, TLS %s, %s: %d MiB peer -> ulpo, %d MiB ulpo -> peer"
          % (a.peer, a.tls, a.cipher, a.mib, to_peer))
    cell = Cell(a)
    # meson's timeout sends SIGTERM: leave no peer server running behind us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAIL: terminated"))
    t0 = time.monotonic()
    ok = False
    try:
        ok = cell.run()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print("FAIL: %s" % e)
    finally:
        if not ok:
            cell.dump_logs()
        cell.cleanup()
    print("%s in %.1f s" % ("PASS" if ok else "FAIL", time.monotonic() - t0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""run_preload.py - an unmodified kTLS server under `ulpo run`, against real clients.

--server gnutls-serv: `gnutls-serv --echo --crlf` from a GnuTLS built with kTLS
(build_gnutls_ktls.sh; Debian's has none), kTLS on through GNUTLS_SYSTEM_PRIORITY_FILE
([global] ktls = true), AES-GCM only (GnuTLS 3.7.9 installs kTLS keys for AES-GCM; for
TLS 1.2 ChaCha20-Poly1305 it installs a wrong IV, which the real kernel rejects too). The
client sends text lines (base64; what an echo server echoes) and must get every byte back,
both ways at once; the server's UlpoRxBytes and UlpoTxBytes must both cover them.
  curl: an HTTP/1.1 PUT of the text (-T, no Expect: 100-continue) with --http0.9, so that
  curl takes the echo, which has no status line, as the response: its output is curl's
  request header and then the body, which must be the text, byte for byte.
  gnutls-cli, s_client: the text on stdin, the echo on stdout.
gnutls-serv closes every connection 30 s after accepting it, busy or not (src/serv.c:
`now - j->start > 30`, with start set at accept only), and gnutls-cli prints what it
receives with one write(2) per byte (setbuf(stdout, NULL); fputc), about 0.6 MB/s here: so
one gnutls-cli connection carries at most about 18 MB. --conns splits the text into that
many connections (whole lines each, one server, each checked byte for byte), --parallel of
them at once; the counters are the server process's, over all of them.

--server openssl-s_server (default):

The server is `openssl s_server` with OpenSSL's kTLS switched on by configuration
(Options = KTLS, see docs/preload.md): it calls setsockopt(TCP_ULP, "tls"), SOL_TLS
TLS_TX/TLS_RX and then plain send/recv/sendmsg/recvmsg/select on the socket, which the
shim hands to ulpo (this kernel has no kTLS). The client is gnutls-cli, openssl s_client
or curl, nobody's code but theirs. Both directions are checked byte for byte:

  down: the file -> s_server -WWW (an HTTP GET) -> ulpo TX -> client -> compare
  up:   the file -> client (stdin, or an HTTP POST body for curl) -> ulpo RX -> s_server
        stdout -> compare

While the server still runs, `ulpo stats --pid` must show that its records went through
ulpo: UlpoTxBytes >= the file after "down", and for TLS 1.2 UlpoRxBytes >= the file
after "up". (OpenSSL 3.0 installs TLS_RX only for TLS 1.2; for 1.3 it decrypts itself,
so ulpo must then have received nothing.) A run in which the program kept TLS in its
own library fails here (--no-ktls runs the server so, as a check of the checks: it must
fail). Exit 0 pass, 1 fail, 77 a client is missing.
"""
import argparse
import fcntl
import filecmp
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
OPENSSL_CNF = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Options = KTLS
"""
NO_KTLS_CNF = "# --no-ktls: OpenSSL's defaults, TLS in the library\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, deadline=10):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited early (%d)" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen on %d" % port)


def wait_size(path, n, timeout, what):
    """Wait until the file has n bytes, printing progress; True when it has."""
    end, last, shown = time.time() + timeout, -1, time.time()
    while time.time() < end:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if size >= n:
            return True
        if time.time() - shown > 10 and size != last:
            print("  %s: %.1f of %.1f MiB" % (what, size / 2**20, n / 2**20), flush=True)
            shown, last = time.time(), size
        time.sleep(0.05)
    print("  %s: timed out at %d of %d bytes" % (what, os.path.getsize(path), n))
    return False


def tail_digest(path, n):
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - n))
        return hashlib.sha256(f.read()).hexdigest()


class Server:
    """ulpo run -- openssl s_server, stdin a pipe we feed, stdout to a file."""

    def __init__(self, a, tmp, www):
        self.port = free_port()
        self.out = os.path.join(tmp, "server.out")
        tls = ["-tls1_2"] if a.tls == "1.2" else ["-tls1_3"]
        cmd = [a.ulpo, "run", "--", "openssl", "s_server", "-accept", str(self.port),
               "-cert", a.cert, "-key", a.key, "-quiet"] + tls + (["-WWW"] if www else [])
        env = dict(os.environ, OPENSSL_CONF=os.path.join(tmp, "ktls.cnf"))
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.PIPE,
                                     stdout=open(self.out, "wb"),
                                     stderr=open(self.out + ".err", "wb"))
        wait_port(self.port, self.proc)

    def stats(self, ulpo):
        r = subprocess.run([ulpo, "stats", "--pid", str(self.proc.pid), "--json"],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("ulpo stats --pid %d: %s%s" % (self.proc.pid, r.stdout, r.stderr))
        return json.loads(r.stdout)[0]["counters"]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def client_cmd(a, port, direction, log="client.log"):
    if a.client == "gnutls-cli":
        prio = "NORMAL:-VERS-ALL:+VERS-TLS%s" % a.tls
        return ["gnutls-cli", "--insecure", "--logfile", log, "--priority", prio,
                "-p", str(port), "127.0.0.1"]
    if a.client == "openssl-s_client":
        return ["openssl", "s_client", "-quiet", "-tls" + a.tls.replace(".", "_"),
                "-connect", "127.0.0.1:%d" % port]
    ver = ["--tlsv" + a.tls, "--tls-max", a.tls]
    if direction == "down":
        return ["curl", "-sSk"] + ver + ["https://127.0.0.1:%d/data.bin" % port]
    return ["curl", "-sSk"] + ver + ["-H", "Expect:", "--data-binary", "@data.bin",
                                     "https://127.0.0.1:%d/" % port]


def run_down(a, tmp, data, n, digest):
    # Every client fetches the file from s_server -WWW with an HTTP GET: s_server's
    # interactive mode stops sending after one TLS 1.3 record with kTLS TX on (OpenSSL
    # 3.0 then blocks in SSL_read instead of select()ing: its SSL_has_pending() after
    # the kTLS switch), with or without ulpo under it.
    srv = Server(a, tmp, www=True)
    got = os.path.join(tmp, "client.out")
    try:
        cli = subprocess.Popen(client_cmd(a, srv.port, "down"), cwd=tmp,
                               stdin=subprocess.PIPE, stdout=open(got, "wb"),
                               stderr=open(got + ".err", "wb"))
        if a.client != "curl":
            # The request, and the pipe stays open: EOF would end some clients' session.
            cli.stdin.write(b"GET /data.bin HTTP/1.0\r\n\r\n")
            cli.stdin.flush()
        ok = wait_size(got, n, a.timeout, "down")
        counters = srv.stats(a.ulpo) if srv.proc.poll() is None else None
        cli.kill()
        cli.wait()
        if not ok:
            return "down: client got %d of %d bytes" % (os.path.getsize(got), n)
        if tail_digest(got, n) != digest:
            return "down: the client's bytes differ from the file"
        if counters is None:
            return "down: the server exited before its counters were read"
        if counters["UlpoTxBytes"] < n or counters["TlsTxSw"] < 1:
            return "down: records did not go through ulpo: %s" % counters
        print("  down %d MiB ok: UlpoTxRecords %d, UlpoTxBytes %d" %
              (n >> 20, counters["UlpoTxRecords"], counters["UlpoTxBytes"]))
        return None
    finally:
        srv.stop()


def run_up(a, tmp, data, n, digest):
    srv = Server(a, tmp, www=False)
    got = os.path.join(tmp, "client.out")
    try:
        stdin = subprocess.DEVNULL if a.client == "curl" else open(data, "rb")
        cli = subprocess.Popen(client_cmd(a, srv.port, "up"), cwd=tmp, stdin=stdin,
                               stdout=open(got, "wb"), stderr=open(got + ".err", "wb"))
        ok = wait_size(srv.out, n, a.timeout, "up")
        counters = srv.stats(a.ulpo) if srv.proc.poll() is None else None
        if a.client == "curl":
            # Answer the POST so that curl ends as a client should.
            srv.proc.stdin.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                 b"Connection: close\r\n\r\nok")
            srv.proc.stdin.flush()
            try:
                cli.wait(timeout=10)
            except subprocess.TimeoutExpired:
                return "up: curl did not finish after the response"
            if cli.returncode:
                return "up: curl exited %d" % cli.returncode
        cli.kill()
        cli.wait()
        if not ok:
            return "up: server got %d of %d bytes" % (os.path.getsize(srv.out), n)
        if tail_digest(srv.out, n) != digest:
            return "up: the server's bytes differ from the file"
        if counters is None:
            return "up: the server exited before its counters were read"
        if a.tls == "1.2" and (counters["UlpoRxBytes"] < n or counters["TlsRxSw"] < 1):
            return "up: records did not go through ulpo: %s" % counters
        if a.tls == "1.3" and counters["TlsRxSw"] != 0:
            return "up: OpenSSL 3.0 has no TLS 1.3 kTLS RX, yet TLS_RX was installed"
        print("  up %d MiB ok: UlpoRxRecords %d, UlpoRxBytes %d%s" %
              (n >> 20, counters["UlpoRxRecords"], counters["UlpoRxBytes"],
               "" if a.tls == "1.2" else " (TLS 1.3 RX stays in OpenSSL 3.0)"))
        return None
    finally:
        srv.stop()


def gnutls_ktls():
    """The kTLS GnuTLS build's paths (the script builds it once, then answers at once)."""
    here = os.path.dirname(os.path.abspath(__file__))
    # Cells run in parallel: one builds, the others wait for it.
    with open(os.path.join(tempfile.gettempdir(), "ulpo-gnutls-ktls.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = subprocess.run(["bash", os.path.join(here, "build_gnutls_ktls.sh")],
                           capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("build_gnutls_ktls.sh failed:\n" + r.stderr[-2000:])
    return dict(l.split("=", 1) for l in r.stdout.split() if "=" in l)


class GnutlsServer(Server):
    """ulpo run -- gnutls-serv (kTLS build) --echo --crlf."""

    def __init__(self, a, tmp):
        g = gnutls_ktls()
        self.port = free_port()
        self.out = os.path.join(tmp, "server.out")
        prio = "NORMAL:-VERS-ALL:+VERS-TLS%s:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM" % a.tls
        # --crlf: echo CR LF as it came (by default a read ending in CR LF is echoed with LF).
        cmd = [a.ulpo, "run", "--", g["GNUTLS_KTLS_SERV"], "--echo", "--crlf",
               "--quiet", "-p", str(self.port), "--x509certfile", a.cert,
               "--x509keyfile", a.key, "--priority", prio]
        cfg = g["GNUTLS_KTLS_CFG"]
        if a.no_ktls:
            cfg = os.path.join(tmp, "no-ktls.cfg")
            with open(cfg, "w") as f:
                f.write("[global]\nktls = false\n")
        env = dict(os.environ, GNUTLS_SYSTEM_PRIORITY_FILE=cfg,
                   LD_LIBRARY_PATH=g["GNUTLS_KTLS_LIBDIR"])
        # Its stderr gets a "received cmd: ..." line per read: everything echoed, again.
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                     stdout=open(self.out, "wb"),
                                     stderr=open(self.out + ".err", "wb"))
        wait_port(self.port, self.proc)


def feed(pipe, path):
    """Write the file into the pipe and keep it open: EOF would end the client's session."""
    try:
        with open(path, "rb") as f:
            shutil.copyfileobj(f, pipe, 1 << 20)
        pipe.flush()
    except (BrokenPipeError, ValueError):
        pass


def split_lines(path, parts, tmp):
    """The text cut into `parts` files of whole lines, of about equal sizes."""
    if parts == 1:
        return [path]
    with open(path, "rb") as f:
        data = f.read()
    names, at = [], 0
    for i in range(parts):
        end = len(data) if i == parts - 1 else data.rindex(b"\n", at, len(data) * (i + 1) // parts) + 1
        names.append(os.path.join(tmp, "part%d.txt" % i))
        with open(names[-1], "wb") as f:
            f.write(data[at:end])
        at = end
    return names


class EchoClient:
    """One client connection: the part on its stdin, the echo into client<i>.out."""

    def __init__(self, a, tmp, port, i, part):
        self.i, self.part, self.want = i, part, os.path.getsize(part)
        self.got = os.path.join(tmp, "client%d.out" % i)
        self.proc = subprocess.Popen(client_cmd(a, port, "echo", "client%d.log" % i), cwd=tmp,
                                     stdin=subprocess.PIPE, stdout=open(self.got, "wb"),
                                     stderr=open(self.got + ".err", "wb"))
        threading.Thread(target=feed, args=(self.proc.stdin, part), daemon=True).start()
        self.t0 = time.time()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass


def run_echo(a, tmp, text, n):
    """Both ways at once through gnutls-serv --echo, over a.conns connections."""
    srv = GnutlsServer(a, tmp)
    parts = split_lines(text, a.conns, tmp)
    pending, running, done, slowest = list(enumerate(parts)), [], 0, 0.0
    deadline, shown = time.time() + a.timeout, time.time()
    try:
        while pending or running:
            while pending and len(running) < a.parallel:
                running.append(EchoClient(a, tmp, srv.port, *pending.pop(0)))
            for c in list(running):
                exited = c.proc.poll() is not None
                size = os.path.getsize(c.got)
                if size >= c.want:
                    c.stop()
                    running.remove(c)
                    if size != c.want or not filecmp.cmp(c.got, c.part, shallow=False):
                        return "echo: connection %d: the bytes that came back differ from " \
                               "those sent (%d bytes back, %d sent)" % (c.i, size, c.want)
                    done += c.want
                    slowest = max(slowest, time.time() - c.t0)
                    os.unlink(c.got)
                elif exited:
                    return "echo: connection %d: the client exited (%d) after %.1f s with " \
                           "%d of %d bytes back" % (c.i, c.proc.returncode,
                                                    time.time() - c.t0, size, c.want)
            if time.time() > deadline:
                return "echo: timed out with %d of %d bytes back" % (
                    done + sum(os.path.getsize(c.got) for c in running), n)
            if time.time() - shown > 10:
                print("  echo: %.1f of %.1f MiB back" % (
                    (done + sum(os.path.getsize(c.got) for c in running)) / 2**20, n / 2**20),
                    flush=True)
                shown = time.time()
            time.sleep(0.05)
        counters = srv.stats(a.ulpo) if srv.proc.poll() is None else None
        if counters is None:
            return "echo: the server exited before its counters were read"
        if (counters["UlpoTxBytes"] < n or counters["UlpoRxBytes"] < n or
                counters["TlsTxSw"] < a.conns or counters["TlsRxSw"] < a.conns):
            return "echo: records did not go through ulpo: %s" % counters
        print("  echo %d MiB each way ok over %d connection(s) (slowest %.1f s): "
              "UlpoRxBytes %d, UlpoTxBytes %d, records %d/%d" %
              (n >> 20, a.conns, slowest, counters["UlpoRxBytes"], counters["UlpoTxBytes"],
               counters["UlpoRxRecords"], counters["UlpoTxRecords"]))
        return None
    finally:
        for c in running:
            c.stop()
        srv.stop()


def run_curl_echo(a, tmp, text, n):
    """curl PUTs the text; gnutls-serv --echo sends the request back, which curl --http0.9
    takes as a response without a status line and writes out whole: header, then body."""
    srv = GnutlsServer(a, tmp)
    got = os.path.join(tmp, "client.out")
    # -N: write each piece as it comes (the test waits for the bytes, not for curl: an
    # HTTP/0.9 response ends when the server closes, here 30 s after the accept).
    cmd = ["curl", "-sSkN", "--http0.9", "--tlsv" + a.tls, "--tls-max", a.tls,
           "-H", "Expect:", "-T", os.path.basename(text), "-o", got,
           "https://127.0.0.1:%d/" % srv.port]
    cli = subprocess.Popen(cmd, cwd=tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=open(got + ".err", "wb"))
    try:
        ok = wait_size(got, n, a.timeout, "echo")
        with open(got, "rb") as f:
            head = f.read(4096)
        hlen = head.find(b"\r\n\r\n") + 4
        if ok and hlen >= 4:
            ok = wait_size(got, hlen + n, 10, "echo")
        counters = srv.stats(a.ulpo) if srv.proc.poll() is None else None
        rc = cli.poll()
        size = os.path.getsize(got)
        if not ok:
            return "echo: curl (%s) got %d bytes back of its request (%d of body)" % (
                "running" if rc is None else "exited %d" % rc, size, n)
        request = "PUT /%s HTTP/1.1\r\n" % os.path.basename(text)
        if (not head.startswith(request.encode()) or
                b"\r\nContent-Length: %d\r\n" % n not in head[:hlen]):
            return "echo: the echoed request header is not curl's PUT: %r" % head[:hlen]
        if size != hlen + n or tail_digest(got, n) != tail_digest(text, n):
            return "echo: the body that came back (%d bytes) differs from the one sent" % (
                size - hlen)
        if counters is None:
            return "echo: the server exited before its counters were read"
        if (counters["UlpoTxBytes"] < hlen + n or counters["UlpoRxBytes"] < hlen + n or
                counters["TlsTxSw"] < 1 or counters["TlsRxSw"] < 1):
            return "echo: records did not go through ulpo: %s" % counters
        print("  echo %d MiB each way ok (request header %d bytes): UlpoRxBytes %d, "
              "UlpoTxBytes %d, records %d/%d" %
              (n >> 20, hlen, counters["UlpoRxBytes"], counters["UlpoTxBytes"],
               counters["UlpoRxRecords"], counters["UlpoTxRecords"]))
        return None
    finally:
        cli.kill()
        cli.wait()
        srv.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ulpo", required=True, help="the ulpo command")
    p.add_argument("--server", default="openssl-s_server", choices=["openssl-s_server", "gnutls-serv"])
    p.add_argument("--client", required=True, choices=["gnutls-cli", "openssl-s_client", "curl"])
    p.add_argument("--tls", required=True, choices=["1.2", "1.3"])
    p.add_argument("--mib", type=int, default=100)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--conns", type=int, default=1,
                   help="gnutls-serv: connections the text is split into")
    p.add_argument("--parallel", type=int, default=1,
                   help="gnutls-serv: connections at once")
    p.add_argument("--no-ktls", action="store_true",
                   help="check of the checks: the server keeps TLS in its library (must fail)")
    a = p.parse_args()
    a.ulpo = os.path.abspath(a.ulpo)
    binary = {"gnutls-cli": "gnutls-cli", "openssl-s_client": "openssl", "curl": "curl"}
    for b in (binary[a.client], "openssl"):
        if not shutil.which(b):
            print("%s not installed" % b)
            return SKIP
    n = a.mib << 20
    with tempfile.TemporaryDirectory(prefix="ulpo-preload-") as tmp:
        a.key, a.cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", a.key, "-out", a.cert,
                        "-days", "2", "-subj", "/CN=localhost"], check=True,
                       capture_output=True)
        with open(os.path.join(tmp, "ktls.cnf"), "w") as f:
            f.write(NO_KTLS_CNF if a.no_ktls else OPENSSL_CNF)
        data = os.path.join(tmp, "data.bin")
        with open(data, "wb") as f:
            for _ in range(a.mib):
                f.write(os.urandom(1 << 20))
        if a.server == "gnutls-serv":
            # Text lines: what an echo server echoes (base64 of the random bytes).
            text = os.path.join(tmp, "data.txt")
            # Whole lines: line-based peers (gnutls-cli) hold a last partial line back.
            subprocess.run("(base64 -w 76 %s | head -c %d; echo) > %s" % (data, n - 1, text),
                           shell=True, check=True)
            run = run_curl_echo if a.client == "curl" else run_echo
            steps = [lambda: run(a, tmp, text, n)]
        else:
            digest = tail_digest(data, n)
            steps = [lambda: run_down(a, tmp, data, n, digest),
                     lambda: run_up(a, tmp, data, n, digest)]
        print("%s -> %s under ulpo run, TLS %s, %d MiB each way%s%s" %
              (a.client, a.server, a.tls, a.mib,
               " over %d connections, %d at once" % (a.conns, a.parallel) if a.conns > 1 else "",
               " (--no-ktls: must fail)" if a.no_ktls else ""), flush=True)
        for step in steps:
            err = step()
            if err:
                print("FAIL:", err)
                for path in sorted(glob.glob(os.path.join(tmp, "client*.err")) +
                                   glob.glob(os.path.join(tmp, "client*.log")))[-6:]:
                    sys.stdout.write("--- %s:\n%s\n" % (os.path.basename(path),
                                     open(path, errors="replace").read()[-2000:]))
                return 1
    print("pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Faults on the client's side and of the process: a client killed (SIGKILL) in the middle
of a stream or a tunnel makes the proxy close the daemon's side at once (a fake daemon sees
EOF within 1 s; with the real dockerd the proxy's fd count is back within 1 s); out of file
descriptors (prlimit --nofile=40:40, 100 clients at once) it refuses or closes what it
cannot serve, never crashes or spins, and serves again once the clients are gone; SIGTERM
with streams and tunnels open exits 0 within SOCKET_PROXY_DRAIN_TIMEOUT=1s and a margin."""

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bplib  # noqa: E402
import dsp  # noqa: E402

PING = b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"


class HoldingUpstream:
    """A fake daemon that answers a stream (GET: chunked head and one chunk) or a tunnel
    (an Upgrade request: 101 and a few bytes), then holds the connection and notes when the
    proxy closes it."""

    def __init__(self, tap, path):
        self.path = path
        self.conns = []  # dicts: head, eof (monotonic time the proxy closed, or None)
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(64)
        tap.at_exit(self.srv.close)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                c.close()
                return
            buf += d
        rec = {"head": buf, "eof": None}
        with self.lock:
            self.conns.append(rec)
        if b"upgrade: tcp" in buf.lower():
            c.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                      b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nhi\n")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nhi\n\r\n")
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        rec["eof"] = time.monotonic()
        c.close()

    def last(self):
        with self.lock:
            return self.conns[-1] if self.conns else None


def settle_fds(pid, want, timeout):
    """Seconds until the process holds `want` fds, or None."""
    return bplib.wait_for(lambda: bplib.fd_count(pid) == want, timeout, step=0.01)


def body(tap):
    daemon = bplib.DebugDaemon(tap)
    d = dsp.tmpdir(tap)

    # ---- a client killed in the middle of a stream or a tunnel: fake daemon
    hold = HoldingUpstream(tap, os.path.join(d, "hold.sock"))
    proc, sock, log = bplib.start_proxy(tap, d, "p-hold", {
        "SOCKET_PATH": hold.path, "CONTAINERS": "1", "POST": "1", "ALLOW_ATTACH": "1"})
    for mode, target, word in (("stream", "/events", "streaming"),
                               ("tunnel", "/containers/x/attach?stream=1&stdin=1&stdout=1", "tunnel")):
        client, line = bplib.spawn_peer(tap, ["client", mode, sock, target], word)
        tap.ok(line == word, "%s: the client is in the middle of it through the proxy" % mode, line)
        rec = hold.last()
        tap.ok(rec is not None and rec["eof"] is None, "%s: the fake daemon holds its side open" % mode)
        t = time.monotonic()
        client.kill()
        client.wait()
        bplib.wait_for(lambda: rec["eof"] is not None, 3)
        took = rec["eof"] - t if rec["eof"] is not None else None
        tap.ok(took is not None and took < 1.0, "%s: client killed with SIGKILL, the fake daemon sees EOF within "
               "1 s (after %s s)" % (mode, None if took is None else "%.3f" % took))
    tap.ok(proc.poll() is None, "the proxy still runs")
    st = bplib.first_status(bplib.exchange(sock, PING)[0])
    tap.is_(st, 200, "and serves the next request")
    dsp.stop(tap, proc)

    # ---- the same with the real dockerd: the proxy's fds come back at once
    name = "dsp-bp-cat-%d" % os.getpid()
    r = subprocess.run([dsp.DOCKER_CLI, "-H", "unix://" + daemon.sock, "run", "-d", "-i", "--name", name,
                        "dsp-test:latest", "cat"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        tap.bail("cannot run a container on the test daemon: %s" % r.stderr)
    proc, sock, log = bplib.start_proxy(tap, d, "p-real", {
        "SOCKET_PATH": daemon.sock, "CONTAINERS": "1", "POST": "1", "ALLOW_ATTACH": "1"})
    # Warm up with a refused request: an allowed one would leave its daemon connection open
    # for the next request (keep-alive), and the stream below would reuse it.
    bplib.exchange(sock, b"GET /secrets HTTP/1.1\r\nHost: docker\r\n\r\n")
    time.sleep(0.3)
    base = bplib.fd_count(proc.pid)
    for mode, target, word in (("stream", "/events", "streaming"),
                               ("tunnel", "/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1" % name,
                                "tunnel")):
        # /events says nothing until something happens: make an event so that the stream has begun.
        client, line = None, None
        if mode == "stream":
            client = subprocess.Popen([sys.executable, bplib.PEER, "client", mode, sock, target],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            tap.at_exit(lambda c=client: (c.poll() is None and c.kill(), c.wait()))
            for _ in range(20):
                subprocess.run([dsp.DOCKER_CLI, "-H", "unix://" + daemon.sock, "pause", name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
                subprocess.run([dsp.DOCKER_CLI, "-H", "unix://" + daemon.sock, "unpause", name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
                if select.select([client.stdout], [], [], 0.5)[0]:
                    line = client.stdout.readline().decode().strip()
                    break
        else:
            client, line = bplib.spawn_peer(tap, ["client", mode, sock, target], word)
        tap.ok(line == word, "real dockerd, %s: the client is in the middle of it through the proxy" % mode, line)
        during = bplib.fd_count(proc.pid)
        tap.ok(during >= base + 2, "real dockerd, %s: the proxy holds the client's and the daemon's fds "
               "(%d, idle %d)" % (mode, during, base))
        t = time.monotonic()
        client.kill()
        client.wait()
        took = settle_fds(proc.pid, base, 3)
        took = None if took is None else time.monotonic() - t
        tap.ok(took is not None and took < 1.0, "real dockerd, %s: client killed with SIGKILL, the proxy is back "
               "to its idle %d fds within 1 s (after %s s; now %d)" % (
                   mode, base, None if took is None else "%.3f" % took, bplib.fd_count(proc.pid)))
    st = bplib.first_status(bplib.exchange(sock, PING)[0])
    tap.is_(st, 200, "real dockerd: the proxy serves the next request")
    dsp.stop(tap, proc)

    # ---- out of file descriptors
    proc, sock, log = bplib.start_proxy(tap, d, "p-nofile", {"SOCKET_PATH": daemon.sock},
                                        prefix=("prlimit", "--nofile=40:40"))
    with open("/proc/%d/limits" % proc.pid) as f:
        lim = next(x for x in f if x.startswith("Max open files")).split()[3:5]
    tap.is_(lim, ["40", "40"], "the proxy runs with 40 file descriptors")
    tap.is_(bplib.first_status(bplib.exchange(sock, PING)[0]), 200, "and serves a request")
    clients, refused = [], 0
    for _ in range(100):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(sock)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            refused += 1  # the listen backlog is full: the kernel refuses it
            s.close()
            continue
        clients.append(s)
    for s in clients:
        try:
            s.send(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        except OSError:
            pass
    hz = os.sysconf("SC_CLK_TCK")
    cpu0 = bplib.cpu_ticks(proc.pid)
    t0 = time.monotonic()
    got = {s: b"" for s in clients}
    ended = {}
    while time.monotonic() - t0 < 5:
        live = [s for s in clients if s not in ended]
        if not live:
            time.sleep(0.1)
            continue
        ready = select.select(live, [], [], 0.2)[0]
        for s in ready:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                got[s] += data
            else:
                ended[s] = True
    cpu = (bplib.cpu_ticks(proc.pid) - cpu0) / hz
    alive = proc.poll() is None
    answered = {s for s in clients if bplib.first_status(got[s]) is not None}
    codes = {}
    for s in answered:
        codes[bplib.first_status(got[s])] = codes.get(bplib.first_status(got[s]), 0) + 1
    closed_silent = [s for s in clients if s in ended and s not in answered]
    pending = [s for s in clients if s not in ended and s not in answered]
    tap.diag("100 clients: %d refused by the kernel (backlog full), %d answered %s, %d closed without an answer, "
             "%d still waiting; the proxy used %.2f s of CPU in 5 s, holds %d fds" % (
                 refused, len(answered), codes, len(closed_silent), len(pending), cpu,
                 bplib.fd_count(proc.pid) if alive else -1))
    tap.ok(alive, "100 clients at once with 40 fds: the proxy does not crash", bplib.read_text(log)[-2000:])
    tap.ok(cpu < 0.5, "and does not spin: %.2f s of CPU over those 5 s (want < 0.5)" % cpu)
    tap.ok(len(answered) > 0, "it serves some of them (%d answered)" % len(answered))
    tap.ok(all(c in (200, 503) for c in codes), "what it answers is 200 or a 503 (%s)" % codes)
    # What it could not take stays in the listen backlog: once the served clients leave, the
    # waiting ones must be served too (or closed), not left hanging.
    for s in clients:
        if s not in pending:
            s.close()
    t1 = time.monotonic()
    late = {s: b"" for s in pending}
    done = set()
    while pending and time.monotonic() - t1 < 15 and len(done) < len(pending):
        for s in select.select([s for s in pending if s not in done], [], [], 0.2)[0]:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            late[s] += data
            if not data or bplib.first_status(late[s]) is not None:
                done.add(s)
    late_answered = sum(1 for s in pending if bplib.first_status(late[s]) is not None)
    tap.ok(len(done) == len(pending), "once the others left, each of the %d clients left waiting got an answer "
           "or was closed within 15 s (%d answered, %d closed, %d still waiting)" % (
               len(pending), late_answered, len(done) - late_answered, len(pending) - len(done)))
    for s in pending:
        s.close()
    took = bplib.wait_for(lambda: bplib.first_status(bplib.exchange(sock, PING, timeout=3)[0]) == 200, 10,
                          step=0.2)
    tap.ok(took is not None, "when the clients are gone, a new request is served (after %s s)" % (
        None if took is None else "%.2f" % took))
    cpu0 = bplib.cpu_ticks(proc.pid)
    time.sleep(2)
    cpu = (bplib.cpu_ticks(proc.pid) - cpu0) / hz
    tap.ok(cpu < 0.2, "and idles again: %.2f s of CPU over 2 s" % cpu)
    tap.is_(dsp.stop(tap, proc), 0, "the proxy stops with status 0")

    # ---- SIGTERM with streams and tunnels open
    proc, sock, log = bplib.start_proxy(tap, d, "p-term", {
        "SOCKET_PATH": daemon.sock, "CONTAINERS": "1", "POST": "1", "ALLOW_ATTACH": "1",
        "SOCKET_PROXY_DRAIN_TIMEOUT": "1s"})
    opened = []
    for _ in range(2):
        s = bplib.connect(sock, 10)
        s.sendall(b"GET /events HTTP/1.1\r\nHost: docker\r\n\r\n")
        opened.append(("stream", s))
    for _ in range(2):
        s = bplib.connect(sock, 10)
        s.sendall(b"POST /containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\n"
                  b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n" % name.encode())
        opened.append(("tunnel", s))
    # /events sends its head only with the first event.
    subprocess.run([dsp.DOCKER_CLI, "-H", "unix://" + daemon.sock, "pause", name], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    subprocess.run([dsp.DOCKER_CLI, "-H", "unix://" + daemon.sock, "unpause", name], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    heads = []
    for kind, s in opened:
        s.settimeout(10)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                data = s.recv(65536)
                if not data:
                    break
                buf += data
        except OSError:
            pass
        heads.append(bplib.first_status(buf))
    tap.is_(heads, [200, 200, 101, 101], "two /events streams and two attach tunnels are open through the proxy")
    # The tunnels carry bytes: what goes into cat's stdin comes back on its stdout.
    s = opened[2][1]
    s.sendall(b"ping-through-the-tunnel\n")
    echo = b""
    s.settimeout(5)
    try:
        while b"ping-through-the-tunnel" not in echo:
            data = s.recv(65536)
            if not data:
                break
            echo += data
    except OSError:
        pass
    tap.ok(b"ping-through-the-tunnel" in echo, "a tunnel is live (stdin comes back from cat)")
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    took = bplib.wait_exit(proc, 10)
    tap.ok(took is not None and took <= 3.0, "SIGTERM with open streams and tunnels: exits within "
           "SOCKET_PROXY_DRAIN_TIMEOUT=1s plus 2 s (after %s s)" % (None if took is None else "%.2f" % took))
    tap.is_(proc.returncode, 0, "with status 0")
    ends = []
    for kind, s in opened:
        _, how = bplib.read_until_close(s, 2)
        ends.append(how)
        s.close()
    tap.ok(all(h in ("eof", "reset") for h in ends), "every client sees its stream or tunnel end (%s)" % ends)
    tap.ok(time.monotonic() - t < 6, "all of it within a bounded time")


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

"""Helpers for the hostile-input and fault tests of t/bypass/.

- DebugDaemon: a real dockerd of the test's own, started by t/lib/dockerd.sh with
  DSP_DOCKERD_EXTRA_ARGS=--debug, so that it logs every API call it routes as
  `level=debug msg="Calling METHOD REQUEST-URI"`. It can be killed with SIGKILL and
  started again in the same directory (same socket path).
- Recorder: a transparent Unix-socket relay between the proxy and the daemon that keeps
  every byte the daemon was sent, per connection, labelled with the case that was running.
  With it a test sees what the daemon received even when its router matched no route (and
  so logged no "Calling" line).
- start_proxy: the built proxy on a Unix listener of its own, with a clean environment.
- exchange / read_until_close: raw HTTP over Unix sockets.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dsp  # noqa: E402

LIB = dsp.LIB


def _bash(code, *args, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run(["bash", "-c", ". %s/dockerd.sh; %s" % (LIB, code), "bash"] + list(args),
                          stdin=subprocess.DEVNULL, env=e, timeout=180)


CALL_RE = re.compile(r'msg="Calling ((?:[^"\\]|\\.)*)"')


def _unescape_logrus(s):
    return re.sub(r'\\(.)', lambda m: m.group(1), s)


class DebugDaemon:
    """A dockerd with --debug, of this test alone (never the run's shared daemon)."""

    def __init__(self, tap, directory=None):
        import tempfile
        self.tap = tap
        self.dir = directory or tempfile.mkdtemp(prefix="dsp-bp.", dir="/tmp")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.log = os.path.join(self.dir, "dockerd.log")
        tap.at_exit(self._cleanup)
        self.start()

    def start(self):
        if _bash('dsp_dockerd_start "$1"', self.dir, env={"DSP_DOCKERD_EXTRA_ARGS": "--debug"}).returncode != 0:
            self.tap.bail("could not start dockerd --debug in %s" % self.dir)
        with open(os.path.join(self.dir, "dsp-dockerd.pid")) as f:
            self.pid = int(f.read().strip())

    def stop(self):
        _bash('dsp_dockerd_stop "$1"', self.dir)

    def _cleanup(self):
        _bash('dsp_dockerd_stop "$1"', self.dir)
        # dockerd bind-mounts its data root onto itself; one killed with SIGKILL leaves that
        # mount behind. Undo the mounts under our own directory, deepest first.
        for _ in range(5):
            with open("/proc/self/mountinfo") as f:
                mine = [line.split()[4] for line in f if line.split()[4].startswith(self.dir + "/")]
            if not mine:
                break
            for m in sorted(mine, key=len, reverse=True):
                subprocess.run(["umount", m], stderr=subprocess.DEVNULL, timeout=30)
        _bash('_dsp_rm_daemon_dir "$1"', self.dir)

    def kill9(self):
        """SIGKILL the dockerd this test started, then its containerd (both ours)."""
        os.kill(self.pid, signal.SIGKILL)
        for _ in range(100):
            if not pid_alive(self.pid):
                break
            time.sleep(0.05)
        # dsp_dockerd_stop with the daemon gone only stops its containerd and forgets the PID.
        self.stop()
        # A killed dockerd leaves its pid file; where no init reaps the orphan, the zombie's
        # PID is still there and a new dockerd would refuse to start over it.
        # The same for its containerd (it dies with dockerd) and the pid file dockerd reads
        # to decide whether to start a new one.
        for f in ("dockerd.pid", "exec/containerd/containerd.pid"):
            try:
                os.unlink(os.path.join(self.dir, f))
            except FileNotFoundError:
                pass

    def log_size(self):
        return os.path.getsize(self.log)

    def calls(self, since=0):
        """The "Calling METHOD URI" lines logged after byte offset `since`, as strings."""
        with open(self.log, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        return [_unescape_logrus(m.group(1)) for m in CALL_RE.finditer(text)]

    def fence(self, label):
        """A request made directly to the daemon (not through the proxy): once its own
        Calling line is in the log, every call before it is too. Returns the log offset
        just after that line."""
        uri = "/_ping?dsp-fence=%s" % label
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.sock)
        s.sendall(("GET %s HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n" % uri).encode())
        read_until_close(s, 10)
        s.close()
        needle = ('msg="Calling GET %s"' % uri).encode()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                data = f.read()
            at = data.find(needle)
            if at >= 0:
                return at + len(needle)
            time.sleep(0.01)
        raise RuntimeError("the fence %s never showed in dockerd's log" % uri)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Recorder:
    """Listens on `path`; relays each connection to `upstream` and records what was sent
    to it. What arrives while `label` is set is recorded under that label: the proxy keeps
    daemon connections open, so one connection may carry the requests of several labels.
    A "segment" is what one connection carried under one label."""

    QUIET = 0.05  # a segment with no new byte for this long has arrived whole

    def __init__(self, tap, path, upstream):
        self.path = path
        self.upstream = upstream
        self.label = None
        self.conns = []     # dicts: opened, closed
        self.segments = []  # dicts: conn, label, data (bytes sent to the daemon), last
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)  # a stale socket file nobody listens on
        self.srv.bind(path)
        self.srv.listen(128)
        self.stopped = False
        tap.at_exit(self.close)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        """Stops listening and ends the connections it relays, as a daemon that stops does."""
        self.stopped = True
        try:
            self.srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.srv.close()
        with self.lock:
            live = [x["sock"] for x in self.conns if x["closed"] is None]
        for c in live:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            rec = {"opened": time.monotonic(), "closed": None, "sock": c}
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._serve, args=(c, rec), daemon=True).start()

    def _record(self, rec, d):
        with self.lock:
            label = self.label
            seg = next((x for x in reversed(self.segments) if x["conn"] is rec and x["label"] == label), None)
            if seg is None:
                seg = {"conn": rec, "label": label, "data": bytearray(), "last": 0}
                self.segments.append(seg)
            seg["data"] += d
            seg["last"] = time.monotonic()

    def _serve(self, c, rec):
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            u.connect(self.upstream)
        except OSError:
            c.close()
            rec["closed"] = time.monotonic()
            return
        done = threading.Event()

        def down():  # daemon -> proxy
            try:
                while True:
                    d = u.recv(65536)
                    if not d:
                        break
                    c.sendall(d)
            except OSError:
                pass
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            done.set()

        threading.Thread(target=down, daemon=True).start()
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                self._record(rec, d)
                u.sendall(d)
        except OSError:
            pass
        try:
            u.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        done.wait(30)
        rec["closed"] = time.monotonic()
        c.close()
        u.close()

    def for_label(self, label, wait=5.0):
        """What the daemon was sent under `label`, one entry per connection that carried
        it, once each is whole: its connection closed or quiet (or `wait` seconds passed)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self.lock:
                now = time.monotonic()
                if all(x["conn"]["closed"] is not None or now - x["last"] >= self.QUIET
                       for x in self.segments if x["label"] == label):
                    break
            time.sleep(0.01)
        with self.lock:
            return [bytes(x["data"]) for x in self.segments if x["label"] == label]

    def count(self):
        with self.lock:
            return len(self.conns)

    def count_requests(self):
        """Segments that carried bytes to the daemon (the proxy's start-up probe of the
        socket connects and sends nothing)."""
        with self.lock:
            return sum(1 for x in self.segments if x["data"])


def start_proxy(tap, d, name, env_extra, prefix=(), args=()):
    """The proxy on unix:<d>/<name>.sock; returns (Popen, socket path, log path)."""
    sock = os.path.join(d, name + ".sock")
    logpath = os.path.join(d, name + ".log")
    log = open(logpath, "w")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(env_extra)
    proc = subprocess.Popen(list(prefix) + [dsp.PROXY_BIN, "--listen", "unix:" + sock, "--log-target=stderr"]
                            + list(args), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    tap.at_exit(lambda: dsp.stop(tap, proc))
    if not dsp.wait_listening(sock, proc):
        tap.bail("the proxy %s does not listen on %s; its log:\n%s" % (name, sock, read_text(logpath)))
    return proc, sock, logpath


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<%s>" % e


def connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_until_close(s, timeout):
    """Reads until EOF or `timeout` seconds; returns (bytes, how it ended: eof/timeout/reset)."""
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out, "timeout"
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return out, "timeout"
        except OSError:
            return out, "reset"
        if not d:
            return out, "eof"
        out += d


def exchange(path, data, timeout=10):
    """Sends data in one write, reads until the proxy closes; (bytes, how it ended)."""
    s = connect(path, timeout)
    try:
        s.sendall(data)
    except OSError:
        pass
    try:
        return read_until_close(s, timeout)
    finally:
        s.close()


STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3})[ \r]")


def statuses(raw):
    return [int(m) for m in STATUS_RE.findall(raw)]


def first_status(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3})[ \r]", raw)
    return int(m.group(1)) if m else None


def json_message(raw):
    import json
    body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    try:
        return json.loads(body.decode()).get("message")
    except Exception:
        return None


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def show(b, n=300):
    """Bytes as readable text with escapes, cut at n."""
    return b[:n].decode("latin-1").encode("unicode_escape").decode()


PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bppeer.py")


def spawn_peer(tap, args, expect, timeout=10):
    """Runs bppeer.py ARGS; waits until it prints a line starting with `expect`. Returns
    (Popen, that line), the line None if it did not come. Killed at exit if still running."""
    import selectors
    proc = subprocess.Popen([sys.executable, PEER] + list(args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    tap.at_exit(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        if not sel.select(max(0.0, deadline - time.monotonic())):
            break
        b = os.read(proc.stdout.fileno(), 1)
        if not b:
            break
        if b == b"\n":
            text = line.decode(errors="replace")
            if text.startswith(expect):
                return proc, text
            line = b""
        else:
            line += b
    return proc, None


def wait_exit(proc, timeout):
    """Seconds until proc exited, or None if it still runs after `timeout`."""
    t = time.monotonic()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - t


def wait_for(pred, timeout, step=0.02):
    """Polls pred() until true; returns the seconds it took, or None."""
    t = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - t
        if time.monotonic() - t > timeout:
            return None
        time.sleep(step)

"""Helpers for the Python integration tests: TAP, the Docker daemon, the proxy.

The Docker daemon comes from t/lib/dockerd.sh (the run's shared one in
$DSP_TEST_DOCKER_SOCK when it answers, else one of the test's own).
"""

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

LIB = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(LIB))
PROXY_BIN = os.environ.get("DSP_PROXY_BIN") or os.path.join(ROOT, "build", "src", "docker-socket-proxy")
DOCKER_CLI = os.environ.get("DSP_DOCKER_CLI", "docker")


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.cleanups = []

    def result(self, good, desc):
        self.n += 1
        if not good:
            self.failed += 1
        print("%s %d - %s" % ("ok" if good else "not ok", self.n, desc.replace("#", "\\#")), flush=True)
        return good

    def ok(self, good, desc, *diag):
        if not self.result(bool(good), desc):
            for d in diag:
                self.diag(d)
        return bool(good)

    def is_(self, got, want, desc):
        good = got == want
        if not self.result(good, desc):
            self.diag("       got: %r" % (got,))
            self.diag("  expected: %r" % (want,))
        return good

    def skip(self, desc, why):
        """A check this run cannot make (the tool in the way, not the feature missing)."""
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, desc.replace("#", "\\#"), why), flush=True)

    def diag(self, text):
        for line in str(text).splitlines() or [""]:
            print("# " + line, flush=True)

    def bail(self, why):
        print("Bail out! " + why, flush=True)
        self.run_cleanups()
        sys.exit(255)

    def at_exit(self, fn):
        self.cleanups.append(fn)

    def run_cleanups(self):
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # clean-up goes on
                print("# clean-up failed: %s" % e, file=sys.stderr)

    def done(self):
        self.run_cleanups()
        print("1..%d" % self.n, flush=True)
        sys.exit(min(self.failed, 254))


def main(tap, body):
    """Run body(tap); an exception is a failing test, and clean-up always runs."""
    if os.geteuid() != 0:
        tap.bail("the integration tests run as root")
    try:
        body(tap)
    except SystemExit:
        raise
    except BaseException as e:
        import traceback
        tap.result(False, "the test script ran to its end (it raised %s: %s)" % (type(e).__name__, e))
        tap.diag(traceback.format_exc())
    tap.done()


def _bash(code, *args):
    return subprocess.run(["bash", "-c", ". %s/dockerd.sh; %s" % (LIB, code), "bash"] + list(args),
                          stdin=subprocess.DEVNULL, timeout=180)


def _answers(sock):
    try:
        return subprocess.run([DOCKER_CLI, "-H", "unix://" + sock, "version"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except Exception:
        return False


def docker_daemon(tap):
    """The socket of a Docker daemon for this test."""
    shared = os.environ.get("DSP_TEST_DOCKER_SOCK")
    if shared and os.path.exists(shared) and _answers(shared):
        return shared
    d = tempfile.mkdtemp(prefix="dsp-dockerd.", dir="/tmp")
    tap.at_exit(lambda: (_bash('dsp_dockerd_stop "$1"; _dsp_rm_daemon_dir "$1"', d)))
    if _bash('dsp_dockerd_start "$1"', d).returncode != 0:
        tap.bail("could not start dockerd")
    return os.path.join(d, "docker.sock")


def tmpdir(tap):
    d = tempfile.mkdtemp(prefix="dsp-test.", dir="/tmp")
    os.chmod(d, 0o755)
    tap.at_exit(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def read_until_close(s):
    """Everything s receives until the peer closes; b"<timeout>" is appended on a timeout."""
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        out += b"<timeout>"
    except OSError:
        pass
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=20):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class RawClient:
    """A small HTTP/1.1 client on a raw socket, for tests that must control the bytes sent
    and see the framing of what comes back (http.client hides both): requests go out as
    given; responses are read by their framing (Content-Length, chunked, or until close)."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.eof = False

    @classmethod
    def connect(cls, addr, timeout):
        """addr: a Unix socket's path, or (host, port)."""
        if isinstance(addr, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(addr)
            except OSError:
                s.close()
                raise
        else:
            s = socket.create_connection(addr, timeout=timeout)
        return cls(s)

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def fill(self):
        data = self.s.recv(65536)
        if not data:
            self.eof = True
            raise EOFError("the proxy closed the connection")
        self.buf += data

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        out, _, self.buf = self.buf.partition(b"\r\n")
        return out

    def head(self):
        """(status, headers), the names lower-case. ValueError for a line that is not HTTP."""
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})(?: |$)", lines[0])
        if not m:
            raise ValueError("bad status line %r" % lines[0])
        headers = {}
        for h in lines[1:]:
            k, sep, v = h.partition(":")
            if not sep:
                raise ValueError("bad header line %r" % h)
            headers[k.strip().lower()] = v.strip()
        return int(m.group(1)), headers

    def response(self, method="GET"):
        """(status, headers, body, closes): closes when the answer said "Connection: close" or
        its body ran until the connection closed."""
        status, headers = self.head()
        closes = "close" in headers.get("connection", "").lower()
        if method == "HEAD" or status < 200 or status in (204, 304):
            return status, headers, b"", closes
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    break
                body += self.take(size)
                self.take(2)
        elif "content-length" in headers:
            body = self.take(int(headers["content-length"]))
        else:
            body = self.read_to_eof()
            closes = True
        return status, headers, body, closes

    def read_to_eof(self):
        """What is buffered and everything else until the peer closes (or resets)."""
        out, self.buf = self.buf, b""
        while True:
            try:
                data = self.s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out += data
        self.eof = True
        return out


def get(sock_path, path, method="GET"):
    """One request over a Unix socket: (status, body)."""
    c = UnixHTTPConnection(sock_path)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_listening(sock, proc, seconds=20):
    """Until the proxy takes a connection on the Unix socket sock, or proc ends: whether it
    does. The socket file appears at bind(), before listen(); a connect() in between is
    refused (under valgrind the gap is wide enough to hit)."""
    end = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < end:
        if os.path.exists(sock):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(sock)
                return True
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.025)
    return False


def stop(tap, proc, timeout=10):
    """SIGTERM, wait, SIGKILL: returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            tap.diag("pid %d still runs %d s after SIGTERM: SIGKILL" % (proc.pid, timeout))
            proc.kill()
            proc.wait()
    return proc.returncode


class Notify:
    """A NOTIFY_SOCKET of our own; collects (time, KEY, VALUE)."""

    def __init__(self, tap, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []
        tap.at_exit(self.sock.close)

    def pump(self, seconds):
        """Receive for up to `seconds`."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return
            now = time.monotonic()
            for line in data.decode(errors="replace").split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    self.messages.append((now, k, v))

    def wait_for(self, pred, seconds):
        """Receive until pred(messages) is true or `seconds` pass."""
        end = time.monotonic() + seconds
        while not pred(self.messages):
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 0.1))
        return True

    def values(self, key, since=0.0):
        return [v for (t, k, v) in self.messages if k == key and t >= since]

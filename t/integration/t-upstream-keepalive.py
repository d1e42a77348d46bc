#!/usr/bin/python3
"""Keep-alive to the Docker daemon: the proxy keeps its daemon connections open between
requests and shares them (an idle pool, LIFO) across client connections; it drops one the
daemon closed (with or without saying so), keeps none whose body ran until close, sends a
GET again on a new connection when a kept one turns out closed, never sends a POST on a kept
one, closes a daemon connection whose client went away mid-response, applies a reloaded
SOCKET_PROXY_TIMEOUT to a connection kept from before the reload, passes a chunked body
that came whole with a Content-Length (one that trickles in stays chunked), forwards large
request bodies whole to a daemon that reads them slowly, and answers 502 when it stops.

A real daemon cannot be made to close an idle connection on demand: this test runs the
proxy against a fake one, which logs every request by the connection it came on."""

import hashlib
import json
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

BIG_SIZE = 10 * 1024 * 1024
BIG_PIECE = 64 * 1024
CHUNKED_PIECES = [b'[{"Id":"a"},', b"x" * 5000, b'{"Id":"b"}]']


# The fake daemon ----------------------------------------------------------------------

class BadRequest(Exception):
    pass


class FakeConn:
    def __init__(self, ident, sock):
        self.id = ident
        self.sock = sock
        self.requests = []      # request lines, in the order they came
        self.errors = []        # what could not be parsed
        self.accepted = time.monotonic()
        self.eof_at = None      # when the proxy closed it (EOF or a failed send), as seen here
        self.closed_by_fake = False
        self.big_sent = None    # body bytes sent of a big answer
        self.pace = None        # seconds between reads of 16 KiB (slowread)
        self.hasher = None      # takes the request body (slowread)
        self.restarted = False  # closed by FakeDaemon.restart()
        self.thread = None

    def describe(self):
        state = ("closed by the proxy" if self.eof_at else "") + (" closed by the fake" if self.closed_by_fake else "")
        return "conn %d (%s): %s%s" % (self.id, state.strip() or "open", self.requests,
                                       " errors %s" % self.errors if self.errors else "")


class FakeDaemon:
    """An HTTP/1.1 server on a Unix socket, a thread per connection. Modes (what it does after
    reading a request, except for a target containing /big/, which always gets a 10 MB body
    sent slowly):
      keepalive  answers with a Content-Length, keeps the connection
      close      answers with "Connection: close", then waits (3 s at most) for the proxy to
                 close before closing; a request coming meanwhile is logged, not answered
      untilclose answers without a length and closes to end the body
      silent     answers with a Content-Length, then closes without saying so
      drop       answers the first request of a connection; a later one is read, logged,
                 and the connection closed without an answer
      mute       reads a request, logs it, and never answers: waits for the proxy to close
      chunked    answers CHUNKED_PIECES as a chunked body with a trailer, keeps the
                 connection; in one write, or with /slow/ in the target a piece each 50 ms
      slowread   reads the request body 16 KiB every 2 ms and answers its sha256 in hex
      noread     reads a request's head, never its body, and closes after 5 s
      hopheaders answers with hop-by-hop fields and two Connection headers that name two
                 more (X-Named-First, X-Named-Second) beside one that stays (X-Stays)
      rawstream  takes the connection over as dockerd does an exec start without Upgrade:
                 a raw-stream Content-Type (in mixed case), no length; then waits 3 s at
                 most for the end of what the proxy sends, says "saw-eof" or "no-eof",
                 and closes
    """

    def __init__(self, path):
        self.path = path
        self.mode = "keepalive"
        self.lock = threading.Lock()
        self.conns = []
        self.answered = 0
        self.stopping = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        os.chmod(path, 0o666)
        self.listener.listen(128)
        self.listener.settimeout(0.2)
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.listener.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restart(self):
        """Closes every connection, as a daemon restarting would; waits until they are closed."""
        with self.lock:
            conns = [c for c in self.conns if c.thread and c.thread.is_alive()]
        for c in conns:
            c.restarted = True
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for c in conns:
            c.thread.join(5)
        return not any(c.thread.is_alive() for c in conns)

    def accept_loop(self):
        while not self.stopping:
            try:
                s, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                c = FakeConn(len(self.conns), s)
                self.conns.append(c)
            c.thread = threading.Thread(target=self.serve, args=(c,), daemon=True)
            c.thread.start()

    # What the test reads.
    def snapshot(self):
        with self.lock:
            return [(c.id, list(c.requests)) for c in self.conns]

    def n_conns(self):
        with self.lock:
            return len(self.conns)

    def where(self, tag):
        """[(conn id, index on that connection)] of every logged request whose line holds tag."""
        out = []
        with self.lock:
            for c in self.conns:
                for i, line in enumerate(c.requests):
                    if tag in line:
                        out.append((c.id, i))
        return out

    def conn(self, ident):
        with self.lock:
            return self.conns[ident]

    def dump(self):
        with self.lock:
            return "\n".join(c.describe() for c in self.conns)

    # One connection.
    def serve(self, c):
        s = c.sock
        s.settimeout(120)   # bounds a thread whose connection the proxy forgot
        buf = b""
        try:
            while True:
                r = self.read_request(c, buf)
                if r is None:
                    return
                line, buf = r
                with self.lock:
                    c.requests.append(line)
                    nth = len(c.requests)
                    mode = self.mode
                    self.answered += 1
                    n = self.answered
                target = line.split(" ")[1]
                if "/big/" in target:
                    if not self.send_big(c):
                        return
                    continue
                if mode == "drop" and nth >= 2:
                    return
                if mode == "mute":
                    s.settimeout(60)
                    while s.recv(65536):
                        pass
                    c.eof_at = time.monotonic()
                    return
                if mode == "noread":
                    time.sleep(5)
                    return
                if mode == "slowread":
                    digest = c.hasher.hexdigest().encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                              % (len(digest), digest))
                    continue
                if mode == "chunked":
                    pieces = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n"]
                    pieces += [b"%x\r\n%s\r\n" % (len(p), p) for p in CHUNKED_PIECES]
                    pieces.append(b"0\r\nX-Trailer: t\r\n\r\n")
                    if "/slow/" in target:
                        for p in pieces:
                            s.sendall(p)
                            time.sleep(0.05)
                    else:
                        s.sendall(b"".join(pieces))
                    continue
                body = json.dumps({"n": n}).encode()
                if mode == "untilclose":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
                    s.shutdown(socket.SHUT_WR)
                    return
                if mode == "rawstream":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: Application/Vnd.Docker.Raw-Stream\r\n\r\n")
                    s.settimeout(3)
                    try:
                        while buf or s.recv(65536):
                            buf = b""
                        said = b"saw-eof"
                    except socket.timeout:
                        said = b"no-eof"
                    s.sendall(said)
                    s.shutdown(socket.SHUT_WR)
                    return
                if mode == "hopheaders":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Connection: keep-alive, X-Named-First\r\nKeep-Alive: timeout=5\r\n"
                              b"X-Named-First: 1\r\nX-Stays: 2\r\nConnection: X-Named-Second\r\n"
                              b"X-Named-Second: 3\r\nProxy-Connection: keep-alive\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    continue
                close = b"Connection: close\r\n" if mode == "close" else b""
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
                          % (close, len(body), body))
                if mode == "close":
                    self.wait_eof(c, buf, 3)
                    return
                if mode == "silent":
                    return
        except BadRequest as e:
            c.errors.append(str(e))
        except socket.timeout:
            pass
        except OSError:
            if not c.restarted:
                c.eof_at = c.eof_at or time.monotonic()   # a reset or a failed send: the proxy closed
        finally:
            try:
                s.close()
            except OSError:
                pass
            if c.eof_at is None:
                c.closed_by_fake = True

    def recv_more(self, c, buf):
        if c.pace:
            time.sleep(c.pace)
        data = c.sock.recv(16384 if c.pace else 65536)
        if not data:
            if not c.restarted:
                c.eof_at = c.eof_at or time.monotonic()
            return None
        return buf + data

    def read_request(self, c, buf):
        """(request line, what follows the request) or None at EOF; the body is read and dropped."""
        while b"\r\n\r\n" not in buf:
            if len(buf) > 65536:
                raise BadRequest("a request head over 64 KiB: %r" % buf[:200])
            more = self.recv_more(c, buf)
            if more is None:
                if buf:
                    c.errors.append("EOF inside a request head: %r" % buf[:200])
                return None
            buf = more
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not re.fullmatch(r"[A-Z]+ /\S* HTTP/1\.[01]", lines[0]):
            raise BadRequest("bad request line %r" % lines[0])
        headers = {}
        for h in lines[1:]:
            if ":" not in h:
                raise BadRequest("bad header line %r in %r" % (h, lines[0]))
            k, v = h.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        # How to read the body: as the mode is now, when the head is in.
        with self.lock:
            mode = self.mode
        c.pace = 0.002 if mode == "slowread" else None
        c.hasher = hashlib.sha256() if mode == "slowread" else None
        if mode == "noread":
            return lines[0], buf
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                while b"\r\n" not in buf:
                    buf = self.recv_more(c, buf)
                    if buf is None:
                        raise BadRequest("EOF inside a chunked body of %r" % lines[0])
                size_line, buf = buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(buf) < size + 2:
                    buf = self.recv_more(c, buf)
                    if buf is None:
                        raise BadRequest("EOF inside a chunk of %r" % lines[0])
                if c.hasher:
                    c.hasher.update(buf[:size])
                buf = buf[size + 2:]
                if size == 0:
                    break
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(buf) < length:
                buf = self.recv_more(c, buf)
                if buf is None:
                    raise BadRequest("EOF inside the body of %r" % lines[0])
            if c.hasher:
                c.hasher.update(buf[:length])
            buf = buf[length:]
        return lines[0], buf

    def wait_eof(self, c, buf, seconds):
        """After "Connection: close": waits for the proxy to close; logs a request that comes instead."""
        c.sock.settimeout(seconds)
        try:
            r = self.read_request(c, buf)
            if r is not None:
                with self.lock:
                    c.requests.append(r[0])
        except (socket.timeout, BadRequest):
            pass

    def send_big(self, c):
        """10 MB announced, sent in 64 KiB pieces 10 ms apart. False when the proxy closed."""
        s = c.sock
        s.settimeout(10)
        c.big_sent = 0
        try:
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                      % BIG_SIZE)
            piece = b"x" * BIG_PIECE
            while c.big_sent < BIG_SIZE:
                s.sendall(piece)
                c.big_sent += len(piece)
                time.sleep(0.01)
        except socket.timeout:
            c.errors.append("the proxy stopped reading the big body for 10 s")
            return False
        except OSError:
            c.eof_at = time.monotonic()
            return False
        s.settimeout(120)
        return True


# The client side -----------------------------------------------------------------------

def connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


class Client(dsp.RawClient):
    """One client connection; requests one at a time."""

    def __init__(self, path):
        super().__init__(connect(path))

    def request(self, method, target, extra=b"", body=None):
        """(status, headers, body); status None and the error as body when it failed."""
        req = b"%s %s HTTP/1.1\r\nHost: docker\r\n%s" % (method.encode(), target.encode(), extra)
        if body is not None:
            req += b"Content-Length: %d\r\n" % len(body)
        req += b"\r\n" + (body or b"")
        try:
            self.send(req)
            status, headers, body, _closes = self.response(method)
            return status, headers, body
        except (OSError, EOFError, ValueError) as e:
            return None, {}, ("%s: %s; received %r" % (type(e).__name__, e, self.buf[:300])).encode()


def one(path, method, target, body=None, settled=None):
    """A request on a client connection of its own (Connection: close). With settled, waits
    for the proxy to have logged the request as done (it has then put its daemon connection
    back or closed it): a client may see the answer just before that."""
    try:
        c = Client(path)
    except OSError as e:
        return None, {}, str(e).encode()
    try:
        r = c.request(method, target, b"Connection: close\r\n", body)
    finally:
        c.close()
    if settled and r[0] is not None:
        settled(method, target)
    return r


def is_n(body):
    try:
        return isinstance(json.loads(body.decode()).get("n"), int)
    except Exception:
        return False


def wait_for(pred, seconds):
    end = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


# The test --------------------------------------------------------------------------------

def body(tap):
    d = dsp.tmpdir(tap)
    fake = FakeDaemon(os.path.join(d, "docker.sock"))
    tap.at_exit(fake.stop)

    sock = os.path.join(d, "proxy.sock")
    logpath = os.path.join(d, "proxy.log")
    log = open(logpath, "w+")
    envfile = os.path.join(d, "proxy.env")
    with open(envfile, "w") as f:
        f.write("SOCKET_PROXY_TIMEOUT=15s\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SOCKET_PATH": fake.path, "CONTAINERS": "1",
           "POST": "1", "LOG_LEVEL": "debug"}
    proc = subprocess.Popen([dsp.PROXY_BIN, "--listen", "unix:" + sock, "--env-file", envfile,
                             "--log-target=stderr"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    tap.at_exit(lambda: dsp.stop(tap, proc))
    if not dsp.wait_listening(sock, proc):
        log.seek(0)
        tap.diag(log.read())
        tap.bail("the proxy did not start")
    # The start-up probe connects and disconnects at once: let it be counted before case 1.
    wait_for(lambda: fake.n_conns() >= 1 and fake.conn(0).eof_at is not None, 2)

    def proxy_log():
        log.flush()
        with open(logpath, errors="replace") as f:
            return "".join(f.readlines()[-40:])

    def settled(method, target):
        want = re.compile(r"<\d>[A-Z][a-z]+ %s %s from " % (re.escape(method), re.escape(target)))

        def logged():
            log.flush()
            with open(logpath, errors="replace") as f:
                return any(want.match(line) for line in f)
        if not wait_for(logged, 5):
            tap.diag("the proxy did not log %s %s as done within 5 s" % (method, target))

    def diag_all():
        return ["daemon connections:\n" + fake.dump(), "proxy log (end):\n" + proxy_log()]

    # 1. One client keep-alive connection, 20 GETs: one daemon connection carries them all.
    before = fake.n_conns()
    c = Client(sock)
    answers = [c.request("GET", "/_ping?case=1&i=%d" % i) for i in range(20)]
    client_eof = c.eof
    c.close()
    tap.ok(all(a[0] == 200 and is_n(a[2]) for a in answers) and not client_eof,
           "20 GETs on one client keep-alive connection are all answered 200",
           "answers: %r" % [(a[0], a[2][:80]) for a in answers if a[0] != 200 or not is_n(a[2])], *diag_all())
    at = fake.where("case=1&")
    conns1 = sorted({cid for cid, _ in at})
    lines1 = fake.snapshot()[conns1[0]][1] if len(conns1) == 1 else []
    tap.ok(fake.n_conns() - before == 1 and len(conns1) == 1 and
           [ln for ln in lines1 if "case=1&" in ln] == ["GET /_ping?case=1&i=%d HTTP/1.1" % i for i in range(20)],
           "the daemon accepted exactly 1 connection for them, carrying all 20 in order",
           "connections accepted: %d" % (fake.n_conns() - before), *diag_all())

    # 2. 20 GETs, each on a client connection of its own: still the same daemon connection.
    before = fake.n_conns()
    answers = [one(sock, "GET", "/_ping?case=2&i=%d" % i, settled=settled) for i in range(20)]
    tap.ok(all(a[0] == 200 and is_n(a[2]) for a in answers),
           "20 GETs each on a new client connection (Connection: close) are all answered 200",
           "answers: %r" % [(a[0], a[2][:80]) for a in answers if a[0] != 200], *diag_all())
    conns2 = {cid for cid, _ in fake.where("case=2&")}
    tap.ok(fake.n_conns() - before <= 1 and len(conns2) <= 2 and len(fake.where("case=2&")) == 20,
           "they need at most 1 new daemon connection (kept ones are shared across client connections)",
           "new daemon connections: %d, connections used: %s" % (fake.n_conns() - before, sorted(conns2)),
           *diag_all())

    # 4. "Connection: close" from the daemon: that connection is not kept. The fake closes all
    # its connections first (as a daemon restarting would): the proxy then holds none usable.
    tap.ok(fake.restart(), "the fake daemon closes all its connections (a restart)", *diag_all())
    fake.mode = "close"
    before = fake.n_conns()
    st, _, b = one(sock, "GET", "/_ping?case=4&i=close", settled=settled)
    closed = fake.where("case=4&i=close")
    cid_close = closed[0][0] if closed else None
    tap.ok(st == 200 and len(closed) == 1 and closed[0] == (before, 0),
           "after it, a GET is answered 200 on a new daemon connection (those kept are dropped)",
           "status %r, body %r, logged at %r" % (st, b[:200], closed), *diag_all())
    tap.ok(cid_close is not None and wait_for(lambda: fake.conn(cid_close).eof_at is not None, 5),
           "the proxy closes the daemon connection that said 'Connection: close'", *diag_all())
    fake.mode = "keepalive"
    before = fake.n_conns()
    st, _, b = one(sock, "GET", "/_ping?case=4&i=next", settled=settled)
    at = fake.where("case=4&i=next")
    tap.ok(st == 200 and len(at) == 1 and at[0][0] != cid_close and at[0][1] == 0 and fake.n_conns() == before + 1,
           "the next GET is answered 200 on a new daemon connection",
           "status %r, body %r, logged at %r (closed one: %r)" % (st, b[:200], at, cid_close), *diag_all())

    # 5. A body without length, ended by the daemon closing: that connection cannot be kept.
    fake.restart()
    fake.mode = "untilclose"
    st, _, b = one(sock, "GET", "/_ping?case=5&i=untilclose", settled=settled)
    at5 = fake.where("case=5&i=untilclose")
    tap.ok(st == 200 and is_n(b), "a read-until-close body is passed on whole (200)",
           "status %r, body %r" % (st, b[:200]), *diag_all())
    fake.mode = "keepalive"
    before = fake.n_conns()
    st, _, b = one(sock, "GET", "/_ping?case=5&i=next", settled=settled)
    at = fake.where("case=5&i=next")
    tap.ok(st == 200 and len(at) == 1 and at5 and at[0][0] != at5[0][0] and at[0][1] == 0 and
           fake.n_conns() == before + 1,
           "the next GET is answered 200 on a new daemon connection",
           "status %r, body %r, logged at %r (until-close one: %r)" % (st, b[:200], at, at5), *diag_all())

    # 6. The daemon closes a kept connection without a word: the proxy notices when it takes it.
    fake.mode = "silent"
    st, _, b = one(sock, "GET", "/_ping?case=6&i=silent", settled=settled)
    at6 = fake.where("case=6&i=silent")
    fake.mode = "keepalive"
    good = st == 200 and len(at6) == 1
    tap.ok(good, "a GET answered just before the daemon closes silently is answered 200",
           "status %r, body %r, logged at %r" % (st, b[:200], at6), *diag_all())
    if good:
        wait_for(lambda: fake.conn(at6[0][0]).closed_by_fake, 5)
    st, _, b = one(sock, "GET", "/_ping?case=6&i=next", settled=settled)
    at = fake.where("case=6&i=next")
    tap.ok(st == 200 and len(at) == 1 and at6 and at[0][0] != at6[0][0],
           "the next GET is answered 200 too, sent once, on another connection (the closed one is dropped)",
           "status %r, body %r, logged at %r (silently closed one: %r)" % (st, b[:200], at, at6), *diag_all())

    # 3. Two client connections at once, 50 GETs each: two daemon connections (maybe three).
    before = fake.n_conns()
    results = {0: [], 1: []}

    def run(k):
        try:
            cl = Client(sock)
        except OSError as e:
            results[k].append((None, {}, str(e).encode()))
            return
        try:
            for i in range(50):
                results[k].append(cl.request("GET", "/_ping?case=3&c=%d&i=%d" % (k, i)))
        finally:
            cl.close()

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for k in (0, 1):
        if results[k] and results[k][-1][0] is not None:
            settled("GET", "/_ping?case=3&c=%d&i=%d" % (k, len(results[k]) - 1))
    bad = [(k, i, a[0], a[2][:120]) for k in (0, 1) for i, a in enumerate(results[k])
           if a[0] != 200 or not is_n(a[2])]
    tap.ok(not any(t.is_alive() for t in threads) and len(results[0]) == 50 and len(results[1]) == 50 and not bad,
           "two client connections doing 50 GETs each at the same time: all 100 answered 200",
           "answers: %d + %d, bad: %r" % (len(results[0]), len(results[1]), bad[:10]), *diag_all())
    snap = fake.snapshot()
    used3 = sorted({cid for cid, lines in snap for ln in lines if "case=3&" in ln})
    tap.ok(len(used3) <= 3 and fake.n_conns() - before <= 3,
           "they use at most 3 daemon connections (kept ones are reused under concurrency)",
           "connections used: %r, new: %d" % (used3, fake.n_conns() - before), *diag_all())
    seen = []
    problems = []
    for cid, lines in snap:
        last = {}
        for ln in lines:
            if "case=3&" not in ln:
                continue
            m = re.fullmatch(r"GET /_ping\?case=3&c=(\d)&i=(\d+) HTTP/1\.1", ln)
            if not m:
                problems.append("conn %d: %r" % (cid, ln))
                continue
            k, i = int(m.group(1)), int(m.group(2))
            if i <= last.get(k, -1):
                problems.append("conn %d: client %d's request %d after its %d" % (cid, k, i, last[k]))
            last[k] = i
            seen.append((k, i))
    errors = [e for cid in used3 for e in fake.conn(cid).errors]
    tap.ok(not problems and not errors and sorted(seen) == [(k, i) for k in (0, 1) for i in range(50)],
           "each daemon connection carried whole requests, in order, and each request once", *(
               ["problems: %r" % problems[:10], "parse errors: %r" % errors[:10],
                "requests logged: %d of 100" % len(seen)] + diag_all()))

    # 7. A kept connection the daemon closes upon reading the next request: the GET goes again.
    fake.mode = "drop"
    before = fake.n_conns()
    st, _, b = one(sock, "GET", "/_ping?case=7&i=drop", settled=settled)
    at = fake.where("case=7&i=drop")
    tap.ok(st == 200 and is_n(b), "a GET that the daemon reads on a kept connection and closes without answering "
           "is answered 200", "status %r, body %r" % (st, b[:200]), *diag_all())
    tap.ok(len(at) == 2 and at[0][0] != at[1][0] and at[0][1] > 0 and at[1][1] == 0 and at[1][0] >= before,
           "the daemon got that GET twice: on the kept connection, then as the first request of a new one",
           "logged at (connection, index): %r" % at, *diag_all())

    # 8. A POST rides on a kept connection too; if the daemon closes it upon reading the POST,
    # the proxy cannot know whether it was carried out: 502, and it is never sent twice.
    st, _, b = one(sock, "POST", "/containers/x/start?case=8", body=b"", settled=settled)
    at = fake.where("case=8")
    tap.ok(st == 502 and b"closed the connection" in b, "in the same mode, a POST that the daemon reads on a kept "
           "connection and closes without answering gets 502 saying so", "status %r, body %r" % (st, b[:200]),
           *diag_all())
    tap.ok(len(at) == 1 and at[0][1] > 0, "the daemon got that POST once, on the kept connection (it is never "
           "sent twice)", "logged at (connection, index): %r" % at, *diag_all())
    fake.mode = "keepalive"
    st, _, b = one(sock, "POST", "/containers/x/start?case=8&i=again", body=b"", settled=settled)
    tap.ok(st == 200 and is_n(b), "once the daemon answers again, the next POST is answered 200",
           "status %r, body %r" % (st, b[:200]), *diag_all())
    fake.mode = "keepalive"

    # 9. The client goes away in the middle of a large response: the daemon connection is closed.
    got = 0
    head_ok = False
    try:
        c = connect(sock)
        c.sendall(b"GET /containers/big/json?case=9 HTTP/1.1\r\nHost: docker\r\n\r\n")
        data = b""
        while got < 256 * 1024:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head_ok = head_ok or data.startswith(b"HTTP/1.1 200")
                got = len(data.split(b"\r\n\r\n", 1)[1])
        c.close()
    except OSError as e:
        tap.diag("the big GET: %s" % e)
    t_gone = time.monotonic()
    at9 = fake.where("case=9")
    tap.ok(head_ok and got >= 256 * 1024 and len(at9) == 1,
           "a 10 MB response sent slowly starts coming (200, 256 KiB read, then the client closes)",
           "head ok %r, body bytes %d, logged at %r" % (head_ok, got, at9), *diag_all())
    big = fake.conn(at9[0][0]) if at9 else None
    tap.ok(big is not None and wait_for(lambda: big.eof_at is not None, 5),
           "the proxy closes the daemon connection that carried it within 5 s",
           "sent %s of %d bytes; closed %s s after the client left" % (
               big and big.big_sent, BIG_SIZE, big and big.eof_at and round(big.eof_at - t_gone, 3)), *diag_all())
    st, _, b = one(sock, "GET", "/_ping?case=9&i=next", settled=settled)
    at = fake.where("case=9&i=next")
    tap.ok(st == 200 and len(at) == 1 and big is not None and at[0][0] != big.id,
           "the next GET is answered 200 on another daemon connection (that one was not kept)",
           "status %r, body %r, logged at %r" % (st, b[:200], at), *diag_all())

    # 10. A reload that shortens SOCKET_PROXY_TIMEOUT holds for a daemon connection kept from
    #     before it: a daemon that stops answering on it gets the new timeout, not the old 15 s.
    fake.mode = "keepalive"
    st, _, b = one(sock, "GET", "/_ping?case=10&i=warm", settled=settled)
    warm = fake.where("case=10&i=warm")
    with open(envfile, "w") as f:
        f.write("SOCKET_PROXY_TIMEOUT=1s\n")
    reloads = proxy_log().count("Reloaded the policy")
    proc.send_signal(signal.SIGHUP)
    reloaded = wait_for(lambda: proxy_log().count("Reloaded the policy") > reloads, 5)
    fake.mode = "mute"
    t0 = time.monotonic()
    st2, _, b2 = one(sock, "GET", "/_ping?case=10&i=mute")
    took = time.monotonic() - t0
    fake.mode = "keepalive"
    mute = fake.where("case=10&i=mute")
    tap.ok(st == 200 and reloaded and len(warm) == 1 and mute == [(warm[0][0], warm[0][1] + 1)],
           "after a reload, the next GET goes on the daemon connection kept from before it",
           "warm status %r at %r, reloaded %r, mute request at %r" % (st, warm, reloaded, mute), *diag_all())
    tap.ok(st2 == 504 and took < 5,
           "a daemon silent on it gets 504 after the new SOCKET_PROXY_TIMEOUT=1s, not the old 15s",
           "status %r after %.2f s: %r" % (st2, took, b2[:200]), *diag_all())

    # 11. A chunked body that arrives whole with its head is sent with its length, in one
    # write; one that trickles in stays chunked. Both arrive decoded and the same, and the
    # daemon connection is kept after either.
    fake.mode = "chunked"
    want = b"".join(CHUNKED_PIECES)
    c = Client(sock)
    st1, h1, b1 = c.request("GET", "/containers/json?case=11&i=whole")
    st2, h2, b2 = c.request("GET", "/containers/slow/json?case=11&i=slow")
    st3, h3, b3 = c.request("GET", "/containers/json?case=11&i=again")
    c.close()
    fake.mode = "keepalive"
    whole, slow, again = fake.where("case=11&i=whole"), fake.where("case=11&i=slow"), fake.where("case=11&i=again")
    tap.ok(st1 == 200 and b1 == want and h1.get("content-length") == str(len(want)) and
           "transfer-encoding" not in h1,
           "a chunked body that came whole with its head is passed on decoded, with a Content-Length",
           "status %r, headers %r, body %r" % (st1, h1, b1[:80]))
    tap.ok(st2 == 200 and b2 == want and "chunked" in h2.get("transfer-encoding", ""),
           "one that trickles in stays chunked, with the same bytes",
           "status %r, headers %r, body %r" % (st2, h2, b2[:80]))
    tap.ok(st3 == 200 and b3 == want and len(whole) == 1 and len(slow) == 1 and len(again) == 1 and
           whole[0][0] == slow[0][0] == again[0][0],
           "all three went on one kept daemon connection", "%r %r %r" % (whole, slow, again), *diag_all())

    # 12. Request bodies larger than the sockets hold, to a daemon that reads them slowly:
    # the proxy waits for it to take each part, and every byte arrives once, in order, with
    # a Content-Length or chunked. A daemon that stops reading gets SOCKET_PROXY_TIMEOUT
    # (1 s since case 10), then the client 502.
    fake.mode = "slowread"
    upload = os.urandom(3 * 1024 * 1024)
    want = hashlib.sha256(upload).hexdigest().encode()
    st1, _, b1 = one(sock, "POST", "/containers/create?case=12&i=length", body=upload)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(upload[i:i + 65536]), upload[i:i + 65536])
                       for i in range(0, len(upload), 65536)) + b"0\r\n\r\n"
    c = Client(sock)
    try:
        c.send(b"POST /containers/create?case=12&i=chunked HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
        st2, _, b2, _ = c.response("POST")
    except (OSError, EOFError, ValueError) as e:
        st2, b2 = None, str(e).encode()
    c.close()
    tap.ok(st1 == 200 and b1 == want, "a 3 MiB body with a Content-Length reaches a slow daemon whole (sha256)",
           "status %r, %r, want %r" % (st1, b1[:200], want), *diag_all())
    tap.ok(st2 == 200 and b2 == want, "and a chunked one too", "status %r, %r" % (st2, b2[:200]), *diag_all())
    fake.mode = "noread"
    t0 = time.monotonic()
    st3, _, b3 = one(sock, "POST", "/containers/create?case=12&i=noread", body=os.urandom(4 * 1024 * 1024))
    took = time.monotonic() - t0
    fake.mode = "keepalive"
    tap.ok(st3 == 502 and b"stopped reading the request body" in b3 and took < 4,
           "a daemon that stops reading the body: 502 saying so, after about the timeout",
           "status %r after %.2f s: %r" % (st3, took, b3[:200]), *diag_all())
    st, _, b = one(sock, "GET", "/_ping?case=12&i=after")
    tap.ok(st == 200 and is_n(b), "and the next request is served", "status %r: %r" % (st, b[:200]))

    # 13. Fields that end at the daemon's hop stay there: the hop-by-hop ones, and those that
    # any of its Connection headers name. The rest, and the connection, go on.
    fake.mode = "hopheaders"
    c = Client(sock)
    st, hd, b = c.request("GET", "/_ping?case=13&i=1")
    st2, _, b2 = c.request("GET", "/_ping?case=13&i=2")
    c.close()
    fake.mode = "keepalive"
    gone = [k for k in ("x-named-first", "x-named-second", "keep-alive", "proxy-connection") if k in hd]
    tap.ok(st == 200 and is_n(b) and hd.get("x-stays") == "2" and not gone,
           "the daemon's hop-by-hop fields and those its two Connection headers name are not passed on; "
           "the others are", "status %r, passed on: %r, headers %r" % (st, gone, hd), *diag_all())
    tap.ok(st2 == 200 and is_n(b2), "and the client's connection serves the next request",
           "status %r: %r" % (st2, b2[:200]))

    # 14. A daemon that takes over a request that did not ask for it (exec start without
    # Upgrade): the client cannot send through us, so the daemon gets the end of its input
    # at once. Media types are compared without case.
    fake.mode = "rawstream"
    t0 = time.monotonic()
    st, _, b = one(sock, "POST", "/containers/x/start?case=14", body=b"{}")
    took = time.monotonic() - t0
    fake.mode = "keepalive"
    tap.ok(st == 200 and b == b"saw-eof" and took < 2.5,
           "a response that takes the connection over (Application/Vnd.Docker.Raw-Stream) ends the daemon's "
           "input at once", "status %r after %.2f s: %r" % (st, took, b[:200]), *diag_all())

    # 15. Still there, and it stops cleanly.
    tap.ok(proc.poll() is None, "the proxy still runs", *diag_all())
    rc = dsp.stop(tap, proc)
    tap.is_(rc, 0, "it stops on SIGTERM with status 0") or tap.diag(proxy_log())


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

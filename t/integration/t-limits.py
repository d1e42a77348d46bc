#!/usr/bin/python3
"""Every client-controlled resource has a limit with a named setting: connections (503),
the request-target (414), header bytes (431), the time to send request headers
(slowloris: closed) and the pauses in a request body, idle keep-alive, and the daemon's response headers (504); the
process raises its own RLIMIT_NOFILE soft limit to the hard one."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dsp  # noqa: E402


def start(tap, d, name, env_extra, prefix=()):
    """The proxy on unix:<d>/<name>.sock, once it says READY=1: it listens then, and no probe
    connection takes one of the places these cases count."""
    sock = os.path.join(d, name + ".sock")
    log = open(os.path.join(d, name + ".log"), "w+")
    os.mkdir(os.path.join(d, name + ".notify"))
    notify = dsp.Notify(tap, os.path.join(d, name + ".notify"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NOTIFY_SOCKET": notify.path}
    env.update(env_extra)
    proc = subprocess.Popen(list(prefix) + [dsp.PROXY_BIN, "--listen", "unix:" + sock, "--log-target=stderr"],
                            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    tap.at_exit(lambda: dsp.stop(tap, proc))
    if not notify.wait_for(lambda m: any(k == "READY" for (_, k, _v) in m), 20):
        log.seek(0)
        tap.diag("no READY=1 from the proxy %s in 20 s; its log:\n%s" % (name, log.read()))
    return proc, sock, log


def connect(sock, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    return s


def read_all(s):
    return dsp.read_until_close(s).replace(b"<timeout>", b"")


def status_and_json(raw):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    try:
        message = json.loads(body.decode()).get("message", "")
    except Exception:
        message = None
    return (m.group(1).decode() if m else None), message


def closed_within(s, seconds):
    """Seconds until the proxy closed s (reading nothing), or None if it stayed open."""
    t = time.time()
    s.settimeout(0.2)
    while time.time() - t < seconds:
        try:
            if s.recv(100) == b"":
                return time.time() - t
        except socket.timeout:
            pass
        except OSError:
            return time.time() - t
    return None


def body(tap):
    daemon = dsp.docker_daemon(tap)
    d = dsp.tmpdir(tap)

    proc, sock, log = start(tap, d, "limits", {
        "SOCKET_PATH": daemon, "SOCKET_PROXY_MAX_CONNECTIONS": "3", "SOCKET_PROXY_HEADER_TIMEOUT": "2s",
        "SOCKET_PROXY_KEEPALIVE": "2s", "SOCKET_PROXY_MAX_TARGET_BYTES": "2K", "SOCKET_PROXY_MAX_HEADER_BYTES": "16K"})

    # Connections: the fourth one gets 503 with a JSON message naming the setting.
    held = [connect(sock) for _ in range(3)]
    time.sleep(0.2)
    s = connect(sock)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    code, message = status_and_json(read_all(s))
    tap.is_(code, "503", "a 4th connection with SOCKET_PROXY_MAX_CONNECTIONS=3 gets 503")
    tap.ok(message and "SOCKET_PROXY_MAX_CONNECTIONS=3" in message, "its JSON message names the setting", message)
    for h in held:
        h.close()
    time.sleep(0.3)
    s = connect(sock)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    tap.is_(status_and_json(read_all(s))[0], "200", "once they are gone, a new connection is served")

    # Slowloris: a request line and a header byte every 0.5 s; closed after the header timeout.
    s = connect(sock)
    s.sendall(b"GET /_ping HTTP/1.1\r\n")
    t = time.time()
    gone = None
    while time.time() - t < 8:
        try:
            s.sendall(b"X")
        except OSError:
            gone = time.time() - t
            break
        s.settimeout(0.5)
        try:
            if s.recv(100) == b"":
                gone = time.time() - t
                break
        except socket.timeout:
            pass
        except OSError:
            gone = time.time() - t
            break
    tap.ok(gone is not None and gone < 4.5,
           "a client trickling its headers is closed within SOCKET_PROXY_HEADER_TIMEOUT=2s (+1 s)",
           "closed after %s s" % gone)

    # Idle keep-alive: closed after SOCKET_PROXY_KEEPALIVE.
    s = connect(sock)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(65536)
    tap.ok(first.startswith(b"HTTP/1.1 200"), "a keep-alive request is answered")
    after = closed_within(s, 8)
    tap.ok(after is not None and 1.0 < after < 5.5, "the idle connection is closed after about "
           "SOCKET_PROXY_KEEPALIVE=2s", "closed after %s s" % after)

    # A body that stops coming: closed after the header timeout, both for an allowed request
    # (forwarded as it comes) and for a refused one (dropped as it comes).
    for what, head in (("an allowed request", b"GET /_ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"),
                       ("a refused request", b"POST /containers/create HTTP/1.1\r\nHost: x\r\n"
                                             b"Content-Length: 1000\r\n\r\n")):
        s = connect(sock)
        s.sendall(head + b"x" * 10)
        gone = closed_within(s, 8)
        tap.ok(gone is not None and gone < 4.5, "%s whose body stops after 10 of 1000 bytes is closed within "
               "SOCKET_PROXY_HEADER_TIMEOUT=2s (+1 s)" % what, "closed after %s s" % gone)
        s.close()
    # ... but a body that keeps coming, however slowly, is not cut short.
    s = connect(sock)
    s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
    for _ in range(6):
        time.sleep(0.8)
        s.sendall(b"x")
    tap.is_(status_and_json(read_all(s))[0], "403", "a body sent a byte every 0.8 s (4.8 s in all) is read whole "
            "(and the request then refused)")

    # The request-target: over SOCKET_PROXY_MAX_TARGET_BYTES is 414, as JSON naming it.
    s = connect(sock)
    target = b"/_ping?" + b"a" * (2048 - 7)
    s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    tap.is_(status_and_json(read_all(s))[0], "200", "a request-target of exactly SOCKET_PROXY_MAX_TARGET_BYTES=2K is served")
    s = connect(sock)
    s.sendall(b"GET " + target + b"a HTTP/1.1\r\nHost: x\r\n\r\n")
    code, message = status_and_json(read_all(s))
    tap.is_(code, "414", "one byte more gets 414")
    tap.ok(message and "SOCKET_PROXY_MAX_TARGET_BYTES" in message, "with a JSON message naming the setting", message)
    s = connect(sock)
    s.sendall(b"GET /_ping?" + b"&".join(b"a%d" % i for i in range(128)) + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    tap.is_(status_and_json(read_all(s))[0], "200", "128 query arguments are served")
    s = connect(sock)
    s.sendall(b"GET /_ping?" + b"&".join(b"a%d" % i for i in range(129)) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    code, message = status_and_json(read_all(s))
    tap.is_(code, "414", "129 query arguments get 414")
    tap.ok(message and "query arguments" in message, "with a JSON message saying why", message)
    # Header bytes beyond SOCKET_PROXY_MAX_HEADER_BYTES: 431, as JSON naming it.
    s = connect(sock)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
              b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 140) for i in range(100)) + b"\r\n")
    tap.is_(status_and_json(read_all(s))[0], "200", "15 KB of request headers are served under "
            "SOCKET_PROXY_MAX_HEADER_BYTES=16K")
    s = connect(sock)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n" +
              b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 160) for i in range(100)) + b"\r\n")
    code, message = status_and_json(read_all(s))
    tap.is_(code, "431", "17 KB get 431")
    tap.ok(message and "SOCKET_PROXY_MAX_HEADER_BYTES" in message, "with a JSON message naming the setting", message)
    s = connect(sock)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n" + b"a: b\r\n" * 300 + b"\r\n")
    code, message = status_and_json(read_all(s))
    tap.is_(code, "431", "300 tiny header lines (under the byte limit) get 431 too")
    tap.ok(message and "header fields" in message, "with a JSON message saying why", message)
    tap.ok(proc.poll() is None, "the proxy is still running after all that")

    # The daemon's response headers: a daemon that accepts and never answers gives 504.
    mute = os.path.join(d, "mute.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(mute)
    srv.listen(16)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(srv.accept()) for _ in range(4)], daemon=True).start()
    proc2, sock2, log2 = start(tap, d, "in-front-of-mute", {"SOCKET_PATH": mute, "SOCKET_PROXY_TIMEOUT": "1s"})
    s = connect(sock2)
    t = time.time()
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        raw = s.recv(65536)
    except OSError as e:
        raw = b""
        log2.seek(0)
        tap.diag("no answer (%s); the proxy's log: %s" % (e, log2.read()))
    code, message = status_and_json(raw)
    took = time.time() - t
    tap.is_(code, "504", "a daemon that never sends its response headers: 504")
    tap.ok(0.8 < took < 3, "after SOCKET_PROXY_TIMEOUT=1s", "took %.2f s" % took)
    tap.ok(message and "did not answer in time" in message, "the message says the daemon did not answer in time",
           message)

    # RLIMIT_NOFILE: a soft limit below the hard one is raised at start.
    proc3, sock3, log3 = start(tap, d, "nofile", {"SOCKET_PATH": daemon}, prefix=("prlimit", "--nofile=256:4096"))
    with open("/proc/%d/limits" % proc3.pid) as f:
        line = next(x for x in f if x.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    what = "started with nofile 256:4096, the soft limit is raised to 4096"
    if os.environ.get("DSP_TEST_VALGRIND") == "1":
        # valgrind emulates setrlimit(RLIMIT_NOFILE): /proc shows valgrind's own limits.
        tap.skip(what, "valgrind keeps its own RLIMIT_NOFILE")
    else:
        tap.is_((soft, hard), ("4096", "4096"), what)

    # A second proxy does not steal a live listener's socket file.
    r = subprocess.run([dsp.PROXY_BIN, "--listen", "unix:" + sock3, "--log-target=stderr"],
                       env={"SOCKET_PATH": daemon}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    tap.ok(r.returncode != 0 and "another process listens" in r.stderr,
           "--listen on a Unix socket another proxy serves fails with a clear message", r.stderr)
    s = connect(sock3)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    tap.is_(status_and_json(read_all(s))[0], "200", "and the first proxy still serves it")


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

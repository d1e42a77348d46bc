#!/usr/bin/python3
"""Faults on the daemon's side: its socket missing, refusing, or not ours to open (502
with a clear JSON message, and the next request after the daemon is back works without a
restart); the daemon dying in the middle of a response or of a tunnel (a fake daemon,
bppeer.py, that SIGKILLs itself after part of what it sends), and a real dockerd killed
with SIGKILL while `docker events` streams through the proxy, then started again. In each
case the client sees the end of the stream instead of a hang, the proxy logs it, and the
same proxy process serves the next request."""

import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bplib  # noqa: E402
import dsp  # noqa: E402

PING = b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"


def answer(sock, data=PING, timeout=10):
    raw, how = bplib.exchange(sock, data, timeout)
    return bplib.first_status(raw), bplib.json_message(raw), raw, how


def content_type(raw):
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    return "content-type: application/json" in head


def log_has(path, text, timeout=3):
    return bplib.wait_for(lambda: text in bplib.read_text(path), timeout) is not None


def body(tap):
    daemon = bplib.DebugDaemon(tap)
    d = dsp.tmpdir(tap)

    # ---- the daemon's socket: missing, refusing, permission denied
    up = os.path.join(d, "up.sock")
    proc, sock, log = bplib.start_proxy(tap, d, "p-missing", {"SOCKET_PATH": up, "SOCKET_PROXY_TIMEOUT": "3s"})
    st, msg, raw, _ = answer(sock)
    tap.is_(st, 502, "daemon socket missing: 502")
    tap.ok(content_type(raw) and msg and ("cannot connect to the Docker daemon at %s" % up) in msg
           and "does not exist" in msg, "with a JSON message naming the socket and saying it does not exist", msg)
    rec = bplib.Recorder(tap, up, daemon.sock)
    st, _, raw, _ = answer(sock)
    tap.is_(st, 200, "once the daemon's socket is there, the same proxy serves the next request")
    rec.close()
    tap.ok(os.path.exists(up), "the daemon's socket file stays when nobody listens on it any more")
    st, msg, raw, _ = answer(sock)
    tap.is_(st, 502, "daemon socket refusing (a socket file, nobody listening): 502")
    tap.ok(content_type(raw) and msg and up in msg and "does not accept connections" in msg,
           "with a JSON message saying the daemon does not accept connections", msg)
    os.unlink(up)
    rec = bplib.Recorder(tap, up, daemon.sock)
    st, _, _, _ = answer(sock)
    tap.is_(st, 200, "once it listens again, the same proxy serves the next request")
    tap.ok(proc.poll() is None, "the proxy did not restart or exit (pid %d)" % proc.pid)
    dsp.stop(tap, proc)

    # Permission denied: the proxy runs as nobody, the socket is root's with mode 0600.
    pd = os.path.join(d, "perm")
    os.mkdir(pd)
    os.chmod(pd, 0o755)
    ld = os.path.join(d, "nobody")
    os.mkdir(ld)
    os.chown(ld, 65534, 65534)
    psock = os.path.join(pd, "docker.sock")
    prec = bplib.Recorder(tap, psock, daemon.sock)
    os.chmod(psock, 0o600)
    proc, sock, log = bplib.start_proxy(tap, ld, "p-perm", {"SOCKET_PATH": psock},
                                        prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
    st, msg, raw, _ = answer(sock)
    tap.is_(st, 502, "daemon socket not ours to open (proxy as uid 65534, socket 0600 root): 502")
    tap.ok(content_type(raw) and msg and "permission denied" in msg and "uid 65534" in msg and "0600" in msg
           and "SupplementaryGroups" in msg,
           "with a JSON message naming the proxy's uid, the socket's mode and the fix", msg)
    os.chmod(psock, 0o666)
    st, _, _, _ = answer(sock)
    tap.is_(st, 200, "once the socket may be opened, the same proxy serves the next request")
    tap.ok(prec.count_requests() == 1, "the refused attempts never reached the relay (only the served request "
           "did)", "connections carrying bytes: %d" % prec.count_requests())
    dsp.stop(tap, proc)

    # ---- a fake daemon that dies in the middle of what it sends
    fake = os.path.join(d, "fake.sock")
    proc, sock, log = bplib.start_proxy(tap, d, "p-fake", {
        "SOCKET_PATH": fake, "SOCKET_PROXY_TIMEOUT": "5s", "CONTAINERS": "1", "POST": "1", "ALLOW_ATTACH": "1"})

    def fake_up(mode):
        p, line = bplib.spawn_peer(tap, ["upstream", mode, fake], "ready")
        if line is None:
            tap.bail("the fake daemon (%s) did not start" % mode)
        return p

    def served_after(what):
        ok_peer = fake_up("ok")
        st, _, raw, _ = answer(sock, b"GET /version HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        tap.ok(st == 200 and raw.endswith(b"OK"), "after %s, the same proxy serves the next request" % what,
               bplib.show(raw))
        ok_peer.kill()
        ok_peer.wait()

    # Chunked body, cut.
    peer = fake_up("chunked-die")
    t = time.monotonic()
    raw, how = bplib.exchange(sock, b"GET /events HTTP/1.1\r\nHost: docker\r\n\r\n", timeout=10)
    took = time.monotonic() - t
    tap.ok(raw.startswith(b"HTTP/1.1 200") and b'{"partial":1}' in raw,
           "daemon dies during a chunked response: the client got the head and the first chunk", bplib.show(raw))
    tap.ok(how == "eof" and took < 3, "and then the end of the stream, not a hang (%s after %.2f s)" % (how, took))
    tap.ok(not raw.endswith(b"0\r\n\r\n"), "the cut response does not end with the last chunk (the client can "
           "tell it is incomplete)", bplib.show(raw[-40:]))
    tap.is_(peer.wait(5), -9, "the fake daemon did die (SIGKILL)")
    tap.ok(log_has(log, "broke off the response to GET /events"), "the proxy logs that the daemon broke off "
           "the response", bplib.read_text(log)[-1500:])
    served_after("a chunked response cut by the daemon's death")

    # Content-Length body, cut.
    peer = fake_up("length-die")
    t = time.monotonic()
    raw, how = bplib.exchange(sock, b"GET /containers/x/json HTTP/1.1\r\nHost: docker\r\n\r\n", timeout=10)
    took = time.monotonic() - t
    body_bytes = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    tap.ok(raw.startswith(b"HTTP/1.1 200") and body_bytes == b"0123456789" and how == "eof" and took < 3,
           "daemon dies 10 bytes into a 100-byte body: the client gets those 10 and then the end of the "
           "connection, not a hang (%s after %.2f s)" % (how, took), bplib.show(raw))
    tap.is_(peer.wait(5), -9, "the fake daemon did die (SIGKILL)")
    tap.ok(log_has(log, "broke off the response to GET /containers/x/json"),
           "the proxy logs that the daemon broke off the response", bplib.read_text(log)[-1500:])
    served_after("a fixed-length response cut by the daemon's death")

    # Response head, cut.
    peer = fake_up("head-die")
    st, msg, raw, how = answer(sock, b"GET /containers/x/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
    tap.is_(st, 502, "daemon dies in the middle of its response head: 502")
    tap.ok(content_type(raw) and msg and "the Docker daemon at %s" % fake in msg,
           "with a JSON message about the daemon", msg)
    tap.is_(peer.wait(5), -9, "the fake daemon did die (SIGKILL)")
    served_after("a response head cut by the daemon's death")

    # A tunnel, cut.
    peer = fake_up("upgrade-die")
    s = bplib.connect(sock, 10)
    s.sendall(b"POST /containers/x/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: docker\r\n"
              b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
    t = time.monotonic()
    raw, how = bplib.read_until_close(s, 10)
    took = time.monotonic() - t
    s.close()
    tap.ok(raw.startswith(b"HTTP/1.1 101") and raw.endswith(b"hello-from-the-tunnel\n"),
           "daemon dies inside a tunnel: the client got the 101 and the bytes sent before", bplib.show(raw))
    tap.ok(how == "eof" and took < 3, "and then the end of the stream, not a hang (%s after %.2f s)" % (how, took))
    tap.is_(peer.wait(5), -9, "the fake daemon did die (SIGKILL)")
    tap.ok(log_has(log, "Closed tunnel for POST /containers/x/attach"), "the proxy logs the end of the tunnel",
           bplib.read_text(log)[-1500:])
    served_after("a tunnel cut by the daemon's death")
    tap.ok(proc.poll() is None, "the proxy in front of the dying fake daemon still runs (pid %d)" % proc.pid)
    dsp.stop(tap, proc)

    # ---- the real dockerd, killed with SIGKILL while `docker events` streams through the proxy
    proc, sock, log = bplib.start_proxy(tap, d, "p-real", {"SOCKET_PATH": daemon.sock, "LOG_LEVEL": "debug"})
    out = open(os.path.join(d, "events.out"), "w+")
    ev = subprocess.Popen([dsp.DOCKER_CLI, "-H", "unix://" + sock, "events", "--format", "{{json .}}"],
                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    tap.at_exit(lambda: (ev.poll() is None and ev.kill(), ev.wait()))
    name = "dsp-bp-ev-%d" % os.getpid()
    seen = False
    for k in range(30):
        subprocess.run([dsp.DOCKER_CLI, "-H", "unix://" + daemon.sock, "create", "--name", "%s-%d" % (name, k),
                        "dsp-test:latest", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        subprocess.run([dsp.DOCKER_CLI, "-H", "unix://" + daemon.sock, "rm", "%s-%d" % (name, k)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        if bplib.wait_for(lambda: ("%s-%d" % (name, k)) in bplib.read_text(out.name), 0.5) is not None:
            seen = True
            break
    tap.ok(seen, "`docker events` through the proxy streams events from the real dockerd",
           bplib.read_text(out.name)[-1000:])
    t = time.monotonic()
    daemon.kill9()
    took = bplib.wait_exit(ev, 10)
    tap.ok(took is not None, "dockerd killed with SIGKILL: `docker events` sees its stream end and exits "
           "(after %s s, status %s)" % (None if took is None else "%.2f" % (time.monotonic() - t), ev.returncode),
           bplib.read_text(out.name)[-500:])
    broke = re.compile(r"broke off the response to GET (/v[0-9.]+)?/events")
    tap.ok(bplib.wait_for(lambda: broke.search(bplib.read_text(log)), 3) is not None,
           "the proxy logs that the daemon broke off the events stream", bplib.read_text(log)[-1500:])
    st, msg, _, _ = answer(sock)
    tap.is_(st, 502, "while dockerd is down: 502")
    daemon.start()
    st, _, _, _ = answer(sock)
    tap.is_(st, 200, "dockerd started again: the same proxy serves the next request")
    r = subprocess.run([dsp.DOCKER_CLI, "-H", "unix://" + sock, "version", "--format", "{{.Server.Version}}"],
                       capture_output=True, text=True, timeout=30)
    tap.ok(r.returncode == 0 and r.stdout.strip(), "and `docker version` through it works", r.stdout + r.stderr)
    tap.ok(proc.poll() is None, "the proxy ran through all of it (pid %d)" % proc.pid)
    tap.is_(dsp.stop(tap, proc), 0, "and stops with status 0")


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

#!/usr/bin/python3
"""What happens on a client connection around a refusal: the answer arrives whole (also
while the client is still sending a body or an oversized head), nothing pipelined after a refused or malformed
request reaches the daemon, an answer to a refused upgrade carries no "Connection: close"
(docker 20.10 would take it for the upgrade), and allowed requests keep the connection."""

import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dsp  # noqa: E402


def exchange(sock_path, data, timeout=10):
    """Sends data at once, reads until the proxy closes (or timeout); returns the bytes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(data)
    out = dsp.read_until_close(s)
    s.close()
    return out


def statuses(raw):
    # A response may follow the previous body without a line break.
    return [m.decode() for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def head_of(raw):
    return raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def send_past_refusal(sock_path, head, payload, tail=b"", midway=None):
    """Sends head, then payload in 4 KiB pieces (calling midway() halfway through), then
    tail, then reads until the proxy closes. Returns (the first OSError or None, the bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock_path)
    error, raw = None, b""
    try:
        s.sendall(head)
        for i in range(0, len(payload), 4096):
            s.sendall(payload[i:i + 4096])
            if midway and i == len(payload) // 2:
                midway()
        s.sendall(tail)
    except OSError as e:
        error = e
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    except OSError as e:
        error = error or e
    s.close()
    return error, raw


def body(tap):
    daemon = dsp.docker_daemon(tap)
    d = dsp.tmpdir(tap)
    sock = os.path.join(d, "proxy.sock")
    log = open(os.path.join(d, "stderr"), "w+")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SOCKET_PATH": daemon, "LOG_LEVEL": "debug",
           "CONTAINERS": "1"}
    proc = subprocess.Popen([dsp.PROXY_BIN, "--listen", "unix:" + sock, "--log-target=stderr"], env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    tap.at_exit(lambda: dsp.stop(tap, proc))
    if not dsp.wait_listening(sock, proc):
        log.seek(0)
        tap.bail("the proxy does not listen on %s; its log:\n%s" % (sock, log.read()))

    def forwarded(path):
        log.flush()
        log.seek(0)
        return sum(1 for line in log if line.startswith("<7>Allowed") and (" %s " % path) in line)

    # Allowed requests share one connection.
    raw = exchange(sock, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
    tap.is_(statuses(raw), ["200", "200"], "two allowed requests pipelined on one connection are both answered")

    # A refusal ends the connection: what was pipelined behind it never reaches the daemon.
    before = forwarded("/info")
    raw = exchange(sock, b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                         b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n")
    tap.is_(statuses(raw), ["403"], "a refusal answers 403 and nothing after it on that connection")
    tap.ok(b"<timeout>" not in raw, "the proxy closes the connection after the refusal")
    time.sleep(0.2)
    tap.is_(forwarded("/info"), before, "the request pipelined after the refusal was not forwarded")

    # The same after a malformed request (a framing the daemon could read otherwise).
    raw = exchange(sock, b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /containers/json HTTP/1.1\r\nHost: x\r\n\r\n")
    tap.is_(statuses(raw), ["400"], "a malformed request answers 400 and nothing after it on that connection")
    tap.ok("connection: close" in head_of(raw).lower(), "the 400 says Connection: close")

    # A refused upgrade: 403 with the JSON message and no "Connection: close" header.
    raw = exchange(sock, b"POST /exec/abc/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"Detach\":false,\"Tty\":false}"[:-1] + b"}")
    head = head_of(raw)
    tap.is_(statuses(raw)[:1], ["403"], "a refused exec start with Upgrade: tcp answers 403")
    tap.ok("connection: close" not in head.lower(), "the 403 to an upgrade carries no Connection: close",
           head)
    tap.ok(b"needs EXEC=1" in raw, "its JSON message names EXEC=1")

    # A refused request with a body the client is still sending gets the answer, not a reset.
    big = b"x" * (512 * 1024)
    error, raw = send_past_refusal(sock, b"POST /containers/create HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big), big)
    tap.ok(error is None, "a client sending a 512 KiB body to a refused endpoint can send it all", repr(error))
    tap.is_(statuses(raw), ["403"], "and reads the 403 after it")
    tap.ok(b"needs POST=1" in raw, "with the message naming POST=1")

    # The gate refuses a head that grows past SOCKET_PROXY_MAX_HEADER_BYTES at once, while the
    # client is still sending it: the proxy drains the rest for a while (without stopping
    # the others) so that the client reads the 431 instead of a reset.
    other = {}

    def meanwhile():
        # Another client is served while the drain goes on: it does not hold the proxy up.
        t = time.monotonic()
        other["raw"] = exchange(sock, b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        other["took"] = time.monotonic() - t

    error, raw = send_past_refusal(sock, b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"a" * (192 * 1024),
                                   b"\r\n\r\n", meanwhile)
    tap.ok(error is None, "a client still sending a 192 KiB header after its 431 can send it all", repr(error))
    tap.is_(statuses(raw), ["431"], "and reads the 431")
    tap.ok(b"SOCKET_PROXY_MAX_HEADER_BYTES" in raw, "with the message naming SOCKET_PROXY_MAX_HEADER_BYTES")
    tap.is_(statuses(other.get("raw", b"")), ["200"], "another client is served meanwhile")
    tap.ok(other.get("took", 99) < 1.0, "at once, not after the drain (%.3f s)" % other.get("took", 99))

    tap.ok(proc.poll() is None, "the proxy is still running")


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

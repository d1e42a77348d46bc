#!/usr/bin/python3
"""Raw-socket clients for the hijacked-stream tests of t/hijack/.

Each subcommand talks HTTP/1.1 by hand to ADDR (unix:/path or tcp:HOST:PORT), so that the
test controls what goes in which write, when the write side is shut down, and what the
bytes on the wire are. It prints one JSON object on stdout describing what it saw; the
shell tests assert on that. It exits 0 when it could run its exchange at all (the
assertions are the caller's), 2 on a usage error.

  exec-same-write ADDR CONTAINER       exec `cat`, start it with the upgrade headers and the
                                       stdin bytes in the same write as the request
  halfclose ADDR CONTAINER N           N exec `cat` tunnels: send stdin after the 101,
                                       shutdown(SHUT_WR), read to EOF, compare
  halfclose-late ADDR CONTAINER        one tunnel to `sh -c 'cat; sleep 1; echo after-eof'`:
                                       the output after the half-close must arrive
  exec-noupgrade ADDR CONTAINER CMD... exec start {"Detach":false} without Upgrade
  attach-noupgrade ADDR CONTAINER      POST /containers/C/attach?stream=1&stdout=1 without Upgrade
  ws ADDR CONTAINER [--stdin]          GET /containers/C/attach/ws: handshake and frames
  grpc ADDR                            POST /grpc with Upgrade: h2c, then HTTP/2 frames
  session ADDR                         POST /session with Upgrade: h2c and the session headers
  ping ADDR                            GET /_ping with Connection: close
"""

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time

TIMEOUT = 20.0
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def connect(addr):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(addr[5:])
    elif addr.startswith("tcp:"):
        host, port = addr[4:].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    else:
        raise SystemExit("bad address %r" % addr)
    return s


def request_bytes(method, target, body=None, headers=()):
    head = "%s %s HTTP/1.1\r\nHost: docker\r\n" % (method, target)
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
    for h in headers:
        head += h + "\r\n"
    return head.encode() + b"\r\n" + data


def read_head(s, deadline):
    """Read up to the end of the response headers: (status, headers dict, raw head, rest)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            return None, {}, buf, b""
        if not d:
            break
        buf += d
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None, {}, buf, b""
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, head.decode("latin-1"), rest


def read_until_eof(s, deadline, initial=b""):
    """(bytes, reached_eof)."""
    out = initial
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out, False
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True
        if not d:
            return out, True
        out += d


def demux(data):
    """Split a multiplexed stream: (stdout, stderr, leftover-bytes, ok)."""
    out, err = [], []
    i = 0
    while i + 8 <= len(data):
        kind = data[i]
        size = struct.unpack(">I", data[i + 4:i + 8])[0]
        if kind not in (0, 1, 2) or data[i + 1:i + 4] != b"\0\0\0":
            return b"".join(out), b"".join(err), data[i:], False
        if i + 8 + size > len(data):
            break
        (err if kind == 2 else out).append(data[i + 8:i + 8 + size])
        i += 8 + size
    return b"".join(out), b"".join(err), data[i:], i == len(data)


def simple(addr, method, target, body=None, headers=()):
    """One request with Connection: close: (status, headers, body bytes)."""
    s = connect(addr)
    try:
        s.sendall(request_bytes(method, target, body, list(headers) + ["Connection: close"]))
        deadline = time.monotonic() + TIMEOUT
        status, hdrs, _, rest = read_head(s, deadline)
        data, _ = read_until_eof(s, deadline, rest)
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            data = dechunk(data)[0]
        return status, hdrs, data
    finally:
        s.close()


def dechunk(data):
    """(payload, complete): decode a chunked body."""
    out = b""
    i = 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return out, False
        try:
            size = int(data[i:j].split(b";")[0], 16)
        except ValueError:
            return out, False
        if size == 0:
            return out, True
        if j + 2 + size + 2 > len(data):
            return out + data[j + 2:j + 2 + size], False
        out += data[j + 2:j + 2 + size]
        i = j + 2 + size + 2


def exec_create(addr, container, cmd, stdin=True):
    status, _, body = simple(addr, "POST", "/containers/%s/exec" % container,
                             {"Cmd": cmd, "AttachStdin": stdin, "AttachStdout": True, "AttachStderr": True,
                              "Tty": False})
    if status != 201:
        raise RuntimeError("exec create answered %s: %r" % (status, body[:300]))
    return json.loads(body)["Id"]


UPGRADE = ["Connection: Upgrade", "Upgrade: tcp"]


def cmd_exec_same_write(addr, container):
    payload = b"".join(b"line %04d of the stdin sent with the request headers\n" % i for i in range(200))
    eid = exec_create(addr, container, ["cat"])
    s = connect(addr)
    t0 = time.monotonic()
    # One write: request line, headers, JSON body and the first stdin bytes.
    s.sendall(request_bytes("POST", "/exec/%s/start" % eid, {"Detach": False, "Tty": False}, UPGRADE) + payload)
    deadline = t0 + TIMEOUT
    status, hdrs, head, rest = read_head(s, deadline)
    result = {"status": status, "content_type": hdrs.get("content-type"), "sent": len(payload)}
    if status == 101:
        # Wait until all of it came back before ending stdin, so that nothing depends on
        # the half-close in this test.
        got = rest
        while True:
            out, _, _, _ = demux(got)
            if len(out) >= len(payload) or time.monotonic() > deadline:
                break
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            got += d
        s.shutdown(socket.SHUT_WR)
        data, eof = read_until_eof(s, deadline, got)
        out, err, left, framed = demux(data)
        result.update(stdout_len=len(out), stdout_equal=(out == payload), stderr=err.decode(errors="replace"),
                      framed=framed, eof=eof, stdout_head=out[:120].decode(errors="replace"))
    else:
        result["head"] = head
    result["seconds"] = round(time.monotonic() - t0, 3)
    s.close()
    print(json.dumps(result))


def one_tunnel(addr, container, payload, cmd=("cat",), after=b""):
    eid = exec_create(addr, container, list(cmd))
    s = connect(addr)
    try:
        deadline = time.monotonic() + TIMEOUT
        s.sendall(request_bytes("POST", "/exec/%s/start" % eid, {"Detach": False, "Tty": False}, UPGRADE))
        status, _, head, rest = read_head(s, deadline)
        if status != 101:
            return "exec start answered %s: %r" % (status, head[:200])
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data, eof = read_until_eof(s, deadline, rest)
        out, err, _, framed = demux(data)
        if not eof:
            return "no EOF within %d s after shutdown(SHUT_WR) (%d bytes so far)" % (TIMEOUT, len(out))
        if out != payload + after:
            return "stdout differs: sent %d bytes%s, got %d bytes back (...%r)" % (
                len(payload), " and expected %r after them" % after if after else "", len(out), out[-60:])
        if err or not framed:
            return "unexpected stderr %r or framing" % err[:100]
        return None
    finally:
        s.close()


def cmd_halfclose(addr, container, n):
    failures = []
    t0 = time.monotonic()
    for i in range(n):
        payload = os.urandom(1000 + 997 * i)  # sizes from 1000 bytes to ~50 kB
        try:
            why = one_tunnel(addr, container, payload)
        except Exception as e:  # report, go on with the others
            why = "%s: %s" % (type(e).__name__, e)
        if why:
            failures.append("tunnel %d: %s" % (i, why))
    print(json.dumps({"tunnels": n, "good": n - len(failures), "failures": failures[:10],
                      "seconds": round(time.monotonic() - t0, 3)}))


def cmd_halfclose_late(addr, container):
    """Output that comes a second after stdin ended must still arrive."""
    payload = os.urandom(5000)
    t0 = time.monotonic()
    try:
        why = one_tunnel(addr, container, payload, ("sh", "-c", "cat; sleep 1; echo after-eof"), b"after-eof\n")
    except Exception as e:
        why = "%s: %s" % (type(e).__name__, e)
    print(json.dumps({"ok": why is None, "why": why, "seconds": round(time.monotonic() - t0, 3)}))


def cmd_exec_noupgrade(addr, container, cmd):
    eid = exec_create(addr, container, cmd)
    s = connect(addr)
    t0 = time.monotonic()
    deadline = t0 + TIMEOUT
    s.sendall(request_bytes("POST", "/exec/%s/start" % eid, {"Detach": False}))
    status, hdrs, head, rest = read_head(s, deadline)
    result = {"status": status, "content_type": hdrs.get("content-type"), "head": head}
    body = rest
    ended = False
    if status is not None:
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            while True:
                payload, ended = dechunk(body)
                if ended or time.monotonic() > deadline:
                    break
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    break
                if not d:
                    break
                body += d
            body = payload
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(body) < n and time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    break
                if not d:
                    break
                body += d
            ended = len(body) >= n
        else:
            body, ended = read_until_eof(s, deadline, body)
    out, err, _, framed = demux(body)
    result.update(ended=ended, stdout=out.decode(errors="replace"), stderr=err.decode(errors="replace"),
                  framed=framed, seconds=round(time.monotonic() - t0, 3))
    s.close()
    print(json.dumps(result))


def cmd_attach_noupgrade(addr, container):
    s = connect(addr)
    t0 = time.monotonic()
    s.sendall(request_bytes("POST", "/containers/%s/attach?stream=1&stdout=1" % container))
    deadline = t0 + TIMEOUT
    status, hdrs, head, rest = read_head(s, deadline)
    body = rest
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(body) < n and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            body += d
    try:
        message = json.loads(body.decode()).get("message")
    except Exception:
        message = None
    print(json.dumps({"status": status, "content_type": hdrs.get("content-type"), "message": message,
                      "body": body[:300].decode(errors="replace"), "seconds": round(time.monotonic() - t0, 3)}))
    s.close()


def ws_frames(data):
    """Parse server-to-client frames: ([(opcode, payload)], leftover)."""
    frames = []
    i = 0
    while i + 2 <= len(data):
        b0, b1 = data[i], data[i + 1]
        n = b1 & 0x7F
        j = i + 2
        if n == 126:
            if j + 2 > len(data):
                break
            n = struct.unpack(">H", data[j:j + 2])[0]
            j += 2
        elif n == 127:
            if j + 8 > len(data):
                break
            n = struct.unpack(">Q", data[j:j + 8])[0]
            j += 8
        if b1 & 0x80:
            j += 4  # a server must not mask; tolerate it for parsing
        if j + n > len(data):
            break
        frames.append((b0 & 0x0F, data[j:j + n]))
        i = j + n
    return frames, data[i:]


def cmd_ws(addr, container, with_stdin):
    key = base64.b64encode(os.urandom(16)).decode()
    want_accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    query = "stream=1&stdout=1" + ("&stdin=1" if with_stdin else "")
    s = connect(addr)
    t0 = time.monotonic()
    deadline = t0 + TIMEOUT
    s.sendall(("GET /containers/%s/attach/ws?%s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Origin: http://localhost\r\n\r\n" % (container, query, key)).encode())
    status, hdrs, head, rest = read_head(s, deadline)
    result = {"status": status, "upgrade": hdrs.get("upgrade"), "accept_ok": hdrs.get("sec-websocket-accept") == want_accept,
              "head": head}
    sent = b"hello through the websocket\n"
    if status == 101:
        if with_stdin:
            mask = os.urandom(4)
            s.sendall(bytes([0x82, 0x80 | len(sent)]) + mask + bytes(b ^ mask[k % 4] for k, b in enumerate(sent)))
        buf = rest
        text = b""
        frames = []
        # Read for up to 10 s: enough for 3 lines of the ticker, or the echo of stdin.
        end = min(deadline, time.monotonic() + 10)
        while time.monotonic() < end:
            frames_now, left = ws_frames(buf)
            text = b"".join(p for (_, p) in frames_now)
            frames = frames_now
            if (with_stdin and sent in text) or (not with_stdin and text.count(b"\n") >= 4):
                break
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            buf += d
        result.update(opcodes=sorted(set(op for (op, _) in frames)), text=text.decode(errors="replace"),
                      echoed=(sent in text) if with_stdin else None)
        # A clean close: a masked close frame, then our side of the TCP connection.
        try:
            mask = os.urandom(4)
            s.sendall(bytes([0x88, 0x80]) + mask)
        except OSError:
            pass
    result["seconds"] = round(time.monotonic() - t0, 3)
    s.close()
    print(json.dumps(result))


def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def h2_frames(data):
    """[(type, flags, stream, length)], leftover."""
    frames = []
    i = 0
    while i + 9 <= len(data):
        n = struct.unpack(">I", b"\0" + data[i:i + 3])[0]
        if i + 9 + n > len(data):
            break
        frames.append((data[i + 3], data[i + 4], struct.unpack(">I", data[i + 5:i + 9])[0] & 0x7FFFFFFF, n))
        i += 9 + n
    return frames, data[i:]


def recv_until(s, buf, pred, deadline):
    while not pred(buf) and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
    return buf


def cmd_grpc(addr):
    """The daemon is the HTTP/2 server on /grpc: it sends its SETTINGS, we send the client
    preface and our SETTINGS, it acknowledges them."""
    s = connect(addr)
    t0 = time.monotonic()
    deadline = t0 + TIMEOUT
    s.sendall(request_bytes("POST", "/grpc", None, ["Connection: Upgrade", "Upgrade: h2c"]))
    status, hdrs, head, rest = read_head(s, deadline)
    result = {"status": status, "upgrade": hdrs.get("upgrade"), "head": head}
    if status == 101:
        buf = recv_until(s, rest, lambda b: any(f[0] == 4 and not f[1] & 1 for f in h2_frames(b)[0]),
                         min(deadline, time.monotonic() + 5))
        first, _ = h2_frames(buf)
        result["server_settings"] = any(f[0] == 4 and not f[1] & 1 and f[2] == 0 for f in first)
        s.sendall(H2_PREFACE + h2_frame(4, 0, 0))
        buf = recv_until(s, buf, lambda b: any(f[0] == 4 and f[1] & 1 for f in h2_frames(b)[0]),
                         min(deadline, time.monotonic() + 5))
        frames, _ = h2_frames(buf)
        result["frames"] = [[t, fl, st, n] for (t, fl, st, n) in frames]
        result["settings_ack"] = any(f[0] == 4 and f[1] & 1 for f in frames)
    result["seconds"] = round(time.monotonic() - t0, 3)
    s.close()
    print(json.dumps(result))


def cmd_session(addr):
    """On /session the roles turn: the daemon is the HTTP/2 *client* of the session (it
    sends the client preface); we answer as the server and it then makes a call."""
    s = connect(addr)
    t0 = time.monotonic()
    deadline = t0 + TIMEOUT
    s.sendall(request_bytes("POST", "/session", None, [
        "Connection: Upgrade", "Upgrade: h2c",
        "X-Docker-Expose-Session-Uuid: dsp-hijack-test-%d" % os.getpid(),
        "X-Docker-Expose-Session-Name: dsp-hijack-test",
        "X-Docker-Expose-Session-Sharedkey: dsp-hijack-key"]))
    status, hdrs, head, rest = read_head(s, deadline)
    result = {"status": status, "upgrade": hdrs.get("upgrade"), "head": head}
    if status == 101:
        buf = recv_until(s, rest, lambda b: len(b) >= len(H2_PREFACE) + 9, min(deadline, time.monotonic() + 5))
        result["client_preface"] = buf.startswith(H2_PREFACE)
        after = buf[len(H2_PREFACE):] if result["client_preface"] else b""
        first, _ = h2_frames(after)
        result["client_settings"] = bool(first) and first[0][0] == 4 and not first[0][1] & 1
        # Our server preface (SETTINGS) and the ACK of the daemon's SETTINGS.
        s.sendall(h2_frame(4, 0, 0) + h2_frame(4, 1, 0))
        after = recv_until(s, after, lambda b: any(f[0] == 1 for f in h2_frames(b)[0]) and
                           any(f[0] == 4 and f[1] & 1 for f in h2_frames(b)[0]), min(deadline, time.monotonic() + 5))
        frames, _ = h2_frames(after)
        result["frames"] = [[t, fl, st, n] for (t, fl, st, n) in frames]
        result["settings_ack"] = any(f[0] == 4 and f[1] & 1 for f in frames)
        result["headers_on_stream_1"] = any(f[0] == 1 and f[2] == 1 for f in frames)
    result["seconds"] = round(time.monotonic() - t0, 3)
    s.close()
    print(json.dumps(result))


def cmd_ping(addr):
    status, _, body = simple(addr, "GET", "/_ping")
    print(json.dumps({"status": status, "body": body.decode(errors="replace")}))


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, addr = argv[1], argv[2]
    args = argv[3:]
    if cmd == "exec-same-write" and len(args) == 1:
        cmd_exec_same_write(addr, args[0])
    elif cmd == "halfclose" and len(args) == 2:
        cmd_halfclose(addr, args[0], int(args[1]))
    elif cmd == "halfclose-late" and len(args) == 1:
        cmd_halfclose_late(addr, args[0])
    elif cmd == "exec-noupgrade" and len(args) >= 2:
        cmd_exec_noupgrade(addr, args[0], args[1:])
    elif cmd == "attach-noupgrade" and len(args) == 1:
        cmd_attach_noupgrade(addr, args[0])
    elif cmd == "ws" and len(args) in (1, 2):
        cmd_ws(addr, args[0], args[1:] == ["--stdin"])
    elif cmd == "grpc" and not args:
        cmd_grpc(addr)
    elif cmd == "session" and not args:
        cmd_session(addr)
    elif cmd == "ping" and not args:
        cmd_ping(addr)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

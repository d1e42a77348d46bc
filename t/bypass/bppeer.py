#!/usr/bin/python3
"""Processes the fault tests of t/bypass/ start and kill: a fake Docker daemon that dies
in the middle of what it sends, and clients that are killed in the middle of a stream.

  bppeer.py upstream MODE SOCKET   listen on SOCKET (replacing a stale file), print "ready";
                                   for each connection read the request head, then:
      ok            answer 200 "OK" with a Content-Length, serve on (until killed)
      chunked-die   200 with Transfer-Encoding: chunked, one chunk, then SIGKILL itself
      length-die    200 with Content-Length: 100, 10 bytes of it, then SIGKILL itself
      head-die      half a response head, then SIGKILL itself
      upgrade-die   101 (Upgrade: tcp), a few bytes, then SIGKILL itself
  bppeer.py client stream SOCKET TARGET   GET TARGET; once the head and some body came,
                                          print "streaming" and wait to be killed
  bppeer.py client tunnel SOCKET TARGET   POST TARGET with Upgrade: tcp; once the 101 came,
                                          print "tunnel" and wait to be killed
"""

import os
import signal
import socket
import sys
import time


def read_head(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None
        buf += d
    return buf


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def upstream(mode, path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o666)
    srv.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        if read_head(c) is None:
            c.close()
            continue
        if mode == "ok":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK")
            c.close()
            continue
        if mode == "chunked-die":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"d\r\n{\"partial\":1}\r\n")
        elif mode == "length-die":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n"
                      b"0123456789")
        elif mode == "head-die":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Ty")
        elif mode == "upgrade-die":
            c.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                      b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello-from-the-tunnel\n")
        else:
            raise SystemExit("unknown mode %r" % mode)
        time.sleep(0.3)  # what was sent is on its way; now die as a killed daemon does
        die()


def client(mode, path, target):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    if mode == "stream":
        s.sendall(b"GET %s HTTP/1.1\r\nHost: docker\r\n\r\n" % target.encode())
    else:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                  b"Content-Length: 0\r\n\r\n" % target.encode())
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            print("closed " + repr(buf[:200]), flush=True)
            return 1
        buf += d
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if mode == "stream" and sep and rest:
            break
        if mode == "tunnel" and sep:
            if not head.startswith(b"HTTP/1.1 101"):
                print("no-upgrade " + repr(head[:200]), flush=True)
                return 1
            break
    print("streaming" if mode == "stream" else "tunnel", flush=True)
    while True:
        time.sleep(60)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "upstream":
        upstream(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 5 and sys.argv[1] == "client":
        return client(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main())

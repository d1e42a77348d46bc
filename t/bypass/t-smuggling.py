#!/usr/bin/python3
"""No smuggling: requests whose framing or syntax could be read two ways are refused with
400 before the daemon sees a byte, and the connection they came on is closed, so that
what was pipelined behind them is never forwarded.

Each case is sent in one write, followed by a pipelined canary request that the policy
allows (GET /_ping?canary=N). The client must get exactly one answer, a 400, and then the
end of the connection; the daemon (a real dockerd --debug of this test's own, behind a
recording relay) must have been sent nothing at all: no connection, no "Calling" line.

Then the keep-alive cases: allowed requests pipelined with refused and malformed ones.
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bplib  # noqa: E402
import dsp  # noqa: E402

P = b"POST /containers/dsp-smuggle/start HTTP/1.1\r\nHost: docker\r\n"  # allowed by the policy below
G = b"GET /containers/json HTTP/1.1\r\nHost: docker\r\n"                # allowed by the policy below
TE = b"Transfer-Encoding: chunked\r\n"

# (description, the bytes of the request; a canary is sent right behind them)
CASES = [
    # Content-Length and Transfer-Encoding
    ("Content-Length together with Transfer-Encoding: chunked",
     P + b"Content-Length: 5\r\n" + TE + b"\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked, then Content-Length",
     P + TE + b"Content-Length: 5\r\n\r\n0\r\n\r\n"),
    ("Content-Length: 0 with Transfer-Encoding: chunked",
     P + b"Content-Length: 0\r\n" + TE + b"\r\n0\r\n\r\n"),
    ("Content-Length with Transfer-Encoding: identity",
     P + b"Content-Length: 2\r\nTransfer-Encoding: identity\r\n\r\n{}"),
    ("two equal Content-Length headers",
     P + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"),
    ("two different Content-Length headers",
     P + b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}"),
    ("Content-Length as a list '2, 2'",
     P + b"Content-Length: 2, 2\r\n\r\n{}"),
    ("Content-Length '+2'", P + b"Content-Length: +2\r\n\r\n{}"),
    ("Content-Length '-1'", P + b"Content-Length: -1\r\n\r\n"),
    ("Content-Length '0x2'", P + b"Content-Length: 0x2\r\n\r\n{}"),
    ("Content-Length '2x'", P + b"Content-Length: 2x\r\n\r\n{}"),
    ("Content-Length '1 1'", P + b"Content-Length: 1 1\r\n\r\n{}"),
    ("Content-Length empty", P + b"Content-Length:\r\n\r\n"),
    # Transfer-Encoding other than a single chunked
    ("Transfer-Encoding: gzip", P + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: identity", P + b"Transfer-Encoding: identity\r\n\r\n"),
    ("Transfer-Encoding: gzip, chunked", P + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked, gzip", P + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked;q=1", P + b"Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: xchunked", P + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding empty", P + b"Transfer-Encoding:\r\n\r\n0\r\n\r\n"),
    ("two Transfer-Encoding: chunked headers", P + TE + TE + b"\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked and Transfer-Encoding: gzip",
     P + TE + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n"),
    # Bad chunk sizes (the request head is fine; the body is not)
    ("chunk size not hex ('zz')", P + TE + b"\r\nzz\r\nab\r\n0\r\n\r\n"),
    ("chunk size negative ('-1')", P + TE + b"\r\n-1\r\nab\r\n0\r\n\r\n"),
    ("chunk size with 0x prefix", P + TE + b"\r\n0x2\r\nab\r\n0\r\n\r\n"),
    ("chunk size overflowing 64 bits", P + TE + b"\r\n1ffffffffffffffff\r\nab\r\n0\r\n\r\n"),
    ("chunk size with leading space", P + TE + b"\r\n 2\r\nab\r\n0\r\n\r\n"),
    ("chunk size line ended by bare LF", P + TE + b"\r\n2\nab\r\n0\r\n\r\n"),
    ("chunk size empty", P + TE + b"\r\n\r\nab\r\n0\r\n\r\n"),
    ("chunk data longer than its size", P + TE + b"\r\n2\r\nabcdef\r\n0\r\n\r\n"),
    ("chunk data without its CRLF", P + TE + b"\r\n2\r\nab0\r\n\r\n"),
    # obs-fold
    ("obs-fold in an ordinary header", P + b"Content-Length: 0\r\nX-Note: a\r\n b\r\n\r\n"),
    ("obs-fold with a tab", P + b"Content-Length: 0\r\nX-Note: a\r\n\tb\r\n\r\n"),
    ("obs-fold continuing Content-Length", P + b"Content-Length: 2\r\n 0\r\n\r\n{}"),
    ("obs-fold continuing Transfer-Encoding", P + b"Transfer-Encoding: gzip\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("obs-fold hiding a Transfer-Encoding name", P + b"Content-Length: 0\r\nX-Note: a\r\n Transfer-Encoding: chunked\r\n\r\n"),
    ("first header line starting with a space", b"GET /containers/json HTTP/1.1\r\n Host: docker\r\nHost: docker\r\n\r\n"),
    # whitespace before the colon
    ("space before the colon of Content-Length", P + b"Content-Length : 2\r\n\r\n{}"),
    ("space before the colon of Transfer-Encoding",
     P + b"Content-Length: 2\r\nTransfer-Encoding : chunked\r\n\r\n{}"),
    ("tab before the colon of Content-Length", P + b"Content-Length\t: 2\r\n\r\n{}"),
    ("space before the colon of Host", b"GET /containers/json HTTP/1.1\r\nHost : docker\r\n\r\n"),
    ("space before the colon of an ordinary header", G + b"X-Note : a\r\n\r\n"),
    # CR, LF, NUL inside header names and values
    ("bare CR inside a header value", G + b"X-Note: a\rb\r\n\r\n"),
    ("bare CR then a header inside a value", G + b"X-Note: a\rTransfer-Encoding: chunked\r\n\r\n"),
    ("bare LF inside a header value", G + b"X-Note: a\nb\r\n\r\n"),
    ("bare LF inside a value, then a header", G + b"X-Note: a\nX-Injected: 1\r\n\r\n"),
    ("bare LF inside a value, then Content-Length", P + b"X-Note: a\nContent-Length: 2\r\n\r\n{}"),
    ("NUL inside a header value", G + b"X-Note: a\x00b\r\n\r\n"),
    ("NUL inside the Content-Length value", P + b"Content-Length: 2\x005\r\n\r\n{}"),
    ("NUL inside the Transfer-Encoding value", P + b"Transfer-Encoding: chunked\x00, gzip\r\n\r\n0\r\n\r\n"),
    ("NUL inside a header name", G + b"X-No\x00te: a\r\n\r\n"),
    ("DEL inside a header value", G + b"X-Note: a\x7fb\r\n\r\n"),
    ("header name with a space", G + b"X Note: a\r\n\r\n"),
    ("header name with '@'", G + b"X@Note: a\r\n\r\n"),
    ("header line without a colon", G + b"X-Note\r\n\r\n"),
    ("two Host headers", b"GET /containers/json HTTP/1.1\r\nHost: docker\r\nHost: other\r\n\r\n"),
    ("HTTP/1.1 without a Host header", b"GET /containers/json HTTP/1.1\r\nX-Note: a\r\n\r\n"),
    # request lines
    ("two spaces after the method", b"GET  /containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"),
    ("two spaces before the version", b"GET /containers/json  HTTP/1.1\r\nHost: docker\r\n\r\n"),
    ("a space after the version", b"GET /containers/json HTTP/1.1 \r\nHost: docker\r\n\r\n"),
    ("a space before the method", b" GET /containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"),
    ("tabs as separators", b"GET\t/containers/json\tHTTP/1.1\r\nHost: docker\r\n\r\n"),
    ("a tab before the version", b"GET /containers/json\tHTTP/1.1\r\nHost: docker\r\n\r\n"),
    ("a space inside the target", b"GET /containers/json /x HTTP/1.1\r\nHost: docker\r\n\r\n"),
    ("request line ended by bare LF inside the target",
     b"GET /containers\n/json HTTP/1.1\r\nHost: docker\r\n\r\n"),
    ("request line ended by bare CR", b"GET /containers/json HTTP/1.1\rHost: docker\r\n\r\n"),
    ("HTTP/0.9 request line", b"GET /containers/json\r\n"),
    ("HTTP/0.9 request line and an empty line", b"GET /containers/json\r\n\r\n"),
    ("method only", b"GET\r\n\r\n"),
    # versions other than 1.0 and 1.1
    ("HTTP/0.9", b"GET /containers/json HTTP/0.9\r\nHost: docker\r\n\r\n"),
    ("HTTP/1.2", b"GET /containers/json HTTP/1.2\r\nHost: docker\r\n\r\n"),
    ("HTTP/1.9", b"GET /containers/json HTTP/1.9\r\nHost: docker\r\n\r\n"),
    ("HTTP/2.0", b"GET /containers/json HTTP/2.0\r\nHost: docker\r\n\r\n"),
    ("HTTP/3.0", b"GET /containers/json HTTP/3.0\r\nHost: docker\r\n\r\n"),
    ("HTTP/1.10", b"GET /containers/json HTTP/1.10\r\nHost: docker\r\n\r\n"),
    ("HTTP/01.1", b"GET /containers/json HTTP/01.1\r\nHost: docker\r\n\r\n"),
    ("HTTP/1", b"GET /containers/json HTTP/1\r\nHost: docker\r\n\r\n"),
    ("lower-case http/1.1", b"GET /containers/json http/1.1\r\nHost: docker\r\n\r\n"),
    ("HTTP/1.1x", b"GET /containers/json HTTP/1.1x\r\nHost: docker\r\n\r\n"),
    ("the HTTP/2 connection preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
]


def canary(n):
    return b"GET /_ping?canary=%d HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n" % n


def body(tap):
    daemon = bplib.DebugDaemon(tap)
    d = dsp.tmpdir(tap)
    rec = bplib.Recorder(tap, os.path.join(d, "recorder.sock"), daemon.sock)
    proc, sock, log = bplib.start_proxy(tap, d, "proxy", {
        "SOCKET_PATH": rec.path, "LOG_LEVEL": "debug", "CONTAINERS": "1", "POST": "1",
        "SOCKET_PROXY_KEEPALIVE": "3s", "SOCKET_PROXY_HEADER_TIMEOUT": "3s"})

    offset = daemon.fence("start")

    def run(label, data, timeout=6):
        """Sends data; returns (answer bytes, how it ended, bytes sent to the daemon, calls)."""
        nonlocal offset
        rec.label = label
        raw, how = bplib.exchange(sock, data, timeout=timeout)
        rec.for_label(label)  # waits until the daemon is done with what it was sent
        new = daemon.fence(label)
        calls = [x for x in daemon.calls(offset) if "dsp-fence=" not in x]
        offset = new
        rec.label = None
        # and anything the proxy connected late; a connection that carried no byte (the
        # proxy's start-up probe of the daemon's socket) is no request
        sent = [x for x in rec.for_label(label, wait=0) if x]
        return raw, how, sent, calls

    for i, (desc, data) in enumerate(CASES, 1):
        raw, how, sent, calls = run("smuggle%d" % i, data + canary(i))
        st = bplib.statuses(raw)
        problems = []
        if st != [400]:
            problems.append("answers %s, want exactly one: [400]" % st)
        if how != "eof":
            problems.append("the connection was not closed after the answer (%s)" % how)
        if sent:
            problems.append("the daemon was sent: %s" % " | ".join(bplib.show(s) for s in sent))
        if calls:
            problems.append("the daemon logged: %s" % calls)
        what = "%s: 400, connection closed, the daemon sees nothing (nor the pipelined canary)" % desc
        diag = ["  request: " + bplib.show(data, 200)] + ["  " + p for p in problems] + ["  answer: " + bplib.show(raw)]
        if b"docker-socket-proxy: " not in raw:
            problems.append("the 400 is not the proxy's JSON message")
        tap.ok(not problems, what, *diag)

    tap.ok(proc.poll() is None, "the proxy still runs after %d malformed requests" % len(CASES))

    # ---- keep-alive and pipelining
    # Control: two allowed requests pipelined are both forwarded (so the checks below can fail).
    raw, how, sent, calls = run("pipe-control", b"GET /_ping?pipe=1 HTTP/1.1\r\nHost: docker\r\n\r\n"
                                b"GET /_ping?pipe=2 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
    tap.is_(bplib.statuses(raw), [200, 200], "control: two allowed requests pipelined on one connection are answered")
    tap.is_(calls, ["GET /_ping?pipe=1", "GET /_ping?pipe=2"], "control: the daemon logged both")

    # Allowed, then malformed, then allowed: only the first reaches the daemon.
    raw, how, sent, calls = run("pipe-mid", b"GET /_ping?pipe=3 HTTP/1.1\r\nHost: docker\r\n\r\n"
                                + P + b"Content-Length: 2\r\n" + TE + b"\r\n0\r\n\r\n"
                                + b"GET /containers/json?pipe=4 HTTP/1.1\r\nHost: docker\r\n\r\n")
    tap.is_(bplib.statuses(raw), [200, 400], "allowed, malformed, allowed pipelined: answers 200 then 400 and no more")
    tap.is_(how, "eof", "and the connection is closed after the 400")
    tap.is_(calls, ["GET /_ping?pipe=3"], "the daemon logged the first request only")
    tap.is_(len(sent), 1, "the daemon was sent one connection (the first request's)",)

    # Refused (403), then an allowed request pipelined.
    raw, how, sent, calls = run("pipe-403", b"POST /containers/x/exec HTTP/1.1\r\nHost: docker\r\n"
                                b"Content-Length: 0\r\n\r\nGET /containers/json?pipe=5 HTTP/1.1\r\nHost: docker\r\n\r\n")
    tap.is_(bplib.statuses(raw), [403], "refused, then allowed pipelined: answers 403 and no more")
    tap.is_(how, "eof", "and the connection is closed after the 403")
    tap.ok(not sent and not calls, "the daemon sees nothing of either", "sent: %s, calls: %s" % (sent, calls))

    # A request smuggled inside the body of a malformed one.
    inner = b"POST /containers/x/exec HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n"
    raw, how, sent, calls = run("pipe-inner", P + b"Content-Length: %d\r\n" % len(inner) + TE + b"\r\n" + inner)
    tap.is_(bplib.statuses(raw), [400], "a request inside the body of a CL+TE request: one 400")
    tap.ok(not sent and not calls, "the daemon sees neither", "sent: %s, calls: %s" % (sent, calls))

    # Control: a request inside a well-framed body stays a body.
    raw, how, sent, calls = run("pipe-body", P + b"Content-Type: text/plain\r\nConnection: close\r\n"
                                b"Content-Length: %d\r\n\r\n" % len(inner) + inner)
    tap.ok(bplib.statuses(raw) == [400] and b"non-empty request body" in raw,
           "control: a request inside a well-framed body is a body (the daemon's own 400: start takes no body)",
           bplib.show(raw))
    tap.is_(calls, ["POST /containers/dsp-smuggle/start"], "the daemon routed only the outer request")

    # The malformed request arrives, then (after its answer) more on the same connection.
    rec.label = "pipe-late"
    s = bplib.connect(sock, 6)
    s.sendall(P + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
    first, _ = bplib.read_until_close(s, 6)
    late_error = None
    try:
        s.sendall(b"GET /containers/json?pipe=6 HTTP/1.1\r\nHost: docker\r\n\r\n")
        more, how = bplib.read_until_close(s, 3)
    except OSError as e:
        late_error = e
        more, how = b"", "reset"
    s.close()
    rec.for_label("pipe-late")
    new = daemon.fence("pipe-late")
    calls = [x for x in daemon.calls(offset) if "dsp-fence=" not in x]
    offset = new
    rec.label = None
    sent = [x for x in rec.for_label("pipe-late", wait=0) if x]
    tap.is_(bplib.statuses(first), [400], "two Content-Length headers on a keep-alive connection: 400")
    tap.is_(bplib.statuses(more), [], "a request written after the 400 gets no answer (%s)" % (late_error or how))
    tap.ok(not sent and not calls, "and reaches nothing", "sent: %s, calls: %s" % (sent, calls))

    tap.ok(proc.poll() is None, "the proxy still runs")
    # The whole run: nothing but the fences and the allowed pipelined requests reached dockerd.
    all_calls = daemon.calls(0)
    start = next(i for i, x in enumerate(all_calls) if "dsp-fence=start" in x)
    run_calls = [x for x in all_calls[start:] if "dsp-fence=" not in x]
    want = ["GET /_ping?pipe=1", "GET /_ping?pipe=2", "GET /_ping?pipe=3", "POST /containers/dsp-smuggle/start"]
    tap.ok(run_calls == want, "over the whole run, dockerd's log holds only the allowed requests",
           "       got: %r" % (run_calls,), "  expected: %r" % (want,))


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

#!/usr/bin/python3
"""No bypass: every request of t/bypass/corpus.tsv is sent raw, over the proxy's Unix
listener, to the proxy in front of a real dockerd --debug of this test's own. For each
case the status must be the one listed AND the daemon must have seen exactly what the
case says: nothing at all (refused cases), a routed call "Calling METHOD TARGET" in its
own log (allowed controls, so that the check can fail), or the request without any route
(the daemon's router has no endpoint for it).

Between the proxy and the daemon sits a recording relay (bplib.Recorder), so that what
reached the daemon is known byte for byte even when its router logs nothing; after each
case a fence request made directly to the daemon marks its log, so that every "Calling"
line is attributed to the case that caused it. At the end, every "Calling" line of the
whole run must be a fence or an allowed control's.
"""

import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bplib  # noqa: E402
import dsp  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus.tsv")
DAEMON_KINDS = ("none", "call", "unrouted")


def unescape(text):
    """The corpus's escapes: \\xHH \\t \\r \\n \\0 \\\\ and {{TEXT*N}}; the rest is UTF-8."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if text.startswith("{{", i):
            end = text.index("}}", i)
            what, n = text[i + 2:end].rsplit("*", 1)
            out += unescape(what) * int(n)
            i = end + 2
        elif c == "\\":
            e = text[i + 1]
            if e == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            out += {"t": b"\t", "r": b"\r", "n": b"\n", "0": b"\0", "\\": b"\\"}[e]
            i += 2
        else:
            out += c.encode()
            i += 1
    return bytes(out)


class Case:
    def __init__(self, lineno, fields):
        self.lineno = lineno
        policy, method, target, headers, status, daemon, note = fields
        self.policy = () if policy == "-" else tuple(policy.split())
        for v in self.policy:
            if not re.match(r"^[A-Z_]+=[^=]*$", v):
                raise ValueError("line %d: bad policy word %r" % (lineno, v))
        self.method = unescape(method)
        self.target = unescape(target)
        self.headers = b"" if headers == "-" else unescape(headers)
        self.status = int(status)
        if daemon not in DAEMON_KINDS:
            raise ValueError("line %d: daemon must be one of %s" % (lineno, DAEMON_KINDS))
        self.daemon = daemon
        self.note = note

    def request(self):
        head = self.method + b" " + self.target + b" HTTP/1.1\r\nHost: docker\r\n"
        extra = self.headers.lower()
        if self.headers:
            head += self.headers + b"\r\n"
        if b"connection:" not in extra:
            head += b"Connection: close\r\n"
        if self.method not in (b"GET", b"HEAD") and b"content-length:" not in extra:
            head += b"Content-Length: 0\r\n"
        return head + b"\r\n"

    def label(self):
        shown = self.target if len(self.target) <= 80 else self.target[:60] + b"...(%d bytes)" % len(self.target)
        return "line %d: [%s] %s %s%s -> %d, daemon %s (%s)" % (
            self.lineno, " ".join(self.policy) or "defaults", self.method.decode("latin-1"),
            shown.decode("latin-1").encode("unicode_escape").decode(),
            " + " + self.headers.decode("latin-1").encode("unicode_escape").decode() if self.headers else "",
            self.status, self.daemon, self.note)


def load():
    cases = []
    with open(CORPUS, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 7:
                raise ValueError("line %d: %d fields, want 7" % (n, len(fields)))
            cases.append(Case(n, fields))
    return cases


def body(tap):
    cases = load()
    tap.ok(len(cases) >= 150, "the corpus holds at least 150 cases (%d)" % len(cases))
    daemon = bplib.DebugDaemon(tap)
    d = dsp.tmpdir(tap)
    rec = bplib.Recorder(tap, os.path.join(d, "recorder.sock"), daemon.sock)

    # Group the cases by policy, keeping their order; one proxy per policy.
    groups = []
    for c in cases:
        if not groups or groups[-1][0] != c.policy:
            groups.append((c.policy, []))
        groups[-1][1].append(c)

    allowed_calls = []  # the Calling lines the controls must cause
    offset = daemon.fence("start")
    failed = []
    for gi, (policy, group) in enumerate(groups):
        env = {"SOCKET_PATH": rec.path, "LOG_LEVEL": "debug", "SOCKET_PROXY_KEEPALIVE": "2s"}
        for v in policy:
            k, val = v.split("=", 1)
            env[k] = val
        proc, sock, log = bplib.start_proxy(tap, d, "proxy%d" % gi, env)
        for c in group:
            label = "case%d" % c.lineno
            rec.label = label
            raw, how = bplib.exchange(sock, c.request(), timeout=10)
            got = bplib.first_status(raw)
            rec.for_label(label)  # waits until the daemon is done with what it was sent
            # Everything the daemon logged up to a fence made after that.
            new_offset = daemon.fence(c.lineno)
            calls = [x for x in daemon.calls(offset) if "dsp-fence=" not in x]
            offset = new_offset
            rec.label = None
            # with anything the proxy connected late; a connection that carried no byte (the
            # proxy's start-up probe of the daemon's socket) is no request
            sent = [x for x in rec.for_label(label, wait=0) if x]

            problems = []
            if got != c.status:
                problems.append("status %s, want %d" % (got, c.status))
            if how == "timeout":
                problems.append("the proxy did not close the connection within 10 s")
            want_line = (c.method + b" " + c.target).decode("latin-1")
            if c.daemon == "none":
                if sent:
                    problems.append("the daemon was sent %d connection(s): %s" % (
                        len(sent), " | ".join(bplib.show(s) for s in sent)))
                if calls:
                    problems.append("the daemon logged %s" % calls)
            else:
                first_line = c.method + b" " + c.target + b" HTTP/1.1\r\n"
                if len(sent) != 1 or not sent[0].startswith(first_line):
                    problems.append("the daemon was not sent the request as it came (%d connection(s): %s)" % (
                        len(sent), " | ".join(bplib.show(s) for s in sent)))
                if c.daemon == "call":
                    if calls != [want_line]:
                        problems.append("the daemon logged %s, want exactly ['Calling %s']" % (calls, want_line))
                    allowed_calls.append(want_line)
                elif calls:
                    problems.append("the daemon routed it: it logged %s" % calls)
            good = not problems
            diag = ["  " + p for p in problems] + ["  answer: " + bplib.show(raw, 400)]
            tap.ok(good, c.label(), *diag)
            if not good:
                failed.append(c)
        rc = dsp.stop(tap, proc)
        tap.ok(rc == 0, "proxy for [%s] ran all its cases and stopped with status 0 (%s)" % (
            " ".join(policy) or "defaults", rc), bplib.read_text(log)[-3000:])

    # The whole run, once more: nothing reached the daemon but the fences and the controls.
    all_calls = [x for x in daemon.calls(0)]
    start = next(i for i, x in enumerate(all_calls) if "dsp-fence=start" in x)
    run_calls = [x for x in all_calls[start:] if "dsp-fence=" not in x]
    tap.is_(run_calls, allowed_calls, "over the whole run, dockerd's log holds exactly the allowed controls' calls "
            "(%d) and nothing else" % len(allowed_calls))
    forwarded = sum(1 for c in cases if c.daemon != "none")
    tap.is_(rec.count_requests(), forwarded, "over the whole run, the daemon was sent exactly the %d forwarded "
            "cases" % forwarded)
    n_call = sum(1 for c in cases if c.daemon == "call")
    tap.ok(n_call >= 20 and len(cases) - forwarded >= 100,
           "the corpus has allowed controls (%d) and refused cases (%d) both" % (n_call, len(cases) - forwarded))
    if failed:
        tap.diag("%d case(s) failed: lines %s" % (len(failed), ", ".join(str(c.lineno) for c in failed)))


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

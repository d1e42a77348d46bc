#!/usr/bin/python3
"""Soak: 100,000 mixed requests through ONE proxy process in front of a real dockerd, from
several client processes at once, then the proxy's resources must be back where they were.

The mix (shares of DSP_SOAK_REQUESTS, default 100000; every request is counted once):
  ka         allowed GETs (/_ping, /version, /containers/json) on keep-alive connections,
             100 a connection, over the Unix listener                                   200
  ka-tcp     the same over the TCP listener, 25 a connection                            200
  close      allowed GETs, one a connection: half with "Connection: close" (the proxy
             closes), half keep-alive requests after which the client just closes      200
  refused    GET /images/json, DELETE /containers/nosuch, POST /build                   403
  malformed  GET //x, a request with both Content-Length and Transfer-Encoding,
             GET /v1.41/%2e%2e/x                                                        400
  events     GET /events cut short by the client: after the head, or after the first
             bytes of a stream that has data (since= the test's start)                  200
  tunnel     exec start of `cat` with the upgrade headers through the proxy (the exec is
             created directly on the daemon), a few bytes in, half-close, the same bytes
             back (demultiplexed), EOF                                                  101

Checks: every response had the expected status (and a plausible body); after the load the
proxy's open descriptors (/proc/PID/fd) and threads (/proc/PID/status Threads) are back to
their idle figures (measured after a warm-up with every kind, before the load) within
SETTLE_SECONDS; its VmRSS stays under the bound explained at RSS_SLACK_KIB; the RSS after the
second half of the load is within RSS_PLATEAU of the RSS after the first half; the proxy
exits 0 on SIGTERM.

  DSP_SOAK_REQUESTS (100000)  DSP_SOAK_WORKERS (client processes, 6)
"""

import collections
import json
import multiprocessing
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dsp  # noqa: E402

TOTAL = int(os.environ.get("DSP_SOAK_REQUESTS", "100000"))
WORKERS = int(os.environ.get("DSP_SOAK_WORKERS", "6"))
IO_TIMEOUT = 30.0
SETTLE_SECONDS = 5.0

# The RSS bound: idle RSS (after the warm-up) + RSS_SLACK. The proxy runs a thread per
# connection (MHD_USE_THREAD_PER_CONNECTION, 256 KiB stacks); with WORKERS client processes
# (each one connection at a time) plus the daemon side, at most about WORKERS + 4 connection
# threads live at once. What such a load may leave behind without any leak is bounded by that
# concurrency, not by the number of requests:
#   - glibc malloc arenas: one per concurrent thread at most (glibc caps them at 8 per core);
#     each keeps the free memory at its top up to its trim threshold, which glibc's dynamic
#     mmap threshold raises past the 128 KiB MHD connection pool and the tunnel buffers: up to
#     about 512 KiB each, 5 MiB for 10 arenas;
#   - glibc's cache of thread stacks (up to 40 MiB of address space), of which only the pages
#     the threads touched count: some tens of KiB a stack, under 1 MiB for 10 stacks.
# 8 MiB covers both with room (measured on the 2-core CI machine: +1.0 MiB after 100,000
# requests, peak +1.9 MiB during the load). A leak of 84 bytes a request (100,000), or of
# 184 bytes a client connection (about 45,700 of them), goes past it.
# RSS_PLATEAU catches slower steady leaks: the second half of the load (50,000 requests of the
# same mix) must not add more than that to the RSS measured after the first half (measured:
# +24 KiB).
RSS_SLACK_KIB = 8 * 1024
RSS_PLATEAU_KIB = 2 * 1024

# shares of TOTAL, and requests per job
MIX = [
    ("ka", 0.50, 100),
    ("ka-tcp", 0.05, 25),
    ("close", 0.20, 20),
    ("refused", 0.12, 20),
    ("malformed", 0.10, 20),
    ("events", 0.025, 10),
    ("tunnel", 0.005, 2),
]
EXPECT = {"ka": 200, "ka-tcp": 200, "close": 200, "refused": 403, "malformed": 400, "events": 200,
          "tunnel": 101}
ALLOWED = ["/_ping", "/version", "/containers/json"]
REFUSED = [("GET", "/images/json", None), ("DELETE", "/containers/nosuch", None), ("POST", "/build", b"")]
MALFORMED = [
    b"GET //x HTTP/1.1\r\nHost: docker\r\n\r\n",
    b"POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /v1.41/%2e%2e/x HTTP/1.1\r\nHost: docker\r\n\r\n",
]

# Set in the parent before the pool forks.
CFG = {}


# ------------------------------------------------------------------------------------------
# Connections: dsp.RawClient (keep-alive, Content-Length and chunked bodies).

def Conn(addr):
    """addr: ("unix", path) or ("tcp", (host, port))."""
    return dsp.RawClient.connect(addr[1], IO_TIMEOUT)


def request(method, target, body=None, extra=()):
    head = "%s %s HTTP/1.1\r\nHost: docker\r\n" % (method, target)
    for h in extra:
        head += h + "\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + (body or b"")


def plausible(path, body):
    if path == "/_ping":
        return body == b"OK"
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    if path == "/version":
        return isinstance(doc, dict) and "ApiVersion" in doc
    return isinstance(doc, list)


def demux(data):
    """stdout+stderr of a multiplexed stream, or None when it is not one."""
    out, i = b"", 0
    while i + 8 <= len(data):
        if data[i] not in (0, 1, 2) or data[i + 1:i + 4] != b"\0\0\0":
            return None
        size = struct.unpack(">I", data[i + 4:i + 8])[0]
        out += data[i + 8:i + 8 + size]
        i += 8 + size
    return out if i == len(data) else None


# ------------------------------------------------------------------------------------------
# The jobs; each returns (kind, requests done, statuses Counter, problems list).

_daemon_conn = None


def daemon_exec_create(cid):
    """Create an exec of `cat` directly on the daemon; returns its ID."""
    global _daemon_conn
    body = json.dumps({"AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": False,
                       "Cmd": ["cat"]}).encode()
    for attempt in (1, 2):
        try:
            if _daemon_conn is None:
                _daemon_conn = Conn(("unix", CFG["daemon"]))
            _daemon_conn.send(request("POST", "/v1.41/containers/%s/exec" % cid, body))
            status, _h, data, closes = _daemon_conn.response()
            if closes:
                _daemon_conn.close()
                _daemon_conn = None
            if status != 201:
                raise RuntimeError("exec create on the daemon: %d %r" % (status, data[:200]))
            return json.loads(data)["Id"]
        except (OSError, EOFError):
            if _daemon_conn is not None:
                _daemon_conn.close()
            _daemon_conn = None
            if attempt == 2:
                raise


def one_tunnel(n):
    exec_id = daemon_exec_create(CFG["container"])
    payload = b"soak %d %d\n" % (os.getpid(), n)
    c = Conn(CFG["unix"])
    try:
        c.send(request("POST", "/v1.41/exec/%s/start" % exec_id, b'{"Detach":false,"Tty":false}',
                       ("Connection: Upgrade", "Upgrade: tcp")))
        status, _h = c.head()
        if status != 101:
            return status, "exec start: %d" % status
        c.send(payload)
        c.s.shutdown(socket.SHUT_WR)
        got = demux(c.read_to_eof())
        if got != payload:
            return status, "tunnel echoed %r, sent %r" % (got, payload)
        return status, None
    finally:
        c.close()


def run_job(job):
    kind, count, seed = job
    rnd = random.Random(seed)
    statuses = collections.Counter()
    problems = []

    def note(status, problem=None):
        statuses[status] += 1
        if problem is None and status != EXPECT[kind]:
            problem = "status %s, expected %d" % (status, EXPECT[kind])
        if problem and len(problems) < 3:
            problems.append("%s: %s" % (kind, problem))

    done = 0
    try:
        if kind in ("ka", "ka-tcp"):
            c = Conn(CFG["unix"] if kind == "ka" else CFG["tcp"])
            try:
                for _ in range(count):
                    path = rnd.choice(ALLOWED)
                    c.send(request("GET", path))
                    status, _h, body, closes = c.response()
                    done += 1
                    note(status, None if status != 200 or plausible(path, body) else "implausible %s body" % path)
                    if closes:
                        c.close()
                        c = Conn(CFG["unix"] if kind == "ka" else CFG["tcp"])
            finally:
                c.close()
        elif kind == "close":
            for i in range(count):
                path = rnd.choice(ALLOWED)
                c = Conn(CFG["unix"])
                try:
                    if i % 2:
                        c.send(request("GET", path, extra=("Connection: close",)))
                        status, _h, body, _closes = c.response()
                        rest = c.read_to_eof()
                        problem = "bytes after a Connection: close response" if rest else None
                    else:
                        c.send(request("GET", path))
                        status, _h, body, _closes = c.response()
                        problem = None
                    done += 1
                    if not problem and status == 200 and not plausible(path, body):
                        problem = "implausible %s body" % path
                    note(status, problem)
                finally:
                    c.close()
        elif kind == "refused":
            for _ in range(count):
                method, path, body = rnd.choice(REFUSED)
                c = Conn(CFG["unix"])
                try:
                    c.send(request(method, path, body))
                    status, _h, rbody, _closes = c.response()
                    done += 1
                    note(status, None if b"refused" in rbody else "no 'refused' in %r" % rbody[:200])
                finally:
                    c.close()
        elif kind == "malformed":
            for _ in range(count):
                c = Conn(CFG["unix"])
                try:
                    c.send(rnd.choice(MALFORMED))
                    status, _h, rbody, _closes = c.response()
                    done += 1
                    note(status, None if b"docker-socket-proxy" in rbody else "body %r" % rbody[:200])
                finally:
                    c.close()
        elif kind == "events":
            for i in range(count):
                c = Conn(CFG["unix"])
                try:
                    if i % 2:
                        c.send(request("GET", "/events"))
                        status, _h = c.head()
                        problem = None
                    else:
                        # Past events exist (the warm-up's execs): data flows at once.
                        c.send(request("GET", "/v1.41/events?since=%d" % CFG["since"]))
                        status, _h = c.head()
                        problem = None
                        if status == 200 and not c.buf:
                            c.fill()
                    done += 1
                    note(status, problem)
                finally:
                    c.close()  # cut short
        elif kind == "tunnel":
            for i in range(count):
                status, problem = one_tunnel(seed * 10 + i)
                done += 1
                note(status, problem)
    except Exception as e:  # the rest of the job counts as failed
        statuses["error"] += count - done
        if len(problems) < 3:
            problems.append("%s: %s: %s" % (kind, type(e).__name__, e))
        done = count
    return kind, done, statuses, problems


def make_jobs(total, seed):
    jobs = []
    left = total
    for i, (kind, share, per) in enumerate(MIX):
        n = left if i == len(MIX) - 1 else int(round(total * share))
        n = min(n, left)
        left -= n
        while n > 0:
            k = min(per, n)
            jobs.append((kind, k, len(jobs) + seed))
            n -= k
    random.Random(seed).shuffle(jobs)
    return jobs


# ------------------------------------------------------------------------------------------
# The proxy's resources.

def figures(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    threads = rss = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return fds, threads, rss


def settle(pid, seconds, target=None):
    """Poll every 0.1 s; without target, until (fds, threads) stayed the same for 1 s; with one,
    until both are at most the target. Returns (figures, seconds taken, reached)."""
    t0 = time.monotonic()
    last, since = None, t0
    while True:
        fig = figures(pid)
        now = time.monotonic()
        if target is not None:
            if fig[0] <= target[0] and fig[1] <= target[1]:
                return fig, now - t0, True
        else:
            if last is None or fig[:2] != last[:2]:
                last, since = fig, now
            elif now - since >= 1.0:
                return fig, now - t0, True
        if now - t0 > seconds:
            return fig, now - t0, False
        time.sleep(0.1)


def daemon_call(path, method="GET", body=None):
    c = Conn(("unix", CFG["daemon"]))
    try:
        c.send(request(method, path, body, ("Connection: close",)))
        status, _h, data, _ = c.response(method)
        return status, data
    finally:
        c.close()


def run_load(tap, pool, jobs, label, pid):
    """Runs the jobs; returns (requests by kind, statuses by kind, problems, seconds, peak)."""
    done = collections.Counter()
    statuses = collections.defaultdict(collections.Counter)
    problems = []
    peak = [0, 0, 0]
    stop = threading.Event()

    def monitor():
        while not stop.wait(0.5):
            try:
                fig = figures(pid)
            except OSError:
                return
            peak[:] = [max(a, b) for a, b in zip(peak, fig)]

    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    t0 = time.monotonic()
    for kind, n, st, probs in pool.imap_unordered(run_job, jobs, chunksize=1):
        done[kind] += n
        statuses[kind].update(st)
        if len(problems) < 50:
            problems.extend(probs)
    secs = time.monotonic() - t0
    stop.set()
    mon.join()
    total = sum(done.values())
    tap.diag("%s: %d requests in %.1f s (%.0f/s); peak %d fds, %d threads, %d KiB RSS"
             % (label, total, secs, total / secs if secs else 0, peak[0], peak[1], peak[2]))
    return done, statuses, problems, secs


def body(tap):
    if not os.access(dsp.PROXY_BIN, os.X_OK):
        tap.bail("DSP_PROXY_BIN=%s is not an executable" % dsp.PROXY_BIN)
    daemon = dsp.docker_daemon(tap)
    CFG["daemon"] = daemon
    CFG["since"] = int(time.time()) - 1

    # The container the tunnels exec `cat` in, made directly on the daemon.
    name = "dsp-soak-%d" % os.getpid()
    st, data = daemon_call("/v1.41/containers/create?name=" + name, "POST",
                           json.dumps({"Image": "dsp-test:latest", "Cmd": ["sleep", "100000"]}).encode())
    if st != 201:
        tap.bail("docker create on the daemon: %d %r (is the image dsp-test:latest imported?)" % (st, data[:300]))
    cid = json.loads(data)["Id"]
    tap.at_exit(lambda: daemon_call("/v1.41/containers/%s?force=1" % cid, "DELETE"))
    st, data = daemon_call("/v1.41/containers/%s/start" % cid, "POST")
    if st not in (204, 304):
        tap.bail("docker start on the daemon: %d %r" % (st, data[:300]))
    CFG["container"] = cid

    d = dsp.tmpdir(tap)
    sock = os.path.join(d, "proxy.sock")
    port = dsp.free_port()
    CFG["unix"] = ("unix", sock)
    CFG["tcp"] = ("tcp", ("127.0.0.1", port))
    log = open(os.path.join(d, "stderr"), "w+")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SOCKET_PATH": daemon,
           "CONTAINERS": "1", "POST": "1", "DELETE": "0", "EXEC": "1", "ALLOW_EXEC": "1",
           # idle client and daemon connections close after this: well within SETTLE_SECONDS
           "SOCKET_PROXY_KEEPALIVE": "2s"}
    proc = subprocess.Popen([dsp.PROXY_BIN, "--listen", "unix:" + sock, "--listen", "tcp:127.0.0.1:%d" % port,
                             "--log-target=stderr"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    tap.at_exit(lambda: dsp.stop(tap, proc))
    pid = proc.pid

    def show_log():
        log.seek(0)
        return "the proxy's stderr (the end):\n" + log.read()[-3000:]

    up = False
    for _ in range(100):
        try:
            up = dsp.get(sock, "/_ping")[0] == 200
        except OSError:
            pass
        if up or proc.poll() is not None:
            break
        time.sleep(0.1)
    if not tap.ok(up, "the proxy answers on %s" % sock, show_log()):
        return

    pool = multiprocessing.get_context("fork").Pool(WORKERS)
    tap.at_exit(pool.terminate)

    # Warm-up: every kind, so that lazily made things (arenas, caches, the journal
    # connection) exist before the idle figures are taken.
    warm = make_jobs(max(1000, TOTAL // 100), 1)
    done, statuses, problems, _s = run_load(tap, pool, warm, "warm-up", pid)
    bad = {k: dict(v) for k, v in statuses.items() if set(v) != {EXPECT[k]}}
    tap.ok(not bad and not problems, "warm-up: %d requests of every kind as expected" % sum(done.values()),
           "unexpected: %r" % bad, *problems[:10])
    idle, secs, ok = settle(pid, 15)
    tap.diag("idle after the warm-up (settled in %.1f s%s): %d fds, %d threads, %d KiB RSS"
             % (secs, "" if ok else ", still moving", idle[0], idle[1], idle[2]))

    # The load, in two halves of different job lists with a settle between them.
    jobs = make_jobs(TOTAL, 2)
    half = len(jobs) // 2
    total_done = collections.Counter()
    total_statuses = collections.defaultdict(collections.Counter)
    all_problems = []
    secs_total = 0.0
    after = []
    for label, part in (("first half", jobs[:half]), ("second half", jobs[half:])):
        done, statuses, problems, secs = run_load(tap, pool, part, label, pid)
        total_done.update(done)
        for k, v in statuses.items():
            total_statuses[k].update(v)
        all_problems.extend(problems)
        secs_total += secs
        if proc.poll() is not None:
            tap.result(False, "the proxy still runs after the %s (exit status %s)" % (label, proc.returncode))
            tap.diag(show_log())
            return
        fig, took, reached = settle(pid, SETTLE_SECONDS, target=idle)
        after.append((fig, took, reached))
        tap.diag("after the %s: %d fds, %d threads, %d KiB RSS (%.1f s after the last response)"
                 % (label, fig[0], fig[1], fig[2], took))
    pool.close()
    pool.join()

    n = sum(total_done.values())
    tap.diag("the load: %d requests in %.1f s, %.0f requests/s, %d client processes"
             % (n, secs_total, n / secs_total if secs_total else 0, WORKERS))
    tap.is_(n, TOTAL, "%d requests were made" % TOTAL)
    for kind, _share, _per in MIX:
        got = total_statuses.get(kind, collections.Counter())
        want = EXPECT[kind]
        mine = [p for p in all_problems if p.startswith(kind + ":")]
        tap.ok(total_done[kind] > 0 and set(got) == {want} and not mine,
               "%s: all %d responses were %d%s" % (kind, total_done[kind], want,
                                                   "" if set(got) <= {want} else " (got %s)" % dict(got)),
               *mine[:5])

    fig, took, reached = after[-1]
    tap.ok(fig[0] <= idle[0], "open descriptors back to the idle %d within %.0f s (%d, after %.1f s)"
           % (idle[0], SETTLE_SECONDS, fig[0], took), "ls -l /proc/PID/fd:\n" + fd_list(pid))
    tap.ok(fig[1] <= idle[1], "threads back to the idle %d within %.0f s (%d)" % (idle[1], SETTLE_SECONDS, fig[1]))
    tap.ok(fig[2] <= idle[2] + RSS_SLACK_KIB, "VmRSS %d KiB is within idle %d KiB + %d KiB"
           % (fig[2], idle[2], RSS_SLACK_KIB))
    rss1, rss2 = after[0][0][2], after[1][0][2]
    tap.ok(rss2 - rss1 <= RSS_PLATEAU_KIB, "the second half of the load grew VmRSS by at most %d KiB (%+d KiB: %d -> %d)"
           % (RSS_PLATEAU_KIB, rss2 - rss1, rss1, rss2))
    log.seek(0)
    text = log.read()
    crit = [line for line in text.splitlines() if re.match(r"<[0-3]>", line)]
    tap.ok(not crit, "the proxy logged nothing at err or above", *crit[:10])
    rc = dsp.stop(tap, proc)
    tap.is_(rc, 0, "the proxy exits 0 on SIGTERM after the soak")


def fd_list(pid):
    out = []
    try:
        for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
            try:
                out.append("%s -> %s" % (fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
            except OSError:
                pass
    except OSError:
        pass
    return "\n".join(out)


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

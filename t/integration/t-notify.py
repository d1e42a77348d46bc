#!/usr/bin/python3
"""sd_notify: READY=1, STATUS= with counters, WATCHDOG=1 at WATCHDOG_USEC/2, STOPPING=1 and
exit status 0 on SIGTERM; with --listen and under systemd-socket-activate. Without a watchdog,
an idle proxy sleeps: its threads make no context switch once nothing is open or kept, and
the next connection still brings STATUS= up to date."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dsp  # noqa: E402


def counts(status):
    a = re.search(r"(\d+) allowed", status)
    r = re.search(r"(\d+) refused", status)
    return (int(a.group(1)) if a else None, int(r.group(1)) if r else None)


def start(tap, daemon, settings, activated=False):
    """The proxy on a Unix socket of its own, reporting to a NOTIFY_SOCKET of ours, with
    settings added to its environment: (process, Notify, socket path, stderr file)."""
    d = dsp.tmpdir(tap)
    notify = dsp.Notify(tap, d)
    sock = os.path.join(d, "proxy.sock")
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "SOCKET_PATH": daemon,
        "NOTIFY_SOCKET": notify.path,
    }
    env.update(settings)
    log = open(os.path.join(d, "stderr"), "w+")
    if activated:
        argv = ["systemd-socket-activate", "-l", sock, "--fdname=unix"]
        for k, v in env.items():
            argv += ["-E", "%s=%s" % (k, v)]
        argv += [dsp.PROXY_BIN, "--log-target=stderr"]
    else:
        argv = [dsp.PROXY_BIN, "--listen", "unix:" + sock, "--log-target=stderr"]
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    tap.at_exit(lambda: dsp.stop(tap, proc))
    return proc, notify, sock, log


def case(tap, daemon, activated):
    label = "socket-activated" if activated else "--listen"
    proc, notify, sock, log = start(tap, daemon, {"WATCHDOG_USEC": "400000"}, activated)

    def show_log():
        log.seek(0)
        return "stderr of the proxy:\n" + log.read()[-3000:]

    if activated:
        for _ in range(50):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        # The first connection is what starts the proxy.
        status, body = dsp.get(sock, "/_ping")
        tap.is_((status, body), (200, b"OK"), "%s: the first connection is answered (GET /_ping)" % label)

    got_ready = notify.wait_for(lambda m: any(k == "READY" and v == "1" for (_, k, v) in m), 10)
    tap.ok(got_ready, "%s: READY=1 arrives" % label, show_log())
    if not got_ready:
        return

    have_status = notify.wait_for(lambda m: any(k == "STATUS" for (_, k, _v) in m), 5)
    statuses = notify.values("STATUS")
    tap.ok(have_status, "%s: a STATUS= arrives" % label)
    last = statuses[-1] if statuses else ""
    tap.ok(re.search(r"\d+ allowed", last) and re.search(r"\d+ refused", last),
           "%s: STATUS= counts allowed and refused requests: %r" % (label, last))

    t0 = notify.messages[-1][0] if notify.messages else time.monotonic()
    t0 = max(t0, time.monotonic())
    notify.pump(1.0)
    n = len(notify.values("WATCHDOG", since=t0))
    tap.ok(n >= 2, "%s: WATCHDOG=1 arrives repeatedly with WATCHDOG_USEC=400000 (%d in 1 s, want >= 2)" % (label, n))
    tap.ok(all(v == "1" for v in notify.values("WATCHDOG")), "%s: every WATCHDOG= is WATCHDOG=1" % label)

    a0, r0 = counts(notify.values("STATUS")[-1] if notify.values("STATUS") else "")
    for i in range(3):
        status, body = dsp.get(sock, "/_ping")
        tap.is_((status, body), (200, b"OK"), "%s: allowed request %d (GET /_ping)" % (label, i + 1))
    status, _ = dsp.get(sock, "/containers/json")
    tap.is_(status, 403, "%s: refused request (GET /containers/json)" % label)
    if a0 is None or r0 is None:
        tap.result(False, "%s: STATUS= counts up after requests (no counts to start from)" % label)
    else:
        def counted(m):
            a, r = counts(notify.values("STATUS")[-1] if notify.values("STATUS") else "")
            return a is not None and r is not None and a >= a0 + 3 and r >= r0 + 1
        good = notify.wait_for(counted, 3)
        tap.ok(good, "%s: within 3 s STATUS= counts the 3 allowed and 1 refused requests (from %d/%d to %r)"
               % (label, a0, r0, notify.values("STATUS")[-1]))

    t_term = time.monotonic()
    proc.send_signal(15)
    stopping = notify.wait_for(lambda m: any(k == "STOPPING" and v == "1" for (t, k, v) in m if t >= t_term), 5)
    tap.ok(stopping, "%s: STOPPING=1 arrives after SIGTERM" % label)
    try:
        rc = proc.wait(10)
    except subprocess.TimeoutExpired:
        rc = "still running 10 s after SIGTERM"
    tap.is_(rc, 0, "%s: exit status 0 after SIGTERM" % label)
    if rc != 0:
        tap.diag(show_log())


def context_switches(pid):
    """Voluntary and involuntary context switches of all the process's threads."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.split(":")[0] in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                    n += int(line.split()[-1])
    return n


def idle_case(tap, daemon):
    proc, notify, sock, _log = start(tap, daemon, {"SOCKET_PROXY_KEEPALIVE": "1s"})
    tap.ok(notify.wait_for(lambda m: any(k == "READY" for (_, k, _v) in m), 10), "idle: READY=1 arrives")

    def allowed_at_least(n):
        def pred(m):
            a, _ = counts(notify.values("STATUS")[-1] if notify.values("STATUS") else "")
            return a is not None and a >= n and "0 connections" in notify.values("STATUS")[-1]
        return pred

    tap.is_(dsp.get(sock, "/_ping"), (200, b"OK"), "idle: GET /_ping is answered")
    tap.ok(notify.wait_for(allowed_at_least(1), 3), "idle: within 3 s STATUS= counts it, with 0 connections open")
    # The daemon connection kept after it closes 1 s (SOCKET_PROXY_KEEPALIVE) after the
    # request; from then on nothing is open or kept.
    time.sleep(2.0)
    before = context_switches(proc.pid)
    time.sleep(2.0)
    after = context_switches(proc.pid)
    tap.is_(after - before, 0, "idle: with nothing open or kept and no watchdog, no thread of the proxy wakes in 2 s")
    tap.is_(dsp.get(sock, "/_ping"), (200, b"OK"), "idle: GET /_ping after the idle time is answered")
    tap.ok(notify.wait_for(allowed_at_least(2), 3), "idle: within 3 s STATUS= counts that request too: %r"
           % (notify.values("STATUS")[-1:],))


def body(tap):
    if not os.access(dsp.PROXY_BIN, os.X_OK):
        tap.bail("DSP_PROXY_BIN=%s is not an executable" % dsp.PROXY_BIN)
    daemon = dsp.docker_daemon(tap)
    case(tap, daemon, activated=False)
    case(tap, daemon, activated=True)
    idle_case(tap, daemon)


if __name__ == "__main__":
    dsp.main(dsp.Tap(), body)

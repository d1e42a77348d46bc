#!/bin/bash
# Half-close through the proxy with raw sockets (t/hijack/hjclient.py), over its Unix and
# its TCP listener: exec start with the upgrade, stdin, shutdown(SHUT_WR), and everything
# the process writes afterwards still arrives before EOF. Then 50 such tunnels per
# listener: all succeed, the proxy still answers, and its open descriptors and threads
# are back where they were (no leak).
. "$(dirname "$0")/lib.sh"

hj_setup
tag=dsp-hj-half-$$
box=$tag-box
hj_container "$box" "$DSP_TEST_IMAGE" sleep 100000 || bail "docker run straight on the daemon failed"
hj_proxy "${HJ_POLICY[@]}" || bail "the proxy did not start"
pid=$DSP_PROXY_PID
C() { timeout 200 "$HJ_PY" "$HJ_CLIENT" "$@"; }

# Warm up (first connections, lazily made resources), then take the baseline once the
# proxy is idle: no connection of ours is open.
C halfclose "${HJ_ADDRS[1]}" "$box" 2 >/dev/null
C ping "${HJ_ADDRS[0]}" >/dev/null
sleep 1
fds0=$(hj_fds "$pid")
thr0=$(hj_threads "$pid")
diag "proxy $pid idle: $fds0 open descriptors, $thr0 threads"
[ -n "$fds0" ] && [ -n "$thr0" ] || bail "cannot read /proc/$pid"

back_to_baseline() {
	[ "$(hj_fds "$pid")" -le "$fds0" ] && [ "$(hj_threads "$pid")" -le "$thr0" ]
}

for addr in "${HJ_ADDRS[1]}" "${HJ_ADDRS[0]}"; do # unix first, then tcp
	T=${addr%%:*}
	got=$(C halfclose-late "$addr" "$box")
	is "$(hj_json "$got" .ok)" true \
		"$T: exec start, stdin, shutdown(SHUT_WR): the output written a second after stdin ended arrives, then EOF" ||
		{ diag "$(hj_json "$got" .why)"; hj_proxy_diag; }

	got=$(C halfclose "$addr" "$box" 50)
	is "$(hj_json "$got" .good)" 50 \
		"$T: 50 tunnels (stdin, shutdown(SHUT_WR), read to EOF): every one echoes its bytes and ends ($(hj_json "$got" .seconds) s)" ||
		{ diag "$(hj_json "$got" '.failures[]')"; hj_proxy_diag; }

	got=$(C ping "$addr")
	is "$(hj_json "$got" '"\(.status) \(.body)"')" "200 OK" "$T: after the tunnels the proxy still serves (GET /_ping)"

	if dsp_wait_for 100 back_to_baseline; then
		pass "$T: after 50 tunnels the proxy is back to $fds0 descriptors and $thr0 threads"
	else
		fail "$T: after 50 tunnels the proxy is back to $fds0 descriptors and $thr0 threads"
		diag "now: $(hj_fds "$pid") descriptors, $(hj_threads "$pid") threads after 10 s"
		diag "$(ls -l "/proc/$pid/fd" 2>/dev/null | sed 's/^/    /')"
	fi
done

# The daemon's side is closed too: no cat of ours is left in the container.
left=$(hj_direct top "$box" -o pid,args 2>/dev/null | awk 'NR > 1 && $2 == "cat"' | wc -l)
is "$left" 0 "no exec'd cat is left running in the container after the tunnels"

done_testing

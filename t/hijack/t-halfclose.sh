#!/bin/bash
# Half-close through the proxy with raw sockets (t/hijack/hjclient.py), over its Unix and
# its TCP listener: exec start with the upgrade, stdin, shutdown(SHUT_WR), and everything
# the process writes afterwards still arrives before EOF. Then 50 such tunnels per
# listener: all succeed, the proxy still answers, and its open descriptors and threads
# are back where they were (no leak). Last, a tunnel without pipes (no descriptor left for
# them) copies instead of splice() and works the same.
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

# --- Without pipes: the tunnel copies --------------------------------------------------
# A tunnel splice()s through a pipe per direction; when pipe2() fails (out of descriptors)
# each direction copies through its buffer instead. RLIMIT_NOFILE is lowered so that three
# more descriptors can be opened: the tunnel's client connection and daemon connection
# take two (or all three, while the exec create's client connection is still being
# closed), and pipe2(), which needs two at once, fails with EMFILE. The tunnel outlives
# stdin by a second (halfclose-late), long enough to count the proxy's pipes meanwhile.
pipes_of() {
	ls -l "/proc/$pid/fd" 2>/dev/null | grep -c 'pipe:'
}
# limit_for_three_more: the RLIMIT_NOFILE under which exactly three more descriptors can be
# opened (new ones take the lowest free numbers; valgrind's own sit above them all).
limit_for_three_more() {
	ls "/proc/$pid/fd" | sort -n |
		awk '{ used[$1] = 1 } END { c = 0; for (l = 0; ; l++) { if (l - c == 3) { print l; exit } if (l in used) c++ } }'
}
# tunnel_pipes [limited]: one halfclose-late tunnel over the Unix listener, with the limit
# lowered when asked (and put back after); sets T_OK ("true" when it worked), T_WHY, and
# T_PIPES (the most pipe descriptors the proxy held meanwhile, above what it held before).
tunnel_pipes() {
	local out=$DSP_TMP/fallback.$RANDOM limits cpid base most=0 n
	C ping "$unix" >/dev/null # a kept daemon connection, which exec create reuses
	base=$(pipes_of)
	limits=$(awk '/^Max open files/ { print $4 ":" $5 }' "/proc/$pid/limits")
	if [ "${1:-}" = limited ]; then
		prlimit --pid "$pid" --nofile="$(limit_for_three_more):${limits#*:}" || fail "prlimit lowers the proxy's limit"
	fi
	C halfclose-late "$unix" "$box" >"$out" &
	cpid=$!
	while dsp_pid_alive "$cpid"; do
		n=$(($(pipes_of) - base))
		[ "$n" -gt "$most" ] && most=$n
		sleep 0.05
	done
	wait "$cpid"
	prlimit --pid "$pid" --nofile="$limits"
	T_OK=$(hj_json "$(cat "$out")" .ok)
	T_WHY=$(hj_json "$(cat "$out")" .why)
	T_PIPES=$most
}
unix=${HJ_ADDRS[1]}
tunnel_pipes
is "$T_OK $T_PIPES" "true 4" \
	"control: with descriptors to spare, a tunnel holds its two pipes (4 descriptors) while it runs" ||
	diag "$T_WHY"
tunnel_pipes limited
is "$T_OK $T_PIPES" "true 0" \
	"without a descriptor for a pipe, the tunnel copies: stdin's bytes come back, the late output arrives, then EOF" ||
	{ diag "$T_WHY"; hj_proxy_diag; }
got=$(C ping "$unix")
is "$(hj_json "$got" '"\(.status) \(.body)"')" "200 OK" "with its limit back, the proxy still serves (GET /_ping)"

# The daemon's side is closed too: no cat of ours is left in the container.
left=$(hj_direct top "$box" -o pid,args 2>/dev/null | awk 'NR > 1 && $2 == "cat"' | wc -l)
is "$left" 0 "no exec'd cat is left running in the container after the tunnels"

done_testing

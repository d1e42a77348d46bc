#!/bin/bash
# The command line: --help, --version, start-up without a listener, --check-config,
# and a datagram socket handed over by socket activation.
. "$(dirname "$0")/../lib/common.sh"

BIN=$DSP_PROXY_BIN
[ -x "$BIN" ] || bail "DSP_PROXY_BIN=$BIN is not an executable"

# run_bin OUTFILE ARGS...: the binary with a clean environment, bounded in time; the
# exit status is in $rc, stdout+stderr in OUTFILE.
run_bin() {
	local out=$1
	shift
	timeout 10 env -i PATH="$PATH" "$@" >"$out" 2>&1
	rc=$?
}

# --help
run_bin "$DSP_TMP/help" "$BIN" --help
is "$rc" 0 "--help exits 0"
help=$(cat "$DSP_TMP/help")
for opt in --listen --env-file --check-config --log-target --version; do
	like "$help" "(^|[^a-z-])$opt([^a-z-]|$)" "--help lists $opt"
done

# --version
run_bin "$DSP_TMP/version" "$BIN" --version
is "$rc" 0 "--version exits 0"
version=$(cat "$DSP_TMP/version")
like "$version" '[0-9]+\.[0-9]+' "--version prints a version number"
if [ -n "${DSP_SOURCE_ROOT:-}" ] && [ -f "$DSP_SOURCE_ROOT/meson.build" ]; then
	project_version=$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$DSP_SOURCE_ROOT/meson.build" | head -n 1)
	like "$version" "${project_version//./\\.}" "--version prints the project's version $project_version"
fi

# No listener at all: neither LISTEN_FDS nor --listen.
run_bin "$DSP_TMP/nolisten" SOCKET_PATH=/nonexistent.sock "$BIN"
out=$(cat "$DSP_TMP/nolisten")
ok "without a listener the proxy does not keep running (exit status $rc)" test "$rc" -ne 124
isnt "$rc" 0 "without a listener the proxy exits non-zero"
like "$out" '--listen' "the message names --listen"
like "$out" '[Ss]ocket[ -]activat' "the message names socket activation"

# --check-config with a good file.
cat >"$DSP_TMP/good.env" <<'ENV'
# the policy of a monitoring tool
CONTAINERS=1
IMAGES=true
ALLOW_LOGS="yes"
POST=0
SOCKET_PATH=/run/docker.sock
ENV
run_bin "$DSP_TMP/check-good" "$BIN" --check-config --env-file "$DSP_TMP/good.env"
out=$(cat "$DSP_TMP/check-good")
is "$rc" 0 "--check-config with a good file exits 0" || diag "$out"
for var in EVENTS PING VERSION CONTAINERS IMAGES NETWORKS VOLUMES INFO POST ALLOW_LOGS ALLOW_EXEC; do
	is "$(grep -cE "^$var([=[:space:]]|\$)" "$DSP_TMP/check-good")" 1 "--check-config prints one line for $var"
done
# The state printed for a rule switched on must read as on (1, true and a quoted "yes"
# alike), one left at its default off as off.
on_re='(=|:|[[:space:]])(1|on|yes|true|allow(ed|s)?|enabled)([^[:alnum:]]|$)'
off_re='(=|:|[[:space:]])(0|off|no|false|deny|denied|refuse(d|s)?|disabled)([^[:alnum:]]|$)'
line_of() { grep -E "^$1([=[:space:]]|\$)" "$DSP_TMP/check-good" | head -n 1; }
for var in CONTAINERS IMAGES ALLOW_LOGS EVENTS; do
	like "$(line_of $var)" "$on_re" "--check-config shows $var as on"
done
for var in NETWORKS POST ALLOW_EXEC; do
	like "$(line_of $var)" "$off_re" "--check-config shows $var as off"
done

# --check-config with a bad boolean on line 3.
cat >"$DSP_TMP/bad.env" <<'ENV'
# line 1
CONTAINERS=1
POST=maybe
ENV
run_bin "$DSP_TMP/check-bad" "$BIN" --check-config --env-file "$DSP_TMP/bad.env"
out=$(cat "$DSP_TMP/check-bad")
ok "--check-config with POST=maybe ends (exit status $rc)" test "$rc" -ne 124
isnt "$rc" 0 "--check-config with POST=maybe exits non-zero"
like "$out" 'POST' "the error names the variable POST"
like "$out" 'maybe' "the error names the value 'maybe'"
like "$out" "$DSP_TMP/bad.env:3:" "the error names the file and line 3 (FILE:3:)"

# The same bad value stops a real start-up too.
run_bin "$DSP_TMP/start-bad" "$BIN" --env-file "$DSP_TMP/bad.env" --listen "unix:$DSP_TMP/never.sock"
ok "start-up with POST=maybe ends (exit status $rc)" test "$rc" -ne 124
isnt "$rc" 0 "start-up with POST=maybe in the file exits non-zero"
like "$(cat "$DSP_TMP/start-bad")" 'POST.*maybe|maybe.*POST' "start-up names POST and maybe"

# An unknown variable in the file: a warning with a suggestion, not an error.
cat >"$DSP_TMP/typo.env" <<'ENV'
CONTAINER=1
IMAGES=1
ENV
run_bin "$DSP_TMP/check-typo" "$BIN" --check-config --env-file "$DSP_TMP/typo.env"
out=$(cat "$DSP_TMP/check-typo")
is "$rc" 0 "--check-config with CONTAINER=1 (unknown) still exits 0"
like "$out" 'CONTAINER\b' "the warning names CONTAINER"
like "$out" 'did you mean CONTAINERS\?' "the warning says 'did you mean CONTAINERS?'"

# A datagram socket from socket activation: refused with a clear message.
port=$(dsp_free_port)
systemd-socket-activate -d -l "127.0.0.1:$port" --fdname=tcp -E SOCKET_PATH=/nonexistent.sock \
	"$BIN" --log-target=stderr </dev/null >"$DSP_TMP/dgram" 2>&1 &
pid=$!
dsp_at_exit "kill -KILL $pid"
udp_bound() { ss -Hunl "sport = :$port" | grep -q .; }
dsp_wait_for 50 udp_bound || diag "systemd-socket-activate did not bind 127.0.0.1:$port/udp"
# systemd-socket-activate starts the program when the first datagram arrives.
for _ in 1 2 3; do
	printf 'x' >"/dev/udp/127.0.0.1/$port"
	sleep 0.2
done
dsp_wait_for 100 eval '! dsp_pid_alive $pid'
if dsp_pid_alive "$pid"; then
	fail "the proxy stops when it is handed a datagram socket"
	kill -KILL "$pid"
else
	pass "the proxy stops when it is handed a datagram socket"
fi
wait "$pid"
rc=$?
isnt "$rc" 0 "a datagram socket gives a non-zero exit status"
like "$(cat "$DSP_TMP/dgram")" '[Dd]atagram|SOCK_DGRAM|SOCK_STREAM|[Ss]tream socket|not a (listening )?stream' \
	"the message says the socket is not a stream socket"

done_testing

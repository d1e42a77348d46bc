# shellcheck shell=bash
# Sourced by the hijacked-stream tests of t/hijack/: t/lib/common.sh (TAP, dockerd, the
# proxy) plus what these tests need on top.
#
#   HJ_POLICY        the policy that lets attach, exec, run and the BuildKit endpoints through
#   HJ_CLIS          those of /usr/local/bin/docker (28.x) and /usr/bin/docker (20.10) installed
#   HJ_PY            /usr/bin/python3 (Debian's, with python3-docker 5.0)
#   HJ_CLIENT        t/hijack/hjclient.py, the raw-socket client
#   hj_setup         a Docker daemon (dsp_dockerd_setup) and the CLIs, or bail out
#   hj_proxy [VAR=VALUE...] [-- ARGS...]
#                    dsp_proxy_activated (TCP + Unix listener under systemd-socket-activate);
#                    sets HJ_HOSTS (tcp://..., unix://...) and HJ_ADDRS (tcp:..., unix:...)
#   hj_direct ARGS   the docker CLI straight on the daemon, bounded by a timeout
#   hj_container NAME ARGS...   dsp_container (docker run -d straight on the daemon, removed at exit)
#   hj_label CLI HOST           "CLI VERSION over tcp|unix" for test names
#   hj_json JSON FILTER         jq -r FILTER on hjclient.py's answer
#   hj_fds PID / hj_threads PID      open descriptors / threads of a process
#   hj_proxy_diag    the tail of the proxy's stderr as TAP comments
#   hj_exec_ids C    the exec IDs of a container (straight on the daemon)
#   hj_exec_running ID               "true"/"false": the daemon's view of an exec
#   hj_child_of PID  the first child of PID (the command under `timeout`)
#   hj_ms            milliseconds since the epoch
#   hj_killed_after SECONDS OUT ERR COMMAND...   COMMAND bounded by SIGKILL; prints its status

HJ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HJ_DIR/../lib/common.sh"

# shellcheck disable=SC2034 # used by the test scripts
HJ_POLICY=(CONTAINERS=1 POST=1 EXEC=1 ALLOW_EXEC=1 ALLOW_ATTACH=1 IMAGES=1 SESSION=1 GRPC=1)
HJ_PY=${DSP_PYTHON:-/usr/bin/python3}
# shellcheck disable=SC2034
HJ_CLIENT=$HJ_DIR/hjclient.py
HJ_CLIS=()

hj_setup() {
	local cli
	for cli in "$DSP_CLI_NEW" "$DSP_CLI_OLD"; do
		if [ -x "$cli" ]; then
			HJ_CLIS+=("$cli")
		else
			diag "the docker CLI $cli is not installed: its tests do not run"
		fi
	done
	[ "${#HJ_CLIS[@]}" -gt 0 ] || bail "no docker CLI is installed"
	[ -x "$HJ_PY" ] || bail "$HJ_PY is missing"
	command -v systemd-socket-activate >/dev/null || bail "systemd-socket-activate is missing"
	dsp_dockerd_setup || bail "no Docker daemon"
}

hj_proxy() {
	dsp_proxy_activated "$@" || return 1
	# shellcheck disable=SC2034
	HJ_HOSTS=("tcp://127.0.0.1:$DSP_PROXY_PORT" "unix://$DSP_PROXY_SOCK")
	# shellcheck disable=SC2034
	HJ_ADDRS=("tcp:127.0.0.1:$DSP_PROXY_PORT" "unix:$DSP_PROXY_SOCK")
}

hj_direct() {
	timeout 60 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" "$@"
}

# A short label for test names: "docker 28.2.2 over tcp".
hj_label() { # CLI HOST
	local v
	v=$(timeout 10 "$1" --version 2>/dev/null | sed -n 's/^Docker version \([^,]*\).*/\1/p')
	printf '%s %s over %s' "$1" "${v:-?}" "${2%%://*}"
}

hj_fds() {
	ls "/proc/$1/fd" 2>/dev/null | wc -l
}

hj_threads() {
	awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

hj_proxy_diag() {
	diag "the proxy's stderr (last 15 lines):"
	diag "$(tail -n 15 "$DSP_PROXY_LOG" 2>/dev/null | sed 's/^/    /')"
	return 1
}

hj_exec_ids() {
	hj_direct inspect --format '{{range .ExecIDs}}{{println .}}{{end}}' "$1" | sed '/^$/d'
}

hj_exec_running() {
	curl -s --max-time 10 --unix-socket "$DSP_DOCKER_SOCK" "http://docker/exec/$1/json" | jq -r .Running
}

hj_child_of() {
	local i c
	for ((i = 0; i < 50; i++)); do
		c=$(cat /proc/"$1"/task/*/children 2>/dev/null | awk '{ print $1; exit }')
		[ -n "$c" ] && { echo "$c"; return 0; }
		sleep 0.1
	done
	return 1
}

hj_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# hj_killed_after SECONDS OUT ERR COMMAND...: run COMMAND with stdin from /dev/null, stdout
# to OUT, stderr to ERR, SIGKILLed after SECONDS (docker attach does not end when its stdin
# does); print its exit status (137 when it had to be killed). Bash's "Killed" notice is
# dropped.
hj_killed_after() {
	local secs=$1 o=$2 e=$3
	shift 3
	(
		timeout -s KILL "$secs" "$@" </dev/null >"$o" 2>"$e"
		echo $?
	) 2>/dev/null
}

# hj_json JSON JQ-FILTER: one field of hjclient.py's answer.
hj_json() {
	printf '%s' "$1" | jq -r "$2" 2>/dev/null
}

# hj_container NAME ARGS...: a container made straight on the daemon (dsp_container),
# with its output discarded.
hj_container() {
	dsp_container "$@" >/dev/null
}

# shellcheck shell=bash
# Start the built docker-socket-proxy for a test.
#
#   . t/lib/proxy.sh           (after dockerd.sh, for dsp_pid_alive and DSP_DOCKER_SOCK)
#
#   dsp_proxy_activated [VAR=VALUE...] [-- PROXY-ARGS...]
#       under systemd-socket-activate with a TCP listener on 127.0.0.1:<free port> and a
#       Unix listener in a new temporary directory, --fdname=tcp:unix
#   dsp_proxy_listen [VAR=VALUE...] [-- PROXY-ARGS...]
#       the proxy binds itself: --listen tcp:127.0.0.1:<port> --listen unix:<dir>/proxy.sock
#
# Both give the proxy a clean environment holding only PATH, SOCKET_PATH=$DSP_DOCKER_SOCK
# (unless a SOCKET_PATH= is given) and the VAR=VALUE arguments; they add
# --log-target=stderr unless PROXY-ARGS hold a --log-target. $DSP_PROXY_PREFIX (split on
# blanks) goes in front of the binary, e.g. "setpriv --reuid=nobody ...".
# They wait until the proxy answers an HTTP request (GET /_ping on the TCP listener: with
# socket activation that first connection is what starts it), unless DSP_PROXY_NOWAIT=1.
# They set:
#   DSP_PROXY_PID   the proxy's PID (systemd-socket-activate execs it in place)
#   DSP_PROXY_DIR   its temporary directory;  DSP_PROXY_LOG  its stderr;  DSP_PROXY_OUT  stdout
#   DSP_PROXY_PORT  DSP_PROXY_URL (http://127.0.0.1:PORT)  DSP_PROXY_SOCK (the Unix listener)
# and register dsp_proxy_stop for the end of the test.
#
#   dsp_proxy_stop PID     SIGTERM, wait up to 10 s, then SIGKILL; returns the exit status
#   dsp_free_port          print a free TCP port on 127.0.0.1

: "${DSP_PROXY_BIN:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/src/docker-socket-proxy}"
export DSP_PROXY_BIN

dsp_free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Split "VAR=VALUE... [-- ARGS...]" into _dsp_vars and _dsp_args.
_dsp_split_args() {
	_dsp_vars=()
	_dsp_args=()
	local have_socket='' have_target=''
	while [ $# -gt 0 ]; do
		if [ "$1" = -- ]; then
			shift
			break
		fi
		case $1 in
		SOCKET_PATH=* | SOCKET_PROXY_DOCKER_SOCKET=*) have_socket=1 ;;
		esac
		_dsp_vars+=("$1")
		shift
	done
	_dsp_args=("$@")
	case " $* " in
	*" --log-target"*) have_target=1 ;;
	esac
	[ -n "$have_socket" ] || _dsp_vars+=("SOCKET_PATH=${DSP_DOCKER_SOCK:-/nonexistent/docker.sock}")
	[ -n "$have_target" ] || _dsp_args+=(--log-target=stderr)
}

_dsp_proxy_wait() {
	local i code
	if [ "${DSP_PROXY_NOWAIT:-}" = 1 ]; then
		return 0
	fi
	for ((i = 0; i < 100; i++)); do
		if ! dsp_pid_alive "$DSP_PROXY_PID"; then
			printf '# the proxy exited during start-up; its stderr:\n' >&2
			sed 's/^/#   /' "$DSP_PROXY_LOG" | tail -n 20 >&2
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$DSP_PROXY_URL/_ping")
		if [ "$code" != 000 ]; then
			return 0
		fi
		sleep 0.1
	done
	printf '# the proxy did not answer within 10 s; its stderr:\n' >&2
	sed 's/^/#   /' "$DSP_PROXY_LOG" | tail -n 20 >&2
	return 1
}

_dsp_proxy_prepare() {
	DSP_PROXY_DIR=$(mktemp -d /tmp/dsp-proxy.XXXXXX) || return 1
	chmod 755 "$DSP_PROXY_DIR"
	DSP_PROXY_LOG=$DSP_PROXY_DIR/stderr
	DSP_PROXY_OUT=$DSP_PROXY_DIR/stdout
	DSP_PROXY_SOCK=$DSP_PROXY_DIR/proxy.sock
	DSP_PROXY_PORT=$(dsp_free_port) || return 1
	DSP_PROXY_URL=http://127.0.0.1:$DSP_PROXY_PORT
	if [ ! -x "$DSP_PROXY_BIN" ]; then
		printf '# DSP_PROXY_BIN=%s is not an executable\n' "$DSP_PROXY_BIN" >&2
		return 1
	fi
}

dsp_proxy_activated() {
	local v setenv=() prefix=()
	_dsp_split_args "$@"
	_dsp_proxy_prepare || return 1
	for v in "${_dsp_vars[@]}"; do
		setenv+=(-E "$v")
	done
	# shellcheck disable=SC2206
	prefix=(${DSP_PROXY_PREFIX:-})
	systemd-socket-activate -l "127.0.0.1:$DSP_PROXY_PORT" -l "$DSP_PROXY_SOCK" \
		--fdname=tcp:unix -E "PATH=$PATH" "${setenv[@]}" \
		"${prefix[@]}" "$DSP_PROXY_BIN" "${_dsp_args[@]}" \
		</dev/null >"$DSP_PROXY_OUT" 2>"$DSP_PROXY_LOG" &
	DSP_PROXY_PID=$!
	dsp_at_exit "dsp_proxy_stop $DSP_PROXY_PID; rm -rf '$DSP_PROXY_DIR'"
	# systemd-socket-activate binds before it waits for the first connection.
	local i
	for ((i = 0; i < 50; i++)); do
		[ -S "$DSP_PROXY_SOCK" ] && break
		sleep 0.1
	done
	_dsp_proxy_wait
}

dsp_proxy_listen() {
	local prefix=()
	_dsp_split_args "$@"
	_dsp_proxy_prepare || return 1
	# shellcheck disable=SC2206
	prefix=(${DSP_PROXY_PREFIX:-})
	env -i "PATH=$PATH" "${_dsp_vars[@]}" "${prefix[@]}" "$DSP_PROXY_BIN" \
		--listen "tcp:127.0.0.1:$DSP_PROXY_PORT" --listen "unix:$DSP_PROXY_SOCK" \
		"${_dsp_args[@]}" </dev/null >"$DSP_PROXY_OUT" 2>"$DSP_PROXY_LOG" &
	DSP_PROXY_PID=$!
	dsp_at_exit "dsp_proxy_stop $DSP_PROXY_PID; rm -rf '$DSP_PROXY_DIR'"
	_dsp_proxy_wait
}

dsp_proxy_stop() {
	local pid=$1 i rc
	if dsp_pid_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			dsp_pid_alive "$pid" || break
			sleep 0.1
		done
		if dsp_pid_alive "$pid"; then
			printf '# proxy %s still runs 10 s after SIGTERM: SIGKILL\n' "$pid" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null
	rc=$?
	return "$rc"
}

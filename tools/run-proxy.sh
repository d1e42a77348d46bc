#!/bin/bash
# Build docker-socket-proxy and run it in the foreground, in front of the local Docker
# daemon; with none running, in front of a throw-away one started here (in its own network
# namespace, removed again on exit). Ctrl-C stops everything this script started.
#
#   tools/run-proxy.sh [ENV_FILE]
#
# Listens on unix:/run/docker-socket-proxy.sock (mode 0660) and tcp:127.0.0.1:2375.
# DSP_LISTEN overrides the listeners (space-separated --listen specs).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "$(id -u)" -eq 0 ]; then
	tools/install-deps.sh
fi

if [ -d build ]; then
	meson compile -C build docker-socket-proxy >/dev/null
else
	meson setup build >/dev/null
	meson compile -C build docker-socket-proxy >/dev/null
fi
proxy=$top/build/src/docker-socket-proxy

# shellcheck source=../t/lib/dockerd.sh
. "$top/t/lib/dockerd.sh"

daemon_dir=
cleanup() {
	if [ -n "$daemon_dir" ]; then
		echo "run-proxy: stopping the throw-away Docker daemon"
		dsp_dockerd_stop "$daemon_dir"
		rm -rf "$daemon_dir"
	fi
}
trap cleanup EXIT

socket=${SOCKET_PATH:-${SOCKET_PROXY_DOCKER_SOCKET:-/run/docker.sock}}
if dsp_docker_answers "$socket"; then
	echo "run-proxy: using the Docker daemon at $socket"
else
	daemon_dir=$(mktemp -d /tmp/dsp-run.XXXXXX)
	echo "run-proxy: no Docker daemon answers at $socket; starting a throw-away one in $daemon_dir"
	dsp_dockerd_start "$daemon_dir"
	socket=$DSP_DOCKER_SOCK
fi
export SOCKET_PATH=$socket

args=()
for l in ${DSP_LISTEN:-unix:/run/docker-socket-proxy.sock,mode=0660 tcp:127.0.0.1:2375}; do
	args+=(--listen "$l")
done
if [ $# -gt 0 ]; then
	args+=(--env-file "$1")
fi

cat <<TXT
run-proxy: serving the Docker API with the policy ${1:-of the defaults (EVENTS, PING, VERSION; read-only)}
  try:  docker -H tcp://127.0.0.1:2375 version
        docker -H unix:///run/docker-socket-proxy.sock ps      # refused unless CONTAINERS=1
  stop: Ctrl-C
TXT
"$proxy" --log-target=stderr "${args[@]}" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
wait "$pid" || true
wait "$pid" 2>/dev/null || true

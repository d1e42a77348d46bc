# shellcheck shell=bash
# Sourced by every bash integration test: TAP, the Docker daemon, the proxy.
set -u
DSP_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$DSP_LIB/tap.sh"
. "$DSP_LIB/dockerd.sh"
. "$DSP_LIB/proxy.sh"

[ "$(id -u)" -eq 0 ] || bail "the integration tests run as root (dockerd, namespaces)"

# Both Docker CLIs of the brief: the static 28.x one and Debian's docker.io 20.10.
DSP_CLI_NEW=${DSP_CLI_NEW:-/usr/local/bin/docker}
DSP_CLI_OLD=${DSP_CLI_OLD:-/usr/bin/docker}

# A scratch directory for the test, removed at exit.
DSP_TMP=$(mktemp -d /tmp/dsp-test.XXXXXX) || bail "mktemp failed"
chmod 755 "$DSP_TMP" # tests run programs as other users too
dsp_at_exit "rm -rf '$DSP_TMP'"

# dsp_wait_for TENTHS COMMAND...: retry COMMAND every 0.1 s until it succeeds.
dsp_wait_for() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

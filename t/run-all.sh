#!/bin/bash
# Build, then run every test (unit and integration) with one shared Docker daemon.
# The last line of the output is "N passed, N failed"; the exit status is non-zero when
# anything failed.
#   BUILD_DIR (default build), MESON_TEST_ARGS (extra arguments for meson test)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
build=${BUILD_DIR:-build}

summary() {
	printf '%s passed, %s failed\n' "$1" "$2"
}

if [ -f "$build/build.ninja" ]; then
	meson setup --reconfigure "$build" || { echo "run-all: meson setup failed"; summary 0 1; exit 1; }
else
	meson setup "$build" || { echo "run-all: meson setup failed"; summary 0 1; exit 1; }
fi
meson compile -C "$build" || { echo "run-all: the build failed"; summary 0 1; exit 1; }

# One Docker daemon for the whole run (each test reuses it through DSP_TEST_DOCKER_SOCK).
. "$top/t/lib/dockerd.sh"
trap 'dsp_shared_dockerd_stop' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
dsp_shared_dockerd_start ||
	echo "run-all: could not start the shared dockerd; each integration test will try its own"

# shellcheck disable=SC2086
meson test -C "$build" --print-errorlogs ${MESON_TEST_ARGS:-}
meson_rc=$?
dsp_shared_dockerd_stop

log=$build/meson-logs/testlog.json
if [ ! -s "$log" ]; then
	echo "run-all: meson test wrote no $log (exit status $meson_rc)"
	summary 0 1
	exit 1
fi
read -r passed failed < <(jq -rs '[ (map(select(.result == "OK" or .result == "EXPECTEDFAIL")) | length),
	(map(select(.result != "OK" and .result != "EXPECTEDFAIL")) | length) ] | "\(.[0]) \(.[1])"' "$log")
if [ -z "${passed:-}" ]; then
	echo "run-all: cannot read $log"
	summary 0 1
	exit 1
fi
# The failed tests by name.
jq -rs '.[] | select(.result != "OK" and .result != "EXPECTEDFAIL") | "run-all: \(.result): \(.name)"' "$log"
[ "$meson_rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1

# The suite again on an ASan + UBSan build, and under valgrind (DSP_SKIP_SANITIZED=1 skips
# this while working on something else; CI never sets it).
if [ "${DSP_SKIP_SANITIZED:-0}" != 1 ]; then
	sanitized_out=$(mktemp)
	"$top/t/run-sanitized.sh" | tee "$sanitized_out"
	if read -r sp _ sf _ < <(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$sanitized_out" | tail -n 1) &&
		[ -n "${sp:-}" ]; then
		passed=$((passed + sp))
		failed=$((failed + ${sf%,}))
	else
		echo "run-all: t/run-sanitized.sh printed no count"
		failed=$((failed + 1))
	fi
	rm -f "$sanitized_out"
fi

# The count as the very last line.
summary "$passed" "$failed"
[ "$failed" -eq 0 ]

#!/bin/bash
# The tests again on instrumented builds, with one shared Docker daemon:
#
#   1. $ASAN_BUILD_DIR (build-asan: CC=clang, -Db_sanitize=address,undefined -Db_lundef=false;
#      set up when missing, reused when present, set up again when it was made with another
#      compiler): meson test --suite unit --suite integration --suite hijack. Every
#      instrumented process (the unit test binaries, and each proxy the tests start) writes its
#      AddressSanitizer, LeakSanitizer and UBSan reports to its own file asan.PID in the log
#      directory; a UBSan report is fatal and carries a stack trace.
#      Why clang: with gcc, -fsanitize=address,undefined links libasan and libubsan as two
#      runtimes, and gcc 12's libubsan then ignores log_path (its reports go to stderr, which the
#      tests own and delete); clang's ASan runtime carries UBSan and writes both to log_path.
#   2. $BUILD_DIR (build, the normal build): meson test --suite integration --suite hijack (the
#      hijack tests are the only ones that run tunnel.c) with every proxy started as  valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect
#      --error-exitcode=1 --log-file=DIR/vg.%p --trace-children=no. The tests see
#      DSP_TEST_VALGRIND=1 and DSP_TEST_SLOW=1 in their environment, for checks that cannot hold
#      under valgrind (it emulates setrlimit(RLIMIT_NOFILE): /proc/PID/limits does not show what
#      the proxy set) or that time what valgrind slows down.
#   3. The scans: any sanitizer report file is a failure; so is a valgrind log with a
#      definitely or indirectly lost byte, an "ERROR SUMMARY" above 0, or no summary at all
#      (the process was killed before valgrind could check it).
#
# How the proxy is wrapped. The tests start "$DSP_PROXY_BIN" (t/lib/proxy.sh, t/lib/dsp.py),
# mostly with a clean environment (env -i, or env={PATH...}), so ASAN_OPTIONS cannot simply be
# inherited. This script generates a small script named docker-socket-proxy that sets the
# options and execs the real binary, or valgrind on it: exec keeps the PID, so LISTEN_PID of
# systemd-socket-activate still matches, and DSP_PROXY_PREFIX (setpriv ...) still goes in front.
# The test definitions set DSP_PROXY_BIN themselves (integration_env in t/meson.build), and a
# test's own environment wins over the caller's and over a --setup's, so the override goes in
# through  meson test --wrapper 'env DSP_PROXY_BIN=WRAPPER': meson runs that in the test's
# environment in front of the test program. Each wrapper also notes that it ran, so that the
# scans cannot pass because no proxy ran under them.
#
# Output: TAP on stdout (meson's own output as "# " comments); the last line is
# "N passed, N failed", counting the test programs of both runs plus the scans. The exit status
# is non-zero when anything failed. The logs are kept in $ASAN_BUILD_DIR/meson-logs/sanitizers/
# and $BUILD_DIR/meson-logs/valgrind/ (replaced on each run).
#
#   ASAN_BUILD_DIR (build-asan)  ASAN_CC (clang)  BUILD_DIR (build)
#   ASAN_SUITES ("unit integration hijack")  VALGRIND_SUITES ("integration hijack")
#   MESON_TEST_ARGS (extra arguments for both meson test runs)
#   VALGRIND_TIMEOUT_MULTIPLIER (3)  DSP_SANITIZED_RUNS ("asan valgrind": which runs)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
asan_build=${ASAN_BUILD_DIR:-build-asan}
asan_cc=${ASAN_CC:-clang}
build=${BUILD_DIR:-build}
runs=${DSP_SANITIZED_RUNS:-asan valgrind}
# ASAN_BUILD_DIR and BUILD_DIR may be given relative to the tree or absolute.
absolute() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$top" "$1" ;; esac; }

n=0 passed=0 failed=0
result() { # GOOD DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		passed=$((passed + 1))
		printf 'ok %d - %s\n' "$n" "$2"
	else
		failed=$((failed + 1))
		printf 'not ok %d - %s\n' "$n" "$2"
	fi
}
diag() { sed -u 's/^/# /'; }
finish() {
	printf '1..%d\n' "$n"
	printf '%s passed, %s failed\n' "$passed" "$failed"
	[ "$failed" -eq 0 ]
	exit
}
t_start=$(date +%s)
elapsed() { echo "$(($(date +%s) - t_start)) s"; }

# Everything a proxy writes goes below $work, which every uid may use: t-http.sh runs the
# proxy as nobody (DSP_PROXY_PREFIX=setpriv ...).
work=$(mktemp -d /tmp/dsp-sanitized.XXXXXX) || { result 1 "mktemp"; finish; }
chmod 755 "$work"
mkdir -p "$work/bin-asan" "$work/bin-vg" "$work/asan" "$work/vg"
chmod 1777 "$work/asan" "$work/vg"

# --- builds ---------------------------------------------------------------------------------
setup_build() { # DIR MESON-SETUP-ARGS...
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi && meson compile -C "$dir"
}
# The C compiler of an existing build directory, from its compile_commands.json.
build_cc() {
	jq -r '.[0].command // "" | split(" ") | .[0]' "$1/compile_commands.json" 2>/dev/null
}
have_asan='' have_build=''
case " $runs " in
*" asan "*)
	if [ -f "$asan_build/build.ninja" ] && [ -d "$asan_build/meson-private" ] &&
		[ "$(basename "$(build_cc "$asan_build")")" != "$(basename "$asan_cc")" ]; then
		echo "$asan_build was set up with $(build_cc "$asan_build"), not $asan_cc: setting it up again" | diag
		rm -rf "$asan_build"
	fi
	CC=$asan_cc setup_build "$asan_build" -Db_sanitize=address,undefined -Db_lundef=false 2>&1 |
		tail -n 30 | diag
	rc=${PIPESTATUS[0]}
	result "$rc" "$asan_build (CC=$asan_cc, -Db_sanitize=address,undefined) builds"
	[ "$rc" = 0 ] && have_asan=1
	;;
esac
case " $runs " in
*" valgrind "*)
	setup_build "$build" 2>&1 | tail -n 30 | diag
	rc=${PIPESTATUS[0]}
	command -v valgrind >/dev/null || { echo "valgrind is not installed" | diag; rc=1; }
	result "$rc" "$build builds, and valgrind is installed"
	[ "$rc" = 0 ] && have_build=1
	;;
esac

# --- the wrappers -----------------------------------------------------------------------------
# ASan: halt on the first error (the test that started it fails too), leaks checked at exit,
# use-after-return and init-order checks on. UBSan: every report fatal, with its stack.
asan_options="log_path=$work/asan/asan:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1"
asan_options+=":check_initialization_order=1:strict_init_order=1:print_summary=1:symbolize=1"
ubsan_options="log_path=$work/asan/asan:halt_on_error=1:print_stacktrace=1:print_summary=1:report_error_type=1"
symbolizer=$(command -v llvm-symbolizer || true)
: >"$work/started.asan"
: >"$work/started.vg"
chmod 666 "$work/started.asan" "$work/started.vg"
cat >"$work/bin-asan/docker-socket-proxy" <<EOF
#!/bin/sh
ASAN_OPTIONS='$asan_options'
UBSAN_OPTIONS='$ubsan_options'
ASAN_SYMBOLIZER_PATH='$symbolizer'
export ASAN_OPTIONS UBSAN_OPTIONS ASAN_SYMBOLIZER_PATH
echo "\$\$ \$*" >>'$work/started.asan'
exec '$(absolute "$asan_build")/src/docker-socket-proxy' "\$@"
EOF
cat >"$work/bin-vg/docker-socket-proxy" <<EOF
#!/bin/sh
echo "\$\$ \$*" >>'$work/started.vg'
exec valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \\
	--log-file='$work/vg/vg.%p' --trace-children=no --num-callers=40 \\
	'$(absolute "$build")/src/docker-socket-proxy' "\$@"
EOF
chmod 755 "$work/bin-asan/docker-socket-proxy" "$work/bin-vg/docker-socket-proxy"

# --- one Docker daemon for both runs -----------------------------------------------------------
. "$top/t/lib/dockerd.sh"
trap 'dsp_shared_dockerd_stop; rm -rf "$work"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# Its messages are "# " lines on stderr.
if [ -n "$have_asan$have_build" ] && ! dsp_shared_dockerd_start; then
	echo "could not start the shared dockerd; each integration test will try its own" | diag
fi

# suite_args "A B": --suite A --suite B, one a line
suite_args() {
	local s
	for s in $1; do
		printf -- '--suite\n%s\n' "$s"
	done
}

# run_meson NAME BUILD LOGBASE MESON-TEST-ARGS...: one TAP line per test of the run.
run_meson() {
	local name=$1 dir=$2 logbase=$3 log
	shift 3
	# With --wrapper, meson names its logs LOGBASE-<the wrapper's basename>.
	log=$dir/meson-logs/$logbase-env.json
	rm -f "$log"
	# shellcheck disable=SC2086
	meson test -C "$dir" --no-rebuild --print-errorlogs --logbase "$logbase" "$@" ${MESON_TEST_ARGS:-} 2>&1 | diag
	if [ ! -s "$log" ]; then
		result 1 "$name: meson test wrote $log"
		return
	fi
	while IFS=$'\t' read -r res tname secs; do
		if [ "$res" = OK ] || [ "$res" = EXPECTEDFAIL ]; then
			result 0 "$name: $tname ($secs s)"
		else
			result 1 "$name: $tname: $res ($secs s)"
		fi
	done < <(jq -rs '.[] | [.result, .name, (.duration | floor | tostring)] | @tsv' "$log")
}

# --- 1. AddressSanitizer + UBSan ---------------------------------------------------------------
if [ -n "$have_asan" ]; then
	echo "AddressSanitizer + UBSan run on $asan_build ($(elapsed))" | diag
	# The unit test binaries are instrumented too and inherit these.
	mapfile -t suites < <(suite_args "${ASAN_SUITES:-unit integration hijack}")
	ASAN_OPTIONS=$asan_options UBSAN_OPTIONS=$ubsan_options ASAN_SYMBOLIZER_PATH=$symbolizer \
		run_meson asan "$asan_build" testlog-sanitized "${suites[@]}" \
		--wrapper "env DSP_PROXY_BIN=$work/bin-asan/docker-socket-proxy"
	started=$(wc -l <"$work/started.asan")
	result "$([ "$started" -gt 0 ] && echo 0 || echo 1)" "asan: the tests started $started proxies through the wrapper"
	files=("$work"/asan/asan.*)
	if [ -e "${files[0]}" ]; then
		for f in "${files[@]}"; do
			printf '%s:\n' "$f"
			head -c 20000 "$f"
		done | diag
		result 1 "asan: no sanitizer report (${#files[@]} report file(s))"
	else
		result 0 "asan: no sanitizer report"
	fi
	rm -rf "$asan_build/meson-logs/sanitizers"
	cp -r "$work/asan" "$asan_build/meson-logs/sanitizers"
fi

# --- 2. valgrind ------------------------------------------------------------------------------
if [ -n "$have_build" ]; then
	echo "valgrind run on $build ($(elapsed))" | diag
	mapfile -t suites < <(suite_args "${VALGRIND_SUITES:-integration hijack}")
	run_meson valgrind "$build" testlog-valgrind "${suites[@]}" \
		--timeout-multiplier "${VALGRIND_TIMEOUT_MULTIPLIER:-3}" \
		--wrapper "env DSP_PROXY_BIN=$work/bin-vg/docker-socket-proxy DSP_TEST_VALGRIND=1 DSP_TEST_SLOW=1"
	started=$(wc -l <"$work/started.vg")
	bad=0 count=0
	for f in "$work"/vg/vg.*; do
		[ -e "$f" ] || continue
		count=$((count + 1))
		why=$(awk '
			/definitely lost:|indirectly lost:/ {
				v = $0; sub(/.*lost: */, "", v); sub(/ bytes.*/, "", v); gsub(/,/, "", v)
				if (v + 0 > 0) { print "lost bytes: " $0; bad = 1 }
			}
			/ERROR SUMMARY:/ {
				summary = 1; v = $0; sub(/.*ERROR SUMMARY: */, "", v); sub(/ .*/, "", v); gsub(/,/, "", v)
				if (v + 0 > 0) print "errors: " $0
			}
			END { if (!summary) print "no ERROR SUMMARY: the process did not exit by itself" }' "$f")
		if [ -n "$why" ]; then
			bad=$((bad + 1))
			{
				printf '%s (%s):\n%s\n' "$f" "$(sed -n 's/^==[0-9]*== Command: //p' "$f" | head -n 1)" "$why"
				grep -v '^==[0-9]*== *$' "$f" | head -c 20000
			} | diag
		fi
	done
	result "$([ "$bad" = 0 ] && [ "$count" -gt 0 ] && [ "$count" -ge "$started" ] && echo 0 || echo 1)" \
		"valgrind: no error and no definitely or indirectly lost byte in the logs of $count proxy process(es) ($started started, $bad bad)"
	rm -rf "$build/meson-logs/valgrind"
	cp -r "$work/vg" "$build/meson-logs/valgrind"
fi

dsp_shared_dockerd_stop
echo "total time $(elapsed)" | diag
finish

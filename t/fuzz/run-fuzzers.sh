#!/bin/bash
# Builds each libFuzzer target (clang, with AddressSanitizer and UndefinedBehaviorSanitizer)
# and runs it for FUZZ_SECONDS (default 20) from its seed corpus in t/fuzz/corpus/NAME.
# Any crash, leak, sanitizer report or failed invariant fails the run. TAP output.
#   FUZZ_SECONDS, FUZZ_WORKDIR (default: a temporary directory)
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../src" && pwd)
seconds=${FUZZ_SECONDS:-20}
work=${FUZZ_WORKDIR:-$(mktemp -d /tmp/dsp-fuzz.XXXXXX)}
mkdir -p "$work"
cc=${CLANG:-clang}
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }

if ! command -v "$cc" >/dev/null; then
	echo "Bail out! $cc is not installed (tools/install-deps.sh installs clang)"
	exit 1
fi
printf '#define PROJECT_VERSION "fuzz"\n#define DEFAULT_SOCKET_PATH "/run/docker.sock"\n' >"$work/config-build.h"

for target in policy env-file response-head chunked request-gate; do
	exe=$work/fuzz-$target
	if ! "$cc" -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -I"$work" -I"$src" \
		"$here/fuzz-$target.c" "$src/http-util.c" "$src/request-gate.c" "$src/policy.c" "$src/env-file.c" "$src/config.c" \
		-o "$exe" 2>"$work/$target.build.log"; then
		ok 1 "fuzz-$target builds: $(head -c 500 "$work/$target.build.log")"
		continue
	fi
	ok 0 "fuzz-$target builds"
	corpus=$work/corpus-$target
	mkdir -p "$corpus"
	cp "$here/corpus/$target"/* "$corpus/" 2>/dev/null
	(cd "$work" && "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=4096 \
		-print_final_stats=1 "$corpus" >"$work/$target.log" 2>&1)
	rc=$?
	ok $rc "fuzz-$target ran $seconds s without a crash$( [ $rc = 0 ] || printf ': %s' "$(grep -m3 -E 'ERROR|SUMMARY|Assertion|runtime error' "$work/$target.log" | tr '\n' ' ')")"
	grep -E '^stat::number_of_executed_units' "$work/$target.log" | sed "s/^/# $target: /"
done
echo "1..$n"
[ -n "${FUZZ_WORKDIR:-}" ] || { [ $failed = 0 ] && rm -rf "$work"; }
exit $failed

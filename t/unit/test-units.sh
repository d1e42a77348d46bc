#!/bin/bash
# The packaged units: systemd-analyze verify prints nothing, and the services score 1.0 or
# lower in systemd-analyze security --offline (the exposure scale is 0-10; --threshold is
# in tenths).
set -u
src=${DSP_SOURCE_ROOT:?} build=${DSP_BUILD_ROOT:?} bin=${DSP_PROXY_BIN:?}
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$src"/units/*.socket "$dir/"
for u in "$build"/units/*.service; do
	# The installed binary path does not exist in a build tree: point at the built one.
	sed "s#^ExecStart=[^ ]*docker-socket-proxy#ExecStart=$bin#" "$u" >"$dir/$(basename "$u")"
done
cd "$dir" || exit 1

for unit in docker-socket-proxy.service docker-socket-proxy.socket docker-socket-proxy-tcp.socket \
	docker-socket-proxy@traefik.service docker-socket-proxy@traefik.socket; do
	out=$(SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify --man=no "$dir/$unit" 2>&1)
	ok $? "systemd-analyze verify $unit exits 0"
	[ -z "$out" ]
	ok $? "systemd-analyze verify $unit prints nothing${out:+: $out}"
done

for unit in docker-socket-proxy.service docker-socket-proxy@.service; do
	out=$(systemd-analyze security --offline=true --threshold=10 "$dir/$unit" 2>&1)
	ok $? "systemd-analyze security scores $unit at 1.0 or lower: $(grep -o 'Overall.*' <<<"$out")"
done

grep -q '^ExecStart=.*--env-file=.*/docker-socket-proxy/default.env' "$dir/docker-socket-proxy.service"
ok $? "the service reads /etc/docker-socket-proxy/default.env"
grep -q '^ExecStart=.*--env-file=.*/docker-socket-proxy/%i.env' "$dir/docker-socket-proxy@.service"
ok $? "each template instance reads its own NAME.env"
grep -q '^FileDescriptorName=unix' "$dir/docker-socket-proxy.socket" &&
	grep -q '^FileDescriptorName=tcp' "$dir/docker-socket-proxy-tcp.socket"
ok $? "the socket units name their listeners"

# The default policy file lists every variable of the contract, commented, and its own
# check-config agrees that it is the safe default.
for v in $(sed -n 's/^| `\([A-Z_0-9]*\)`.*/\1/p' "$src/docs/policy.md" | sort -u); do
	grep -q "^#$v=" "$src/units/default.env"
	ok $? "default.env lists $v"
done
out=$("$bin" --check-config --env-file "$src/units/default.env" 2>&1)
ok $? "default.env passes --check-config"
grep -q '^CONTAINERS=0 *refuse' <<<"$out" && grep -q '^POST=0 ' <<<"$out" && grep -q '^EVENTS=1 *allow' <<<"$out"
ok $? "default.env is the safe default policy"

for page in "$src"/man/*.[0-9]; do
	out=$(mandoc -T lint "$page" 2>&1)
	[ -z "$out" ]
	ok $? "mandoc -T lint $(basename "$page") is clean${out:+: $out}"
done
echo "1..$n"
exit $failed

#!/bin/bash
# Every MESSAGE_ID the proxy logs has a journal catalog entry, and journalctl accepts the
# catalog file (compiled into a scratch root, the way journalctl --update-catalog does).
set -u
src=${DSP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
ids=$(sed -n 's/^#define DSP_MESSAGE_[A-Z_]* "\([0-9a-f]\{32\}\)"$/\1/p' "$src/src/audit-ids.h")
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }

[ -n "$ids" ]; ok $? "audit-ids.h defines message IDs"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd/catalog" "$root/var/lib/systemd/catalog"
cp "$src/catalog/docker-socket-proxy.catalog" "$root/usr/lib/systemd/catalog/"
journalctl --root="$root" --update-catalog 2>"$root/err"
ok $? "journalctl --update-catalog accepts the catalog"
[ ! -s "$root/err" ]; ok $? "journalctl printed no complaint about it: $(head -c 300 "$root/err")"
listed=$(journalctl --root="$root" --list-catalog 2>/dev/null)
for id in $ids; do
	grep -q "^-- $id\$" "$src/catalog/docker-socket-proxy.catalog"
	ok $? "catalog entry for $id"
	grep -q "^$id " <<<"$listed"
	ok $? "journalctl lists $id with a subject"
done
echo "1..$n"
exit $failed

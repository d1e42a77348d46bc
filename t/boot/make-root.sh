#!/bin/bash
# Make (or reuse) the Debian 12 root the boot test boots with systemd-nspawn.
#
#   t/boot/make-root.sh [CACHE_DIR]     prints the root's path on stdout
#
# The root is a debootstrap --variant=minbase of bookworm with systemd and what the test
# needs inside: the package's dependencies (libmicrohttpd12; procps for the kill of the
# service's ExecReload), jq for the journal's JSON, man-db so that systemd-analyze verify
# checks that the units' Documentation= man pages are installed.
# It is cached under CACHE_DIR (default /var/cache/dsp-boot) in a directory named after a
# hash of everything that decides its contents, made in a scratch directory and renamed
# into place only when complete, under a lock. The test never writes into it: it boots
# an overlay on top of it.
#
# The mirror is the machine's own: DSP_BOOT_MIRROR, or the first bookworm "main" source
# of /etc/apt/sources.list{,.d/*}. No host name is written here.
set -euo pipefail

cache=${1:-${DSP_BOOT_CACHE:-/var/cache/dsp-boot}}
suite=bookworm
variant=minbase
include=systemd,systemd-sysv,dbus,iproute2,curl,libmicrohttpd12,jq,procps,man-db
# Bump when the way the root is made changes.
recipe=1

log() { printf 'make-root: %s\n' "$*" >&2; }

# The machine's Debian mirror for $suite, from one-line and deb822 sources.
mirror_from_apt() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i + 1) == s) { for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit } }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# One stanza at a time: Types has deb, Suites has $suite, Components has main.
		awk -v s="$suite" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && (" " comps " ") ~ / main /) {
					split(uris, u, " "); print u[1]; found = 1; exit
				}
				types = suites = comps = uris = ""
			}
			/^[ \t]*$/ { flush(); next }
			/^[ \t]*#/ { next }
			{ key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ /, "")
			  if (key == "types") types = $0; else if (key == "suites") suites = $0
			  else if (key == "components") comps = $0; else if (key == "uris") uris = $0 }
			END { if (!found) flush() }' "$f"
	done
}

mkdir -p "$cache"
key=$(printf '%s\n' "$suite" "$variant" "$include" "$recipe" "$(uname -m)" | sha256sum | cut -c1-16)
root=$cache/root-$key
exec 9>"$cache/lock"
flock -w 900 9 || { log "cannot lock $cache/lock"; exit 1; }

if [ -f "$root/.dsp-boot-complete" ]; then
	log "reusing $root"
	printf '%s\n' "$root"
	exit 0
fi

mirror=${DSP_BOOT_MIRROR:-$(mirror_from_apt | head -n 1)}
[ -n "$mirror" ] || { log "no $suite main source in /etc/apt/sources.list{,.d}; set DSP_BOOT_MIRROR"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }

# Roots of older recipes and failed attempts.
for old in "$cache"/root-* "$cache"/tmp-*; do
	[ -e "$old" ] && [ "$old" != "$root" ] && rm -rf --one-file-system "$old"
done

tmp=$(mktemp -d "$cache/tmp-$key.XXXXXX")
log "debootstrap $variant $suite with $include into $tmp (about 2 minutes)"
start=$SECONDS
if ! debootstrap --variant="$variant" --include="$include" "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1; then
	log "debootstrap failed; the end of its log:"
	tail -n 30 "$tmp.log" >&2
	[ -f "$tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
	rm -rf --one-file-system "$tmp" "$tmp.log"
	exit 1
fi
rm -f "$tmp.log"
# Nothing inside may look for a network or a host name it does not have.
rm -f "$tmp/etc/apt/sources.list"
printf 'dsp-boot\n' >"$tmp/etc/hostname"
# Keep the root small and the boot quiet.
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"*_Packages 2>/dev/null || true
date -u +%FT%TZ >"$tmp/.dsp-boot-complete"
mv "$tmp" "$root"
log "made $root in $((SECONDS - start)) s"
printf '%s\n' "$root"

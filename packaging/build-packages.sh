#!/bin/bash
# Build the Debian package and the RPM from a clean copy of the tree, and lint the .deb.
#
#   packaging/build-packages.sh [--head] [--source-id]
#
# The sources are the files git knows about (tracked, and untracked but not ignored) of
# the working tree, so uncommitted work is packaged too and build directories never are;
# with --head, exactly HEAD (git archive). Outside a git checkout: the tree without
# build*/ and packaging/out/.
#
# Results in packaging/out/: docker-socket-proxy_V_ARCH.deb, its .changes and .buildinfo,
# docker-socket-proxy-V-1.ARCH.rpm, lintian.txt, and SOURCE-ID (a hash of the packaged
# sources, by which t/boot/t-boot.sh knows the .deb is fresh). --source-id only prints
# that hash for the current tree and exits.
#
# Fails when a build fails, when lintian reports any error or warning, or when the two
# packages do not install the same files.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/packaging/out
mode=worktree
only_id=
for arg in "$@"; do
	case $arg in
	--head) mode='head' ;;
	--source-id) only_id=1 ;;
	*) echo "usage: $0 [--head] [--source-id]" >&2; exit 2 ;;
	esac
done

log() { printf 'build-packages: %s\n' "$*" >&2; }

# The list of source files (NUL-separated, relative to $top).
source_files() {
	if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		# Deleted-but-tracked files are listed by ls-files -c; keep only what exists.
		git -C "$top" ls-files -z -c -o --exclude-standard |
			while IFS= read -r -d '' f; do [ -f "$top/$f" ] && printf '%s\0' "$f"; done
	else
		(cd "$top" && find . \( -path ./packaging/out -o -path './build*' -o -path ./.git \) -prune \
			-o -type f -printf '%P\0')
	fi
}

# A hash of the names and contents of the sources (and of this script's mode).
source_id() {
	if [ "$mode" = head ]; then
		printf 'head %s\n' "$(git -C "$top" rev-parse HEAD)"
	else
		(cd "$top" && source_files | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1
	fi
}

if [ -n "$only_id" ]; then
	source_id
	exit 0
fi

[ "$(id -u)" -eq 0 ] || { log "run this as root (it installs build dependencies with apt)"; exit 1; }

# ---- what the builds need --------------------------------------------------------------
packages=(
	build-essential dpkg-dev debhelper fakeroot lintian rpm
	meson ninja-build pkgconf libmicrohttpd-dev libsystemd-dev systemd mandoc
)
missing=()
for p in "${packages[@]}"; do
	[ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi

scratch=$(mktemp -d /tmp/dsp-packages.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
src=$scratch/src
mkdir -p "$src"
if [ "$mode" = head ]; then
	git -C "$top" archive --format=tar HEAD | tar -C "$src" -x
else
	(cd "$top" && source_files | tar --null -T - -c) | tar -C "$src" -x
fi
rm -rf "$src/packaging/out" "$src/debian"
id=$(source_id)

# The packaging comes with the sources (so --head packages HEAD's packaging too).
if [ ! -d "$src/packaging/debian" ] || [ ! -f "$src/packaging/rpm/docker-socket-proxy.spec" ]; then
	log "the $mode sources have no packaging/debian or packaging/rpm (with --head: commit them first)"
	exit 1
fi
version=$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
[ -n "$version" ] || { log "cannot read the version from meson.build"; exit 1; }
deb_version=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
rpm_version=$(sed -n 's/^Version: *//p' "$src/packaging/rpm/docker-socket-proxy.spec")
if [ "$deb_version" != "$version" ] || [ "$rpm_version" != "$version" ]; then
	log "versions disagree: meson.build $version, debian/changelog $deb_version, spec $rpm_version"
	exit 1
fi
mv "$src" "$scratch/docker-socket-proxy-$version"
src=$scratch/docker-socket-proxy-$version
log "sources: $mode, $(find "$src" -type f | wc -l) files, id $id"

rm -rf "$out"
mkdir -p "$out"
start=$SECONDS

# ---- the Debian package ----------------------------------------------------------------
# A copy of the source tree with packaging/debian as its debian/: dpkg-buildpackage wants it
# there, and the RPM's tarball below must not carry it.
debsrc=$scratch/deb/docker-socket-proxy-$version
mkdir -p "$scratch/deb"
cp -a "$src" "$debsrc"
cp -a "$src/packaging/debian" "$debsrc/debian"
log "dpkg-buildpackage -us -uc -b"
if ! (cd "$debsrc" && dpkg-buildpackage -us -uc -b) >"$out/deb-build.log" 2>&1; then
	tail -n 60 "$out/deb-build.log" >&2
	log "dpkg-buildpackage failed (log: $out/deb-build.log)"
	exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
base=docker-socket-proxy_${version}_$arch
# Everything the .changes names (the package, its -dbgsym and the .buildinfo), and it.
for f in "$base.changes" $(sed -n '/^Files:/,/^[^ ]/s/^ [0-9a-f]\{32\} [0-9]* [^ ]* [^ ]* //p' \
	"$scratch/deb/$base.changes"); do
	cp "$scratch/deb/$f" "$out/"
done
log "built $base.deb in $((SECONDS - start)) s"

# lintian on the .changes checks the .deb, the -dbgsym and the .buildinfo too. It runs as
# nobody (it warns when run as root) on a copy it can read. Informational and pedantic
# tags are shown too; errors and warnings fail the build, and so does lintian not checking
# the three packages.
lint=$scratch/lint
mkdir -p "$lint"
cp "$out"/*.changes "$out"/*.deb "$out"/*.buildinfo "$lint/"
chmod -R a+rX "$scratch"
rc=0
(cd "$lint" && runuser -u nobody -- env HOME="$lint" lintian --display-info --pedantic --display-experimental \
	--fail-on error,warning "$base.changes") >"$out/lintian.txt" 2>&1 || rc=$?
sed 's/^/lintian: /' "$out/lintian.txt" >&2
if [ "$rc" -ne 0 ] || grep -qE '^[EW]: ' "$out/lintian.txt"; then
	log "lintian reports errors or warnings, or failed (status $rc)"
	exit 1
fi
if grep -qiE 'No packages selected|^Skipping' "$out/lintian.txt"; then
	log "lintian did not check the packages"
	exit 1
fi
log "lintian: no errors, no warnings"

# ---- the RPM ---------------------------------------------------------------------------
start=$SECONDS
top_rpm=$scratch/rpm
mkdir -p "$top_rpm"/{BUILD,RPMS,SOURCES,SPECS,SRPMS}
tar -C "$scratch" -czf "$top_rpm/SOURCES/docker-socket-proxy-$version.tar.gz" "docker-socket-proxy-$version"
cp "$src/units/docker-socket-proxy.sysusers" "$top_rpm/SOURCES/docker-socket-proxy.sysusers"
cp "$src/packaging/rpm/docker-socket-proxy.spec" "$top_rpm/SPECS/"
# --nodeps: Debian's rpm has no database of the Debian packages that satisfy the
# BuildRequires (apt installed them above), so it cannot check them.
log "rpmbuild -bb --nodeps"
if ! rpmbuild -bb --nodeps --define "_topdir $top_rpm" "$top_rpm/SPECS/docker-socket-proxy.spec" \
	>"$out/rpm-build.log" 2>&1; then
	tail -n 60 "$out/rpm-build.log" >&2
	log "rpmbuild failed (log: $out/rpm-build.log)"
	exit 1
fi
rpm_file=$(find "$top_rpm/RPMS" -name "docker-socket-proxy-$version-*.rpm" ! -name '*debug*' | head -n 1)
[ -n "$rpm_file" ] || { log "rpmbuild made no docker-socket-proxy RPM"; exit 1; }
cp "$rpm_file" "$out/"
log "built $(basename "$rpm_file") in $((SECONDS - start)) s"

# ---- both install the same files -------------------------------------------------------
# Compared: files and symlinks, with man pages' compression suffix dropped. Expected to
# differ: Debian's /usr/share/doc/docker-socket-proxy (changelog, copyright, docs, as rpm's
# %doc under its own name), the RPM's systemd preset (Debian enables the sockets in the
# maintainer scripts instead) and its /usr/lib/.build-id links (debuginfo, in the -dbgsym
# .deb on Debian).
dpkg-deb --fsys-tarfile "$out/$base.deb" | tar -t | sed -e 's#^\./#/#' -e 's#\.gz$##' |
	grep -v '/$' | grep -v '^/usr/share/doc/' | LC_ALL=C sort >"$scratch/deb.files"
rpm -qlp "$rpm_file" 2>/dev/null | sed 's#\.gz$##' |
	while read -r f; do
		case $f in /usr/share/doc/* | /usr/lib/systemd/system-preset/* | /usr/lib/.build-id*) continue ;; esac
		# rpm lists directories it owns; the .deb list above has files only.
		[ "$f" = /etc/docker-socket-proxy ] && continue
		printf '%s\n' "$f"
	done | LC_ALL=C sort >"$scratch/rpm.files"
if ! diff -u "$scratch/deb.files" "$scratch/rpm.files" >"$scratch/files.diff"; then
	cat "$scratch/files.diff" >&2
	log "the .deb and the .rpm install different files"
	exit 1
fi
log "the .deb and the .rpm install the same $(wc -l <"$scratch/deb.files") files"

printf '%s\n' "$id" >"$out/SOURCE-ID"
ls -l "$out" >&2

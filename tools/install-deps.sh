#!/bin/bash
# Install what the build and the tests need, on Debian 12, as root. Idempotent: when
# everything is installed already it does not touch apt at all.
set -euo pipefail

packages=(
	build-essential meson ninja-build pkgconf
	libmicrohttpd-dev libsystemd-dev
	docker.io busybox-static iproute2 util-linux procps
	curl jq python3 python3-docker mandoc
	clang libclang-rt-14-dev llvm valgrind
	systemd
	debootstrap rpm lintian dpkg-dev debhelper fakeroot
)
# dockerode's test needs node and npm; take Debian's unless the machine has its own.
if ! command -v npm >/dev/null 2>&1; then
	packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done

# systemd-nspawn (the boot test) must match the installed systemd, or apt upgrades systemd.
if [ "$(dpkg-query -W -f '${db:Status-Status}' systemd-container 2>/dev/null || true)" != installed ]; then
	systemd_version=$(dpkg-query -W -f '${Version}' systemd 2>/dev/null || true)
	missing+=("systemd-container${systemd_version:+=$systemd_version}")
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages are installed"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing ${missing[*]}; run this as root" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
# docker.io's maintainer scripts would start a dockerd on the host's network; the tests
# only ever run one in a private network namespace. Keep apt from starting services for
# this install (policy-rc.d exit 101), unless the machine already has its own policy.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

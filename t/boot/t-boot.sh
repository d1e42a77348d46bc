#!/bin/bash
# The boot test: the Debian package, installed, used, reloaded, stopped, removed and purged
# under a real systemd (PID 1 of a systemd-nspawn container of Debian 12), in front of the
# test's real Docker daemon.
#
#  1. the .deb: packaging/out/ when its SOURCE-ID says it was built from the current tree,
#     otherwise packaging/build-packages.sh builds it (and the RPM, and runs lintian);
#  2. the Docker daemon: the run's shared one (DSP_TEST_DOCKER_SOCK) or one of our own;
#  3. the root: t/boot/make-root.sh (debootstrap, cached under /var/cache/dsp-boot);
#  4. an overlay on the root (the cache is never written), with the checks' unit
#     dsp-boot-check.service enabled, the group docker of the daemon's socket, and the .deb;
#  5. systemd-nspawn -b with a private network (only lo), the daemon's socket bound in as
#     /run/docker.sock and /usr/local/bin/docker bound in; killed by its PID if it overruns;
#  6. the report the checks wrote (t/boot/inside.sh), turned into TAP lines here.
#
# Environment: DSP_BOOT_TIMEOUT (seconds for the boot and the checks, default 300),
# DSP_BOOT_CACHE (default /var/cache/dsp-boot), DSP_BOOT_DEB (a .deb to test instead),
# DSP_BOOT_KEEP (a directory to keep the console log, the report and the journal in).
top=${DSP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/t/lib/common.sh"

boot_timeout=${DSP_BOOT_TIMEOUT:-300}
here=$top/t/boot
cli=${DSP_CLI_NEW:-/usr/local/bin/docker}
for tool in systemd-nspawn debootstrap dpkg-buildpackage rpmbuild lintian; do
	command -v "$tool" >/dev/null || bail "$tool is not installed (tools/install-deps.sh installs it)"
done
[ -x "$cli" ] || bail "$cli (the static Docker CLI to bind into the container) is missing"

# ---- 1. the package --------------------------------------------------------------------
start=$SECONDS
if [ -n "${DSP_BOOT_DEB:-}" ]; then
	deb=$DSP_BOOT_DEB
	ok "the package to test is $deb" test -f "$deb" || bail "no package to test"
else
	the_deb() { # the package in packaging/out/ (not its -dbgsym), or nothing
		local f
		for f in "$top"/packaging/out/docker-socket-proxy_*.deb; do
			[ -f "$f" ] && printf '%s\n' "$f" && return
		done
	}
	deb=$(the_deb)
	id=$("$top/packaging/build-packages.sh" --source-id)
	if [ -n "$deb" ] && [ "$(cat "$top/packaging/out/SOURCE-ID" 2>/dev/null)" = "$id" ]; then
		pass "packaging/out/$(basename "$deb") was built from the current tree (SOURCE-ID $id)"
	else
		if "$top/packaging/build-packages.sh" >"$DSP_TMP/build-packages.log" 2>&1; then
			pass "packaging/build-packages.sh builds the .deb and the .rpm, lintian-clean, in $((SECONDS - start)) s"
		else
			fail "packaging/build-packages.sh builds the .deb and the .rpm, lintian-clean"
			diag "$(tail -n 40 "$DSP_TMP/build-packages.log")"
			bail "no package to test"
		fi
		deb=$(the_deb)
	fi
fi

# ---- 2. the Docker daemon --------------------------------------------------------------
export DSP_DOCKER_CLI=$cli # for t/lib/dockerd.sh
dsp_dockerd_setup || bail "no Docker daemon for the test"
server_version=$(dsp_docker version --format '{{.Server.Version}}' 2>/dev/null)
sock_gid=$(stat -c %g "$DSP_DOCKER_SOCK")
sock_mode=$(stat -c %a "$DSP_DOCKER_SOCK")
# As on a host with docker.io: the socket belongs to the group docker, which the service
# joins with SupplementaryGroups=docker. The container gets a group docker of that GID.
if [ "$sock_gid" -eq 0 ] || [ "${sock_mode:1:1}" != 6 ]; then
	bail "the daemon's socket $DSP_DOCKER_SOCK is $(stat -c '%U:%G %a' "$DSP_DOCKER_SOCK"); it must be group-writable by a group docker (install docker.io so dockerd finds one)"
fi

# ---- 3. the root -----------------------------------------------------------------------
start=$SECONDS
root=$("$here/make-root.sh" 2>"$DSP_TMP/make-root.log")
if [ -n "$root" ] && [ -f "$root/.dsp-boot-complete" ]; then
	pass "the Debian 12 root $root is ready ($((SECONDS - start)) s)"
else
	fail "t/boot/make-root.sh makes the Debian 12 root"
	diag "$(tail -n 30 "$DSP_TMP/make-root.log")"
	bail "no root to boot"
fi

# ---- 4. an overlay with the test in it -------------------------------------------------
ov=$DSP_TMP/overlay
mkdir -p "$ov/upper" "$ov/work" "$ov/merged"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$ov/upper,workdir=$ov/work" "$ov/merged" ||
	bail "cannot mount an overlay on $root"
dsp_at_exit "umount '$ov/merged' || umount -l '$ov/merged'"
m=$ov/merged
install -m 0755 "$here/inside.sh" "$m/usr/local/sbin/dsp-boot-check"
install -m 0644 "$here/dsp-boot-check.service" "$m/etc/systemd/system/dsp-boot-check.service"
ln -sf /etc/systemd/system/dsp-boot-check.service "$m/etc/systemd/system/multi-user.target.wants/dsp-boot-check.service"
chroot "$m" groupadd -o -g "$sock_gid" docker || bail "cannot add the group docker ($sock_gid) to the container"
mkdir -p "$m/dsp-boot"
: >"$m/usr/local/bin/docker" # the mount point of the bound CLI
boot=$DSP_TMP/boot
mkdir -p "$boot"
cp "$deb" "$boot/docker-socket-proxy.deb"
# The same package with a higher version, for the upgrade path of the maintainer scripts.
version=$(dpkg-deb -f "$deb" Version)
upgrade_version=$version+boot1
if ! { dpkg-deb -R "$deb" "$DSP_TMP/upgrade" &&
	sed -i "s/^Version: .*/Version: $upgrade_version/" "$DSP_TMP/upgrade/DEBIAN/control" &&
	dpkg-deb --root-owner-group -b "$DSP_TMP/upgrade" "$boot/docker-socket-proxy-upgrade.deb" >/dev/null; }; then
	bail "cannot make the upgrade package"
fi
cat >"$boot/params" <<EOF
DSP_IMAGE='$DSP_TEST_IMAGE'
DSP_SERVER_VERSION='$server_version'
DSP_UPGRADE_VERSION='$upgrade_version'
EOF

# ---- 5. boot ---------------------------------------------------------------------------
console=$DSP_TMP/console.log
start=$SECONDS
systemd-nspawn -D "$m" --register=no --keep-unit --private-network --console=read-only \
	--machine="dsp-boot-$$" \
	--bind="$DSP_DOCKER_SOCK:/run/docker.sock" --bind-ro="$cli:/usr/local/bin/docker" \
	--bind="$boot:/dsp-boot" -b </dev/null >"$console" 2>&1 &
npid=$!
dsp_at_exit "kill -KILL $npid 2>/dev/null"
overran=
while dsp_pid_alive "$npid"; do
	if [ $((SECONDS - start)) -ge "$boot_timeout" ]; then
		overran=1
		kill -TERM "$npid" 2>/dev/null # nspawn asks the container's systemd to power off
		_dsp_wait_gone "$npid" 150 || kill -KILL "$npid" 2>/dev/null
		break
	fi
	sleep 0.5
done
wait "$npid"
nrc=$?
took=$((SECONDS - start))
if [ -z "$overran" ] && [ "$nrc" -eq 0 ]; then
	pass "the container booted, ran the checks and powered off by itself in $took s"
else
	fail "the container booted, ran the checks and powered off by itself (status $nrc, ${overran:+killed after }$took s)"
	diag "the end of its console:"
	diag "$(tail -n 60 "$console")"
fi

# ---- 6. the checks' report -------------------------------------------------------------
done_line=
if [ -f "$boot/tap" ]; then
	while IFS= read -r line; do
		case $line in
		"ok - "*) pass "${line#ok - }" ;;
		"not ok - "*) fail "${line#not ok - }" ;;
		"# dsp-boot-check: done") done_line=1 ;;
		"#"*) printf '%s\n' "$line" ;;
		*) diag "report: $line" ;;
		esac
	done <"$boot/tap"
fi
if [ -n "$done_line" ]; then
	pass "the checks inside ran to their end"
else
	fail "the checks inside ran to their end"
	diag "the end of the console:"
	diag "$(tail -n 40 "$console")"
fi
if [ -n "${DSP_BOOT_KEEP:-}" ]; then
	mkdir -p "$DSP_BOOT_KEEP" && cp "$console" "$boot/tap" "$DSP_BOOT_KEEP/" 2>/dev/null
	cp -r "$ov/upper/var/log/journal" "$DSP_BOOT_KEEP/" 2>/dev/null
	diag "console, report and journal kept in $DSP_BOOT_KEEP"
fi
done_testing

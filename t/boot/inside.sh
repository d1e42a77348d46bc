#!/bin/bash
# The boot test's checks, inside the container, under its real systemd (PID 1). Installed
# as /usr/local/sbin/dsp-boot-check and run by dsp-boot-check.service; t/boot/t-boot.sh
# boots the container and reads the report afterwards.
#
# /dsp-boot (bound from the host) holds: params (sourced: DSP_IMAGE, DSP_SERVER_VERSION,
# DSP_UPGRADE_VERSION), docker-socket-proxy.deb, docker-socket-proxy-upgrade.deb (the same
# with a higher version); this script writes /dsp-boot/tap there: one "ok - TEXT" or
# "not ok - TEXT" a check, "# TEXT" comments, and "# dsp-boot-check: done" at the end.
# /run/docker.sock is the host test's real Docker daemon; /usr/local/bin/docker its CLI.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
dir=/dsp-boot
report=$dir/tap
: >"$report"
# shellcheck source=/dev/null
. "$dir/params"

MSG_REFUSED=03af889615c540f7a2e89bf7b88d0426
UNIX=unix:///run/docker-socket-proxy.sock
TCP=tcp://127.0.0.1:2375
CI=unix:///run/docker-socket-proxy/ci.sock
DAEMON=unix:///run/docker.sock
ENVFILE=/etc/docker-socket-proxy/default.env

# ---- TAP, to the report and to the console ---------------------------------------------
emit() { printf '%s\n' "$*" >>"$report"; printf 'dsp-boot-check: %s\n' "$*"; }
diag() {
	local line
	while IFS= read -r line; do emit "# $line"; done <<<"$*"
}
pass() { emit "ok - $1"; }
fail() { emit "not ok - $1"; }
check() { # DESCRIPTION COMMAND... : passes when the command exits 0
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc"; diag "  command failed: $*"; return 1; fi
}
is() { # GOT EXPECTED DESCRIPTION
	if [ "$1" = "$2" ]; then pass "$3"; else fail "$3"; diag "       got: '$1'" "  expected: '$2'"; return 1; fi
}
like() { # TEXT ERE DESCRIPTION
	if printf '%s\n' "$1" | grep -qE -- "$2"; then pass "$3"; else
		fail "$3"
		diag "  text does not match /$2/:"
		diag "$(printf '%s\n' "$1" | head -n 30 | sed 's/^/    /')"
		return 1
	fi
}
wait_for() { # TENTHS COMMAND...: retry every 0.1 s until it succeeds
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# A user in the group docker-socket-proxy (the clients of the proxy), and one outside it.
client() { runuser -u dspclient -- env HOME=/home/dspclient timeout 30 docker "$@"; }
outsider() { runuser -u dspother -- env HOME=/home/dspother timeout 30 docker "$@"; }
daemon() { timeout 30 docker -H "$DAEMON" "$@"; }
prop() { systemctl show -P "$2" "$1"; }
main_pid() { prop docker-socket-proxy.service MainPID; }
listening_tcp() { ss -Hltn 'sport = :2375' | grep -q '127.0.0.1:2375'; }
not_listening_tcp() { ! listening_tcp; }

# ---- the system ------------------------------------------------------------------------
state=$(timeout 120 systemctl is-system-running --wait 2>&1)
is "$state" running "the container booted to 'running' under systemd"
[ "$state" = running ] || diag "$(systemctl --failed --no-legend 2>&1)"
check "the host's Docker daemon answers on /run/docker.sock" \
	curl -sf --max-time 10 --unix-socket /run/docker.sock http://docker/_ping -o /dev/null

useradd -m -U dspclient || diag "useradd dspclient failed"
useradd -m -U dspother || diag "useradd dspother failed"

# ---- installation ----------------------------------------------------------------------
t0=$(now)
out=$(dpkg -i "$dir/docker-socket-proxy.deb" 2>&1)
check "dpkg -i installs the package under systemd" [ $? -eq 0 ] || diag "$out"
diag "dpkg -i took $(elapsed "$t0") s"
check "the group docker-socket-proxy exists after installation (sysusers)" getent group docker-socket-proxy
usermod -a -G docker-socket-proxy dspclient
for u in docker-socket-proxy.socket docker-socket-proxy-tcp.socket; do
	is "$(systemctl is-enabled "$u" 2>&1)" enabled "$u is enabled by the installation"
	is "$(systemctl is-active "$u" 2>&1)" active "$u is started by the installation"
done
is "$(systemctl is-active docker-socket-proxy.service 2>&1)" inactive \
	"docker-socket-proxy.service is not started by the installation (socket activation starts it)"
links=$(find /etc/systemd/system -name docker-socket-proxy.service 2>/dev/null)
is "$links" "" "docker-socket-proxy.service itself is not enabled (no symlink; 'indirect' through its sockets)"
links=$(find /etc/systemd/system -name 'docker-socket-proxy@*' 2>/dev/null)
is "$links" "" "the templates docker-socket-proxy@.{socket,service} are not enabled"
is "$(stat -c '%F %a %U:%G' /run/docker-socket-proxy.sock 2>&1)" "socket 660 root:docker-socket-proxy" \
	"/run/docker-socket-proxy.sock is a socket, mode 0660, group docker-socket-proxy"
check "127.0.0.1:2375 is listening" listening_tcp
cfg=$(docker-socket-proxy --check-config --env-file="$ENVFILE" 2>&1)
like "$cfg" '^CONTAINERS=0 +refuse' "the installed default.env is the safe default policy (CONTAINERS=0)"
like "$cfg" '^POST=0 ' "the installed default.env has POST=0"

# ---- socket activation -----------------------------------------------------------------
t0=$(now)
out=$(client -H "$UNIX" version --format '{{.Server.Version}} {{.Server.APIVersion}}' 2>&1)
is "${out%% *}" "$DSP_SERVER_VERSION" "the first docker version on the Unix socket answers with the daemon's version"
diag "first answer through socket activation after $(elapsed "$t0") s"
is "$(systemctl is-active docker-socket-proxy.service)" active "that connection started docker-socket-proxy.service"
pid=$(main_pid)
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
dynamic_uid() { [ -n "$1" ] && [ "$1" -ge 61184 ] && [ "$1" -le 65519 ]; }
check "the service runs under a dynamic user (uid ${uid:-?})" dynamic_uid "$uid"
groups=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$pid/status" 2>/dev/null)
docker_gid=$(getent group docker | cut -d: -f3)
like " $groups " " $docker_gid " "the service has the supplementary group docker ($docker_gid)"
out=$(outsider -H "$UNIX" version 2>&1)
like "$out" '[Pp]ermission denied' "a user outside the group docker-socket-proxy cannot use the Unix socket"

systemctl stop docker-socket-proxy.service
is "$(systemctl is-active docker-socket-proxy.service docker-socket-proxy.socket docker-socket-proxy-tcp.socket | tr '\n' ' ')" \
	"inactive active active " "stopping the service leaves both sockets listening"
out=$(client -H "$TCP" version --format '{{.Server.Version}}' 2>&1)
is "$out" "$DSP_SERVER_VERSION" "docker version over TCP 127.0.0.1:2375 answers"
is "$(systemctl is-active docker-socket-proxy.service)" active "the TCP connection started the service again"

# ---- upgrade: the sockets keep listening, a running service is restarted ---------------
# docker-socket-proxy-upgrade.deb is the same package with a higher version.
pid_before=$(main_pid)
ino_before=$(stat -c %i /run/docker-socket-proxy.sock)
out=$(dpkg -i "$dir/docker-socket-proxy-upgrade.deb" 2>&1)
check "dpkg -i of a newer version upgrades the package" [ $? -eq 0 ] || diag "$out"
is "$(dpkg-query -W -f '${Version}' docker-socket-proxy)" "$DSP_UPGRADE_VERSION" "the installed version is $DSP_UPGRADE_VERSION"
pid_after=$(main_pid)
new_pid() { [ "$1" != 0 ] && [ "$1" != "$2" ]; }
check "the upgrade restarted the running service (MainPID $pid_before -> $pid_after)" new_pid "$pid_after" "$pid_before"
is "$(stat -c %i /run/docker-socket-proxy.sock 2>&1)" "$ino_before" \
	"the upgrade kept the Unix socket (same inode: the socket unit was not restarted)"
check "127.0.0.1:2375 is still listening after the upgrade" listening_tcp
out=$(client -H "$UNIX" version --format '{{.Server.Version}}' 2>&1)
is "$out" "$DSP_SERVER_VERSION" "docker version answers after the upgrade"
systemctl stop docker-socket-proxy.service
out=$(dpkg -i "$dir/docker-socket-proxy-upgrade.deb" 2>&1)
check "dpkg -i again (the upgrade path of the maintainer scripts) with the service stopped" [ $? -eq 0 ] || diag "$out"
is "$(systemctl is-active docker-socket-proxy.service docker-socket-proxy.socket docker-socket-proxy-tcp.socket | tr '\n' ' ')" \
	"inactive active active " "that upgrade did not start the stopped service; the sockets listen"

# ---- a refusal, in the client and in the journal ----------------------------------------
out=$(client -H "$UNIX" run --rm "$DSP_IMAGE" true 2>&1)
rc=$?
check "docker run through the proxy fails (default policy)" [ "$rc" -ne 0 ]
like "$out" 'docker-socket-proxy: refused POST /v[0-9.]+/containers/create: needs CONTAINERS=1 and POST=1' \
	"docker run shows the proxy's refusal message"
client_uid=$(id -u dspclient)
refusal_entry() {
	journalctl --sync 2>/dev/null
	entry=$(journalctl -o json --no-pager "MESSAGE_ID=$MSG_REFUSED" _SYSTEMD_UNIT=docker-socket-proxy.service |
		jq -c 'select(.DSP_PATH != null and (.DSP_PATH | test("/containers/create$")))' | tail -n 1)
	[ -n "$entry" ]
}
if wait_for 50 refusal_entry; then
	pass "journalctl MESSAGE_ID=$MSG_REFUSED finds the refusal"
	fields=$(jq -r '[.DSP_METHOD, (.DSP_PATH | sub("^/v[0-9.]+"; "")), .DSP_RULE, .DSP_LISTENER, .DSP_PEER_UID] | join(" ")' <<<"$entry")
	like "$fields" "^POST /containers/create CONTAINERS[^ ]* unix $client_uid\$" \
		"its DSP_METHOD DSP_PATH DSP_RULE DSP_LISTENER DSP_PEER_UID"
else
	fail "journalctl MESSAGE_ID=$MSG_REFUSED finds the refusal"
	diag "$(journalctl -o json --no-pager "MESSAGE_ID=$MSG_REFUSED" | tail -n 3)"
fi
out=$(journalctl -x --no-pager "MESSAGE_ID=$MSG_REFUSED" _SYSTEMD_UNIT=docker-socket-proxy.service 2>&1)
like "$out" 'Subject: Docker API request refused by the policy' "journalctl -x shows the catalog entry for the refusal"

# ---- reload: the policy changes, an open stream keeps going ----------------------------
out=$(client -H "$UNIX" ps 2>&1)
like "$out" 'docker-socket-proxy: refused GET /v[0-9.]+/containers/json: needs CONTAINERS=1' "docker ps is refused before the reload"
events=$(mktemp)
# --since: the daemon replays what happened since then, so the first event shows that the
# stream is open even if it was caused before the stream was.
since=$(date +%s)
client -H "$UNIX" events --since "$since" --filter type=volume --format '{{.Action}} {{.Actor.ID}}' >"$events" 2>&1 &
events_pid=$!
vol_a=dsp-boot-a-$$ vol_b=dsp-boot-b-$$ vol_c=dsp-boot-c-$$
daemon volume create "$vol_a" >/dev/null
check "the events stream opened through the proxy delivers an event" wait_for 100 grep -q "create $vol_a" "$events"
pid_before=$(main_pid)
printf 'CONTAINERS=1\n' >>"$ENVFILE"
check "systemctl reload docker-socket-proxy succeeds" systemctl reload docker-socket-proxy.service
is "$(main_pid)" "$pid_before" "the reload keeps the same process"
ps_allowed() { client -H "$UNIX" ps >/dev/null 2>&1; }
check "docker ps is allowed after adding CONTAINERS=1 and reloading" wait_for 30 ps_allowed
daemon volume create "$vol_b" >/dev/null
check "the events stream opened before the reload delivers an event caused after it" \
	wait_for 100 grep -q "create $vol_b" "$events"
check "that docker events client is still running" kill -0 "$events_pid"
kill "$events_pid" 2>/dev/null
wait "$events_pid" 2>/dev/null

# ---- a template instance with its own policy -------------------------------------------
printf 'IMAGES=1\n' >/etc/docker-socket-proxy/ci.env
check "systemctl start docker-socket-proxy@ci.socket" systemctl start docker-socket-proxy@ci.socket
is "$(stat -c '%F %a %U:%G' /run/docker-socket-proxy/ci.sock 2>&1)" "socket 660 root:docker-socket-proxy" \
	"/run/docker-socket-proxy/ci.sock is a socket, mode 0660, group docker-socket-proxy"
out=$(client -H "$CI" images --format '{{.Repository}}:{{.Tag}}' 2>&1)
like "$out" "^$DSP_IMAGE\$" "docker images works on the instance ci (IMAGES=1 in ci.env)"
is "$(systemctl is-active docker-socket-proxy@ci.service)" active "that started docker-socket-proxy@ci.service"
out=$(client -H "$CI" ps 2>&1)
like "$out" 'refused GET /v[0-9.]+/containers/json: needs CONTAINERS=1' "the instance ci refuses docker ps (not in ci.env)"
out=$(client -H "$UNIX" images 2>&1)
like "$out" 'refused GET /v[0-9.]+/images/json: needs IMAGES=1' "the default socket still refuses docker images"
ci_entry() {
	journalctl --sync 2>/dev/null
	journalctl -o json --no-pager "MESSAGE_ID=$MSG_REFUSED" _SYSTEMD_UNIT=docker-socket-proxy@ci.service |
		jq -e -s 'map(select(.DSP_LISTENER == "ci")) | length > 0' >/dev/null
}
check "the instance's refusal is in the journal with DSP_LISTENER=ci" wait_for 50 ci_entry
out=$(systemd-analyze security docker-socket-proxy@ci.service 2>&1 | grep -o 'Overall exposure level.*')
like "$out" ': (0\.[0-9]|1\.0) ' "systemd-analyze security docker-socket-proxy@ci.service (online) is 1.0 or lower: $out"
# The instance ci keeps running: the removal must stop it.

# ---- stop with an open stream: within the drain bound ----------------------------------
since=$(date +%s)
client -H "$UNIX" events --since "$since" --filter type=volume --format '{{.Action}} {{.Actor.ID}}' >"$events" 2>&1 &
events_pid=$!
daemon volume create "$vol_c" >/dev/null
check "a new events stream is open before the stop" wait_for 100 grep -q "create $vol_c" "$events"
t0=$(now)
systemctl stop docker-socket-proxy.service
took=$(elapsed "$t0")
check "systemctl stop with docker events open completes within 5 s drain + 2 s ($took s)" \
	awk -v t="$took" 'BEGIN { exit !(t < 7) }'
is "$(prop docker-socket-proxy.service Result) $(prop docker-socket-proxy.service ExecMainStatus)" "success 0" \
	"the service stopped cleanly (Result=success, status 0)"
stream_ended() { ! kill -0 "$events_pid" 2>/dev/null; }
check "the open docker events stream was ended by the stop" wait_for 30 stream_ended
kill "$events_pid" 2>/dev/null
wait "$events_pid" 2>/dev/null
rm -f "$events"
daemon volume rm "$vol_a" "$vol_b" "$vol_c" >/dev/null 2>&1

# ---- the units, as systemd sees them ---------------------------------------------------
online=$(systemd-analyze security docker-socket-proxy.service 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
offline=$(systemd-analyze security --offline=true /lib/systemd/system/docker-socket-proxy.service 2>&1 |
	sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
is "$online" "$offline" "systemd-analyze security: the online score ($online) is the offline one ($offline)"
check "and it is 1.0 or lower" awk -v s="${online:-99}" 'BEGIN { exit !(s <= 1.0) }'
out=$(systemd-analyze verify docker-socket-proxy.service docker-socket-proxy.socket docker-socket-proxy-tcp.socket \
	docker-socket-proxy@ci.service docker-socket-proxy@ci.socket 2>&1)
rc=$?
check "systemd-analyze verify on the installed units exits 0" [ "$rc" -eq 0 ]
is "$out" "" "systemd-analyze verify on the installed units prints nothing"

# ---- removal and purge -----------------------------------------------------------------
files=$(dpkg-query -L docker-socket-proxy)
own_dirs="/etc/docker-socket-proxy /usr/share/doc/docker-socket-proxy"
client -H "$UNIX" version >/dev/null 2>&1 # the service runs during the removal
t0=$(now)
out=$(apt-get remove -y docker-socket-proxy 2>&1)
check "apt-get remove docker-socket-proxy" [ $? -eq 0 ] || diag "$out"
diag "apt-get remove took $(elapsed "$t0") s"
is "$(systemctl is-active docker-socket-proxy.service docker-socket-proxy.socket docker-socket-proxy-tcp.socket | tr '\n' ' ')" \
	"inactive inactive inactive " "after remove: the service and both sockets are stopped"
# (comm is the first 15 characters of the name)
is "$(systemctl is-active docker-socket-proxy@ci.service docker-socket-proxy@ci.socket | tr '\n' ' ')" \
	"inactive inactive " "after remove: the template instance ci is stopped too"
procs=$(grep -lx docker-socket-p /proc/[0-9]*/comm 2>/dev/null)
is "$procs" "" "after remove: no docker-socket-proxy process is left"
check "after remove: nothing listens on 127.0.0.1:2375" not_listening_tcp
check "after remove: the conffile default.env is kept (until purge)" [ -f "$ENVFILE" ]
is "$(dpkg-query -W -f '${db:Status-Abbrev}' docker-socket-proxy 2>&1)" "rc " "after remove: dpkg state is config-files"
# The administrator's own policy file of the instance is theirs to remove.
rm -f /etc/docker-socket-proxy/ci.env
out=$(apt-get purge -y docker-socket-proxy 2>&1)
check "apt-get purge docker-socket-proxy" [ $? -eq 0 ] || diag "$out"
left=
while IFS= read -r f; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	[ -d "$f" ] && ! grep -qx "$f" <<<"${own_dirs// /$'\n'}" && continue # a directory of others too
	left="$left $f"
done <<<"$files"
is "$left" "" "after purge: none of the package's $(wc -l <<<"$files") paths is left"
left=$(find /etc/systemd /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
	/run/systemd/system /run/docker-socket-proxy /run/docker-socket-proxy.sock \
	-name '*docker-socket-proxy*' 2>/dev/null)
is "$left" "" "after purge: no unit symlinks, deb-systemd-helper state or socket nodes are left"
is "$(dpkg-query -W -f '${db:Status-Abbrev}' docker-socket-proxy 2>/dev/null)" "" "after purge: dpkg knows nothing of the package"
is "$(systemctl list-units --all --no-legend 'docker-socket-proxy*' 2>&1)" "" "after purge: systemd has no docker-socket-proxy unit loaded"

emit "# dsp-boot-check: done"

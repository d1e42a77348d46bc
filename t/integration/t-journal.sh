#!/bin/bash
# Refusals in the journal (a journald of our own, in a private mount namespace) and on
# stderr with a syslog priority prefix.
if [ -z "${DSP_IN_MOUNT_NS:-}" ]; then
	# Own the journal: tmpfs on /run/systemd, /run/log and /var/log/journal, seen only
	# by this test's processes.
	for d in /run/systemd /run/log /var/log/journal; do
		[ -d "$d" ] || mkdir -p "$d"
	done
	export DSP_IN_MOUNT_NS=1
	exec unshare --mount --propagation private "$0" "$@"
fi
. "$(dirname "$0")/../lib/common.sh"

for d in /run/systemd /run/log /var/log/journal; do
	mount -t tmpfs -o mode=0755 tmpfs "$d" || bail "cannot mount a tmpfs on $d"
done
dsp_at_exit "umount /var/log/journal /run/log /run/systemd"
dsp_dockerd_setup || bail "no Docker daemon"

/lib/systemd/systemd-journald </dev/null >"$DSP_TMP/journald.log" 2>&1 &
journald_pid=$!
dsp_at_exit "kill -TERM $journald_pid; wait $journald_pid"
dsp_wait_for 50 test -S /run/systemd/journal/socket ||
	bail "systemd-journald did not create /run/systemd/journal/socket: $(cat "$DSP_TMP/journald.log")"

MID=03af889615c540f7a2e89bf7b88d0426

# entries MATCH...: the refusal entries as JSON lines
entries() { journalctl --no-pager -o json "MESSAGE_ID=$MID" "$@" 2>/dev/null; }
# wait_entries COUNT MATCH...: until at least COUNT entries are there (5 s)
wait_entries() {
	local n=$1 i
	shift
	for ((i = 0; i < 50; i++)); do
		[ "$(entries "$@" | grep -c .)" -ge "$n" ] && return 0
		sleep 0.1
	done
	return 1
}
field() { jq -r --arg f "$1" '.[$f] // "<missing>"' <<<"$entry"; }

dsp_proxy_activated -- --log-target=journal || bail "the proxy did not start"

# A refused request over the Unix listener, from a curl whose PID we know.
curl -s --max-time 20 -o "$DSP_TMP/body" -w '%{http_code}' --unix-socket "$DSP_PROXY_SOCK" \
	-X POST http://localhost/containers/create >"$DSP_TMP/code" &
cpid=$!
wait $cpid
is "$(cat "$DSP_TMP/code")" 403 "POST /containers/create over the Unix listener is refused"

wait_entries 1 DSP_LISTENER=unix
is "$(entries DSP_LISTENER=unix | grep -c .)" 1 "one journal entry with MESSAGE_ID=$MID for it"
entry=$(entries DSP_LISTENER=unix | head -n 1)
failed_before=$TAP_FAILED
is "$(field PRIORITY)" 4 "PRIORITY=4 (warning)"
is "$(field DSP_METHOD)" POST "DSP_METHOD=POST"
is "$(field DSP_PATH)" /containers/create "DSP_PATH=/containers/create"
like "$(field DSP_RULE)" '^CONTAINERS' "DSP_RULE names CONTAINERS"
is "$(field DSP_LISTENER)" unix "DSP_LISTENER=unix"
is "$(field DSP_STATUS)" 403 "DSP_STATUS=403"
is "$(field DSP_PEER_UID)" 0 "DSP_PEER_UID=0"
is "$(field DSP_PEER_GID)" 0 "DSP_PEER_GID=0"
is "$(field DSP_PEER_PID)" "$cpid" "DSP_PEER_PID is curl's PID"
is "$(field DSP_PEER_COMM)" curl "DSP_PEER_COMM=curl"
like "$(field MESSAGE)" "^Refused POST /containers/create from uid 0 \\(pid $cpid, curl\\) on 'unix':" \
	"MESSAGE: Refused POST /containers/create from uid 0 (pid $cpid, curl) on 'unix': ..."
like "$(field MESSAGE)" 'CONTAINERS=1' "MESSAGE names CONTAINERS=1"
[ "$TAP_FAILED" -eq "$failed_before" ] || diag "the entry: $entry"

# A refused request with a version prefix and a query, over TCP.
curl -s --max-time 20 -o "$DSP_TMP/body" -w '%{http_code} %{local_port}' -X POST \
	"$DSP_PROXY_URL/v1.41/containers/create?name=dsp-journal" >"$DSP_TMP/code"
read -r code lport <"$DSP_TMP/code"
is "$code" 403 "POST /v1.41/containers/create?name=dsp-journal over TCP is refused"
wait_entries 1 DSP_LISTENER=tcp
is "$(entries DSP_LISTENER=tcp | grep -c .)" 1 "one journal entry for it"
entry=$(entries DSP_LISTENER=tcp | head -n 1)
failed_before=$TAP_FAILED
is "$(field PRIORITY)" 4 "tcp: PRIORITY=4"
is "$(field DSP_METHOD)" POST "tcp: DSP_METHOD=POST"
is "$(field DSP_PATH)" /v1.41/containers/create "tcp: DSP_PATH is the raw path /v1.41/containers/create"
is "$(field DSP_QUERY)" name=dsp-journal "tcp: DSP_QUERY=name=dsp-journal"
like "$(field DSP_RULE)" '^CONTAINERS' "tcp: DSP_RULE names CONTAINERS"
is "$(field DSP_LISTENER)" tcp "tcp: DSP_LISTENER=tcp"
is "$(field DSP_STATUS)" 403 "tcp: DSP_STATUS=403"
is "$(field DSP_PEER_ADDRESS)" 127.0.0.1 "tcp: DSP_PEER_ADDRESS=127.0.0.1"
is "$(field DSP_PEER_PORT)" "$lport" "tcp: DSP_PEER_PORT is curl's port"
like "$(field MESSAGE)" '^Refused POST (/v1\.41)?/containers/create' "tcp: MESSAGE starts with Refused POST .../containers/create"
[ "$TAP_FAILED" -eq "$failed_before" ] || diag "the entry: $entry"

# Allowed requests are not logged as refusals.
curl -s --max-time 20 -o /dev/null "$DSP_PROXY_URL/_ping"
curl -s --max-time 20 -o /dev/null "$DSP_PROXY_URL/version"
sleep 0.5
is "$(entries | grep -c .)" 2 "allowed requests add no refusal entry (still 2)"

# ---------------------------------------------------------------------------
# --log-target=stderr: the same line with a <4> prefix.
dsp_proxy_activated -- --log-target=stderr || bail "the proxy did not start"
curl -s --max-time 20 -o /dev/null --unix-socket "$DSP_PROXY_SOCK" \
	-X POST http://localhost/containers/create &
cpid=$!
wait $cpid
dsp_wait_for 50 grep -q 'Refused POST' "$DSP_PROXY_LOG"
log=$(cat "$DSP_PROXY_LOG")
like "$log" "^<4>Refused POST /containers/create from uid 0 \\(pid $cpid, curl\\) on 'unix': .*CONTAINERS=1" \
	"stderr: <4>Refused POST /containers/create from uid 0 (pid $cpid, curl) on 'unix': ... CONTAINERS=1"
is "$(entries | grep -c .)" 2 "--log-target=stderr writes nothing to the journal"

done_testing

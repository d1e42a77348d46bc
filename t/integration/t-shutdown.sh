#!/bin/bash
# SIGTERM: exit status 0 at once when idle; with an open /events stream, the stream is
# given SOCKET_PROXY_DRAIN_TIMEOUT and then ended, and the exit status is still 0.
. "$(dirname "$0")/../lib/common.sh"

dsp_dockerd_setup || bail "no Docker daemon"

# term_and_wait PID: SIGTERM, then wait up to 10 s; sets $rc and $elapsed_ms.
term_and_wait() {
	local pid=$1 start i st
	start=$(date +%s%N)
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do
		dsp_pid_alive "$pid" || break
		sleep 0.05
	done
	elapsed_ms=$((($(date +%s%N) - start) / 1000000))
	if dsp_pid_alive "$pid"; then
		rc=still-running
		kill -KILL "$pid"
	fi
	wait "$pid"
	st=$?
	[ "${rc:-}" = still-running ] || rc=$st
}

# Idle.
dsp_proxy_listen SOCKET_PROXY_DRAIN_TIMEOUT=1s || bail "the proxy did not start"
rc=
term_and_wait "$DSP_PROXY_PID"
is "$rc" 0 "idle proxy: exit status 0 after SIGTERM"
ok "idle proxy: exits within 2 s of SIGTERM (took ${elapsed_ms} ms)" test "$elapsed_ms" -le 2000

# With /events streaming.
dsp_proxy_listen SOCKET_PROXY_DRAIN_TIMEOUT=1s || bail "the proxy did not start"
curl -sS -N --max-time 60 -D "$DSP_TMP/hdr" "$DSP_PROXY_URL/events" >"$DSP_TMP/events" 2>"$DSP_TMP/curl.err" &
curl_pid=$!
dsp_at_exit "kill $curl_pid"
dsp_wait_for 100 grep -qs '^HTTP/1.1 200' "$DSP_TMP/hdr"
like "$(cat "$DSP_TMP/hdr")" '^HTTP/1.1 200' "GET /events through the proxy: 200, the stream is open"
# Show that the stream flows: an event caused directly on the daemon arrives.
name=dsp-shutdown-$$
for ((k = 0; k < 20; k++)); do
	timeout 20 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" create --name "$name-$k" "$DSP_TEST_IMAGE" true >/dev/null
	timeout 20 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" rm "$name-$k" >/dev/null
	grep -q "\"$name-$k\"" "$DSP_TMP/events" && break
	sleep 0.3
done
like "$(cat "$DSP_TMP/events")" "\"name\":\"$name-" "the event stream delivers an event caused on the daemon"

rc=
term_and_wait "$DSP_PROXY_PID"
is "$rc" 0 "proxy with an open /events stream: exit status 0 after SIGTERM"
ok "with SOCKET_PROXY_DRAIN_TIMEOUT=1s it exits within 4 s (took ${elapsed_ms} ms)" test "$elapsed_ms" -le 4000
ok "it waited for the stream about the drain timeout (took ${elapsed_ms} ms, want >= 800)" test "$elapsed_ms" -ge 800
dsp_wait_for 20 eval '! dsp_pid_alive $curl_pid'
if dsp_pid_alive "$curl_pid"; then
	fail "curl's /events stream ends when the proxy exits"
else
	pass "curl's /events stream ends when the proxy exits"
fi
wait "$curl_pid"
diag "curl exit status $?: $(cat "$DSP_TMP/curl.err")"

done_testing

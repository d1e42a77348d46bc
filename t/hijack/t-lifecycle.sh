#!/bin/bash
# The life of a tunnel, through a socket-activated proxy over its TCP and its Unix listener:
# its audit entry (bytes in and out), a client killed with SIGKILL in the middle (the exec
# on the daemon ends), and SIGTERM with a tunnel open (it goes on during the drain, then
# ends; the proxy exits 0 within the drain bound).
. "$(dirname "$0")/lib.sh"

hj_setup
tag=dsp-hj-life-$$
box=$tag-box
hj_container "$box" "$DSP_TEST_IMAGE" sleep 100000 || bail "docker run straight on the daemon failed"
cli=${HJ_CLIS[0]}
out=$DSP_TMP/out
err=$DSP_TMP/err
fifo=$DSP_TMP/fifo
ended() { ! dsp_pid_alive "$1"; }
exec_done() { [ "$(hj_exec_running "$1")" = false ]; }
more_tunnels_logged() { [ "$(grep -c 'Closed tunnel for' "$DSP_PROXY_LOG")" -gt "$1" ]; }
no_cat_left() { [ "$(hj_direct top "$1" -o pid,args 2>/dev/null | awk 'NR > 1 && $2 == "cat"' | wc -l)" -eq 0 ]; }

# start_cat_tunnel CLI HOST CONTAINER: `CLI exec -i CONTAINER cat` fed from a FIFO held
# open on fd 7; sets tunnel_pid (the `timeout` around the CLI). Checks that it echoes.
start_cat_tunnel() {
	rm -f "$fifo"
	mkfifo "$fifo"
	: >"$out"
	timeout 120 "$1" -H "$2" exec -i "$3" sh -c 'echo started; exec cat' <"$fifo" >"$out" 2>"$err" &
	tunnel_pid=$!
	exec 7>"$fifo"
	echo ping >&7
	dsp_wait_for 100 grep -qx ping "$out"
}

# --- The audit entry of a tunnel -----------------------------------------------------
hj_proxy "${HJ_POLICY[@]}" LOG_LEVEL=info || bail "the proxy did not start"
size=100000
head -c "$size" /dev/urandom >"$DSP_TMP/payload"
for host in "${HJ_HOSTS[@]}"; do
	T=${host%%://*}
	before=$(grep -c 'Closed tunnel for' "$DSP_PROXY_LOG")
	timeout 60 "$cli" -H "$host" exec -i "$box" cat <"$DSP_TMP/payload" >"$out" 2>"$err"
	is "$?:$(stat -c %s "$out")" "0:$size" "$T: docker exec -i C cat of $size bytes returns them all" ||
		{ diag "$(cat "$err")"; hj_proxy_diag; }
	dsp_wait_for 50 more_tunnels_logged "$before"
	line=$(grep 'Closed tunnel for' "$DSP_PROXY_LOG" | tail -n +"$((before + 1))" | grep '/exec/' | tail -n 1)
	like "$line" "Closed tunnel for POST /v[0-9.]+/exec/[0-9a-f]{64}/start .*on '$T'.* after [0-9.]+ s, [0-9]+ bytes in, [0-9]+ bytes out" \
		"$T: the proxy logs 'Closed tunnel for POST .../exec/ID/start ... after N s, X bytes in, Y bytes out'" ||
		hj_proxy_diag
	bytes_in=$(printf '%s\n' "$line" | sed -nE 's/.*, ([0-9]+) bytes in, ([0-9]+) bytes out.*/\1/p')
	bytes_out=$(printf '%s\n' "$line" | sed -nE 's/.*, ([0-9]+) bytes in, ([0-9]+) bytes out.*/\2/p')
	# In: the exec start body and stdin. Out: stdout in 8-byte-headed frames.
	ok "$T: audit: bytes in ($bytes_in) is the $size bytes of stdin plus the request body (< 4 KiB)" \
		test "${bytes_in:-0}" -ge "$size" -a "${bytes_in:-0}" -le $((size + 4096))
	ok "$T: audit: bytes out ($bytes_out) is the $size bytes of output plus frame headers (< 2%)" \
		test "${bytes_out:-0}" -ge "$size" -a "${bytes_out:-0}" -le $((size + size / 50))
done

# --- A client killed in the middle ---------------------------------------------------
k=0
for c in "${HJ_CLIS[@]}"; do
	for host in "${HJ_HOSTS[@]}"; do
		k=$((k + 1))
		L=$(hj_label "$c" "$host")
		victim=$tag-kill-$k
		hj_container "$victim" "$DSP_TEST_IMAGE" sleep 100000
		start_cat_tunnel "$c" "$host" "$victim"
		is "$(cat "$out")" "started"$'\n'"ping" "$L: exec -i cat through the proxy echoes its stdin" || hj_proxy_diag
		id=$(hj_exec_ids "$victim" | head -n 1)
		is "$(hj_exec_running "$id")" true "$L: the daemon reports the exec running"
		client=$(hj_child_of "$tunnel_pid")
		kill -KILL "$client"
		wait "$tunnel_pid" 2>/dev/null
		exec 7>&-
		t0=$(hj_ms)
		dsp_wait_for 100 exec_done "$id"
		took=$(($(hj_ms) - t0))
		is "$(hj_exec_running "$id")" false \
			"$L: kill -9 of the client: the exec ends on the daemon within 10 s (took $took ms)" || hj_proxy_diag
		ok "$L: kill -9 of the client: no cat is left in the container" dsp_wait_for 50 no_cat_left "$victim"
	done
done
got=$(timeout 30 "$HJ_PY" "$HJ_CLIENT" ping "${HJ_ADDRS[1]}")
is "$(hj_json "$got" '"\(.status) \(.body)"')" "200 OK" "after the killed clients the proxy still serves (GET /_ping)"

# --- SIGTERM with a tunnel open ------------------------------------------------------
for T in tcp unix; do
	hj_proxy "${HJ_POLICY[@]}" SOCKET_PROXY_DRAIN_TIMEOUT=1s || bail "the proxy (drain 1 s) did not start"
	host=${HJ_HOSTS[0]}
	[ "$T" = unix ] && host=${HJ_HOSTS[1]}
	victim=$tag-term-$T
	hj_container "$victim" "$DSP_TEST_IMAGE" sleep 100000
	start_cat_tunnel "$cli" "$host" "$victim"
	is "$(cat "$out")" "started"$'\n'"ping" "$T: SIGTERM test: the exec -i cat tunnel is open and echoes" || hj_proxy_diag
	id=$(hj_exec_ids "$victim" | head -n 1)
	proxy=$DSP_PROXY_PID
	t0=$(hj_ms)
	kill -TERM "$proxy"
	echo during-drain >&7
	dsp_wait_for 5 grep -qx during-drain "$out"
	# shellcheck disable=SC2016
	like "$(cat "$out")" 'during-drain' "$T: SIGTERM: the open tunnel still carries data during the drain"
	dsp_wait_for 100 ended "$proxy"
	took=$(($(hj_ms) - t0))
	if ended "$proxy"; then
		wait "$proxy"
		rc=$?
	else
		rc=still-running
	fi
	is "$rc" 0 "$T: SIGTERM with an open tunnel: the proxy exits with status 0" || hj_proxy_diag
	ok "$T: SIGTERM with an open tunnel and SOCKET_PROXY_DRAIN_TIMEOUT=1s: exits within 3 s (took $took ms)" \
		test "$took" -le 3000
	ok "$T: SIGTERM: the tunnel was given its drain time (exit after >= 900 ms, took $took ms)" test "$took" -ge 900
	dsp_wait_for 50 ended "$tunnel_pid"
	took=$(($(hj_ms) - t0))
	ok "$T: SIGTERM: the client's stream ends (docker exec returns within 5 s of SIGTERM, took $took ms)" ended "$tunnel_pid" ||
		kill -KILL "$(hj_child_of "$tunnel_pid")" 2>/dev/null
	wait "$tunnel_pid" 2>/dev/null
	exec 7>&-
	dsp_wait_for 100 exec_done "$id"
	is "$(hj_exec_running "$id")" false "$T: SIGTERM: the exec on the daemon ends too"
done

done_testing

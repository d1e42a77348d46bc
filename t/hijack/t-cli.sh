#!/bin/bash
# Hijacked streams with the real docker CLIs (28.x and Debian's 20.10) through a
# socket-activated proxy, over its TCP and its Unix listener: exec with and without -i,
# exit codes, stdout/stderr, 20 MB through cat, run (attach + start + wait), TTYs, attach
# to a running container, the daemon's errors, and the policy's refusals.
. "$(dirname "$0")/lib.sh"

hj_setup
tag=dsp-hj-cli-$$
box=$tag-box
ticker=$tag-ticker
stopped=$tag-stopped
hj_container "$box" "$DSP_TEST_IMAGE" sleep 100000 || bail "docker run straight on the daemon failed"
hj_container "$ticker" "$DSP_TEST_IMAGE" \
	sh -c 'i=0; while :; do echo "line $i"; i=$((i + 1)); sleep 0.2; done' || bail "docker run (ticker) failed"
hj_container "$stopped" "$DSP_TEST_IMAGE" sleep 100000 || bail "docker run (stopped) failed"
hj_direct kill "$stopped" >/dev/null || bail "docker kill straight on the daemon failed"

head -c 20M /dev/urandom >"$DSP_TMP/random" || bail "cannot write 20 MB of random bytes"
want_sum=$(sha256sum <"$DSP_TMP/random" | cut -d' ' -f1)

hj_proxy "${HJ_POLICY[@]}" || bail "the proxy did not start"
out=$DSP_TMP/out
err=$DSP_TMP/err
gone() { [ -z "$(hj_direct ps -aq --filter "name=^/$1\$")" ]; }
ended() { ! dsp_pid_alive "$1"; }
k=0

for cli in "${HJ_CLIS[@]}"; do
	for host in "${HJ_HOSTS[@]}"; do
		k=$((k + 1))
		L=$(hj_label "$cli" "$host")
		D=(timeout 60 "$cli" -H "$host")

		# exec without -i: the CLI half-closes at once and must still get the output.
		got=$("${D[@]}" exec "$box" echo hi 2>"$err")
		rc=$?
		is "$rc" 0 "$L: docker exec C echo hi exits 0" || { diag "$(cat "$err")"; hj_proxy_diag; }
		is "$got" hi "$L: docker exec C echo hi prints hi" || hj_proxy_diag

		got=$(echo data | "${D[@]}" exec -i "$box" cat 2>"$err")
		rc=$?
		is "$rc" 0 "$L: echo data | docker exec -i C cat exits 0" || { diag "$(cat "$err")"; hj_proxy_diag; }
		is "$got" data "$L: echo data | docker exec -i C cat prints data" || hj_proxy_diag

		"${D[@]}" exec "$box" sh -c 'exit 3' >/dev/null 2>"$err"
		is "$?" 3 "$L: docker exec C sh -c 'exit 3' exits 3" || diag "$(cat "$err")"

		"${D[@]}" exec "$box" sh -c 'echo out; echo err >&2' >"$out" 2>"$err"
		is "$?" 0 "$L: exec writing to stdout and stderr exits 0"
		is "$(cat "$out")" out "$L: exec: stdout holds only what went to stdout"
		is "$(cat "$err")" err "$L: exec: stderr holds only what went to stderr"

		sum=$(timeout 120 "$cli" -H "$host" exec -i "$box" cat <"$DSP_TMP/random" 2>"$err" | sha256sum | cut -d' ' -f1)
		is "$sum" "$want_sum" "$L: 20 MB of random bytes through docker exec -i C cat come back unchanged (sha256)" ||
			{ diag "$(cat "$err")"; hj_proxy_diag; }

		# run = create + attach + start + wait (+ remove with --rm).
		name=$tag-run-$k
		got=$("${D[@]}" run --rm --name "$name" "$DSP_TEST_IMAGE" echo hi 2>"$err")
		rc=$?
		is "$rc" 0 "$L: docker run --rm IMAGE echo hi exits 0" || { diag "$(cat "$err")"; hj_proxy_diag; }
		is "$got" hi "$L: docker run --rm IMAGE echo hi prints hi"
		ok "$L: docker run --rm: the container is gone afterwards" dsp_wait_for 100 gone "$name"

		got=$(echo x | "${D[@]}" run -i --rm "$DSP_TEST_IMAGE" cat 2>"$err")
		rc=$?
		is "$rc" 0 "$L: echo x | docker run -i --rm IMAGE cat exits 0" || { diag "$(cat "$err")"; hj_proxy_diag; }
		is "$got" x "$L: echo x | docker run -i --rm IMAGE cat prints x"

		"${D[@]}" run --rm "$DSP_TEST_IMAGE" sh -c 'exit 7' >/dev/null 2>"$err"
		is "$?" 7 "$L: docker run --rm IMAGE sh -c 'exit 7' exits 7" || diag "$(cat "$err")"

		# A TTY: script(1) gives the CLI a terminal.
		got=$(timeout 60 script -qec "$cli -H $host exec -t $box sh -c 'echo tty-ok; tty; exit 5'" /dev/null </dev/null 2>&1)
		rc=$?
		is "$rc" 5 "$L: docker exec -t C sh -c '...; exit 5' under a pty exits 5" || diag "$got"
		like "$got" 'tty-ok' "$L: docker exec -t: the output arrives"
		like "$got" '/dev/pts/[0-9]+' "$L: docker exec -t: the command runs on a terminal"

		{
			sleep 1
			printf 'echo it-$((6*7))\nexit 6\n'
			sleep 3
		} | timeout 60 script -qec "$cli -H $host exec -it $box sh" /dev/null >"$out" 2>&1
		rc=${PIPESTATUS[1]}
		got=$(cat "$out")
		is "$rc" 6 "$L: docker exec -it C sh, typed 'exit 6', exits 6" || diag "$got"
		like "$got" 'it-42' "$L: docker exec -it: the typed command ran (it-42 in the output)"

		# attach to a running container: its output streams until we kill the CLI.
		rc=$(hj_killed_after 4 "$out" "$err" "$cli" -H "$host" attach "$ticker")
		is "$rc" 137 "$L: docker attach is still attached after 4 s" || diag "$(cat "$err")"
		n=$(grep -cE '^line [0-9]+$' "$out")
		ok "$L: docker attach: the container's lines stream in ($n in 4 s, want >= 8)" test "$n" -ge 8 ||
			hj_proxy_diag
		ok "$L: docker attach: the lines are consecutive" \
			awk '/^line [0-9]+$/ { if (seen && $2 != last + 1) exit 1; last = $2; seen = 1 }' "$out"

		# The daemon's errors come through as they read without the proxy.
		"${D[@]}" exec nosuch echo hi >"$out" 2>"$err"
		rc=$?
		timeout 60 "$cli" -H "unix://$DSP_DOCKER_SOCK" exec nosuch echo hi >/dev/null 2>"$err.direct"
		is "$rc" "$?" "$L: docker exec nosuch echo fails with the same status as straight on the daemon"
		like "$(cat "$err")" 'No such container: nosuch$' "$L: docker exec nosuch: 'No such container: nosuch'"
		is "$(cat "$err")" "$(cat "$err.direct")" "$L: docker exec nosuch: the same message as straight on the daemon"

		"${D[@]}" exec "$stopped" echo hi >"$out" 2>"$err"
		rc=$?
		timeout 60 "$cli" -H "unix://$DSP_DOCKER_SOCK" exec "$stopped" echo hi >/dev/null 2>"$err.direct"
		is "$rc" "$?" "$L: docker exec on a stopped container fails with the same status as straight on the daemon"
		like "$(cat "$err")" 'Error response from daemon: Container [0-9a-f]+ is not running' \
			"$L: docker exec on a stopped container: the daemon's 'is not running' message"
		is "$(cat "$err")" "$(cat "$err.direct")" \
			"$L: docker exec on a stopped container: the same message as straight on the daemon"
		isnt "$rc" 0 "$L: docker exec on a stopped container fails"

		# A container that stops while an exec -i streams: the CLI ends with the exec's status.
		victim=$tag-victim-$k
		hj_container "$victim" "$DSP_TEST_IMAGE" sleep 100000
		rm -f "$DSP_TMP/fifo"
		mkfifo "$DSP_TMP/fifo"
		timeout 60 "$cli" -H "$host" exec -i "$victim" sh -c 'echo started; exec cat' <"$DSP_TMP/fifo" >"$out" 2>"$err" &
		pid=$!
		exec 7>"$DSP_TMP/fifo"
		echo ping >&7
		dsp_wait_for 100 grep -qx ping "$out"
		is "$(cat "$out")" "started"$'\n'"ping" "$L: exec -i in a container about to stop: stdin echoes back" || hj_proxy_diag
		hj_direct kill "$victim" >/dev/null
		t0=$(hj_ms)
		dsp_wait_for 100 ended "$pid"
		took=$(($(hj_ms) - t0))
		wait "$pid"
		rc=$?
		exec 7>&-
		ok "$L: exec -i while its container is killed: the CLI ends within 10 s (took $took ms)" test "$took" -lt 10000 ||
			hj_proxy_diag
		is "$rc" 137 "$L: exec -i while its container is killed: exit status 137 (the exec's SIGKILL)" ||
			diag "$(cat "$err")"
	done
done

# Raw API: an exec created through the proxy whose container stops before the start
# gets the daemon's own answer, not a hang.
for addr in "${HJ_ADDRS[@]}"; do
	name=$tag-meanwhile-${addr%%:*}
	hj_container "$name" "$DSP_TEST_IMAGE" sleep 100000
	if [ "${addr%%:*}" = unix ]; then
		C=(curl -sS --max-time 30 --unix-socket "${addr#unix:}" -H 'Content-Type: application/json')
		base=http://docker
	else
		C=(curl -sS --max-time 30 -H 'Content-Type: application/json')
		base=http://${addr#tcp:}
	fi
	id=$("${C[@]}" -d '{"Cmd":["echo","hi"],"AttachStdout":true,"AttachStderr":true}' \
		"$base/containers/$name/exec" | jq -r .Id)
	like "$id" '^[0-9a-f]{64}$' "exec create over ${addr%%:*} on a running container answers an Id"
	hj_direct stop -t 0 "$name" >/dev/null
	t0=$(hj_ms)
	got=$("${C[@]}" -i -H 'Connection: Upgrade' -H 'Upgrade: tcp' -d '{"Detach":false,"Tty":false}' \
		"$base/exec/$id/start" 2>&1 | tr -d '\r')
	took=$(($(hj_ms) - t0))
	like "$got" '^HTTP/1.1 404' "exec start over ${addr%%:*} after the container stopped: the daemon's 404" || hj_proxy_diag
	like "$got" "\"message\":\"No such exec instance: $id\"" \
		"exec start over ${addr%%:*} after the container stopped: the daemon's message"
	ok "exec start over ${addr%%:*} after the container stopped: answered at once ($took ms)" test "$took" -lt 10000
done

# ---------------------------------------------------------------------------------------
# Refusals. The first request docker exec makes decides what the user reads.
refuse_box=$tag-guarded
hj_container "$refuse_box" "$DSP_TEST_IMAGE" sleep 100000
# Five times each: a refusal that arrives before the client finished sending its request
# must still reach the user as the refusal (not as "broken pipe" / "connection reset").
refused() { # POLICY-LABEL ERE VAR=VALUE...
	local what=$1 want=$2 cli host L rc good bad
	shift 2
	hj_proxy "$@" || bail "the proxy ($what) did not start"
	for cli in "${HJ_CLIS[@]}"; do
		for host in "${HJ_HOSTS[@]}"; do
			L="$(hj_label "$cli" "$host") ($what)"
			good=0 bad=
			for _ in 1 2 3 4 5; do
				timeout 60 "$cli" -H "$host" exec "$refuse_box" echo hi >"$out" 2>"$err"
				rc=$?
				if [ "$rc" -ne 0 ] && [ ! -s "$out" ] &&
					grep -qE "^Error response from daemon: docker-socket-proxy: refused $want" "$err"; then
					good=$((good + 1))
				else
					bad="status $rc, stdout '$(head -c 200 "$out")', stderr '$(head -c 300 "$err")'"
				fi
			done
			is "$good" 5 "$L: docker exec, 5 times: refused each time with the proxy's message naming what to set" ||
				diag "expected /$want/; one of the others: $bad"
		done
	done
}
refused "default policy" "GET /v[0-9.]+/containers/$refuse_box/json: needs CONTAINERS=1\$"
refused "CONTAINERS=1" "POST /v[0-9.]+/containers/$refuse_box/exec: needs (ALLOW_EXEC=1 and POST=1|POST=1 and ALLOW_EXEC=1)\$" \
	CONTAINERS=1
refused "CONTAINERS=1 POST=1" "POST /v[0-9.]+/containers/$refuse_box/exec: needs ALLOW_EXEC=1\$" CONTAINERS=1 POST=1
is "$(hj_exec_ids "$refuse_box")" "" "no exec was created on the daemon by the refused docker exec calls"

# A refused hijack request itself: the CLIs can only show the status of a failed upgrade
# ("unable to upgrade to tcp, received 403"), and must not take the refusal for a stream.
hj_proxy CONTAINERS=1 POST=1 ALLOW_EXEC=1 ALLOW_ATTACH=0 IMAGES=1 || bail "the proxy (EXEC=0) did not start"
for cli in "${HJ_CLIS[@]}"; do
	for host in "${HJ_HOSTS[@]}"; do
		L="$(hj_label "$cli" "$host") (EXEC=0, ALLOW_ATTACH=0)"
		timeout 60 "$cli" -H "$host" exec "$refuse_box" echo hi >"$out" 2>"$err"
		rc=$?
		isnt "$rc" 0 "$L: docker exec (start refused) fails"
		like "$(cat "$err")" 'unable to upgrade to tcp, received 403' \
			"$L: docker exec (start refused) reports the 403 of the upgrade" || diag "stderr: $(cat "$err")"

		rc=$(hj_killed_after 20 "$out" "$err" "$cli" -H "$host" attach "$ticker")
		isnt "$rc" 0 "$L: docker attach (refused) fails"
		ok "$L: docker attach (refused) ends by itself (status $rc, not killed by the 20 s bound)" test "$rc" != 137
		like "$(cat "$err")" 'unable to upgrade to tcp, received 403' \
			"$L: docker attach (refused) reports the 403 of the upgrade" || diag "stderr: $(cat "$err")"

		name=$tag-norun-$RANDOM
		dsp_at_exit "timeout 30 '$DSP_DOCKER_CLI' -H 'unix://$DSP_DOCKER_SOCK' rm -f '$name'"
		timeout 60 "$cli" -H "$host" run --rm --name "$name" "$DSP_TEST_IMAGE" echo hi >"$out" 2>"$err"
		rc=$?
		isnt "$rc" 0 "$L: docker run (attach refused) fails"
		is "$(hj_direct inspect --format '{{.State.StartedAt}}' "$name" 2>/dev/null | cut -c1-4)" 0001 \
			"$L: docker run (attach refused) did not start the container" || diag "stderr: $(cat "$err")"
	done
done
like "$(cat "$DSP_PROXY_LOG")" "Refused POST /v[0-9.]+/exec/[0-9a-f]{64}/start .*: needs EXEC=1" \
	"the proxy logs the refused exec start, naming EXEC=1"

done_testing

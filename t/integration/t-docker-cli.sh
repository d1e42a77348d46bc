#!/bin/bash
# The real docker CLIs (28.x and Debian's 20.10) through the proxy, under socket
# activation, over its TCP and its Unix listener: reads that a policy allows, streams
# (events, logs -f, a saved image's tar), an upload (docker load), and the refusals of the
# default policy.
. "$(dirname "$0")/../lib/common.sh"

dsp_dockerd_setup || bail "no Docker daemon"

for cli in "$DSP_CLI_NEW" "$DSP_CLI_OLD"; do
	[ -x "$cli" ] || bail "the docker CLI $cli is missing"
done

tag=dsp-cli-$$
# Containers made directly on the daemon, not through the proxy.
created=$tag-created
ticker=$tag-ticker
dsp_at_exit "timeout 30 '$DSP_DOCKER_CLI' -H 'unix://$DSP_DOCKER_SOCK' rm -f '$created'"
created_id=$(timeout 30 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" create --name "$created" "$DSP_TEST_IMAGE" true) ||
	bail "docker create directly on the daemon failed"
dsp_container "$ticker" "$DSP_TEST_IMAGE" \
	sh -c 'i=0; while :; do echo "line $i"; i=$((i + 1)); sleep 0.2; done' >/dev/null ||
	bail "docker run directly on the daemon failed"
server_version=$(dsp_docker version --format '{{.Server.Version}}')
# docker save gives the same bytes for the same image: a chunked tar stream to compare.
save_sum=$(timeout 60 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" save "$DSP_TEST_IMAGE" | sha256sum | cut -d' ' -f1)

# ---------------------------------------------------------------------------
# A policy for a read-mostly tool.
dsp_proxy_activated CONTAINERS=1 IMAGES=1 ALLOW_LOGS=1 || bail "the proxy did not start"
allow_tcp=tcp://127.0.0.1:$DSP_PROXY_PORT
allow_unix=unix://$DSP_PROXY_SOCK
allow_log=$DSP_PROXY_LOG

# events_arrive CLI HOST: docker events through the proxy sees a container made
# directly on the daemon, within 15 s.
events_arrive() {
	local cli=$1 host=$2 out=$DSP_TMP/events.$RANDOM pid k name found=
	timeout 30 "$cli" -H "$host" events --filter type=container \
		--format '{{.Action}} {{.Actor.Attributes.name}}' >"$out" 2>&1 &
	pid=$!
	# The subscription is live only once the CLI got its answer: keep causing events
	# until one arrives.
	for ((k = 0; k < 30; k++)); do
		name=$tag-ev-$k
		timeout 20 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" create --name "$name" "$DSP_TEST_IMAGE" true >/dev/null
		timeout 20 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" rm "$name" >/dev/null
		if grep -qE "^create $tag-ev-" "$out"; then
			found=1
			break
		fi
		dsp_pid_alive "$pid" || break
		sleep 0.5
	done
	[ -z "$found" ] || dsp_wait_for 50 grep -qE "^destroy $tag-ev-" "$out"
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [ -n "$found" ]; then
		pass "$cli -H $host events: a container created on the daemon shows up"
		like "$(cat "$out")" "^destroy $tag-ev-" "$cli -H $host events: its removal shows up too"
	else
		fail "$cli -H $host events: a container created on the daemon shows up within 15 s"
		diag "events output:" "$(head -n 20 "$out")"
		fail "$cli -H $host events: its removal shows up too"
	fi
}

# follow_logs CLI HOST: logs -f through the proxy keeps delivering new lines.
follow_logs() {
	local cli=$1 host=$2 out=$DSP_TMP/logs.$RANDOM rc n
	timeout 4 "$cli" -H "$host" logs -f --tail 0 "$ticker" >"$out" 2>&1
	rc=$?
	is "$rc" 124 "$cli -H $host logs -f: still following after 4 s"
	n=$(grep -cE '^line [0-9]+$' "$out")
	ok "$cli -H $host logs -f: new lines arrive while following ($n in 4 s, want >= 5)" test "$n" -ge 5
	is "$(grep -cvE '^line [0-9]+$' "$out")" 0 "$cli -H $host logs -f: nothing but the container's lines" ||
		diag "$(head -n 10 "$out")"
	# Consecutive numbers: nothing lost or repeated in the stream.
	ok "$cli -H $host logs -f: lines are consecutive" \
		awk '/^line [0-9]+$/ { if (seen && $2 != last + 1) exit 1; last = $2; seen = 1 }' "$out"
}

for cli in "$DSP_CLI_NEW" "$DSP_CLI_OLD"; do
	for host in "$allow_tcp" "$allow_unix"; do
		d=(timeout 30 "$cli" -H "$host")
		out=$("${d[@]}" version --format '{{.Server.Version}}' 2>&1)
		is "$?/$out" "0/$server_version" "$cli -H $host version: the daemon's version"

		out=$("${d[@]}" ps -a --format '{{.Names}}' 2>&1)
		is "$?" 0 "$cli -H $host ps -a succeeds"
		like "$out" "^$created\$" "$cli -H $host ps -a lists the container made on the daemon"
		like "$out" "^$ticker\$" "$cli -H $host ps -a lists the running container"

		out=$("${d[@]}" ps --format '{{.Names}}' 2>&1)
		unlike "$out" "^$created\$" "$cli -H $host ps (without -a) leaves out the stopped container"

		out=$("${d[@]}" images --format '{{.Repository}}:{{.Tag}}' 2>&1)
		is "$?" 0 "$cli -H $host images succeeds"
		like "$out" "^$DSP_TEST_IMAGE\$" "$cli -H $host images lists $DSP_TEST_IMAGE"

		out=$("${d[@]}" inspect --format '{{.Name}} {{.Id}}' "$created" 2>&1)
		is "$out" "/$created $created_id" "$cli -H $host inspect: the container made on the daemon"

		sum=$("${d[@]}" save "$DSP_TEST_IMAGE" 2>"$DSP_TMP/save.err" | sha256sum | cut -d' ' -f1)
		is "$sum" "$save_sum" "$cli -H $host save: the image's tar stream arrives as the daemon sent it (sha256)" ||
			diag "$(head -c 500 "$DSP_TMP/save.err")"

		events_arrive "$cli" "$host"
		follow_logs "$cli" "$host"
	done
done
refusals=$(grep -c 'Refused' "$allow_log")
is "$refusals" 0 "the permissive proxy refused nothing those clients asked for" ||
	diag "$(grep 'Refused' "$allow_log" | head -n 10)"

# ---------------------------------------------------------------------------
# The default policy: no variable set.
dsp_proxy_activated || bail "the proxy with the default policy did not start"
deny_tcp=tcp://127.0.0.1:$DSP_PROXY_PORT
deny_unix=unix://$DSP_PROXY_SOCK
net=$tag-net
dsp_at_exit "timeout 30 '$DSP_DOCKER_CLI' -H 'unix://$DSP_DOCKER_SOCK' network rm '$net'"

container_exists() {
	timeout 30 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" inspect "$1" >/dev/null 2>&1
}

# refused DESCRIPTION EXPECTED-WORDS... -- COMMAND...
refused() {
	local what=$1 words=() w out rc
	shift
	while [ "$1" != -- ]; do
		words+=("$1")
		shift
	done
	shift
	out=$(timeout 30 "$@" 2>&1)
	rc=$?
	ok "$what: exits non-zero (status $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
	like "$out" 'Error response from daemon: docker-socket-proxy' "$what: the CLI prints the proxy's message"
	for w in "${words[@]}"; do
		like "$out" "$w" "$what: the message names $w"
	done
}

runs=0
for cli in "$DSP_CLI_NEW" "$DSP_CLI_OLD"; do
	for host in "$deny_tcp" "$deny_unix"; do
		out=$(timeout 30 "$cli" -H "$host" version --format '{{.Server.Version}}' 2>&1)
		is "$?/$out" "0/$server_version" "default policy, $cli -H $host version still works"

		run_name=$tag-run-$((++runs))
		dsp_at_exit "timeout 30 '$DSP_DOCKER_CLI' -H 'unix://$DSP_DOCKER_SOCK' rm -f '$run_name'"
		refused "default policy, $cli -H $host run" POST 'CONTAINERS=1' 'POST=1' -- \
			"$cli" -H "$host" run --rm --name "$run_name" "$DSP_TEST_IMAGE" true
		ok "default policy, $cli -H $host run: no container was made" eval "! container_exists '$run_name'"
		refused "default policy, $cli -H $host rm" DELETE 'CONTAINERS=1' 'POST=1' -- \
			"$cli" -H "$host" rm "$created"
		ok "default policy, $cli -H $host rm: the container is still there" container_exists "$created"
		refused "default policy, $cli -H $host network create" POST 'NETWORKS=1' 'POST=1' -- \
			"$cli" -H "$host" network create "$net"
		if timeout 30 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" network inspect "$net" >/dev/null 2>&1; then
			fail "default policy, $cli -H $host network create: no network was made"
			timeout 30 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" network rm "$net" >/dev/null
		else
			pass "default policy, $cli -H $host network create: no network was made"
		fi
		refused "default policy, $cli -H $host ps" GET 'CONTAINERS=1' -- \
			"$cli" -H "$host" ps
	done
done

# ---------------------------------------------------------------------------
# An upload larger than the sockets hold, which the daemon reads as it imports it:
# docker load of the saved image.
dsp_proxy_activated IMAGES=1 POST=1 || bail "the proxy for docker load did not start"
timeout 60 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" save -o "$DSP_TMP/image.tar" "$DSP_TEST_IMAGE" ||
	bail "docker save directly on the daemon failed"
size=$(stat -c %s "$DSP_TMP/image.tar")
for cli in "$DSP_CLI_NEW" "$DSP_CLI_OLD"; do
	for host in "tcp://127.0.0.1:$DSP_PROXY_PORT" "unix://$DSP_PROXY_SOCK"; do
		out=$(timeout 60 "$cli" -H "$host" load -i "$DSP_TMP/image.tar" 2>&1)
		is "$?" 0 "$cli -H $host load of a $size-byte image tar exits 0" || diag "$out"
		like "$out" "Loaded image" "$cli -H $host load: the daemon read the whole tar and loaded it"
	done
done

done_testing

#!/bin/bash
# Hijacked streams on the wire (t/hijack/hjclient.py, raw sockets) through a socket-
# activated proxy, over its TCP and its Unix listener: the attach WebSocket, BuildKit's
# h2c upgrades of /grpc and /session (compared with what the daemon answers straight),
# exec start with stdin bytes in the same write as the request, and the requests that
# hijack without asking for an upgrade.
. "$(dirname "$0")/lib.sh"

hj_setup
tag=dsp-hj-raw-$$
box=$tag-box
ticker=$tag-ticker
catbox=$tag-cat
hj_container "$box" "$DSP_TEST_IMAGE" sleep 100000 || bail "docker run straight on the daemon failed"
hj_container "$ticker" "$DSP_TEST_IMAGE" \
	sh -c 'i=0; while :; do echo "line $i"; i=$((i + 1)); sleep 0.2; done' || bail "docker run (ticker) failed"
hj_container "$catbox" -i "$DSP_TEST_IMAGE" cat || bail "docker run -i (cat) failed"

hj_proxy "${HJ_POLICY[@]}" || bail "the proxy did not start"
direct=unix:$DSP_DOCKER_SOCK
C() { timeout 60 "$HJ_PY" "$HJ_CLIENT" "$@"; }

# What the daemon itself does on the BuildKit endpoints: the proxy must do the same.
g0=$(C grpc "$direct")
is "$(hj_json "$g0" '"\(.status) \(.upgrade)"')" "101 h2c" \
	"straight on the daemon: POST /grpc with Upgrade: h2c is switched to h2c (the daemon serves gRPC there)" ||
	diag "$g0"
s0=$(C session "$direct")
is "$(hj_json "$s0" '"\(.status) \(.upgrade) \(.client_preface)"')" "101 h2c true" \
	"straight on the daemon: POST /session with Upgrade: h2c is switched, the daemon speaks first as HTTP/2 client" ||
	diag "$s0"

for addr in "${HJ_ADDRS[@]}"; do
	T=${addr%%:*}

	# --- WebSocket attach -------------------------------------------------------------
	got=$(C ws "$addr" "$ticker")
	is "$(hj_json "$got" .status)" 101 "$T: GET /containers/C/attach/ws: 101 Switching Protocols" ||
		{ diag "$got"; hj_proxy_diag; }
	is "$(hj_json "$got" .upgrade)" websocket "$T: attach/ws: Upgrade: websocket"
	is "$(hj_json "$got" .accept_ok)" true "$T: attach/ws: Sec-WebSocket-Accept matches our Sec-WebSocket-Key"
	n=$(hj_json "$got" '[.text | split("\n")[] | select(test("^line [0-9]+$"))] | length')
	ok "$T: attach/ws: the container's output arrives in WebSocket frames ($n lines, want >= 4)" \
		test "${n:-0}" -ge 4 || diag "$got"
	is "$(hj_json "$got" '.opcodes | @json')" "[2]" "$T: attach/ws: binary data frames only"

	got=$(C ws "$addr" "$catbox" --stdin)
	is "$(hj_json "$got" '"\(.status) \(.accept_ok) \(.echoed)"')" "101 true true" \
		"$T: attach/ws?stdin=1 to cat: a frame we send comes back as output" || { diag "$got"; hj_proxy_diag; }

	# --- BuildKit: /grpc and /session with Upgrade: h2c ---------------------------------
	got=$(C grpc "$addr")
	is "$(hj_json "$got" '"\(.status) \(.upgrade)"')" "$(hj_json "$g0" '"\(.status) \(.upgrade)"')" \
		"$T: POST /grpc, Upgrade: h2c: the daemon's answer (101, Upgrade: h2c)" || { diag "$got"; hj_proxy_diag; }
	is "$(hj_json "$got" .server_settings)" true "$T: /grpc: the daemon's HTTP/2 SETTINGS frame arrives after the 101"
	is "$(hj_json "$got" .settings_ack)" true \
		"$T: /grpc: our preface and SETTINGS reach the daemon, its SETTINGS ACK comes back" || diag "$got"
	is "$(hj_json "$got" '[.frames[] | .[0:2]] | @json')" "$(hj_json "$g0" '[.frames[] | .[0:2]] | @json')" \
		"$T: /grpc: the same HTTP/2 frames (type, flags) as straight on the daemon"

	got=$(C session "$addr")
	is "$(hj_json "$got" '"\(.status) \(.upgrade)"')" "$(hj_json "$s0" '"\(.status) \(.upgrade)"')" \
		"$T: POST /session with the X-Docker-Expose-Session-* headers: the daemon's answer (101, h2c)" ||
		{ diag "$got"; hj_proxy_diag; }
	is "$(hj_json "$got" '"\(.client_preface) \(.client_settings)"')" "true true" \
		"$T: /session: the daemon's HTTP/2 client preface and SETTINGS arrive"
	is "$(hj_json "$got" '"\(.settings_ack) \(.headers_on_stream_1)"')" "true true" \
		"$T: /session: our SETTINGS reach the daemon: it acknowledges them and opens stream 1 (HEADERS)" ||
		diag "$got"

	# --- exec start: stdin in the same write as the request ----------------------------
	got=$(C exec-same-write "$addr" "$box")
	is "$(hj_json "$got" .status)" 101 "$T: exec start with Upgrade: tcp and a JSON body: 101" ||
		{ diag "$got"; hj_proxy_diag; }
	is "$(hj_json "$got" '"\(.stdout_len)/\(.sent) \(.stdout_equal)"')" "10600/10600 true" \
		"$T: exec start: the stdin bytes sent in the same write as the request all reach cat, in order" ||
		{ diag "$got"; hj_proxy_diag; }
	is "$(hj_json "$got" '"\(.eof) \(.framed) \(.stderr)"')" "true true " \
		"$T: exec start: multiplexed frames, nothing on stderr, EOF after stdin ended"

	# --- hijacks without an Upgrade header ---------------------------------------------
	got=$(C attach-noupgrade "$addr" "$ticker")
	is "$(hj_json "$got" .status)" 400 "$T: POST /containers/C/attach without Upgrade: 400" || diag "$got"
	is "$(hj_json "$got" .content_type)" application/json "$T: attach without Upgrade: a JSON error"
	like "$(hj_json "$got" .message)" 'Upgrade' "$T: attach without Upgrade: the message says an Upgrade is needed"
	ok "$T: attach without Upgrade: answered at once ($(hj_json "$got" .seconds) s)" \
		awk -v s="$(hj_json "$got" .seconds)" 'BEGIN { exit !(s < 5) }'

	got=$(C exec-noupgrade "$addr" "$box" sh -c 'echo out; echo err >&2')
	is "$(hj_json "$got" .status)" 200 "$T: exec start {\"Detach\":false} without Upgrade: 200" ||
		{ diag "$got"; hj_proxy_diag; }
	is "$(hj_json "$got" '[.stdout, .stderr] | @json')" '["out\n","err\n"]' "$T: exec start without Upgrade: the output arrives (stdout and stderr apart)"
	is "$(hj_json "$got" .ended)" true "$T: exec start without Upgrade: the response ends" || diag "$got"

	got=$(C exec-noupgrade "$addr" "$box" cat)
	is "$(hj_json "$got" '"\(.status) \(.ended)"')" "200 true" \
		"$T: exec start of cat without Upgrade (no way to send stdin): the response ends, no hang" ||
		{ diag "$got"; hj_proxy_diag; }
done

done_testing

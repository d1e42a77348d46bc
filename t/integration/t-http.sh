#!/bin/bash
# HTTP seen with curl: _ping, HEAD, keep-alive, the 403 and 400 answers, a daemon that
# is down (502) and comes back, a daemon socket the proxy may not open.
. "$(dirname "$0")/../lib/common.sh"

dsp_dockerd_setup || bail "no Docker daemon"

# req OUT-PREFIX CURL-ARGS...: status in $code, body in OUT.body, headers in OUT.hdr
req() {
	local out=$1
	shift
	code=$(timeout 30 curl -sS --max-time 20 -o "$out.body" -D "$out.hdr" -w '%{http_code}' "$@" 2>"$out.err")
	body=$(cat "$out.body")
	ctype=$(grep -i '^content-type:' "$out.hdr" | tail -n 1 | tr -d '\r' | sed 's/^[^:]*: *//')
}

# json_message: .message of the last body
json_message() { jq -r '.message' <<<"$body" 2>/dev/null; }

# ---------------------------------------------------------------------------
# The default policy.
dsp_proxy_activated || bail "the proxy did not start"
for via in tcp unix; do
	if [ $via = tcp ]; then
		c=(--path-as-is) base=$DSP_PROXY_URL
	else
		c=(--path-as-is --unix-socket "$DSP_PROXY_SOCK") base=http://localhost
	fi

	req "$DSP_TMP/ping" "${c[@]}" "$base/_ping"
	is "$code $body" "200 OK" "$via: GET /_ping answers 200 OK"

	code=$(timeout 30 curl -sS --max-time 20 -I -o "$DSP_TMP/head" -w '%{http_code}' "${c[@]}" "$base/_ping")
	is "$code" 200 "$via: HEAD /_ping answers 200"
	like "$(cat "$DSP_TMP/head")" '^HTTP/1\.1 200' "$via: HEAD /_ping status line"

	req "$DSP_TMP/ver" "${c[@]}" "$base/v1.41/version"
	is "$code" 200 "$via: GET /v1.41/version answers 200"
	like "$(jq -r .ApiVersion <<<"$body" 2>&1)" '^1\.[0-9]+$' "$via: /v1.41/version is the daemon's JSON"

	# Keep-alive: two requests in one curl run share one connection.
	err=$(timeout 30 curl -sv --max-time 20 -o /dev/null -o /dev/null "${c[@]}" "$base/_ping" "$base/version" 2>&1)
	like "$err" 'Re-using existing connection' "$via: keep-alive, the second request re-uses the connection"
	is "$(grep -c '^< HTTP/1.1 200' <<<"$err")" 2 "$via: keep-alive, both requests answered 200"

	# A refusal and then an allowed request from one client: each gets its own answer.
	err=$(timeout 30 curl -sv --max-time 20 -o /dev/null -o /dev/null "${c[@]}" "$base/containers/json" "$base/_ping" 2>&1)
	like "$err" '^< HTTP/1.1 403' "$via: 403 then 200 from one curl: the first is refused (403)"
	like "$err" '^< HTTP/1.1 200' "$via: 403 then 200 from one curl: the second is answered (200)"

	req "$DSP_TMP/deny" "${c[@]}" "$base/containers/json"
	is "$code" 403 "$via: GET /containers/json under the default policy: 403"
	like "$ctype" '^application/json' "$via: the 403 has Content-Type application/json"
	msg=$(json_message)
	like "$msg" 'docker-socket-proxy' "$via: the 403 body is JSON {\"message\": ...} from docker-socket-proxy"
	like "$msg" 'GET' "$via: the 403 message names the method"
	like "$msg" '/containers/json' "$via: the 403 message names the path"
	like "$msg" 'CONTAINERS=1' "$via: the 403 message names CONTAINERS=1"

	req "$DSP_TMP/create" "${c[@]}" -X POST -H 'Content-Type: application/json' \
		--data '{"Image":"dsp-test:latest"}' "$base/v1.41/containers/create"
	is "$code" 403 "$via: POST /v1.41/containers/create under the default policy: 403"
	if [ "$code" = 201 ]; then # wrongly let through: remove what it made
		timeout 30 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" rm -f "$(jq -r .Id <<<"$body")" >/dev/null 2>&1
	fi
	msg=$(json_message)
	like "$msg" 'POST' "$via: that message names POST"
	like "$msg" 'CONTAINERS=1' "$via: that message names CONTAINERS=1"
	like "$msg" 'POST=1' "$via: that message names POST=1"

	req "$DSP_TMP/vfoo" "${c[@]}" "$base/versionfoo"
	is "$code" 403 "$via: /versionfoo is not /version (403)"
done

# ---------------------------------------------------------------------------
# Non-canonical paths: 400 even where the section is allowed.
dsp_proxy_activated CONTAINERS=1 || bail "the proxy did not start"
req "$DSP_TMP/cj" "$DSP_PROXY_URL/containers/json"
is "$code" 200 "CONTAINERS=1: GET /containers/json answers 200"
for path in '/containers/x/%2e%2e/json' '//containers/json' '/containers/x/../json' \
	'/containers/%2Fjson' '/v1.41/containers/./json'; do
	req "$DSP_TMP/bad" --path-as-is "$DSP_PROXY_URL$path"
	is "$code" 400 "CONTAINERS=1: GET $path answers 400"
	like "$ctype" '^application/json' "GET $path: the 400 is JSON"
	like "$(json_message)" '.' "GET $path: the 400 has a message"
done

# ---------------------------------------------------------------------------
# The daemon is not there: 502, and the proxy recovers once it is, without a restart.
mkdir -p "$DSP_TMP/down"
dsp_proxy_activated "SOCKET_PATH=$DSP_TMP/down/d.sock" || bail "the proxy did not start"
down_pid=$DSP_PROXY_PID
req "$DSP_TMP/down1" "$DSP_PROXY_URL/_ping"
is "$code" 502 "daemon socket missing: GET /_ping answers 502"
like "$ctype" '^application/json' "daemon socket missing: the 502 is JSON"
like "$(json_message)" 'Docker daemon' "daemon socket missing: the message mentions the Docker daemon"
req "$DSP_TMP/down2" --unix-socket "$DSP_PROXY_SOCK" http://localhost/version
is "$code" 502 "daemon socket missing: GET /version over the Unix listener answers 502"
ln -s "$DSP_DOCKER_SOCK" "$DSP_TMP/down/d.sock"
req "$DSP_TMP/up1" "$DSP_PROXY_URL/_ping"
is "$code $body" "200 OK" "daemon socket back: GET /_ping answers 200 OK"
ok "daemon socket back: it is the same proxy process" dsp_pid_alive "$down_pid"

# ---------------------------------------------------------------------------
# The proxy may not open the daemon's socket: run it as nobody.
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
getent group docker >/dev/null || bail "there is no group docker (docker.io creates it)"

# (a) A socket like dockerd's own: root:docker, mode 0660, in a directory anyone may search.
mkdir -m 0755 "$DSP_TMP/grouped"
/usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])' "$DSP_TMP/grouped/d.sock" || bail "cannot make a Unix socket"
chown root:docker "$DSP_TMP/grouped/d.sock"
chmod 0660 "$DSP_TMP/grouped/d.sock"
if "${as_nobody[@]}" test -w "$DSP_TMP/grouped/d.sock"; then
	bail "nobody may write to $DSP_TMP/grouped/d.sock: the test cannot work here"
fi
DSP_PROXY_PREFIX="${as_nobody[*]}" dsp_proxy_activated "SOCKET_PATH=$DSP_TMP/grouped/d.sock" ||
	bail "the proxy as nobody did not start"
req "$DSP_TMP/perm" "$DSP_PROXY_URL/_ping"
is "$code" 502 "as nobody, socket root:docker 0660: GET /_ping answers 502"
like "$ctype" '^application/json' "as nobody, socket root:docker 0660: the 502 is JSON"
like "$(json_message)" 'Docker daemon' "as nobody, socket root:docker 0660: the message mentions the Docker daemon"
both="$body
$(cat "$DSP_PROXY_LOG")"
like "$both" '[Pp]ermission denied|EACCES' "as nobody, socket root:docker 0660: the body or the log says permission denied"
like "$both" '65534|nobody' "as nobody, socket root:docker 0660: the body or the log names the proxy's uid"
like "$both" 'SupplementaryGroups=docker' \
	"as nobody, socket root:docker 0660: the body or the log suggests SupplementaryGroups=docker"

# (b) The real daemon's socket behind a directory nobody may not search.
mkdir -m 0700 "$DSP_TMP/private"
ln -s "$DSP_DOCKER_SOCK" "$DSP_TMP/private/d.sock"
DSP_PROXY_PREFIX="${as_nobody[*]}" dsp_proxy_activated "SOCKET_PATH=$DSP_TMP/private/d.sock" ||
	bail "the proxy as nobody did not start"
req "$DSP_TMP/perm2" "$DSP_PROXY_URL/_ping"
is "$code" 502 "as nobody, directory not searchable: GET /_ping answers 502"
both="$body
$(cat "$DSP_PROXY_LOG")"
like "$both" '[Pp]ermission denied|EACCES' "as nobody, directory not searchable: the body or the log says permission denied"
like "$both" '65534|nobody' "as nobody, directory not searchable: the body or the log names the proxy's uid"

done_testing

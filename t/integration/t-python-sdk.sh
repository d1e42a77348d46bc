#!/bin/bash
# Debian's Python docker SDK (python3-docker, /usr/bin/python3) through the proxy, over
# the Unix and the TCP listener of a socket-activated proxy.
. "$(dirname "$0")/../lib/common.sh"

PY=${DSP_PYTHON:-/usr/bin/python3}
"$PY" -c 'import docker' 2>/dev/null || bail "$PY cannot import docker (python3-docker)"

dsp_dockerd_setup || bail "no Docker daemon"
name=dsp-py-$$
dsp_container "$name" "$DSP_TEST_IMAGE" sleep 300 >/dev/null || bail "docker run on the daemon failed"

cat >"$DSP_TMP/list.py" <<'PY'
import sys
import docker

base_url, version = sys.argv[1], sys.argv[2]
client = docker.DockerClient(base_url=base_url, version=version, timeout=20)
try:
    for c in client.containers.list(all=True):
        print("container", c.name, c.status, c.image.tags if c.image else "")
except docker.errors.APIError as e:
    print("APIError", e.status_code, e.explanation)
    sys.exit(3)
PY

dsp_proxy_activated CONTAINERS=1 IMAGES=1 || bail "the proxy did not start"
for url in "unix://$DSP_PROXY_SOCK" "tcp://127.0.0.1:$DSP_PROXY_PORT"; do
	for version in 1.41 auto; do
		out=$(timeout 60 "$PY" "$DSP_TMP/list.py" "$url" "$version" 2>&1)
		is "$?" 0 "SDK ($url, version=$version): containers.list() succeeds" || diag "$out"
		like "$out" "^container $name running \\['$DSP_TEST_IMAGE'\\]\$" \
			"SDK ($url, version=$version): lists the running container with its image"
	done
done

# Under the default policy the SDK gets the proxy's 403 as an APIError.
dsp_proxy_activated || bail "the proxy with the default policy did not start"
for url in "unix://$DSP_PROXY_SOCK" "tcp://127.0.0.1:$DSP_PROXY_PORT"; do
	out=$(timeout 60 "$PY" "$DSP_TMP/list.py" "$url" 1.41 2>&1)
	is "$?" 3 "SDK ($url), default policy: containers.list() raises APIError"
	like "$out" '^APIError 403 docker-socket-proxy.*CONTAINERS=1' \
		"SDK ($url), default policy: status 403 and the proxy's explanation naming CONTAINERS=1"
done

done_testing

#!/bin/bash
# Debian's Python docker SDK (python3-docker 5.0 on /usr/bin/python3) through the proxy,
# over its TCP and its Unix listener: exec_run (output, demultiplexed streams, exit code)
# and attach_socket on a container running cat (stdin in, the same bytes out).
. "$(dirname "$0")/lib.sh"

hj_setup
"$HJ_PY" -c 'import docker' 2>/dev/null || bail "$HJ_PY cannot import docker (python3-docker)"
tag=dsp-hj-py-$$
box=$tag-box
hj_container "$box" "$DSP_TEST_IMAGE" sleep 100000 || bail "docker run straight on the daemon failed"

cat >"$DSP_TMP/sdk.py" <<'PY'
import json
import socket
import struct
import sys
import time

import docker

url, box, cat_name = sys.argv[1], sys.argv[2], sys.argv[3]
client = docker.DockerClient(base_url=url, version="1.41", timeout=30)
res = {"sdk": docker.__version__}

c = client.containers.get(box)
r = c.exec_run(["echo", "hi"])
res["echo"] = [r.exit_code, r.output.decode()]
r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"], demux=True)
res["demux"] = [r.exit_code, (r.output[0] or b"").decode(), (r.output[1] or b"").decode()]

# attach_socket on a container running cat with an open stdin.
cat = client.containers.run("dsp-test:latest", ["cat"], stdin_open=True, detach=True, name=cat_name)
try:
    sock = cat.attach_socket(params={"stdin": 1, "stream": 1, "stdout": 1})
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(20)
    sent = b"".join(b"sdk line %03d\n" % i for i in range(300))
    raw.sendall(sent)
    buf, out = b"", b""
    deadline = time.monotonic() + 20
    while len(out) < len(sent) and time.monotonic() < deadline:
        d = raw.recv(65536)
        if not d:
            break
        buf += d
        # Demultiplex: [stream, 0, 0, 0, size be32] + payload.
        while len(buf) >= 8:
            size = struct.unpack(">I", buf[4:8])[0]
            if len(buf) < 8 + size:
                break
            if buf[0] == 1:
                out += buf[8:8 + size]
            buf = buf[8 + size:]
    res["attach"] = {"sent": len(sent), "got": len(out), "equal": out == sent}
    sock.close()
    raw.close()
    cat.reload()
    res["attach_after_close_status"] = cat.status
finally:
    cat.remove(force=True)
print(json.dumps(res))
PY

hj_proxy "${HJ_POLICY[@]}" || bail "the proxy did not start"
k=0
for url in "${HJ_HOSTS[@]}"; do
	k=$((k + 1))
	L="python3-docker over ${url%%://*}"
	dsp_at_exit "timeout 30 '$DSP_DOCKER_CLI' -H 'unix://$DSP_DOCKER_SOCK' rm -f '$tag-cat-$k'"
	got=$(timeout 120 "$HJ_PY" "$DSP_TMP/sdk.py" "$url" "$box" "$tag-cat-$k" 2>"$DSP_TMP/err")
	is "$?" 0 "$L: the script runs to its end" || { diag "$(tail -n 20 "$DSP_TMP/err")"; hj_proxy_diag; }
	like "$(hj_json "$got" .sdk)" '^5\.' "$L: it is the SDK 5.x of Debian"
	is "$(hj_json "$got" '.echo | @json')" '[0,"hi\n"]' "$L: exec_run(['echo','hi']): exit code 0, output hi"
	is "$(hj_json "$got" '.demux | @json')" '[4,"out\n","err\n"]' \
		"$L: exec_run(sh -c 'echo out; echo err >&2; exit 4', demux=True): exit code 4, stdout and stderr apart"
	is "$(hj_json "$got" '.attach | "\(.got)/\(.sent) \(.equal)"')" "3900/3900 true" \
		"$L: attach_socket to cat: the 3900 bytes written to stdin come back on stdout" || hj_proxy_diag
	is "$(hj_json "$got" .attach_after_close_status)" running \
		"$L: attach_socket closed: the container keeps running (closing the attach does not kill it)"
done

done_testing

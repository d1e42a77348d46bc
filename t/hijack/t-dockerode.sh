#!/bin/bash
# dockerode (Node) through the proxy, over its TCP and its Unix listener:
# container.attach({hijack: true}), 30 times in a row, on a container running cat: stdin written and read back
# with modem.demuxStream; exec.start({hijack: true, stdin: true}) with the write side ended
# (half-close) and the output read to its end.
# dockerode comes from the npm registry into a cache under /tmp (never into the repository).
. "$(dirname "$0")/lib.sh"

hj_setup
command -v node >/dev/null || bail "node is not installed"
command -v npm >/dev/null || bail "npm is not installed"

# Install (once per machine) into /tmp/dsp-hijack-node; a lock keeps parallel runs apart.
NODE_DIR=${DSP_NODE_CACHE:-/tmp/dsp-hijack-node}
mkdir -p "$NODE_DIR" || bail "cannot create $NODE_DIR"
(
	flock -w 300 9 || exit 1
	if ! [ -f "$NODE_DIR/node_modules/dockerode/package.json" ]; then
		[ -f "$NODE_DIR/package.json" ] || echo '{"name":"dsp-hijack-node","private":true}' >"$NODE_DIR/package.json"
		cd "$NODE_DIR" && timeout 280 npm install --no-audit --no-fund --ignore-scripts dockerode@5 >npm.log 2>&1
	fi
) 9>"$NODE_DIR/.lock" || bail "npm install dockerode failed: $(tail -n 5 "$NODE_DIR/npm.log" 2>/dev/null)"
export NODE_PATH=$NODE_DIR/node_modules

tag=dsp-hj-node-$$

cat >"$DSP_TMP/attach.js" <<'JS'
const Docker = require('dockerode');
const stream = require('stream');
const [, , url, name, box] = process.argv;
const docker = url.startsWith('unix://')
    ? new Docker({socketPath: url.slice(7), version: 'v1.41'})
    : new Docker({host: url.replace(/^tcp:\/\/|:\d+$/g, ''), port: Number(url.split(':').pop()),
                  protocol: 'http', version: 'v1.41'});
const sleep = ms => new Promise(r => setTimeout(r, ms));
const res = {version: require('dockerode/package.json').version};

// Thirty attaches in a row to the same cat: each writes its lines, reads them back, goes.
// Everything cat prints must be exactly what the attaches wrote, in order (dockerode sends
// a JSON body with the attach request: the daemon never reads it, it must not become stdin).
async function attach() {
    const c = await docker.createContainer({name, Image: 'dsp-test:latest', Cmd: ['cat'], OpenStdin: true,
                                            StdinOnce: false, Tty: false});
    let out = '', err = '', sent = '';
    try {
        await c.start();
        for (let round = 0; round < 30; round++) {
            const s = await c.attach({stream: true, stdin: true, stdout: true, stderr: true, hijack: true});
            const o = new stream.PassThrough(), e = new stream.PassThrough();
            o.on('data', d => out += d);
            e.on('data', d => err += d);
            c.modem.demuxStream(s, o, e);
            const chunk = Array.from({length: 20}, (_, i) => `attach ${round} line ${i}\n`).join('');
            sent += chunk;
            s.write(chunk);
            const t0 = Date.now();
            while (!out.endsWith(chunk) && out.length < sent.length + 1000 && Date.now() - t0 < 10000)
                await sleep(20);
            s.destroy();
            if (!out.endsWith(chunk))
                break;  // no echo within 10 s: the result shows it, no use waiting more
            await sleep(50);
        }
    } finally {
        res.attach = {sent: sent.length, got: out.length, equal: out === sent, stderr: err,
                      extra: out === sent ? '' : out.replace(/attach \d+ line \d+\n/g, '').slice(0, 300)};
        await c.remove({force: true});
    }
}

async function exec() {
    const c = docker.getContainer(box);
    const x = await c.exec({Cmd: ['sh', '-c', 'cat; echo done >&2'], AttachStdin: true, AttachStdout: true,
                            AttachStderr: true});
    const s = await x.start({hijack: true, stdin: true});
    let out = '', err = '';
    const o = new stream.PassThrough(), e = new stream.PassThrough();
    o.on('data', d => out += d);
    e.on('data', d => err += d);
    docker.modem.demuxStream(s, o, e);
    const ended = new Promise(r => { s.on('end', r); s.on('close', r); });
    s.end('exec stdin through dockerode\n');   // write, then half-close
    const t0 = Date.now();
    await Promise.race([ended, sleep(15000)]);
    res.exec = {stdout: out, stderr: err, ms: Date.now() - t0, exitCode: (await x.inspect()).ExitCode};
}

(async () => {
    await attach();
    await exec();
    console.log(JSON.stringify(res));
    process.exit(0);
})().catch(e => { console.error('ERROR', e && e.stack || e); process.exit(2); });
JS

box=$tag-box
hj_container "$box" "$DSP_TEST_IMAGE" sleep 100000 || bail "docker run straight on the daemon failed"
hj_proxy "${HJ_POLICY[@]}" || bail "the proxy did not start"
k=0
for url in "${HJ_HOSTS[@]}"; do
	k=$((k + 1))
	L="dockerode over ${url%%://*}"
	name=$tag-cat-$k
	dsp_at_exit "timeout 30 '$DSP_DOCKER_CLI' -H 'unix://$DSP_DOCKER_SOCK' rm -f '$name'"
	got=$(cd "$DSP_TMP" && timeout 90 node "$DSP_TMP/attach.js" "$url" "$name" "$box" 2>"$DSP_TMP/err")
	is "$?" 0 "$L: the script runs to its end" || { diag "$(tail -n 20 "$DSP_TMP/err")"; hj_proxy_diag; }
	like "$(hj_json "$got" .version)" '^5\.' "$L: it is dockerode 5.x"
	is "$(hj_json "$got" '.attach | "\(.got)/\(.sent) \(.equal)"')" "10300/10300 true" \
		"$L: 30 x attach({hijack: true}) to cat: exactly what was written to stdin comes back (demuxStream)" ||
		{ diag "bytes that were not written by the client: $(hj_json "$got" .attach.extra)"; hj_proxy_diag; }
	is "$(hj_json "$got" .attach.stderr)" "" "$L: attach: nothing on stderr"
	is "$(hj_json "$got" .exec.stdout)" "exec stdin through dockerode" \
		"$L: exec.start({hijack: true, stdin: true}) + end(): stdin reaches cat, its output comes back" ||
		hj_proxy_diag
	is "$(hj_json "$got" .exec.stderr)" "done" "$L: exec: cat saw the end of stdin (the half-close) and the rest ran"
	ok "$L: exec: the stream ends after the process ($(hj_json "$got" .exec.ms) ms)" \
		test "$(hj_json "$got" .exec.ms)" -lt 15000
	is "$(hj_json "$got" .exec.exitCode)" 0 "$L: exec inspect: exit code 0"
done

done_testing

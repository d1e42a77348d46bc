# shellcheck shell=bash
# A real Docker daemon for the tests (see /work/shared/notes/real-components.md).
#
#   . t/lib/dockerd.sh
#   dsp_dockerd_start DIR   start dockerd with everything under DIR, in its own network
#                           namespace that holds only lo; wait until it answers; import
#                           the image dsp-test:latest; export DSP_DOCKER_SOCK
#                           ($DSP_DOCKERD_EXTRA_ARGS, e.g. --debug, is appended to its
#                           command line)
#   dsp_dockerd_stop DIR    remove every container of that daemon, stop it by its PID
#   dsp_dockerd_setup       for a test file: reuse $DSP_TEST_DOCKER_SOCK when it answers,
#                           otherwise start a daemon of its own, stopped at exit
#                           (needs dsp_at_exit from tap.sh)
#   dsp_docker ARGS...      the docker CLI talking to that daemon directly
#   dsp_container NAME ARGS...  docker run -d --name NAME ARGS... directly on the daemon,
#                           removed at exit
#
# Never run dockerd without its private network namespace, never pull: the image is built
# locally from busybox-static.

DSP_DOCKER_CLI=${DSP_DOCKER_CLI:-docker}
DSP_TEST_IMAGE=dsp-test:latest

_dsp_log() { printf '# %s\n' "$*" >&2; }

dsp_docker() {
	"$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" "$@"
}

# dsp_docker_answers SOCKET: true when a daemon answers there.
dsp_docker_answers() {
	[ -S "$1" ] && timeout 10 "$DSP_DOCKER_CLI" -H "unix://$1" version >/dev/null 2>&1
}

_dsp_image_import() {
	local root busybox applet
	if dsp_docker image inspect "$DSP_TEST_IMAGE" >/dev/null 2>&1; then
		return 0
	fi
	busybox=/bin/busybox
	[ -x "$busybox" ] || busybox=$(command -v busybox) || {
		_dsp_log "busybox (busybox-static) is not installed"
		return 1
	}
	root=$(mktemp -d /tmp/dsp-image.XXXXXX) || return 1
	mkdir -p "$root/bin" "$root/tmp" "$root/etc"
	cp "$busybox" "$root/bin/busybox"
	for applet in $("$busybox" --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
	done
	timeout 120 tar -C "$root" -c . |
		timeout 120 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" import \
			-c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$DSP_TEST_IMAGE" >/dev/null || {
		_dsp_log "docker import of $DSP_TEST_IMAGE failed"
		rm -rf "$root"
		return 1
	}
	rm -rf "$root"
}

dsp_dockerd_start() {
	local dir=$1 pid i
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd)
	if [ "${#dir}" -gt 90 ]; then
		_dsp_log "dsp_dockerd_start: '$dir' is too long for a Unix socket path"
		return 1
	fi
	(
		# The daemon must not hold the TAP output of a test open (see tap.sh).
		[ -z "${TAP_FD:-}" ] || exec {TAP_FD}>&-
		DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 exec unshare --net sh -c "ip link set lo up && exec dockerd \
			--host unix://$dir/docker.sock --data-root $dir/data --exec-root $dir/exec \
			--pidfile $dir/dockerd.pid --iptables=false --ip6tables=false --bridge=none \
			--ip-masq=false ${DSP_DOCKERD_EXTRA_ARGS:-}"
	) </dev/null >"$dir/dockerd.log" 2>&1 &
	pid=$! # the subshell, unshare and sh exec in place: this is dockerd's PID
	echo "$pid" >"$dir/dsp-dockerd.pid"
	for ((i = 0; i < 300; i++)); do
		if ! dsp_pid_alive "$pid"; then
			_dsp_log "dockerd exited during start-up; its log:"
			sed 's/^/#   /' "$dir/dockerd.log" | tail -n 30 >&2
			return 1
		fi
		if [ -S "$dir/docker.sock" ] &&
			timeout 5 "$DSP_DOCKER_CLI" -H "unix://$dir/docker.sock" version >/dev/null 2>&1; then
			break
		fi
		sleep 0.1
	done
	if [ "$i" -ge 300 ]; then
		_dsp_log "dockerd did not answer within 30 s; its log:"
		tail -n 30 "$dir/dockerd.log" | sed 's/^/#   /' >&2
		dsp_dockerd_stop "$dir"
		return 1
	fi
	export DSP_DOCKER_SOCK=$dir/docker.sock
	_dsp_image_import
}

# dsp_pid_alive PID: true while PID runs (a zombie child that was not reaped yet is gone).
dsp_pid_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

_dsp_wait_gone() { # PID TENTHS
	local i
	for ((i = 0; i < $2; i++)); do
		dsp_pid_alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

dsp_dockerd_stop() {
	local dir=$1 pid cpid ids
	[ -f "$dir/dsp-dockerd.pid" ] || return 0
	pid=$(cat "$dir/dsp-dockerd.pid")
	cpid=$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null)
	if dsp_pid_alive "$pid"; then
		ids=$(timeout 20 "$DSP_DOCKER_CLI" -H "unix://$dir/docker.sock" ps -aq 2>/dev/null)
		if [ -n "$ids" ]; then
			# shellcheck disable=SC2086
			timeout 60 "$DSP_DOCKER_CLI" -H "unix://$dir/docker.sock" rm -f $ids >/dev/null 2>&1
		fi
		kill -TERM "$pid" 2>/dev/null
		if ! _dsp_wait_gone "$pid" 200; then
			_dsp_log "dockerd $pid did not stop within 20 s of SIGTERM, killing it"
			kill -KILL "$pid" 2>/dev/null
			_dsp_wait_gone "$pid" 50
		fi
		wait "$pid" 2>/dev/null # reap it when it is our child
	fi
	# dockerd takes its containerd along on SIGTERM; not after SIGKILL.
	if [ -n "$cpid" ] && dsp_pid_alive "$cpid" &&
		grep -q "containerd" "/proc/$cpid/cmdline" 2>/dev/null &&
		grep -q -- "$dir" "/proc/$cpid/cmdline" 2>/dev/null; then
		kill -TERM "$cpid" 2>/dev/null
		_dsp_wait_gone "$cpid" 100 || kill -KILL "$cpid" 2>/dev/null
	fi
	rm -f "$dir/dsp-dockerd.pid"
}

# For one test file: use the run's shared daemon, or start one of our own.
dsp_dockerd_setup() {
	if [ -n "${DSP_TEST_DOCKER_SOCK:-}" ] && dsp_docker_answers "$DSP_TEST_DOCKER_SOCK"; then
		export DSP_DOCKER_SOCK=$DSP_TEST_DOCKER_SOCK
		_dsp_image_import
		return
	fi
	local dir
	dir=$(mktemp -d /tmp/dsp-dockerd.XXXXXX) || return 1
	dsp_at_exit "dsp_dockerd_stop '$dir'; _dsp_rm_daemon_dir '$dir'"
	dsp_dockerd_start "$dir"
}

# For a whole run (t/run-all.sh, t/run-sanitized.sh): one daemon that every test reuses
# through DSP_TEST_DOCKER_SOCK. Returns non-zero when it could not start (each test then
# starts its own). dsp_shared_dockerd_stop ends it; calling it again does nothing.
dsp_shared_dockerd_start() {
	_dsp_shared_dir=$(mktemp -d /tmp/dsp-dockerd.XXXXXX) || return 1
	dsp_dockerd_start "$_dsp_shared_dir" || return 1
	export DSP_TEST_DOCKER_SOCK=$_dsp_shared_dir/docker.sock
}

dsp_shared_dockerd_stop() {
	[ -n "${_dsp_shared_dir:-}" ] || return 0
	dsp_dockerd_stop "$_dsp_shared_dir" 2>/dev/null
	_dsp_rm_daemon_dir "$_dsp_shared_dir"
	_dsp_shared_dir=
}

_dsp_rm_daemon_dir() {
	# Leave the directory alone if anything is still mounted below it.
	if ! grep -q " $1/" /proc/self/mountinfo; then
		rm -rf "$1"
	fi
}

# dsp_container NAME DOCKER-RUN-ARGS...: a detached container made directly on the
# daemon (not through the proxy), removed when the test exits.
dsp_container() {
	local name=$1
	shift
	dsp_at_exit "timeout 30 '$DSP_DOCKER_CLI' -H 'unix://$DSP_DOCKER_SOCK' rm -f '$name'"
	timeout 60 "$DSP_DOCKER_CLI" -H "unix://$DSP_DOCKER_SOCK" run -d --name "$name" "$@"
}

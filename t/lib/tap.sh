# shellcheck shell=bash
# A small TAP producer for the integration tests.
#
#   . t/lib/tap.sh
#   plan N                               # optional: print "1..N" first
#   ok "description" command args...     # passes when the command exits 0
#   is "$got" "$expected" "description"
#   like "$got" 'ERE' "description"      # grep -E
#   unlike "$got" 'ERE' "description"
#   pass "description" / fail "description"
#   diag "text"                          # "# text" lines in the TAP output
#   bail "reason"                        # "Bail out!" and exit 255
#   dsp_at_exit 'shell code'             # run at exit, last registered first
#   done_testing                         # last line of every test script
#
# The plan ("1..N") is printed at exit, after every registered clean-up has run,
# and the exit status is the number of failed tests (capped at 254). A script
# that exits without reaching done_testing (set -e, a timeout, a signal) gets
# one more failing test saying so.
# There is deliberately no skip: a missing feature is a failing test.

TAP_N=0
TAP_FAILED=0
TAP_ATEXIT=()
# TAP goes to the script's stdout as it was when this file was sourced, so that a
# redirection on an assertion (ok "..." cmd >/dev/null) cannot swallow its result.
exec {TAP_FD}>&1

_tap_result() { # STATUS DESCRIPTION
	TAP_N=$((TAP_N + 1))
	local desc=${2//#/\\#}
	desc=${desc//$'\n'/ }
	if [ "$1" -eq 0 ]; then
		printf 'ok %d - %s\n' "$TAP_N" "$desc" >&"$TAP_FD"
	else
		TAP_FAILED=$((TAP_FAILED + 1))
		printf 'not ok %d - %s\n' "$TAP_N" "$desc" >&"$TAP_FD"
	fi
	return "$1"
}

plan() {
	TAP_PLANNED=$1
	printf '1..%d\n' "$1" >&"$TAP_FD"
}

pass() { _tap_result 0 "$1"; }
fail() { _tap_result 1 "$1"; }

diag() {
	local line
	while IFS= read -r line; do
		printf '# %s\n' "$line" >&"$TAP_FD"
	done <<<"$*"
}

# ok DESCRIPTION COMMAND [ARGS...]
ok() {
	local desc=$1
	shift
	if "$@"; then
		_tap_result 0 "$desc"
	else
		_tap_result 1 "$desc"
		diag "  command failed: $*"
		return 1
	fi
}

# is GOT EXPECTED DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then
		_tap_result 0 "$3"
	else
		_tap_result 1 "$3"
		diag "       got: '$1'"
		diag "  expected: '$2'"
		return 1
	fi
}

# isnt GOT UNEXPECTED DESCRIPTION
isnt() {
	if [ "$1" != "$2" ]; then
		_tap_result 0 "$3"
	else
		_tap_result 1 "$3"
		diag "  got '$1', expected anything else"
		return 1
	fi
}

# like GOT ERE DESCRIPTION
like() {
	if printf '%s\n' "$1" | grep -qE -- "$2"; then
		_tap_result 0 "$3"
	else
		_tap_result 1 "$3"
		diag "  text does not match /$2/:"
		diag "$(printf '%s\n' "$1" | head -n 40 | sed 's/^/    /')"
		return 1
	fi
}

# unlike GOT ERE DESCRIPTION
unlike() {
	if ! printf '%s\n' "$1" | grep -qE -- "$2"; then
		_tap_result 0 "$3"
	else
		_tap_result 1 "$3"
		diag "  text matches /$2/ but should not:"
		diag "$(printf '%s\n' "$1" | head -n 40 | sed 's/^/    /')"
		return 1
	fi
}

bail() {
	printf 'Bail out! %s\n' "$*" >&"$TAP_FD"
	TAP_BAILED=1
	exit 255
}

dsp_at_exit() {
	TAP_ATEXIT+=("$1")
}

done_testing() {
	TAP_DONE=1
	exit 0
}

_tap_exit() {
	local rc=$? i
	trap - EXIT
	set +e
	for ((i = ${#TAP_ATEXIT[@]} - 1; i >= 0; i--)); do
		eval "${TAP_ATEXIT[$i]}" >/dev/null 2>&1
	done
	if [ -n "${TAP_BAILED:-}" ]; then
		exit 255
	fi
	if [ -z "${TAP_DONE:-}" ]; then
		fail "the test script ran to its end (it exited early with status $rc)"
	fi
	if [ -z "${TAP_PLANNED:-}" ]; then
		printf '1..%d\n' "$TAP_N" >&"$TAP_FD"
	elif [ "$TAP_PLANNED" -ne "$TAP_N" ]; then
		printf '# planned %d tests but ran %d\n' "$TAP_PLANNED" "$TAP_N" >&"$TAP_FD"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
	[ "$TAP_FAILED" -gt 254 ] && TAP_FAILED=254
	exit "$TAP_FAILED"
}
trap _tap_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

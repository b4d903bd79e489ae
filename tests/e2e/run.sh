#!/usr/bin/env bash
# Runs the end-to-end tier: brings the lab up (tests/lab/lab.sh), exports its
# lab.env, runs every e2e test, tears the lab down (also on failure, Ctrl-C or
# TERM), and ends with one line "e2e: N passed, N failed, N skipped".
#
# Tests: every tests/e2e/*.sh other than this file (run with bash; exit 0 =
# pass) and every binary $E2E_BIN_DIR/t_*. A test that cannot run here prints
# a line "SKIP: <reason>" and exits 77 (tests/e2e/e2e.h: E2E_SKIP); it is
# counted as skipped with its reason; exit 77 without a reason line fails.
# Each runs from the repository root with a timeout (E2E_TIMEOUT seconds, default 600).
#
#   E2E_HOSTS=N      hosts in the lab (default 3)
#   E2E_ONLY="GLOB..." run only tests whose name matches a glob (e.g. "lab_* t_lab_*")
#   E2E_KEEP=1       leave the lab up afterwards (prints how to tear it down)
#   LAB_DELAY_MS     added round-trip delay of the ssh relays
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
LAB=$ROOT/tests/lab/lab.sh
E2E_BIN_DIR=${E2E_BIN_DIR:-$ROOT/build/rel/tests}
TIMEOUT=${E2E_TIMEOUT:-600}
LOGS=${E2E_LOG_DIR:-$ROOT/build/e2e-logs} # kept after teardown

export LAB_ID=${LAB_ID:-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')}
LAB_DIR=/tmp/plumb-lab-$LAB_ID
child=""
passed=0
failed=0
skipped=0
failures=""

finish() {
	local rc=$?
	trap '' INT TERM
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	if [ -d "$LAB_DIR/log" ]; then
		rm -rf "$LOGS" && mkdir -p "$LOGS" && cp -r "$LAB_DIR/log/." "$LOGS/" 2>/dev/null
	fi
	if [ "${E2E_KEEP:-}" = 1 ] && [ -f "$LAB_DIR/ready" ]; then
		echo "e2e: lab kept: set -a; . $LAB_DIR/lab.env; set +a; tear down with: $LAB down $LAB_DIR"
	elif [ -d "$LAB_DIR" ]; then
		"$LAB" down "$LAB_DIR"
	fi
	exit "$rc"
}
trap finish EXIT
trap 'echo "e2e: interrupted" >&2; exit 130' INT TERM

# run_bg LOG CMD...: runs CMD in the background with its output in LOG (or
# ours if LOG is "-") and waits, so a signal reaches our trap at once (and the
# trap's own output is not redirected into LOG).
run_bg() {
	local log=$1; shift
	if [ "$log" = - ]; then "$@" & else "$@" >"$log" 2>&1 & fi
	child=$!
	wait "$child"
	local rc=$?
	child=""
	return $rc
}

echo "e2e: bringing up the lab ($LAB_ID, ${E2E_HOSTS:-3} hosts)"
t0=$(date +%s.%N)
if ! run_bg - "$LAB" up "${E2E_HOSTS:-3}"; then
	echo "e2e: the lab did not come up"
	echo "e2e: 0 passed, 1 failed, 0 skipped"
	exit 1
fi
echo "e2e: lab up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
set -a
# shellcheck source=/dev/null
. "$LAB_DIR/lab.env"
set +a
export PLUMB_BIN="${PLUMB_BIN:-$ROOT/build/plumb}" E2E_BIN_DIR

# wanted NAME: NAME matches one of the space-separated globs in E2E_ONLY.
wanted() {
	local g
	set -f
	for g in ${E2E_ONLY:-*}; do
		# shellcheck disable=SC2254
		case "$1" in $g) set +f; return 0 ;; esac
	done
	set +f
	return 1
}

tests=()
# Helpers that tests start themselves (e.g. token_server.sh, a CGI program)
# are not tests: names *_server.sh, *_helper.sh, helper_*.sh, or a line
# "# e2e: helper" in the first 20 lines.
for t in tests/e2e/*.sh; do
	case "$(basename "$t")" in run.sh | *_server.sh | *_helper.sh | helper_*.sh) continue ;; esac
	head -n 20 "$t" | grep -q "^# e2e: helper" && continue
	tests+=("$t")
done
for t in "$E2E_BIN_DIR"/t_*; do
	[ -x "$t" ] && tests+=("$t")
done

for t in "${tests[@]}"; do
	name=$(basename "$t")
	wanted "$name" || continue
	log=$LAB_DIR/log/test-$name.log
	s=$(date +%s.%N)
	case "$t" in
	*.sh) run_bg "$log" timeout -k 10 "$TIMEOUT" bash "$t" ;;
	*) run_bg "$log" timeout -k 10 "$TIMEOUT" "$t" ;;
	esac
	rc=$?
	secs=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
	reason=""
	[ $rc -eq 77 ] && reason=$(grep -m1 '^SKIP: ' "$log" | sed 's/^SKIP: //')
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name (${secs}s)"
	elif [ $rc -eq 77 ] && [ -n "$reason" ]; then
		skipped=$((skipped + 1))
		echo "SKIP $name: $reason"
	else
		failed=$((failed + 1))
		failures="$failures $name"
		[ $rc -eq 124 ] && echo "FAIL $name (timed out after ${TIMEOUT}s)" || echo "FAIL $name (exit $rc, ${secs}s)"
		sed 's/^/    | /' "$log" | tail -n 40
	fi
done

[ -n "$failures" ] && echo "e2e: failed:$failures"
echo "e2e: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]

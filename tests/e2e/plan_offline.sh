#!/usr/bin/env bash
# plan --offline (a PR check without host access): the head is planned
# against the base revision taken as what the hosts run, and no host is
# contacted (the SSH key is taken away: any connection would fail the plan):
#   - head = base: exit 0;
#   - a version bump and a job env change: exit 2, the app containers
#     replaced, Postgres untouched; JSON says offline and against what;
#   - without a base (and no watcher state): exit 1 with the reason.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
trap 'rm -rf "$T"' EXIT

A=$(plan_commit "plan_offline: base")
lab_tag v1 "$A"
export PC_JOB_ENV="QUEUE: offline"
B=$(plan_commit "plan_offline: head")
lab_tag v2 "$B"
export PLUMB_SSH_KEY=/nonexistent/no-key-here
offline() { # NAME ARGS
	local name=$1
	shift
	set +e
	(cd "$LAB_GIT_WORK" && "$PLUMB" plan --offline "$@") >"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	set -e
	echo "offline $name: exit $RC"
}
offline same --base "$B" --version "$B"
[ "$RC" = 0 ] || { cat "$T/same.out" "$T/same.err" >&2; fail "head against itself: exit $RC, want 0"; }
grep -q "Offline plan: against $B" "$T/same.out" || fail "the text does not say it is offline"
offline bump --base "$A" --format json
[ "$RC" = 2 ] || { cat "$T/bump.out" "$T/bump.err" >&2; fail "a bump: exit $RC, want 2"; }
jq -e '.offline == true and .against == "'"$A"'"' "$T/bump.out" >/dev/null || fail "JSON lacks offline/against"
jq -e '[.hosts[].steps[] | select(.name | test("optimus-(web|job)-"))] | length >= 3' "$T/bump.out" >/dev/null ||
	{ cat "$T/bump.out" >&2; fail "the app containers are not replaced"; }
! jq -e '.hosts[].steps[] | select(.name == "optimus-db")' "$T/bump.out" >/dev/null ||
	fail "Postgres has a step"
[ "$(jq '.summary.failed_hosts' "$T/bump.out")" = 0 ] || fail "a host was contacted (failed)"
offline nobase
[ "$RC" = 1 ] && grep -q "offline plans against a base revision" "$T/nobase.err" ||
	{ cat "$T/nobase.err" >&2; fail "no base: exit $RC"; }
echo "PASS plan_offline"

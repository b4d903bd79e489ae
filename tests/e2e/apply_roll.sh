#!/usr/bin/env bash
# Acceptance (issue 9): rollouts.
#   - v1 -> v2 under a bounded load through kamal-proxy on every web host:
#     zero failed requests, answers switch v1 -> v2, Postgres id unchanged;
#   - a commit changing only the job role's env: web ids unchanged, job replaced;
#   - the broken image (/up fails): exit 1, zero failed requests, v2 still
#     answers, no broken container left running, no lock left;
#   - `plumb rollback`: the previous version answers, without a pull (no
#     image appears on any host).
# No secret in any output nor in any process's argv (apply_accept_lib.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_accept_lib.sh"
apply_setup

A=$(plan_commit "apply_roll: v1")
lab_tag v1 "$A"
apply_run first apply --trusted --yes
apply_expect_rc first 0
apply_answers v1
DB1=$(apply_id 1 optimus-db)

# ---- v1 -> v2 under load ----
export PC_CLEAR_EXTRA="FEATURE: two"
B=$(plan_commit "apply_roll: v2")
lab_tag v2 "$B"
apply_load_start
apply_run roll apply --trusted --yes
apply_load_stop 'v1|v2'
apply_expect_rc roll 0
[ "$LOAD_BAD" -eq 0 ] || fail "roll: $LOAD_BAD failed requests"
grep -qx v1 "$T/load.log" && grep -qx v2 "$T/load.log" || fail "roll: the load did not see v1 then v2"
[ "$(grep -nx v2 "$T/load.log" | head -1 | cut -d: -f1)" -gt "$(grep -nx v1 "$T/load.log" | head -1 | cut -d: -f1)" ] || fail "roll: v2 before v1"
apply_answers v2
[ "$(apply_id 1 optimus-db)" = "$DB1" ] || fail "roll: the Postgres container changed"
plan_run after_roll
plan_expect_rc after_roll 0

# ---- only the job's env changes ----
WEB_IDS=""
for ((i = 1; i < N; i++)); do WEB_IDS+="$(apply_id "$i" "optimus-web-.*") "; done
JOB1=$(apply_id "$N" "optimus-job-.*")
export PC_JOB_ENV="JOB_ONLY: only"
C=$(plan_commit "apply_roll: job env")
lab_tag v2 "$C"
apply_load_start
apply_run jobenv apply --trusted --yes
apply_load_stop 'v2'
apply_expect_rc jobenv 0
[ "$LOAD_BAD" -eq 0 ] || fail "jobenv: $LOAD_BAD failed requests"
got=""
for ((i = 1; i < N; i++)); do got+="$(apply_id "$i" "optimus-web-.*") "; done
[ "$got" = "$WEB_IDS" ] || fail "jobenv: a web container was replaced ($WEB_IDS -> $got)"
JOB2=$(apply_id "$N" "optimus-job-.*")
[ -n "$JOB2" ] && [ "$JOB2" != "$JOB1" ] || fail "jobenv: the job was not replaced"
lab_on_host "$N" "docker exec \$(docker ps -q --filter name=optimus-job-) env" | grep -qx 'JOB_ONLY=only' || fail "jobenv: the new job lacks its env"
[ "$(apply_id 1 optimus-db)" = "$DB1" ] || fail "jobenv: the Postgres container changed"

# ---- the broken image ----
export PC_CLEAR_EXTRA="FEATURE: three"
D=$(plan_commit "apply_roll: broken")
lab_tag bad "$D"
apply_load_start
apply_run broken apply --trusted --yes
apply_load_stop 'v2'
apply_expect_rc broken 1
[ "$LOAD_BAD" -eq 0 ] || fail "broken: $LOAD_BAD failed requests"
apply_answers v2
for ((i = 1; i < N; i++)); do
	if lab_on_host "$i" "docker ps --format '{{.Names}}'" | grep -q "optimus-web-$D"; then fail "broken: host $i runs the broken container"; fi
done
apply_no_lock broken

# ---- rollback to v1, without a pull ----
imgs() { local i; for ((i = 1; i <= N; i++)); do lab_on_host "$i" 'docker images --no-trunc -q | sort -u'; done; }
imgs >"$T/imgs.before"
apply_load_start
apply_run rollback rollback "$A" --trusted --yes
apply_load_stop 'v1|v2'
apply_expect_rc rollback 0
[ "$LOAD_BAD" -eq 0 ] || fail "rollback: $LOAD_BAD failed requests"
apply_answers v1
imgs >"$T/imgs.after"
# pruning may remove images; none may appear
new=$(sort -u "$T/imgs.before" | comm -13 - <(sort -u "$T/imgs.after"))
[ -z "$new" ] || fail "rollback: an image appeared on a host (a pull): $new"
if grep -qi "pull" "$T/rollback.out"; then apply_show rollback; fail "rollback: it pulled"; fi
[ "$(apply_id 1 optimus-db)" = "$DB1" ] || fail "rollback: the Postgres container changed"
echo "apply_roll: ok"

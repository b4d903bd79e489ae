#!/usr/bin/env bash
# Acceptance (issue 9): rollouts.
#   - v1 -> v2 under a bounded load through kamal-proxy on every web host:
#     zero failed requests, answers switch v1 -> v2, Postgres id unchanged;
#   - a commit changing only the job role's env: web ids unchanged, job replaced;
#   - the broken image (/up fails): exit 1, zero failed requests, v2 still
#     answers, no broken container left running, no lock left;
#   - `plumb rollback`: the previous version answers, without a pull (no
#     image appears on any host).
# No secret in any output nor in any process's argv (apply_lib.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

apply_first apply_roll
DB1=$(apply_db_id)

# ---- v1 -> v2 under load ----
export PC_CLEAR_EXTRA="FEATURE: two"
B=$(apply_commit v2 "apply_roll: v2")
apply_run_loaded roll 'v1|v2' apply --trusted --yes
apply_expect_rc roll 0
apply_load_switched roll v1 v2
apply_answers v2
[ "$(apply_db_id)" = "$DB1" ] || fail "roll: the Postgres container changed"
plan_run after_roll
plan_expect_rc after_roll 0

# ---- only the job's env changes ----
WEB_IDS=$(apply_role_ids web)
JOB1=$(apply_role_ids job)
export PC_JOB_ENV="JOB_ONLY: only"
C=$(apply_commit v2 "apply_roll: job env")
apply_run_loaded jobenv v2 apply --trusted --yes
apply_expect_rc jobenv 0
got=$(apply_role_ids web)
[ "$got" = "$WEB_IDS" ] || fail "jobenv: a web container was replaced ($WEB_IDS -> $got)"
JOB2=$(apply_role_ids job)
[ -n "$JOB2" ] && [ "$JOB2" != "$JOB1" ] || fail "jobenv: the job was not replaced"
lab_on_host "$N" "docker exec \$(docker ps -q --filter name=optimus-job-) env" | grep -qx 'JOB_ONLY=only' || fail "jobenv: the new job lacks its env"
[ "$(apply_db_id)" = "$DB1" ] || fail "jobenv: the Postgres container changed"

# ---- the broken image ----
export PC_CLEAR_EXTRA="FEATURE: three"
D=$(apply_commit bad "apply_roll: broken")
apply_run_loaded broken v2 apply --trusted --yes
apply_expect_rc broken 1
apply_answers v2
apply_no_running "$D"
apply_no_lock broken

# ---- rollback to v1, without a pull ----
imgs() { local i; for ((i = 1; i <= N; i++)); do lab_on_host "$i" 'docker images --no-trunc -q | sort -u'; done; }
imgs >"$T/imgs.before"
apply_run_loaded rollback 'v1|v2' rollback "$A" --trusted --yes
apply_expect_rc rollback 0
apply_answers v1
imgs >"$T/imgs.after"
# pruning may remove images; none may appear
new=$(sort -u "$T/imgs.before" | comm -13 - <(sort -u "$T/imgs.after"))
[ -z "$new" ] || fail "rollback: an image appeared on a host (a pull): $new"
if grep -qi "pull" "$T/rollback.out"; then apply_show rollback; fail "rollback: it pulled"; fi
[ "$(apply_db_id)" = "$DB1" ] || fail "rollback: the Postgres container changed"
echo "apply_roll: ok"

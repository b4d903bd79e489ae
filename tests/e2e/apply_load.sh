#!/usr/bin/env bash
# `plumb apply` under load (issue 9, acceptance): a load generator
# (tests/lab/loadgen.c) sends requests through kamal-proxy to every web host
# for the whole of each rollout:
#   - v1 -> v2: zero failed requests, every host's answers switch from v1 to
#     v2, the Postgres container is the same;
#   - a commit changing only the job role's env: the web containers are the
#     same, the job is replaced;
#   - a broken image (/up fails): exit 1, zero failed requests, v2 still
#     answers everywhere, no broken container running.
# Prints the request counts and the roll times. No secret in any output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

apply_first apply_load --skip-hooks
DB1=$(apply_db_id)

# ---- v1 -> v2 under load ----
export PC_CLEAR_EXTRA="FEATURE: two"
B=$(apply_commit v2 "apply_load: v2")
WEB1=$(apply_role_ids web)
apply_run_loaded roll 'v1|v2' apply --trusted --yes --skip-hooks
ROLL_SECS=$SECS
apply_expect_rc roll 0
apply_answers v2
apply_load_switched roll v1 v2
[ "$(apply_db_id)" = "$DB1" ] || fail "roll: the Postgres container changed"
[ "$(apply_role_ids web)" != "$WEB1" ] || fail "roll: the web containers are the same"
plan_run after_roll
plan_expect_rc after_roll 0

# ---- only the job's env changes ----
WEB2=$(apply_role_ids web)
JOB2=$(apply_role_ids job)
PC_JOB_ENV="JOB_QUEUE: urgent" plan_commit "apply_load: job env" >"$T/jobsha"
lab_tag v2 "$(cat "$T/jobsha")"
apply_run_loaded jobenv v2 apply --trusted --yes --skip-hooks
apply_expect_rc jobenv 0
[ "$(apply_role_ids web)" = "$WEB2" ] || fail "jobenv: the web containers changed"
JOB3=$(apply_role_ids job)
[ -n "$JOB3" ] && [ "$JOB3" != "$JOB2" ] || fail "jobenv: the job was not replaced ($JOB2 -> $JOB3)"
[ "$(echo "$JOB3" | wc -l)" -eq 1 ] || fail "jobenv: not one job container: $JOB3"
lab_on_host "$N" "docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' optimus-job-$(cat "$T/jobsha")" | grep -qx "JOB_QUEUE=urgent" ||
	fail "jobenv: the new job container lacks the new value"
[ "$(apply_db_id)" = "$DB1" ] || fail "jobenv: the Postgres container changed"
apply_answers v2

# ---- the broken image under load ----
export PC_JOB_ENV="JOB_QUEUE: urgent" PC_CLEAR_EXTRA="FEATURE: three"
C=$(apply_commit bad "apply_load: bad")
apply_run_loaded broken v2 apply --trusted --yes --skip-hooks
BROKEN_SECS=$SECS
apply_expect_rc broken 1
apply_answers v2
apply_no_running "$C"
apply_no_lock broken
echo "apply_load: roll v1->v2 ${ROLL_SECS}s, failed apply ${BROKEN_SECS}s"
echo "apply_load: ok"

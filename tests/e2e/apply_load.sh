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

A=$(plan_commit "apply_load: v1")
lab_tag v1 "$A"
apply_run first apply --trusted --yes --skip-hooks
expect_rc first 0
answers v1
DB1=$(db_id)

# ---- v1 -> v2 under load ----
export PC_CLEAR_EXTRA="FEATURE: two"
B=$(plan_commit "apply_load: v2")
lab_tag v2 "$B"
WEB1=$(role_ids web)
load_start roll
apply_run roll apply --trusted --yes --skip-hooks
ROLL_SECS=$SECS
load_stop roll
expect_rc roll 0
[ "$FAILED" -eq 0 ] || fail "roll: $FAILED failed requests"
answers v2
for ((i = 1; i < N; i++)); do
	ip=$(lab__host_ip "$i")
	# v1 first, then v2, and v1 never after v2's first answer
	v1_last=$(awk -v h="$ip" '$1 == "body" && $2 == h && $3 == "\"v1\"" {print $7}' "$T/roll.load")
	v2_first=$(awk -v h="$ip" '$1 == "body" && $2 == h && $3 == "\"v2\"" {print $7}' "$T/roll.load")
	[ -n "$v1_last" ] && [ -n "$v2_first" ] || fail "roll: host $i did not answer both v1 and v2"
	others=$(awk -v h="$ip" '$1 == "body" && $2 == h && $3 != "\"v1\"" && $3 != "\"v2\""' "$T/roll.load")
	[ -z "$others" ] || fail "roll: host $i answered something else: $others"
done
[ "$(db_id)" = "$DB1" ] || fail "roll: the Postgres container changed"
[ "$(role_ids web)" != "$WEB1" ] || fail "roll: the web containers are the same"
plan_run after_roll
plan_expect_rc after_roll 0

# ---- only the job's env changes ----
WEB2=$(role_ids web)
JOB2=$(role_ids job)
PC_JOB_ENV="JOB_QUEUE: urgent" plan_commit "apply_load: job env" >"$T/jobsha"
lab_tag v2 "$(cat "$T/jobsha")"
load_start jobenv
apply_run jobenv apply --trusted --yes --skip-hooks
load_stop jobenv
expect_rc jobenv 0
[ "$FAILED" -eq 0 ] || fail "jobenv: $FAILED failed requests"
[ "$(role_ids web)" = "$WEB2" ] || fail "jobenv: the web containers changed"
JOB3=$(role_ids job)
[ -n "$JOB3" ] && [ "$JOB3" != "$JOB2" ] || fail "jobenv: the job was not replaced ($JOB2 -> $JOB3)"
[ "$(echo "$JOB3" | wc -l)" -eq 1 ] || fail "jobenv: not one job container: $JOB3"
lab_on_host "$N" "docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' optimus-job-$(cat "$T/jobsha")" | grep -qx "JOB_QUEUE=urgent" ||
	fail "jobenv: the new job container lacks the new value"
[ "$(db_id)" = "$DB1" ] || fail "jobenv: the Postgres container changed"
answers v2

# ---- the broken image under load ----
export PC_JOB_ENV="JOB_QUEUE: urgent" PC_CLEAR_EXTRA="FEATURE: three"
C=$(plan_commit "apply_load: bad")
lab_tag bad "$C"
load_start broken
apply_run broken apply --trusted --yes --skip-hooks
BROKEN_SECS=$SECS
load_stop broken
expect_rc broken 1
[ "$FAILED" -eq 0 ] || fail "broken: $FAILED failed requests"
answers v2
no_running "$C"
no_lock broken
echo "apply_load: roll v1->v2 ${ROLL_SECS}s, failed apply ${BROKEN_SECS}s"
echo "apply_load: ok"

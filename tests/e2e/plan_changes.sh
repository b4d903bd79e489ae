#!/usr/bin/env bash
# End-to-end: `plumb plan` on a fleet that Kamal deployed (kamal_sim.sh), then
# one change at a time; each shows exactly the expected steps with the right
# cause and nothing else (asserted on --format json), and no plan changes a
# host or takes the lock:
#   - a new commit whose image has new content: app roles replaced, Postgres untouched;
#   - a new commit whose tag resolves to the same content and that changes only
#     the job role's env: job replaced, web only renamed;
#   - a secret changed: "(sensitive value changed)", the value never printed;
#   - a container stopped by hand (start), removed by hand (create);
#   - the Postgres accessory's image tag or env changed: stop-first, disruptive;
#   - the new commit's tag not in the registry yet.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
trap 'plan_clean; rm -rf "$T"' EXIT
plan_clean

A=$(plan_commit "plan_changes: deployed")
lab_tag v1 "$A"
plan_sim_fleet "$A" v1
plan_run start
plan_expect_rc start 0

web_steps() { # ACTION NEW OLD CAUSES [FLAGS]
	local i out=""
	for ((i = 1; i < N; i++)); do out+="H$i $1 optimus-web-$2 optimus-web-$3 $4${5:+ $5}"$'\n'; done
	printf '%s' "$out"
}

# ---- new commit, new image content ----
B=$(plan_commit "plan_changes: new content")
lab_tag v2 "$B"
plan_run new_content --format json
plan_expect_rc new_content 2
plan_expect new_content "$(web_steps replace "$B" "$A" image_changed switch)
H$N replace optimus-job-$B optimus-job-$A image_changed"
echo "new content: web and job replaced (image_changed), optimus-db untouched"

# ---- new commit, same content, only the job role's env changed ----
C=$(PC_JOB_ENV="QUEUES: default" plan_commit "plan_changes: job env")
lab_tag v1 "$C"
plan_run job_env --format json
plan_expect_rc job_env 2
plan_expect job_env "$(web_steps rename "$C" "$A" version_changed)
H$N replace optimus-job-$C optimus-job-$A env_added:QUEUES"
echo "same content + job env: job replaced (env_added QUEUES), web only renamed"

# ---- a secret changed ----
NEWKEY="NEW-SECRET-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
PC_MASTER_KEY=$NEWKEY plan_commit "plan_changes: secret rotated" >/dev/null
for f in text json markdown; do
	plan_run "secret_$f" --format "$f" --version "$A"
	plan_expect_rc "secret_$f" 2
	plan_no_secret "secret_$f" "$NEWKEY" "$PC_MASTER_KEY"
done
plan_expect secret_json "$(web_steps replace "$A" "$A" secret_changed:RAILS_MASTER_KEY switch)
H$N replace optimus-job-$A optimus-job-$A secret_changed:RAILS_MASTER_KEY"
grep -q "RAILS_MASTER_KEY: (sensitive value changed)" "$T/secret_text.out" || fail "secret: no '(sensitive value changed)'"
grep -q '"sensitive": true' "$T/secret_json.out" || fail "secret: the JSON cause is not sensitive"
echo "secret changed: replaced with (sensitive value changed); neither value in text, JSON or Markdown"

# back to the deployed config
plan_commit "plan_changes: as deployed" >/dev/null

# ---- stopped by hand ----
lab_on_host 2 "docker stop optimus-web-$A >/dev/null"
plan_run stopped --format json --version "$A"
plan_expect_rc stopped 2
plan_expect stopped "H2 start optimus-web-$A optimus-web-$A stopped switch"
lab_on_host 2 "docker start optimus-web-$A >/dev/null"
echo "stopped by hand: start"

# ---- removed by hand ----
lab_on_host "$N" "docker rm -f optimus-job-$A >/dev/null"
plan_run removed --format json --version "$A"
plan_expect_rc removed 2
plan_expect removed "H$N create optimus-job-$A - container_missing"
echo "removed by hand: create"

# ---- the accessory's image tag changed ----
lab_tag 17 17.1 postgres
PC_DB_IMAGE="$LAB_REGISTRY/postgres:17.1" plan_commit "plan_changes: postgres tag" >/dev/null
plan_run db_image --format json --version "$A"
plan_expect_rc db_image 2
plan_expect db_image "H$N create optimus-job-$A - container_missing
H1 replace_stop_first optimus-db optimus-db image_ref_changed disruptive"
echo "accessory image tag: replace stop-first, disruptive"

# ---- the accessory's env changed ----
PC_DB_ENV="POSTGRES_DB: optimus" plan_commit "plan_changes: postgres env" >/dev/null
plan_run db_env --format json --version "$A"
plan_expect_rc db_env 2
plan_expect db_env "H$N create optimus-job-$A - container_missing
H1 replace_stop_first optimus-db optimus-db env_added:POSTGRES_DB disruptive"
echo "accessory env: replace stop-first, disruptive"

# ---- the tag is not in the registry yet ----
D=$(plan_commit "plan_changes: not pushed yet")
SIM_TAG=v1 SIM_CMD=bin/jobs SIM_ENV=$'SOLID_QUEUE_IN_PUMA=false\nWEB_CONCURRENCY=2\nJOB_CONCURRENCY=3\nDB_HOST='"$H1" \
	SIM_SECRETS="RAILS_MASTER_KEY=$PC_MASTER_KEY" SIM_VOLUMES="optimus_storage:/rails/storage" \
	$SIM app "$N" job "$A" >/dev/null
plan_run not_pushed --format json
plan_expect_rc not_pushed 2
plan_expect not_pushed "$(web_steps replace "$D" "$A" image_not_in_registry switch)
H$N replace optimus-job-$D optimus-job-$A image_not_in_registry"
plan_run not_pushed_text
grep -q "not in the registry yet" "$T/not_pushed_text.out" || fail "not pushed: no words for it"
echo "tag not in the registry: replaced, cause image_not_in_registry"
echo "plan_changes: ok"

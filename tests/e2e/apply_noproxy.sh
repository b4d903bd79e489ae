#!/usr/bin/env bash
# `plumb apply` and `plumb rollback` on real hosts without kamal-proxy (web
# with `proxy: false`), so that a clone without ../shared (no kamal-proxy
# image) still deploys for real:
#   - from empty hosts: Postgres, web and job run, answering with their
#     version; env files 0600 with the secrets; `plan` exits 0 after;
#   - a second apply: nothing to do, no container id changes;
#   - a commit that changes only the job's env: web containers renamed (same
#     id), job replaced;
#   - v1 -> v2: web answers v2, Postgres untouched;
#   - rollback to v1: the retained v1 container is started again (same id
#     as before), no pull.
# No secret in any output nor in any process's argv (apply_lib.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh" --no-proxy
# ids HOST: "name id" of the service's running containers on lab host HOST
ids() { lab_on_host "$1" 'docker ps --filter label=service=optimus --format "{{.Names}} {{.ID}}" | sort'; }
# answer HOST ROLE: what the role's running container answers on its own address
answer() {
	local ip
	ip=$(lab_on_host "$1" "docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \$(docker ps -q --filter label=service=optimus --filter label=role=$2)")
	lab_on_host "$1" "curl -s --max-time 5 http://$ip/"
}
# web_answers VERSION: web answers VERSION on every web host
web_answers() {
	local i
	for ((i = 1; i < N; i++)); do
		[ "$(answer "$i" web)" = "$1" ] || fail "web on host $i does not answer $1"
	done
}

A=$(apply_commit v1 "apply_noproxy: v1")
apply_run first apply --trusted --yes
apply_expect_rc first 0
web_answers v1
[ "$(lab_on_host 1 'stat -c %a .kamal/apps/optimus/env/roles/web.env')" = 600 ] || fail "env file mode"
lab_on_host 1 'grep -q "^RAILS_MASTER_KEY=" .kamal/apps/optimus/env/roles/web.env' || fail "env file lacks the secret"
lab_on_host 1 'docker ps --format "{{.Names}}" | grep -qx optimus-db' || fail "optimus-db is not running"
if lab_on_host 1 'docker ps --format "{{.Names}}" | grep -q kamal-proxy'; then fail "kamal-proxy runs without a proxied role"; fi
plan_run after_first
plan_expect_rc after_first 0

before=$(ids 1)
apply_run noop apply --trusted --yes
apply_expect_rc noop 0
grep -q "^Nothing to do" "$T/noop.out" || fail "noop: not 'Nothing to do'"
[ "$(ids 1)" = "$before" ] || fail "noop changed containers"

# only the job's env changes: web renamed in place, job replaced
web_id=$(lab_on_host 1 "docker inspect --format '{{.Id}}' optimus-web-$A")
job_id=$(lab_on_host "$N" "docker inspect --format '{{.Id}}' optimus-job-$A")
B=$(PC_JOB_ENV="QUEUE: two" apply_commit v1 "apply_noproxy: job env")
apply_run jobenv apply --trusted --yes
apply_expect_rc jobenv 0
[ "$(lab_on_host 1 "docker inspect --format '{{.Id}}' optimus-web-$B")" = "$web_id" ] || fail "web was not renamed in place"
new_job=$(lab_on_host "$N" "docker inspect --format '{{.Id}}' optimus-job-$B")
[ "$new_job" != "$job_id" ] || fail "the job was not replaced"
plan_run after_jobenv
plan_expect_rc after_jobenv 0

db=$(apply_db_id)
C=$(PC_JOB_ENV="QUEUE: two" apply_commit v2 "apply_noproxy: v2")
apply_run roll apply --trusted --yes
apply_expect_rc roll 0
web_answers v2
[ "$(apply_db_id)" = "$db" ] || fail "Postgres was touched"
[ "$(lab_on_host 1 'docker ps -q --filter label=service=optimus --filter label=role=web | wc -l')" = 1 ] || fail "more than one web container runs"

apply_run rollback rollback "$B" --trusted --yes
apply_expect_rc rollback 0
[ "$(answer 1 web)" = v1 ] || fail "rollback: web does not answer v1"
[ "$(lab_on_host 1 "docker inspect --format '{{.Id}}' optimus-web-$B")" = "$web_id" ] || fail "rollback did not reuse the retained container"
if grep -q "pulled" "$T/rollback.out"; then fail "rollback pulled an image"; fi
echo "apply_noproxy: ok"

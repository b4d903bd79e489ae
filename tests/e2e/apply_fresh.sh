#!/usr/bin/env bash
# Acceptance (issue 9): from empty hosts `plumb apply` brings up Postgres, web
# behind kamal-proxy on every web host and the job role; every web host
# answers with the version through the proxy; psql works with the configured
# password; the env files are 0600 and hold the secrets. Then `plan` exits 0
# and a second apply is a no-op: no container id changes, no lock taken.
# No secret in any output nor in any process's argv (apply_lib.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

apply_first apply_fresh
for ((i = 1; i < N; i++)); do
	[ -n "$(apply_id "$i" kamal-proxy)" ] || fail "host $i: kamal-proxy is not running"
	[ -n "$(apply_id "$i" "optimus-web-$A")" ] || fail "host $i: web is not running"
	mode=$(lab_on_host "$i" 'stat -c %a .kamal/apps/optimus/env/roles/web.env')
	[ "$mode" = 600 ] || fail "host $i: web env file mode $mode"
	lab_on_host "$i" "grep -qx 'RAILS_MASTER_KEY=$PC_MASTER_KEY' .kamal/apps/optimus/env/roles/web.env" || fail "host $i: web env lacks the secret"
done
[ -n "$(apply_id "$N" "optimus-job-$A")" ] || fail "the job is not running"
lab_on_host "$N" "grep -qx 'RAILS_MASTER_KEY=$PC_MASTER_KEY' .kamal/apps/optimus/env/roles/job.env" || fail "job env lacks the secret"
[ "$(lab_on_host "$N" 'stat -c %a .kamal/apps/optimus/env/roles/job.env')" = 600 ] || fail "job env file mode"
[ -n "$(apply_id 1 optimus-db)" ] || fail "optimus-db is not running"
[ "$(lab_on_host 1 'stat -c %a .kamal/apps/optimus/env/accessories/db.env')" = 600 ] || fail "db env file mode"
apply_db_ready
got=$(apply_psql 'select 40+2')
[ "$got" = 42 ] || fail "psql with the configured password: '$got'"
if PGPASSWORD=wrong psql -h "$H1" -U postgres -Atqc 'select 1' >/dev/null 2>&1; then fail "psql accepts a wrong password"; fi
apply_no_lock first

plan_run after_first
plan_expect_rc after_first 0

apply_ids "$T/ids.before"
lab_on_host 1 'wc -l < .kamal/optimus-audit.log' >"$T/audit.before"
apply_run noop apply --trusted --yes
apply_expect_rc noop 0
grep -q "^Nothing to do" "$T/noop.out" || { apply_show noop; fail "noop: not 'Nothing to do'"; }
apply_ids "$T/ids.after"
cmp -s "$T/ids.before" "$T/ids.after" || { diff "$T/ids.before" "$T/ids.after" >&2; fail "noop: a container changed"; }
# no lock taken: Kamal's lock writes an audit line ("Acquired the deploy lock"), none appeared
lab_on_host 1 'wc -l < .kamal/optimus-audit.log' >"$T/audit.after"
cmp -s "$T/audit.before" "$T/audit.after" || fail "noop: the audit log grew (the lock was taken?)"
apply_no_lock noop
apply_answers v1
echo "apply_fresh: ok"

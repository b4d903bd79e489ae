#!/usr/bin/env bash
# End-to-end smoke test of `plumb apply` and `plumb rollback` on the lab's
# optimus (plan_lib.sh), with the real kamal-proxy image:
#   - from empty hosts: Postgres, kamal-proxy + web on the web hosts, job;
#     every web host answers with the version through the proxy; env files
#     are 0600; then `plan` exits 0 and a second apply does nothing;
#   - v1 -> v2: web hosts answer v2, the Postgres container is the same;
#   - a broken image (/up fails): exit 1, v2 still answers, no bad container
#     left running, the lock released;
#   - rollback: v1 answers again, without a pull.
# No secret value appears in any output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
trap 'plan_clean; if [ -n "${APPLY_KEEP:-}" ]; then cp -r "$T" "$APPLY_KEEP"; fi; rm -rf "$T"' EXIT
plan_clean
if ! curl -sf -o /dev/null -H "Accept: $LAB_MANIFEST_TYPE" \
	"http://$LAB_REGISTRY/v2/kamal-proxy/manifests/v0.9.2"; then
	echo "SKIP: the lab has no kamal-proxy image (../shared/kamal-proxy is absent)"
	exit 0
fi
export PC_ROOT_EXTRA
PC_ROOT_EXTRA=$(printf 'proxy:\n  run:\n    registry: %s\n    repository: kamal-proxy\n    version: v0.9.2\ndeploy_timeout: 10\nreadiness_delay: 0\n' "$LAB_REGISTRY")

# apply_run NAME ARGS...: plumb ARGS in the work clone; $T/NAME.{out,err}, RC.
apply_run() {
	local name=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	set +e
	(cd "$LAB_GIT_WORK" && "$PLUMB" "$@") >"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	set -e
	t1=$(date +%s.%N)
	echo "$name: exit $RC in $(echo "$t1 - $t0" | bc)s ($*)"
	plan_no_secret "$name" "$PC_MASTER_KEY" "$PC_DB_PASSWORD" lab-registry-password
}
show() { cat "$T/$1.out" "$T/$1.err" >&2; }
expect_rc() { [ "$RC" -eq "$2" ] || { show "$1"; fail "$1: exit $RC, want $2"; }; }

# answers VERSION: every web host answers VERSION through kamal-proxy
answers() {
	local i got
	for ((i = 1; i < N; i++)); do
		got=$(curl -s --max-time 5 "http://$(lab__host_ip "$i")/" || true)
		[ "$got" = "$1" ] || fail "host $i answers '$got', want '$1'"
	done
}
db_id() { lab_on_host 1 'docker inspect --format "{{.Id}}" optimus-db'; }
no_lock() {
	if lab_on_host 1 'test -d .kamal/lock-optimus'; then fail "$1: the lock is still held"; fi
}

# ---- from empty hosts ----
A=$(plan_commit "apply_smoke: v1")
lab_tag v1 "$A"
apply_run first apply --trusted --yes
expect_rc first 0
grep -q "^apply: converged" "$T/first.out" || { show first; fail "first: no converged line"; }
answers v1
mode=$(lab_on_host 1 'stat -c %a .kamal/apps/optimus/env/roles/web.env')
[ "$mode" = 600 ] || fail "web env file mode $mode"
lab_on_host "$N" 'grep -q "^RAILS_MASTER_KEY=" .kamal/apps/optimus/env/roles/job.env' || fail "job env file lacks the secret"
lab_on_host 1 'docker ps --format "{{.Names}}" | grep -qx optimus-db' || fail "optimus-db is not running"
lab_on_host "$N" "docker ps --format '{{.Names}}' | grep -qx optimus-job-$A" || fail "the job is not running"
no_lock first
grep -q "Booted app version $A" <(lab_on_host 1 'cat .kamal/optimus-audit.log') || fail "no audit line"
plan_run after_first
plan_expect_rc after_first 0
DB1=$(db_id)

# ---- a second apply: nothing to do, no lock ----
apply_run noop apply --trusted --yes
expect_rc noop 0
grep -q "^Nothing to do" "$T/noop.out" || { show noop; fail "noop: not 'Nothing to do'"; }

# ---- without a terminal and without --yes: refused ----
B=$(PC_CLEAR_EXTRA="FEATURE: two" plan_commit "apply_smoke: v2")
lab_tag v2 "$B"
apply_run noyes apply --trusted </dev/null
expect_rc noyes 1
answers v1

# ---- v1 -> v2 ----
apply_run roll apply --trusted --yes
expect_rc roll 0
answers v2
[ "$(db_id)" = "$DB1" ] || fail "roll: the Postgres container changed"
plan_run after_roll
plan_expect_rc after_roll 0
grep "commands" "$T/roll.out" | sed 's/^/  /'

# ---- a broken image ----
C=$(PC_CLEAR_EXTRA="FEATURE: three" plan_commit "apply_smoke: bad")
lab_tag bad "$C"
apply_run broken apply --trusted --yes
expect_rc broken 1
answers v2
if lab_on_host 1 "docker ps --format '{{.Names}}' | grep -qx optimus-web-$C"; then fail "broken: the bad container runs"; fi
grep -qi "not done\|FAILED" "$T/broken.out" || { show broken; fail "broken: no summary"; }
no_lock broken

# ---- rollback to v1 ----
apply_run rollback rollback "$A" --trusted --yes
expect_rc rollback 0
answers v1
if grep -q "pulled" "$T/rollback.out"; then fail "rollback pulled an image"; fi
echo "apply_smoke: ok"

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
# The work clone is shared with the tests that follow: its hooks are put back as they were.
restore_hooks() {
	lab_commit "apply_smoke: hooks restored" bash -c 'rm -rf .kamal/hooks; if [ -d "$0" ]; then cp -a "$0" .kamal/hooks; fi' "$T/hooks.orig" >/dev/null || true
}
trap 'restore_hooks; plan_clean; if [ -n "${APPLY_KEEP:-}" ]; then cp -r "$T" "$APPLY_KEEP"; fi; rm -rf "$T"' EXIT
plan_clean
if [ -d "$LAB_GIT_WORK/.kamal/hooks" ]; then cp -a "$LAB_GIT_WORK/.kamal/hooks" "$T/hooks.orig"; fi
if ! curl -sf -o /dev/null -H "Accept: $LAB_MANIFEST_TYPE" \
	"http://$LAB_REGISTRY/v2/kamal-proxy/manifests/v0.9.2"; then
	echo "SKIP: the lab has no kamal-proxy image (../shared/kamal-proxy is absent)"
	exit 77
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
lab_commit "apply_smoke: no hooks yet" "rm -rf .kamal/hooks" >/dev/null
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
grep -q "\] \[web\] Booted app version $A$" <(lab_on_host 1 'cat .kamal/optimus-audit.log') || fail "no audit line"
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
export PC_CLEAR_EXTRA="FEATURE: two"
apply_run noyes apply --trusted </dev/null
expect_rc noyes 1
answers v1

# ---- a failing pre-deploy hook: nothing changed, the lock released ----
printf '#!/bin/sh\necho gate closed >&2\nexit 1\n' >"$T/gate.sh"
B=$(lab_commit "apply_smoke: a failing hook" bash -c 'mkdir -p .kamal/hooks && cp "$0" .kamal/hooks/pre-deploy && chmod +x .kamal/hooks/pre-deploy' "$T/gate.sh")
lab_tag v2 "$B"
apply_run hookfail apply --trusted --yes
expect_rc hookfail 1
grep -q "gate closed" "$T/hookfail.err" || { show hookfail; fail "hookfail: the hook's output is not shown"; }
answers v1
no_lock hookfail
# untrusted: a hook is there, so apply refuses (unless --skip-hooks)
apply_run untrusted apply --untrusted --yes
expect_rc untrusted 1
answers v1

# ---- v1 -> v2 under load, the hooks recording what Kamal gives them ----
cat >"$T/hook.sh" <<EOF
#!/bin/sh
echo "\$0 \$KAMAL_COMMAND \$KAMAL_VERSION \$KAMAL_LOCK" >>$T/hooks.log
EOF
B=$(lab_commit "apply_smoke: recording hooks" bash -c 'for h in pre-connect pre-deploy pre-app-boot post-app-boot post-deploy; do cp "$0" .kamal/hooks/$h && chmod +x .kamal/hooks/$h; done' "$T/hook.sh")
lab_tag v2 "$B"
: >"$T/load.log"
touch "$T/load.on"
(
	end=$(($(date +%s) + 60))
	while [ -f "$T/load.on" ] && [ "$(date +%s)" -lt "$end" ]; do
		for ((i = 1; i < N; i++)); do
			# the page is the version and a newline
			r=$(curl -s --max-time 2 "http://$(lab__host_ip "$i")/" 2>&1) || r="FAILED host $i: $r"
			printf '%s\n' "$r" >>"$T/load.log"
		done
	done
) &
LOAD=$!
sleep 0.5
apply_run roll apply --trusted --yes
rm -f "$T/load.on"
wait "$LOAD"
expect_rc roll 0
answers v2
reqs=$(wc -l <"$T/load.log")
bad=$(grep -vc '^v[12]$' "$T/load.log" || true)
echo "roll under load: $reqs requests, $bad failed"
[ "$bad" -eq 0 ] || { grep -v '^v[12]$' "$T/load.log" | sort | uniq -c >&2; fail "roll: $bad failed requests"; }
grep -q "^v2$" "$T/load.log" || fail "roll: the load never saw v2"
for h in pre-connect pre-deploy pre-app-boot post-app-boot post-deploy; do
	grep -q "/$h deploy $B" "$T/hooks.log" || { cat "$T/hooks.log" >&2; fail "hook $h did not run with KAMAL_VERSION"; }
done
grep -q "/pre-deploy deploy $B true" "$T/hooks.log" || fail "pre-deploy: KAMAL_LOCK is not true"
[ "$(db_id)" = "$DB1" ] || fail "roll: the Postgres container changed"
plan_run after_roll
plan_expect_rc after_roll 0
grep "commands" "$T/roll.out" | sed 's/^/  /'

# ---- the same image at a new version: renamed, not restarted ----
E=$(lab_commit "apply_smoke: the same image, a new version")
lab_tag v2 "$E"
WEB1=$(lab_on_host 1 "docker inspect --format '{{.Id}}' optimus-web-$B")
apply_run rename apply --trusted --yes
expect_rc rename 0
grep -q "rename optimus-web-$B -> optimus-web-$E done" "$T/rename.out" || { show rename; fail "rename: no rename step"; }
[ "$(lab_on_host 1 "docker inspect --format '{{.Id}}' optimus-web-$E")" = "$WEB1" ] || fail "rename: the web container changed"
answers v2
plan_run after_rename
plan_expect_rc after_rename 0

# ---- a broken image ----
C=$(PC_CLEAR_EXTRA="FEATURE: three" plan_commit "apply_smoke: bad")
lab_tag bad "$C"
apply_run broken apply --trusted --yes
expect_rc broken 1
answers v2
if lab_on_host 1 "docker ps --format '{{.Names}}' | grep -qx optimus-web-$C"; then fail "broken: the bad container runs"; fi
grep -qi "not done\|FAILED" "$T/broken.out" || { show broken; fail "broken: no summary"; }
no_lock broken

# ---- SIGINT in the middle of a rollout: it stops, the lock is released ----
(cd "$LAB_GIT_WORK" && exec "$PLUMB" apply --trusted --yes) >"$T/sigint.out" 2>"$T/sigint.err" &
P=$!
for _ in $(seq 1 50); do lab_on_host 1 'test -d .kamal/lock-optimus' && break; sleep 0.1; done
sleep 1
kill -INT "$P"
set +e
wait "$P"
RC=$?
set -e
echo "sigint: exit $RC"
[ "$RC" -eq 1 ] || { show sigint; fail "sigint: exit $RC, want 1"; }
grep -q "interrupted" "$T/sigint.err" || { show sigint; fail "sigint: not reported"; }
no_lock sigint
answers v2

# ---- rollback to v1 ----
apply_run rollback rollback "$A" --trusted --yes
expect_rc rollback 0
answers v1
if grep -q "pulled" "$T/rollback.out"; then fail "rollback pulled an image"; fi

# ---- the lock held: refused, nothing changed ----
D=$(PC_DB_ENV="PGTZ: UTC" plan_commit "apply_smoke: a Postgres option")
lab_tag v2 "$D"
(cd "$LAB_GIT_WORK" && "$PLUMB" lock acquire -m "held by apply_smoke" --trusted) >/dev/null 2>&1 || fail "plumb lock acquire failed"
DB1=$(db_id)
apply_run locked apply --trusted --yes
expect_rc locked 1
grep -q "held by apply_smoke" "$T/locked.err" || { show locked; fail "locked: the holder is not named"; }
[ "$(db_id)" = "$DB1" ] || fail "locked: the Postgres container changed"
answers v1
(cd "$LAB_GIT_WORK" && "$PLUMB" lock release --trusted) >/dev/null 2>&1 || fail "plumb lock release failed"

# ---- a changed Postgres option: stop-first, snapshot, the data kept ----
psql_db() { PGPASSWORD=$PC_DB_PASSWORD psql -h "$H1" -U postgres -v ON_ERROR_STOP=1 -Atqc "$1"; }
for _ in $(seq 1 50); do psql_db 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql_db "create table kept(v text); insert into kept values ('survives')" || fail "psql write failed"
apply_run acc apply --trusted --yes
expect_rc acc 0
grep -q "snapshot: .*/.kamal/snapshots/optimus-db/" "$T/acc.out" || { show acc; fail "acc: no snapshot path printed"; }
[ "$(db_id)" != "$DB1" ] || fail "acc: Postgres was not replaced"
got=""
for _ in $(seq 1 50); do got=$(psql_db 'select v from kept' 2>/dev/null) && break; sleep 0.2; done
[ "$got" = survives ] || fail "acc: the row is gone ('$got')"
lab_on_host 1 'ls -d .kamal/snapshots/optimus-db/*/1-data/PG_VERSION' >/dev/null || fail "acc: the snapshot holds no data"
answers v2

# ---- rollback without a version: the one that ran before ----
apply_run rollback2 rollback --trusted --yes
expect_rc rollback2 0
answers v1
echo "apply_smoke: ok"

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
# (The work clone's hooks go back to the example's after it: plan_clean.)
. "$(dirname "$0")/apply_lib.sh"

# ---- from empty hosts ----
lab_commit "apply_smoke: no hooks yet" "rm -rf .kamal/hooks" >/dev/null
apply_first apply_smoke
grep -q "^apply: converged" "$T/first.out" || { apply_show first; fail "first: no converged line"; }
mode=$(lab_on_host 1 'stat -c %a .kamal/apps/optimus/env/roles/web.env')
[ "$mode" = 600 ] || fail "web env file mode $mode"
lab_on_host "$N" 'grep -q "^RAILS_MASTER_KEY=" .kamal/apps/optimus/env/roles/job.env' || fail "job env file lacks the secret"
lab_on_host 1 'docker ps --format "{{.Names}}" | grep -qx optimus-db' || fail "optimus-db is not running"
lab_on_host "$N" "docker ps --format '{{.Names}}' | grep -qx optimus-job-$A" || fail "the job is not running"
apply_no_lock first
grep -q "\] \[web\] Booted app version $A$" <(lab_on_host 1 'cat .kamal/optimus-audit.log') || fail "no audit line"
plan_run after_first
plan_expect_rc after_first 0
DB1=$(apply_db_id)

# ---- a second apply: nothing to do, no lock ----
apply_run noop apply --trusted --yes
apply_expect_rc noop 0
grep -q "^Nothing to do" "$T/noop.out" || { apply_show noop; fail "noop: not 'Nothing to do'"; }

# ---- without a terminal and without --yes: refused ----
B=$(PC_CLEAR_EXTRA="FEATURE: two" apply_commit v2 "apply_smoke: v2")
export PC_CLEAR_EXTRA="FEATURE: two"
apply_run noyes apply --trusted </dev/null
apply_expect_rc noyes 1
apply_answers v1

# ---- a failing pre-deploy hook: nothing changed, the lock released ----
printf '#!/bin/sh\necho gate closed >&2\nexit 1\n' >"$T/gate.sh"
B=$(lab_commit "apply_smoke: a failing hook" bash -c 'mkdir -p .kamal/hooks && cp "$0" .kamal/hooks/pre-deploy && chmod +x .kamal/hooks/pre-deploy' "$T/gate.sh")
lab_tag v2 "$B"
apply_run hookfail apply --trusted --yes
apply_expect_rc hookfail 1
grep -q "gate closed" "$T/hookfail.err" || { apply_show hookfail; fail "hookfail: the hook's output is not shown"; }
apply_answers v1
apply_no_lock hookfail
# untrusted: a hook is there, so apply refuses (unless --skip-hooks)
apply_run untrusted apply --untrusted --yes
apply_expect_rc untrusted 1
apply_answers v1

# ---- v1 -> v2 under load, the hooks recording what Kamal gives them ----
cat >"$T/hook.sh" <<EOF
#!/bin/sh
echo "\$0 \$KAMAL_COMMAND \$KAMAL_VERSION \$KAMAL_LOCK" >>$T/hooks.log
EOF
B=$(lab_commit "apply_smoke: recording hooks" bash -c 'for h in pre-connect pre-deploy pre-app-boot post-app-boot post-deploy; do cp "$0" .kamal/hooks/$h && chmod +x .kamal/hooks/$h; done' "$T/hook.sh")
lab_tag v2 "$B"
apply_run_loaded roll 'v1|v2' apply --trusted --yes
apply_expect_rc roll 0
apply_answers v2
apply_load_switched roll v1 v2
for h in pre-connect pre-deploy pre-app-boot post-app-boot post-deploy; do
	grep -q "/$h deploy $B" "$T/hooks.log" || { cat "$T/hooks.log" >&2; fail "hook $h did not run with KAMAL_VERSION"; }
done
grep -q "/pre-deploy deploy $B true" "$T/hooks.log" || fail "pre-deploy: KAMAL_LOCK is not true"
[ "$(apply_db_id)" = "$DB1" ] || fail "roll: the Postgres container changed"
plan_run after_roll
plan_expect_rc after_roll 0
grep "commands" "$T/roll.out" | sed 's/^/  /'

# ---- the same image at a new version: renamed, not restarted ----
E=$(lab_commit "apply_smoke: the same image, a new version")
lab_tag v2 "$E"
WEB1=$(lab_on_host 1 "docker inspect --format '{{.Id}}' optimus-web-$B")
apply_run rename apply --trusted --yes
apply_expect_rc rename 0
grep -q "rename optimus-web-$B -> optimus-web-$E done" "$T/rename.out" || { apply_show rename; fail "rename: no rename step"; }
[ "$(lab_on_host 1 "docker inspect --format '{{.Id}}' optimus-web-$E")" = "$WEB1" ] || fail "rename: the web container changed"
apply_answers v2
plan_run after_rename
plan_expect_rc after_rename 0

# ---- a broken image ----
C=$(PC_CLEAR_EXTRA="FEATURE: three" apply_commit bad "apply_smoke: bad")
apply_run broken apply --trusted --yes
apply_expect_rc broken 1
apply_answers v2
if lab_on_host 1 "docker ps --format '{{.Names}}' | grep -qx optimus-web-$C"; then fail "broken: the bad container runs"; fi
grep -qi "not done\|FAILED" "$T/broken.out" || { apply_show broken; fail "broken: no summary"; }
apply_no_lock broken

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
[ "$RC" -eq 1 ] || { apply_show sigint; fail "sigint: exit $RC, want 1"; }
grep -q "interrupted" "$T/sigint.err" || { apply_show sigint; fail "sigint: not reported"; }
apply_no_lock sigint
apply_answers v2

# ---- rollback to v1 ----
apply_run rollback rollback "$A" --trusted --yes
apply_expect_rc rollback 0
apply_answers v1
if grep -q "pulled" "$T/rollback.out"; then fail "rollback pulled an image"; fi

# ---- the lock held: refused, nothing changed ----
D=$(PC_DB_ENV="PGTZ: UTC" apply_commit v2 "apply_smoke: a Postgres option")
(cd "$LAB_GIT_WORK" && "$PLUMB" lock acquire -m "held by apply_smoke" --trusted) >/dev/null 2>&1 || fail "plumb lock acquire failed"
DB1=$(apply_db_id)
apply_run locked apply --trusted --yes
apply_expect_rc locked 1
grep -q "held by apply_smoke" "$T/locked.err" || { apply_show locked; fail "locked: the holder is not named"; }
[ "$(apply_db_id)" = "$DB1" ] || fail "locked: the Postgres container changed"
apply_answers v1
(cd "$LAB_GIT_WORK" && "$PLUMB" lock release --trusted) >/dev/null 2>&1 || fail "plumb lock release failed"

# ---- a changed Postgres option: stop-first, snapshot, the data kept ----
apply_db_keep
apply_run acc apply --trusted --yes
apply_expect_rc acc 0
grep -q "snapshot: .*/.kamal/snapshots/optimus-db/" "$T/acc.out" || { apply_show acc; fail "acc: no snapshot path printed"; }
[ "$(apply_db_id)" != "$DB1" ] || fail "acc: Postgres was not replaced"
apply_db_kept acc
lab_on_host 1 'ls -d .kamal/snapshots/optimus-db/*/1-data/PG_VERSION' >/dev/null || fail "acc: the snapshot holds no data"
apply_answers v2

# ---- rollback without a version: the one that ran before ----
apply_run rollback2 rollback --trusted --yes
apply_expect_rc rollback2 0
apply_answers v1
echo "apply_smoke: ok"

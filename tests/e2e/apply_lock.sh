#!/usr/bin/env bash
# Acceptance (issue 9): the lock.
#   - a Kamal-format lock written by hand (BEHAVIOUR.md: mkdir
#     .kamal/lock-optimus + details in base64) -> apply refused, naming the
#     holder, nothing changed on any host;
#   - a failed apply (the broken image) releases the lock;
#   - kill -9 during a rollout: the lock is reported as stale (this machine, a
#     dead pid), apply is refused until `plumb lock release`, then apply
#     converges: one running container per role per host, no duplicate
#     names, the Postgres data intact.
# No secret in any output nor in any process's argv (apply_lib.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"
apply_setup

A=$(plan_commit "apply_lock: v1")
lab_tag v1 "$A"
apply_run first apply --trusted --yes
apply_expect_rc first 0
psql_db() { PGPASSWORD=$PC_DB_PASSWORD psql -h "$H1" -U postgres -v ON_ERROR_STOP=1 -Atqc "$1"; }
for _ in $(seq 1 50); do psql_db 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql_db "create table kept(v text); insert into kept values ('survives')" || fail "psql write failed"

# ---- a lock written by hand as Kamal writes it ----
export PC_CLEAR_EXTRA="FEATURE: two"
B=$(plan_commit "apply_lock: v2")
lab_tag v2 "$B"
details=$(printf 'Locked by: Kamal Operator at 2026-01-01T00:00:00Z\nVersion: %s\nMessage: hand-made maintenance lock' "$A" | base64 -w0)
lab_on_host 1 "mkdir -p .kamal && mkdir .kamal/lock-optimus && echo $details > .kamal/lock-optimus/details"
apply_ids "$T/ids.before"
apply_run locked apply --trusted --yes
apply_expect_rc locked 1
grep -q "Kamal Operator" "$T/locked.out" "$T/locked.err" || { apply_show locked; fail "locked: the holder is not named"; }
apply_ids "$T/ids.after"
cmp -s "$T/ids.before" "$T/ids.after" || fail "locked: a container changed"
apply_answers v1
lab_on_host 1 'test -f .kamal/lock-optimus/details' || fail "locked: the other's lock was removed"
apply_run status lock status --trusted
grep -q "hand-made maintenance lock" "$T/status.out" || { apply_show status; fail "status: the message is not shown"; }
apply_run release lock release --trusted
apply_expect_rc release 0
apply_no_lock release

# ---- a failed apply releases the lock ----
export PC_CLEAR_EXTRA="FEATURE: bad"
C=$(plan_commit "apply_lock: broken")
lab_tag bad "$C"
apply_run broken apply --trusted --yes
apply_expect_rc broken 1
apply_no_lock broken
apply_answers v1

# ---- kill -9 in the middle of a rollout ----
export PC_CLEAR_EXTRA="FEATURE: two"
D=$(plan_commit "apply_lock: v2 again")
lab_tag v2 "$D"
(cd "$LAB_GIT_WORK" && exec "$PLUMB" apply --trusted --yes) >"$T/killed.out" 2>"$T/killed.err" &
P=$!
# kill it once a new web container exists (the rollout is under way)
for _ in $(seq 1 200); do
	lab_on_host 1 "docker ps -a --format '{{.Names}}'" | grep -q "optimus-web-$D" && break
	sleep 0.05
done
kill -9 "$P"
wait "$P" || true
lab_on_host 1 'test -d .kamal/lock-optimus' || fail "killed: no lock left behind (killed too late?)"
apply_run stale lock status --trusted
grep -qi "stale" "$T/stale.out" "$T/stale.err" || { apply_show stale; fail "stale: the dead holder is not reported as stale"; }
apply_run refused apply --trusted --yes
apply_expect_rc refused 1
grep -qi "stale" "$T/refused.out" "$T/refused.err" || { apply_show refused; fail "refused: no word of the stale lock"; }
apply_run release2 lock release --trusted
apply_expect_rc release2 0
apply_run again apply --trusted --yes
apply_expect_rc again 0
apply_answers v2
apply_no_lock again
for ((i = 1; i <= N; i++)); do
	names=$(lab_on_host "$i" "docker ps --format '{{.Names}}'")
	for role in web job; do
		c=$(grep -c "^optimus-$role-" <<<"$names" || true)
		want=0
		if { [ "$role" = web ] && [ "$i" -lt "$N" ]; } || { [ "$role" = job ] && [ "$i" -eq "$N" ]; }; then want=1; fi
		[ "$c" = "$want" ] || fail "host $i: $c running $role containers, want $want"
	done
done
got=$(psql_db 'select v from kept' 2>/dev/null || true)
[ "$got" = survives ] || fail "killed: the row is gone ('$got')"
plan_run after
plan_expect_rc after 0
echo "apply_lock: ok"

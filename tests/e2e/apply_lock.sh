#!/usr/bin/env bash
# `plumb apply` and the deploy lock (issue 9, acceptance):
#   - a Kamal-format lock written by hand on the primary host (mkdir
#     .kamal/lock-optimus + details = base64 of "Locked by: … / Version: … /
#     Message: …") → apply refused, exit 1, naming the holder, no container
#     changed; the lock removed → apply works;
#   - a failed apply (the broken image) leaves no lock;
#   - kill -9 of plumb during a rollout (once the new container exists) →
#     `plumb lock status` reports a stale plumb lock, `plumb lock release`
#     clears it, `plumb apply --yes` converges: one running container per role
#     per host, no duplicates, `plan` exits 0, the Postgres row intact.
# No secret in any output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

# containers: every container (id, name, state) on every host
containers() {
	local i
	for ((i = 1; i <= N; i++)); do
		lab_on_host "$i" "docker ps -a --format '{{.ID}} {{.Names}} {{.State}}'" | sed "s/^/$i /"
	done | sort
}
# converged VERSION_TAG: one running container per role per host, of VERSION_TAG's
# commit, no other optimus app container left running, no duplicate names
converged() {
	local i n
	for ((i = 1; i < N; i++)); do
		n=$(lab_on_host "$i" "docker ps --format '{{.Names}}' | grep -c '^optimus-web-' || true")
		[ "$n" -eq 1 ] || fail "$2: $n running web containers on host $i"
		lab_on_host "$i" "docker ps --format '{{.Names}}' | grep -qx 'optimus-web-$1'" || fail "$2: host $i does not run optimus-web-$1"
		n=$(lab_on_host "$i" "docker ps --format '{{.Names}}' | grep -c '^kamal-proxy\$' || true")
		[ "$n" -eq 1 ] || fail "$2: $n kamal-proxy containers on host $i"
	done
	n=$(lab_on_host "$N" "docker ps --format '{{.Names}}' | grep -c '^optimus-job-' || true")
	[ "$n" -eq 1 ] || fail "$2: $n running job containers on host $N"
	lab_on_host "$N" "docker ps --format '{{.Names}}' | grep -qx 'optimus-job-$1'" || fail "$2: host $N does not run optimus-job-$1"
	n=$(lab_on_host 1 "docker ps -a --format '{{.Names}}' | grep -c '^optimus-db' || true")
	[ "$n" -eq 1 ] || fail "$2: $n optimus-db containers on host 1"
	for ((i = 1; i <= N; i++)); do
		d=$(lab_on_host "$i" "docker ps -a --format '{{.Names}}' | sed 's/_replaced_.*//' | sort | uniq -d")
		[ -z "$d" ] || fail "$2: duplicate containers on host $i: $d"
	done
}

apply_first apply_lock --skip-hooks
apply_db_keep

# ---- a Kamal-format lock taken by hand ----
export PC_CLEAR_EXTRA="FEATURE: two"
B=$(plan_commit "apply_lock: v2")
lab_tag v2 "$B"
details=$(printf 'Locked by: someone at 2026-01-02T03:04:05Z\nVersion: x\nMessage: manual' | base64 -w0)
lab_on_host 1 "mkdir -p .kamal && mkdir .kamal/lock-optimus && echo '$details' > .kamal/lock-optimus/details"
containers >"$T/c.before"
apply_run locked apply --trusted --yes --skip-hooks
apply_expect_rc locked 1
grep -q "someone" "$T/locked.out" "$T/locked.err" || { apply_show locked; fail "locked: the holder is not named"; }
containers >"$T/c.after"
cmp -s "$T/c.before" "$T/c.after" || { diff "$T/c.before" "$T/c.after" >&2; fail "locked: a container changed"; }
lab_on_host 1 'test -f .kamal/lock-optimus/details' || fail "locked: the holder's lock was removed"
apply_answers v1
lab_on_host 1 'rm -f .kamal/lock-optimus/details && rmdir .kamal/lock-optimus'
apply_run unlocked apply --trusted --yes --skip-hooks
apply_expect_rc unlocked 0
apply_answers v2
apply_no_lock unlocked

# ---- a failed apply leaves no lock ----
C=$(PC_CLEAR_EXTRA="FEATURE: three" plan_commit "apply_lock: bad")
lab_tag bad "$C"
apply_run broken apply --trusted --yes --skip-hooks
apply_expect_rc broken 1
apply_no_lock broken
apply_answers v2

# ---- kill -9 during a rollout ----
D=$(PC_CLEAR_EXTRA="FEATURE: four" plan_commit "apply_lock: v1 again")
lab_tag v1 "$D"
(cd "$LAB_GIT_WORK" && exec "$PLUMB" apply --trusted --yes --skip-hooks) >"$T/killed.out" 2>"$T/killed.err" &
pid=$!
seen=
for ((i = 0; i < 300; i++)); do
	if lab_on_host 1 "docker ps -a --format '{{.Names}}' | grep -qx 'optimus-web-$D'"; then seen=1; break; fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" || true
plan_no_secret killed "$PC_MASTER_KEY" "$PC_DB_PASSWORD" lab-registry-password
[ -n "$seen" ] || { apply_show killed; fail "killed: the new container never appeared before plumb ended"; }
echo "killed: plumb killed after optimus-web-$D appeared on host 1"
apply_run stale_status lock status
apply_expect_rc stale_status 0
grep -q "stale" "$T/stale_status.out" || { apply_show stale_status; fail "lock status: no stale plumb lock reported"; }
apply_run stale_release lock release
apply_expect_rc stale_release 0
apply_no_lock stale_release
apply_run recover apply --trusted --yes --skip-hooks
apply_expect_rc recover 0
apply_no_lock recover
apply_answers v1
for ((i = 1; i <= N; i++)); do
	echo "  host $i after recover:"
	lab_on_host "$i" "docker ps --format '{{.Names}} {{.Status}}'" | sed 's/^/    /'
done
converged "$D" recover
plan_run after_recover
plan_expect_rc after_recover 0
apply_db_kept recover
echo "apply_lock: ok"

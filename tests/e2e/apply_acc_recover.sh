#!/usr/bin/env bash
# An accessory's stop-first replacement interrupted by kill -9 (issue 9:
# restartable), set up by hand on host 1 with docker stop/rename/create as
# the interruption leaves it; every time a row written before survives and
# one optimus-db container is left:
#  1. optimus-db stopped and renamed aside, no optimus-db, the config
#     unchanged: the plan restores it; apply renames it back and starts it
#     (the same container), nothing aside is left, plan exits 0 after.
#  2. the same with a changed Postgres option: the plan replaces stop-first
#     from the aside one (never a fresh container beside its data); apply
#     runs the new one on the data, prints a snapshot, removes the aside one.
#  3. optimus-db runs and a stopped copy on the same data lies aside: the
#     plan removes the copy; apply does, optimus-db untouched.
#  4. a real kill -9 of plumb once the old container is set aside during a
#     changed Postgres option's replacement (whatever the host was left
#     with once its commands settle): lock release, apply converges.
# No secret in any output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

ASIDE=optimus-db_replaced_0123456789abcdef
set_aside() { lab_on_host 1 "docker stop optimus-db >/dev/null && docker rename optimus-db $ASIDE"; }
db_names() { lab_on_host 1 "docker ps -a --format '{{.Names}}' | grep '^optimus-db' | sort | tr '\n' ' '"; }
row_kept() {
	apply_db_ready
	v=$(apply_psql "select v from kept") || fail "$1: read failed"
	[ "$v" = survives ] || fail "$1: the row is lost: got '$v'"
}
# converged NAME: one optimus-db, running; the row; plan in sync
converged() {
	[ "$(db_names)" = "optimus-db " ] || fail "$1: optimus-db containers on host 1: $(db_names)"
	lab_on_host 1 'docker inspect --format "{{.State.Running}}" optimus-db' | grep -qx true ||
		fail "$1: optimus-db does not run"
	row_kept "$1"
	plan_run "after_$1"
	plan_expect_rc "after_$1" 0
}

A=$(plan_commit "apply_acc_recover: v1")
lab_tag v1 "$A"
apply_run first apply --trusted --yes --skip-hooks
apply_expect_rc first 0
apply_db_ready
apply_psql "create table kept(v text); insert into kept values ('survives')" || fail "psql write failed"
DB1=$(apply_db_id)

# ---- 1. aside, matching the spec: restored ----
set_aside
plan_run restore --format json
plan_expect_rc restore 2
plan_expect restore "H1 restore optimus-db $ASIDE set_aside:optimus-db,stopped"
apply_run restore apply --trusted --yes --skip-hooks
apply_expect_rc restore 0
grep -q "restore" "$T/restore.out" || { apply_show restore; fail "restore: the plan shown does not say restore"; }
[ "$(apply_db_id)" = "$DB1" ] || fail "restore: optimus-db is not the container set aside"
grep -q "Restored accessory optimus-db" <(lab_on_host 1 'cat .kamal/optimus-audit.log') ||
	fail "restore: no audit line"
converged restore

# ---- 2. aside, the config changed meanwhile: replaced stop-first from it ----
export PC_DB_ENV="PGTZ: UTC"
B=$(plan_commit "apply_acc_recover: db option")
lab_tag v1 "$B"
set_aside
plan_run replace --format json
plan_expect_rc replace 2
plan_steps "$T/replace.out" | grep -qx "H1 replace_stop_first optimus-db $ASIDE not_running,set_aside:optimus-db,env_added:PGTZ" ||
	{ plan_steps "$T/replace.out" >&2; fail "replace: not a stop-first replacement from $ASIDE"; }
apply_run replace apply --trusted --yes --skip-hooks
apply_expect_rc replace 0
[ "$(apply_db_id)" != "$DB1" ] || fail "replace: optimus-db was not replaced"
lab_on_host 1 'docker inspect --format "{{range .Config.Env}}{{println .}}{{end}}" optimus-db' | grep -qx "PGTZ=UTC" ||
	fail "replace: the new container lacks the option"
grep -q 'optimus-db: snapshot: ' "$T/replace.out" "$T/replace.err" || { apply_show replace; fail "replace: no snapshot printed"; }
converged replace
DB2=$(apply_db_id)

# ---- 3. optimus-db runs, a stopped copy on its data lies aside: removed ----
lab_on_host 1 "docker create --name $ASIDE --label service=optimus-db \
	-v \$HOME/optimus-db/data:/var/lib/postgresql/data $LAB_REGISTRY/postgres:17 >/dev/null"
plan_run leftover --format json
plan_expect_rc leftover 2
plan_expect leftover "H1 remove_aside $ASIDE $ASIDE aside_leftover:optimus-db"
apply_run leftover apply --trusted --yes --skip-hooks
apply_expect_rc leftover 0
[ "$(apply_db_id)" = "$DB2" ] || fail "leftover: optimus-db was touched"
converged leftover

# ---- 4. kill -9 in the middle of the replacement ----
export PC_DB_ENV=$'PGTZ: UTC\nPGDATESTYLE: ISO'
C=$(plan_commit "apply_acc_recover: another db option")
lab_tag v1 "$C"
aside_seen() { lab_on_host 1 "docker ps -a --format '{{.Names}}' | grep -q '^optimus-db_replaced_'"; }
(cd "$LAB_GIT_WORK" && exec "$PLUMB" apply --trusted --yes --skip-hooks) >"$T/killed.out" 2>"$T/killed.err" &
pid=$!
seen=
# until the old container is aside (or plumb ended: then the test fails)
until [ -n "$seen" ] || ! kill -0 "$pid" 2>/dev/null; do
	if aside_seen; then seen=1; else sleep 0.1; fi
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" || true
plan_no_secret killed "$PC_MASTER_KEY" "$PC_DB_PASSWORD" lab-registry-password
[ -n "$seen" ] || { apply_show killed; fail "killed: optimus-db was never set aside before plumb ended"; }
# the host may still run what plumb had sent: wait until its containers settle
prev= same=0
for ((i = 0; i < 60 && same < 3; i++)); do
	cur=$(lab_on_host 1 "docker ps -a --format '{{.Names}} {{.State}}' | grep '^optimus-db' | sort | tr '\n' ' '")
	if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
	prev=$cur
	sleep 1
done
echo "  killed: host 1 left with: $prev" | tee "$T/killed.state"
apply_run killed_release lock release
apply_expect_rc killed_release 0
apply_run recover apply --trusted --yes --skip-hooks
apply_expect_rc recover 0
apply_no_lock recover
lab_on_host 1 'docker inspect --format "{{range .Config.Env}}{{println .}}{{end}}" optimus-db' | grep -qx "PGDATESTYLE=ISO" ||
	fail "recover: optimus-db lacks the new option"
converged recover
echo "apply_acc_recover: ok"

#!/usr/bin/env bash
# `plumb apply` of a changed Postgres option (issue 9, acceptance): a row
# written with psql (the configured password, from this machine to host 1)
# before the change is still there after; the replacement is stop-first (a
# new container id, Kamal's audit line), a snapshot path is printed and holds
# a copy of the data directory on the host; the web app still answers.
# A second Postgres (pgvol) keeps its data in a named volume: its change
# prints a snapshot whose copy of the volume holds the data files, and its
# row survives too. Its `files:` (an init script from the repository) are
# uploaded before it boots, mode 755, and Postgres runs the script. No secret
# in any output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

# pgvol_lines ENV_LINE: the volume-backed accessory (port 5433 on host 1)
pgvol_lines() {
	printf 'pgvol:\n  image: %s/postgres:17\n  host: %s\n  port: "5433:5432"\n  env:\n' "$LAB_REGISTRY" "$H1"
	[ -z "$1" ] || printf '    clear:\n      %s\n' "$1"
	printf '    secret:\n      - POSTGRES_PASSWORD\n  volumes:\n    - "pgdata:/var/lib/postgresql/data"\n'
	# an init script from the repository (Kamal's accessory files:)
	printf '  files:\n    - config/pgvol-init.sql:/docker-entrypoint-initdb.d/init.sql\n'
}
# apply_psql / apply_db_ready (apply_lib.sh) on its port (psql reads PGPORT)
psql_vol() { PGPORT=5433 apply_psql "$1"; }
vol_ready() { PGPORT=5433 apply_db_ready; }
PC_ACC_EXTRA=$(pgvol_lines "")

lab_commit "apply_accessory: pgvol's init script" bash -c \
	"mkdir -p config && echo \"create table from_files(v text); insert into from_files values ('uploaded');\" > config/pgvol-init.sql" >/dev/null
apply_first apply_accessory --skip-hooks
apply_db_keep
vol_ready
# its files: were uploaded before it booted (mode 755, as Kamal), and Postgres ran them
[ "$(lab_on_host 1 'stat -c %a optimus-pgvol/docker-entrypoint-initdb.d/init.sql')" = 755 ] ||
	fail "first: pgvol's init script is not on the host with mode 755"
[ "$(psql_vol "select v from from_files")" = uploaded ] || fail "first: pgvol's init script did not run"
psql_vol "create table kept(v text); insert into kept values ('in a volume')" || fail "psql write (pgvol) failed"
DB1=$(apply_db_id)
VOL1=$(lab_on_host 1 'docker inspect --format "{{.Id}}" optimus-pgvol')
WEB1=$(apply_role_ids web)

# ---- a changed Postgres option ----
export PC_DB_ENV="PGTZ: UTC"
PC_ACC_EXTRA=$(pgvol_lines "PGTZ: UTC")
B=$(plan_commit "apply_accessory: db option")
lab_tag v1 "$B"
plan_run change
plan_expect_rc change 2
apply_run change apply --trusted --yes --skip-hooks
apply_expect_rc change 0
DB2=$(apply_db_id)
[ "$DB2" != "$DB1" ] || fail "change: the Postgres container was not replaced"
lab_on_host 1 'docker inspect --format "{{range .Config.Env}}{{println .}}{{end}}" optimus-db' | grep -qx "PGTZ=UTC" ||
	fail "change: the new container lacks the option"
grep -q "Replaced accessory optimus-db (stop-first)" <(lab_on_host 1 'cat .kamal/optimus-audit.log') ||
	fail "change: no stop-first audit line"
snap=$(grep -ho 'optimus-db: snapshot: [^ ]*' "$T/change.out" "$T/change.err" | head -n 1 | sed 's/.*snapshot: //')
[ -n "$snap" ] || { apply_show change; fail "change: no snapshot path printed"; }
echo "  snapshot: $snap"
lab_on_host 1 "test -f '$snap/1-data/PG_VERSION'" || fail "change: the snapshot $snap holds no copy of the data"
# no container left aside
n=$(lab_on_host 1 "docker ps -a --format '{{.Names}}' | grep -c '^optimus-db' || true")
[ "$n" -eq 1 ] || fail "change: $n optimus-db containers on host 1"
apply_db_kept change
# the volume-backed one: replaced, its volume snapshotted, its row kept
[ "$(lab_on_host 1 'docker inspect --format "{{.Id}}" optimus-pgvol')" != "$VOL1" ] ||
	fail "change: optimus-pgvol was not replaced"
vsnap=$(grep -ho 'optimus-pgvol: snapshot: [^ ]*' "$T/change.out" "$T/change.err" | head -n 1 | sed 's/.*snapshot: //')
[ -n "$vsnap" ] || { apply_show change; fail "change: no snapshot path printed for the volume-backed accessory"; }
echo "  snapshot: $vsnap"
# numbered in mount order (the uploaded init script comes first)
vdir=$(lab_on_host 1 "ls -d '$vsnap'/*-pgdata 2>/dev/null | head -n 1")
[ -n "$vdir" ] && lab_on_host 1 "test -f '$vdir/PG_VERSION' && test -d '$vdir/base'" ||
	fail "change: the snapshot $vsnap holds no copy of the volume pgdata"
# the row's data file: the table's relation file is in the copy
rel=$(psql_vol "select pg_relation_filepath('kept')") || fail "change: pgvol read failed"
lab_on_host 1 "test -s '$vdir/$rel'" || fail "change: the snapshot lacks the row's data file $rel"
vol_ready
v=$(psql_vol "select v from kept") || fail "change: pgvol read after the replacement failed"
[ "$v" = "in a volume" ] || fail "change: the volume's row is lost: got '$v'"
apply_answers v1
[ "$(apply_role_ids web)" = "$WEB1" ] || fail "change: the web containers changed"
plan_run after_change
plan_expect_rc after_change 0
echo "apply_accessory: ok"

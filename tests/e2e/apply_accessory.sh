#!/usr/bin/env bash
# `plumb apply` of a changed Postgres option (issue 9, acceptance): a row
# written with psql (the configured password, from this machine to host 1)
# before the change is still there after; the replacement is stop-first (a
# new container id, Kamal's audit line), a snapshot path is printed and holds
# a copy of the data directory on the host; the web app still answers.
# No secret in any output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

A=$(plan_commit "apply_accessory: v1")
lab_tag v1 "$A"
apply_run first apply --trusted --yes --skip-hooks
expect_rc first 0
answers v1
db_ready
psql_db "create table kept(v text); insert into kept values ('survives')" || fail "psql write failed"
DB1=$(db_id)
WEB1=$(role_ids web)

# ---- a changed Postgres option ----
export PC_DB_ENV="PGTZ: UTC"
B=$(plan_commit "apply_accessory: db option")
lab_tag v1 "$B"
plan_run change
plan_expect_rc change 2
apply_run change apply --trusted --yes --skip-hooks
expect_rc change 0
DB2=$(db_id)
[ "$DB2" != "$DB1" ] || fail "change: the Postgres container was not replaced"
lab_on_host 1 'docker inspect --format "{{range .Config.Env}}{{println .}}{{end}}" optimus-db' | grep -qx "PGTZ=UTC" ||
	fail "change: the new container lacks the option"
grep -q "Replaced accessory optimus-db (stop-first)" <(lab_on_host 1 'cat .kamal/optimus-audit.log') ||
	fail "change: no stop-first audit line"
snap=$(grep -o 'snapshot: [^ ]*' "$T/change.out" "$T/change.err" | head -n 1 | sed 's/.*snapshot: //')
[ -n "$snap" ] || { show change; fail "change: no snapshot path printed"; }
echo "  snapshot: $snap"
lab_on_host 1 "test -f '$snap/1-data/PG_VERSION'" || fail "change: the snapshot $snap holds no copy of the data"
# no container left aside
n=$(lab_on_host 1 "docker ps -a --format '{{.Names}}' | grep -c '^optimus-db' || true")
[ "$n" -eq 1 ] || fail "change: $n optimus-db containers on host 1"
db_ready
v=$(psql_db "select v from kept") || fail "change: read after the replacement failed"
[ "$v" = survives ] || fail "change: the row is lost: got '$v'"
answers v1
[ "$(role_ids web)" = "$WEB1" ] || fail "change: the web containers changed"
plan_run after_change
plan_expect_rc after_change 0
echo "apply_accessory: ok"

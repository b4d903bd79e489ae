#!/usr/bin/env bash
# Acceptance (issue 9): a changed Postgres option is a stop-first replacement
# on the same data: the snapshot path is printed, a row written before is
# still there after, the web keeps answering.
# No secret in any output nor in any process's argv (apply_lib.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"
apply_setup

A=$(plan_commit "apply_accessory: v1")
lab_tag v1 "$A"
apply_run first apply --trusted --yes
apply_expect_rc first 0
DB1=$(apply_id 1 optimus-db)
psql_db() { PGPASSWORD=$PC_DB_PASSWORD psql -h "$H1" -U postgres -v ON_ERROR_STOP=1 -Atqc "$1"; }
for _ in $(seq 1 50); do psql_db 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql_db "create table kept(v text); insert into kept values ('survives')" || fail "psql write failed"

export PC_DB_ENV="PGTZ: UTC"
B=$(plan_commit "apply_accessory: a Postgres option")
lab_tag v1 "$B"
plan_run planned
plan_expect_rc planned 2
apply_run acc apply --trusted --yes
apply_expect_rc acc 0
snap=$(grep -o "snapshot: [^ ]*" "$T/acc.out" | head -1 | cut -d' ' -f2)
[ -n "$snap" ] || { apply_show acc; fail "acc: no snapshot path printed"; }
lab_on_host 1 "test -d '$snap'" || fail "acc: the printed snapshot $snap does not exist"
DB2=$(apply_id 1 optimus-db)
[ -n "$DB2" ] && [ "$DB2" != "$DB1" ] || fail "acc: Postgres was not replaced"
[ "$(lab_on_host 1 'docker ps -a --format "{{.Names}}" | grep -c "^optimus-db"')" = 1 ] || fail "acc: an old Postgres container is left"
lab_on_host 1 "docker exec optimus-db env" | grep -qx 'PGTZ=UTC' || fail "acc: the new option is not in the container"
got=""
for _ in $(seq 1 50); do got=$(psql_db 'select v from kept' 2>/dev/null) && break; sleep 0.2; done
[ "$got" = survives ] || fail "acc: the row is gone ('$got')"
apply_answers v1
plan_run after
plan_expect_rc after 0
echo "apply_accessory: ok"

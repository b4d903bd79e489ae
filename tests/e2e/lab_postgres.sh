#!/usr/bin/env bash
# Lab self-test: the postgres image initialises an empty data directory with
# POSTGRES_PASSWORD, accepts psql over TCP with that password (and refuses a
# wrong one), and keeps its data when the container is replaced by one that
# reuses the directory.
set -euo pipefail
. "$LAB_LIB"
fail() { echo "FAIL: $*" >&2; exit 1; }
n=1; ip=$(lab__host_ip "$n")
dir=/root/labtest-db/data
cleanup() { lab_on_host "$n" "docker rm -f labtest-db >/dev/null 2>&1; rm -rf /root/labtest-db; docker image prune -af >/dev/null 2>&1" || true; }
trap cleanup EXIT

start_db() {
	lab_on_host "$n" "docker run -d --name labtest-db -p 5432:5432 -e POSTGRES_PASSWORD=$1 -v $dir:/var/lib/postgresql/data $LAB_REGISTRY/postgres:17 >/dev/null" ||
		fail "docker run postgres failed"
	local i
	for ((i = 0; i < 100; i++)); do
		PGPASSWORD=$1 psql -h "$ip" -U postgres -Atc 'select 1' >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	lab_on_host "$n" "docker logs labtest-db" >&2 || true
	fail "postgres did not accept connections"
}

start_db lab-pw-1
PGPASSWORD=lab-pw-1 psql -h "$ip" -U postgres -v ON_ERROR_STOP=1 -qc "create table kept(v text); insert into kept values ('survives')" ||
	fail "psql write failed"
if PGPASSWORD=wrong psql -h "$ip" -U postgres -Atc 'select 1' >/dev/null 2>&1; then
	fail "a wrong password was accepted"
fi
echo "postgres on host $n: psql with the password works, a wrong one is refused"

t0=$(date +%s%N)
lab_on_host "$n" "docker stop labtest-db >/dev/null && docker rm labtest-db >/dev/null" || fail "stop failed"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 5000 ] || fail "docker stop of postgres took ${ms}ms"
# The replacement gets another POSTGRES_PASSWORD: an existing data dir is not re-initialised.
start_db lab-pw-1
v=$(PGPASSWORD=lab-pw-1 psql -h "$ip" -U postgres -Atc "select v from kept") || fail "read after replacement failed"
[ "$v" = survives ] || fail "data lost across replacement: got '$v'"
[ -f "$LAB_DIR/h$n/home/labtest-db/data/PG_VERSION" ] || fail "data dir is not in host $n's home"
echo "replacement (stop took ${ms}ms) kept the data in ~/labtest-db/data"

# shellcheck shell=bash
# e2e: helper
# Shared setup of the `plumb apply` load, accessory and lock tests
# (tests/e2e/apply_{load,accessory,lock}.sh), on top of plan_lib.sh: the
# real kamal-proxy image (skip, exit 77, where the lab lacks it), plumb runs
# with timings and the secret check, the lab's optimus answers and ids, the
# Postgres row helpers and the load generator (tests/lab/loadgen.c).
. "$(dirname "${BASH_SOURCE[0]}")/plan_lib.sh"
trap 'plan_clean; if [ -n "${APPLY_KEEP:-}" ]; then cp -r "$T" "$APPLY_KEEP"; fi; rm -rf "$T"' EXIT
plan_clean
if ! curl -sf -o /dev/null -H "Accept: $LAB_MANIFEST_TYPE" \
	"http://$LAB_REGISTRY/v2/kamal-proxy/manifests/v0.9.2"; then
	echo "SKIP: the lab has no kamal-proxy image (../shared/kamal-proxy is absent)"
	exit 77
fi
export PC_ROOT_EXTRA
PC_ROOT_EXTRA=$(printf 'proxy:\n  run:\n    registry: %s\n    repository: kamal-proxy\n    version: v0.9.2\ndeploy_timeout: 10\nreadiness_delay: 0\n' "$LAB_REGISTRY")
LOADGEN=${E2E_BIN_DIR:-$ROOT/build/rel/tests}/loadgen

# apply_run NAME ARGS...: plumb ARGS in the work clone; $T/NAME.{out,err}, RC, SECS.
apply_run() {
	local name=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	set +e
	(cd "$LAB_GIT_WORK" && "$PLUMB" "$@") >"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	set -e
	t1=$(date +%s.%N)
	SECS=$(echo "$t1 - $t0" | bc)
	echo "$name: exit $RC in ${SECS}s ($*)"
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
# role_ids ROLE: "host:id" of every running container of ROLE, sorted
role_ids() {
	local i
	for ((i = 1; i <= N; i++)); do
		lab_on_host "$i" "docker ps -q --no-trunc --filter label=service=optimus --filter label=role=$1" | sed "s/^/$i:/"
	done | sort
}
no_lock() {
	if lab_on_host 1 'test -d .kamal/lock-optimus'; then fail "$1: the lock is still held"; fi
}
# no_running IMAGE_TAG: no container of the tag runs on any host
no_running() {
	local i
	for ((i = 1; i <= N; i++)); do
		if lab_on_host "$i" "docker ps --format '{{.Names}}' | grep -q -- '-$1\$'"; then
			fail "a container of $1 runs on host $i"
		fi
	done
}
psql_db() { PGPASSWORD=$PC_DB_PASSWORD psql -h "$H1" -U postgres -v ON_ERROR_STOP=1 -Atqc "$1"; }
# db_ready: Postgres accepts the configured password (a fresh accessory initialises first)
db_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		psql_db 'select 1' >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "Postgres does not accept the configured password"
}

# load_start NAME: the load generator against every web host (bounded: 300 s)
load_start() {
	local i targets=()
	for ((i = 1; i < N; i++)); do targets+=("$(lab__host_ip "$i")"); done
	"$LOADGEN" -c 4 -d 300 -t 5000 "${targets[@]}" >"$T/$1.load" &
	LOAD_PID=$!
	sleep 1
}
# load_stop NAME: stops it, prints its counts; FAILED and OK are set
load_stop() {
	sleep 1
	kill -TERM "$LOAD_PID"
	wait "$LOAD_PID" || fail "$1: the load generator failed"
	sed "s/^/  $1 load: /" "$T/$1.load"
	OK=$(awk '$1 == "total" {print $3}' "$T/$1.load")
	FAILED=$(awk '$1 == "total" {print $5}' "$T/$1.load")
	[ "${OK:-0}" -gt 0 ] || fail "$1: no request succeeded"
}

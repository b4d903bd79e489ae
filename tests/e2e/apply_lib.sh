# shellcheck shell=bash
# e2e: helper
# The one library of the `plumb apply` tests (tests/e2e/apply_*.sh), on top of
# plan_lib.sh (the lab's optimus, its PC_* knobs, plan_run). Sourcing it
# cleans the hosts and sets the EXIT trap (which cleans the hosts and the
# work clone's hooks again, keeps $T in $APPLY_KEEP if set, removes it); then
#   . apply_lib.sh              web behind the real kamal-proxy image (SKIP,
#                               exit 77, where the lab lacks it), readiness_delay 0
#   . apply_lib.sh --no-proxy   web without a proxy (`proxy: false`), so no
#                               ../shared is needed; readiness_delay 0
# Functions:
#   apply_commit TAG MSG  plan_commit MSG, the commit's image being TAG's (v1,
#                         v2, bad: tests/lab); prints the sha
#   apply_first TEST ARGS v1 (commit $A) applied to the hosts with ARGS
#                         (beside --trusted --yes); every web host answers v1
#   apply_run NAME ARGS   plumb ARGS in the work clone -> $T/NAME.{out,err}, RC,
#                         SECS; no secret (APPLY_CANARIES) in its output nor,
#                         sampled while it runs, in any process's argv on this
#                         machine (the lab's hosts share its pid namespace)
#   apply_show NAME / apply_expect_rc NAME RC
#   apply_answers V       every web host answers V through kamal-proxy (port 80)
#   apply_ids FILE        "host name id" of every running container
#   apply_id HOST RE      id of the running container whose name matches RE
#   apply_role_ids ROLE   "host:id" of every running container of ROLE
#   apply_db_id           id of optimus-db on host 1 (running or not)
#   apply_no_lock NAME    no deploy lock on the primary host
#   apply_no_running TAG  no container of version TAG runs on any host
#   apply_psql SQL / apply_db_ready   Postgres on host 1, configured password
#   apply_db_keep / apply_db_kept NAME   a row written before a change, still
#                         there after it
#   apply_load_start NAME / apply_load_stop NAME OKRE   the load generator
#                         (tests/lab/loadgen.c) on every web host; after stop:
#                         LOAD_OK, LOAD_FAILED, LOAD_BAD (failed, or answered
#                         other than OKRE)
#   apply_load_switched NAME FROM TO   every web host answered FROM, then TO
#   apply_run_loaded NAME OKRE ARGS   apply_run NAME ARGS under the load,
#                         which must see no failure nor other answer
. "$(dirname "${BASH_SOURCE[0]}")/plan_lib.sh"

APPLY_CANARIES=("$PC_MASTER_KEY" "$PC_DB_PASSWORD" lab-registry-password)
LOADGEN=${E2E_BIN_DIR:-$ROOT/build/rel/tests}/loadgen

trap 'plan_clean; if [ -n "${APPLY_KEEP:-}" ]; then cp -r "$T" "$APPLY_KEEP"; fi; rm -rf "$T"' EXIT
plan_clean
export PC_ROOT_EXTRA
if [ "${1:-}" = --no-proxy ]; then
	export PC_WEB_PROXY=false
	PC_ROOT_EXTRA=$(printf 'readiness_delay: 0\ndeploy_timeout: 20\n')
else
	if ! curl -sf -o /dev/null -H "Accept: $LAB_MANIFEST_TYPE" \
		"http://$LAB_REGISTRY/v2/kamal-proxy/manifests/v0.9.2"; then
		echo "SKIP: the lab has no kamal-proxy image (../shared/kamal-proxy is absent)"
		exit 77
	fi
	PC_ROOT_EXTRA=$(printf 'proxy:\n  run:\n    registry: %s\n    repository: kamal-proxy\n    version: v0.9.2\ndeploy_timeout: 10\nreadiness_delay: 0\n' "$LAB_REGISTRY")
fi

# apply__argv_watch FILE: until FILE disappears, every process's argv that
# holds a canary is appended to FILE.hits.
apply__argv_watch() {
	local f=$1 c p v
	while [ -f "$f" ]; do
		for c in /proc/[0-9]*/cmdline; do
			v=$({ tr "\0" " " <"$c"; } 2>/dev/null) || continue
			for p in "${APPLY_CANARIES[@]}"; do
				case $v in *"$p"*) echo "${c%/cmdline}: (a secret)" >>"$f.hits" ;; esac
			done
		done
	done
}

apply_commit() {
	local sha
	sha=$(plan_commit "$2")
	lab_tag "$1" "$sha"
	echo "$sha"
}
apply_first() {
	local test=$1
	shift
	A=$(apply_commit v1 "$test: v1")
	apply_run first apply --trusted --yes "$@"
	apply_expect_rc first 0
	apply_answers v1
}

apply_run() {
	local name=$1 t0 t1 w
	shift
	t0=$(date +%s.%N)
	touch "$T/$name.watch"
	apply__argv_watch "$T/$name.watch" &
	w=$!
	set +e
	(cd "$LAB_GIT_WORK" && "$PLUMB" "$@") >"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	set -e
	rm -f "$T/$name.watch"
	wait "$w" || true
	t1=$(date +%s.%N)
	SECS=$(echo "$t1 - $t0" | bc)
	echo "$name: exit $RC in ${SECS}s ($*)"
	plan_no_secret "$name" "${APPLY_CANARIES[@]}"
	[ ! -s "$T/$name.watch.hits" ] || { sort -u "$T/$name.watch.hits" >&2; fail "$name: a secret appeared in a process's argv"; }
}
apply_show() { cat "$T/$1.out" "$T/$1.err" >&2; }
apply_expect_rc() { [ "$RC" -eq "$2" ] || { apply_show "$1"; fail "$1: exit $RC, want $2"; }; }

apply_answers() {
	local i got
	for ((i = 1; i < N; i++)); do
		got=$(curl -s --max-time 5 "http://$(lab__host_ip "$i")/" || true)
		[ "$got" = "$1" ] || fail "host $i answers '$got', want '$1'"
	done
}

apply_ids() {
	local i
	: >"$1"
	for ((i = 1; i <= N; i++)); do
		lab_on_host "$i" 'docker ps --no-trunc --format "{{.Names}} {{.ID}}"' | sed "s/^/$i /" | sort >>"$1"
	done
}
apply_id() { lab_on_host "$1" "docker ps --no-trunc --format '{{.Names}} {{.ID}}'" | awk -v r="^$2\$" '$1 ~ r { print $2 }'; }
apply_role_ids() {
	local i
	for ((i = 1; i <= N; i++)); do
		lab_on_host "$i" "docker ps -q --no-trunc --filter label=service=optimus --filter label=role=$1" | sed "s/^/$i:/"
	done | sort
}
apply_db_id() { lab_on_host 1 'docker inspect --format "{{.Id}}" optimus-db'; }

apply_no_lock() {
	if lab_on_host 1 'ls -d .kamal/lock-* 2>/dev/null' | grep -q .; then fail "$1: a lock is held"; fi
}
apply_no_running() {
	local i
	for ((i = 1; i <= N; i++)); do
		if lab_on_host "$i" "docker ps --format '{{.Names}}' | grep -q -- '-$1\$'"; then
			fail "a container of $1 runs on host $i"
		fi
	done
}

apply_psql() { PGPASSWORD=$PC_DB_PASSWORD psql -h "$H1" -U postgres -v ON_ERROR_STOP=1 -Atqc "$1"; }
# a fresh or replaced accessory initialises first
apply_db_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		apply_psql 'select 1' >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "Postgres does not accept the configured password"
}
apply_db_keep() {
	apply_db_ready
	apply_psql "create table kept(v text); insert into kept values ('survives')" || fail "psql write failed"
}
apply_db_kept() {
	local v
	apply_db_ready
	v=$(apply_psql 'select v from kept') || fail "$1: read failed"
	[ "$v" = survives ] || fail "$1: the row is lost: got '$v'"
}

# The load: 4 connections per web host, each request bounded by 5 s, the
# whole run by 300 s; its report in $T/NAME.load (loadgen.c's format).
apply_load_start() {
	local i targets=()
	for ((i = 1; i < N; i++)); do targets+=("$(lab__host_ip "$i")"); done
	"$LOADGEN" -c 4 -d 300 -t 5000 "${targets[@]}" >"$T/$1.load" &
	APPLY_LOAD_PID=$!
	sleep 1
}
# apply__bodies NAME: "host text count first last" of every answer seen
apply__bodies() {
	awk -F'"' '/^body / { split($1, a, " "); split($3, b, " "); print a[2], $2, b[2], b[4], b[6] }' "$T/$1.load"
}
apply_load_stop() {
	local other
	sleep 1
	kill -TERM "$APPLY_LOAD_PID"
	wait "$APPLY_LOAD_PID" || fail "$1: the load generator failed"
	sed "s/^/  $1 load: /" "$T/$1.load"
	LOAD_OK=$(awk '$1 == "total" {print $3}' "$T/$1.load")
	LOAD_FAILED=$(awk '$1 == "total" {print $5}' "$T/$1.load")
	other=$(apply__bodies "$1" | awk -v r="^($2)\$" '$2 !~ r { n += $3 } END { print n + 0 }')
	LOAD_BAD=$((LOAD_FAILED + other))
	echo "$1 load: $LOAD_OK answered, $LOAD_FAILED failed, $other other answers"
	[ "${LOAD_OK:-0}" -gt 0 ] || fail "$1: no request succeeded"
}
apply_load_switched() {
	local i ip from to
	for ((i = 1; i < N; i++)); do
		ip=$(lab__host_ip "$i")
		from=$(apply__bodies "$1" | awk -v h="$ip" -v t="$2" '$1 == h && $2 == t { print $4 }')
		to=$(apply__bodies "$1" | awk -v h="$ip" -v t="$3" '$1 == h && $2 == t { print $4 }')
		[ -n "$from" ] && [ -n "$to" ] || fail "$1: host $i did not answer both $2 and $3"
		[ "$(echo "$to > $from" | bc)" = 1 ] || fail "$1: host $i answered $3 before $2"
	done
}

apply_run_loaded() {
	local name=$1 ok=$2
	shift 2
	apply_load_start "$name"
	apply_run "$name" "$@"
	apply_load_stop "$name" "$ok"
	[ "$LOAD_BAD" -eq 0 ] || fail "$name: $LOAD_BAD failed requests under load"
}

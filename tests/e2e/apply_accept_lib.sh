# shellcheck shell=bash
# e2e: helper
# Shared helpers of the `plumb apply` acceptance tests (tests/e2e/apply_*.sh),
# on top of plan_lib.sh (the lab's optimus, its PC_* knobs, plan_run):
#   apply_setup          clean hosts, the real kamal-proxy image (else SKIP, exit 77)
#   apply_run NAME ARGS  plumb ARGS in the work clone -> $T/NAME.{out,err}, RC;
#                        no secret in its output nor, sampled while it runs, in
#                        any process's argv on this machine (the lab's hosts
#                        share its pid namespace, so their sshd/docker too)
#   apply_answers V      every web host answers V through kamal-proxy (port 80)
#   apply_load_start / apply_load_stop   a bounded curl load on every web host;
#                        LOAD_REQS, LOAD_BAD after stop
#   apply_ids FILE       "host name id" of every running container
#   apply_no_lock NAME   .kamal/lock-optimus absent on the primary host
. "$(dirname "${BASH_SOURCE[0]}")/plan_lib.sh"

APPLY_CANARIES=("$PC_MASTER_KEY" "$PC_DB_PASSWORD" lab-registry-password)

apply_setup() {
	trap 'plan_clean; if [ -n "${APPLY_KEEP:-}" ]; then cp -r "$T" "$APPLY_KEEP"; fi; rm -rf "$T"' EXIT
	plan_clean
	if ! curl -sf -o /dev/null -H "Accept: $LAB_MANIFEST_TYPE" \
		"http://$LAB_REGISTRY/v2/kamal-proxy/manifests/v0.9.2"; then
		echo "SKIP: the lab has no kamal-proxy image (../shared/kamal-proxy is absent)"
		exit 77
	fi
	export PC_ROOT_EXTRA
	PC_ROOT_EXTRA=$(printf 'proxy:\n  run:\n    registry: %s\n    repository: kamal-proxy\n    version: v0.9.2\ndeploy_timeout: 10\nreadiness_delay: 0\n' "$LAB_REGISTRY")
}

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
	echo "$name: exit $RC in $(echo "$t1 - $t0" | bc)s ($*)"
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
# apply_id HOST NAME_REGEX: the id of the one running container whose name matches
apply_id() { lab_on_host "$1" "docker ps --no-trunc --format '{{.Names}} {{.ID}}'" | awk -v r="^$2\$" '$1 ~ r { print $2 }'; }

apply_no_lock() {
	if lab_on_host 1 'ls -d .kamal/lock-* 2>/dev/null' | grep -q .; then fail "$1: a lock is held"; fi
}

# The load: one curl per web host in turn, each with a 2 s bound, for at most
# APPLY_LOAD_MAX seconds (default 90); one line per request in $T/load.log.
apply_load_start() {
	: >"$T/load.log"
	touch "$T/load.on"
	(
		end=$(($(date +%s) + ${APPLY_LOAD_MAX:-90}))
		while [ -f "$T/load.on" ] && [ "$(date +%s)" -lt "$end" ]; do
			for ((i = 1; i < N; i++)); do
				r=$(curl -s --max-time 2 "http://$(lab__host_ip "$i")/" 2>&1) || r="FAILED host $i: $r"
				printf '%s\n' "$r" >>"$T/load.log"
			done
		done
	) &
	APPLY_LOAD_PID=$!
	sleep 0.5
}
# apply_load_stop OKRE: stops the load; LOAD_BAD counts answers not matching OKRE.
apply_load_stop() {
	rm -f "$T/load.on"
	wait "$APPLY_LOAD_PID" || true
	LOAD_REQS=$(wc -l <"$T/load.log")
	LOAD_BAD=$(grep -Evc "^($1)\$" "$T/load.log" || true)
	echo "load: $LOAD_REQS requests, $LOAD_BAD failed"
	if [ "$LOAD_BAD" -ne 0 ]; then grep -Ev "^($1)\$" "$T/load.log" | sort | uniq -c | head >&2; fi
}

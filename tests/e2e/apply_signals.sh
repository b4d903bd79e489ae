#!/usr/bin/env bash
# `plumb apply` and SIGINT/SIGTERM (the protocol: reconciler/lock.h), on a
# roll v1 → v2 whose pre-deploy hook is running (the deploy lock is held):
#   - SIGINT twice, quickly (an impatient Ctrl-C): plumb says it stops now,
#     exits 130, the hook (in a process group of its own) is gone, the lock
#     directory is gone from the primary host, no container changed;
#   - one SIGTERM to a hook that ignores it, with x-plumb hooks.timeout: 3:
#     the hook is killed after the bound (3 s), plumb reports "hook
#     'pre-deploy' was interrupted", exit 1, the lock released, nothing changed;
#   - SIGINT twice while the rollout waits on a host (a container that never
#     becomes ready, no hook running): the lock is released on a session of
#     its own, exit 130; then apply v2 converges.
# No secret in any output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

# containers: every container of every host, with its state
containers() { local h; for ((h = 1; h <= N; h++)); do lab_on_host "$h" "docker ps -a --format '$h {{.ID}} {{.State}}'"; done | sort; }
# start_apply NAME: plumb apply in the background; PID, T0
start_apply() {
	T0=$(date +%s.%N)
	(cd "$LAB_GIT_WORK" && exec "$PLUMB" apply --trusted --yes) >"$T/$1.out" 2>"$T/$1.err" &
	PID=$!
}
# wait_for NAME WHAT CMD...: until CMD succeeds while plumb runs, at most 60 s
wait_for() {
	local name=$1 what=$2 i
	shift 2
	for ((i = 0; i < 600; i++)); do
		"$@" && return 0
		kill -0 "$PID" 2>/dev/null || { apply_show "$name"; fail "$name: plumb ended before $what"; }
		sleep 0.1
	done
	apply_show "$name"
	fail "$name: never $what"
}
new_web_on_1() { lab_on_host 1 "docker ps -a --format '{{.Names}}' | grep -qx 'optimus-web-$1'"; }
# finish_apply NAME: waits for plumb (at most 60 s); RC, SECS since T0
finish_apply() {
	local i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$PID" 2>/dev/null; then
		kill -9 "$PID"
		apply_show "$1"
		fail "$1: plumb still runs 60 s after the signals"
	fi
	set +e
	wait "$PID"
	RC=$?
	set -e
	SECS=$(echo "$(date +%s.%N) - $T0" | bc)
	echo "$1: exit $RC after ${SECS}s"
	plan_no_secret "$1" "$PC_MASTER_KEY" "$PC_DB_PASSWORD" lab-registry-password
}
expect_out() { grep -qF -- "$2" "$T/$1.out" "$T/$1.err" || { apply_show "$1"; fail "$1: no '$2'"; }; }
# hook_gone FILE NAME: the pid in FILE (a hook) no longer runs
hook_gone() {
	local p
	p=$(cat "$1")
	if kill -0 "$p" 2>/dev/null; then fail "$2: the hook (pid $p) still runs"; fi
}

A=$(plan_commit "apply_signals: v1")
lab_tag v1 "$A"
apply_run first apply --trusted --yes --skip-hooks
apply_expect_rc first 0
apply_answers v1

# ---- two quick SIGINTs while the pre-deploy hook runs ----
# the hook hears the first (forwarded) and takes its time to clean up: the
# impatient second one stops plumb now
cat >"$T/slow.sh" <<EOF
#!/bin/sh
trap 'touch "$T/hook1.int"; sleep 30; exit 1' INT
echo \$\$ >"$T/hook1.pid"
while :; do sleep 0.1; done
EOF
export PC_CLEAR_EXTRA="FEATURE: two"
B=$(plan_commit "apply_signals: v2")
B=$(lab_commit "apply_signals: a slow pre-deploy hook" bash -c 'mkdir -p .kamal/hooks && cp "$0" .kamal/hooks/pre-deploy && chmod +x .kamal/hooks/pre-deploy' "$T/slow.sh")
lab_tag v2 "$B"
containers >"$T/c.before"
start_apply twice
wait_for twice "the hook ran" test -s "$T/hook1.pid"
lab_on_host 1 'test -d .kamal/lock-optimus' || { apply_show twice; fail "twice: the lock is not held while the pre-deploy hook runs"; }
T0=$(date +%s.%N)
kill -INT "$PID"
sleep 0.3
kill -INT "$PID"
finish_apply twice
apply_expect_rc twice 130
[ -f "$T/hook1.int" ] || fail "twice: the first SIGINT did not reach the hook"
[ "$(echo "$SECS < 15" | bc)" = 1 ] || fail "twice: plumb took ${SECS}s to stop"

expect_out twice "stopping now"
expect_out twice "the deploy lock was released"
hook_gone "$T/hook1.pid" twice
apply_no_lock twice
containers >"$T/c.after"
cmp -s "$T/c.before" "$T/c.after" || { diff "$T/c.before" "$T/c.after" >&2; fail "twice: a container changed"; }
apply_answers v1

# ---- one SIGTERM to a hook that ignores it: killed after the bound ----
cat >"$T/deaf.sh" <<EOF
#!/bin/sh
trap '' INT TERM
echo \$\$ >"$T/hook2.pid"
while :; do sleep 0.1; done
EOF
export PC_XPLUMB=$'hooks:\n  timeout: 3'
C=$(plan_commit "apply_signals: v2, hooks.timeout 3")
C=$(lab_commit "apply_signals: a pre-deploy hook deaf to signals" bash -c 'cp "$0" .kamal/hooks/pre-deploy && chmod +x .kamal/hooks/pre-deploy' "$T/deaf.sh")
lab_tag v2 "$C"
start_apply deaf
wait_for deaf "the hook ran" test -s "$T/hook2.pid"
T0=$(date +%s.%N)
kill -TERM "$PID"
finish_apply deaf
apply_expect_rc deaf 1
expect_out deaf "hook 'pre-deploy' was interrupted"
expect_out deaf "SIGTERM sent to it; killed after 3000 ms more"
expect_out deaf "the deploy lock was released"
[ "$(echo "$SECS >= 2.5 && $SECS < 10" | bc)" = 1 ] || fail "deaf: plumb ended ${SECS}s after SIGTERM, want the 3 s bound"
hook_gone "$T/hook2.pid" deaf
apply_no_lock deaf
containers >"$T/c.after"
cmp -s "$T/c.before" "$T/c.after" || { diff "$T/c.before" "$T/c.after" >&2; fail "deaf: a container changed"; }
apply_answers v1

# ---- two SIGINTs in the middle of the rollout (no hook running) ----
# the image "bad" never becomes ready: the rollout waits on host 1 for deploy_timeout
unset PC_XPLUMB
D=$(PC_CLEAR_EXTRA="FEATURE: three" plan_commit "apply_signals: bad")
D=$(lab_commit "apply_signals: no hooks" bash -c 'rm -f .kamal/hooks/pre-deploy')
lab_tag bad "$D"
start_apply rollout
wait_for rollout "the new container appeared" new_web_on_1 "$D"
T0=$(date +%s.%N)
kill -INT "$PID"
sleep 0.3
kill -INT "$PID"
finish_apply rollout
apply_expect_rc rollout 130
expect_out rollout "the deploy lock was released"
apply_no_lock rollout
apply_answers v1
E=$(PC_CLEAR_EXTRA="FEATURE: four" plan_commit "apply_signals: v2 again")
lab_tag v2 "$E"
apply_run recover apply --trusted --yes
apply_expect_rc recover 0
apply_no_lock recover
apply_answers v2
echo "apply_signals: ok"

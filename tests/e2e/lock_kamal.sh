#!/usr/bin/env bash
# End-to-end: Kamal's deploy lock, shared by the real Kamal 2.12
# (../shared/kamal-peer) and plumb on the lab's primary host (host 1, the
# first web host):
#   - `kamal lock acquire -m …` → `plumb lock status` shows it, `plumb lock
#     acquire` is refused (exit 1, naming the holder) and changes nothing;
#   - `plumb lock acquire` → `kamal lock status` shows it, `kamal lock
#     acquire` and `kamal deploy` are refused (and deploy starts nothing);
#   - `plumb lock release` → `kamal lock status` says there is no lock;
#   - a lock taken by hand (plumb lock acquire) names no pid: never stale;
#   - a plumb lock of this machine whose pid is dead is reported as stale
#     (and one whose pid is alive is not); `plumb lock release` clears it.
#
# Skipped (exit 77, with the reason) where ../shared/kamal-peer is absent.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
KAMAL_REAL=$ROOT/../shared/kamal-peer/kamal
if [ ! -x "$KAMAL_REAL" ]; then
	rm -rf "$T"
	echo "SKIP: ../shared/kamal-peer (the real Kamal) is absent beside the checkout"
	exit 77
fi
if ! "$KAMAL_REAL" version >/dev/null 2>&1; then
	rm -rf "$T"
	echo "SKIP: the real Kamal does not run here (its Ruby gems: ../shared/kamal-peer/install.sh)"
	exit 77
fi
trap 'plan_clean; rm -rf "$T"' EXIT
plan_clean
mkdir -p "$T/kamal-home"

A=$(PC_ROOT_EXTRA=$(plan_kamal_config) plan_commit "lock_kamal: the lab's optimus")
lab_tag v1 "$A"

# kamal ARGS / plumb ARGS: in the work clone; output in $T/NAME.{out,err}, exit in RC.
run() {
	local name=$1
	shift
	set +e
	(cd "$LAB_GIT_WORK" && HOME=$T/kamal-home timeout 300 "$@") >"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	set -e
	echo "$name: exit $RC"
}
expect_rc() { [ "$RC" -eq "$2" ] || { cat "$T/$1.out" "$T/$1.err" >&2; fail "$1: exit $RC, want $2"; }; }
expect_out() { grep -qF -- "$2" "$T/$1.out" "$T/$1.err" || { cat "$T/$1.out" "$T/$1.err" >&2; fail "$1: no '$2'"; }; }
refute_out() { ! grep -qF -- "$2" "$T/$1.out" "$T/$1.err" || { cat "$T/$1.out" "$T/$1.err" >&2; fail "$1: '$2' appears"; }; }
lock_files() { lab_on_host 1 'find .kamal -path "*lock*" -printf "%p %s %T@\n" 2>/dev/null | sort; cat .kamal/lock-optimus/details 2>/dev/null' || true; }

# 1. Kamal holds it: plumb sees it and is refused
run k_acquire "$KAMAL_REAL" lock acquire -m "held by kamal for maintenance"
expect_rc k_acquire 0
run p_status1 "$PLUMB" lock status
expect_rc p_status1 0
expect_out p_status1 "Locked by: "
expect_out p_status1 "Message: held by kamal for maintenance"
refute_out p_status1 "stale"
lock_files >"$T/lock.before"
run p_acquire1 "$PLUMB" lock acquire -m "plumb wants it"
expect_rc p_acquire1 1
expect_out p_acquire1 "deploy lock already in place"
expect_out p_acquire1 "Message: held by kamal for maintenance"
lock_files >"$T/lock.after"
cmp -s "$T/lock.before" "$T/lock.after" || { diff "$T/lock.before" "$T/lock.after" >&2; fail "a refused plumb acquire changed the lock"; }
run k_release "$KAMAL_REAL" lock release
expect_rc k_release 0

# 2. plumb holds it: Kamal sees it and is refused (lock acquire and deploy)
run p_acquire2 "$PLUMB" lock acquire -m "plumb maintenance"
expect_rc p_acquire2 0
expect_out p_acquire2 "Acquired the deploy lock"
run k_status "$KAMAL_REAL" lock status
expect_rc k_status 0
expect_out k_status "Locked by: plumb (by hand on $(hostname)) "
expect_out k_status "Version: $A"
expect_out k_status "Message: plumb maintenance"
run k_acquire2 "$KAMAL_REAL" lock acquire -m "kamal wants it"
[ "$RC" -ne 0 ] || fail "kamal lock acquire succeeded over plumb's lock"
expect_out k_acquire2 "Deploy lock already in place"
run k_deploy "$KAMAL_REAL" deploy -P -H --version "$A"
[ "$RC" -ne 0 ] || fail "kamal deploy ran over plumb's lock"
expect_out k_deploy "Deploy lock already in place"
if lab_on_host 1 "docker ps -a --format '{{.Names}}'" | grep -q "^optimus-web-"; then
	fail "kamal deploy started an app container while plumb held the lock"
fi
run p_status2 "$PLUMB" lock status
expect_rc p_status2 0
expect_out p_status2 "Message: plumb maintenance"
refute_out p_status2 "stale"

# 3. plumb releases: Kamal sees no lock
run p_release "$PLUMB" lock release
expect_rc p_release 0
expect_out p_release "Released the deploy lock"
run k_status2 "$KAMAL_REAL" lock status
expect_rc k_status2 0
expect_out k_status2 "There is no deploy lock"
run p_release2 "$PLUMB" lock release
expect_rc p_release2 0
expect_out p_release2 "There is no deploy lock"

# 4. a lock a plumb of this machine left behind (killed): stale when its pid is dead
sh -c 'exit 0' &
dead=$!
wait "$dead" || true
here=$(hostname)
plumb_lock() {
	local d
	d=$(printf 'Locked by: plumb (pid %s on %s) ci at 2026-12-04T10:00:00Z\nVersion: %s\nMessage: Automatic deploy lock' "$1" "$here" "$A" | base64)
	lab_on_host 1 "rm -rf .kamal/lock-optimus && mkdir -p .kamal/lock-optimus && echo '$d' > .kamal/lock-optimus/details"
}
plumb_lock "$dead"
run p_stale "$PLUMB" lock status
expect_rc p_stale 0
expect_out p_stale "pid $dead on $here"
expect_out p_stale "stale: plumb (pid $dead) on this machine is no longer running"
plumb_lock $$
run p_alive "$PLUMB" lock status
expect_rc p_alive 0
refute_out p_alive "stale"
plumb_lock "$dead"
run p_release3 "$PLUMB" lock release
expect_rc p_release3 0
run k_status3 "$KAMAL_REAL" lock status
expect_out k_status3 "There is no deploy lock"
echo "lock_kamal: Kamal and plumb exclude each other through the one lock; a dead plumb's lock is stale"

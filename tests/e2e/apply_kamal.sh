#!/usr/bin/env bash
# Acceptance (issue 9), with the real Kamal 2.12 (../shared/kamal-peer) and
# the real kamal-proxy:
#   - a fleet deployed by `kamal deploy` (+ accessory boot) is adopted by
#     `plumb apply` with 0 restarts (no container id changes);
#   - after plumb deploys v2: `kamal app details`, `kamal app logs`, `kamal
#     lock status` work, `kamal rollback <v1>` brings v1 back;
#   - a `kamal deploy` that follows is planned by plumb as in sync.
# (Kamal's and plumb's locks excluding each other: lock_kamal.sh.)
# Skipped (exit 77, with the reason) where ../shared/kamal-peer is absent.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"
if ! plan_find_kamal; then echo "SKIP: $KAMAL_WHY"; exit 77; fi
PC_ROOT_EXTRA+=$'\n'$(plan_kamal_config | sed '/^proxy:/,$d')
kamal() { (cd "$LAB_GIT_WORK" && HOME=$T/kamal-home timeout 300 "$KAMAL_REAL" "$@"); }

A=$(apply_commit v1 "apply_kamal: v1")
plan_kamal_fleet "$A"
apply_answers v1
apply_ids "$T/ids.kamal"
apply_run adopt apply --trusted --yes --skip-hooks
apply_expect_rc adopt 0
apply_ids "$T/ids.adopted"
cmp -s "$T/ids.kamal" "$T/ids.adopted" || { diff "$T/ids.kamal" "$T/ids.adopted" >&2; fail "adopt: a container was restarted or replaced"; }
apply_answers v1

export PC_CLEAR_EXTRA="FEATURE: two"
B=$(apply_commit v2 "apply_kamal: v2")
apply_run v2 apply --trusted --yes --skip-hooks
apply_expect_rc v2 0
apply_answers v2
kamal app details -H >"$T/details.out" 2>&1 || { cat "$T/details.out" >&2; fail "kamal app details failed"; }
grep -q "optimus-web-$B" "$T/details.out" || { cat "$T/details.out" >&2; fail "kamal app details does not show plumb's web container"; }
kamal app logs -H --lines 5 >"$T/logs.out" 2>&1 || { cat "$T/logs.out" >&2; fail "kamal app logs failed"; }
kamal lock status >"$T/lock.out" 2>&1 || { cat "$T/lock.out" >&2; fail "kamal lock status failed"; }
grep -qi "There is no deploy lock" "$T/lock.out" || { cat "$T/lock.out" >&2; fail "kamal lock status: a lock is held"; }
kamal rollback -H "$A" >"$T/rollback.out" 2>&1 || { tail -30 "$T/rollback.out" >&2; fail "kamal rollback $A failed"; }
apply_answers v1

kamal deploy -P -H --version "$B" >"$T/kdeploy.out" 2>&1 || { tail -30 "$T/kdeploy.out" >&2; fail "kamal deploy $B failed"; }
apply_answers v2
plan_run after_kamal
plan_expect_rc after_kamal 0
echo "apply_kamal: ok"

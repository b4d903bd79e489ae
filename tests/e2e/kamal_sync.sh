#!/usr/bin/env bash
# End-to-end: a fleet made by the real Kamal is in sync. On the lab, the real
# Kamal 2.12 (../shared/kamal-peer) runs `kamal deploy` (web proxied by the
# real kamal-proxy, job) and `kamal accessory boot db` (Postgres); then
# `plumb plan` exits 0 with "No changes" in text and JSON (every host ok),
# and a plan leaves the hosts as they were.
#
# Skipped (exit 77, with the reason) where ../shared is absent (a fresh clone):
# plan_sync.sh then proves the same against the simulation (kamal_sim.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
if ! plan_find_kamal; then
	rm -rf "$T"
	echo "SKIP: $KAMAL_WHY"
	exit 77
fi
trap 'plan_clean; rm -rf "$T"' EXIT
plan_clean

A=$(PC_ROOT_EXTRA=$(plan_kamal_config) plan_commit "kamal_sync: the lab's optimus, deployed by Kamal")
lab_tag v1 "$A"
plan_kamal_fleet "$A"

# what Kamal made: the proxy, the app containers at A, the accessory
lab_on_host 1 "docker ps --format '{{.Names}} {{.Image}}'" >"$T/h1.ps"
grep -q "^kamal-proxy $LAB_REGISTRY/kamal-proxy:v0.9.2$" "$T/h1.ps" || { cat "$T/h1.ps"; fail "no kamal-proxy from Kamal on host 1"; }
grep -q "^optimus-web-$A " "$T/h1.ps" || fail "no optimus-web-$A on host 1"
grep -q "^optimus-db " "$T/h1.ps" || fail "no optimus-db on host 1"
lab_on_host "$N" "docker ps --format '{{.Names}}'" | grep -qx "optimus-job-$A" || fail "no optimus-job-$A on host $N"

plan_expect_in_sync
echo "kamal_sync: a fleet deployed by the real Kamal plans as No changes"

#!/usr/bin/env bash
# End-to-end: `plumb plan` on real hosts (the lab), the two ends of the range:
#   - empty hosts: every container is to be created, exit 2;
#   - hosts set up by `kamal deploy` + `kamal accessory boot` at the current
#     version: "No changes", exit 0. The real Kamal deploys them where it is
#     available (plan_find_kamal: ../shared/kamal-peer); elsewhere the
#     simulation (kamal_sim.sh) sets them up, and kamal_sync.sh is skipped;
#   - the version precedence: --version > x-plumb version > VERSION > the commit;
#   - the JSON has the shape docs/plan-json.md gives; Markdown renders;
#   - every plan is read-only (plan_run compares the hosts before and after).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
trap 'plan_clean; rm -rf "$T"' EXIT
plan_clean
if plan_find_kamal; then
	export PC_ROOT_EXTRA
	PC_ROOT_EXTRA=$(plan_kamal_config)
else
	echo "note: $KAMAL_WHY; the hosts are set up by the simulation (kamal_sim.sh)"
fi

A=$(plan_commit "plan_sync: the lab's optimus")
lab_tag v1 "$A"
H2=$(lab__host_ip 2)

# ---- empty hosts ----
plan_run empty --format json
plan_expect_rc empty 2
want="H1 create optimus-db - container_missing
H1 create kamal-proxy - container_missing
H1 create optimus-web-$A - container_missing switch
H$N create optimus-job-$A - container_missing"
for ((i = 2; i < N; i++)); do
	want+=$'\n'"H$i create kamal-proxy - container_missing"$'\n'"H$i create optimus-web-$A - container_missing switch"
done
plan_expect empty "$want"
[ "$(plan_get "$T/empty.out" .summary.add)" = $((2 * (N - 1) + 2)) ] || fail "empty: add count"
[ "$(plan_get "$T/empty.out" .version)" = "$A" ] || fail "empty: the version is not the commit"

# ---- as Kamal left them ----
if [ -n "$KAMAL_REAL" ]; then plan_kamal_fleet "$A"; else plan_sim_fleet "$A" v1; fi
plan_expect_in_sync

# ---- JSON shape (docs/plan-json.md) ----
plan_flatten "$T/empty.out" >"$T/empty.flat"
for k in format_version service destination version prune plan_hash exit_code summary hosts; do
	grep -q "^ \"$k\": " "$T/synced_json.out" || fail "json: top-level key $k missing"
done
[ "$(plan_get "$T/synced_json.out" .format_version)" = 1 ] || fail "json: format_version"
[ "$(plan_get "$T/synced_json.out" .exit_code)" = 0 ] || fail "json: exit_code"
for k in add change destroy housekeeping orphans_kept failed_hosts changes; do
	grep -q "^\.summary\.$k=[0-9]*$" "$T/empty.flat" || fail "json: summary.$k"
done
for k in host in_config status error unchanged; do
	grep -q "^\.hosts\[0\]\.$k=" "$T/empty.flat" || fail "json: hosts[].$k"
done
for k in action symbol target name old_name role image image_id spec_hash wave group disruptive switch_traffic counted; do
	grep -q "^\.hosts\[0\]\.steps\[0\]\.$k=" "$T/empty.flat" || fail "json: steps[].$k"
done
[[ "$(plan_get "$T/empty.out" .plan_hash)" =~ ^[0-9a-f]{64}$ ]] || fail "json: plan_hash"

# ---- version precedence: --version > x-plumb version > VERSION > commit ----
lab_tag v1 pinned-by-x-plumb
lab_tag v1 from-env
lab_tag v1 from-flag
B=$(PC_XPLUMB="version: pinned-by-x-plumb" plan_commit "plan_sync: x-plumb version")
plan_run ver_all --format json --version from-flag
[ "$(plan_get "$T/ver_all.out" .version)" = from-flag ] || fail "--version does not win"
VERSION=from-env plan_run ver_env_x --format json
[ "$(plan_get "$T/ver_env_x.out" .version)" = pinned-by-x-plumb ] || fail "x-plumb version does not win over VERSION"
C=$(plan_commit "plan_sync: no x-plumb version")
VERSION=from-env plan_run ver_env --format json
[ "$(plan_get "$T/ver_env.out" .version)" = from-env ] || fail "VERSION does not win over the commit"
plan_run ver_commit --format json
[ "$(plan_get "$T/ver_commit.out" .version)" = "$C" ] || fail "the commit is not the default version"
echo "version precedence: --version > x-plumb version ($B) > VERSION > commit ($C)"

# ---- Markdown of a changed plan ----
lab_on_host 2 "docker stop optimus-web-$A >/dev/null"
plan_run md --format markdown --version "$A"
plan_expect_rc md 2
grep -q "optimus\\\\-web\\\\-$A" "$T/md.out" || { cat "$T/md.out"; fail "markdown: container names not escaped"; }
grep -q "$H2" "$T/md.out" || fail "markdown: host missing"
grep -qi "stopped by hand" "$T/md.out" || fail "markdown: the cause is missing"
echo "plan_sync: ok"

#!/usr/bin/env bash
# End-to-end: `plumb plan` when the set of hosts changes or a host cannot be seen:
#   - a host removed from the config: with --base (the previous commit) its
#     containers are listed as orphans (not counted, exit 0), and counted with
#     --prune (exit 2); the accessory's data directory is never in a step;
#   - sshd stopped on a host: its section says unreachable, the other hosts are
#     still planned, exit 1.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
stopped=""
trap '[ -z "$stopped" ] || lab_start_sshd "$stopped" || true; plan_clean; rm -rf "$T"' EXIT
plan_clean

A=$(plan_commit "plan_hosts: deployed")
lab_tag v1 "$A"
plan_sim_fleet "$A" v1
H2=$(lab__host_ip 2)

# ---- host 2 removed from the web role ----
web=""
for ((i = 1; i < N; i++)); do [ "$i" = 2 ] || web+=" $(lab__host_ip "$i")"; done
B=$(PC_WEB_HOSTS=$web plan_commit "plan_hosts: host 2 retired")
plan_run removed_host --format json --version "$A" --base "$A"
plan_expect_rc removed_host 0
plan_expect removed_host "H2 remove_orphan optimus-web-$A optimus-web-$A host_not_in_config"
[ "$(plan_get "$T/removed_host.out" .summary.orphans_kept)" = 1 ] || fail "removed host: orphans_kept"
plan_flatten "$T/removed_host.out" >"$T/removed_host.flat"
grep -q "^\.hosts\[[0-9]*\]\.host=$H2$" "$T/removed_host.flat" || fail "removed host: no section for $H2"
grep -q "^\.hosts\[$((N - 1))\]\.in_config=false$" "$T/removed_host.flat" || fail "removed host: in_config is not false"
plan_run removed_host_prune --format json --version "$A" --base "$A" --prune
plan_expect_rc removed_host_prune 2
plan_expect removed_host_prune "H2 remove_orphan optimus-web-$A optimus-web-$A host_not_in_config"
[ "$(plan_get "$T/removed_host_prune.out" .summary.destroy)" = 1 ] || fail "removed host --prune: destroy count"
plan_run removed_host_text --version "$A" --base "$A"
grep -q "$H2" "$T/removed_host_text.out" || fail "removed host: the text does not name the host"
echo "host removed: its web container is an orphan (kept without --prune: exit 0; removed with --prune: exit 2)"

# ---- unreachable host ----
plan_commit "plan_hosts: all hosts again" >/dev/null
lab_stop_sshd "$N"
stopped=$N
set +e
(cd "$LAB_GIT_WORK" && "$PLUMB" plan --format json --version "$A") >"$T/down.out" 2>"$T/down.err"
RC=$?
(cd "$LAB_GIT_WORK" && "$PLUMB" plan --version "$A") >"$T/down_text.out" 2>"$T/down_text.err"
set -e
lab_start_sshd "$N"
stopped=""
plan_expect_rc down 1
plan_flatten "$T/down.out" >"$T/down.flat"
for ((i = 0; i < N; i++)); do
	h=$(awk -F= -v p=".hosts[$i].host" '$1 == p { print $2 }' "$T/down.flat")
	s=$(awk -F= -v p=".hosts[$i].status" '$1 == p { print $2 }' "$T/down.flat")
	if [ "$h" = "$HN" ]; then
		[ "$s" = unreachable ] || fail "host $HN: status $s, want unreachable"
	else
		[ "$s" = ok ] || fail "host $h: status $s, want ok"
	fi
done
[ "$(plan_get "$T/down.out" .summary.failed_hosts)" = 1 ] || fail "down: failed_hosts"
grep -qi "unreachable" "$T/down_text.out" || { cat "$T/down_text.out"; fail "down: the text does not say unreachable"; }
grep -q "match the configuration" "$T/down_text.out" && fail "down: claims the hosts match"
echo "unreachable host: said so, the others planned (ok), exit 1"
echo "plan_hosts: ok"

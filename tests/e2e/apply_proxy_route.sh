#!/usr/bin/env bash
# kamal-proxy's routes as the real kamal-proxy reports them (`kamal-proxy
# list`, a table): after a roll v1 -> v2, plan is in sync (the routes read
# point at the v2 containers); then, by hand on host 1, kamal-proxy is sent
# back to v1's container, which is stopped afterwards (the host's traffic
# goes nowhere): plan shows a traffic switch on host 1's web role, naming
# where the traffic goes now (v1's container, by its id), and nothing
# elsewhere; apply moves the traffic back: v2 answers on every web host and
# plan is in sync again.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"

apply_first proxy_route
B=$(apply_commit v2 "proxy_route: v2")
apply_run roll apply --trusted --yes
apply_expect_rc roll 0
apply_answers v2
plan_run synced
plan_expect_rc synced 0

old=optimus-web-$A
id=$(lab_on_host 1 "docker start $old >/dev/null && docker inspect -f '{{.Id}}' $old")
lab_on_host 1 "docker exec kamal-proxy kamal-proxy deploy optimus-web --target ${id:0:12}:80 >/dev/null && docker stop $old >/dev/null"
got=$(curl -s --max-time 5 "http://$(lab__host_ip 1)/" || true)
[ "$got" != v2 ] || fail "host 1 still answers v2 after its route was moved by hand"

plan_run drift --format json
plan_expect_rc drift 2
plan_flatten "$T/drift.out" >"$T/drift.flat"
[ "$(grep -c '\.action=switch$' "$T/drift.flat")" = 1 ] || { cat "$T/drift.out" >&2; fail "drift: want one switch step"; }
grep -q "\.traffic_from=$old (${id:0:12}:80)$" "$T/drift.flat" ||
	{ grep -n 'traffic_from\|action' "$T/drift.flat" >&2; fail "drift: the switch does not name $old (${id:0:12}:80) as where traffic goes"; }
sw=$(grep '\.action=switch$' "$T/drift.flat" | sed 's/\.steps\[.*//')
grep -qxF "$sw.host=$LAB_HOST_1" "$T/drift.flat" || { cat "$T/drift.out" >&2; fail "drift: the switch is not on host 1"; }
echo "drift: plan switches host 1's traffic from $old (${id:0:12}:80), as kamal-proxy reported it"

apply_run heal apply --trusted --yes
apply_expect_rc heal 0
apply_answers v2
plan_run healed
plan_expect_rc healed 0
lab_on_host 1 "docker ps --format '{{.Names}}'" | grep -qx "$old" && fail "heal: $old runs again"
echo "apply_proxy_route: ok"

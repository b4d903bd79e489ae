#!/usr/bin/env bash
# End-to-end: three plan rules on real hosts.
#   - the traffic-switch step shows kamal-proxy's current target (routes from
#     `kamal-proxy list`, here a stand-in script in the kamal-proxy container
#     printing JSON, the other shape plumb reads; apply_proxy_route.sh reads
#     the real kamal-proxy's table);
#   - an accessory of the service that the config no longer names is an
#     orphan when the base revision (--base) named it: listed (exit 0),
#     removed only with --prune (exit 2), its data directory untouched; another
#     Kamal app's accessory on the same host (optimus-admin-redis) is never
#     listed nor pruned, and without --base neither is;
#   - `-d staging` on a host whose accessory container belongs to destination
#     production: that host is refused with a clear error, the others planned, exit 1.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
trap 'plan_clean; rm -rf "$T"' EXIT
plan_clean

A=$(plan_commit "plan_fixes: deployed")
lab_tag v1 "$A"
plan_sim_fleet "$A" v1

# ---- (a) kamal-proxy's current target ----
id=$(lab_on_host 1 "docker inspect -f '{{.Id}}' optimus-web-$A")
routes="{\"services\":{\"optimus-web\":{\"host\":\"\",\"path\":\"/\",\"target\":\"${id:0:12}:80\",\"state\":\"running\",\"tls\":false}}}"
printf '#!/bin/sh\necho %q\n' "$routes" |
	lab_on_host 1 "docker exec -i kamal-proxy sh -c 'cat > /bin/kamal-proxy && chmod 755 /bin/kamal-proxy'"
B=$(plan_commit "plan_fixes: new content")
lab_tag v2 "$B"
plan_run proxy --format json
plan_expect_rc proxy 2
plan_flatten "$T/proxy.out" >"$T/proxy.flat"
[ "$(grep -c "\.traffic_from=optimus-web-$A (${id:0:12}:80)$" "$T/proxy.flat")" = 1 ] ||
	{ grep traffic_from "$T/proxy.out" >&2; fail "proxy: the current target is not shown on host 1's web step"; }
plan_run proxy_text
grep -q "traffic now goes to optimus-web-$A (${id:0:12}:80)" "$T/proxy_text.out" || { cat "$T/proxy_text.out"; fail "proxy: text"; }
echo "traffic switch: from optimus-web-$A (${id:0:12}:80), as kamal-proxy reported it"
plan_commit "plan_fixes: as deployed" >/dev/null

# ---- (b) an accessory no longer in the config ----
R=$(PC_ACC_EXTRA=$'redis:\n  image: '"$LAB_REGISTRY"$'/optimus:v1\n  host: '"$H1"$'\n  directories:\n    - data:/data' \
	plan_commit "plan_fixes: with redis")
plan_commit "plan_fixes: redis removed" >/dev/null
SIM_DIRS=data:/data $SIM accessory 1 redis "$LAB_REGISTRY/optimus:v1" >/dev/null
lab_on_host 1 "echo keep > optimus-redis/data/marker"
# another Kamal app, optimus-admin, with its own redis on the same host
SIM_SERVICE=optimus-admin $SIM accessory 1 redis "$LAB_REGISTRY/optimus:v1" >/dev/null
plan_run orphan_nobase --format json --version "$A" --prune
plan_expect_rc orphan_nobase 0
! grep -q "remove_orphan" "$T/orphan_nobase.out" || fail "orphan accessory: listed without evidence (no --base)"
plan_run orphan_acc --format json --version "$A" --base "$R"
plan_expect_rc orphan_acc 0
plan_expect orphan_acc "H1 remove_orphan optimus-redis optimus-redis accessory_not_in_config:optimus-redis"
plan_run orphan_acc_prune --format json --version "$A" --base "$R" --prune
plan_expect_rc orphan_acc_prune 2
plan_expect orphan_acc_prune "H1 remove_orphan optimus-redis optimus-redis accessory_not_in_config:optimus-redis"
[ "$(plan_get "$T/orphan_acc_prune.out" .summary.destroy)" = 1 ] || fail "orphan accessory: destroy count"
! grep -q "optimus-admin-redis" "$T/orphan_acc_prune.out" || fail "orphan accessory: another app's accessory in the plan"
grep -q "data directory is kept" "$T/orphan_acc_prune.out" || fail "orphan accessory: no word about the data directory"
[ "$(lab_on_host 1 "cat optimus-redis/data/marker")" = keep ] || fail "orphan accessory: data touched"
lab_on_host 1 "docker rm -f optimus-redis optimus-admin-redis >/dev/null"
echo "orphan accessory: listed with --base (exit 0), removed only with --prune (exit 2); data kept; optimus-admin-redis never"

# ---- (c) two destinations sharing the accessory's container ----
plan_clean
for ((i = 1; i < N; i++)); do
	SIM_DEST=production SIM_TAG=v1 SIM_SECRETS="RAILS_MASTER_KEY=$PC_MASTER_KEY" $SIM app "$i" web "$A" >/dev/null
done
SIM_DEST=production SIM_SECRETS="POSTGRES_PASSWORD=$PC_DB_PASSWORD" SIM_PORT=5432:5432 \
	SIM_DIRS=data:/var/lib/postgresql/data $SIM accessory 1 db "$LAB_REGISTRY/postgres:17" >/dev/null
lab_commit "plan_fixes: staging" bash -c 'printf "retain_containers: 5\n" > config/deploy.staging.yml' >/dev/null
plan_run dest --format json --version "$A" -d staging
plan_expect_rc dest 1
plan_flatten "$T/dest.out" >"$T/dest.flat"
grep -q "^\.hosts\[[0-9]*\]\.status=refused$" "$T/dest.flat" || fail "dest: no refused host"
[ "$(grep -c '\.status=refused$' "$T/dest.flat")" = 1 ] || fail "dest: more than one host refused"
grep -q "^\.hosts\[[0-9]*\]\.error=accessory container optimus-db is shared with destination 'production'" "$T/dest.flat" ||
	fail "dest: the error does not name the accessory and the destination"
plan_steps "$T/dest.out" | grep -q "^H1 " && fail "dest: steps planned on the refused host"
plan_steps "$T/dest.out" | grep -q "^H2 create optimus-web-staging-$A " || fail "dest: host 2 not planned"
plan_run dest_text --version "$A" -d staging
grep -qi "refused" "$T/dest_text.out" || { cat "$T/dest_text.out"; fail "dest: text does not say refused"; }
echo "destinations sharing optimus-db: host 1 refused, the others planned, exit 1"
echo "plan_fixes: ok"

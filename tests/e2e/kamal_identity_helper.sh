#!/usr/bin/env bash
# e2e: helper
# The body of t_kamal_identity (see tests/e2e/t_kamal_identity.c): $1 is
# that binary, which prints plumb's docker run for each container.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
SELF=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
. "$(dirname "$0")/plan_lib.sh"
plan_find_kamal || { rm -rf "$T"; echo "SKIP: $KAMAL_WHY"; exit 77; }
trap 'plan_clean; rm -rf "$T" /tmp/plumb-identity-$LAB_ID' EXIT
plan_clean

mkdir -p /tmp/plumb-identity-$LAB_ID
ACC="cache:
  image: $LAB_REGISTRY/optimus:v1
  host: $H1
  cmd: sh /run.sh --flag \"two words\"
  port: \"127.0.0.1:8081:80\"
  volumes:
    - cache_vol:/cache
  directories:
    - cdata:/cdata
    - /tmp/plumb-identity-$LAB_ID:/absdir:ro
  options:
    add-host:
      - a.example:1.2.3.4
      - b.example:1.2.3.5
    init: true
    workdir: /tmp
  labels:
    tier: \"x y\"
  env:
    clear:
      A: \"b c\""
EXTRA=$(plan_kamal_config; printf 'labels:\n  team: "it'"'"'s $x"\nlogging:\n  options:\n    max-size: 20m\n    max-file: 2\n')
A=$(PC_ACC_EXTRA=$ACC PC_CLEAR_EXTRA=$'MSG: "line1\\nsaid \\"hi\\" #{x} $HOME `id` caf\\u00e9 \\\\ end"\nEMPTYV: ""' \
	PC_ROOT_EXTRA=$EXTRA plan_commit "kamal_identity: escapes, labels, logging, an accessory of every kind")
lab_tag v1 "$A"
plan_kamal_fleet "$A"
(cd "$LAB_GIT_WORK" && HOME=$T/kamal-home timeout 300 "$KAMAL_REAL" accessory boot cache -H) >"$T/cache.log" 2>&1 ||
	{ tail -n 20 "$T/cache.log" >&2; fail "kamal accessory boot cache failed"; }

home=$(lab_on_host 1 'echo $HOME' </dev/null)
checked=0
for h in 1 "$N"; do
	"$SELF" print "$LAB_GIT_WORK" "$A" "$(lab__host_ip "$h")" "$home" -plumb >"$T/cmds.$h" ||
		fail "no commands for host $h"
	while IFS=$'\t' read -r name cmd; do
		# the same ports and data: the original steps aside while its twin runs
		case $name in kamal-proxy | optimus-db | optimus-cache) lab_on_host "$h" "docker stop $name >/dev/null" </dev/null ;; esac
		lab_on_host "$h" "$cmd" >/dev/null </dev/null || fail "host $h: plumb's docker run failed: $cmd"
		lab_on_host "$h" "docker inspect $name" >"$T/kamal.json" </dev/null
		lab_on_host "$h" "docker inspect $name-plumb" >"$T/plumb.json" </dev/null
		lab_on_host "$h" "docker rm -f $name-plumb >/dev/null; docker start $name >/dev/null" </dev/null
		python3 - "$T/kamal.json" "$T/plumb.json" "$name" <<'PY' || fail "host $h: $name differs from Kamal's"
import json, sys
k = json.load(open(sys.argv[1]))[0]
p = json.load(open(sys.argv[2]))[0]
diffs = []
def walk(a, b, path):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            walk(a.get(key), b.get(key), path + "." + key)
    elif a != b:
        diffs.append("%s: kamal %r, plumb %r" % (path, a, b))
kc, pc = dict(k["Config"]), dict(p["Config"])
for c in (kc, pc):
    c.pop("Hostname", None)
    c["Env"] = sorted(c.get("Env") or [])
walk(kc, pc, "Config")
# docker's CLI gathers --volume through a map: Binds come in any order
for c in (k["HostConfig"], p["HostConfig"]):
    c["Binds"] = sorted(c.get("Binds") or [])
walk(k["HostConfig"], p["HostConfig"], "HostConfig")
walk({m["Destination"]: m for m in k["Mounts"]}, {m["Destination"]: m for m in p["Mounts"]}, "Mounts")
walk(sorted(k["NetworkSettings"]["Networks"]), sorted(p["NetworkSettings"]["Networks"]), "Networks")
for d in diffs:
    print("  " + sys.argv[3] + " " + d, file=sys.stderr)
sys.exit(1 if diffs else 0)
PY
		echo "$name: identical to Kamal's"
		checked=$((checked + 1))
	done <"$T/cmds.$h"
done
[ "$checked" -eq 5 ] || fail "compared $checked containers, want 5 (db, cache, web, kamal-proxy, job)"
echo "t_kamal_identity: 1 passed, 0 failed, 0 skipped"

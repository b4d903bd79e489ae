#!/usr/bin/env bash
# e2e: helper
# The apply half of `make bench` (tests/bench/run.sh runs it inside a lab
# whose env is exported): on the lab's optimus (web on hosts 1..N-1, job on
# host N, Postgres, readiness_delay 0), interleaved, BENCH_APPLY_RUNS rounds of
#   - plumb: a roll v1 <-> v2 (wall, max RSS, commands per host), a no-op apply;
#   - the real Kamal 2.12 (../shared/kamal-peer, when present): `kamal deploy`
#     of the same roll, and a same-version redeploy (and the containers it
#     restarted);
#   - a naive baseline: sequential `ssh host docker pull/run/stop` per host.
# Prints "apply_bench KEY VALUE" lines and a table; never asserts a speed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"
RUNS=${BENCH_APPLY_RUNS:-3}
KAMAL=""
if plan_find_kamal; then KAMAL=$KAMAL_REAL; else echo "apply_bench: Kamal half skipped: $KAMAL_WHY"; fi
export PC_ROOT_EXTRA
PC_ROOT_EXTRA+=$'\n'$(plan_kamal_config | sed '/^proxy:/,$d')
mkdir -p "$T/kamal-home"
V1=$(plan_commit "bench: v1")
lab_tag v1 "$V1"
export PC_CLEAR_EXTRA="FEATURE: two"
V2=$(plan_commit "bench: v2")
lab_tag v2 "$V2"
res() { echo "apply_bench $1 $2" | tee -a "$T/res"; }
ms() { echo "($2 - $1) * 1000 / 1" | bc; }
# plumb_at SHA KEY: apply at SHA (checkout --version) timed; KEY_ms, KEY_rss_kb, KEY_cmds
plumb_at() {
	local t0 t1
	t0=$(date +%s.%N)
	(cd "$LAB_GIT_WORK" && /usr/bin/time -f '%M' -o "$T/rss" "$PLUMB" apply --trusted --yes --skip-hooks --version "$1") >"$T/p.out" 2>"$T/p.err" ||
		{ cat "$T/p.out" "$T/p.err" >&2; fail "plumb apply --version $1 failed"; }
	t1=$(date +%s.%N)
	res "$2_ms" "$(ms "$t0" "$t1")"
	res "$2_rss_kb" "$(cat "$T/rss")"
	res "$2_cmds_max_host" "$(grep -o 'at most [0-9]* on one host' "$T/p.out" | grep -o '[0-9]*' || echo 0)"
}
kamal_at() {
	local t0 t1
	t0=$(date +%s.%N)
	(cd "$LAB_GIT_WORK" && HOME=$T/kamal-home /usr/bin/time -f '%M' -o "$T/rss" timeout 300 "$KAMAL" deploy -P -H --version "$1") >"$T/k.out" 2>&1 ||
		{ tail -30 "$T/k.out" >&2; fail "kamal deploy --version $1 failed"; }
	t1=$(date +%s.%N)
	res "$2_ms" "$(ms "$t0" "$t1")"
	res "$2_rss_kb" "$(cat "$T/rss")"
}
ids() { apply_ids "$T/ids.$1"; }
restarts() { comm -23 <(awk '{print $3}' "$T/ids.$1" | sort) <(awk '{print $3}' "$T/ids.$2" | sort) | wc -l; }
naive() { # sequential ssh per web host: pull, run new, stop old
	local t0 t1 i tag=$1 old=$2 new=$3
	t0=$(date +%s.%N)
	for ((i = 1; i < N; i++)); do
		lab_on_host "$i" "docker pull -q $LAB_REGISTRY/optimus:$tag >/dev/null"
		lab_on_host "$i" "docker run -d --name naive-$new --network kamal $LAB_REGISTRY/optimus:$tag >/dev/null"
		lab_on_host "$i" "docker stop -t 10 naive-$old >/dev/null 2>&1; docker rm naive-$old >/dev/null 2>&1 || true"
	done
	t1=$(date +%s.%N)
	res "$4_ms" "$(ms "$t0" "$t1")"
}

plumb_at "$V1" warm_plumb
naive v1 none a naive_warm
for ((r = 1; r <= RUNS; r++)); do
	plumb_at "$V2" "plumb_roll_$r"
	ids a; plumb_at "$V2" "plumb_noop_$r"; ids b
	res "plumb_noop_restarts_$r" "$(restarts a b)"
	plumb_at "$V1" "plumb_back_$r"
	naive v2 a b "naive_roll_$r"
	naive v1 b a "naive_back_$r"
	if [ -n "$KAMAL" ]; then
		kamal_at "$V2" "kamal_roll_$r"
		ids a; kamal_at "$V2" "kamal_redeploy_$r"; ids b
		res "kamal_redeploy_restarts_$r" "$(restarts a b)"
		kamal_at "$V1" "kamal_back_$r"
	fi
done
python3 - "$T/res" "$RUNS" <<'PY'
import sys, statistics
d = {}
for l in open(sys.argv[1]):
    _, k, v = l.split(); d[k] = float(v)
runs = int(sys.argv[2])
def med(p): 
    xs = [d["%s_%d" % (p, r)] for r in range(1, runs + 1) if "%s_%d" % (p, r) in d]
    return statistics.median(xs) if xs else None
def med2(p, s):
    xs = [d["%s_%d_%s" % (p, r, s)] for r in range(1, runs + 1) if "%s_%d_%s" % (p, r, s) in d]
    return statistics.median(xs) if xs else None
def f(x, u=""): return "-" if x is None else "%.0f%s" % (x, u)
pr, pn, kr, kd, nr = med2("plumb_roll", "ms"), med2("plumb_noop", "ms"), med2("kamal_roll", "ms"), med2("kamal_redeploy", "ms"), med("naive_roll_ms".replace("_ms", "")) 
nr = statistics.median([d["naive_roll_%d_ms" % r] for r in range(1, runs + 1)])
print("4. apply (median of %d interleaved rounds; web on 2 hosts, job on 1, Postgres, kamal-proxy)" % runs)
print("   roll v1->v2:   plumb %s ms | kamal %s ms | naive ssh pull/run/stop (web only, no health gate) %s ms" % (f(pr), f(kr), f(nr)))
if kr: print("                  plumb/kamal %.3f (target <= 0.25)" % (pr / kr))
print("                  plumb/naive %.3f" % (pr / nr))
print("   no-op:         plumb apply %s ms, restarts %s | kamal same-version redeploy %s ms, restarts %s" %
      (f(pn), f(med("plumb_noop_restarts")), f(kd), f(med("kamal_redeploy_restarts"))))
if kd: print("                  plumb/kamal %.3f (target <= 0.1)" % (pn / kd))
print("   commands on the busiest host (roll, plumb, with the observation): %s (target <= 5)" % f(med2("plumb_roll", "cmds_max_host")))
print("   peak memory:   plumb %.1f MiB (target <= 20) | kamal %s MiB" % (med2("plumb_roll", "rss_kb") / 1024,
      "-" if med2("kamal_roll", "rss_kb") is None else "%.1f" % (med2("kamal_roll", "rss_kb") / 1024)))
PY

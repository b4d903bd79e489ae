#!/usr/bin/env bash
# e2e: helper
# The apply half of `make bench` (tests/bench/run.sh runs it inside a lab
# whose env is exported): on the lab's optimus (web on hosts 1..N-1, job on
# host N, Postgres, readiness_delay 0), in two configurations — the web role
# without a proxy (`proxy: false`, the issue's reference setup), then behind
# kamal-proxy — interleaved, BENCH_APPLY_RUNS rounds of
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
mkdir -p "$T/kamal-home"
res() { echo "apply_bench $1 $2" | tee -a "$T/res"; }
ms() { echo "($2 - $1) * 1000 / 1" | bc; }
# plumb_at SHA KEY: apply at SHA (checkout --version) timed; KEY_ms, KEY_rss_kb, KEY_cmds
plumb_at() {
	local t0 t1
	t0=$(date +%s.%N)
	(cd "$LAB_GIT_WORK" && /usr/bin/time -f '%M' -o "$T/rss" "$PLUMB" apply --trusted --yes --skip-hooks --version "$1") >"$T/p.out" 2>"$T/p.err" ||
		{ cat "$T/p.out" "$T/p.err" >&2; fail "plumb apply --version $1 failed"; }
	t1=$(date +%s.%N)
	cp "$T/p.out" "$T/p.$2.out" # each run's timeline, kept with APPLY_KEEP
	res "$2_ms" "$(ms "$t0" "$t1")"
	res "$2_rss_kb" "$(cat "$T/rss")"
	# the busiest host's commands: observation, lock and its release included
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

# bench_config MODE: the rounds on the web role without a proxy (MODE
# noproxy) or behind kamal-proxy (MODE proxy); keys are prefixed MODE_
bench_config() {
	local m=$1 r v1 v2
	export PC_ROOT_EXTRA PC_WEB_PROXY PC_CLEAR_EXTRA
	PC_ROOT_EXTRA=$BASE_EXTRA
	if [ "$m" = noproxy ]; then
		PC_WEB_PROXY=false
	else
		PC_WEB_PROXY=
		PC_ROOT_EXTRA+=$(printf '\nproxy:\n  run:\n    registry: %s\n    repository: kamal-proxy\n    version: v0.9.2\n' "$LAB_REGISTRY")
	fi
	PC_CLEAR_EXTRA=
	v1=$(plan_commit "bench $m: v1")
	lab_tag v1 "$v1"
	PC_CLEAR_EXTRA="FEATURE: two"
	v2=$(plan_commit "bench $m: v2")
	lab_tag v2 "$v2"
	plumb_at "$v1" "${m}_warm_plumb"
	naive v1 none "a$m" "${m}_naive_warm"
	for ((r = 1; r <= RUNS; r++)); do
		plumb_at "$v2" "${m}_plumb_roll_$r"
		ids a; plumb_at "$v2" "${m}_plumb_noop_$r"; ids b
		res "${m}_plumb_noop_restarts_$r" "$(restarts a b)"
		plumb_at "$v1" "${m}_plumb_back_$r"
		naive v2 "a$m" "b$m" "${m}_naive_roll_$r"
		naive v1 "b$m" "a$m" "${m}_naive_back_$r"
		if [ -n "$KAMAL" ]; then
			kamal_at "$v2" "${m}_kamal_roll_$r"
			ids a; kamal_at "$v2" "${m}_kamal_redeploy_$r"; ids b
			res "${m}_kamal_redeploy_restarts_$r" "$(restarts a b)"
			kamal_at "$v1" "${m}_kamal_back_$r"
		fi
	done
	for ((r = 1; r < N; r++)); do lab_on_host "$r" "docker rm -f naive-a$m >/dev/null 2>&1 || true"; done
}
BASE_EXTRA=$'readiness_delay: 0\ndeploy_timeout: 20\n'$(plan_kamal_config | sed '/^proxy:/,$d')
for mode in ${BENCH_APPLY_MODES:-noproxy proxy}; do bench_config "$mode"; done
python3 - "$T/res" "$RUNS" ${BENCH_APPLY_MODES:-noproxy proxy} <<'PY'
import sys, statistics
d = {}
for l in open(sys.argv[1]):
    _, k, v = l.split(); d[k] = float(v)
runs = int(sys.argv[2])
def med(p, s=None):
    ks = ["%s_%d%s" % (p, r, "_" + s if s else "") for r in range(1, runs + 1)]
    xs = [d[k] for k in ks if k in d]
    return statistics.median(xs) if xs else None
def f(x, u=""): return "-" if x is None else "%.0f%s" % (x, u)
for m in sys.argv[3:]:
    pr, pn, kr, kd = med(m + "_plumb_roll", "ms"), med(m + "_plumb_noop", "ms"), med(m + "_kamal_roll", "ms"), med(m + "_kamal_redeploy", "ms")
    nr = med(m + "_naive_roll", "ms")
    what = "the web role without a proxy (proxy: false; the issue's reference setup)" if m == "noproxy" else "the web role behind kamal-proxy"
    print("4%s. apply, %s: median of %d interleaved rounds; web on 2 hosts, job on 1, Postgres" % ("a" if m == "noproxy" else "b", what, runs))
    print("   roll v1->v2:   plumb %s ms | kamal %s ms | naive ssh pull/run/stop (web only, no health gate) %s ms" % (f(pr), f(kr), f(nr)))
    if kr: print("                  plumb/kamal %.3f (target <= 0.25)" % (pr / kr))
    if nr: print("                  plumb/naive %.3f" % (pr / nr))
    print("   no-op:         plumb apply %s ms, restarts %s | kamal same-version redeploy %s ms, restarts %s" %
          (f(pn), f(med(m + "_plumb_noop_restarts")), f(kd), f(med(m + "_kamal_redeploy_restarts"))))
    if kd: print("                  plumb/kamal %.3f (target <= 0.1)" % (pn / kd))
    print("   commands on the busiest host (roll, plumb; observation, lock and release included): %s (target <= 5)" % f(med(m + "_plumb_roll", "cmds_max_host")))
    kr_rss = med(m + "_kamal_roll", "rss_kb")
    print("   peak memory:   plumb %.1f MiB (target <= 20) | kamal %s MiB" % (med(m + "_plumb_roll", "rss_kb") / 1024,
          "-" if kr_rss is None else "%.1f" % (kr_rss / 1024)))
PY

#!/usr/bin/env bash
# e2e: helper
# The watch half of `make bench` (tests/bench/run.sh runs it inside a lab
# whose env is exported): the lab's optimus deployed by `plumb apply` (web
# without a proxy on hosts 1..N-1, job on host N, Postgres), then one
# `plumb watch` daemon with warm sessions runs BENCH_WATCH_CYCLES (default
# 1000) no-op cycles back to back (--interval 10ms). Reported, in one run:
#   - RSS of the daemon at cycle 10 and at the last cycle (flat = no growth);
#   - the share of host observations answered from the last one (docker
#     events saw no change: providers/docker_obs.h, struct docker_obs_cache);
#   - the wall time of a no-op cycle (the daemon's own cycle duration: mean
#     from /metrics, median and p90 from its status sampled), beside the
#     baseline of the same no-op done the one-shot way: `plumb apply` (a new
#     process, new sessions) — median of BENCH_WATCH_RUNS runs;
# Prints "watch_bench KEY VALUE" lines and a table; never asserts a speed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh" --no-proxy
CYCLES=${BENCH_WATCH_CYCLES:-1000}
RUNS=${BENCH_WATCH_RUNS:-5}
S=$T/state
PORT=$((20000 + RANDOM % 20000))
res() { echo "watch_bench $1 $2" | tee -a "$T/res"; }
cycles() { "$PLUMB" status --state-dir "$S" --json 2>/dev/null | jq -r '.cycles // 0' 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

A=$(apply_commit v1 "watch_bench: v1")
apply_run first apply --trusted --yes
apply_expect_rc first 0

# the baseline: a one-shot no-op apply, BENCH_WATCH_RUNS times
: >"$T/oneshot"
for ((i = 0; i < RUNS; i++)); do
	t0=$(date +%s%N)
	(cd "$LAB_GIT_WORK" && "$PLUMB" apply --trusted --yes --skip-hooks) >/dev/null 2>&1 || fail "the no-op apply failed"
	echo $((($(date +%s%N) - t0) / 1000)) >>"$T/oneshot"
done

PLUMB_WATCH_TRACE=1 "$PLUMB" watch --repo "$LAB_GIT_URL" --state-dir "$S" --interval 10ms \
	--listen "127.0.0.1:$PORT" >"$T/watch.log" 2>&1 &
W=$!
trap 'kill -TERM $W 2>/dev/null || true; wait $W 2>/dev/null || true; plan_clean || true; rm -rf "$T"; exit $rc' EXIT
rc=1
until [ "$(cycles)" -ge 10 ]; do
	kill -0 "$W" 2>/dev/null || { cat "$T/watch.log" >&2; fail "the watcher died"; }
	sleep 0.05
done
RSS10=$(rss_kb "$W")
: >"$T/cycle_ms"
last=0
while :; do
	n=$(cycles)
	[ "$n" -ge "$CYCLES" ] && break
	kill -0 "$W" 2>/dev/null || { tail -20 "$T/watch.log" >&2; fail "the watcher died at cycle $n"; }
	if [ "$n" != "$last" ]; then
		"$PLUMB" status --state-dir "$S" --json | jq -r '.last_cycle_ms' >>"$T/cycle_ms"
		last=$n
	fi
	sleep 0.2
done
RSSN=$(rss_kb "$W")
grep "trace" "$T/watch.log" | tail -n 3 | sed 's/^/   /'
# the median of each part, from the daemon's trace
awk '/trace: cycle/ { gsub(/[:,()]/, " "); for (i = 1; i <= NF; i++) { if ($i == "fetch") f[++nf] = $(i+1); if ($i == "plan") p[++np] = $(i+1); if ($i == "host") o[++no] = $(i+1); if ($i == "rest") r[++nr] = $(i+1); if ($i == "unchanged") { u += $(i-1); nu++ } } }
	function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return n ? a[int((n + 1) / 2)] : 0 }
	END { printf "watch_bench part_fetch_ms %s\nwatch_bench part_plan_ms %s\nwatch_bench part_slowest_host_ms %s\nwatch_bench part_rest_ms %s\nwatch_bench unchanged_host_answers_pct %d\n", med(f, nf), med(p, np), med(o, no), med(r, nr), nu ? 100 * u / (nu * '"$N"') : 0 }' "$T/watch.log" | tee -a "$T/res"
curl -s "http://127.0.0.1:$PORT/metrics" >"$T/metrics"
kill -TERM "$W"
wait "$W" 2>/dev/null || true
grep -q '"outcome": *"synced"\|outcome.*synced' "$S/status.json" || fail "the last cycle was not in sync"

# the same no-op cycle, paced (--interval 500ms) instead of back to back, so
# the lab's three dockerds on this machine are not kept busy by the daemon itself
PLUMB_WATCH_TRACE=1 "$PLUMB" watch --repo "$LAB_GIT_URL" --state-dir "$S" --interval 500ms \
	>"$T/paced.log" 2>&1 &
W=$!
sleep 20
kill -TERM "$W"
wait "$W" 2>/dev/null || true
grep "trace: cycle" "$T/paced.log" | sed -E 's/.*: ([0-9]+) ms: .*/\1/' | tail -n +3 >"$T/paced_ms"

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print 0 }'; }
p90() { sort -n | awk '{ a[NR] = $1 } END { if (!NR) { print 0; exit } i = int(NR * 0.9 + 0.5); if (i < 1) i = 1; print a[i] }'; }
sum=$(awk '/^plumb_cycle_duration_seconds_sum/ { print $2 }' "$T/metrics")
cnt=$(awk '/^plumb_cycle_duration_seconds_count/ { print $2 }' "$T/metrics")
res cycles "$(cycles)"
res rss_kb_at_10 "$RSS10"
res rss_kb_at_end "$RSSN"
res cycle_ms_mean "$(echo "scale=1; ${sum:-0} * 1000 / ${cnt:-1}" | bc)"
res cycle_ms_median "$(median <"$T/cycle_ms" | cut -d. -f1)"
res cycle_ms_p90 "$(p90 <"$T/cycle_ms" | cut -d. -f1)"
res oneshot_noop_ms_median "$(($(median <"$T/oneshot") / 1000))"
res paced_cycle_ms_median "$(median <"$T/paced_ms")"
res paced_cycle_ms_p90 "$(p90 <"$T/paced_ms")"
res paced_cycles "$(wc -l <"$T/paced_ms" | tr -d ' ')"
echo
echo "watch (plumb watch, warm sessions, $CYCLES no-op cycles on $N hosts)"
printf '   %-40s %10s\n' "RSS at cycle 10" "$RSS10 kB"
printf '   %-40s %10s\n' "RSS at cycle $(cycles)" "$RSSN kB"
printf '   %-40s %10s\n' "no-op cycle, mean (/metrics)" "$(echo "scale=1; ${sum:-0} * 1000 / ${cnt:-1}" | bc) ms"
printf '   %-40s %10s\n' "no-op cycle, median / p90 (sampled)" "$(median <"$T/cycle_ms" | cut -d. -f1) / $(p90 <"$T/cycle_ms" | cut -d. -f1) ms"
printf '   %-40s %10s\n' "no-op cycle paced 500ms, median / p90" "$(median <"$T/paced_ms") / $(p90 <"$T/paced_ms") ms"
printf '   %-40s %10s\n' "hosts answered from their last answer" "$(awk '$2 == "unchanged_host_answers_pct" { print $3 }' "$T/res") %"
printf '   %-40s %10s\n' "baseline: one-shot no-op apply, median" "$(($(median <"$T/oneshot") / 1000)) ms"
echo "   targets: RSS flat; no-op cycle <= 150 ms"
rc=0

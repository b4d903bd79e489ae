#!/bin/sh
# Usage: run.sh TARGET SECONDS
# Runs one fuzzer for a bounded time (seconds, default 60) from its seed corpus:
#   config  the config loader (untrusted mode), seeded with Kamal's fixtures,
#           plumb's examples and tests/fuzz/regressions/*
#   obs     a host's observation output → diff → render, seeded with
#           tests/unit/fixtures/docker/* and tests/fuzz/regressions/obs/*
# A crash leaves its input in build/fuzz/; copy it to tests/fuzz/regressions/
# (obs/ for the obs target) so `make test` replays it.
set -eu
cd "$(dirname "$0")/../.."
target=${1:-config}
secs=${2:-60}
corpus=build/fuzz/corpus-$target
mkdir -p "$corpus"
case $target in
config)
	seeds="../shared/kamal/fixtures/*.yml deploy-examples/*/config/*.yml tests/fuzz/regressions/*"
	what="(untrusted mode)"
	;;
obs)
	seeds="tests/unit/fixtures/docker/* tests/fuzz/regressions/obs/*"
	what="(host output → diff → render)"
	;;
*)
	echo "fuzz: unknown target $target" >&2
	exit 2
	;;
esac
for f in $seeds; do
	[ -f "$f" ] && cp "$f" "$corpus/$(echo "$f" | tr '/' '_')"
done
log=build/fuzz/log-$target.txt
echo "fuzz: running fuzz_$target for ${secs}s $what"
ASAN_OPTIONS=detect_leaks=1 ./build/fuzz/fuzz_"$target" "$corpus" \
	-max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix=build/fuzz/ -print_final_stats=1 2>"$log" || {
	tail -n 40 "$log"
	echo "fuzz: crash found in fuzz_$target; the input is in build/fuzz/ (add it to tests/fuzz/regressions/)"
	exit 1
}
grep -E 'stat::number_of_executed_units|Done' "$log" | tail -n 2
echo "fuzz: fuzz_$target: no crash in ${secs}s"

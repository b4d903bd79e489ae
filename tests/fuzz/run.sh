#!/bin/sh
# Runs the config-loader fuzzer for a bounded time (seconds, default 60) from a
# seed corpus of Kamal's fixtures and plumb's examples. A crash leaves its input
# in build/fuzz/; copy it to tests/fuzz/regressions/ so `make test` replays it.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-60}
corpus=build/fuzz/corpus
mkdir -p "$corpus"
for f in ../shared/kamal/fixtures/*.yml deploy-examples/*/config/*.yml tests/fuzz/regressions/*; do
	[ -f "$f" ] && cp "$f" "$corpus/$(echo "$f" | tr '/' '_')"
done
echo "fuzz: running fuzz_config for ${secs}s (untrusted mode)"
ASAN_OPTIONS=detect_leaks=1 ./build/fuzz/fuzz_config "$corpus" \
	-max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix=build/fuzz/ -print_final_stats=1 2>build/fuzz/log.txt || {
	tail -n 40 build/fuzz/log.txt
	echo "fuzz: crash found; the input is in build/fuzz/ (add it to tests/fuzz/regressions/)"
	exit 1
}
grep -E 'stat::number_of_executed_units|Done' build/fuzz/log.txt | tail -n 2
echo "fuzz: no crash in ${secs}s"

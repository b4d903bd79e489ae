#!/bin/sh
# Runs every unit-test binary given, sums their results and prints one closing
# line "unit: N passed, N failed, N skipped". Exit status is non-zero if any test
# failed or any binary crashed (a sanitizer report makes the binary exit non-zero).
cd "$(dirname "$0")/.." || exit 1
passed=0; failed=0; skipped=0; broken=""
out=$(mktemp)
for bin in "$@"; do
	# a hung test is a failure, not a hung CI run
	timeout "${UNIT_TIMEOUT:-300}" "$bin" >"$out" 2>&1
	rc=$?
	cat "$out"
	line=$(grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$out" | tail -n 1)
	if [ -z "$line" ] || [ $rc -ne 0 ]; then
		[ $rc -ne 0 ] && broken="$broken $(basename "$bin")(exit $rc)"
		[ -z "$line" ] && broken="$broken $(basename "$bin")(no result)"
		# a crashed or silent binary counts as a failure in the closing line
		[ -z "$line" ] && failed=$((failed + 1))
	fi
	if [ -n "$line" ]; then
		p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
		f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
		s=$(echo "$line" | sed -E -n 's/.* ([0-9]+) skipped$/\1/p')
		# a binary that reported no failure yet exited non-zero (a sanitizer
		# report at exit, a crash after the summary) is one failure
		[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
		passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
	fi
done
rm -f "$out"
[ -n "$broken" ] && echo "broken test binaries:$broken"
echo "unit: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ] && [ -z "$broken" ]

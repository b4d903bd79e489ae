#!/bin/sh
# Sets everything up on a fresh Debian machine and runs every test tier:
# unit tests (ASan+UBSan), a short fuzz run, and the end-to-end tests in the lab.
# Ends with one line "total: N passed, N failed, N skipped" over the unit and e2e tiers.
set -eu
cd "$(dirname "$0")/.."
./install-deps.sh all
# The real Kamal (Debian's Ruby gems) for the e2e tier, where ../shared has it;
# without it the tests that need it are skipped with the reason.
if [ -f ../shared/kamal-peer/install.sh ]; then
	sh ../shared/kamal-peer/install.sh || echo "all.sh: the real Kamal could not be installed" >&2
fi
make -j"$(nproc)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
# (sh has no pipefail: a tier's result is read from its closing line below)
make test 2>&1 | tee "$log"
unit=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}" || rc=1
make e2e 2>&1 | tee "$log"
e2e=$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
p=0; f=0; s=0
for line in "$unit" "$e2e"; do
	[ -n "$line" ] || { f=$((f + 1)); continue; } # a tier that reported nothing failed
	p=$((p + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
	f=$((f + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
	n=$(echo "$line" | sed -E -n 's/.* ([0-9]+) skipped$/\1/p')
	s=$((s + ${n:-0}))
done
echo "total: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ] || rc=1
exit $rc

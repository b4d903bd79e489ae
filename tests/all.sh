#!/bin/sh
# Sets everything up on a fresh Debian machine and runs every test tier:
# unit tests (ASan+UBSan), a short fuzz run, and the end-to-end tests in the lab.
set -eu
cd "$(dirname "$0")/.."
./install-deps.sh all
make -j"$(nproc)"
make test
make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
make e2e

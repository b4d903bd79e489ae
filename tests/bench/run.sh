#!/bin/sh
# Benchmarks (make bench; not part of CI). A placeholder until plumb's commands
# exist: it says what will be measured, and how, and always succeeds.
#
# Planned, each on the lab (tests/lab/lab.sh) with 3 and 10 hosts, with the ssh
# relays adding round-trip latency (LAB_DELAY_MS=0, 50, 200; the relays are at
# LAB_RELAY_n; this kernel has no netem):
#   - plumb plan, no changes: wall time, SSH round trips per host (sshd logs)
#   - plumb plan after a one-line env change: the same
#   - plumb apply of a new version (start-first rolling): wall time, downtime
#     seen by a client polling /up on every web host
#   - plumb watch: time from a push (lab_commit) to the fleet converged
#   - observation cost: docker/ssh commands per host per cycle
#   - the lab itself: startup time for 3 and 10 hosts (lab.sh up prints it)
echo "bench: nothing measured yet; planned:"
sed -n 's/^#   - /  - /p' "$0"
echo "bench: 0 benchmarks run"
exit 0

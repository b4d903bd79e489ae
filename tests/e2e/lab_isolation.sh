#!/usr/bin/env bash
# Lab self-test: each host has its own home: a file written under ~/.kamal on
# one host is absent on every other host and on the machine itself; the hosts
# have distinct addresses and distinct docker daemons.
set -euo pipefail
. "$LAB_LIB"
fail() { echo "FAIL: $*" >&2; exit 1; }
mark="labtest-$$-$RANDOM"
cleanup() { for ((n = 1; n <= LAB_N; n++)); do lab_on_host "$n" "rm -f ~/.kamal/$mark" || true; done; }
trap cleanup EXIT

for ((n = 1; n <= LAB_N; n++)); do
	lab_on_host "$n" "mkdir -p ~/.kamal && echo host$n > ~/.kamal/$mark" || fail "host $n: write failed"
done
for ((n = 1; n <= LAB_N; n++)); do
	got=$(lab_on_host "$n" "cat ~/.kamal/$mark") || fail "host $n: read failed"
	[ "$got" = "host$n" ] || fail "host $n sees '$got' in ~/.kamal/$mark (homes are shared)"
	[ "$(cat "$LAB_DIR/h$n/home/.kamal/$mark")" = "host$n" ] || fail "host $n: file not in its home dir"
done
lab_on_host 1 "rm ~/.kamal/$mark"
for ((n = 2; n <= LAB_N; n++)); do
	lab_on_host "$n" "test -f ~/.kamal/$mark" || fail "removing the file on host 1 removed it on host $n"
done
[ ! -e "/root/.kamal/$mark" ] || fail "the file appeared in the machine's own /root"
ids=$(for ((n = 1; n <= LAB_N; n++)); do lab_on_host "$n" "docker info --format '{{.ID}}'"; done | sort -u | wc -l)
[ "$ids" = "$LAB_N" ] || fail "hosts share docker daemons ($ids distinct ids for $LAB_N hosts)"
addrs=$(for ((n = 1; n <= LAB_N; n++)); do lab_on_host "$n" "ip -4 -o addr show eth0 | awk '{print \$4}'"; done | sort -u | wc -l)
[ "$addrs" = "$LAB_N" ] || fail "hosts do not have distinct addresses"
echo "$LAB_N hosts: own homes, own daemons, own addresses"

#!/usr/bin/env bash
# Lab self-test: every host answers SSH as root with the lab key under strict
# host-key checking (directly and through its relay), rejects an unknown key,
# and "docker" in an SSH session talks to that host's own daemon.
set -euo pipefail
. "$LAB_LIB"
fail() { echo "FAIL: $*" >&2; exit 1; }

empty=$(mktemp)
trap 'rm -f "$empty"' EXIT
for ((n = 1; n <= LAB_N; n++)); do
	ip=$(lab__host_ip "$n")
	out=$(lab_on_host "$n" 'echo "$(id -un) $HOME"') || fail "host $n: ssh failed"
	[ "$out" = "root /root" ] || fail "host $n: unexpected session: $out"

	root=$(lab_on_host "$n" "docker info --format '{{.DockerRootDir}}'") || fail "host $n: docker over ssh failed"
	[ "$root" = "$LAB_DIR/h$n/docker" ] || fail "host $n: docker talks to $root, not the host's own daemon"

	# Strict checking: an empty known_hosts must make ssh refuse the host.
	if ssh -i "$LAB_SSH_KEY" -F /dev/null -o UserKnownHostsFile="$empty" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 "root@$ip" true 2>/dev/null; then
		fail "host $n: ssh succeeded without a known host key"
	fi
	# Only the lab key is accepted.
	if ssh -F /dev/null -o IdentitiesOnly=yes -o IdentityFile=/dev/null -o UserKnownHostsFile="$LAB_KNOWN_HOSTS" \
		-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 "root@$ip" true 2>/dev/null; then
		fail "host $n: ssh succeeded without the lab key"
	fi

	# Through the relay (127.0.0.1:PORT), verified against the same key.
	v="LAB_RELAY_$n"; relay=${!v}
	# shellcheck disable=SC2046
	out=$(ssh $(lab_ssh_opts) -p "${relay##*:}" "root@${relay%:*}" 'docker info --format "{{.DockerRootDir}}"') ||
		fail "host $n: ssh through relay $relay failed"
	[ "$out" = "$LAB_DIR/h$n/docker" ] || fail "host $n: relay $relay leads to $out"
	echo "host $n ($ip): ssh, strict host key, own dockerd, relay $relay: ok"
done

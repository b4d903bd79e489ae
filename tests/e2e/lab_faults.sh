#!/usr/bin/env bash
# Lab self-test of the fault helpers: stopping and starting sshd and dockerd,
# cutting and restoring a host's link, stopping and restarting a registry.
# Everything is restored at the end (also on failure).
set -euo pipefail
. "$LAB_LIB"
fail() { echo "FAIL: $*" >&2; exit 1; }
n=$LAB_N; ip=$(lab__host_ip "$n")
restore() {
	lab_restore_link "$n" || true
	lab_start_sshd "$n" || true
	lab_start_dockerd "$n" || true
	lab_start_registry plain || true
	lab_on_host "$n" 'docker rm -f labtest-f >/dev/null 2>&1; docker image prune -af >/dev/null 2>&1' || true
}
trap restore EXIT

lab_stop_sshd "$n"
if lab_on_host "$n" true 2>/dev/null; then fail "ssh works with sshd stopped"; fi
lab_start_sshd "$n"
lab_on_host "$n" true || fail "ssh fails after sshd restart"
echo "sshd stop/start: ok"

lab_on_host "$n" "docker run -d --restart unless-stopped --name labtest-f $LAB_REGISTRY/optimus:v1 >/dev/null" || fail "run failed"
lab_stop_dockerd "$n"
if lab_on_host "$n" "docker ps" >/dev/null 2>&1; then fail "docker works with dockerd stopped"; fi
lab_start_dockerd "$n"
lab_on_host "$n" "docker ps" >/dev/null || fail "docker fails after dockerd restart"
for ((i = 0; i < 50; i++)); do
	[ "$(lab_on_host "$n" "docker inspect -f '{{.State.Running}}' labtest-f")" = true ] && break
	sleep 0.2
done
[ "$i" -lt 50 ] || fail "the unless-stopped container did not come back with dockerd"
echo "dockerd stop/start: ok (restart policy honoured)"

lab_cut_link "$n"
if timeout 8 ssh $(lab_ssh_opts) -o ConnectTimeout=2 "root@$ip" true 2>/dev/null; then fail "ssh works with the link cut"; fi
lab_restore_link "$n"
lab__wait_for "host $n after link restore" 10 lab_on_host "$n" true || fail "ssh fails after link restore"
echo "link cut/restore: ok"

lab_stop_registry plain
if curl -sf --max-time 2 "http://$LAB_REGISTRY/v2/" >/dev/null; then fail "registry answers after stop"; fi
if lab_on_host "$n" "docker pull -q $LAB_REGISTRY/optimus:v2" >/dev/null 2>&1; then fail "pull works with the registry stopped"; fi
lab_start_registry plain
lab_on_host "$n" "docker pull -q $LAB_REGISTRY/optimus:v2" >/dev/null || fail "pull fails after registry restart"
echo "registry stop/start: ok"

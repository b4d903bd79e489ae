#!/usr/bin/env bash
# End-to-end: the fleet's trust holes and the run deadline, on the lab's hosts:
#   - --base whose desired state cannot be built: reported, exit 1 (was dropped);
#   - PLUMB_SSH_ACCEPT_NEW=1 with a jump host the repository chose (ssh.proxy):
#     the target's key is not recorded (known_hosts unchanged), and it says why;
#   - this machine by another name (127.1, LOCALHOST, the lab bridge's address)
#     is refused in an untrusted run without PLUMB_ALLOW_LOCAL;
#   - an encrypted key in the repository with stdin an open pipe: no prompt, no
#     hang; the message says the key was skipped;
#   - a tarpit host (accepts, never speaks) with --timeout 3s: the run ends in
#     about 3 s, the hosts are unknown ("deadline reached"), exit 1.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
tarpit_pid=""
trap '[ -n "$tarpit_pid" ] && kill "$tarpit_pid" 2>/dev/null; plan_clean; rm -rf "$T"' EXIT
plan_clean
unset SSH_AUTH_SOCK

CFG=$LAB_GIT_WORK/config/deploy.yml
H2=$(lab__host_ip 2)

# run NAME CMD...: in the work clone, stdin an open pipe that never writes.
run() {
	local name=$1 s
	shift
	s=$(date +%s.%N)
	set +e
	(cd "$LAB_GIT_WORK" && timeout -k 5 30 "$@") >"$T/$name.out" 2>"$T/$name.err" < <(sleep 40)
	RC=$?
	set -e
	SECS=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
	echo "$name: exit $RC in ${SECS}s"
}

# ---- --base with a desired state that cannot be built: reported ----
R=$(PC_ACC_EXTRA=$'cache:\n  image: '"$LAB_REGISTRY"$'/postgres:17\n  host: '"$H1"$'\n  port: "not-a-port"' \
	plan_commit "fleet_trust: a base whose accessory port is not a mapping")
A=$(plan_commit "fleet_trust: the lab's optimus")
plan_run base_bad --format json --version "$A" --base "$R"
[ "$RC" = 1 ] || { cat "$T/base_bad.err"; fail "base_bad: exit $RC (the base's error was dropped)"; }
grep -q "not-a-port" "$T/base_bad.err" || { cat "$T/base_bad.err"; fail "base_bad: the cause is not shown"; }
grep -q -- "--base $R" "$T/base_bad.err" || { cat "$T/base_bad.err"; fail "base_bad: --base not named"; }
base_cfg=$(cat "$CFG")

# ---- accept-new through a repository-chosen jump host: nothing recorded ----
grep -v "^$H2[ ,]" "$LAB_KNOWN_HOSTS" >"$T/kh"
cp "$T/kh" "$T/kh.before"
cat >"$CFG" <<EOF
service: optimus
image: optimus
registry: { username: u, password: p }
servers: [$H2]
ssh:
  user: $LAB_SSH_USER
  proxy: $LAB_SSH_USER@$H1
EOF
run jump env PLUMB_SSH_KNOWN_HOSTS="$T/kh" PLUMB_SSH_ACCEPT_NEW=1 "$PLUMB" hosts
[ "$RC" = 1 ] || { cat "$T/jump.err"; fail "jump: exit $RC"; }
cmp -s "$T/kh" "$T/kh.before" || { diff "$T/kh.before" "$T/kh" || true; fail "jump: known_hosts changed"; }
grep -q "was not recorded" "$T/jump.out" || { cat "$T/jump.out" "$T/jump.err"; fail "jump: no reason given"; }
grep -q "ssh.proxy" "$T/jump.out" || fail "jump: the reason does not name ssh.proxy"
# the same without a jump: the invocation's accept-new records the key
sed -i '/proxy:/d' "$CFG"
run direct env PLUMB_SSH_KNOWN_HOSTS="$T/kh" PLUMB_SSH_ACCEPT_NEW=1 "$PLUMB" hosts
[ "$RC" = 0 ] || { cat "$T/direct.out" "$T/direct.err"; fail "direct: exit $RC"; }
! cmp -s "$T/kh" "$T/kh.before" || fail "direct: no key recorded (the control case)"

# ---- this machine by another name ----
for h in 127.1 LOCALHOST "$LAB_BRIDGE_IP" 0; do
	printf 'service: optimus\nimage: optimus\nregistry: { username: u, password: p }\nservers: ["%s"]\n' "$h" >"$CFG"
	run "local_$h" env -u PLUMB_ALLOW_LOCAL "$PLUMB" hosts
	[ "$RC" = 1 ] || fail "local $h: exit $RC"
	grep -q "is this machine" "$T/local_$h.err" || { cat "$T/local_$h.err"; fail "local $h: not refused"; }
	[ ! -s "$T/local_$h.out" ] || fail "local $h: observed"
done

# ---- an encrypted key, stdin an open pipe: skipped, no prompt ----
ssh-keygen -q -t ed25519 -N pass -f "$LAB_GIT_WORK/config/enc_key" >/dev/null
printf 'service: optimus\nimage: optimus\nregistry: { username: u, password: p }\nservers: [%s]\nssh:\n  user: %s\n  keys: [config/enc_key]\n' \
	"$H1" "$LAB_SSH_USER" >"$CFG"
run enc env -u PLUMB_SSH_KEY -u PLUMB_SSH_KEY_PASSPHRASE "$PLUMB" hosts
[ "$RC" = 1 ] || { cat "$T/enc.out" "$T/enc.err"; fail "enc: exit $RC"; }
awk -v s="$SECS" 'BEGIN{exit !(s < 15)}' || fail "enc: took ${SECS}s (a prompt?)"
grep -q "enc_key skipped: it needs a passphrase" "$T/enc.out" || { cat "$T/enc.out" "$T/enc.err"; fail "enc: no message"; }
! grep -qi "pass phrase" "$T/enc.err" || fail "enc: prompted"
rm -f "$LAB_GIT_WORK/config/enc_key" "$LAB_GIT_WORK/config/enc_key.pub"

# ---- a tarpit: the run ends at its deadline ----
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept())
' >"$T/tarpit.port" &
tarpit_pid=$!
for _ in $(seq 50); do [ -s "$T/tarpit.port" ] && break; sleep 0.1; done
P=$(cat "$T/tarpit.port")
printf 'service: optimus\nimage: optimus\nregistry: { username: u, password: p }\nservers: [tarpit-a.invalid, tarpit-b.invalid]\nsshkit:\n  max_concurrent_starts: 1\n' >"$CFG"
run tarpit env PLUMB_SSH_CONNECT_TO="tarpit-a.invalid=127.0.0.1:$P,tarpit-b.invalid=127.0.0.1:$P" \
	"$PLUMB" hosts --timeout 3s
[ "$RC" = 1 ] || { cat "$T/tarpit.out" "$T/tarpit.err"; fail "tarpit: exit $RC"; }
awk -v s="$SECS" 'BEGIN{exit !(s >= 2.5 && s < 6)}' || fail "tarpit: took ${SECS}s, want ~3 s"
[ "$(grep -c "unknown - deadline reached" "$T/tarpit.out")" = 2 ] || { cat "$T/tarpit.out"; fail "tarpit: hosts not unknown at the deadline"; }
echo "$base_cfg" >"$CFG"
echo "fleet_trust: ok"

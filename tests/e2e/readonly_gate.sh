#!/usr/bin/env bash
# End-to-end: a read-only key behind `plumb observe-gate` (an authorized_keys
# forced command) on real hosts:
#   - what arrives as $SSH_ORIGINAL_COMMAND is recorded, and the gate runs it;
#   - `plumb plan` with that key works against a deployed fleet: exit 0 in
#     sync, exit 2 with the right step after a container is stopped by hand;
#   - docker ps, docker rm -f, sh -c id, and the recorded command with
#     "; touch FILE" appended are refused: exit non-zero, nothing happens;
#   - `plumb apply --yes` with that key fails and changes nothing (same
#     containers, same ids, no lock).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
unset SSH_AUTH_SOCK

AK=$LAB_DIR/authorized_keys
cp "$AK" "$T/authorized_keys.orig"
trap 'cp "$T/authorized_keys.orig" "$AK"; plan_clean; rm -rf "$T"' EXIT
plan_clean

# The gate, and in front of it a recorder of what arrives (the lab's hosts
# share this machine's file system outside /root).
"$PLUMB" observe-gate >"$T/plumb-observe-gate"
cat >"$T/record-then-gate" <<EOF_REC
#!/bin/sh
printf '%s' "\${SSH_ORIGINAL_COMMAND-}" >'$T/last-command'
exec /bin/sh '$T/plumb-observe-gate'
EOF_REC
chmod 755 "$T/plumb-observe-gate" "$T/record-then-gate"
ssh-keygen -q -t ed25519 -N '' -C plumb-readonly -f "$T/ro_key"
printf 'command="%s",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty %s\n' \
	"$T/record-then-gate" "$(cat "$T/ro_key.pub")" >>"$AK"

ro_ssh() { # ro_ssh HOSTNUM COMMAND: ssh with the read-only key; stdout/stderr in $T/ro.out/err
	# shellcheck disable=SC2046
	ssh $(lab_ssh_opts | sed "s|-i $LAB_SSH_KEY|-i $T/ro_key|") -p "$LAB_SSH_PORT" \
		"$LAB_SSH_USER@$(lab__host_ip "$1")" "$2" >"$T/ro.out" 2>"$T/ro.err"
}

A=$(plan_commit "readonly_gate: the lab's optimus")
lab_tag v1 "$A"
plan_sim_fleet "$A" v1

# ---- plan with the read-only key ----
PLUMB_SSH_KEY=$T/ro_key plan_run ro_synced --format json
plan_expect_rc ro_synced 0
plan_expect ro_synced ""
[ -s "$T/last-command" ] || fail "the gate recorded no command"
case $(head -c 6 "$T/last-command") in "sh -c ") ;; *) fail "what arrives does not start with sh -c" ;; esac
grep -q "plumb-observe [0-9a-f]\{32\} optimus lock-optimus s:optimus s:optimus-db n:kamal-proxy" \
	"$T/last-command" || fail "the observation's arguments are not as expected"
echo "arrives as SSH_ORIGINAL_COMMAND: $(wc -c <"$T/last-command") bytes"
cp "$T/last-command" "$T/observe-command"

lab_on_host 2 "docker stop optimus-web-$A >/dev/null"
PLUMB_SSH_KEY=$T/ro_key plan_run ro_changed --format json --version "$A"
plan_expect_rc ro_changed 2
grep -q "optimus-web-$A" "$T/ro_changed.out" || fail "ro_changed: the stopped container is not in the plan"
[ "$(plan_get "$T/ro_changed.out" .hosts[1].status)" = ok ] || fail "ro_changed: host 2 not observed"
[ "$(plan_get "$T/ro_changed.out" .summary.changes)" -ge 1 ] || fail "ro_changed: no change counted"

# ---- replayed exactly, the recorded command runs ----
ro_ssh 1 "$(cat "$T/observe-command")" || fail "the recorded observation command is refused when replayed"
grep -q "^PLUMB-OBS 1$" "$T/ro.out" || fail "the replayed observation printed no PLUMB-OBS line"

# ---- everything else is refused ----
plan_snapshot "$T/refused.before"
refuse() { # refuse WHAT COMMAND
	if ro_ssh 1 "$2"; then fail "$1: not refused"; fi
	grep -q "plumb-observe-gate: refused" "$T/ro.err" || { cat "$T/ro.err"; fail "$1: no refusal message"; }
	grep -q "PLUMB-OBS" "$T/ro.out" && fail "$1: the observation ran"
	[ -e "$T/pwned" ] && fail "$1: the command ran"
	echo "refused: $1"
}
refuse "docker ps" "docker ps"
refuse "docker rm -f" "docker rm -f optimus-db"
refuse "sh -c id" "sh -c 'id >$T/pwned'"
refuse "touch appended" "$(cat "$T/observe-command"); touch $T/pwned"
refuse "no command" ""
plan_snapshot "$T/refused.after"
cmp -s "$T/refused.before" "$T/refused.after" || { diff "$T/refused.before" "$T/refused.after" >&2; fail "a refused command changed a host"; }

# ---- apply with the read-only key fails, changing nothing ----
plan_snapshot "$T/apply.before"
set +e
(cd "$LAB_GIT_WORK" && PLUMB_SSH_KEY=$T/ro_key "$PLUMB" apply --yes --skip-hooks --version "$A") >"$T/apply.out" 2>"$T/apply.err"
rc=$?
set -e
[ "$rc" -ne 0 ] || { cat "$T/apply.out"; fail "apply with the read-only key succeeded"; }
plan_snapshot "$T/apply.after"
cmp -s "$T/apply.before" "$T/apply.after" || { diff "$T/apply.before" "$T/apply.after" >&2; fail "apply with the read-only key changed a host"; }
cat "$T/apply.out" "$T/apply.err" >"$T/apply.all"
# the gate answers the first command that is not the observation with exit 1 and no frame
grep -q "exit status 1, no END marker" "$T/apply.all" || { cat "$T/apply.all"; fail "apply: not stopped by the gate"; }
echo "apply with the read-only key: exit $rc, hosts unchanged"; tail -n 8 "$T/apply.all"
echo "readonly_gate: ok"

#!/usr/bin/env bash
# End-to-end: what an untrusted repository cannot do on the machine running
# `plumb plan` / `plumb hosts`, on the lab's real hosts:
#   - x-plumb.ssh.known_hosts outside the repository is refused (nothing is
#     contacted); inside it, it is used;
#   - x-plumb.ssh.accept_new_host_keys is ignored (the host is refused and the
#     file stays empty); PLUMB_SSH_ACCEPT_NEW=1 from the invocation accepts
#     and records the keys (in the repository's file);
#   - ssh.keys outside the repository are not used (no PLUMB_SSH_KEY, no agent:
#     the hosts refuse us), --trusted uses them;
#   - a plain-HTTP registry (x-plumb registry.insecure) gets no credentials
#     from the runner's docker config (a fake registry records what it gets);
#   - host-supplied strings: a terminal escape in an env key is escaped in
#     text; an env key that is not UTF-8 is kept in JSON;
#   - plan --out to a full disk fails cleanly, without leaking (sanitizer build).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
srv_pid=""
trap '[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; plan_clean; rm -rf "$T"' EXIT
plan_clean
unset SSH_AUTH_SOCK

A=$(plan_commit "trust_plan: the lab's optimus")
CFG=$LAB_GIT_WORK/config/deploy.yml
base_cfg=$(cat "$CFG")

# hosts_run NAME ENV... -- ARGS: plumb hosts in the work clone, untrusted unless ARGS say.
hosts_run() {
	local name=$1
	shift
	set +e
	(cd "$LAB_GIT_WORK" && env "$@") >"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	set -e
	echo "hosts $name: exit $RC"
}

# ---- known_hosts outside the repository: refused ----
{ echo "$base_cfg"; echo "  ssh:"; echo "    known_hosts: $LAB_KNOWN_HOSTS"; } >"$CFG"
hosts_run kh_out -u PLUMB_SSH_KNOWN_HOSTS PLUMB_SSH_KEY="$LAB_SSH_KEY" "$PLUMB" hosts
[ "$RC" = 1 ] || fail "kh_out: exit $RC"
grep -q "x-plumb.ssh.known_hosts '$LAB_KNOWN_HOSTS' is outside the repository" "$T/kh_out.err" ||
	{ cat "$T/kh_out.err"; fail "kh_out: no refusal"; }
[ ! -s "$T/kh_out.out" ] || fail "kh_out: hosts were observed"
hosts_run kh_out_trusted -u PLUMB_SSH_KNOWN_HOSTS PLUMB_SSH_KEY="$LAB_SSH_KEY" "$PLUMB" hosts --trusted
[ "$RC" = 0 ] || { cat "$T/kh_out_trusted.err"; fail "kh_out_trusted: exit $RC"; }

# ---- inside: used; accept_new_host_keys from the repository: ignored ----
cp "$LAB_KNOWN_HOSTS" "$LAB_GIT_WORK/config/known_hosts"
{ echo "$base_cfg"; echo "  ssh:"; echo "    known_hosts: config/known_hosts"; } >"$CFG"
hosts_run kh_in -u PLUMB_SSH_KNOWN_HOSTS PLUMB_SSH_KEY="$LAB_SSH_KEY" "$PLUMB" hosts
[ "$RC" = 0 ] || { cat "$T/kh_in.err"; fail "kh_in: exit $RC"; }
: >"$LAB_GIT_WORK/config/known_hosts"
{ echo "$base_cfg"; echo "  ssh:"; echo "    known_hosts: config/known_hosts"; echo "    accept_new_host_keys: true"; } >"$CFG"
hosts_run accept_repo -u PLUMB_SSH_KNOWN_HOSTS PLUMB_SSH_KEY="$LAB_SSH_KEY" "$PLUMB" hosts
[ "$RC" = 1 ] || fail "accept_repo: exit $RC (an unknown host key was accepted)"
[ ! -s "$LAB_GIT_WORK/config/known_hosts" ] || fail "accept_repo: the repository's setting wrote host keys"
grep -q "x-plumb.ssh.accept_new_host_keys" "$T/accept_repo.err" || fail "accept_repo: not noted"
hosts_run accept_env -u PLUMB_SSH_KNOWN_HOSTS PLUMB_SSH_KEY="$LAB_SSH_KEY" PLUMB_SSH_ACCEPT_NEW=1 "$PLUMB" hosts
[ "$RC" = 0 ] || { cat "$T/accept_env.err"; fail "accept_env: exit $RC"; }
[ -s "$LAB_GIT_WORK/config/known_hosts" ] || fail "accept_env: no key recorded"
rm -f "$LAB_GIT_WORK/config/known_hosts"

# ---- ssh.keys outside the repository: not used untrusted ----
{ echo "$base_cfg"; echo "ssh:"; echo "  user: $LAB_SSH_USER"; echo "  keys: [\"$LAB_SSH_KEY\"]"; } >"$CFG"
hosts_run keys_out -u PLUMB_SSH_KEY "$PLUMB" hosts
[ "$RC" = 1 ] || fail "keys_out: exit $RC (the repository's key was used)"
grep -q "ssh.keys outside the repository" "$T/keys_out.err" || fail "keys_out: not noted"
hosts_run keys_trusted -u PLUMB_SSH_KEY "$PLUMB" hosts --trusted
[ "$RC" = 0 ] || { cat "$T/keys_trusted.err"; fail "keys_trusted: exit $RC"; }
echo "$base_cfg" >"$CFG"

# ---- host-supplied strings: no raw control bytes in text, every key in JSON ----
# (the observation already reduces env keys and control bytes on the host; a
# byte that is not UTF-8 survives it, in a bind-mount source here)
lab_on_host 1 "mkdir -p \"\$(printf '/tmp/plumb-m\377x')\" && docker run -d --name optimus-web-evil \
	--label service=optimus --label role=web --label destination= \
	-v \"\$(printf '/tmp/plumb-m\377x'):/m\" -e \"\$(printf 'ESC\033[31mKEY=1')\" $LAB_REGISTRY/optimus:v1 >/dev/null" ||
	fail "could not start the hostile container"
hosts_run esc "$PLUMB" hosts
[ "$RC" = 0 ] || { cat "$T/esc.err"; fail "esc: exit $RC"; }
grep -q 'optimus-web-evil' "$T/esc.out" || { cat -v "$T/esc.out"; fail "esc: container not shown"; }
! grep -q $'[\001-\010\016-\037\177]' "$T/esc.out" || { cat -v "$T/esc.out"; fail "esc: a raw control byte reached the terminal"; }
hosts_run esc_json "$PLUMB" hosts --json
[ "$RC" = 0 ] || fail "esc_json: exit $RC"
python3 - "$T/esc_json.out" <<'EOF' || fail "esc_json: a key was dropped"
import json, sys
d = json.load(open(sys.argv[1]))
c = [c for h in d["hosts"] for c in h["containers"] if c["name"] == "optimus-web-evil"][0]
m = c["mounts"][0]
assert m.get("source") == "/tmp/plumb-m\ufffdx", m
EOF
lab_on_host 1 "docker rm -f optimus-web-evil >/dev/null; rm -rf /tmp/plumb-m*"

# ---- plan --out on a full disk: an error, closed, no leak ----
SAN=$ROOT/build/san/plumb
if [ -x "$SAN" ]; then
	set +e
	(cd "$LAB_GIT_WORK" && ASAN_OPTIONS=detect_leaks=1 "$SAN" plan --format json --out /dev/full) \
		>"$T/full.out" 2>"$T/full.err"
	RC=$?
	set -e
	echo "plan full: exit $RC"
	[ "$RC" = 1 ] || { cat "$T/full.err"; fail "full: exit $RC"; }
	grep -q "cannot write /dev/full" "$T/full.err" || fail "full: no message"
	! grep -q "LeakSanitizer" "$T/full.err" || { cat "$T/full.err"; fail "full: leak"; }
fi

# ---- plain-HTTP registry: no credentials from the runner ----
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2",0)); print(s.getsockname()[1])')
python3 - "$port" "$T/auth.log" <<'EOF' &
import http.server, sys
port, log = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write("%s auth=%s\n" % (self.path, self.headers.get("Authorization", "-")))
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="r"')
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_HEAD = do_GET
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.2", port), H).serve_forever()
EOF
srv_pid=$!
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.2',$port),0.2)" 2>/dev/null && break; sleep 0.1; done
mkdir -p "$T/home/.docker"
printf '{"auths":{"127.0.0.2:%s":{"auth":"%s"}}}\n' "$port" "$(printf 'runner:runner-secret' | base64)" >"$T/home/.docker/config.json"
sed -e "s|^  server: .*|  server: 127.0.0.2:$port|" -e "s|^      - $LAB_REGISTRY\$|      - 127.0.0.2:$port|" <<<"$base_cfg" >"$CFG"
grep -q "127.0.0.2:$port" "$CFG" || fail "registry: config not rewritten"
set +e
(cd "$LAB_GIT_WORK" && HOME=$T/home "$PLUMB" plan --version v1) >"$T/reg.out" 2>"$T/reg.err"
RC=$?
set -e
echo "plan reg: exit $RC"
[ "$RC" = 1 ] || fail "reg: exit $RC"
[ -s "$T/auth.log" ] || { cat "$T/reg.err"; fail "reg: the fake registry was not asked"; }
! grep -q "auth=Basic" "$T/auth.log" || { cat "$T/auth.log"; fail "reg: the runner's credentials were sent over plain HTTP"; }
grep -q "no credentials sent" "$T/reg.err" || { cat "$T/reg.err"; fail "reg: not noted"; }
echo "$base_cfg" >"$CFG"
echo "trust_plan: ok ($A)"

#!/usr/bin/env bash
# Acceptance (issue 10): `plumb watch` on the lab repository (web without a
# proxy, so a clone without ../shared runs it for real), one daemon for the
# whole story, with its listener and a notification sink:
#   - v1 from empty hosts, then a version bump, rolled out with no other action;
#   - a commit changing only the job's env: only the job is replaced;
#   - `docker rm -f` of a web container: healed within a few intervals
#     (drift found and healed in /metrics; a notification);
#   - a changed Postgres option: not replaced (x-plumb watch_replace is off),
#     reported as awaiting `plumb apply`, OutOfSync;
#   - a commit whose image is not in the registry: the running version is
#     kept, status says "waiting for image", deployed once the tag is pushed;
#   - the broken image: held (status held), not retried, the good version
#     still answers, no broken container left running;
#   - a non-primary host with sshd stopped: reported unreachable while the
#     others converge; converges once sshd is back;
#   - webhook: a bad signature gets 401 and no cycle; a good one starts a
#     cycle at once (a second watcher with a long interval);
#   - /metrics passes a strict parser (and promtool when installed);
#   - kill -9 mid-rollout, restart: converges, status readable, the stale lock
#     reported and released;
#   - two watchers on one fleet never apply at once (the host lock decides).
# No secret in any output (apply_lib.sh's canaries).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# Behind the real kamal-proxy when the lab has its image (its health check is
# what fails the broken image); else without a proxy, where nothing checks
# /up (Kamal's readiness for a role without a proxy is "running"), so the
# broken-image case is skipped, and said.
if curl -sf -o /dev/null -H "Accept: ${LAB_MANIFEST_TYPE:-}" \
	"http://${LAB_REGISTRY:-none}/v2/kamal-proxy/manifests/v0.9.2" 2>/dev/null; then
	WITH_PROXY=1
	. "$(dirname "$0")/apply_lib.sh"
else
	WITH_PROXY=
	. "$(dirname "$0")/apply_lib.sh" --no-proxy
fi

S=$T/state
PORT=$((20000 + RANDOM % 20000))
NPORT=$((PORT + 1))
SECRET=$T/hook-secret
printf 'lab-webhook-secret-%s\n' "$RANDOM$RANDOM" >"$SECRET"
chmod 600 "$SECRET"
APPLY_CANARIES+=("$(cat "$SECRET")")

# ---- the notification sink: records every POST body, one per line ----
python3 - "$NPORT" "$T/notified" <<'PY' &
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n).decode('utf-8', 'replace').replace('\n', ' ')
        with open(out, 'a') as f:
            f.write(body + '\n')
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()
PY
SINK=$!
touch "$T/notified"

W=
watch_start() { # NAME ARGS: a watcher in the background, logs in $T/NAME.log
	local name=$1
	shift
	PLUMB_WATCH_TRACE=1 "$PLUMB" watch --repo "$LAB_GIT_URL" --state-dir "$S" "$@" >"$T/$name.log" 2>&1 &
	W=$!
	CUR_LOG=$T/$name.log
}
cleanup_watch() {
	# (only these: a plain `wait` would wait for the sshd the test restarted)
	[ -z "$W" ] || { kill -TERM "$W" 2>/dev/null; wait "$W" 2>/dev/null; } || true
	[ -z "${W6:-}" ] || { kill -TERM "$W6" 2>/dev/null; wait "$W6" 2>/dev/null; } || true
	kill "$SINK" 2>/dev/null || true
	wait "$SINK" 2>/dev/null || true
}
trap 'cleanup_watch; plan_clean; if [ -n "${APPLY_KEEP:-}" ]; then cp -r "$T" "$APPLY_KEEP"; fi; rm -rf "$T"' EXIT

status_json() { "$PLUMB" status --state-dir "$S" --json 2>/dev/null || true; }
st() { status_json | jq -r "$1" 2>/dev/null || true; }
# wait_until SECS DESC CMD...: polls CMD every 0.5 s
wait_until() {
	local secs=$1 desc=$2 t0
	shift 2
	t0=$(date +%s)
	until "$@" >/dev/null 2>&1; do
		if [ $(($(date +%s) - t0)) -ge "$secs" ]; then
			echo "--- watch log ($CUR_LOG)" >&2; grep -v "step:\|summary:" "$CUR_LOG" | tail -n 40 >&2 || true
			echo "--- status" >&2; status_json >&2
			fail "timed out after ${secs}s: $desc"
		fi
		sleep 0.5
	done
	echo "ok: $desc ($(($(date +%s) - t0))s)"
}
answers() { # every web host answers V on its own address
	local i ip got
	for ((i = 1; i < N; i++)); do
		ip=$(lab_on_host "$i" "docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \$(docker ps -q --filter label=service=optimus --filter label=role=web)") || return 1
		got=$(lab_on_host "$i" "curl -s --max-time 5 http://$ip/") || return 1
		[ "$got" = "$1" ] || return 1
	done
}
synced_at() { [ "$(st .sync)" = Synced ] && [ "$(st .applied_revision)" = "$1" ]; }
held_is() { [ "$(st .held_revision)" = "$1" ]; }
phase_is() { [ "$(st .phase)" = "$1" ]; }
cycles_over() { [ "$(st .cycles)" -gt "$1" ]; }
drift_healed() { [ "$(metric plumb_drift_healed_total)" -ge 1 ] 2>/dev/null; }
job_env_is() { lab_on_host "$N" "docker exec \$(docker ps -q --filter name=optimus-job-) env" | grep -qx "JOB_ONLY=$1"; }
host_unseen() { st '.hosts[] | select(.reachable != 1) | .host' | grep -qx "$1"; }
# sshd_down HOST: sshd stopped on a lab host, its open sessions too (the
# watcher's kept session included)
sshd_down() {
	local m
	m=$(lab__pid "h$1-sshd") || return 0
	pkill -KILL -P "$m" 2>/dev/null || true
	lab_stop_sshd "$1"
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" 'index($1, m "{") == 1 || $1 == m { print $2; exit }'; }
no_secret_in_logs() {
	local p f
	for f in "$T"/*.log "$S/status.json" "$S"/history*; do
		[ -f "$f" ] || continue
		for p in "${APPLY_CANARIES[@]}"; do
			! grep -qF -- "$p" "$f" || fail "a secret appears in $f"
		done
	done
}

# ---- v1 from empty hosts ----
A=$(apply_commit v1 "watch: v1")
watch_start w --interval 1s --listen "127.0.0.1:$PORT" --webhook-secret-file "$SECRET" \
	--notify "http://127.0.0.1:$NPORT/hook"
wait_until 120 "v1 deployed by the watcher" synced_at "$A"
answers v1 || fail "v1 does not answer"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")" = 200 ] || fail "healthz"

# ---- a version bump: rolled out with no other action ----
export PC_CLEAR_EXTRA="FEATURE: two"
B=$(apply_commit v2 "watch: v2")
wait_until 120 "v2 rolled out" synced_at "$B"
answers v2 || fail "v2 does not answer"
DB1=$(apply_db_id)

# ---- only the job's env ----
WEB_IDS=$(apply_role_ids web)
JOB1=$(apply_role_ids job)
export PC_JOB_ENV="JOB_ONLY: only"
C=$(apply_commit v2 "watch: job env")
wait_until 120 "job env applied" synced_at "$C"
[ "$(apply_role_ids web)" = "$WEB_IDS" ] || fail "jobenv: a web container was replaced"
[ "$(apply_role_ids job)" != "$JOB1" ] || fail "jobenv: the job was not replaced"

# ---- drift: a web container removed by hand ----
lab_on_host 1 "docker rm -f \$(docker ps -q --filter label=service=optimus --filter label=role=web)" >/dev/null
wait_until 60 "the removed web container is back" answers v2
wait_until 30 "drift healed counted" drift_healed
wait_until 30 "drift healed notified" grep -q drift "$T/notified"
[ "$(apply_role_ids job)" != "" ] || fail "the job is gone"
[ "$(apply_db_id)" = "$DB1" ] || fail "Postgres was replaced"

# ---- drift that docker ps does not show: a restart policy changed by hand ----
# (quiet cycles answer from the last observation; docker events says this one
# changed something)
web_policy() { lab_on_host 1 "docker inspect --format '{{.HostConfig.RestartPolicy.Name}}' \$(docker ps -q --filter label=service=optimus --filter label=role=web)"; }
policy_is() { [ "$(web_policy 2>/dev/null)" = "$1" ]; }
quiet_cycles() { [ "$(grep -c 'trace: cycle .*[1-9] unchanged' "$CUR_LOG")" -gt "$1" ]; }
Q0=$(grep -c 'trace: cycle .*[1-9] unchanged' "$CUR_LOG" || true)
wait_until 30 "quiet cycles answered from the last observation" quiet_cycles "$Q0"
[ "$(web_policy)" = unless-stopped ] || fail "the web container's restart policy is $(web_policy)"
lab_on_host 1 "docker update --restart no \$(docker ps -q --filter label=service=optimus --filter label=role=web)" >/dev/null
wait_until 60 "the restart policy changed by hand is put back" policy_is unless-stopped
wait_until 60 "v2 still answers" answers v2

# ---- a changed Postgres: reported, left to `plumb apply` ----
export PC_DB_ENV="POSTGRES_INITDB_ARGS: --data-checksums"
DBC=$(apply_commit v2 "watch: a Postgres option")
wait_until 60 "the Postgres change awaits apply" sh -c "$PLUMB status --state-dir '$S' | grep -q 'awaiting .plumb apply.'"
sleep 3
[ "$(apply_db_id)" = "$DB1" ] || fail "watch replaced Postgres without x-plumb watch_replace"
[ "$(st .sync)" = OutOfSync ] || fail "a pending Postgres change is not OutOfSync"
unset PC_DB_ENV
: "$DBC"

# ---- waiting for an image that is not pushed yet ----
D=$(plan_commit "watch: image not pushed yet")
wait_until 60 "waiting for image" sh -c "$PLUMB status --state-dir '$S' | grep -q 'waiting for image'"
answers v2 || fail "waiting: v2 no longer answers"
lab_tag v2 "$D"
wait_until 120 "deployed once the image is pushed" synced_at "$D"

# ---- the broken image: held, not retried ----
if [ -n "$WITH_PROXY" ]; then
E=$(apply_commit bad "watch: broken")
wait_until 120 "the broken revision is held" held_is "$E"
answers v2 || fail "held: v2 no longer answers"
apply_no_running bad
n1=$(grep -c "apply.*${E:0:7}" "$T/w.log" || true)
sleep 5
n2=$(grep -c "apply.*${E:0:7}" "$T/w.log" || true)
[ "$n1" = "$n2" ] || fail "the held revision was retried ($n1 -> $n2 applies)"
"$PLUMB" status --state-dir "$S" | grep -qi held || fail "status does not say held"
grep -q failed "$T/notified" || fail "no notification of the failed rollout"
else
	echo "SKIP (part): the broken image needs kamal-proxy's health check (../shared/kamal-proxy is absent)"
fi

# ---- /metrics: a strict parser, and promtool when there ----
curl -s "http://127.0.0.1:$PORT/metrics" >"$T/metrics.txt"
python3 - "$T/metrics.txt" <<'PY' || fail "/metrics is not valid Prometheus text"
import re, sys
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
lab = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^(%s)(\{(%s)(,%s)*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)( -?[0-9]+)?$' % (name, lab, lab))
typed = {}
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip('\n')
    if not line: continue
    if line.startswith('# TYPE '):
        f, t = line.split()[2:4]
        assert t in ('counter', 'gauge', 'histogram', 'summary', 'untyped'), line
        assert f not in typed, 'second TYPE for %s' % f
        typed[f] = t; continue
    if line.startswith('#'): continue
    m = sample.match(line)
    assert m, 'line %d: %r' % (n, line)
    base = re.sub(r'_(bucket|sum|count|total)$', '', m.group(1))
    assert m.group(1) in typed or base in typed, 'no TYPE before %s' % m.group(1)
PY
if command -v promtool >/dev/null; then
	promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 || { cat "$T/promtool.out" >&2; fail "promtool rejects /metrics"; }
else
	echo "note: promtool not installed: /metrics checked by the strict parser only"
fi

# ---- a non-primary host unreachable: the others converge ----
H2=$(lab__host_ip 2)
sshd_down 2
export PC_JOB_ENV="JOB_ONLY: again"
F=$(apply_commit v2 "watch: while host 2 is down")
wait_until 120 "the job host converged while host 2 is down" job_env_is again
wait_until 30 "host 2 reported as not reachable" host_unseen "$H2"
"$PLUMB" status --state-dir "$S" | grep -q "$H2.*no" || fail "status does not show host 2 unreachable"
lab_start_sshd 2
wait_until 120 "host 2 converged once sshd is back" synced_at "$F"
[ "$(st '[.hosts[] | select(.sync != "Synced")] | length')" = 0 ] || fail "a host is not Synced"

# ---- webhook ----
sig() { printf '%s' "$1" | openssl dgst -sha256 -hmac "$(cat "$SECRET")" | sed 's/^.* //'; }
body='{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}'
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-GitHub-Event: push' \
	-H "X-Hub-Signature-256: sha256=$(sig other)" --data "$body" "http://127.0.0.1:$PORT/webhook")
[ "$code" = 401 ] || fail "a bad signature got $code, not 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-GitHub-Event: push' --data "$body" \
	"http://127.0.0.1:$PORT/webhook")
[ "$code" = 401 ] || fail "a missing signature got $code, not 401"
kill -TERM "$W"; wait "$W" 2>/dev/null || true; W=
watch_start w2 --interval 1h --listen "127.0.0.1:$PORT" --webhook-secret-file "$SECRET"
wait_until 60 "the long-interval watcher ran its first cycle" phase_is idle
c0=$(st .cycles)
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-GitHub-Event: push' \
	-H "X-Hub-Signature-256: sha256=$(sig "$body")" --data "$body" "http://127.0.0.1:$PORT/webhook")
case $code in 200 | 202) ;; *) fail "a valid webhook got $code" ;; esac
wait_until 10 "the webhook started a cycle at once" cycles_over "$c0"
kill -TERM "$W"; wait "$W" 2>/dev/null || true; W=

# ---- kill -9 mid-rollout, then restart ----
G=$(apply_commit v1 "watch: back to v1")
watch_start w3 --interval 1s
wait_until 60 "the rollout started" grep -q "apply" "$T/w3.log"
sleep 0.5
kill -9 "$W"; wait "$W" 2>/dev/null || true; W=
status_json | jq -e . >/dev/null || fail "the status is not readable after kill -9"
watch_start w4 --interval 1s
wait_until 120 "converged after kill -9" synced_at "$G"
answers v1 || fail "v1 does not answer after kill -9 and restart"
apply_no_lock w4
if grep -q "released the stale deploy lock" "$T/w4.log"; then
	echo "ok: the lock the killed watcher left was reported and released"
else
	echo "note: the killed watcher had not taken the lock yet"
fi
grep -q "released the stale deploy lock" "$T/w4.log" || ! grep -q "lock.*held" "$T/w4.log" ||
	fail "a stale lock was seen but not released"
[ "$(apply_db_id)" = "$DB1" ] || fail "Postgres was replaced"

# ---- two watchers on one fleet never apply at once ----
# Both with a long interval, woken together (SIGHUP) on one commit: both plan
# it; one takes Kamal's lock and applies, the other finds the lock held (or,
# later, nothing to do). Exactly one apply of the commit, one job container.
kill -TERM "$W"; wait "$W" 2>/dev/null || true; W=
watch_start w5 --interval 1h
"$PLUMB" watch --repo "$LAB_GIT_URL" --state-dir "$T/state2" --interval 1h >"$T/w6.log" 2>&1 &
W6=$!
wait_until 60 "the first watcher is idle" phase_is idle
wait_until 60 "the second watcher is idle" grep -q "synced:" "$T/w6.log"
export PC_JOB_ENV="JOB_ONLY: two watchers"
H=$(apply_commit v1 "watch: two watchers")
kill -HUP "$W" "$W6"
wait_until 120 "the commit applied once" job_env_is "two watchers"
sleep 3
kill -HUP "$W" "$W6"
sleep 3
kill -TERM "$W6"; wait "$W6" 2>/dev/null || true
applies=$(cat "$T/w5.log" "$T/w6.log" | grep -c "applied: ${H:0:7}" || true)
[ "$applies" = 1 ] || fail "two watchers: $applies applies of ${H:0:7}, want exactly 1"
if grep -h "error:.*lock" "$T/w5.log" "$T/w6.log" >"$T/lockmsg"; then
	echo "ok: the other watcher was refused by the lock: $(head -n 1 "$T/lockmsg")"
else
	echo "note: the other watcher planned after the apply (nothing to do)"
fi
[ "$(lab_on_host "$N" 'docker ps -q --filter name=optimus-job- | wc -l' | tr -d ' ')" = 1 ] || fail "two watchers: not one job container"
apply_no_lock two_watchers
"$PLUMB" status --state-dir "$S" >/dev/null || fail "status"

# ---- plan takes the watcher's last applied revision as its base ----
(cd "$LAB_GIT_WORK" && "$PLUMB" plan --state-dir "$S") >"$T/plan_base.out" 2>"$T/plan_base.err" || true
grep -q "base: ${H:0:12} (the watcher's last applied revision)" "$T/plan_base.err" ||
	{ cat "$T/plan_base.err" >&2; fail "plan did not take the watcher's last applied revision as its base"; }

no_secret_in_logs
echo "PASS watch"

#!/usr/bin/env bash
# plumb on the optimus example, against real local hosts.
#
# Brings up a small lab on this machine (2 hosts: network namespaces, each with
# its own dockerd and sshd; a registry on this machine's 127.0.0.1:PORT like
# the seed's localhost:5555, reached by the hosts only through plumb's SSH
# reverse tunnel; the example's git repository), then:
#   1. plumb config  — the resolved configuration, secrets redacted
#   2. plumb plan    — empty hosts: every container to create (exit 2)
#   3. plumb apply   — Postgres, kamal-proxy + web on host 1, job on host 2
#   4. the app answers through kamal-proxy; plumb plan is in sync (exit 0)
#   5. a commit changes the job role's env: plumb apply replaces the job only,
#      the web answering all along
#   6. a new app version, then plumb rollback: the previous one answers again
#   7. plumb watch (one cycle): main says version 2, so the GitOps loop puts
#      it back; plumb status shows where the fleet stands
# Everything the lab started is stopped at the end (also on Ctrl-C).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

./install-deps.sh lab
make -s build/plumb
PLUMB=$ROOT/build/plumb

export LAB_ID=${LAB_ID:-d$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}
LAB_DIR=/tmp/plumb-lab-$LAB_ID
trap 'tests/lab/lab.sh down "$LAB_DIR" >/dev/null 2>&1 || true' EXIT
tests/lab/lab.sh up 2 >/dev/null
set -a
. "$LAB_DIR/lab.env"
set +a
. "$LAB_LIB"

# plumb reaches the lab's hosts with the lab's key and known_hosts
export PLUMB_SSH_KEY=$LAB_SSH_KEY PLUMB_SSH_KNOWN_HOSTS=$LAB_KNOWN_HOSTS
APP=$LAB_DIR/git/work
CFG=$APP/config/deploy.yml
# The lab's secrets (test values), as Kamal would put them on the hosts
eval "$(grep -E '^(RAILS_MASTER_KEY|POSTGRES_PASSWORD)=' "$APP/.kamal/secrets")"
PORT=${LAB_REGISTRY_LOCAL##*:}
# The app's image comes from localhost:PORT (the seed's localhost:5555 style);
# kamal-proxy (when the lab has its image) from the lab's registry.
if curl -sf -o /dev/null -H "Accept: $LAB_MANIFEST_TYPE" "http://$LAB_REGISTRY/v2/kamal-proxy/manifests/v0.9.2"; then
	PROXY=$(printf 'proxy:\n  run:\n    registry: %s\n    repository: kamal-proxy\n    version: v0.9.2\n' "$LAB_REGISTRY")
	URL=http://$LAB_HOST_1/
else
	echo "(no kamal-proxy image: ../shared/kamal-proxy is absent; the web role runs without the proxy)"
	PROXY=""
	lab_commit "lab: no proxy" "sed -i 's/^  web:\$/  web:\n    proxy: false\n    hosts:/' config/deploy.yml" >/dev/null
	URL=http://$LAB_HOST_1:80/
fi
lab_commit "lab: the registry on localhost:$PORT, kamal-proxy" bash -c '
	sed -i -e "s|^  server: $0\$|  server: localhost:$1|" -e "/^    insecure:/a\\      - localhost:$1" config/deploy.yml
	printf "%s\nreadiness_delay: 0\ndeploy_timeout: 15\n" "$2" >>config/deploy.yml' "$LAB_REGISTRY" "$PORT" "$PROXY" >/dev/null

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$2"; }
run() { # run CMD...: show its exit status without stopping the demo
	local rc=0
	"$@" || rc=$?
	echo "(exit $rc)"
}
# The example's hooks ask GitHub whether CI passed: the lab has no internet.
APPLY=(--trusted --yes --skip-hooks -c "$CFG")

step "1. The configuration (lab hosts $LAB_HOSTS)" "plumb config -c $CFG"
run "$PLUMB" config -c "$CFG"

version=$(cd "$APP" && git rev-parse HEAD)
lab_tag v1 "$version" >/dev/null
step "2. Plan against empty hosts (version $version)" "plumb plan --trusted -c $CFG"
run "$PLUMB" plan --trusted -c "$CFG"

step "3. Deploy from empty hosts" "plumb apply ${APPLY[*]}"
run "$PLUMB" apply "${APPLY[@]}"

step "4. The app answers; the hosts match the commit" "curl $URL; plumb plan --trusted -c $CFG"
echo "answer: $(curl -s --max-time 5 "$URL")"
run "$PLUMB" plan --trusted -c "$CFG"

newv=$(lab_commit "job: more Solid Queue threads" \
	"sed -i 's|^    cmd: bin/jobs\$|    cmd: bin/jobs\n    env:\n      clear:\n        JOB_CONCURRENCY: 5|' config/deploy.yml")
lab_tag v1 "$newv" >/dev/null
step "5. A commit gives the job role its own JOB_CONCURRENCY: only the job is replaced" \
	"plumb apply ${APPLY[*]}   (curl $URL in a loop meanwhile)"
(cd "$APP" && git show --stat --format='commit %H%n    %s' HEAD | head -n 4)
web_before=$(lab_on_host 1 'docker ps -q --filter label=role=web')
# the loop runs while load.run exists (its own appends never recreate that file)
: >"$LAB_DIR/load.log"
: >"$LAB_DIR/load.run"
( while [ -f "$LAB_DIR/load.run" ]; do curl -s --max-time 2 "$URL" >>"$LAB_DIR/load.log" || echo FAILED >>"$LAB_DIR/load.log"; done ) &
load=$!
run "$PLUMB" apply "${APPLY[@]}"
rm -f "$LAB_DIR/load.run"
wait "$load" || true
mv "$LAB_DIR/load.log" "$LAB_DIR/load.done"
echo "requests during the apply: $(wc -l <"$LAB_DIR/load.done"), failed: $(grep -vc '^v1$' "$LAB_DIR/load.done" || true)"
[ "$web_before" = "$(lab_on_host 1 'docker ps -q --filter label=role=web')" ] && echo "the web container is the same one"

v2=$(lab_commit "app: version 2" "sed -i 's|^    DB_HOST:|    FEATURE: two\n    DB_HOST:|' config/deploy.yml")
lab_tag v2 "$v2" >/dev/null
step "6. Version 2, then back" "plumb apply ${APPLY[*]}; plumb rollback $newv ${APPLY[*]}"
run "$PLUMB" apply "${APPLY[@]}"
echo "answer: $(curl -s --max-time 5 "$URL")"
run "$PLUMB" rollback "$newv" "${APPLY[@]}"
echo "answer: $(curl -s --max-time 5 "$URL")"

step "7. GitOps: main says version 2; one cycle of the watcher puts it back" \
	"plumb watch --repo $LAB_GIT_URL --once --skip-hooks; plumb status"
run "$PLUMB" watch --repo "$LAB_GIT_URL" --once --skip-hooks --state-dir "$LAB_DIR/watch-state"
echo "answer: $(curl -s --max-time 5 "$URL")"
run "$PLUMB" status --state-dir "$LAB_DIR/watch-state"

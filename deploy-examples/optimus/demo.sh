#!/usr/bin/env bash
# plumb on the optimus example, against real local hosts.
#
# Brings up a small lab on this machine (2 hosts: network namespaces, each with
# its own dockerd and sshd; a registry holding the optimus images; the example's
# git repository), then walks through what plumb does:
#   1. plumb config  — the resolved configuration, secrets redacted
#   2. plumb plan    — empty hosts: every container to create (exit 2)
#   3. the fleet is deployed the way `kamal deploy` + `kamal accessory boot` leave it
#   4. plumb hosts   — what plumb observes on each host (env values never leave a host)
#   5. plumb plan    — in sync: no changes (exit 0)
#   6. a commit changes the web role's env: plumb plan shows the one role to replace
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
# The lab has no kamal-proxy image, so the web role runs without the proxy
# here (plumb's own proxy is on the roadmap); committed as a deploy repo would.
lab_commit "lab: no proxy" "sed -i 's/^  web:\$/  web:\n    proxy: false\n    hosts:/' config/deploy.yml" >/dev/null

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$2"; }
run() { # run CMD...: show its exit status without stopping the demo
	local rc=0
	"$@" || rc=$?
	echo "(exit $rc)"
}

step "1. The configuration (lab hosts $LAB_HOSTS)" "plumb config -c $CFG"
run "$PLUMB" config -c "$CFG"

version=$(cd "$APP" && git rev-parse HEAD)
lab_tag v1 "$version" >/dev/null
step "2. Plan against empty hosts (version $version)" "plumb plan --trusted -c $CFG"
run "$PLUMB" plan --trusted -c "$CFG"

step "3. Deploy the fleet as Kamal would (web on host 1, job on host 2, Postgres on host 1)" "kamal deploy (simulated)"
SIM=tests/e2e/kamal_sim.sh
SIM_ENV=$'SOLID_QUEUE_IN_PUMA=false\nWEB_CONCURRENCY=2\nJOB_CONCURRENCY=3\nDB_HOST='"$LAB_HOST_1" \
	SIM_SECRETS="RAILS_MASTER_KEY=$RAILS_MASTER_KEY" SIM_TAG=v1 SIM_VOLUMES="optimus_storage:/rails/storage" \
	bash "$SIM" app 1 web "$version" >/dev/null
SIM_ENV=$'SOLID_QUEUE_IN_PUMA=false\nWEB_CONCURRENCY=2\nJOB_CONCURRENCY=3\nDB_HOST='"$LAB_HOST_1" \
	SIM_SECRETS="RAILS_MASTER_KEY=$RAILS_MASTER_KEY" SIM_TAG=v1 SIM_CMD=bin/jobs SIM_VOLUMES="optimus_storage:/rails/storage" \
	bash "$SIM" app 2 job "$version" >/dev/null
SIM_SECRETS="POSTGRES_PASSWORD=$POSTGRES_PASSWORD" SIM_PORT=5432 SIM_DIRS="data:/var/lib/postgresql/data" \
	bash "$SIM" accessory 1 db "$LAB_REGISTRY/postgres:17" >/dev/null
echo "deployed $version"

step "4. What plumb sees on the hosts" "plumb hosts -c $CFG"
run "$PLUMB" hosts -c "$CFG"

step "5. Plan: hosts match the commit" "plumb plan --trusted -c $CFG"
run "$PLUMB" plan --trusted -c "$CFG"

newv=$(lab_commit "job: more Solid Queue threads" \
	"sed -i 's|^    cmd: bin/jobs\$|    cmd: bin/jobs\n    env:\n      clear:\n        JOB_CONCURRENCY: 5|' config/deploy.yml")
lab_tag v1 "$newv" >/dev/null
step "6. A new commit (same image content) gives the job role its own JOB_CONCURRENCY" \
	"plumb plan --trusted -c $CFG --base $version"
(cd "$APP" && git show --stat --format='commit %H%n    %s' HEAD | head -n 4)
# --base: the deployed revision, so the plan can also say what a value was
run "$PLUMB" plan --trusted -c "$CFG" --base "$version"

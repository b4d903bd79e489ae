#!/usr/bin/env bash
# `plumb apply` when a host changes between the observation its plan was
# built from and the deploy lock (another deploy finished in between): the
# pre-deploy hook (run once the lock is held, before any step) replaces the
# web container of host 2 by hand, under the same name. Then:
#   - apply exits 1 and says the host changed since it was observed;
#   - on host 2 nothing was done: the hand-made container still runs (same
#     id), no container of the new version was created, nothing stopped;
#   - the lock is released;
#   - the next apply (without the hook) converges, and plan exits 0.
# Runs without kamal-proxy (web with `proxy: false`), so it needs no ../shared.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh" --no-proxy
web_on() { lab_on_host "$1" 'docker ps -a --filter label=service=optimus --filter label=role=web --format "{{.Names}} {{.ID}} {{.State}}" | sort'; }

A=$(apply_commit v1 "apply_stale: v1")
apply_run first apply --trusted --yes --skip-hooks
apply_expect_rc first 0

# the hook: "another deploy" on host 2, once plumb holds the lock
cat >"$T/pre-deploy" <<EOF
#!/usr/bin/env bash
. "$LAB_LIB"
LAB_SSH_KEY=$LAB_SSH_KEY LAB_KNOWN_HOSTS=$LAB_KNOWN_HOSTS LAB_SSH_USER=$LAB_SSH_USER LAB_SSH_PORT=$LAB_SSH_PORT
LAB_HOST_2=$LAB_HOST_2
export LAB_SSH_KEY LAB_KNOWN_HOSTS LAB_SSH_USER LAB_SSH_PORT LAB_HOST_2
lab_on_host 2 'docker rm -f optimus-web-$A >/dev/null && docker run -d --name optimus-web-$A --network kamal --label service=optimus --label role=web $LAB_REGISTRY/optimus:v1 web >/dev/null' || exit 1
EOF
chmod +x "$T/pre-deploy"
B=$(lab_commit "apply_stale: v2 and a hook that redeploys host 2 by hand" \
	bash -c 'mkdir -p .kamal/hooks && cp "$0" .kamal/hooks/pre-deploy' "$T/pre-deploy")
lab_tag v2 "$B"
apply_run stale apply --trusted --yes
apply_expect_rc stale 1
grep -q "not the one observed" "$T/stale.out" "$T/stale.err" || { apply_show stale; fail "stale: the change is not named"; }
after=$(web_on 2)
echo "$after" | grep -q "^optimus-web-$A [0-9a-f]* running$" || fail "stale: the hand-made container is not running on host 2: $after"
[ "$(echo "$after" | wc -l)" -eq 1 ] || fail "stale: host 2 has another web container: $after"
hand=$(lab_on_host 2 "docker inspect --format '{{.Id}}' optimus-web-$A")
apply_no_lock stale
# host 2's container is the hand-made one, untouched (plumb stopped nothing there)
[ "$(lab_on_host 2 "docker inspect --format '{{.State.Running}}' $hand")" = true ] || fail "stale: host 2's container was stopped"

# without the hook, the next apply converges
apply_run again apply --trusted --yes --skip-hooks
apply_expect_rc again 0
plan_run after
plan_expect_rc after 0
echo "apply_stale: ok"

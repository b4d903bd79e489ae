#!/usr/bin/env bash
# Acceptance (issue 9): the seed's local registry. The app's image lives in a
# registry on this machine's 127.0.0.1:PORT (LAB_REGISTRY_LOCAL, like the
# seed's localhost:5555), which no host can reach: `plumb apply` has the
# hosts pull localhost:PORT/optimus through an SSH reverse tunnel, the app
# answers, and once apply is over the hosts cannot reach it any more.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"
PORT=${LAB_REGISTRY_LOCAL##*:}
LOCAL=localhost:$PORT

A0=$(plan_commit "apply_registry: v1")
A=$(lab_commit "apply_registry: the app's image in localhost:$PORT" \
	sed -i -e "s|^  server: $LAB_REGISTRY\$|  server: $LOCAL|" -e "/^    insecure:/a\\      - $LOCAL" config/deploy.yml)
[ -n "$A0" ] && lab_tag v1 "$A"
grep -q "server: $LOCAL" "$LAB_GIT_WORK/config/deploy.yml" || fail "the config does not name $LOCAL"
if lab_on_host 1 "docker pull $LOCAL/optimus:$A" >/dev/null 2>&1; then fail "a host reaches $LOCAL without a tunnel"; fi
apply_run first apply --trusted --yes
apply_expect_rc first 0
apply_answers v1
for ((i = 1; i < N; i++)); do
	img=$(lab_on_host "$i" "docker inspect --format '{{.Config.Image}}' optimus-web-$A")
	[ "$img" = "$LOCAL/optimus:$A" ] || fail "host $i: web runs $img"
done
[ "$(lab_on_host "$N" "docker inspect --format '{{.Config.Image}}' optimus-job-$A")" = "$LOCAL/optimus:$A" ] || fail "job image"
if lab_on_host 1 "docker pull $LOCAL/optimus:v2" >/dev/null 2>&1; then fail "the tunnel is still open after apply"; fi

# a roll from the same registry
export PC_CLEAR_EXTRA="FEATURE: two"
B0=$(plan_commit "apply_registry: v2")
B=$(lab_commit "apply_registry: v2 in localhost:$PORT" \
	sed -i -e "s|^  server: $LAB_REGISTRY\$|  server: $LOCAL|" -e "/^    insecure:/a\\      - $LOCAL" config/deploy.yml)
[ -n "$B0" ] && lab_tag v2 "$B"
apply_run roll apply --trusted --yes
apply_expect_rc roll 0
apply_answers v2
plan_run after
plan_expect_rc after 0
echo "apply_registry: ok"

#!/usr/bin/env bash
# Lab self-test: a host pulls and runs the app from each registry path (plain,
# Basic auth after docker login, 127.0.0.1 registry through an SSH reverse
# tunnel); the app answers over HTTP on the host's address; versions differ;
# optimus:bad fails /up; "job" runs a worker; docker stop is prompt; a 40-hex
# tag added with lab_tag leads to the same image id.
set -euo pipefail
. "$LAB_LIB"
fail() { echo "FAIL: $*" >&2; exit 1; }
h() { echo $(( ($1 - 1) % LAB_N + 1 )); } # host for step i on a lab of any size

cleanup() {
	for ((n = 1; n <= LAB_N && n <= 3; n++)); do
		lab_on_host "$n" 'docker rm -f labtest-web labtest-job >/dev/null 2>&1; docker logout '"$LAB_REGISTRY_AUTH"' >/dev/null 2>&1; docker image prune -af >/dev/null 2>&1' || true
	done
}
trap cleanup EXIT

# get URL: body, retrying while the container starts.
get() {
	local i
	for ((i = 0; i < 50; i++)); do
		curl -sf --max-time 2 "$1" && return 0
		sleep 0.1
	done
	return 1
}

run_web() { # HOST IMAGE
	lab_on_host "$1" "docker rm -f labtest-web >/dev/null 2>&1; docker run -d --name labtest-web -p 80:80 $2 >/dev/null" ||
		fail "host $1: docker run $2 failed"
}

# Plain registry.
n=$(h 1); ip=$(lab__host_ip "$n")
run_web "$n" "$LAB_REGISTRY/optimus:v1"
[ "$(get "http://$ip/")" = v1 ] || fail "plain: / on host $n is not v1"
[ "$(get "http://$ip/up")" = ok ] || fail "plain: /up on host $n is not ok"
id=$(lab_on_host "$n" "docker inspect -f '{{.Image}}' labtest-web")
[ "$id" = "$LAB_IMAGE_ID_v1" ] || fail "plain: image id $id != LAB_IMAGE_ID_v1 $LAB_IMAGE_ID_v1"
t0=$(date +%s%N)
lab_on_host "$n" "docker stop labtest-web >/dev/null" || fail "docker stop failed"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 3000 ] || fail "docker stop of the app took ${ms}ms (should be prompt)"
echo "plain registry: host $n runs optimus:v1, / = v1, /up = ok, stop took ${ms}ms"

# Job mode, and stop promptness for it.
lab_on_host "$n" "docker run -d --name labtest-job $LAB_REGISTRY/optimus:v2 bin/jobs >/dev/null" || fail "job run failed"
sleep 1
[ "$(lab_on_host "$n" "docker inspect -f '{{.State.Running}}' labtest-job")" = true ] || fail "job container is not running"
lab_on_host "$n" "docker logs labtest-job" 2>&1 | grep -q "job worker started" || fail "job container did not start a worker"
t0=$(date +%s%N)
lab_on_host "$n" "docker stop labtest-job >/dev/null"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 3000 ] || fail "docker stop of the job took ${ms}ms"
echo "job mode: worker runs, stop took ${ms}ms"

# Basic-auth registry: anonymous pull fails, login + pull works.
n=$(h 2); ip=$(lab__host_ip "$n")
if lab_on_host "$n" "docker pull -q $LAB_REGISTRY_AUTH/optimus:v2" >/dev/null 2>&1; then
	fail "auth: anonymous pull from $LAB_REGISTRY_AUTH succeeded"
fi
echo "$LAB_REGISTRY_PASSWORD" | lab_on_host "$n" "docker login -u $LAB_REGISTRY_USER --password-stdin $LAB_REGISTRY_AUTH" >/dev/null 2>&1 ||
	fail "auth: docker login failed"
run_web "$n" "$LAB_REGISTRY_AUTH/optimus:v2"
[ "$(get "http://$ip/")" = v2 ] || fail "auth: / on host $n is not v2"
echo "auth registry: host $n logged in, runs optimus:v2"

# Local registry through a reverse tunnel: only reachable while the tunnel is up.
n=$(h 3); ip=$(lab__host_ip "$n"); port=${LAB_REGISTRY_LOCAL##*:}
if lab_on_host "$n" "docker pull -q localhost:$port/optimus:v3" >/dev/null 2>&1; then
	fail "local: host $n reached localhost:$port without a tunnel"
fi
lab_on_host "$n" -R "127.0.0.1:$port:$LAB_REGISTRY_LOCAL" "docker pull -q localhost:$port/optimus:v3 >/dev/null" ||
	fail "local: pull through the reverse tunnel failed"
run_web "$n" "localhost:$port/optimus:v3"
[ "$(get "http://$ip/")" = v3 ] || fail "local: / on host $n is not v3"
echo "local registry via ssh -R: host $n runs optimus:v3"

# A failing /up.
run_web "$n" "$LAB_REGISTRY/optimus:bad"
get "http://$ip/" >/dev/null || fail "bad: / does not answer"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$ip/up")
[ "$code" != 200 ] || fail "bad: /up answered 200"
echo "optimus:bad: /up answers $code"

# A commit-sha tag for an existing image.
sha=$(printf 'lab%s' "$RANDOM$RANDOM" | sha1sum | cut -c1-40)
lab_tag v2 "$sha"
id=$(lab_on_host "$n" "docker pull -q $LAB_REGISTRY/optimus:$sha >/dev/null && docker image inspect -f '{{.Id}}' $LAB_REGISTRY/optimus:$sha")
[ "$id" = "$LAB_IMAGE_ID_v2" ] || fail "lab_tag: $sha has id $id, not $LAB_IMAGE_ID_v2"
curl -sf -u "$LAB_REGISTRY_USER:$LAB_REGISTRY_PASSWORD" "http://$LAB_REGISTRY_AUTH/v2/optimus/tags/list" | grep -q "$sha" ||
	fail "lab_tag: tag missing in the auth registry"
curl -sf "http://$LAB_REGISTRY_LOCAL/v2/optimus/tags/list" | grep -q "$sha" || fail "lab_tag: tag missing in the local registry"
echo "lab_tag: optimus:$sha = v2 ($id) in all registries"

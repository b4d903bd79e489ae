#!/usr/bin/env bash
# End-to-end: `plumb plan` reading the configuration from git instead of a
# checkout (what a PR check or a deploy repository does):
#   - --repo with the network remote (git daemon) and with the bare repository;
#   - --ref as a branch, a commit and a pull-request ref (refs/pull/N/head);
#   - the version is the ref's commit, and the plan compares that commit's
#     configuration with the hosts (deployed at an older commit here).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"
trap 'plan_clean; rm -rf "$T"' EXIT
plan_clean
export XDG_CACHE_HOME=$T/cache

A=$(plan_commit "plan_repo: deployed")
lab_tag v1 "$A"
plan_sim_fleet "$A" v1

# the deployed commit, read from the network remote: in sync
plan_run url_a --repo "$LAB_GIT_URL" --ref "$A" --format json
plan_expect_rc url_a 0
[ "$(plan_get "$T/url_a.out" .version)" = "$A" ] || fail "url_a: version is not the ref's commit"

# a pull request that changes the job role's env, pushed as refs/pull/7/head only
# (plan_commit pushes to main; main is put back on the deployed commit after)
B=$(PC_JOB_ENV="QUEUES: mailers" plan_commit "plan_repo: a pull request")
git -C "$LAB_GIT_WORK" push -q origin "$B:refs/pull/7/head"
git -C "$LAB_GIT_WORK" reset -q --hard "$A"
git -C "$LAB_GIT_WORK" push -q -f origin "$A:main"
lab_tag v1 "$B"

plan_run url_pr --repo "$LAB_GIT_URL" --ref refs/pull/7/head --format json
plan_expect_rc url_pr 2
[ "$(plan_get "$T/url_pr.out" .version)" = "$B" ] || fail "url_pr: version is not the pull request's commit"
grep -q "optimus-job-$B" "$T/url_pr.out" || fail "url_pr: the job role is not replaced"

# main (still the deployed commit) from the bare repository on disk: in sync
plan_run bare_main --repo "$LAB_GIT_BARE" --ref main
plan_expect_rc bare_main 0
grep -q "^No changes" "$T/bare_main.out" || fail "bare_main: no 'No changes' line"
plan_no_secret url_pr "$PC_MASTER_KEY" "$PC_DB_PASSWORD"
echo "plan_repo: ok"

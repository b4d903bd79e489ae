#!/usr/bin/env bash
# Lab self-test of the git remote: the bare repository and git daemon serve the
# lab's optimus (config/deploy.yml naming the lab's hosts and registry); a
# commit made with lab_commit is seen over the network; a push over git:// works.
set -euo pipefail
. "$LAB_LIB"
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

git clone -q "$LAB_GIT_URL" "$tmp/c" || fail "clone of $LAB_GIT_URL failed"
y="$tmp/c/config/deploy.yml"
grep -q "^service: optimus" "$y" || fail "deploy.yml has no service optimus"
grep -q "server: $LAB_REGISTRY\$" "$y" || fail "deploy.yml does not name the lab registry"
for h in $LAB_HOSTS; do grep -q -- "- $h\$" "$y" || fail "deploy.yml does not name host $h"; done
grep -q '^POSTGRES_PASSWORD=' "$tmp/c/.kamal/secrets" || fail ".kamal/secrets lacks POSTGRES_PASSWORD"

sha=$(lab_commit "lab test: bump WEB_CONCURRENCY" "sed -i 's/WEB_CONCURRENCY: .*/WEB_CONCURRENCY: 4/' config/deploy.yml")
[ "$(lab_head)" = "$sha" ] || fail "lab_commit did not move main"
remote=$(git ls-remote "$LAB_GIT_URL" refs/heads/main | cut -f1)
[ "$remote" = "$sha" ] || fail "git daemon serves $remote, lab_commit made $sha"
git -C "$tmp/c" pull -q || fail "pull failed"
grep -q "WEB_CONCURRENCY: 4" "$y" || fail "the change is not in the fetched tree"

git -C "$tmp/c" -c user.name=t -c user.email=t@t commit -q --allow-empty -m "pushed over git://"
git -C "$tmp/c" push -q origin HEAD:main || fail "push over git:// failed"
[ "$(lab_head)" = "$(git -C "$tmp/c" rev-parse HEAD)" ] || fail "push over git:// did not move main"
git -C "$LAB_GIT_WORK" pull -q || fail "the work clone cannot follow main"
echo "git: $LAB_GIT_URL serves optimus; lab_commit $sha seen over the network; push over git:// ok"

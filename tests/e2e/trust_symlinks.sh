#!/usr/bin/env bash
# End-to-end: a pull request checkout whose config files are symbolic links
# must not make `plumb plan` read (or print) files of the machine running it,
# trusted or not (state/source.h: the one rule for repository reads):
#   - config/deploy.yml -> a file outside the repository (another app's
#     config, with a canary): refused, naming the file, nothing of it printed;
#   - .kamal/secrets -> a file outside (a runner's env file, with a canary):
#     refused the same way;
#   - .kamal/secrets -> a FIFO (inside the checkout, and outside it): refused
#     at once, the run does not hang;
#   - a link that stays inside the repository is followed.
# Hosts are never contacted (the load fails first); plan_run checks the run
# left every host as it was.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/plan_lib.sh"

CANARY=outside-canary-5b2f
# Leaves the work clone without links or FIFOs (plan_commit copies onto
# config/deploy.yml and .kamal/secrets: through a link it would write outside).
unlink_all() {
	rm -f "$LAB_GIT_WORK/pipe" "$LAB_GIT_WORK/config/deploy.yml" "$LAB_GIT_WORK/.kamal/secrets" \
		"$LAB_GIT_WORK/config/real.yml"
	plan_commit "trust_symlinks: plain files again" >/dev/null
}
trap 'unlink_all; plan_clean; rm -rf "$T"' EXIT
plan_clean

A=$(plan_commit "trust_symlinks: the lab's optimus")
mkdir -p "$T/outside/other-app/config"
{ sed 's/^service: optimus$/service: '"$CANARY"'/' "$LAB_GIT_WORK/config/deploy.yml"; echo "$CANARY-key: 1"; } \
	>"$T/outside/other-app/config/deploy.yml"
printf 'RAILS_MASTER_KEY=%s\nKAMAL_REGISTRY_PASSWORD=%s\nPOSTGRES_PASSWORD=%s\n' "$CANARY" "$CANARY" "$CANARY" \
	>"$T/outside/runner.env"
mkfifo "$T/outside/fifo"

# refused NAME FILE WHY: the last plan_run failed with exit 1, naming FILE and
# saying WHY, and printed nothing of the outside files.
refused() {
	[ "$RC" = 1 ] || { cat "$T/$1.err"; fail "$1: exit $RC (want 1)"; }
	grep -q "$2: .*$3" "$T/$1.err" || { cat "$T/$1.err"; fail "$1: no refusal naming $2 ($3)"; }
	! grep -q "$CANARY" "$T/$1.out" "$T/$1.err" || { cat "$T/$1.out" "$T/$1.err"; fail "$1: printed the outside file"; }
}

# ---- config/deploy.yml -> another app's config outside ----
lab_commit "trust_symlinks: deploy.yml links out" \
	"ln -sfn '$T/outside/other-app/config/deploy.yml' config/deploy.yml" >/dev/null
plan_run deploy_out
refused deploy_out config/deploy.yml "outside the repository"
plan_run deploy_out_trusted --trusted
refused deploy_out_trusted config/deploy.yml "outside the repository"

# ---- a link that stays inside: followed ----
lab_commit "trust_symlinks: deploy.yml links inside" \
	"git show HEAD~1:config/deploy.yml >config/real.yml && ln -sfn real.yml config/deploy.yml" >/dev/null
(cd "$LAB_GIT_WORK" && "$PLUMB" config) >"$T/inside.out" 2>"$T/inside.err" ||
	{ cat "$T/inside.err"; fail "inside: a link inside the repository was not followed"; }
grep -q "optimus" "$T/inside.out" || fail "inside: not the repository's config"

# ---- .kamal/secrets -> the runner's env file outside ----
lab_commit "trust_symlinks: secrets link out" \
	"rm -f config/deploy.yml config/real.yml && git show HEAD~2:config/deploy.yml >config/deploy.yml &&
	 ln -sfn '$T/outside/runner.env' .kamal/secrets" >/dev/null
plan_run secrets_out
refused secrets_out .kamal/secrets "outside the repository"
plan_run secrets_out_trusted --trusted
refused secrets_out_trusted .kamal/secrets "outside the repository"

# ---- FIFOs: refused at once (a hang is killed by timeout: exit 124) ----
lab_commit "trust_symlinks: secrets link to a FIFO inside" "ln -sfn ../pipe .kamal/secrets" >/dev/null
mkfifo "$LAB_GIT_WORK/pipe"
PLUMB_REAL=$PLUMB
printf '#!/bin/sh\nexec timeout 20 "%s" "$@"\n' "$PLUMB_REAL" >"$T/plumb-timeout"
chmod +x "$T/plumb-timeout"
PLUMB=$T/plumb-timeout
plan_run fifo_in --trusted
refused fifo_in .kamal/secrets "not a regular file (a FIFO)"
lab_commit "trust_symlinks: deploy.yml link to a FIFO outside" \
	"ln -sfn '$T/outside/fifo' config/deploy.yml" >/dev/null
plan_run fifo_out --trusted
refused fifo_out config/deploy.yml "outside the repository"
PLUMB=$PLUMB_REAL
echo "trust_symlinks: ok ($A)"

#!/usr/bin/env bash
# `plumb apply --repo URL`: the configuration is read from a commit, so its
# hooks are the commit's — written out privately for the apply — and never
# whatever .kamal/hooks the current directory happens to hold (a trusted run
# executes them). No proxy needed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh" --no-proxy

export MARK=$T/marks
A=$(apply_commit v1 "apply_repo_hooks: v1")
B=$(lab_commit "apply_repo_hooks: a pre-connect hook" bash -c \
	'mkdir -p .kamal/hooks && printf "#!/bin/sh\necho \"commit \$KAMAL_VERSION\" >>\"\$MARK\"\n" >.kamal/hooks/pre-connect && chmod 755 .kamal/hooks/pre-connect')
lab_tag v1 "$B"
# a directory with hooks of its own, where apply is started
mkdir -p "$T/elsewhere/.kamal/hooks"
printf '#!/bin/sh\necho cwd >>"$MARK"\n' >"$T/elsewhere/.kamal/hooks/pre-connect"
chmod 755 "$T/elsewhere/.kamal/hooks/pre-connect"
touch "$T/stamp"
set +e
(cd "$T/elsewhere" && "$PLUMB" apply --repo "$LAB_GIT_URL" --ref main --yes) >"$T/a.out" 2>"$T/a.err"
RC=$?
set -e
[ "$RC" = 0 ] || { cat "$T/a.out" "$T/a.err" >&2; fail "apply --repo: exit $RC"; }
[ -f "$MARK" ] || fail "the commit's pre-connect hook did not run"
! grep -qx cwd "$MARK" || fail "a hook of the current directory ran"
grep -qx "commit $B" "$MARK" || { cat "$MARK" >&2; fail "the commit's hook did not run with its version"; }
left=$(find /tmp -maxdepth 1 -name 'plumb-hooks-*' -newer "$T/stamp" 2>/dev/null)
[ -z "$left" ] || fail "the written-out commit was left in $left"
: "$A"
echo "PASS apply_repo_hooks"

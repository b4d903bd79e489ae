# shellcheck shell=bash
# e2e: helper
# Shared setup for the `plumb plan` end-to-end tests (tests/e2e/plan_*.sh).
# Source it after the lab's env is exported (run.sh does that):
#   . tests/e2e/plan_lib.sh
#
# The app is the lab's optimus (tests/lab/optimus/deploy.yml.in): web on hosts
# 1..N-1, job on host N (cmd bin/jobs), Postgres accessory db on host 1. The
# config is written by plan_write_config from the PC_* knobs below and
# committed to the lab's work clone with plan_commit; plumb runs in that
# checkout, so its version is the commit unless --version/VERSION say
# otherwise. Hosts are set up as `kamal deploy` + `kamal accessory boot`
# leave them with plan_sim_fleet (tests/e2e/kamal_sim.sh), including a
# container named kamal-proxy on every web host (the lab has no kamal-proxy
# image: the app's, tagged basecamp/kamal-proxy:lab on the host; plumb does
# not inspect the proxy's spec).
#
# Assertions read `--format json` through plan_flatten (an awk flattener of
# jansson's indented output: one "path=value" line per scalar) and plan_steps
# (one line per step: "HOST ACTION NAME OLD_NAME CAUSES [disruptive] [switch]",
# HOST as H1..HN, causes "kind[:key]" joined by commas).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
# shellcheck source=/dev/null
. "$LAB_LIB"
PLUMB=${PLUMB_BIN:-$ROOT/build/plumb}
SIM="bash $ROOT/tests/e2e/kamal_sim.sh"
N=${LAB_N:-3}
export PLUMB_SSH_KNOWN_HOSTS=$LAB_KNOWN_HOSTS PLUMB_SSH_KEY=$LAB_SSH_KEY
unset VERSION
# no watcher state of this machine's user reaches a test (plan takes the last
# applied revision from it as --base): tests that want one name --state-dir
export PLUMB_STATE_DIR=/nonexistent/plumb-e2e-no-watcher-state

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$N" -ge 3 ] || fail "needs at least 3 lab hosts"
T=$(mktemp -d /tmp/plumb-plan-e2e-XXXXXX)

# The optimus example's pre-deploy hook (a CI gate) runs as written in every
# trusted apply: it asks GitHub's API whether CI passed for the commit. The
# lab has no internet, so a `curl` earlier on PATH answers for api.github.com
# only (every check run green; PLUMB_FAKE_CI=failure makes one fail) and
# hands every other request to the real curl.
mkdir -p "$T/ci-bin"
cat >"$T/ci-bin/curl" <<'EOF_CURL'
#!/bin/sh
for a in "$@"; do
	case $a in
	https://api.github.com/repos/*/check-runs*)
		printf '{"check_runs":[{"conclusion":"success"},{"conclusion":"%s"}]}\n' "${PLUMB_FAKE_CI:-success}"
		exit 0 ;;
	esac
done
exec /usr/bin/curl "$@"
EOF_CURL
chmod +x "$T/ci-bin/curl"
export PATH="$T/ci-bin:$PATH" GITHUB_TOKEN=lab-ci-token
H1=$(lab__host_ip 1)
HN=$(lab__host_ip "$N")

# The secrets the config's .kamal/secrets holds (test values).
PC_MASTER_KEY=${PC_MASTER_KEY:-0123456789abcdef0123456789abcdef}
PC_DB_PASSWORD=${PC_DB_PASSWORD:-lab-db-password}

# Knobs of plan_write_config (all optional):
#   PC_WEB_HOSTS   web hosts, space-separated (default hosts 1..N-1)
#   PC_WEB_PROXY   the web role's proxy: setting (e.g. false), default none
#   PC_JOB_ENV     extra clear env of the job role, "KEY: value" lines
#   PC_DB_IMAGE    the accessory's image (default $LAB_REGISTRY/postgres:17)
#   PC_DB_ENV      extra clear env of the accessory, "KEY: value" lines
#   PC_CLEAR_EXTRA extra root clear env, "KEY: value" lines
#   PC_XPLUMB      extra x-plumb lines (indented by two spaces)
#   PC_ACC_EXTRA   extra accessories, YAML lines under accessories: (indented by two spaces)
#   PC_DEST_CONFIG destination overlay content (written to config/deploy.$PC_DEST.yml)
#   PC_ROOT_EXTRA  extra top-level lines (e.g. ssh:, proxy:), unindented
plan_write_config() {
	local out=$1 h line i web=${PC_WEB_HOSTS:-}
	if [ -z "$web" ]; then
		for ((i = 1; i < N; i++)); do web+=" $(lab__host_ip "$i")"; done
	fi
	{
		echo "service: optimus"
		echo "image: optimus"
		echo "servers:"
		echo "  web:"
		if [ -n "${PC_WEB_PROXY:-}" ]; then
			echo "    proxy: $PC_WEB_PROXY"
			echo "    hosts:"
			for h in $web; do echo "      - $h"; done
		else
			for h in $web; do echo "    - $h"; done
		fi
		echo "  job:"
		echo "    hosts:"
		echo "      - $HN"
		echo "    cmd: bin/jobs"
		if [ -n "${PC_JOB_ENV:-}" ]; then
			echo "    env:"
			echo "      clear:"
			while IFS= read -r line; do [ -n "$line" ] && echo "        $line"; done <<<"$PC_JOB_ENV"
		fi
		echo "registry:"
		echo "  server: $LAB_REGISTRY"
		echo "  username: lab"
		echo "  password:"
		echo "    - KAMAL_REGISTRY_PASSWORD"
		echo "env:"
		echo "  secret:"
		echo "    - RAILS_MASTER_KEY"
		echo "  clear:"
		echo "    SOLID_QUEUE_IN_PUMA: false"
		echo "    WEB_CONCURRENCY: 2"
		echo "    JOB_CONCURRENCY: 3"
		echo "    DB_HOST: $H1"
		while IFS= read -r line; do [ -n "$line" ] && echo "    $line"; done <<<"${PC_CLEAR_EXTRA:-}"
		echo "volumes:"
		echo '  - "optimus_storage:/rails/storage"'
		echo "builder:"
		echo "  arch: amd64"
		echo "accessories:"
		echo "  db:"
		echo "    image: ${PC_DB_IMAGE:-$LAB_REGISTRY/postgres:17}"
		echo "    host: $H1"
		echo '    port: "5432:5432"'
		echo "    env:"
		if [ -n "${PC_DB_ENV:-}" ]; then
			echo "      clear:"
			while IFS= read -r line; do [ -n "$line" ] && echo "        $line"; done <<<"$PC_DB_ENV"
		fi
		echo "      secret:"
		echo "        - POSTGRES_PASSWORD"
		echo "    directories:"
		echo "      - data:/var/lib/postgresql/data"
		while IFS= read -r line; do [ -n "$line" ] && echo "  $line"; done <<<"${PC_ACC_EXTRA:-}"
		while IFS= read -r line; do [ -n "$line" ] && echo "$line"; done <<<"${PC_ROOT_EXTRA:-}"
		echo "x-plumb:"
		echo "  registry:"
		echo "    insecure:"
		echo "      - $LAB_REGISTRY"
		while IFS= read -r line; do [ -n "$line" ] && echo "  $line"; done <<<"${PC_XPLUMB:-}"
	} >"$out/deploy.yml"
	printf 'KAMAL_REGISTRY_PASSWORD=lab-registry-password\nRAILS_MASTER_KEY=%s\nPOSTGRES_PASSWORD=%s\n' \
		"$PC_MASTER_KEY" "$PC_DB_PASSWORD" >"$out/secrets"
}

# plan_commit MSG: writes the config from the PC_* knobs, commits it, prints the sha.
plan_commit() {
	local d
	d=$(mktemp -d "$T/cfg-XXXXXX")
	plan_write_config "$d"
	lab_commit "$1" bash -c "mkdir -p config .kamal && cp '$d/deploy.yml' config/deploy.yml && cp '$d/secrets' .kamal/secrets"
}

# plan_sim_fleet VERSION TAG: every host as Kamal leaves it after deploying
# VERSION (image tag TAG) and booting the accessory, for the default config.
plan_sim_fleet() {
	local v=$1 tag=$2 i pids=()
	local env=$'SOLID_QUEUE_IN_PUMA=false\nWEB_CONCURRENCY=2\nJOB_CONCURRENCY=3\nDB_HOST='"$H1"
	for ((i = 1; i < N; i++)); do
		SIM_ENV=$env SIM_SECRETS="RAILS_MASTER_KEY=$PC_MASTER_KEY" SIM_VOLUMES="optimus_storage:/rails/storage" \
			SIM_TAG=$tag $SIM app "$i" web "$v" >/dev/null &
		pids+=($!)
	done
	SIM_ENV=$env SIM_SECRETS="RAILS_MASTER_KEY=$PC_MASTER_KEY" SIM_VOLUMES="optimus_storage:/rails/storage" \
		SIM_TAG=$tag SIM_CMD=bin/jobs $SIM app "$N" job "$v" >/dev/null &
	pids+=($!)
	for i in "${pids[@]}"; do wait "$i" || fail "kamal_sim app failed"; done
	SIM_SECRETS="POSTGRES_PASSWORD=$PC_DB_PASSWORD" SIM_PORT=5432:5432 SIM_DIRS=data:/var/lib/postgresql/data \
		$SIM accessory 1 db "$LAB_REGISTRY/postgres:17" >/dev/null || fail "kamal_sim accessory failed"
	for ((i = 1; i < N; i++)); do
		# an image named as kamal-proxy's (plumb runs `kamal-proxy list` in no other)
		lab_on_host "$i" "docker tag $LAB_REGISTRY/optimus:v1 basecamp/kamal-proxy:lab &&
docker run --detach --name kamal-proxy --label service=kamal-proxy basecamp/kamal-proxy:lab >/dev/null" ||
			fail "kamal_sim proxy failed"
	done
}

# The real Kamal 2.12 (../shared/kamal-peer beside the checkout, see its
# README) and the real kamal-proxy image (tests/lab/images.sh builds it from
# ../shared/kamal-proxy). plan_find_kamal sets KAMAL_REAL, or returns 1 with
# KAMAL_WHY saying what is missing.
KAMAL_REAL=""
KAMAL_WHY=""
plan_find_kamal() {
	local k=$ROOT/../shared/kamal-peer/kamal
	if [ ! -x "$k" ]; then
		KAMAL_WHY="../shared/kamal-peer (the real Kamal) is absent beside the checkout"
	elif ! "$k" version >/dev/null 2>&1; then
		KAMAL_WHY="the real Kamal does not run here (its Ruby gems: ../shared/kamal-peer/install.sh)"
	elif ! curl -sf -o /dev/null -H "Accept: $LAB_MANIFEST_TYPE" \
		"http://$LAB_REGISTRY/v2/kamal-proxy/manifests/v0.9.2"; then
		KAMAL_WHY="the lab has no kamal-proxy image (../shared/kamal-proxy is absent)"
	else
		KAMAL_REAL=$k
		return 0
	fi
	return 1
}

# What the real Kamal needs in the config: the lab's key, and kamal-proxy from the lab registry.
plan_kamal_config() {
	printf 'ssh:\n  user: root\n  keys_only: true\n  keys:\n    - %s\n' "$LAB_SSH_KEY"
	printf 'proxy:\n  run:\n    registry: %s\n    repository: kamal-proxy\n    version: v0.9.2\n' "$LAB_REGISTRY"
}

# plan_kamal_fleet VERSION: the real Kamal deploys the committed config at
# VERSION (already tagged in the registry; -P: nothing is built, -H: the
# example's hooks do not run) and boots the accessory db. Its HOME is a
# temporary directory, so nothing of the runner's is read or written.
plan_kamal_fleet() {
	local v=$1 log
	mkdir -p "$T/kamal-home"
	for cmd in "deploy -P -H --version $v" "accessory boot db -H"; do
		log=$T/kamal-${cmd%% *}.log
		# shellcheck disable=SC2086
		if ! (cd "$LAB_GIT_WORK" && HOME=$T/kamal-home timeout 300 "$KAMAL_REAL" $cmd) >"$log" 2>&1; then
			tail -n 30 "$log" >&2
			fail "kamal $cmd failed"
		fi
		echo "kamal $cmd: ok"
	done
}

# plan_expect_in_sync: `plumb plan` says "No changes" and exits 0, in text
# ($T/synced.out) and JSON ($T/synced_json.out: no step, every host ok), and
# shows no secret.
plan_expect_in_sync() {
	local i
	plan_run synced
	plan_expect_rc synced 0
	grep -q "^No changes" "$T/synced.out" || { cat "$T/synced.out" "$T/synced.err"; fail "synced: no 'No changes' line"; }
	plan_run synced_json --format json
	plan_expect_rc synced_json 0
	plan_expect synced_json ""
	for ((i = 1; i <= N; i++)); do
		[ "$(plan_get "$T/synced_json.out" ".hosts[$((i - 1))].status")" = ok ] || fail "synced: host $i not ok"
	done
	plan_no_secret synced "$PC_MASTER_KEY" "$PC_DB_PASSWORD"
}

plan_clean() {
	local i
	for ((i = 1; i <= N; i++)); do $SIM clean "$i" >/dev/null 2>&1 || true; done
	plan_reset_hooks
}

# plan_reset_hooks: the repository's .kamal/hooks back to the example's (a
# test that commits hooks of its own must not hand them to the next test).
plan_reset_hooks() {
	local ex="$ROOT/deploy-examples/optimus/.kamal/hooks"
	if ! diff -r "$ex" "$LAB_GIT_WORK/.kamal/hooks" >/dev/null 2>&1; then
		lab_commit "hooks: back to the example's" \
			bash -c 'rm -rf .kamal/hooks && mkdir -p .kamal && cp -a "$0" .kamal/hooks' "$ex" >/dev/null
	fi
}

# plan_snapshot FILE: what a plan must not change: every container (id, name,
# state, image) and every file under ~/.kamal (mode, size, time) and the
# accessory directories ~/optimus-* (Postgres writes inside them) on every host.
plan_snapshot() {
	local i
	: >"$1"
	for ((i = 1; i <= N; i++)); do
		echo "== host $i" >>"$1"
		lab_on_host "$i" 'docker ps -a --no-trunc --format "{{.ID}} {{.Names}} {{.State}} {{.Image}}" | sort;
			{ find .kamal -printf "%p %m %s %T@\n"; find optimus-* -maxdepth 1 -printf "%p %m\n"; } 2>/dev/null | sort' >>"$1" ||
			fail "snapshot of host $i failed"
	done
}

# plan_run NAME ARGS...: runs `plumb plan ARGS` in the work clone; stdout in
# $T/NAME.out, stderr in $T/NAME.err; sets RC. Checks it was read-only: the
# hosts are the same before and after and no lock directory appeared.
plan_run() {
	local name=$1
	shift
	plan_snapshot "$T/$name.before"
	set +e
	(cd "$LAB_GIT_WORK" && "$PLUMB" plan "$@") >"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	set -e
	plan_snapshot "$T/$name.after"
	if ! cmp -s "$T/$name.before" "$T/$name.after"; then
		diff "$T/$name.before" "$T/$name.after" >&2 || true
		fail "$name: plumb plan changed a host"
	fi
	if grep -q '^\.kamal/lock-' "$T/$name.after" && ! grep -q '^\.kamal/lock-' "$T/$name.before"; then
		fail "$name: a lock directory was created"
	fi
	echo "plan $name: exit $RC ($*)"
}

# plan_flatten FILE: jansson's indented JSON as "path=value" lines
# (.hosts[0].steps[1].causes[0].kind=image_changed; strings unquoted).
plan_flatten() {
	awk '
	function pth(n,   i, p) { p = ""; for (i = 1; i <= n; i++) p = p k[i]; return p }
	{
		l = $0; sub(/^[ \t]+/, "", l); sub(/,$/, "", l)
		if (l == "}" || l == "]") { d--; next }
		seg = ""
		if (match(l, /^"[^"]*": /)) { seg = (d > 0 ? "." : "") substr(l, 2, RLENGTH - 4); l = substr(l, RLENGTH + 1) }
		else if (d > 0 && arr[d]) { seg = "[" (cnt[d]++) "]" }
		if (l == "{" || l == "[") { d++; k[d] = seg; arr[d] = (l == "["); cnt[d] = 0; next }
		if (l ~ /^".*"$/) l = substr(l, 2, length(l) - 2)
		print pth(d) seg "=" l
	}' "$1"
}

# plan_get FILE PATH: one value of the flattened JSON.
plan_get() { plan_flatten "$1" | awk -v p="$2=" '!done && index($0, p) == 1 { print substr($0, length(p) + 1); done = 1 }'; }

# plan_steps FILE: one line per step (see the header), hosts as H1..HN.
plan_steps() {
	local map="" i
	for ((i = 1; i <= N; i++)); do map+="$(lab__host_ip "$i")=H$i "; done
	plan_flatten "$1" | awk -v map="$map" '
	BEGIN { n = split(map, m, " "); for (i = 1; i <= n; i++) { split(m[i], kv, "="); hn[kv[1]] = kv[2] } }
	function flush() {
		if (cur != "") print host " " a " " nm " " (old == "null" ? "-" : old) " " (cs == "" ? "-" : cs) (dis == "true" ? " disruptive" : "") (sw == "true" ? " switch" : "")
		cur = ""; cs = ""
	}
	{
		eq = index($0, "="); p = substr($0, 1, eq - 1); v = substr($0, eq + 1)
		if (p ~ /^\.hosts\[[0-9]+\]\.host$/) { flush(); host = (v in hn) ? hn[v] : v; next }
		if (!match(p, /^\.hosts\[[0-9]+\]\.steps\[[0-9]+\]/)) next
		s = substr(p, 1, RLENGTH); f = substr(p, RLENGTH + 1)
		if (s != cur) { flush(); cur = s }
		if (f == ".action") a = v
		else if (f == ".name") nm = v
		else if (f == ".old_name") old = v
		else if (f == ".disruptive") dis = v
		else if (f == ".switch_traffic") sw = v
		else if (f ~ /^\.causes\[[0-9]+\]\.kind$/) { ck = v }
		else if (f ~ /^\.causes\[[0-9]+\]\.key$/) { cs = cs (cs == "" ? "" : ",") ck (v == "null" ? "" : ":" v) }
	}
	END { flush() }'
}

# plan_expect NAME "LINE..." : the steps of $T/NAME.out (JSON) are exactly these lines.
plan_expect() {
	local name=$1 want=$2
	plan_steps "$T/$name.out" | sort >"$T/$name.steps"
	printf '%s\n' "$want" | sed '/^$/d' | sort >"$T/$name.want"
	if ! cmp -s "$T/$name.steps" "$T/$name.want"; then
		echo "--- want / +++ got ($name):" >&2
		diff -u "$T/$name.want" "$T/$name.steps" >&2 || true
		fail "$name: not the expected steps"
	fi
}

# plan_expect_rc NAME RC
plan_expect_rc() {
	[ "$RC" -eq "$2" ] || { cat "$T/$1.err" "$T/$1.out" >&2; fail "$1: exit $RC, want $2"; }
}

# plan_no_secret NAME VALUE...: no value appears in NAME's stdout or stderr.
plan_no_secret() {
	local name=$1 v
	shift
	for v in "$@"; do
		if grep -qF -- "$v" "$T/$name.out" "$T/$name.err"; then fail "$name: a secret value appears in the output"; fi
	done
}

#!/usr/bin/env bash
# e2e: helper
# Sets up a lab host exactly as `kamal deploy` / `kamal accessory boot` (Kamal
# 2.12) leave it, per shared/kamal/BEHAVIOUR.md, so tests can observe, plan
# and adopt a Kamal-deployed fleet without Kamal itself.
#
# Usage (after lab.env is exported; the lab's lib.sh is sourced here):
#   kamal_sim.sh app N ROLE VERSION        run <service>-<role>[-<dest>]-<version> on host N
#   kamal_sim.sh accessory N NAME IMAGE    run <service>-<name> (e.g. db, $LAB_REGISTRY/postgres:17)
#   kamal_sim.sh other N NAME IMAGE        a container of another service (label service=$NAME)
#   kamal_sim.sh lock N "MESSAGE"          take the deploy lock as Kamal does (details in base64)
#   kamal_sim.sh clean N                   remove every container and ~/.kamal, ~/<service>-*
#
# Settings (environment; all optional):
#   SIM_SERVICE   service name (default optimus)
#   SIM_DEST      destination (default none: the destination label is present and empty)
#   SIM_IMAGE     image repository (default $LAB_REGISTRY/optimus); the tag is the VERSION
#                 unless SIM_TAG is set (so a 40-hex version can run the tag v1)
#   SIM_TAG       image tag to run
#   SIM_CMD       command (passed unquoted, split by the host's shell, as Kamal does)
#   SIM_ENV       clear env, one KEY=value per line (values may hold anything but newlines)
#   SIM_SECRETS   secret env, one KEY=value per line: written to the role's (or
#                 accessory's) env file with Kamal's escaping, mode 0600
#   SIM_VOLUMES   extra --volume specs, one per line
#   SIM_PORT      accessory port ("5432" means 5432:5432)
#   SIM_DIRS      accessory directories "host_dir:container_path", one per line
#                 (created under $HOME/<service>-<name>/)
#   SIM_LABELS    extra labels KEY=value, one per line (after service/role/destination)
#
# Values are sent to the host as one bash script on stdin, every word quoted
# with printf %q, so quotes, $(…) and backslashes in values arrive intact.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "${LAB_LIB:-$(dirname "$0")/../lab/lib.sh}"

SERVICE=${SIM_SERVICE:-optimus}
DEST=${SIM_DEST:-}
IMAGE=${SIM_IMAGE:-$LAB_REGISTRY/optimus}

die() { echo "kamal_sim: $*" >&2; exit 1; }

# q WORD...: the words, each quoted for bash.
q() { local out="" w; for w in "$@"; do out+=" $(printf '%q' "$w")"; done; printf '%s' "${out# }"; }

# kamal_escape VALUE: a value as Kamal writes it to an env file (Ruby's
# String#dump minus the quotes: backslash, newline, tab, CR escaped; '"' and
# '#' left literal; non-ASCII kept).
kamal_escape() {
	local v=$1
	v=${v//\\/\\\\}
	v=${v//$'\n'/\\n}
	v=${v//$'\t'/\\t}
	v=${v//$'\r'/\\r}
	printf '%s' "$v"
}

# env_file_script PATH: bash lines writing PATH (0600) from SIM_SECRETS.
env_file_script() {
	local path=$1 content="" line k v
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		k=${line%%=*}; v=${line#*=}
		content+="$k=$(kamal_escape "$v")"$'\n'
	done <<<"${SIM_SECRETS:-}"
	[ -n "$content" ] || content=$'\n' # Kamal: an empty env file holds one newline
	echo "mkdir -p $(q "$(dirname "$path")")"
	echo "(umask 077; printf '%s' $(q "$content") > $(q "$path"))"
	echo "chmod 600 $(q "$path")"
}

# lines_to_args FLAG VAR: "--flag value" words for each line of VAR.
lines_to_args() {
	local flag=$1 line out=""
	while IFS= read -r line; do
		[ -n "$line" ] && out+=" $flag $(q "$line")"
	done <<<"${2:-}"
	printf '%s' "$out"
}

host_addr() { lab__host_ip "$1"; }

run_on() { local n=$1; shift; lab_on_host "$n" bash -s <<<"set -e; cd; $*"; }

sim_app() {
	local n=$1 role=$2 version=$3 host prefix name appdir envfile hostname script
	host=$(host_addr "$n")
	prefix="$SERVICE-$role${DEST:+-$DEST}"
	name="$prefix-$version"
	appdir="$SERVICE${DEST:+-$DEST}"
	envfile=".kamal/apps/$appdir/env/roles/$role.env"
	hostname="${host:0:51}-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
	local dest_label="--label destination"
	[ -n "$DEST" ] && dest_label="--label $(q "destination=$DEST")"
	script="mkdir -p .kamal
docker network inspect kamal >/dev/null 2>&1 || docker network create kamal >/dev/null
$(env_file_script "$envfile")
docker pull -q $(q "$IMAGE:${SIM_TAG:-$version}") >/dev/null
if docker container inspect $(q "$name") >/dev/null 2>&1; then docker rename $(q "$name") $(q "${name}_replaced_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"); fi
docker run --detach --restart unless-stopped --name $(q "$name") --network kamal --hostname $(q "$hostname") \
 --env $(q "KAMAL_CONTAINER_NAME=$name") --env $(q "KAMAL_VERSION=$version") --env $(q "KAMAL_HOST=$host") \
 ${DEST:+--env $(q "KAMAL_DESTINATION=$DEST")} $(lines_to_args --env "${SIM_ENV:-}") \
 --env-file $(q "$envfile") --log-opt max-size=\"10m\" $(lines_to_args --volume "${SIM_VOLUMES:-}") \
 --label $(q "service=$SERVICE") --label $(q "role=$role") $dest_label $(lines_to_args --label "${SIM_LABELS:-}") \
 $(q "$IMAGE:${SIM_TAG:-$version}") ${SIM_CMD:-} >/dev/null"
	run_on "$n" "$script"
	echo "$name"
}

sim_accessory() {
	local n=$1 acc=$2 image=$3 host name envfile port dirs="" line hd cp script
	host=$(host_addr "$n")
	name="$SERVICE-$acc"
	envfile=".kamal/apps/$SERVICE${DEST:+-$DEST}/env/accessories/$acc.env"
	port=${SIM_PORT:-}
	[ -n "$port" ] && [[ "$port" != *:* ]] && port="$port:$port"
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		hd=${line%%:*}; cp=${line#*:}
		dirs+="mkdir -p $(q "$name/$hd")"$'\n'
		dirs+="vols+=(--volume \"\$PWD/\"$(q "$name/$hd:$cp"))"$'\n'
	done <<<"${SIM_DIRS:-}"
	script="mkdir -p .kamal
docker network inspect kamal >/dev/null 2>&1 || docker network create kamal >/dev/null
vols=()
$dirs
$(env_file_script "$envfile")
docker pull -q $(q "$image") >/dev/null
docker container inspect $(q "$name") >/dev/null 2>&1 && { echo 'accessory already booted (Kamal skips it)' >&2; exit 0; }
docker run --name $(q "$name") --detach --restart unless-stopped --network kamal --log-opt max-size=\"10m\" \
 ${port:+--publish $(q "$port")} --env $(q "KAMAL_HOST=$host") $(lines_to_args --env "${SIM_ENV:-}") \
 --env-file $(q "$envfile") \"\${vols[@]}\" $(lines_to_args --volume "${SIM_VOLUMES:-}") \
 --label $(q "service=$name") $(lines_to_args --label "${SIM_LABELS:-}") $(q "$image") ${SIM_CMD:-} >/dev/null"
	run_on "$n" "$script"
	echo "$name"
}

sim_other() {
	local n=$1 name=$2 image=$3
	run_on "$n" "docker pull -q $(q "$image") >/dev/null
docker run --detach --name $(q "$name") $(lines_to_args --env "${SIM_ENV:-}") --label $(q "service=$name") \
 $(q "$image") ${SIM_CMD:-} >/dev/null"
	echo "$name"
}

sim_lock() {
	local n=$1 msg=$2 details
	details=$(printf 'Locked by: %s at %s\nVersion: %s\nMessage: %s' "kamal_sim" \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SIM_VERSION:-unknown}" "$msg" | base64)
	run_on "$n" "mkdir -p .kamal && mkdir .kamal/$(q "lock-$SERVICE${DEST:+-$DEST}") && printf '%s\n' $(q "$details") > .kamal/$(q "lock-$SERVICE${DEST:+-$DEST}")/details"
}

sim_clean() {
	run_on "$1" "ids=\$(docker ps -aq); [ -z \"\$ids\" ] || docker rm -f \$ids >/dev/null
rm -rf .kamal $(q "$SERVICE")-*"
}

cmd=${1:-}; shift || true
case "$cmd" in
app) [ $# -eq 3 ] || die "usage: app N ROLE VERSION"; sim_app "$@" ;;
accessory) [ $# -eq 3 ] || die "usage: accessory N NAME IMAGE"; sim_accessory "$@" ;;
other) [ $# -eq 3 ] || die "usage: other N NAME IMAGE"; sim_other "$@" ;;
lock) [ $# -eq 2 ] || die "usage: lock N MESSAGE"; sim_lock "$@" ;;
clean) [ $# -eq 1 ] || die "usage: clean N"; sim_clean "$@" ;;
*) die "usage: kamal_sim.sh app|accessory|other|lock|clean ... (see the header)" ;;
esac

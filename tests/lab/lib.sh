# shellcheck shell=bash
# Helpers for the end-to-end lab. Source this after lab.env:
#   set -a; . "$LAB_DIR/lab.env"; set +a; . tests/lab/lib.sh
# lab.sh sources it too: every daemon is started and stopped by these functions,
# so a test that stops and restarts something leaves it recorded for teardown.
#
# Every process the lab starts is recorded as "$LAB_DIR/pids/<name>" holding
# "<pid> <start time>"; it is stopped by that pid only if the start time still
# matches (a recycled pid is never killed).


lab__log() { printf 'lab: %s\n' "$*" >&2; }

# ---- process bookkeeping ---------------------------------------------------

# Prints the start time (clock ticks after boot) of pid $1, or nothing if it
# does not exist or has exited (a zombie waiting to be reaped counts as gone).
lab__starttime() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	[ "$1" != Z ] || return 1
	echo "${20}"
}

# lab__record NAME PID: remember that the lab started PID as NAME.
lab__record() {
	mkdir -p "$LAB_DIR/pids"
	echo "$2 $(lab__starttime "$2")" >"$LAB_DIR/pids/$1"
}

# lab__pid NAME: prints the recorded pid if that process is still the one we started.
lab__pid() {
	local f="$LAB_DIR/pids/$1" pid st
	[ -f "$f" ] || return 1
	read -r pid st <"$f" || return 1
	[ -n "$pid" ] && [ "$(lab__starttime "$pid")" = "$st" ] || return 1
	echo "$pid"
}

# lab__spawn NAME CMD...: runs CMD in its own session (so a Ctrl-C at the
# terminal reaches the test runner, which then tears down in order), logs to
# $LAB_DIR/log/NAME.log and records its pid. setsid and nsenter exec, so the
# recorded pid is the daemon itself.
lab__spawn() {
	local name=$1 i; shift
	mkdir -p "$LAB_DIR/log" "$LAB_DIR/pids"
	rm -f "$LAB_DIR/pids/$name"
	# The child records itself before it execs the daemon (same pid, same start
	# time), so the record exists even if whoever started it is killed.
	# shellcheck disable=SC2016
	setsid bash -c 'read -r s </proc/$$/stat; s=${s##*) }; st=($s)
		echo "$$ ${st[19]}" >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
		"$LAB_DIR/pids/$name" "$@" </dev/null >>"$LAB_DIR/log/$name.log" 2>&1 &
	for ((i = 0; i < 200; i++)); do
		[ -f "$LAB_DIR/pids/$name" ] && return 0
		sleep 0.01
	done
	lab__log "$name did not start"
	return 1
}

# lab__stop NAME [TIMEOUT_S]: SIGTERM, wait, then SIGKILL; forgets the record.
lab__stop() {
	local name=$1 t=${2:-10} pid i
	if pid=$(lab__pid "$name"); then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < t * 20; i++)); do
			[ "$(lab__starttime "$pid")" ] || break
			sleep 0.05
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$LAB_DIR/pids/$name"
}

# lab__wait_for DESC TIMEOUT_S CMD...: polls CMD until it succeeds.
lab__wait_for() {
	local desc=$1 t=$2 i; shift 2
	for ((i = 0; i < t * 20; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	lab__log "timed out after ${t}s waiting for $desc"
	return 1
}

# ---- names -----------------------------------------------------------------

lab__ns() { echo "plumb-$LAB_ID-h$1"; }
lab__veth() { echo "plv$LAB_ID-$1"; }
lab__hdir() { echo "$LAB_DIR/h$1"; }
lab__host_ip() { local v="LAB_HOST_$1"; echo "${!v}"; }

# ---- hosts -----------------------------------------------------------------

# lab__enter N CMD...: runs CMD in host N's network and mount namespaces.
# (nsenter, not "ip netns exec": that remounts /sys and dockerd then fails.)
lab__enter() {
	local n=$1 holder; shift
	holder=$(lab__pid "h$n-holder") || { lab__log "host $n: namespace holder is gone"; return 1; }
	nsenter --target "$holder" --mount --net "$@"
}

lab_start_sshd() {
	local n=$1 h
	h=$(lab__hdir "$n")
	lab__pid "h$n-sshd" >/dev/null && return 0
	lab__spawn "h$n-sshd" nsenter --target "$(lab__pid "h$n-holder")" --mount --net \
		/usr/sbin/sshd -D -f "$h/sshd_config" -E "$h/sshd.log"
	lab__wait_for "sshd on host $n" 10 bash -c "exec 3<>/dev/tcp/$(lab__host_ip "$n")/22"
}

lab_stop_sshd() { lab__stop "h$1-sshd" 5; }

lab__docker_ping() { curl -sf --max-time 2 --unix-socket "$1" http://d/_ping; }

lab_start_dockerd() {
	local n=$1 h
	h=$(lab__hdir "$n")
	lab__pid "h$n-dockerd" >/dev/null && return 0
	rm -f "$h/docker.pid" "$h/docker.sock"
	# Its own daemon.json (not the machine's /etc/docker) and its own identity key.
	[ -f "$h/daemon.json" ] || printf '{"deprecated-key-path": "%s/key.json"}\n' "$h" >"$h/daemon.json"
	lab__spawn "h$n-dockerd" nsenter --target "$(lab__pid "h$n-holder")" --mount --net \
		dockerd --config-file "$h/daemon.json" --data-root "$h/docker" --exec-root "$h/x" \
		--host "unix://$h/docker.sock" --pidfile "$h/docker.pid" \
		--default-ulimit nofile=1024:1024 \
		--cgroup-parent "/plumb-$LAB_ID-h$n" \
		--insecure-registry "$LAB_REGISTRY" --insecure-registry "$LAB_REGISTRY_AUTH" \
		--log-level warn
	lab__wait_for "dockerd on host $n" 30 lab__docker_ping "$h/docker.sock"
}

# Stops host N's dockerd (containers stop with it, as on a real host).
lab_stop_dockerd() { lab__stop "h$1-dockerd" 30; }

lab_cut_link() { ip link set "$(lab__veth "$1")" down; }
lab_restore_link() { ip link set "$(lab__veth "$1")" up; }

# lab_on_host N CMD...: runs CMD on host N over SSH (strict host key checking
# against the lab's known_hosts) and returns its status. The words of CMD are
# joined by spaces and run by the host's shell, as ssh does.
lab_ssh_opts() {
	echo "-i $LAB_SSH_KEY -o IdentitiesOnly=yes -o UserKnownHostsFile=$LAB_KNOWN_HOSTS" \
		"-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes" \
		"-o ConnectTimeout=5 -o LogLevel=ERROR -F /dev/null"
}
lab_on_host() {
	local n=$1; shift
	# shellcheck disable=SC2046
	ssh $(lab_ssh_opts) -p "$LAB_SSH_PORT" "$LAB_SSH_USER@$(lab__host_ip "$n")" "$@"
}

# ---- registries ------------------------------------------------------------

lab_start_registry() {
	local kind=$1 addr
	case "$kind" in
	plain) addr=$LAB_REGISTRY ;;
	auth) addr=$LAB_REGISTRY_AUTH ;;
	local) addr=$LAB_REGISTRY_LOCAL ;;
	*) lab__log "unknown registry '$kind' (plain, auth, local)"; return 1 ;;
	esac
	lab__pid "registry-$kind" >/dev/null && return 0
	lab__spawn "registry-$kind" docker-registry serve "$LAB_DIR/registry-$kind.yml"
	lab__wait_for "registry $kind at $addr" 15 curl -s -o /dev/null --max-time 1 "http://$addr/v2/"
}

lab_stop_registry() { lab__stop "registry-$1" 5; }

# lab__reg_curl KIND ARGS...: curl against registry KIND with its credentials.
lab__reg_curl() {
	local kind=$1; shift
	case "$kind" in
	plain) curl -sSf --max-time 60 "$@" ;;
	auth) curl -sSf --max-time 60 -u "$LAB_REGISTRY_USER:$LAB_REGISTRY_PASSWORD" "$@" ;;
	local) curl -sSf --max-time 60 "$@" ;;
	esac
}
lab__reg_addr() {
	case "$1" in
	plain) echo "$LAB_REGISTRY" ;; auth) echo "$LAB_REGISTRY_AUTH" ;; local) echo "$LAB_REGISTRY_LOCAL" ;;
	esac
}

LAB_MANIFEST_TYPE=application/vnd.docker.distribution.manifest.v2+json

# lab_tag SRC_TAG DST_TAG [REPO]: adds tag DST_TAG to the image REPO:SRC_TAG
# (REPO defaults to optimus) in all three registries (the manifest is copied,
# so both tags lead to the same image and the same config digest).
lab_tag() {
	local src=$1 dst=$2 repo=${3:-optimus} kind addr m
	m=$(mktemp)
	for kind in plain auth local; do
		addr=$(lab__reg_addr "$kind")
		lab__reg_curl "$kind" -H "Accept: $LAB_MANIFEST_TYPE" -o "$m" \
			"http://$addr/v2/$repo/manifests/$src" &&
			lab__reg_curl "$kind" -o /dev/null -X PUT -H "Content-Type: $LAB_MANIFEST_TYPE" \
				--data-binary "@$m" "http://$addr/v2/$repo/manifests/$dst" ||
			{ lab__log "lab_tag: could not tag $repo:$src as $dst in $kind registry"; rm -f "$m"; return 1; }
	done
	rm -f "$m"
}

# ---- git -------------------------------------------------------------------

# lab_commit "MESSAGE" CMD...: runs CMD (with bash -c when it is one word
# containing spaces) in the lab's work clone, commits everything and pushes
# main to the bare repository, which git daemon serves at LAB_GIT_URL.
# Prints the new commit's sha.
lab_commit() {
	local msg=$1; shift
	local work="$LAB_DIR/git/work"
	(
		set -e
		cd "$work"
		if [ $# -eq 1 ]; then bash -c "$1"; elif [ $# -gt 1 ]; then "$@"; fi
		git add -A
		git -c user.name="plumb lab" -c user.email=lab@plumb.invalid commit -q --allow-empty -m "$msg"
		git push -q origin HEAD:main
		git rev-parse HEAD
	)
}

# lab_head: the sha main points at in the bare repository.
lab_head() { git --git-dir="$LAB_GIT_BARE" rev-parse main; }

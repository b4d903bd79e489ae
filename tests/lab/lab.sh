#!/usr/bin/env bash
# The end-to-end lab: a small fleet of real hosts on this machine.
#
#   tests/lab/lab.sh up [N]     bring up N hosts (default 3) + registries + images
#                               + git; writes $LAB_DIR/lab.env and prints LAB_DIR
#   tests/lab/lab.sh down [DIR] tear down (DIR, or $LAB_DIR, or $LAB_ID, or the
#                               only lab on the machine)
#
# Environment for "up": LAB_ID (run id, [a-z0-9]{1,8}; default random),
# LAB_DELAY_MS (round-trip delay added by the ssh relays, default 0),
# LAB_CACHE (image cache, default /var/cache/plumb-lab), LAB_KEEP=1 (keep the
# lab when "up" fails, for debugging).
#
# Each host is a network namespace (address 10.A.B.n on a bridge, A.B derived
# from the run id) with its own mount namespace in which /root is bind-mounted
# from the host's own home directory; its dockerd and sshd run in both
# namespaces, so "docker" over SSH talks to that host's daemon and paths under
# ~ are the host's own. See tests/lab/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

die() { lab__log "$*"; exit 1; }
now() { date +%s.%N; }

# ---- up ------------------------------------------------------------------------

# Picks a free 10.A.B.0/24 and a free block of loopback ports from the run id.
lab__allocate() {
	local h k idx a b base p used ok
	h=$(printf '%s' "$LAB_ID" | cksum | cut -d' ' -f1)
	for ((k = 0; k < 12800; k++)); do
		idx=$(((h + k) % 12800))
		a=$((200 + idx / 256)); b=$((idx % 256))
		ip -4 route show | grep -q "^10\.$a\.$b\." && continue
		ip -4 addr show | grep -q " 10\.$a\.$b\." && continue
		break
	done
	LAB_NET="10.$a.$b"
	used=" $(ss -Htln | awk '{n=split($4,x,":"); printf "%s ", x[n]}') "
	for ((k = 0; k < 190; k++)); do
		base=$((20000 + ((h + k) % 190) * 64))
		ok=1
		for ((p = base; p < base + LAB_N + 2; p++)); do
			case "$used" in *" $p "*) ok=0; break ;; esac
		done
		[ $ok = 1 ] && break
	done
	LAB_PORT_BASE=$base
}

lab__write_env() {
	local n f="$LAB_DIR/lab.env"
	{
		echo "LAB_ID=$LAB_ID"
		echo "LAB_DIR=$LAB_DIR"
		echo "LAB_N=$LAB_N"
		echo "LAB_NET=$LAB_NET.0/24"
		echo "LAB_BRIDGE=plb-$LAB_ID"
		echo "LAB_BRIDGE_IP=$LAB_NET.1"
		local hosts=""
		for ((n = 1; n <= LAB_N; n++)); do
			echo "LAB_HOST_$n=$LAB_NET.$((n + 1))"
			hosts="$hosts${hosts:+ }$LAB_NET.$((n + 1))"
		done
		echo "LAB_HOSTS=\"$hosts\""
		echo "LAB_SSH_USER=root"
		echo "LAB_SSH_PORT=22"
		echo "LAB_SSH_KEY=$LAB_DIR/id_ed25519"
		echo "LAB_KNOWN_HOSTS=$LAB_DIR/known_hosts"
		echo "LAB_DELAY_MS=${LAB_DELAY_MS:-0}"
		for ((n = 1; n <= LAB_N; n++)); do
			echo "LAB_RELAY_$n=127.0.0.1:$((LAB_PORT_BASE + 1 + n))"
		done
		echo "LAB_REGISTRY=$LAB_NET.1:5000"
		echo "LAB_REGISTRY_AUTH=$LAB_NET.1:5001"
		echo "LAB_REGISTRY_USER=lab"
		echo "LAB_REGISTRY_PASSWORD=lab-registry-password"
		echo "LAB_REGISTRY_LOCAL=127.0.0.1:$LAB_PORT_BASE"
		echo "LAB_GIT_BARE=$LAB_DIR/git/optimus.git"
		echo "LAB_GIT_URL=git://127.0.0.1:$((LAB_PORT_BASE + 1))/optimus.git"
		echo "LAB_GIT_WORK=$LAB_DIR/git/work"
		echo "LAB_LIB=$HERE/lib.sh"
	} >"$f"
}

lab__host_up() {
	local n=$1 ns veth h ip holder i
	ns=$(lab__ns "$n"); veth=$(lab__veth "$n"); h=$(lab__hdir "$n"); ip=$(lab__host_ip "$n")
	mkdir -p "$h/home" "$h/docker" "$h/x"
	chmod 700 "$h/home"
	ip netns add "$ns"
	ip link add "$veth" type veth peer name eth0 netns "$ns"
	ip link set "$veth" master "$LAB_BRIDGE" up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$ip/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$LAB_BRIDGE_IP"
	# The holder keeps the host's mount namespace (its own /root) alive.
	lab__spawn "h$n-holder" nsenter --net="/var/run/netns/$ns" \
		unshare --mount --propagation private \
		sh -c "mount --bind '$h/home' /root && exec sleep infinity"
	holder=$(lab__pid "h$n-holder")
	for ((i = 0; i < 200; i++)); do
		[ "$(cat "/proc/$holder/comm" 2>/dev/null)" = sleep ] && break
		[ -e "/proc/$holder" ] || die "host $n: mount namespace holder died (see $LAB_DIR/log/h$n-holder.log)"
		sleep 0.02
	done
	ssh-keygen -q -t ed25519 -N '' -C "lab-host-$n" -f "$h/ssh_host_ed25519_key"
	cat >"$h/sshd_config" <<EOF
ListenAddress $ip:22
HostKey $h/ssh_host_ed25519_key
PidFile $h/sshd.pid
AuthorizedKeysFile $LAB_DIR/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
GatewayPorts no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 200:30:400
MaxSessions 100
SetEnv DOCKER_HOST=unix://$h/docker.sock
Subsystem sftp internal-sftp
EOF
	lab_start_sshd "$n"
	lab_start_dockerd "$n"
}

# lab__push KIND IMAGES_DIR: uploads every image into registry KIND.
lab__push() {
	local kind=$1 dir=$2 addr repo tag m c hex loc seen=" "
	addr=$(lab__reg_addr "$kind")
	while read -r repo tag m c; do
		for hex in $(grep -o 'sha256:[0-9a-f]*' "$dir/blobs/$m" | cut -d: -f2); do
			case "$seen" in *" $repo/$hex "*) continue ;; esac
			seen="$seen$repo/$hex "
			loc=$(lab__reg_curl "$kind" -X POST -D - -o /dev/null \
				"http://$addr/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
			case "$loc" in http*) ;; *) loc="http://$addr$loc" ;; esac
			case "$loc" in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
			lab__reg_curl "$kind" -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
				--data-binary "@$dir/blobs/$hex" "${loc}digest=sha256:$hex" ||
				die "push of $repo blob $hex to $kind registry failed"
		done
		lab__reg_curl "$kind" -o /dev/null -X PUT -H "Content-Type: $LAB_MANIFEST_TYPE" \
			--data-binary "@$dir/blobs/$m" "http://$addr/v2/$repo/manifests/$tag" ||
			die "push of $repo:$tag to $kind registry failed"
	done <"$dir/images"
}

lab__registries_up() {
	local kind addr dir
	htpasswd -Bbn "$LAB_REGISTRY_USER" "$LAB_REGISTRY_PASSWORD" >"$LAB_DIR/registry.htpasswd" 2>/dev/null
	for kind in plain auth local; do
		addr=$(lab__reg_addr "$kind")
		mkdir -p "$LAB_DIR/registry-$kind"
		{
			echo "version: 0.1"
			echo "log: {level: error, accesslog: {disabled: true}}"
			echo "storage:"
			echo "  filesystem: {rootdirectory: $LAB_DIR/registry-$kind}"
			echo "  delete: {enabled: true}"
			echo "  maintenance: {uploadpurging: {enabled: false}}"
			echo "http: {addr: \"$addr\", secret: lab-$LAB_ID}"
			[ "$kind" = auth ] && echo "auth: {htpasswd: {realm: plumb-lab, path: $LAB_DIR/registry.htpasswd}}"
		} >"$LAB_DIR/registry-$kind.yml"
		lab_start_registry "$kind"
	done
	dir=$(bash "$HERE/images.sh" build "$LAB_CACHE") || die "building images failed"
	echo "$dir" >"$LAB_DIR/images-dir"
	local pids=()
	for kind in plain auth local; do
		lab__push "$kind" "$dir" &
		pids+=($!)
	done
	wait_all "pushing images" "${pids[@]}"
}

# The repository: deploy-examples/optimus if it exists, then the lab's own
# config/deploy.yml and .kamal/secrets rendered from tests/lab/optimus/.
lab__git_up() {
	local g="$LAB_DIR/git" work="$LAB_DIR/git/work" n web="" job="" db t
	mkdir -p "$g"
	git init -q --bare -b main "$g/optimus.git"
	git init -q -b main "$work"
	git -C "$work" remote add origin "$g/optimus.git"
	if [ -d "$ROOT/deploy-examples/optimus" ]; then
		cp -a "$ROOT/deploy-examples/optimus/." "$work/"
	fi
	for ((n = 1; n <= LAB_N; n++)); do
		if [ "$LAB_N" -eq 1 ] || [ "$n" -lt "$LAB_N" ]; then web="$web    - $(lab__host_ip "$n")"$'\n'; fi
	done
	job="      - $(lab__host_ip "$LAB_N")"
	db=$(lab__host_ip 1)
	mkdir -p "$work/config" "$work/.kamal"
	t=$(<"$HERE/optimus/deploy.yml.in")
	t=${t//@WEB_HOSTS@$'\n'/$web}
	t=${t//@JOB_HOSTS@/$job}
	t=${t//@DB_HOST@/$db}
	t=${t//@REGISTRY@/$LAB_REGISTRY}
	printf '%s\n' "$t" >"$work/config/deploy.yml"
	cp "$HERE/optimus/secrets" "$work/.kamal/secrets"
	git -C "$work" add -A
	git -C "$work" -c user.name="plumb lab" -c user.email=lab@plumb.invalid commit -q -m "optimus for the lab"
	git -C "$work" push -q origin main
	git -C "$work" branch -q --set-upstream-to=origin/main main
	lab__spawn git-daemon git daemon --reuseaddr --listen=127.0.0.1 --port="$((LAB_PORT_BASE + 1))" \
		--base-path="$g" --export-all --enable=receive-pack --informative-errors "$g"
	lab__wait_for "git daemon" 10 git ls-remote "$LAB_GIT_URL"
}

lab__relays_up() {
	local n
	cc -O2 -Wall -o "$LAB_DIR/relay" "$HERE/relay.c" || die "cannot build the relay"
	for ((n = 1; n <= LAB_N; n++)); do
		lab__spawn "relay-$n" "$LAB_DIR/relay" "127.0.0.1:$((LAB_PORT_BASE + 1 + n))" \
			"$(lab__host_ip "$n"):22" "${LAB_DELAY_MS:-0}"
	done
}

# wait_all DESC PID...: waits for the given background jobs; fails if any failed.
# (Not "jobs -p": daemons started from the same shell are jobs too.)
wait_all() {
	local desc=$1 rc=0 j; shift
	for j in "$@"; do
		wait "$j" || rc=1
	done
	[ $rc = 0 ] || die "$desc failed"
}

lab_up() {
	local t0 n known
	t0=$(now)
	[ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces, dockerd)"
	LAB_N=${1:-${LAB_N:-3}}
	[[ "$LAB_N" =~ ^[0-9]+$ ]] && [ "$LAB_N" -ge 1 ] && [ "$LAB_N" -le 50 ] || die "N must be 1..50"
	LAB_ID=${LAB_ID:-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')}
	[[ "$LAB_ID" =~ ^[a-z0-9]{1,8}$ ]] || die "LAB_ID must be 1-8 of [a-z0-9]"
	LAB_DIR=/tmp/plumb-lab-$LAB_ID
	LAB_CACHE=${LAB_CACHE:-/var/cache/plumb-lab}
	[ -e "$LAB_DIR" ] && die "$LAB_DIR exists: lab $LAB_ID is up (or was not torn down: lab.sh down $LAB_DIR)"
	mkdir -p "$LAB_DIR/pids" "$LAB_DIR/log" "$LAB_CACHE" /run/sshd
	lab__allocate
	lab__write_env
	set -a; . "$LAB_DIR/lab.env"; set +a
	# On any failure or interruption before the lab is ready, tear down what exists.
	# (The parallel start-up jobs are stopped first, so nothing starts after that.)
	UP_PIDS=()
	trap 'if [ ! -e "$LAB_DIR/ready" ]; then lab__log "up failed; tearing down"; kill -TERM "${UP_PIDS[@]}" 2>/dev/null; wait; sleep 0.3; [ "${LAB_KEEP:-}" = 1 ] || (lab_down "$LAB_DIR"); fi' EXIT
	trap 'exit 130' INT TERM

	ssh-keygen -q -t ed25519 -N '' -C "plumb-lab-$LAB_ID" -f "$LAB_SSH_KEY"
	cp "$LAB_SSH_KEY.pub" "$LAB_DIR/authorized_keys"
	ip link add "$LAB_BRIDGE" type bridge
	ip addr add "$LAB_BRIDGE_IP/24" dev "$LAB_BRIDGE"
	ip link set "$LAB_BRIDGE" up

	# Registries first (the hosts' dockerd flags name them), all in parallel.
	(lab__registries_up) &
	UP_PIDS+=($!)
	(lab__git_up) &
	UP_PIDS+=($!)
	(lab__relays_up) &
	UP_PIDS+=($!)
	for ((n = 1; n <= LAB_N; n++)); do
		(lab__host_up "$n") &
		UP_PIDS+=($!)
	done
	wait_all "lab up" "${UP_PIDS[@]}"

	known="$LAB_KNOWN_HOSTS"
	: >"$known"
	for ((n = 1; n <= LAB_N; n++)); do
		local key
		key=$(cut -d' ' -f1,2 "$(lab__hdir "$n")/ssh_host_ed25519_key.pub")
		echo "$(lab__host_ip "$n") $key" >>"$known"
		echo "[127.0.0.1]:$((LAB_PORT_BASE + 1 + n)) $key" >>"$known"
	done
	while read -r repo tag _ c; do
		[ "$repo" = optimus ] && echo "LAB_IMAGE_ID_$tag=sha256:$c" >>"$LAB_DIR/lab.env"
		[ "$repo" = postgres ] && echo "LAB_IMAGE_ID_postgres=sha256:$c" >>"$LAB_DIR/lab.env"
		[ "$repo" = caddy ] && echo "LAB_IMAGE_ID_caddy=sha256:$c" >>"$LAB_DIR/lab.env"
	done <"$(cat "$LAB_DIR/images-dir")/images"
	touch "$LAB_DIR/ready"
	trap - EXIT INT TERM
	lab__log "up: $LAB_N hosts ($LAB_HOSTS) in $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')s; env in $LAB_DIR/lab.env"
	echo "$LAB_DIR"
}

# ---- down ----------------------------------------------------------------------

# Kills every process in cgroups named plumb-<id>-* (containers the hosts'
# daemons started) and removes those cgroups.
lab__sweep_cgroups() {
	local d p
	for d in /sys/fs/cgroup/*/plumb-"$LAB_ID"-h*; do
		[ -d "$d" ] || continue
		for p in $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null || true
		done
	done
	sleep 0.1
	for d in /sys/fs/cgroup/*/plumb-"$LAB_ID"-h*; do
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}

lab__host_down() {
	local n=$1 ns h sock pid p holder_mnt
	ns=$(lab__ns "$n"); h=$(lab__hdir "$n"); sock="$h/docker.sock"
	if lab__pid "h$n-dockerd" >/dev/null && lab__docker_ping "$sock" >/dev/null 2>&1; then
		# Remove containers first, so dockerd exits quickly and cleanly.
		local ids
		ids=$(timeout 20 docker -H "unix://$sock" ps -aq 2>/dev/null || true)
		[ -n "$ids" ] && timeout 30 docker -H "unix://$sock" rm -f $ids >/dev/null 2>&1 || true
	fi
	lab__stop "h$n-dockerd" 20
	lab__stop "h$n-sshd" 5
	# Anything else still in the host's namespaces (SSH sessions, containerd,
	# shims, processes tests started with nsenter) belongs to the lab.
	holder_mnt=""
	if pid=$(lab__pid "h$n-holder"); then
		holder_mnt=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null || true)
	fi
	for p in $(ip netns pids "$ns" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null || true
	done
	if [ -n "$holder_mnt" ]; then
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$holder_mnt" ] && kill -KILL "${p#/proc/}" 2>/dev/null
		done
	fi
	lab__stop "h$n-holder" 2
	ip netns del "$ns" 2>/dev/null || true
	ip link del "$(lab__veth "$n")" 2>/dev/null || true
}

lab_down() {
	local dir=${1:-} n name
	set +e # tear down as much as possible, whatever fails
	if [ -z "$dir" ]; then
		if [ -n "${LAB_DIR:-}" ]; then dir=$LAB_DIR
		elif [ -n "${LAB_ID:-}" ]; then dir=/tmp/plumb-lab-$LAB_ID
		else
			set -- /tmp/plumb-lab-*
			[ $# = 1 ] && [ -d "$1" ] || die "down: which lab? give its directory (found: $*)"
			dir=$1
		fi
	fi
	[ -f "$dir/lab.env" ] || { [ -d "$dir" ] && rm -rf --one-file-system "$dir"; return 0; }
	set -a; . "$dir/lab.env"; set +a
	trap '' INT # finish tearing down even on a second Ctrl-C
	for ((n = 1; n <= LAB_N; n++)); do
		lab__host_down "$n" &
	done
	wait
	for name in "$LAB_DIR"/pids/*; do
		[ -f "$name" ] || continue
		lab__stop "$(basename "$name")" 5 &
	done
	wait
	lab__sweep_cgroups
	ip link del "$LAB_BRIDGE" 2>/dev/null || true
	if [ "${LAB_KEEP_DIR:-}" != 1 ]; then
		rm -rf --one-file-system "$LAB_DIR"
	fi
	trap - INT
	lab__log "down: lab $LAB_ID removed"
}

case "${1:-}" in
up) shift; lab_up "$@" ;;
down) shift; lab_down "$@" ;;
*) echo "usage: lab.sh up [N] | down [LAB_DIR]" >&2; exit 2 ;;
esac

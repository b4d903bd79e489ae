#!/usr/bin/env bash
# End-to-end cost of one observation (`plumb hosts`) on every host of the lab:
# commands per host after connecting (must be 1), wall time of the whole
# command, per-host connect and observe times — directly, and through the
# lab's delaying relays (PLUMB_SSH_CONNECT_TO) when LAB_DELAY_MS > 0.
# Run with more hosts: E2E_HOSTS=10 LAB_DELAY_MS=50 E2E_ONLY=observe_cost.sh make e2e
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
cd "$(dirname "$0")/../.."
. "$LAB_LIB"
PLUMB=${PLUMB_BIN:-build/plumb}
# the lab's key and known_hosts live outside the test repository: an untrusted
# run takes them from the invocation (environment), never from deploy.yml
export PLUMB_SSH_KNOWN_HOSTS=$LAB_KNOWN_HOSTS PLUMB_SSH_KEY=$LAB_SSH_KEY
SIM="bash tests/e2e/kamal_sim.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }

N=${LAB_N:-3}
RUNS=${OBSERVE_RUNS:-5}
tmp=$(mktemp -d /tmp/plumb-cost-XXXXXX)
cleanup() {
	for ((i = 1; i <= N; i++)); do $SIM clean "$i" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# A Kamal-like fleet: web v1 everywhere with secrets, Postgres on host 1.
export SIM_SECRETS=$'RAILS_MASTER_KEY=cost-test\nSECRET_KEY_BASE=cost-test-2'
for ((i = 1; i <= N; i++)); do $SIM app "$i" web v1 >/dev/null & done
wait
SIM_SECRETS='POSTGRES_PASSWORD=pw' SIM_PORT=5432 SIM_DIRS='data:/var/lib/postgresql/data' \
	$SIM accessory 1 db "$LAB_REGISTRY/postgres:17" >/dev/null
unset SIM_SECRETS

mkdir -p "$tmp/app/config"
{
	echo "service: optimus"
	echo "image: optimus"
	echo "servers:"
	echo "  web:"
	echo "    hosts:"
	for ((i = 1; i <= N; i++)); do echo "      - $(lab__host_ip "$i")"; done
	echo "registry:"
	echo "  server: $LAB_REGISTRY"
	echo "  username: lab"
	echo "  password: [KAMAL_REGISTRY_PASSWORD]"
	echo "builder:"
	echo "  arch: amd64"
	echo "accessories:"
	echo "  db:"
	echo "    image: $LAB_REGISTRY/postgres:17"
	echo "    host: $(lab__host_ip 1)"
	echo "    port: 5432"
	echo "ssh:"
	echo "  keys:"
	echo "    - $LAB_SSH_KEY"
	echo "x-plumb:"
	echo "  ssh:"
	echo "    known_hosts: $LAB_KNOWN_HOSTS"
} >"$tmp/app/config/deploy.yml"
mkdir -p "$tmp/app/.kamal"
echo "KAMAL_REGISTRY_PASSWORD=unused" >"$tmp/app/.kamal/secrets"

# measure LABEL: runs plumb hosts RUNS times, prints the median wall time and per-host figures.
measure() {
	local label=$1 walls=() r t0 ms
	for ((r = 0; r < RUNS; r++)); do
		t0=$(date +%s%N)
		"$PLUMB" hosts -c "$tmp/app/config/deploy.yml" --json >"$tmp/out.json" 2>"$tmp/err" ||
			{ cat "$tmp/err" >&2; fail "$label: plumb hosts failed"; }
		ms=$((($(date +%s%N) - t0) / 1000000))
		walls+=("$ms")
	done
	python3 - "$tmp/out.json" "$label" "${walls[@]}" <<'EOF' || fail "$label: not every host observed in one command"
import json, sys, statistics
d = json.load(open(sys.argv[1])); label = sys.argv[2]; walls = sorted(int(x) for x in sys.argv[3:])
hs = d["hosts"]
assert all(h["status"] == "ok" and h["round_trips"] == 1 for h in hs), [(h["host"], h["status"], h["round_trips"]) for h in hs]
c = [h["connect_ms"] for h in hs]; o = [h["observe_ms"] for h in hs]
print("%s: %d hosts, 1 command per host after connecting; wall median %d ms (min %d, max %d, %d runs); "
      "per host (last run): connect median %.0f ms (max %.0f), observe median %.0f ms (max %.0f)"
      % (label, len(hs), statistics.median(walls), walls[0], walls[-1], len(walls),
         statistics.median(c), max(c), statistics.median(o), max(o)))
EOF
}

measure "direct"
if [ "${LAB_DELAY_MS:-0}" -gt 0 ]; then
	spec=""
	for ((i = 1; i <= N; i++)); do
		v="LAB_RELAY_$i"
		spec="$spec${spec:+,}$(lab__host_ip "$i")=${!v}"
	done
	PLUMB_SSH_CONNECT_TO=$spec measure "relay +${LAB_DELAY_MS} ms"
fi
echo "observe_cost: ok"

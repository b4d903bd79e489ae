#!/usr/bin/env bash
# End-to-end: `plumb hosts` observes a fleet that tests/e2e/kamal_sim.sh set up
# exactly as Kamal would (web on hosts 1-2, job on the last host, Postgres
# accessory on host 1, env files, a held deploy lock), on every lab host:
#   - every container, version, state, accessory and env file is reported;
#   - a container of another service and one of another destination are not ours;
#   - a canary secret (in env and env files) appears nowhere: not in the raw bytes
#     received (PLUMB_DEBUG_OBSERVATION), not in text or JSON output;
#   - one command per host after connecting;
#   - output cut short on purpose -> "unknown"; sshd stopped -> "unreachable",
#     the other hosts still observed; exit 1 naming them.
# Prints the measured costs (round trips, wall time).
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
[ "$N" -ge 3 ] || fail "needs at least 3 lab hosts"
CANARY="CANARY-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
tmp=$(mktemp -d /tmp/plumb-observe-XXXXXX)
stopped=""
cleanup() {
	[ -z "$stopped" ] || lab_start_sshd "$stopped" || true
	for ((i = 1; i <= N; i++)); do $SIM clean "$i" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---- the fleet, as Kamal leaves it ----
last=$N
export SIM_ENV=$'RAILS_ENV=production\nWEIRD=a "q" $(touch /tmp/pwned) `x` \\ end'
export SIM_SECRETS="RAILS_MASTER_KEY=$CANARY"$'\n'"MULTI=line1"$'\n'"weird-key.x=$CANARY-3"
for ((i = 1; i < last; i++)); do $SIM app "$i" web v1 >/dev/null & done
SIM_CMD=job $SIM app "$last" job v1 >/dev/null &
wait
SIM_ENV='POSTGRES_DB=optimus' SIM_SECRETS="POSTGRES_PASSWORD=$CANARY-pg" SIM_PORT=5432 \
	SIM_DIRS='data:/var/lib/postgresql/data' $SIM accessory 1 db "$LAB_REGISTRY/postgres:17" >/dev/null
# A newer version of web on host 1, stopped (as after a deploy, the old one is kept).
SIM_TAG=v2 $SIM app 1 web v2 >/dev/null
lab_on_host 1 "docker stop optimus-web-v2 >/dev/null"
# Not ours: another service, and optimus in another destination.
SIM_ENV="LEAK=$CANARY-other" $SIM other 1 blog-web-v1 "$LAB_REGISTRY/optimus:v2" >/dev/null
SIM_DEST=staging SIM_SECRETS="X=$CANARY-staging" $SIM app 2 web v3 >/dev/null
SIM_VERSION=v1 $SIM lock 1 "deploying from the test" >/dev/null
unset SIM_ENV SIM_SECRETS

# ---- the configuration, generated for the lab ----
mkdir -p "$tmp/app/config" "$tmp/app/.kamal"
{
	echo "service: optimus"
	echo "image: optimus"
	echo "servers:"
	echo "  web:"
	echo "    hosts:"
	for ((i = 1; i < last; i++)); do echo "      - $(lab__host_ip "$i")"; done
	echo "  job:"
	echo "    hosts:"
	echo "      - $(lab__host_ip "$last")"
	echo "    cmd: job"
	echo "registry:"
	echo "  server: $LAB_REGISTRY"
	echo "  username: lab"
	echo "  password:"
	echo "    - KAMAL_REGISTRY_PASSWORD"
	echo "builder:"
	echo "  arch: amd64"
	echo "env:"
	echo "  clear:"
	echo "    RAILS_ENV: production"
	echo "  secret:"
	echo "    - RAILS_MASTER_KEY"
	echo "accessories:"
	echo "  db:"
	echo "    image: $LAB_REGISTRY/postgres:17"
	echo "    host: $(lab__host_ip 1)"
	echo "    port: 5432"
	echo "    env:"
	echo "      secret:"
	echo "        - POSTGRES_PASSWORD"
	echo "    directories:"
	echo "      - data:/var/lib/postgresql/data"
	echo "ssh:"
	echo "  user: $LAB_SSH_USER"
	echo "  keys:"
	echo "    - $LAB_SSH_KEY"
	echo "x-plumb:"
	echo "  ssh:"
	echo "    known_hosts: $LAB_KNOWN_HOSTS"
} >"$tmp/app/config/deploy.yml"
printf 'KAMAL_REGISTRY_PASSWORD=unused\nRAILS_MASTER_KEY=%s\nPOSTGRES_PASSWORD=%s-pg\n' "$CANARY" "$CANARY" >"$tmp/app/.kamal/secrets"
CFG="$tmp/app/config/deploy.yml"

# ---- observe ----
dump=$tmp/raw
t0=$(date +%s%N)
PLUMB_DEBUG_OBSERVATION=$dump "$PLUMB" hosts -c "$CFG" --json >"$tmp/out.json" 2>"$tmp/err" ||
	{ rc=$?; cat "$tmp/err" "$tmp/out.json" >&2; fail "plumb hosts exited $rc"; }
wall_ms=$((($(date +%s%N) - t0) / 1000000))
"$PLUMB" hosts -c "$CFG" >"$tmp/out.txt" 2>>"$tmp/err" || fail "plumb hosts (text) failed"
cat "$tmp/out.txt"

j() { python3 -c "import json,sys; d=json.load(open('$tmp/out.json')); $1"; }
j "
hs0=d['hosts']; assert len(hs0)==$N, len(hs0)
for h in hs0: assert h['status']=='ok', h; assert h['round_trips']==1, h
by={h['host']:h for h in hs0}
hs=[by['$(lab__host_ip 1)'], by['$(lab__host_ip 2)'], by['$(lab__host_ip "$last")']]
def names(i): return sorted(c['name'] for c in hs[i]['containers'])
assert names(0)==['optimus-db','optimus-web-v1','optimus-web-v2'], names(0)
assert names(1)==['optimus-web-v1'], names(1)
assert names(2)==['optimus-job-v1'], names(2)
c={c['name']:c for c in hs[0]['containers']}
w=c['optimus-web-v1']; assert w['kind']=='app' and w['role']=='web' and w['version']=='v1' and w['state']=='running', w
assert c['optimus-web-v2']['state']=='exited' and c['optimus-web-v2']['version']=='v2'
assert w['labels']=={'service':'optimus','role':'web','destination':'','org.opencontainers.image.version':'v1'}, w['labels']
assert w['env']['RAILS_MASTER_KEY']=='(value hidden)' and 'KAMAL_VERSION' in w['env'], w['env']
assert w['restart']=='unless-stopped' and w['log_opts']=={'max-size':'10m'} and w['networks']==['kamal'], w
assert w['image_id']=='$LAB_IMAGE_ID_v1', w['image_id']
db=c['optimus-db']; assert db['kind']=='accessory' and db['accessory']=='db', db
assert db['ports']==[{'container_port':'5432/tcp','host_ip':'','host_port':'5432'}], db['ports']
assert db['mounts'][0]['source'].endswith('/optimus-db/data'), db['mounts']
job=hs[2]['containers'][0]; assert job['role']=='job' and job['cmd']==['job'], job
assert hs[0]['ignored_containers']==0 and hs[1]['ignored_containers']==1, [h['ignored_containers'] for h in hs]
ef={e['path']:e for e in hs[0]['env_files']}
assert ef['.kamal/apps/optimus/env/roles/web.env']['mode']=='0600'
assert sorted(ef['.kamal/apps/optimus/env/roles/web.env']['env'])==['?','MULTI','RAILS_MASTER_KEY'], ef
assert '.kamal/apps/optimus/env/accessories/db.env' in ef
assert 'Locked by: kamal_sim' in hs[0]['lock'] and hs[1]['lock'] is None, hs[0]['lock']
" || fail "the JSON observation is not what Kamal set up"
grep -q "blog" "$tmp/out.json" && fail "another service's container is reported"
grep -q "optimus-web-staging" "$tmp/out.json" && fail "another destination's container is reported as ours"
grep -q "RAILS_MASTER_KEY (value hidden)" "$tmp/out.txt" || fail "env keys not listed as hidden"
echo "observed $N hosts completely; not ours: blog-web-v1, optimus-web-staging-v3"

# ---- no secret anywhere ----
[ -s "$dump" ] || fail "no debug dump written"
[ "$(stat -c %a "$dump")" = 600 ] || fail "debug dump is not 0600"
for f in "$dump" "$tmp/out.json" "$tmp/out.txt" "$tmp/err"; do
	if grep -q "$CANARY" "$f"; then fail "the canary secret appears in $(basename "$f")"; fi
done
grep -q "^E RAILS_MASTER_KEY	[0-9a-f]\{64\}$" "$dump" || fail "the dump holds no hashed env"
[ ! -e /tmp/pwned ] || fail "a value was executed"
echo "canary secret: absent from the raw observation ($(wc -c <"$dump") bytes), text and JSON output"

# ---- cost ----
echo "cost: $N hosts, 1 command per host after connecting, wall ${wall_ms} ms (plumb hosts, incl. config load)"
jq_ms=$(j "print(' '.join('%s:connect=%.0fms,observe=%.0fms' % (h['host'],h['connect_ms'],h['observe_ms']) for h in d['hosts']))")
echo "cost per host: $jq_ms"

# ---- cut short on purpose -> unknown ----
set +e
PLUMB_OBS_MAX_OUTPUT=2000 "$PLUMB" hosts -c "$CFG" --json >"$tmp/cut.json" 2>"$tmp/cut.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "a cut-short observation exited $rc, want 1"
j "d=json.load(open('$tmp/cut.json')); h=[h for h in d['hosts'] if h['host']=='$(lab__host_ip 1)'][0]
assert h['status']=='unknown' and not h['containers'], h
print('cut short (host 1, the largest output):', h['error'])"
grep -q "unknown" "$tmp/cut.err" || fail "stderr does not name the unknown host"

# ---- sshd stopped -> unreachable, the others observed ----
lab_stop_sshd 2
stopped=2
set +e
"$PLUMB" hosts -c "$CFG" --json >"$tmp/down.json" 2>"$tmp/down.err"
rc=$?
set -e
lab_start_sshd 2
stopped=""
[ $rc -eq 1 ] || fail "with sshd stopped, exit $rc, want 1"
j "d=json.load(open('$tmp/down.json')); s={h['host']:h['status'] for h in d['hosts']}
assert s.pop('$(lab__host_ip 2)')=='unreachable', s
assert all(x=='ok' for x in s.values()), s
print('sshd stopped on host 2:', [(h['host'], h['status'], h['error']) for h in d['hosts']])"
grep -q "$(lab__host_ip 2) (unreachable)" "$tmp/down.err" || fail "stderr does not name the unreachable host"
echo "observe_fleet: ok"

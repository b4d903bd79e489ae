#!/usr/bin/env bash
# Benchmarks (make bench; not part of CI). Reports, never asserts a speed: a
# slow number does not fail the run. Exit 1 only when something could not be
# measured at all (the lab did not come up, a benchmark program failed).
#
# Measured in ONE run, every comparison against a baseline taken in the same
# run (interleaved, so both share the machine's noise):
#
#  1. No-op `plumb plan` on 3 and on 10 lab hosts that tests/e2e/kamal_sim.sh
#     set up as `kamal deploy` leaves them (same version: the plan says no
#     changes), at the lab's native latency and through the lab's relays that
#     add BENCH_DELAY_MS (default 25) to every round trip of each host link —
#     beside the best a user could script: `ssh` to every host in parallel
#     (xargs -P) running `docker inspect $(docker ps -aq)`, with the same key,
#     known_hosts and relays. Median wall time of BENCH_RUNS runs each, the
#     ratio plumb/baseline (target <= 1.0 at 3 hosts) and plumb 10 hosts /
#     3 hosts (target <= 2x). Round trips: commands per host after connecting
#     (plumb: `plumb hosts --json` round_trips — plan's output does not carry
#     them; baseline: ssh invocations counted with xargs -t), and the round
#     trips on the critical path, (wall through relays - wall native) / delay.
#     With plan working, `plumb hosts` (observation only) is measured beside
#     it, so what plan adds to observing shows. Per-host connect/observe
#     times come from `plumb hosts --json`.
#  2. Peak memory (max RSS, /usr/bin/time) of `plumb plan` on 3 and 10 hosts,
#     beside the baseline's largest process; CPU time (user+sys) of plumb and
#     of all the baseline's ssh processes.
#  3. CPU time of planning a 1,000-host fake fleet (build/rel/tests/b_plan:
#     desired state + diff + render), against building the fake fleet itself.
#
#  4. apply against the real Kamal (tests/e2e/apply_bench_helper.sh).
#  5. watch: 1,000 no-op cycles of one daemon with warm sessions — RSS at
#     cycle 10 and at the end, the cycle's wall time beside a one-shot no-op
#     apply (tests/e2e/watch_bench_helper.sh; BENCH_SKIP_WATCH=1 skips it).
#
# If `plumb plan` fails on the lab (exit 1), (1) and (2) measure `plumb hosts`
# (the same observation, without registry lookup, desired state and diff) and
# the table says so.
#
# The lab is brought up here (tests/lab/lab.sh, BENCH_HOSTS hosts, relays
# delaying BENCH_DELAY_MS) and torn down on exit, Ctrl-C or TERM.
# Results: stdout and build/bench/results.txt; raw samples in
# build/bench/samples.tsv.
#
#   BENCH_RUNS=N       runs per case (default 9, at least 5 is meaningful)
#   BENCH_DELAY_MS=MS  delay added by the relays (default 25)
#   BENCH_SIZES="3 10" fleet sizes (the lab has max(BENCH_SIZES) hosts)
#   BENCH_SKIP_LAB=1   only (3), no lab
#   BENCH_KEEP=1       leave the lab up afterwards
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
PLUMB=${PLUMB_BIN:-$ROOT/build/plumb}
BIN_DIR=${E2E_BIN_DIR:-$ROOT/build/rel/tests}
LAB=$ROOT/tests/lab/lab.sh
OUT=$ROOT/build/bench
RUNS=${BENCH_RUNS:-9}
DELAY=${BENCH_DELAY_MS:-25}
SIZES=${BENCH_SIZES:-3 10}
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
SAMPLES=$OUT/samples.tsv
FACTS=$OUT/facts.tsv # key<TAB>value, read by the table printer
: >"$SAMPLES"
: >"$FACTS"
errors=0

say() { printf 'bench: %s\n' "$*" >&2; }
fact() { printf '%s\t%s\n' "$1" "$2" >>"$FACTS"; }
note() { printf 'note\t%s\n' "$*" >>"$FACTS"; say "$*"; }

# ---- the lab: up here, down on any exit ---------------------------------------
export LAB_ID=${LAB_ID:-b$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}
LAB_DIR=/tmp/plumb-lab-$LAB_ID
child=""
tmp=""
finish() {
	local rc=$?
	trap '' INT TERM
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	if [ -d "$LAB_DIR" ]; then
		if [ "${BENCH_KEEP:-}" = 1 ] && [ -f "$LAB_DIR/ready" ]; then
			say "lab kept: set -a; . $LAB_DIR/lab.env; set +a; tear down with: $LAB down $LAB_DIR"
		else
			"$LAB" down "$LAB_DIR" >/dev/null 2>&1 || say "lab teardown failed: $LAB down $LAB_DIR"
		fi
	fi
	[ -z "$tmp" ] || rm -rf "$tmp"
	[ -z "${APPLY_LAB_DIR:-}" ] || [ ! -d "$APPLY_LAB_DIR" ] || "$LAB" down "$APPLY_LAB_DIR" >/dev/null 2>&1
	rm -rf "$BENCH_TMP"
	exit "$rc"
}
trap finish EXIT
trap 'say "interrupted"; exit 130' INT TERM

# run_bg CMD...: runs CMD in the background and waits, so a signal reaches our trap.
run_bg() {
	"$@" &
	child=$!
	wait "$child"
	local rc=$?
	child=""
	return $rc
}

now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

# Every run measures one binary: a private copy (the tree's build/plumb may be
# relinked by a concurrent make while the bench runs).
BENCH_TMP=$(mktemp -d /tmp/plumb-bench-bin-XXXXXX)
if [ -x "$PLUMB" ]; then
	cp "$PLUMB" "$BENCH_TMP/plumb" && PLUMB=$BENCH_TMP/plumb
fi
FAILLOG=$OUT/failures.log
: >"$FAILLOG"

# ---- 3. planning CPU time (no lab needed) -------------------------------------
if [ -x "$BIN_DIR/b_plan" ]; then
	say "b_plan: planning a 1,000-host fake fleet"
	if "$BIN_DIR/b_plan" >"$OUT/b_plan.out" 2>"$OUT/b_plan.err"; then
		grep -v '^BENCH ' "$OUT/b_plan.out" >&2
		sed -n 's/^BENCH \([^ ]*\) \(.*\)$/bplan_\1\t\2/p' "$OUT/b_plan.out" >>"$FACTS"
	else
		cat "$OUT/b_plan.err" >&2
		note "b_plan failed: $(tail -n 1 "$OUT/b_plan.err")"
		errors=$((errors + 1))
	fi
else
	note "no $BIN_DIR/b_plan (run through make bench)"
	errors=$((errors + 1))
fi

# ---- 1 and 2 on the lab ---------------------------------------------------------
lab_part() {
	local max=0 s
	for s in $SIZES; do [ "$s" -gt "$max" ] && max=$s; done
	[ "$max" -ge 2 ] || { note "BENCH_SIZES must be >= 2"; return 1; }
	say "bringing up the lab ($LAB_ID, $max hosts, relays +${DELAY} ms)"
	local t0 t1
	t0=$(now_us)
	if ! LAB_DELAY_MS=$DELAY run_bg "$LAB" up "$max" >/dev/null; then
		note "the lab did not come up"
		return 1
	fi
	t1=$(now_us)
	fact lab_up_ms $(((t1 - t0) / 1000))
	set -a
	# shellcheck source=/dev/null
	. "$LAB_DIR/lab.env"
	set +a
	# shellcheck source=/dev/null
	. "$ROOT/tests/lab/lib.sh"
	tmp=$(mktemp -d /tmp/plumb-bench-XXXXXX)
	local N=$LAB_N SIM="bash $ROOT/tests/e2e/kamal_sim.sh" i

	# The fleet, as `kamal deploy` of the lab's optimus (tests/lab/optimus)
	# at version v1 leaves it: web on hosts 1..N-1, job on host N, Postgres
	# on host 1. The same fleet serves every size: the s-host config is web
	# on hosts 1..s-1 and job on host N.
	say "setting up $N hosts as Kamal would (kamal_sim.sh)"
	(
		export SIM_ENV=$'SOLID_QUEUE_IN_PUMA=false\nWEB_CONCURRENCY=2\nJOB_CONCURRENCY=3\nDB_HOST='"$LAB_HOST_1"
		export SIM_SECRETS='RAILS_MASTER_KEY=0123456789abcdef0123456789abcdef'
		export SIM_VOLUMES='optimus_storage:/rails/storage'
		for ((i = 1; i < N; i++)); do $SIM app "$i" web v1 >/dev/null & done
		SIM_CMD=bin/jobs $SIM app "$N" job v1 >/dev/null &
		wait
	) || { note "kamal_sim.sh failed"; return 1; }
	SIM_SECRETS='POSTGRES_PASSWORD=lab-db-password' SIM_PORT=5432 SIM_DIRS='data:/var/lib/postgresql/data' \
		$SIM accessory 1 db "$LAB_REGISTRY/postgres:17" >/dev/null || { note "kamal_sim.sh accessory failed"; return 1; }

	# The lab's key and known_hosts live outside the generated repositories: an
	# untrusted plan takes them from the invocation, as a PR check would.
	export PLUMB_SSH_KNOWN_HOSTS=$LAB_KNOWN_HOSTS PLUMB_SSH_KEY=$LAB_SSH_KEY

	# Configs: the lab repository's config/deploy.yml (tests/lab/optimus), for
	# s hosts, with what the bench needs on top: web without kamal-proxy
	# (kamal_sim.sh runs none, and the lab has no kamal-proxy image) and its
	# plain registry as insecure (HTTP).
	local s dir spec="" v
	for s in $SIZES; do
		dir=$tmp/app$s
		mkdir -p "$dir/config" "$dir/.kamal"
		cp "$LAB_GIT_WORK/.kamal/secrets" "$dir/.kamal/secrets"
		{
			echo "service: optimus"
			echo "image: optimus"
			echo "servers:"
			echo "  web:"
			echo "    hosts:"
			for ((i = 1; i < s; i++)); do echo "      - $(lab__host_ip "$i")"; done
			echo "    proxy: false"
			echo "  job:"
			echo "    hosts:"
			echo "      - $(lab__host_ip "$N")"
			echo "    cmd: bin/jobs"
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
			echo "    DB_HOST: $(lab__host_ip 1)"
			echo "volumes:"
			echo "  - \"optimus_storage:/rails/storage\""
			echo "builder:"
			echo "  arch: amd64"
			echo "accessories:"
			echo "  db:"
			echo "    image: $LAB_REGISTRY/postgres:17"
			echo "    host: $(lab__host_ip 1)"
			echo "    port: \"5432:5432\""
			echo "    env:"
			echo "      secret:"
			echo "        - POSTGRES_PASSWORD"
			echo "    directories:"
			echo "      - data:/var/lib/postgresql/data"
			echo "ssh:"
			echo "  user: $LAB_SSH_USER"
			echo "x-plumb:"
			echo "  registry:"
			echo "    insecure:"
			echo "      - $LAB_REGISTRY"
		} >"$dir/config/deploy.yml"
		# baseline host lists: "-p PORT -o HostKeyAlias=IP USER@ADDR <remote command words>"
		: >"$dir/direct.list"
		: >"$dir/relay.list"
		for i in $( (for ((k = 1; k < s; k++)); do echo "$k"; done; echo "$N")); do
			v="LAB_RELAY_$i"
			echo "-p 22 -o HostKeyAlias=$(lab__host_ip "$i") $LAB_SSH_USER@$(lab__host_ip "$i") docker inspect \$(docker ps -aq)" >>"$dir/direct.list"
			echo "-p ${!v##*:} -o HostKeyAlias=$(lab__host_ip "$i") $LAB_SSH_USER@${!v%:*} docker inspect \$(docker ps -aq)" >>"$dir/relay.list"
		done
	done
	for ((i = 1; i <= N; i++)); do
		v="LAB_RELAY_$i"
		spec="$spec${spec:+,}$(lab__host_ip "$i")=${!v}"
	done
	RELAY_SPEC=$spec

	# plumb_cmd SIZE LINK [hosts]: runs the measured plumb command (stdout to $tmp/p.out).
	MODE=plan
	plumb_cmd() {
		local cfg=$tmp/app$1/config/deploy.yml
		if [ "$2" = relay ]; then export PLUMB_SSH_CONNECT_TO=$RELAY_SPEC; else unset PLUMB_SSH_CONNECT_TO; fi
		if [ "$MODE" = plan ] && [ -z "${3:-}" ]; then
			"$PLUMB" plan -c "$cfg" --version v1 >"$tmp/p.out" 2>"$tmp/p.err"
		else
			"$PLUMB" hosts -c "$cfg" >"$tmp/p.out" 2>"$tmp/p.err"
		fi
		local rc=$?
		unset PLUMB_SSH_CONNECT_TO
		return $rc
	}
	# base_cmd SIZE LINK: every host in parallel, one ssh each (xargs -t logs each command).
	base_cmd() {
		# shellcheck disable=SC2046
		xargs -t -P 0 -L 1 ssh $(lab_ssh_opts) <"$tmp/app$1/$2.list" >"$tmp/b.out" 2>"$tmp/b.err"
	}

	# Check once: plumb plan succeeds with no changes, the baseline reaches every host.
	local link rc nids want
	for s in $SIZES; do
		for link in direct relay; do
			plumb_cmd "$s" "$link"
			rc=$?
			if [ "$MODE" = plan ] && [ $rc -eq 1 ]; then
				note "plumb plan failed on the lab ($s hosts, $link): $(grep -v '^plumb: untrusted\|^  - ' "$tmp/p.err" | head -n 2 | tr '\n' ' ')"
				note "MEASURING plumb hosts INSTEAD OF plumb plan (the same observation, without registry lookup, desired state and diff)"
				MODE=hosts
				plumb_cmd "$s" "$link"
				rc=$?
			fi
			if [ $rc -ne 0 ] && ! { [ "$MODE" = plan ] && [ $rc -eq 2 ]; }; then
				note "plumb $MODE failed ($s hosts, $link, exit $rc): $(head -n 3 "$tmp/p.err" | tr '\n' ' ')"
				return 1
			fi
			if [ "$MODE" = plan ] && [ $rc -eq 2 ]; then
				note "plumb plan is not a no-op on $s hosts ($link): $(grep '^Plan:' "$tmp/p.out")"
				cp "$tmp/p.out" "$OUT/plan-$s-$link.txt"
			fi
			fact "plumb_exit_${s}_$link" "$rc"
			base_cmd "$s" "$link" || { note "baseline ssh failed ($s hosts, $link): $(grep -v '^ssh ' "$tmp/b.err" | head -n 2 | tr '\n' ' ')"; return 1; }
			nids=$(grep -c '"Id": "' "$tmp/b.out")
			want=$((s + 1)) # one app container per host, and the accessory
			[ "$nids" -eq "$want" ] || { note "baseline inspected $nids containers, want $want ($s hosts, $link)"; return 1; }
			fact "base_ssh_${s}_$link" "$(grep -c '^ssh ' "$tmp/b.err")"
			fact "base_containers_${s}_$link" "$nids"
		done
	done
	fact mode "$MODE"
	[ "$MODE" = plan ] && cp "$tmp/p.out" "$OUT/plan-last.txt"

	# Round trips per host as plumb reports them (plumb hosts --json).
	for s in $SIZES; do
		for link in direct relay; do
			if [ "$link" = relay ]; then
				PLUMB_SSH_CONNECT_TO=$RELAY_SPEC "$PLUMB" hosts -c "$tmp/app$s/config/deploy.yml" --json >"$tmp/h.json" 2>/dev/null
			else
				"$PLUMB" hosts -c "$tmp/app$s/config/deploy.yml" --json >"$tmp/h.json" 2>/dev/null
			fi
			python3 - "$tmp/h.json" "$s" "$link" >>"$FACTS" <<'EOF' || note "plumb hosts --json unreadable ($s hosts, $link)"
import json, sys
d = json.load(open(sys.argv[1])); s, link = sys.argv[2], sys.argv[3]
rt = sorted({h["round_trips"] for h in d["hosts"]})
ok = sum(1 for h in d["hosts"] if h["status"] == "ok")
print("plumb_rt_%s_%s\t%s" % (s, link, "/".join(str(x) for x in rt)))
print("plumb_hosts_ok_%s_%s\t%d/%d" % (s, link, ok, len(d["hosts"])))
hs = d["hosts"]
if hs:
    c = sorted(h["connect_ms"] for h in hs); o = sorted(h["observe_ms"] for h in hs)
    print("plumb_connect_%s_%s\t%.0f/%.0f" % (s, link, c[len(c) // 2], c[-1]))
    print("plumb_observe_%s_%s\t%.0f/%.0f" % (s, link, o[len(o) // 2], o[-1]))
EOF
		done
	done

	# Host-side work of one observation: values hashed on the host (one
	# up to 8 per sha256sum process), from the raw observation plumb received.
	local small=1000
	for s in $SIZES; do [ "$s" -lt "$small" ] && small=$s; done
	if PLUMB_DEBUG_OBSERVATION=$tmp/dump "$PLUMB" hosts -c "$tmp/app$small/config/deploy.yml" >/dev/null 2>&1 && [ -s "$tmp/dump" ]; then
		fact hashes_per_host "$(grep -cE $'^[EL] [^\t]*\t[0-9a-f]{64}$' "$tmp/dump" | awk -v n="$small" '{printf "%.0f", $1 / n}')"
		fact obs_bytes_per_host "$(awk -v n="$small" -v b="$(wc -c <"$tmp/dump")" 'BEGIN {printf "%.0f", b / n}')"
	fi

	# The measurement: one warm-up round, then RUNS rounds; each round runs
	# every case once, in an order that alternates (forward, backward) so no
	# case always follows the same one.
	local cases=() c r order t0c t1c
	local tools="plumb base"
	# with plan working, also plumb hosts: what plan adds to observing
	[ "$MODE" = plan ] && tools="plumb hosts base"
	for s in $SIZES; do for link in direct relay; do for c in $tools; do cases+=("$c $s $link"); done; done; done
	say "measuring: ${#cases[@]} cases x $RUNS runs (+1 warm-up), plumb $MODE vs ssh | xargs -P"
	for ((r = 0; r <= RUNS; r++)); do
		if ((r % 2)); then order=$(printf '%s\n' "${cases[@]}" | tac); else order=$(printf '%s\n' "${cases[@]}"); fi
		while read -r c s link; do
			t0c=$(now_us)
			case $c in
			plumb) plumb_cmd "$s" "$link"; rc=$? ;;
			hosts) plumb_cmd "$s" "$link" hosts; rc=$? ;;
			*) base_cmd "$s" "$link"; rc=$? ;;
			esac
			t1c=$(now_us)
			# plan: 0 no changes, 2 changes (noted above); anything else failed
			if [ $rc -eq 0 ] || { [ "$c" = plumb ] && [ "$MODE" = plan ] && [ $rc -eq 2 ]; }; then
				rc=ok
			else
				{
					echo "== $c $s $link round $r: exit $rc"
					if [ "$c" = base ]; then cat "$tmp/b.err"; else cat "$tmp/p.err"; fi
				} >>"$FAILLOG"
				rc=fail
			fi
			[ $r -eq 0 ] || printf '%s\t%s\t%s\t%s\t%s\n' "$c" "$s" "$link" "$(((t1c - t0c) / 1000))" "$rc" >>"$SAMPLES"
		done <<<"$order"
		[ $r -eq 0 ] || say "round $r/$RUNS done"
	done

	# 2. peak memory: plumb on the largest fleet (max of 3 runs), beside the baseline's largest process.
	# Also CPU seconds (user+sys) of plumb and of the baseline's processes,
	# native link, each size: on a machine whose cores also run every host's
	# sshd and dockerd, CPU is what limits the 10-host wall time.
	local big=0 m mb u y
	for s in $SIZES; do [ "$s" -gt "$big" ] && big=$s; done
	for s in $SIZES; do
		mb=0
		for r in 1 2 3; do
			if [ "$MODE" = plan ]; then
				/usr/bin/time -f '%M %U %S' -o "$tmp/rss" "$PLUMB" plan -c "$tmp/app$s/config/deploy.yml" --version v1 >/dev/null 2>&1
			else
				/usr/bin/time -f '%M %U %S' -o "$tmp/rss" "$PLUMB" hosts -c "$tmp/app$s/config/deploy.yml" >/dev/null 2>&1
			fi
			read -r m u y < <(tail -n 1 "$tmp/rss")
			[ "$m" -gt "$mb" ] && mb=$m
			printf 'cpu_plumb_%s\t%s\n' "$s" "$(awk -v a="$u" -v b="$y" 'BEGIN{printf "%.0f", (a+b)*1000}')" >>"$FACTS"
		done
		fact "rss_plumb_kb_$s" "$mb"
		mb=0
		for r in 1 2 3; do
			# shellcheck disable=SC2046
			/usr/bin/time -f '%M %U %S' -o "$tmp/rss" xargs -P 0 -L 1 ssh $(lab_ssh_opts) <"$tmp/app$s/direct.list" >/dev/null 2>&1
			read -r m u y < <(tail -n 1 "$tmp/rss")
			[ "$m" -gt "$mb" ] && mb=$m
			printf 'cpu_base_%s\t%s\n' "$s" "$(awk -v a="$u" -v b="$y" 'BEGIN{printf "%.0f", (a+b)*1000}')" >>"$FACTS"
		done
		fact "rss_base_kb_$s" "$mb"
	done
	fact "rss_size" "$big"

	# What one docker CLI call costs on a lab host (wall ms, median of 5, run
	# on host 1 itself): the observation script makes 4 of them, the baseline 2.
	# shellcheck disable=SC2016
	fact docker_cli_ms "$(lab_on_host 1 'for i in 1 2 3 4 5; do s=$(date +%s%N); docker version --format x >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); done' | sort -n | sed -n 3p)"
	return 0
}

if [ "${BENCH_SKIP_LAB:-}" = 1 ]; then
	note "lab part skipped (BENCH_SKIP_LAB=1)"
elif [ ! -x /usr/bin/time ]; then
	note "no /usr/bin/time (Debian package time): lab part skipped"
	errors=$((errors + 1))
elif ! lab_part; then
	errors=$((errors + 1))
fi

# ---- the table ----------------------------------------------------------------
python3 - "$SAMPLES" "$FACTS" "$RUNS" "$DELAY" "$SIZES" "$(git describe --always --dirty 2>/dev/null || echo '?')" \
	"$(nproc)" >"$RESULTS" <<'EOF'
import statistics, sys, time
samples_f, facts_f, runs, delay, sizes, rev, ncpu = sys.argv[1:8]
delay = int(delay); sizes = [int(s) for s in sizes.split()]
facts, multi, notes = {}, {}, []
for line in open(facts_f):
    k, _, v = line.rstrip("\n").partition("\t")
    if k == "note": notes.append(v)
    else: facts[k] = v; multi.setdefault(k, []).append(v)
S = {}
fails = {}
for line in open(samples_f):
    c, s, link, ms, rc = line.split()
    if rc != "ok": fails[(c, int(s), link)] = fails.get((c, int(s), link), 0) + 1; continue
    S.setdefault((c, int(s), link), []).append(int(ms))
def med(k): v = S.get(k); return statistics.median(v) if v else None
def rng(k): v = S.get(k); return "%d..%d" % (min(v), max(v)) if v else "-"
def f(x, fmt="%.0f"): return "-" if x is None else fmt % x
def ratio(a, b): return None if a is None or not b else a / b
mode = facts.get("mode", "plan")
out = []
p = out.append
p("plumb bench — %s, rev %s, %s CPUs" % (time.strftime("%Y-%m-%d %H:%M"), rev, ncpu))
if "lab_up_ms" in facts:
    p("")
    p("1. No-op %s on lab hosts set up by kamal_sim.sh (median wall ms of %s runs, interleaved; range in brackets)" %
      ("`plumb plan`" if mode == "plan" else "`plumb hosts` (PLAN FAILED ON THE LAB — see notes)", runs))
    p("   baseline: ssh to every host in parallel (xargs -P 0), `docker inspect $(docker ps -aq)`; same key/known_hosts/relays")
    p("   native = straight to the host's sshd; +%d ms = through the lab relays (+%d ms per round trip on every host link)" % (delay, delay))
    p("")
    have_hosts = any(k[0] == "hosts" for k in S)
    hdr = "   %-5s %-7s %20s %20s %20s %10s %8s %7s" % ("hosts", "link", "plumb %s ms" % mode,
          "plumb hosts ms" if have_hosts else "", "baseline ms", "plumb/base", "plumb RT", "base RT")
    p(hdr); p("   " + "-" * (len(hdr) - 3))
    for s in sizes:
        for link in ("direct", "relay"):
            a, h, b = med(("plumb", s, link)), med(("hosts", s, link)), med(("base", s, link))
            lbl = "native" if link == "direct" else "+%d ms" % delay
            rt_p = facts.get("plumb_rt_%d_%s" % (s, link), "?")
            rt_b = facts.get("base_ssh_%d_%s" % (s, link))
            rt_b = "%g" % (int(rt_b) / s) if rt_b else "?"
            p("   %-5d %-7s %20s %20s %20s %10s %8s %7s" % (s, lbl, "%s [%s]" % (f(a), rng(("plumb", s, link))),
              "%s [%s]" % (f(h), rng(("hosts", s, link))) if have_hosts else "",
              "%s [%s]" % (f(b), rng(("base", s, link))), f(ratio(a, b), "%.2f"), rt_p, rt_b))
    p("   RT = commands per host after connecting (plumb: `plumb hosts --json` round_trips; baseline: ssh invocations / hosts, counted by xargs -t)")
    p("   per host, from `plumb hosts --json` (median/max ms): " + ";  ".join(
      "%d %s connect %s observe %s" % (s, "native" if link == "direct" else "+%dms" % delay,
        facts.get("plumb_connect_%d_%s" % (s, link), "?"), facts.get("plumb_observe_%d_%s" % (s, link), "?"))
      for s in sizes for link in ("direct", "relay")))
    p("")
    p("   Round trips on the critical path, (wall +%d ms - wall native) / %d ms (connection set-up included):" % (delay, delay))
    for s in sizes:
        row = []
        for c in ("plumb", "base"):
            a, b = med((c, s, "relay")), med((c, s, "direct"))
            row.append("%s %s" % (c if c == "plumb" else "baseline", f(None if a is None or b is None else (a - b) / delay, "%.1f")))
        p("     %2d hosts: %s" % (s, ",  ".join(row)))
    p("")
    if len(sizes) >= 2:
        lo, hi = min(sizes), max(sizes)
        for link in ("direct", "relay"):
            lbl = "native" if link == "direct" else "+%d ms" % delay
            a, b = med(("plumb", hi, link)), med(("plumb", lo, link))
            x, y = med(("base", hi, link)), med(("base", lo, link))
            p("   %d hosts / %d hosts, %-7s plumb %sx   baseline %sx   (target plumb <= 2x)" %
              (hi, lo, lbl + ":", f(ratio(a, b), "%.2f"), f(ratio(x, y), "%.2f")))
        lo_d = ratio(med(("plumb", lo, "direct")), med(("base", lo, "direct")))
        lo_r = ratio(med(("plumb", lo, "relay")), med(("base", lo, "relay")))
        p("   plumb/baseline at %d hosts: native %s, +%d ms %s   (target <= 1.0)" % (lo, f(lo_d, "%.2f"), delay, f(lo_r, "%.2f")))
    if fails:
        p("   failed runs (excluded; build/bench/failures.log): " + ", ".join("%s %d %s: %d" % (k[0], k[1], k[2], v) for k, v in sorted(fails.items())))
    p("")
    mib = lambda k: f(int(facts[k]) / 1024 if facts.get(k, "?").isdigit() else None, "%.1f")
    cpu = lambda k: f(statistics.median(int(x) for x in multi[k]) if k in multi else None)
    p("2. Peak memory (max RSS of 3 runs, native link) and CPU (user+sys, median of 3)")
    for s in sizes:
        p("   %2d hosts: plumb %s  max RSS %s MiB, CPU %s ms   |   baseline: largest process (an ssh) %s MiB, all ssh CPU %s ms" %
          (s, mode, mib("rss_plumb_kb_%d" % s), cpu("cpu_plumb_%d" % s), mib("rss_base_kb_%d" % s), cpu("cpu_base_%d" % s)))
    p("   lab up in %.1f s; one docker CLI call on a lab host: %s ms wall (median of 5)" % (int(facts["lab_up_ms"]) / 1000, facts.get("docker_cli_ms", "?")))
    p("   host side of one plumb observation: %s distinct values hashed (up to 8 per sha256sum process), ~%s bytes received per host" %
      (facts.get("hashes_per_host", "?"), facts.get("obs_bytes_per_host", "?")))
if "bplan_plan_ms" in facts:
    g = lambda k: float(facts["bplan_%s_ms" % k])
    base = g("fake")
    p("")
    p("3. Planning %s hosts, fake observed fleet (build/rel/tests/b_plan; median CPU ms of %s reps)" % (facts["bplan_hosts"], facts["bplan_reps"]))
    p("   %-44s %9s %8s" % ("phase", "CPU ms", "x base"))
    rows = [("baseline: build the fake observed fleet", "fake"), ("config load (deploy.yml, 1,000 hosts)", "config"),
            ("desired state", "desired"), ("diff, in sync", "diff"), ("render text", "text"), ("render json", "json"),
            ("PLAN = desired + diff + text (no changes)", "plan"),
            ("PLAN, new version (%s containers replaced)" % facts.get("bplan_steps_all", "?"), "plan_all")]
    for lbl, k in rows:
        p("   %-44s %9.2f %8.2f" % (lbl, g(k), g(k) / base if base else 0))
    p("   target: plan < 100 ms -> %s" % ("met" if g("plan") < 100 and g("plan_all") < 100 else "NOT met"))
if notes:
    p("")
    p("Notes:")
    for n in notes: p("  - " + n)
print("\n".join(out))
EOF
# 4. apply (tests/e2e/apply_bench_helper.sh) on a lab of its own: 3 hosts, no relays.
if [ -z "${BENCH_SKIP_LAB:-}" ] && [ -z "${BENCH_SKIP_APPLY:-}" ]; then
	APPLY_LAB_DIR=/tmp/plumb-lab-${LAB_ID}a
	if LAB_ID=${LAB_ID}a "$LAB" up 3 >"$OUT/apply-lab.log" 2>&1; then
		{ echo; (set -a; . "$APPLY_LAB_DIR/lab.env"; set +a; PLUMB_BIN=$PLUMB run_bg bash tests/e2e/apply_bench_helper.sh) | grep -v '^apply_bench '; } >>"$RESULTS" ||
			{ say "the apply bench failed"; errors=$((errors + 1)); }
		"$LAB" down "$APPLY_LAB_DIR" >/dev/null 2>&1
	else
		say "the apply bench's lab did not come up ($OUT/apply-lab.log)"; errors=$((errors + 1))
	fi
fi
# 5. watch (tests/e2e/watch_bench_helper.sh) on a lab of its own: 3 hosts, no relays.
if [ -z "${BENCH_SKIP_LAB:-}" ] && [ -z "${BENCH_SKIP_WATCH:-}" ]; then
	WATCH_LAB_DIR=/tmp/plumb-lab-${LAB_ID}w
	if LAB_ID=${LAB_ID}w "$LAB" up 3 >"$OUT/watch-lab.log" 2>&1; then
		{ echo; (set -a; . "$WATCH_LAB_DIR/lab.env"; set +a; PLUMB_BIN=$PLUMB run_bg bash tests/e2e/watch_bench_helper.sh) | grep -v '^watch_bench '; } >>"$RESULTS" ||
			{ say "the watch bench failed"; errors=$((errors + 1)); }
		"$LAB" down "$WATCH_LAB_DIR" >/dev/null 2>&1
	else
		say "the watch bench's lab did not come up ($OUT/watch-lab.log)"; errors=$((errors + 1))
	fi
fi
cat "$RESULTS"
echo "bench: results in build/bench/results.txt (raw samples: build/bench/samples.tsv)"
[ $errors -eq 0 ]

#!/bin/sh
# plumb's observation script (providers/docker_obs.h says what it prints).
# Embedded in plumb at build time (providers/embed.sh): full-line comments
# like these are left out of the bytes sent to a host, so no line of the
# script itself (including inside a quoted string) may start with '#'.
# The read-only guard (providers/quote.c) allows exactly these bytes.
#
# The script. $1 salt, $2 the app's directory under .kamal/apps, $3 the lock
# directory's name under .kamal, then WANT words (docker_obs.h). It prints the
# host's time ("T <seconds.nanoseconds>", taken before anything is read).
# Given "t:<time>" (a T this host printed at an earlier observation that
# plumb keeps), it first asks what happened between then and now (the Engine
# API's events through curl when it can, else `docker events`); when nothing
# did that could change what docker ps/inspect report, it
# prints "U" (unchanged: plumb reuses that earlier observation's containers,
# images and proxy routes) and skips both docker calls. Any event is a change
# except an exec in a container other than the proxy (health probes) and
# plumb's own `kamal-proxy list` in the proxy (its create, start and
# end, by exec id); 250 events or more (dockerd keeps the last 256) is a
# change too, as is a time going backwards. Env files and the lock are read
# every time. Otherwise it runs two
# docker calls: `docker ps`, then ONE `docker inspect` of the wanted
# containers and of the images they were started from (docker inspect takes
# both; the template tells them apart by .State, which only containers have:
# `index` on a typed object fails, so docker renders every object from its
# raw JSON). Image references are taken from `docker ps` only when they
# cannot name a container (they hold ':', '/' or '@'; a bare "postgres" could
# be a container's name); an image a container uses that this call did not
# return (such a bare name, a tag moved meanwhile) gets one more
# `docker image inspect` by id.
#
# Hashing, without writing anything: every value to hash (env entries,
# env-file lines, env files) is collected first, each distinct value once
# (containers share most of their image's env and each other's; an env-file
# line is usually a container's env value too), then hashed by one
# sha256sum per 8 values:
#   k ITEM...   pipes each ITEM's `salt ‖ value` into its own file
#               descriptor (3..9, the last on stdin) through nested
#               pipelines, and runs `sha256sum /dev/fd/3 ... -` once
#   y           runs k over the batch $B and records each digest in $H
#               (lines: digest, then "=ITEM"), by the name sha256sum echoes
#   g ITEM      sets x to ITEM's digest from $H, or hashes ITEM alone (the
#               old way: one sha256sum) when $H lacks it
# An ITEM is "b" + a value as the template escapes it (printf %b decodes;
# an env-file line without '\' is the same bytes either way), "s" + an
# env-file value holding '\' (printf %s), or "f" + an env file's path
# (the whole file, by cat). Lists are newline-separated (IFS is a newline,
# globbing is off); lookups use `case` and `${v%%pattern}` only (both linear
# in dash, unlike `${v#*pattern}`). No here-documents (bash may back them
# with temporary files). Values only ever reach printf (a builtin) and
# sha256sum's input: never an argv, never the output. The container list is
# filtered here (ids must be 64 hex, so a hostile label cannot inject an
# option into docker inspect).
S=$1; A=$2; L=$3; shift 3
printf 'PLUMB-OBS 1\n'
cd || { echo 'X cannot enter the home directory'; exit 3; }
printf 'W %s\n' "$PWD"
set -f
nl='
'
tn=$(date +%s.%N 2>/dev/null) || tn=
case $tn in [0-9]*.[0-9]*) case $tn in *[!0-9.]* | *.*.*) tn= ;; esac ;; *) tn= ;; esac
[ -z "$tn" ] || printf 'T %s\n' "$tn"
te=; U=
for w in "$@"; do case $w in t:*) te=${w#t:} ;; esac; done
case $te in [0-9]*.[0-9]*) case $te in *[!0-9.]* | *.*.*) te= ;; esac ;; *) te= ;; esac
# An empty window is asked of the Engine API first when curl can reach the
# local socket the docker CLI would use (no DOCKER_HOST but unix://, no
# context, no DOCKER_CONFIG): a third of a docker call's cost. Anything else
# (events, an error) goes to `docker events`, which tells them apart.
ds=
case ${DOCKER_HOST-} in '') ds=/var/run/docker.sock ;; unix:///*) ds=${DOCKER_HOST#unix://} ;; esac
if [ -n "${DOCKER_CONTEXT-}${DOCKER_CONFIG-}" ] || [ -e "$HOME/.docker/contexts" ] || ! command -v curl >/dev/null 2>&1; then ds=; fi
if [ -n "$te" ] && [ -n "$tn" ] && [ -n "$ds" ] && [ "${tn%.*}" -ge "${te%.*}" ] 2>/dev/null &&
  ev=$(curl -sfN --max-time 10 --unix-socket "$ds" "http://docker/events?since=$te&until=$tn" 2>/dev/null) && [ -z "$ev" ]; then
  U=1
elif [ -n "$te" ] && [ -n "$tn" ] && [ "${tn%.*}" -ge "${te%.*}" ] 2>/dev/null &&
  ev=$(docker events --since "$te" --until "$tn" --format '{{.Type}} {{with index .Actor.Attributes "execID"}}{{.}}{{else}}-{{end}} {{with index .Actor.Attributes "name"}}{{.}}{{else}}-{{end}} {{.Action}}' 2>/dev/null); then
  U=1; ec=0; ex=
  IFS=$nl
  for l in $ev; do
    ec=$((ec + 1)); et=${l%% *}; r=${l#* }; ei=${r%% *}; r=${r#* }; en=${r%% *}; ea=${r#* }
    case $et:$ea in container:exec_*) ;; *) U=; break ;; esac
    ep=
    for w in "$@"; do [ "$w" = "n:$en" ] && ep=1; done
    [ -n "$ep" ] || continue
    case $ea in
    'exec_create: kamal-proxy list' | 'exec_start: kamal-proxy list') ex=$ex$nl$ei ;;
    exec_die) case $ex$nl in *"$nl$ei$nl"*) ;; *) U=; break ;; esac ;;
    *) U=; break ;;
    esac
  done
  unset IFS
  [ "$ec" -lt 250 ] || U=
fi
C=; J=; P=; RF=; R=; R2=
if [ -n "$U" ]; then
printf 'U\n'
else
ps=$(docker ps -a --no-trunc --format '{{.ID}} {{.State}} {{.Image}} {{.Names}} {{.Label "service"}}' 2>&1) || { printf 'X docker %s\n' "$ps" | tr '\n' ' ' | head -c 512; echo; exit 3; }
# kp IMAGE: the image is kamal-proxy's (repository basename kamal-proxy, any
# registry, tag or digest): `kamal-proxy list` runs in no other container,
# whatever its name.
kp() { u=${1%%@*}; u=${u##*/}; [ "${u%%:*}" = kamal-proxy ]; }
IFS=$nl
for l in $ps; do
  id=${l%% *}; r=${l#* }; st=${r%% *}; r=${r#* }; im=${r%% *}; r=${r#* }; n=${r%% *}; sv=${r#* }
  case $id in *[!0-9a-f]*|'') continue ;; esac
  [ ${#id} -eq 64 ] || continue
  for w in "$@"; do
    case $w in
    s:*) [ "$sv" = "${w#s:}" ] || case $sv in "${w#s:}"-*) [ "$n" = "$sv" ] || continue ;; *) continue ;; esac ;;
    n:*) [ "$n" = "${w#n:}" ] || continue; [ "$st" = running ] && kp "$im" && P=$n ;;
    *) continue ;;
    esac
    C=$C$nl$id
    case $im in -*|*[!A-Za-z0-9:/@._-]*) ;; *[:/@]*) case $J$nl in *"$nl$im$nl"*) ;; *) J=$J$nl$im ;; esac ;; esac
    break
  done
done
# kamal-proxy's routes are listed in the background while the rest is read
# (a docker exec is the slowest call here), into a private temporary file;
# without one, at the end as before.
if [ -n "$P" ] && RF=$(mktemp 2>/dev/null); then
  trap 'rm -f -- "$RF"' EXIT
  docker exec "$P" kamal-proxy list >"$RF" 2>/dev/null & RP=$!
else
  RF=
fi
T='{{if index . "State"}}C {"Id":{{json .Id}},"Name":{{json .Name}},"Image":{{json .Image}},"Created":{{json .Created}},"State":{"Status":{{json .State.Status}},"ExitCode":{{json .State.ExitCode}},"StartedAt":{{json .State.StartedAt}},"FinishedAt":{{json .State.FinishedAt}},"Health":{{with index .State "Health"}}{{json .Status}}{{else}}null{{end}}},"Config":{"Image":{{json .Config.Image}},"Cmd":{{json .Config.Cmd}},"Entrypoint":{{json .Config.Entrypoint}},"Labels":{{json .Config.Labels}},"Hostname":{{json .Config.Hostname}}},"HostConfig":{{json .HostConfig}},"Mounts":{{json .Mounts}},"Networks":{{json .NetworkSettings.Networks}}}
M {{.Image}}
{{else}}I {"Id":{{json .Id}},"RepoTags":{{json .RepoTags}},"RepoDigests":{{json .RepoDigests}},"Created":{{json .Created}},"Config":{"Cmd":{{json .Config.Cmd}},"Entrypoint":{{json .Config.Entrypoint}},"Labels":{{json .Config.Labels}},"Volumes":{{json .Config.Volumes}}}}
{{end}}{{range .Config.Env}}E {{join (split (join (split . "\\") "\\\\") "\n") "\\n"}}
{{end}}Z'
if [ -n "$C" ]; then
  R=$(docker inspect --format "$T" $C $J 2>/dev/null; echo "S containers $?")
  M=; I=
  for l in $R; do
    case $l in
    'M '*) m=${l#M }; case $m in sha256:*) case $m in *[!0-9a-z:]*) ;; *) M=$M$nl$m ;; esac ;; esac ;;
    'I {"Id":"'*) m=${l#'I {"Id":"'}; I=$I$nl${m%%'"'*} ;;
    esac
  done
  J=
  for m in $M; do case $I$nl$J$nl in *"$nl$m$nl"*) ;; *) J=$J$nl$m ;; esac; done
  if [ -n "$J" ]; then R2=$(docker image inspect --format "$T" $J 2>/dev/null; echo "S images $?"); else R2='S images 0'; fi
fi
fi
IFS=$nl
H=; Q=
q() { case $H$nl in *"$nl=$1$nl"*) return ;; esac; case $Q$nl in *"$nl$1$nl"*) return ;; esac; Q=$Q$nl$1; }
for l in $R$nl$R2; do case $l in 'E '*) v=${l#E }; q "b${v#*=}" ;; esac; done
EF=
if [ -d .kamal/apps/"$A" ]; then
  EF=$(find .kamal/apps/"$A" -type f -name '*.env' -exec stat -c '%a %n' {} + 2>/dev/null | sort)
  for f in $EF; do
    p=${f#* }
    # an env file we cannot read makes the host unknown (never hashed as empty)
    cat -- "$p" >/dev/null 2>&1 || { printf 'X env file %s cannot be read\n' "$p"; exit 3; }
    q "f$p"
    while IFS= read -r l || [ -n "$l" ]; do
      case $l in *=*) ;; *) continue ;; esac
      v=${l#*=}; case $v in *\\*) q "s$v" ;; *) q "b$v" ;; esac
    done < "$p"
  done
fi
k() {
  case $1 in
  b*) printf '%s%b' "$S" "${1#?}" ;;
  s*) printf '%s%s' "$S" "${1#?}" ;;
  *) printf '%s' "$S"; cat -- "${1#?}" ;;
  esac | if [ $# -eq 1 ]; then sha256sum $F -; else
    case $# in 8) exec 3<&0 ;; 7) exec 4<&0 ;; 6) exec 5<&0 ;; 5) exec 6<&0 ;; 4) exec 7<&0 ;; 3) exec 8<&0 ;; 2) exec 9<&0 ;; esac
    F=$F$nl/dev/fd/$((11 - $#)); shift; k "$@"
  fi
}
y() {
  r=$(F=; k $B 2>/dev/null)$nl; n=$((11 - c))
  for i in $B; do
    if [ $n -eq 10 ]; then w=-; else w=/dev/fd/$n; fi
    n=$((n + 1)); t=${r%%"  $w$nl"*}
    [ "$t" = "$r" ] && continue
    for x in $t; do :; done
    case $x in *[!0-9a-f]*) continue ;; esac
    [ ${#x} -eq 64 ] && H=$H$nl$x$nl=$i
  done
}
B=; c=0
for i in $Q; do
  B=$B$nl$i; c=$((c + 1))
  [ $c -eq 8 ] && { y; B=; c=0; }
done
[ $c -eq 0 ] || y
h() { x=$({ printf '%s' "$S"; printf "$1" "$2"; } | sha256sum) || return 1; x=${x%% *}; }
g() {
  t=$H$nl; t=${t%%"$nl=$1$nl"*}
  [ "$t" = "$H$nl" ] || { for x in $t; do :; done; return 0; }
  case $1 in
  b*) h %b "${1#?}" ;;
  s*) h %s "${1#?}" ;;
  *) x=$({ printf '%s' "$S"; cat -- "${1#?}"; } | sha256sum) || return 1; x=${x%% *} ;;
  esac || return 1
  H=$H$nl$x$nl=$1
}
D=; z=
for l in $R$nl$R2; do
  case $l in
  'E '*) [ -n "$z" ] && continue; v=${l#E }; g "b${v#*=}" || { echo 'X hash'; continue; }; printf 'E %s\t%s\n' "${v%%=*}" "$x" ;;
  Z) [ -n "$z" ] || echo Z; z= ;;
  'I {"Id":"'*) m=${l#'I {"Id":"'}; m=${m%%'"'*}
    case $D$nl in *"$nl$m$nl"*) z=1 ;; *) D=$D$nl$m; printf '%s\n' "$l" ;; esac ;;
  *) [ -n "$z" ] || printf '%s\n' "$l" ;;
  esac
done
for f in $EF; do
  p=${f#* }
  g "f$p" || { echo 'X hash'; continue; }
  printf 'F %s %s %s\n' "${f%% *}" "$x" "$p"
  while IFS= read -r l || [ -n "$l" ]; do
    case $l in *=*) ;; *) continue ;; esac
    e=${l%%=*}; case $e in ''|*[!A-Za-z0-9_.]*) e='?' ;; esac
    v=${l#*=}; case $v in *\\*) g "s$v" ;; *) g "b$v" ;; esac || { echo 'X hash'; continue; }
    printf 'L %s\t%s\n' "$e" "$x"
  done < "$p"
done
unset IFS
if [ -d ".kamal/$L" ]; then
  printf 'K %s\n' "$(head -c 8192 ".kamal/$L/details" 2>/dev/null | tr -d '\n')"
fi
if [ -n "$RF" ]; then
  wait "$RP"; r=$(head -c 65536 "$RF" | tr '\n' ' ') && printf 'R %s\n' "$r"
  rm -f -- "$RF"
elif [ -n "$P" ]; then
  r=$(docker exec "$P" kamal-proxy list 2>/dev/null | head -c 65536 | tr '\n' ' ') && printf 'R %s\n' "$r"
fi
printf 'END\n'

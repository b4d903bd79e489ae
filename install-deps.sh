#!/bin/sh
# Installs the Debian packages plumb needs. Idempotent: packages already
# installed are skipped, and apt-get update runs only when something is missing.
#   ./install-deps.sh          build + unit-test dependencies
#   ./install-deps.sh lab      the above plus the end-to-end lab (docker, sshd, registry, postgres)
#   ./install-deps.sh fuzz     the above plus clang's fuzzer runtime
set -eu

BUILD="build-essential pkg-config libgit2-dev libyaml-dev libcurl4-openssl-dev libjansson-dev libssh-dev libssl-dev libmicrohttpd-dev git"
LAB="docker.io openssh-server openssh-client docker-registry busybox-static postgresql postgresql-client iproute2 apache2-utils curl util-linux procps psmisc iptables python3 jq bc openssl prometheus"
FUZZ="clang libclang-rt-14-dev"

want="$BUILD"
for arg in "$@"; do
	case "$arg" in
	build) ;;
	lab) want="$want $LAB" ;;
	fuzz) want="$want $FUZZ" ;;
	all) want="$want $LAB $FUZZ" ;;
	*) echo "install-deps.sh: unknown set '$arg' (build, lab, fuzz, all)" >&2; exit 1 ;;
	esac
done

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "install-deps.sh: installing$missing" >&2
$SUDO apt-get update -qq
# postgresql's and docker.io's maintainer scripts try to start services; the lab
# starts its own, so keep them from starting anything at install time.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

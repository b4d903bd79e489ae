#!/usr/bin/env bash
# Builds the lab's container images from Debian's own binaries, without docker
# and without Docker Hub: each image is one gzipped tar layer, a config JSON and
# a schema-2 manifest, written as content-addressed blobs.
#
#   images.sh build CACHE_DIR     prints the directory holding the built images
#
# Output directory (cached under CACHE_DIR, keyed by a hash of this script, the
# app files and the versions of the Debian packages used; rebuilt when missing):
#   blobs/<hex>            every layer, config and manifest
#   images                 lines "repo tag manifest_hex config_hex"
# lab.sh pushes these into the registries (lab_push_images in lab.sh).
#
# Images:
#   optimus:v1 v2 v3   busybox httpd app; "/" serves the version, "/up" serves ok,
#                      "/env" the container's environment; cmd "job" (or
#                      "bin/jobs") runs a long-lived worker instead
#   optimus:bad        like v3 but "/up" fails (404)
#   postgres:17        Debian's PostgreSQL 15 binaries; initialises an empty
#                      data dir with POSTGRES_PASSWORD; stops on SIGINT (fast)
#   caddy:2            Debian's caddy package (skipped with a warning if the
#                      .deb cannot be downloaded)
#   kamal-proxy:v0.9.2 the real kamal-proxy binary from ../shared/kamal-proxy,
#                      laid out as upstream's image (only when that exists)
# The optimus images carry the label service=optimus, as `kamal build` adds it
# (`kamal deploy` refuses an image without it).
# Every image stops promptly on docker stop.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ARCH=$(dpkg --print-architecture)
PGV=15

die() { echo "images.sh: $*" >&2; exit 1; }

# ---- helpers -----------------------------------------------------------------

# copy_libs ROOT FILE...: copies the shared libraries ldd lists for each FILE
# into ROOT at the same paths.
copy_libs() {
	local root=$1 f lib; shift
	for f in "$@"; do
		ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r lib; do
			[ -e "$root$lib" ] && continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
	done
}

# copy_with_libs ROOT FILE...: copies each file and its libraries into ROOT.
copy_with_libs() {
	local root=$1 f; shift
	for f in "$@"; do
		mkdir -p "$root$(dirname "$f")"
		cp -L "$f" "$root$f"
	done
	copy_libs "$root" "$@"
}

# base_root ROOT: an empty root with merged /usr and busybox for sh & co.
base_root() {
	local root=$1 a
	mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,tmp,root,var/tmp,proc,sys,dev}
	ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
	chmod 1777 "$root/tmp" "$root/var/tmp"
	cp /bin/busybox "$root/usr/bin/busybox"
	for a in $(busybox --list); do
		[ -e "$root/usr/bin/$a" ] || ln -s busybox "$root/usr/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

# blob FILE: moves FILE into blobs/ under its sha256, prints the hex.
blob() {
	local d
	d=$(sha256sum "$1" | cut -d' ' -f1)
	mv "$1" "$OUT/blobs/$d"
	echo "$d"
}

# layer ROOT: tars ROOT into a gzipped layer; sets LAYER_HEX LAYER_SIZE DIFF_HEX.
# With OWNED_BY_1000=PATH (relative to ROOT, "./..."), that tree is owned by 1000:1000.
layer() {
	local root=$1 t="$OUT/tmp.tar"
	if [ -n "${OWNED_BY_1000:-}" ]; then
		tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$root" \
			--exclude="$OWNED_BY_1000" -cf "$t" .
		tar --numeric-owner --owner=1000 --group=1000 --sort=name --mtime=@0 -C "$root" \
			-rf "$t" "$OWNED_BY_1000"
	else
		tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$root" -cf "$t" .
	fi
	DIFF_HEX=$(sha256sum "$t" | cut -d' ' -f1)
	gzip -n -1 "$t"
	LAYER_SIZE=$(stat -c %s "$t.gz")
	LAYER_HEX=$(blob "$t.gz")
}

# json_strs A B C: ["A","B","C"] (values here never hold quotes or backslashes)
json_strs() {
	local out="" s
	for s in "$@"; do out="$out${out:+,}\"$s\""; done
	echo "[$out]"
}

# image REPO TAG CONFIG_BODY: writes config + manifest for the current layer.
# CONFIG_BODY is the JSON object inside "config".
image() {
	local repo=$1 tag=$2 body=$3 cfg="$OUT/tmp.json" chex csize mhex
	printf '{"architecture":"%s","os":"linux","created":"2024-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"plumb lab images.sh"}]}' \
		"$ARCH" "$body" "$DIFF_HEX" >"$cfg"
	csize=$(stat -c %s "$cfg")
	chex=$(blob "$cfg")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%s,"digest":"sha256:%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%s,"digest":"sha256:%s"}]}' \
		"$csize" "$chex" "$LAYER_SIZE" "$LAYER_HEX" >"$OUT/tmp.json"
	mhex=$(blob "$OUT/tmp.json")
	echo "$repo $tag $mhex $chex" >>"$OUT/images"
}

PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# ---- images ------------------------------------------------------------------

build_optimus() {
	local root="$WORK/optimus" v
	base_root "$root"
	install -m 0755 "$HERE/optimus/run.sh" "$root/run.sh"
	mkdir -p "$root/rails/storage" "$root/rails/bin"
	ln -s ../../run.sh "$root/rails/bin/jobs"
	layer "$root"
	for v in v1 v2 v3 bad; do
		local env
		env=$(json_strs "$PATH_ENV" "VERSION=$v")
		[ "$v" = bad ] && env=$(json_strs "$PATH_ENV" "VERSION=bad" "UP_FAIL=1")
		image optimus "$v" "{\"Env\":$env,\"Entrypoint\":[\"/run.sh\"],\"Cmd\":[\"web\"],\"WorkingDir\":\"/rails\",\"ExposedPorts\":{\"80/tcp\":{}},\"Labels\":{\"service\":\"optimus\",\"org.opencontainers.image.version\":\"$v\"}}"
	done
}

build_postgres() {
	local root="$WORK/postgres" f
	local pg=/usr/lib/postgresql/$PGV
	[ -x "$pg/bin/postgres" ] || die "PostgreSQL $PGV binaries are missing (install-deps.sh lab)"
	base_root "$root"
	copy_with_libs "$root" "$pg"/bin/*
	mkdir -p "$root$pg/lib"
	for f in "$pg"/lib/*.so; do
		case "$f" in */llvmjit*) continue ;; esac
		copy_with_libs "$root" "$f"
	done
	mkdir -p "$root/usr/share/postgresql"
	cp -a "/usr/share/postgresql/$PGV" "$root/usr/share/postgresql/"
	[ -d /usr/share/zoneinfo ] && mkdir -p "$root/usr/share" && cp -a /usr/share/zoneinfo "$root/usr/share/"
	echo 'postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh' >>"$root/etc/passwd"
	echo 'postgres:x:999:' >>"$root/etc/group"
	mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql"
	install -m 0755 "$HERE/postgres-entrypoint.sh" "$root/docker-entrypoint.sh"
	layer "$root"
	image postgres 17 "{\"Env\":$(json_strs "$PATH_ENV:$pg/bin" "PGDATA=/var/lib/postgresql/data" "TZ=UTC" "LANG=C.UTF-8"),\"Entrypoint\":[\"/docker-entrypoint.sh\"],\"Cmd\":[\"postgres\"],\"StopSignal\":\"SIGINT\",\"ExposedPorts\":{\"5432/tcp\":{}},\"Volumes\":{\"/var/lib/postgresql/data\":{}}}"
}

build_caddy() {
	local root="$WORK/caddy" deb
	deb=$(ls "$CACHE"/debs/caddy_*.deb 2>/dev/null | tail -n 1 || true)
	[ -n "$deb" ] || { echo "images.sh: no caddy .deb; caddy:2 not built" >&2; return 0; }
	base_root "$root"
	mkdir -p "$WORK/caddy-deb"
	dpkg -x "$deb" "$WORK/caddy-deb"
	cp "$WORK/caddy-deb/usr/bin/caddy" "$root/usr/bin/caddy"
	copy_libs "$root" "$root/usr/bin/caddy"
	mkdir -p "$root/etc/ssl/certs" "$root/etc/caddy" "$root/data" "$root/config" "$root/srv"
	[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
	printf ':80 {\n\trespond "caddy"\n}\n' >"$root/etc/caddy/Caddyfile"
	layer "$root"
	image caddy 2 "{\"Env\":$(json_strs "$PATH_ENV" "XDG_CONFIG_HOME=/config" "XDG_DATA_HOME=/data"),\"Cmd\":[\"caddy\",\"run\",\"--config\",\"/etc/caddy/Caddyfile\",\"--adapter\",\"caddyfile\"],\"WorkingDir\":\"/srv\",\"ExposedPorts\":{\"80/tcp\":{},\"443/tcp\":{},\"2019/tcp\":{}}}"
}

# The real kamal-proxy (../shared/kamal-proxy beside the checkout), as upstream's
# Dockerfile lays it out: the binary, CA certificates, user kamal-proxy (uid
# 1000) owning its home and ~/.config/kamal-proxy.
KAMAL_PROXY_BIN=$HERE/../../../shared/kamal-proxy/kamal-proxy
build_kamal_proxy() {
	local root="$WORK/kamal-proxy" h=/home/kamal-proxy
	[ -x "$KAMAL_PROXY_BIN" ] || { echo "images.sh: no ../shared/kamal-proxy; kamal-proxy:v0.9.2 not built" >&2; return 0; }
	base_root "$root"
	mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root$h/.config/kamal-proxy"
	cp "$KAMAL_PROXY_BIN" "$root/usr/local/bin/kamal-proxy"
	[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
	echo "kamal-proxy:x:1000:1000::$h:/bin/sh" >>"$root/etc/passwd"
	echo 'kamal-proxy:x:1000:' >>"$root/etc/group"
	OWNED_BY_1000=".$h" layer "$root"
	image kamal-proxy v0.9.2 "{\"User\":\"kamal-proxy\",\"Env\":$(json_strs "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$h"),\"Cmd\":[\"kamal-proxy\",\"run\"],\"ExposedPorts\":{\"80/tcp\":{},\"443/tcp\":{}}}"
}

# ---- main --------------------------------------------------------------------

[ "${1:-}" = build ] && [ -n "${2:-}" ] || die "usage: images.sh build CACHE_DIR"
CACHE=$2
mkdir -p "$CACHE/debs"
if ! ls "$CACHE"/debs/caddy_*.deb >/dev/null 2>&1; then
	# apt-get download (not install: its maintainer scripts would start a service);
	# refresh the package lists once if they lack it.
	(cd "$CACHE/debs" && { apt-get download caddy >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get download caddy >/dev/null 2>&1; }; }) ||
		echo "images.sh: could not download Debian's caddy package" >&2
fi

key=$( {
	cat "$0" "$HERE/optimus/run.sh" "$HERE/postgres-entrypoint.sh"
	echo "$ARCH"
	dpkg-query -W busybox-static "postgresql-$PGV" "postgresql-client-$PGV" 2>/dev/null
	ls "$CACHE"/debs/ 2>/dev/null
	if [ -x "$KAMAL_PROXY_BIN" ]; then cksum "$KAMAL_PROXY_BIN"; fi
} | sha256sum | cut -c1-16)
FINAL="$CACHE/images-$key"
if [ -f "$FINAL/images" ]; then
	echo "$FINAL"
	exit 0
fi

OUT=$(mktemp -d "$CACHE/.build-XXXXXX")
WORK="$OUT/work"
trap 'rm -rf "$OUT"' EXIT
mkdir -p "$OUT/blobs" "$WORK"
: >"$OUT/images"
build_optimus
build_postgres
build_caddy
build_kamal_proxy
rm -rf "$WORK" "$OUT/tmp.json" "$OUT/tmp.tar"
if mv -T "$OUT" "$FINAL" 2>/dev/null; then
	trap - EXIT
else
	[ -f "$FINAL/images" ] || die "could not store images in $FINAL"
fi
echo "$FINAL"

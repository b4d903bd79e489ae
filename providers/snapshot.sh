# plumb-snapshot: copies an accessory's data before a stop-first
# replacement (`sh -c <this script> plumb-snapshot MODE BASE KEEP SRC...`).
# A SRC is a host path (a bind-mounted directory or file) or
# "volume:NAME:IMAGE", a named volume copied by a throwaway container of
# IMAGE (the accessory's own image, on the host: its cp, du or tar run
# as root inside it, so no access to docker's data root is needed).
#   check  refuses (exit 3, a line "plumb-snapshot: refused: …" says why)
#          when a SRC cannot be read (naming it) or the file system holding
#          BASE lacks room for a copy of the SRCs (du -sk vs df -Pk, with
#          10% to spare); run while the old container still serves, so a
#          refusal stops nothing
#   copy   copies every SRC (cp -a) to BASE/<UTC time>-<random>/<n>-<name>
#          (<name>: the path's basename or the volume's name), while the old
#          container is stopped, prints "snapshot: DIR", and keeps only the
#          newest KEEP snapshots under BASE (only directories named as it
#          names them are ever removed). The copy is made in
#          BASE/.partial-<random> and renamed when complete: an interrupted
#          copy never passes for a snapshot (the next copy removes it).
# A SRC that does not exist (a path, a volume) is skipped. Nothing outside
# BASE is written.
mode=$1
base=$2
keep=$3
shift 3

refuse() {
	echo "plumb-snapshot: refused: $*"
	exit 3
}

# vol_name SRC / vol_image SRC: the parts of "volume:NAME:IMAGE" (a volume
# name has no colon; an image reference may)
vol_name() {
	v=${1#volume:}
	echo "${v%%:*}"
}
vol_image() {
	v=${1#volume:}
	echo "${v#*:}"
}

# vol_kib NAME IMAGE: the volume's size in KiB (du in a container of IMAGE,
# else docker system df -v), empty when unknown
vol_kib() {
	k=$(docker run --rm --network none --user 0 -v "$1:/from:ro" --entrypoint du "$2" -sk /from 2>/dev/null |
		tail -n 1 | cut -f1)
	case $k in '' | *[!0-9]*) k= ;; esac
	if [ -z "$k" ]; then
		k=$(docker system df -v 2>/dev/null | awk -v n="$1" '$1 == n && NF >= 3 {
			s = $NF; u = s; sub(/^[0-9.]+/, "", u); v = s + 0; m = 1
			if (u == "kB") m = 1000; else if (u == "MB") m = 1e6; else if (u == "GB") m = 1e9; else if (u == "TB") m = 1e12
			printf "%d\n", v * m / 1024 + 1; exit }')
	fi
	echo "$k"
}

# unreadable PATH: prints the first file or directory under PATH (PATH
# itself included) this user cannot read, or a directory it cannot enter;
# nothing when cp -a can read it all (symbolic links are copied as links)
unreadable() {
	[ -L "$1" ] && return 0
	if [ ! -r "$1" ] || { [ -d "$1" ] && [ ! -x "$1" ]; }; then
		echo "$1"
		return
	fi
	[ -d "$1" ] || return 0
	if find "$1" -maxdepth 0 -readable >/dev/null 2>&1; then
		find "$1" ! -type l \( ! -readable -o \( -type d ! -executable \) \) -print 2>/dev/null | head -n 1
	fi
}

if [ "$mode" = check ]; then
	need=0
	for s in "$@"; do
		case $s in
		volume:*)
			n=$(vol_name "$s")
			docker volume inspect "$n" >/dev/null 2>&1 || continue
			k=$(vol_kib "$n" "$(vol_image "$s")")
			[ -n "$k" ] || refuse "cannot read the size of volume $n (x-plumb accessories.<name>.snapshot: false skips snapshots)"
			;;
		*)
			[ -e "$s" ] || [ -L "$s" ] || continue
			bad=$(unreadable "$s")
			[ -z "$bad" ] || refuse "cannot read $bad (in $s) as $(id -un 2>/dev/null || id -u): no snapshot can copy it, nothing was stopped (x-plumb accessories.<name>.snapshot: false skips snapshots)"
			k=$(du -sk "$s" 2>/dev/null | tail -n 1 | cut -f1)
			;;
		esac
		need=$(( need + ${k:-0} ))
	done
	mkdir -p "$base" || refuse "cannot create $base"
	avail=$(df -Pk "$base" | awk 'NR==2 {print $4}')
	want=$(( need + need / 10 + 1024 ))
	if [ "${avail:-0}" -lt "$want" ]; then
		refuse "not enough room under $base: ${avail:-0} KiB free, ${want} KiB needed (x-plumb accessories.<name>.snapshot: false skips snapshots)"
	fi
	exit 0
fi

mkdir -p "$base" || exit 3
for old in "$base"/.partial-*; do
	[ -d "$old" ] && rm -rf "$old"
done
tmp=$(mktemp -d "$base/.partial-XXXXXX") || exit 3
n=0
for s in "$@"; do
	n=$(( n + 1 ))
	case $s in
	volume:*)
		v=$(vol_name "$s")
		img=$(vol_image "$s")
		docker volume inspect "$v" >/dev/null 2>&1 || continue
		mkdir "$tmp/$n-$v" || exit 3
		if ! docker run --rm --network none --user 0 -v "$v:/from:ro" -v "$tmp/$n-$v:/to" \
			--entrypoint cp "$img" -a /from/. /to/ >/dev/null; then
			# no cp in the image: its tar, unpacked here
			rm -rf "$tmp/$n-$v" && mkdir "$tmp/$n-$v" || exit 3
			docker run --rm --network none --user 0 -v "$v:/from:ro" --entrypoint tar "$img" \
				-C /from -cf - . | tar -C "$tmp/$n-$v" -xpf - || {
				echo "plumb-snapshot: cannot copy volume $v (neither cp nor tar in $img)" >&2
				exit 3
			}
		fi
		;;
	*)
		if [ -e "$s" ] || [ -L "$s" ]; then
			cp -a "$s" "$tmp/$n-$(basename "$s")" || exit 3
		fi
		;;
	esac
done
dir=$(mktemp -d "$base/$(date -u +%Y%m%dT%H%M%SZ)-XXXXXX") || exit 3
rmdir "$dir" && mv "$tmp" "$dir" || exit 3
echo "snapshot: $dir"
ls -1d "$base"/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-*/ 2>/dev/null |
	sort -r | tail -n +$(( keep + 1 )) | while read -r old; do
	rm -rf "$old"
done
exit 0

# plumb-snapshot: copies an accessory's data directories before a stop-first
# replacement (`sh -c <this script> plumb-snapshot MODE BASE KEEP SRC...`).
#   check  refuses (exit 3, a line says why) when the file system holding
#          BASE lacks room for a copy of the SRCs (du -sk vs df -Pk, with 10%
#          to spare); run while the old container still serves
#   copy   copies every SRC (cp -a) to BASE/<UTC time>-<random>/<n>-<basename>, while
#          the old container is stopped, prints "snapshot: DIR", and keeps
#          only the newest KEEP snapshots under BASE (only directories named
#          as it names them are ever removed)
# A SRC that does not exist is skipped. Nothing outside BASE is written.
mode=$1
base=$2
keep=$3
shift 3
need=0
for s in "$@"; do
	if [ -e "$s" ]; then
		k=$(du -sk "$s" 2>/dev/null | tail -n 1 | cut -f1)
		need=$(( need + ${k:-0} ))
	fi
done
mkdir -p "$base" || exit 3
if [ "$mode" = check ]; then
	avail=$(df -Pk "$base" | awk 'NR==2 {print $4}')
	want=$(( need + need / 10 + 1024 ))
	if [ "${avail:-0}" -lt "$want" ]; then
		echo "plumb-snapshot: not enough room under $base: ${avail:-0} KiB free, ${want} KiB needed (x-plumb accessories.<name>.snapshot: false skips snapshots)"
		exit 3
	fi
	exit 0
fi
mkdir -p "$base" || exit 3
dir=$(mktemp -d "$base/$(date -u +%Y%m%dT%H%M%SZ)-XXXXXX") || exit 3
n=0
for s in "$@"; do
	n=$(( n + 1 ))
	if [ -e "$s" ]; then
		cp -a "$s" "$dir/$n-$(basename "$s")" || exit 3
	fi
done
echo "snapshot: $dir"
ls -1d "$base"/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-*/ 2>/dev/null |
	sort -r | tail -n +$(( keep + 1 )) | while read -r old; do
	rm -rf "$old"
done
exit 0

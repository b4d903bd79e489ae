#!/bin/sh
# The lab's stand-in for the optimus app (image optimus:<version>).
#   run.sh web        busybox httpd on $PORT (80): "/" = $VERSION, "/up" = ok
#                     (absent when UP_FAIL=1), "/env" = the environment
#   run.sh job        a long-lived worker (also "jobs", "bin/jobs")
#   run.sh CMD...     runs CMD
# PID 1 traps TERM/INT and stops its child, so docker stop is prompt.
child=
stop() {
	[ -n "$child" ] && kill "$child" 2>/dev/null
	exit 0
}
trap stop TERM INT

case "${1:-web}" in
web)
	mkdir -p /www
	echo "$VERSION" >/www/index.html
	[ "${UP_FAIL:-}" = 1 ] || echo ok >/www/up
	env | sort >/www/env
	busybox httpd -f -p "${PORT:-80}" -h /www &
	child=$!
	wait "$child"
	;;
job | jobs | bin/jobs | */bin/jobs)
	echo "optimus $VERSION job worker started"
	while :; do
		sleep 1 &
		child=$!
		wait "$child"
	done
	;;
*)
	exec "$@"
	;;
esac

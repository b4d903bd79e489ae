# plumb-ready: waits on the host until a container is ready, in one round
# trip (the executor sends it as `sh -c <this script> plumb-ready NAME
# TIMEOUT DELAY`). Ready = running, and healthy when the container has a
# health check. Polls `docker inspect` every 0.2 s, as Kamal's poller does
# from afar: "starting" and "unhealthy" keep waiting (a health check may
# recover) until TIMEOUT seconds; a container that exited or died fails at
# once. DELAY seconds are waited first (readiness_delay, for a role without
# the proxy and without a health check: it must still be running then).
# Exit 0 ready (prints nothing), 1 failed, 2 timed out (a line says why).
name=$1
timeout=$2
delay=${3:-0}
if [ "$delay" -gt 0 ] 2>/dev/null; then
	sleep "$delay"
fi
end=$(( $(date +%s) + timeout ))
last=
while :; do
	st=$(docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name" 2>/dev/null) || st="missing none"
	last=$st
	case $st in
	"running healthy" | "running none") exit 0 ;;
	exited* | dead* | missing* | removing*)
		echo "plumb-ready: $name is $st"
		exit 1
		;;
	esac
	if [ "$(date +%s)" -ge "$end" ]; then
		echo "plumb-ready: $name not ready after ${timeout}s ($last)"
		exit 2
	fi
	sleep 0.2
done

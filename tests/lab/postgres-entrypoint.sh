#!/bin/sh
# Entry point of the lab's postgres image (Debian's PostgreSQL binaries).
# On an empty data directory: initdb with superuser $POSTGRES_USER (postgres)
# and password $POSTGRES_PASSWORD (required), scram-sha-256 over TCP, trust on
# the local socket, listen on all addresses, create $POSTGRES_DB if set, run
# the *.sql files of /docker-entrypoint-initdb.d (as the official image does).
# Then runs postgres as user postgres (the image's stop signal is SIGINT).
set -e
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
if [ "${1:-postgres}" != postgres ]; then
	exec "$@"
fi
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "postgres: POSTGRES_PASSWORD is not set; refusing to initialise $PGDATA" >&2
		exit 1
	fi
	pw=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
	chown postgres "$pw"
	su postgres -s /bin/sh -c "initdb -D '$PGDATA' -U '$POSTGRES_USER' --pwfile='$pw' \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C" >/dev/null
	rm -f "$pw"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
	if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
		echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" |
			su postgres -s /bin/sh -c "postgres --single -D '$PGDATA' -j postgres" >/dev/null
	fi
	# as the official image: the *.sql of /docker-entrypoint-initdb.d, in order
	for f in /docker-entrypoint-initdb.d/*.sql; do
		[ -f "$f" ] || continue
		su postgres -s /bin/sh -c "postgres --single -D '$PGDATA' -j postgres" <"$f" >/dev/null
		echo "postgres: ran $f"
	done
	echo "postgres: initialised $PGDATA"
fi
exec su postgres -s /bin/sh -c "exec postgres -D '$PGDATA' -c jit=off"

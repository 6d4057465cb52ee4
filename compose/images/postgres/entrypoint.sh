#!/bin/sh
# Initialises the cluster on first start, then runs PostgreSQL in the foreground.
set -eu
USER_NAME="${POSTGRES_USER:-postgres}"
DB_NAME="${POSTGRES_DB:-$USER_NAME}"
if [ "${1:-postgres}" = "postgres" ]; then
  [ $# -gt 0 ] && shift
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    PWFILE="$(mktemp)"
    printf '%s' "${POSTGRES_PASSWORD:-postgres}" > "$PWFILE"
    chown postgres "$PWFILE"
    su postgres -c "initdb -D '$PGDATA' -U '$USER_NAME' --pwfile='$PWFILE' --auth-local=trust --auth-host=scram-sha-256 -E UTF8" >/dev/null
    rm -f "$PWFILE"
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "host all all ::/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # Like the upstream image: create POSTGRES_DB, then run
    # /docker-entrypoint-initdb.d/*.sql against it, on a socket-only server.
    setpriv --reuid=postgres --regid=postgres --init-groups \
      pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$DB_NAME" != "postgres" ]; then
      psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$USER_NAME" -d postgres \
        -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$USER_NAME\"" >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*.sql; do
      [ -e "$f" ] || continue
      echo "running $f"
      psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$USER_NAME" -d "$DB_NAME" -f "$f"
    done
    setpriv --reuid=postgres --regid=postgres --init-groups \
      pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"

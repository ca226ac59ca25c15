#!/bin/sh
# Makes the cluster on the first start (the role and database the replicas
# use, password authentication from the network), then runs the server in
# the foreground. POSTGRES_PASSWORD is required; the role and database are
# both `qtjudge` unless POSTGRES_USER / POSTGRES_DB say otherwise.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (the replicas' QTJUDGE_STORE URL carries it)}"
user="${POSTGRES_USER:-qtjudge}"
db="${POSTGRES_DB:-qtjudge}"
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

if [ ! -f "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$bin/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "host all all ::/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # A first start on the socket only, to make the role and the database.
  "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  escaped="$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")"
  psql -v ON_ERROR_STOP=1 -U postgres -d postgres -q <<SQL
CREATE ROLE "$user" LOGIN PASSWORD '$escaped';
CREATE DATABASE "$db" OWNER "$user";
SQL
  "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c max_connections=200

#!/bin/sh
# Postgres 15 in the foreground on every address, password (scram) logins from the
# network, with the user and database from POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB (as the official image takes them) made on the first start. UTF8
# explicitly: in the minimal image's C locale initdb would choose SQL_ASCII, which
# psycopg hands back as bytes.
set -eu
data=/var/lib/postgresql/data
bin=/usr/lib/postgresql/15/bin
: "${POSTGRES_USER:?}" "${POSTGRES_PASSWORD:?}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ ! -s "$data/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    "$bin/initdb" -D "$data" -U "$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
    "$bin/pg_ctl" -D "$data" -o "-c listen_addresses=''" -w start >/dev/null
    "$bin/createdb" -U "$POSTGRES_USER" -h /var/run/postgresql "$POSTGRES_DB" 2>/dev/null || true
    "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql

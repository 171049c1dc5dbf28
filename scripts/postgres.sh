#!/usr/bin/env bash
# A throwaway Postgres server for the tests (Debian's package): `scripts/postgres.sh start DIR`
# creates a cluster in DIR (as the postgres user when run as root), listening only on a
# Unix socket in DIR, with fsync off, and prints its admin URL; `scripts/postgres.sh stop DIR`
# stops it (the caller deletes DIR). `halt DIR` and `resume DIR` are the two halves of a
# restart (a fast shutdown that ends every session, then the same server again).
set -euo pipefail
command=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
serve() {
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start \
    -o "-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null
}
case "$command" in
  start)
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
    serve
    echo "postgres://postgres@localhost/postgres?host=$dir"
    ;;
  halt) as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
  resume) serve ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
    ;;
esac

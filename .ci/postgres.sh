#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `postgres.sh start DIR` initialises DIR (once), starts the server on a
# free loopback port, and prints "PORT URL" (URL: SQLAlchemy + psycopg2, the superuser's database "postgres");
# `postgres.sh stop DIR` stops it. Runs the server as the `postgres` system user when started as root (PostgreSQL
# refuses to run as root). Exit 3: PostgreSQL is not installed (.ci/services.sh installs it).
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?state folder}")
bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bin=$d; done
if [ -z "$bin" ]; then
  command -v initdb >/dev/null && bin=$(dirname "$(command -v initdb)")
fi
[ -n "$bin" ] || { echo "PostgreSQL is not installed (apt-get install postgresql, or .ci/services.sh)" >&2; exit 3; }
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "running as root and there is no postgres system user to run the server as" >&2; exit 3
fi
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# the cluster lives in DIR, or, as root, in a postgres-owned folder under /tmp named in DIR/pgdir (the postgres
# user cannot enter a root-private DIR such as pytest's temporary folders)
cluster() {
  if [ "$(id -u)" != 0 ]; then echo "$dir"; return; fi
  if [ ! -f "$dir/pgdir" ]; then
    real=$(mktemp -d /tmp/medai-pg.XXXXXX)
    chown postgres "$real"
    chmod 700 "$real"
    echo "$real" >"$dir/pgdir"
  fi
  cat "$dir/pgdir"
}
case "$cmd" in
  start)
    mkdir -p "$dir"
    pg=$(cluster)
    if [ ! -f "$pg/data/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$pg/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w -t 60 \
      -o "-p $port -k $pg -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" start >/dev/null \
      || { cat "$pg/server.log" >&2; exit 1; }
    echo "$port postgresql+psycopg2://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    pg=$(cluster)
    [ -f "$pg/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null || true
    if [ "$(id -u)" = 0 ]; then rm -rf "$pg" "$dir/pgdir"; fi
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

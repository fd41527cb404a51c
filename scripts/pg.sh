# Starts and stops a throwaway PostgreSQL cluster; source it, then `pg_start DIR`.
# Sets PG_URL (a superuser URL, trust auth on loopback only). Works as root by running the
# server as the `postgres` user, since initdb refuses to run as root.

pg_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir)
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  fi
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  echo "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql" >&2
  return 1
}

pg_start() {
  local dir=$1 bindir port as=()
  bindir=$(pg_bindir)
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${as[@]}" "$bindir/initdb" -D "$dir/data" -U switchyard --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  PG_DIR=$dir
  PG_AS=("${as[@]}")
  PG_BINDIR=$bindir
  PG_URL="postgres://switchyard@127.0.0.1:$port/postgres"
  export PG_URL
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  "${PG_AS[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  PG_DIR=
}

#!/usr/bin/env bash
# Starts `switchyard control-plane` and `switchyard worker` as production would (PostgreSQL,
# NATS, configuration from the environment), uses them, and stops them with SIGTERM.
# Usage: bash scripts/control-plane-smoke.sh PATH/TO/switchyard POSTGRES_SUPERUSER_URL PSQL
set -euo pipefail
bin=$1 admin_url=$2 psql=$3
dir=$(mktemp -d)
trap 'kill $cp_pid $nats_pid $worker_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
cp_pid= nats_pid= worker_pid=
nats-server -js -a 127.0.0.1 -p -1 -sd "$dir/js" --ports_file_dir "$dir" >"$dir/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 1 100); do ls "$dir"/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
export SWITCHYARD_NATS_URL=$(python3 -c 'import glob, json, sys; print(json.load(open(glob.glob(sys.argv[1] + "/*.ports")[0]))["nats"][0])' "$dir")
db="smoke_$(date +%s%N)"
"$psql" -q "$admin_url" -c "CREATE DATABASE $db"
export SWITCHYARD_DATABASE_URL="${admin_url%/*}/$db"
key() { python3 -c 'import os, base64; print(base64.b64encode(os.urandom(32)).decode())'; }
export SWITCHYARD_MASTER_KEY=$(key) SWITCHYARD_POLICY_KEY=$(key)
export SWITCHYARD_BOOTSTRAP_TOKEN="smoke-$(key | tr -d '/+=')"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SWITCHYARD_GRPC_LISTEN="127.0.0.1:$port" SWITCHYARD_UPSTREAM_ALLOW=127.0.0.0/8

"$bin" migrate
"$bin" migrate   # idempotent

"$bin" control-plane >"$dir/cp.log" 2>&1 &
cp_pid=$!
for _ in $(seq 1 100); do
  grep -q "admin API listening" "$dir/cp.log" && break
  kill -0 $cp_pid 2>/dev/null || { cat "$dir/cp.log"; exit 1; }
  sleep 0.1
done
cli=("$bin" --server "http://127.0.0.1:$port" --token "$SWITCHYARD_BOOTSTRAP_TOKEN")
created=$("${cli[@]}" tenant create smoke --rps 3 -o json)
grep -q '"slug":"smoke"' <<<"$created"
"${cli[@]}" connector add --tenant smoke --name up --url http://127.0.0.1:9/mcp \
  --header 'X-Api-Key: smoke-header-secret' -o json >/dev/null
if "${cli[@]}" connector add --tenant smoke --name up2 --url http://10.0.0.1/mcp 2>"$dir/err"; then
  echo "private upstream accepted without --upstream-allow" >&2; exit 1
fi
grep -q 'upstream-allow' "$dir/err"

for _ in $(seq 1 100); do
  grep -q "published every tenant's policy" "$dir/cp.log" && break
  sleep 0.1
done
grep -q "published every tenant's policy" "$dir/cp.log" || { cat "$dir/cp.log"; echo "no policy published to NATS" >&2; exit 1; }
# A worker role on the same NATS becomes ready once it has the policies.
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SWITCHYARD_HTTP_LISTEN="127.0.0.1:$http_port" SWITCHYARD_METRICS_LISTEN="127.0.0.1:$metrics_port" \
  "$bin" worker >"$dir/worker.log" 2>&1 &
worker_pid=$!
# Prints the HTTP status of a GET (0 when unreachable); with "body", the body instead.
get() { python3 - "$@" <<'PY'
import sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=2)
    print(r.read().decode() if sys.argv[2:] == ["body"] else r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
}
for _ in $(seq 1 100); do
  [ "$(get "http://127.0.0.1:$metrics_port/readyz")" = 200 ] && break
  sleep 0.1
done
[ "$(get "http://127.0.0.1:$metrics_port/readyz")" = 200 ] || { cat "$dir/worker.log"; echo "worker not ready" >&2; exit 1; }
metrics_text=$(get "http://127.0.0.1:$metrics_port/metrics" body)
grep -q '^switchyard_worker_tenants 1$' <<<"$metrics_text" || { echo "$metrics_text"; echo "worker holds no tenant" >&2; exit 1; }
kill -TERM $worker_pid
wait $worker_pid

kill -TERM $cp_pid
wait $cp_pid
for s in "$SWITCHYARD_BOOTSTRAP_TOKEN" "$SWITCHYARD_MASTER_KEY" "$SWITCHYARD_POLICY_KEY" smoke-header-secret; do
  if grep -qF -- "$s" "$dir/cp.log" "$dir/worker.log"; then echo "a secret reached a log" >&2; exit 1; fi
done

# A missing or malformed setting is named at start.
if SWITCHYARD_MASTER_KEY=short "$bin" control-plane 2>"$dir/err"; then exit 1; fi
grep -q 'master-key' "$dir/err"
echo "roles smoke: ok"

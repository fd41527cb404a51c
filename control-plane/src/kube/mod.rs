//! Tenant namespaces on Kubernetes: what each tenant's namespace should hold (`desired`), the
//! reconciler that makes the cluster so (`reconciler`, one replica at a time through a
//! `lease`), and the settings and compute profiles they follow.

pub mod desired;
pub mod lease;
pub mod reconciler;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The label every object the reconciler makes carries, and the only one it trusts: an
/// object without it is never adopted or changed.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "switchyard");
/// Names the tenant an object belongs to.
pub const TENANT_LABEL: &str = "switchyard.dev/tenant";
/// The field manager of the reconciler's server-side applies.
pub const FIELD_MANAGER: &str = "switchyard-control-plane";

/// What a tenant's namespace may use, and how big its dedicated worker pool is. Quantities
/// are Kubernetes quantities ("500m", "2", "512Mi"); counts are objects of each kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ComputeProfile {
    /// Total CPU and memory the namespace's pods may request, and be limited to.
    pub requests_cpu: String,
    pub requests_memory: String,
    pub limits_cpu: String,
    pub limits_memory: String,
    /// A container's defaults (LimitRange) and each dedicated worker's resources.
    pub container_cpu_request: String,
    pub container_memory_request: String,
    pub container_cpu_limit: String,
    pub container_memory_limit: String,
    /// Object counts (ResourceQuota).
    pub pods: u32,
    pub services: u32,
    pub secrets: u32,
    pub config_maps: u32,
    /// Dedicated workers of an isolated tenant.
    pub workers: u32,
}

impl Default for ComputeProfile {
    fn default() -> Self {
        Self {
            requests_cpu: "2".into(),
            requests_memory: "2Gi".into(),
            limits_cpu: "8".into(),
            limits_memory: "8Gi".into(),
            container_cpu_request: "250m".into(),
            container_memory_request: "256Mi".into(),
            container_cpu_limit: "2".into(),
            container_memory_limit: "1Gi".into(),
            pods: 10,
            services: 5,
            secrets: 10,
            config_maps: 10,
            workers: 2,
        }
    }
}

/// A Kubernetes quantity: digits, an optional fraction, an optional suffix.
fn is_quantity(s: &str) -> bool {
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let digits = number.split('.').collect::<Vec<_>>();
    let number_ok = !number.is_empty()
        && digits.len() <= 2
        && digits
            .iter()
            .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    number_ok
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "Ki" | "Mi" | "Gi" | "Ti"
        )
}

impl ComputeProfile {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (field, value) in [
            ("requests-cpu", &self.requests_cpu),
            ("requests-memory", &self.requests_memory),
            ("limits-cpu", &self.limits_cpu),
            ("limits-memory", &self.limits_memory),
            ("container-cpu-request", &self.container_cpu_request),
            ("container-memory-request", &self.container_memory_request),
            ("container-cpu-limit", &self.container_cpu_limit),
            ("container-memory-limit", &self.container_memory_limit),
        ] {
            if !is_quantity(value) {
                return Err(format!(
                    "{field}: {value:?} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi)"
                ));
            }
        }
        if self.workers == 0 {
            return Err("workers: an isolated tenant needs at least one worker".into());
        }
        if self.pods < self.workers {
            return Err(format!(
                "pods: {} leaves no room for the {} dedicated workers",
                self.pods, self.workers
            ));
        }
        Ok(())
    }
}

/// The compute profiles a control plane knows, and which one a tenant without one gets.
#[derive(Debug, Clone)]
pub struct Profiles {
    by_name: BTreeMap<String, ComputeProfile>,
    default: String,
}

impl Default for Profiles {
    fn default() -> Self {
        Self {
            by_name: BTreeMap::from([("default".into(), ComputeProfile::default())]),
            default: "default".into(),
        }
    }
}

impl Profiles {
    /// `profiles` (a built-in `default` is added unless given) with `default` the one
    /// tenants without a profile get; errors name the profile and field.
    pub fn new(
        profiles: BTreeMap<String, ComputeProfile>,
        default: Option<String>,
    ) -> Result<Self, String> {
        let mut by_name = Profiles::default().by_name;
        for (name, profile) in profiles {
            if name.is_empty()
                || name.len() > 40
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(format!(
                    "compute-profiles.{name}: a profile name is 1-40 characters of [a-z0-9-]"
                ));
            }
            profile
                .validate()
                .map_err(|e| format!("compute-profiles.{name}.{e}"))?;
            by_name.insert(name, profile);
        }
        let default = default.unwrap_or_else(|| "default".into());
        if !by_name.contains_key(&default) {
            return Err(format!(
                "default-compute-profile: no profile named {default:?} (defined: {})",
                by_name.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(Self { by_name, default })
    }

    /// The profile `name` names (empty: the default one).
    pub fn get(&self, name: &str) -> Option<&ComputeProfile> {
        let name = if name.is_empty() { &self.default } else { name };
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// The Gateway a dedicated pool's HTTPRoute attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRef {
    pub namespace: String,
    pub name: String,
    pub section: Option<String>,
}

impl GatewayRef {
    /// Parses `NAMESPACE/NAME` or `NAMESPACE/NAME/SECTION`.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| !p.is_empty() && p.len() <= 253;
        match parts.as_slice() {
            [ns, name] if ok(ns) && ok(name) => Some(Self {
                namespace: (*ns).into(),
                name: (*name).into(),
                section: None,
            }),
            [ns, name, section] if ok(ns) && ok(name) && ok(section) => Some(Self {
                namespace: (*ns).into(),
                name: (*name).into(),
                section: Some((*section).into()),
            }),
            _ => None,
        }
    }
}

/// How the reconciler shapes tenant namespaces (the control plane's `--kube-*` settings).
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// Tenant namespaces are named this plus the slug.
    pub namespace_prefix: String,
    /// Where the reconciler's Lease lives (the control plane's own namespace).
    pub lease_namespace: String,
    /// Names this replica in the Lease (its pod name).
    pub identity: String,
    /// Image of dedicated workers (the control plane's own).
    pub worker_image: String,
    /// NATS, as dedicated workers reach it; and its port, which their network policy opens.
    pub nats_url: String,
    pub nats_port: u16,
    /// The workers' public URL (their --public-url), if set.
    pub public_url: Option<String>,
    /// CIDRs upstreams may use despite the private-range guard (workers' --upstream-allow).
    pub upstream_allow: Vec<String>,
    /// The namespace whose pods (the ingress controller or gateway) reach tenants' workers.
    pub ingress_namespace: String,
    /// The namespace whose pods scrape metrics.
    pub monitoring_namespace: String,
    /// Where dedicated pools' HTTPRoutes attach; none: no route is made.
    pub gateway: Option<GatewayRef>,
    /// How often every tenant is reconciled even without a change (drift repair).
    pub resync: Duration,
    /// Issues each dedicated pool NATS credentials limited to its tenant's keys; none:
    /// dedicated workers connect without credentials of their own.
    pub nats_signer: Option<std::sync::Arc<crate::nats_creds::NatsSigner>>,
    /// Settings dedicated workers get as the shared ones do (environment name, value):
    /// connection and upstream bounds, trusted proxies, the egress proxy.
    pub worker_env: Vec<(String, String)>,
}

impl KubeSettings {
    /// The namespace of `tenant`.
    pub fn namespace(&self, tenant: &str) -> String {
        format!("{}{tenant}", self.namespace_prefix)
    }

    /// NATS credentials for `tenant`'s dedicated workers, when a signer is configured.
    pub fn nats_creds(&self, tenant: &str) -> Option<String> {
        let signer = self.nats_signer.as_ref()?;
        signer
            .dedicated_worker_creds(tenant)
            .inspect_err(|e| tracing::error!(tenant, error = %e, "cannot issue NATS credentials"))
            .ok()
    }

    /// The tenant a namespace of this prefix belongs to, if it is one.
    pub fn tenant_of(&self, namespace: &str) -> Option<String> {
        namespace
            .strip_prefix(&self.namespace_prefix)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "2.5", "512Mi", "1Gi", "10k"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "1.2.3", "1GB", "-1", "1 Gi", ".5"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn profiles_are_checked_by_name_and_field() {
        let bad = ComputeProfile {
            limits_memory: "lots".into(),
            ..Default::default()
        };
        let err = Profiles::new(BTreeMap::from([("big".into(), bad)]), None).unwrap_err();
        assert!(
            err.starts_with("compute-profiles.big.limits-memory"),
            "{err}"
        );
        let err = Profiles::new(BTreeMap::new(), Some("huge".into())).unwrap_err();
        assert!(err.contains("default-compute-profile"), "{err}");
        let p = Profiles::new(
            BTreeMap::from([(
                "small".into(),
                ComputeProfile {
                    workers: 1,
                    ..Default::default()
                },
            )]),
            Some("small".into()),
        )
        .unwrap();
        assert_eq!(p.get("").unwrap().workers, 1);
        assert_eq!(p.get("default").unwrap().workers, 2);
        assert!(p.get("nope").is_none());
    }

    #[test]
    fn gateway_refs() {
        assert_eq!(
            GatewayRef::parse("gw/public"),
            Some(GatewayRef {
                namespace: "gw".into(),
                name: "public".into(),
                section: None
            })
        );
        assert!(
            GatewayRef::parse("gw/public/https")
                .unwrap()
                .section
                .is_some()
        );
        assert!(GatewayRef::parse("public").is_none());
        assert!(GatewayRef::parse("a//b").is_none());
    }
}

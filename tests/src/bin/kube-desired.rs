//! Writes what the namespace reconciler applies for sample tenants (shared, isolated,
//! suspended; the default and a small profile) into a folder: `core.yaml` (Kubernetes'
//! own kinds, for kubernetes-validate) and `custom.json` (the HTTPRoute, for its CRD's
//! schema). scripts/chart.sh validates them.
//! Usage: kube-desired DIR

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;
use switchyard_control_plane::kube::desired::{self, Tenant};
use switchyard_control_plane::kube::{ComputeProfile, GatewayRef, KubeSettings};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: kube-desired DIR");
    let settings = KubeSettings {
        namespace_prefix: "switchyard-t-".into(),
        lease_namespace: "switchyard".into(),
        identity: "control-plane-0".into(),
        worker_image: "registry.example.com/switchyard:1.0.0".into(),
        nats_url: "nats://nats.nats:4222".into(),
        nats_port: 4222,
        public_url: Some("https://mcp.example.com".into()),
        upstream_allow: vec!["10.50.0.0/16".into()],
        ingress_namespace: "ingress-nginx".into(),
        monitoring_namespace: "monitoring".into(),
        gateway: GatewayRef::parse("gateways/public/https"),
        resync: Duration::from_secs(300),
        nats_signer: None,
        worker_env: vec![
            ("SWITCHYARD_MAX_HEADERS".into(), "64".into()),
            (
                "SWITCHYARD_TRUSTED_PROXIES".into(),
                "10.0.0.0/8,192.168.0.0/16".into(),
            ),
        ],
    };
    let small = ComputeProfile {
        workers: 1,
        pods: 3,
        ..Default::default()
    };
    let default = ComputeProfile::default();
    let tenants = [
        Tenant {
            slug: "shared-co",
            suspended: false,
            profile: &default,
            policy_key: "a2V5",
            nats_creds: None,
        },
        Tenant {
            slug: "isolated-co",
            suspended: false,
            profile: &default,
            policy_key: "a2V5",
            nats_creds: Some("-----BEGIN NATS USER JWT-----"),
        },
        Tenant {
            slug: "small-co",
            suspended: false,
            profile: &small,
            policy_key: "a2V5",
            nats_creds: None,
        },
        Tenant {
            slug: "paused-co",
            suspended: true,
            profile: &small,
            policy_key: "a2V5",
            nats_creds: None,
        },
    ];
    let mut core = Vec::new();
    let mut custom = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        core.extend(desired::base(&settings, t));
        if i > 0 {
            core.extend(desired::pool(&settings, t));
            custom.extend(desired::route(&settings, t));
        }
    }
    let docs: Vec<String> = core
        .iter()
        .map(|o| serde_json::to_string_pretty(&o.body))
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&dir)?;
    std::fs::write(format!("{dir}/core.yaml"), docs.join("\n---\n"))?;
    let custom: Vec<&serde_json::Value> = custom.iter().map(|o| &o.body).collect();
    std::fs::write(
        format!("{dir}/custom.json"),
        serde_json::to_string(&custom)?,
    )?;
    println!(
        "{} objects and {} routes in {dir}",
        core.len(),
        custom.len()
    );
    Ok(())
}

//! The control plane's Kubernetes settings (`--kube-*`) and compute profiles, checked with
//! errors that name the key.

use super::control_plane::ControlPlaneArgs;
use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use std::time::Duration;
use switchyard_control_plane::kube::{GatewayRef, KubeSettings, Profiles};
use switchyard_control_plane::nats_creds::NatsSigner;

/// Longest namespace prefix: with a 40-character slug the name stays a 63-character label.
const PREFIX_MAX: usize = 23;

fn dns_label_part(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The compute profiles the configuration defines.
pub fn profiles(args: &ControlPlaneArgs) -> anyhow::Result<Profiles> {
    Profiles::new(
        args.compute_profiles.clone().unwrap_or_default(),
        args.default_compute_profile.clone(),
    )
    .map_err(anyhow::Error::msg)
}

/// The reconciler's settings when `--kube-namespaces` is on.
pub fn settings(args: &ControlPlaneArgs) -> anyhow::Result<Option<KubeSettings>> {
    if args.kube_namespaces != Some(true) {
        return Ok(None);
    }
    let prefix = args
        .kube_namespace_prefix
        .clone()
        .unwrap_or_else(|| "switchyard-t-".into());
    if prefix.is_empty()
        || prefix.len() > PREFIX_MAX
        || !dns_label_part(&prefix)
        || !prefix.starts_with(|c: char| c.is_ascii_lowercase())
    {
        bail!(
            "kube-namespace-prefix (SWITCHYARD_KUBE_NAMESPACE_PREFIX): 1-{PREFIX_MAX} characters of [a-z0-9-] starting with a letter"
        );
    }
    let required = |value: &Option<String>, key: &str, what: &str| {
        value.clone().filter(|v| !v.is_empty()).with_context(|| {
            format!(
                "{key} (SWITCHYARD_{}) is required with kube-namespaces: {what}",
                key.to_uppercase().replace('-', "_")
            )
        })
    };
    let lease_namespace = required(
        &args.kube_lease_namespace,
        "kube-lease-namespace",
        "the control plane's own namespace",
    )?;
    let worker_image = required(
        &args.kube_worker_image,
        "kube-worker-image",
        "the image of dedicated workers",
    )?;
    let nats_url = required(
        &args.kube_nats_url.clone().or_else(|| args.nats_url.clone()),
        "kube-nats-url",
        "NATS as dedicated workers reach it",
    )?;
    let nats_port = url::Url::parse(&nats_url)
        .ok()
        .and_then(|u| u.port_or_known_default().or(Some(4222)))
        .unwrap_or(4222);
    let gateway = args
        .kube_gateway
        .as_deref()
        .map(|g| {
            GatewayRef::parse(g).with_context(|| {
                format!(
                    "kube-gateway (SWITCHYARD_KUBE_GATEWAY): {g:?} is not NAMESPACE/NAME[/SECTION]"
                )
            })
        })
        .transpose()?;
    let nats_signer = match (&args.kube_nats_signing_key_file, &args.kube_nats_account) {
        (None, None) => None,
        (Some(path), Some(account)) => {
            let flag = "kube-nats-signing-key-file (SWITCHYARD_KUBE_NATS_SIGNING_KEY_FILE)";
            let seed = super::read_setting_file(flag, path)?;
            let signer = NatsSigner::new(&seed, account, switchyard_bus::Buckets::default())
                .map_err(|e| anyhow::anyhow!("{flag} / kube-nats-account: {e}"))?;
            Some(std::sync::Arc::new(signer))
        }
        _ => bail!(
            "kube-nats-signing-key-file and kube-nats-account (SWITCHYARD_KUBE_NATS_*) go together"
        ),
    };
    let worker_env = worker_env(args.kube_worker_env.clone().unwrap_or_default())?;
    let resync = args.kube_resync_seconds.unwrap_or(300);
    if !(1..=86_400).contains(&resync) {
        bail!("kube-resync-seconds (SWITCHYARD_KUBE_RESYNC_SECONDS): 1 to 86400");
    }
    Ok(Some(KubeSettings {
        namespace_prefix: prefix,
        lease_namespace,
        identity: args
            .kube_identity
            .clone()
            .unwrap_or_else(|| format!("control-plane-{}", uuid_like())),
        worker_image,
        nats_url,
        nats_port,
        public_url: args.kube_public_url.clone(),
        upstream_allow: args
            .upstream_allow
            .iter()
            .flatten()
            .map(|c| c.to_string())
            .collect(),
        ingress_namespace: args
            .kube_ingress_namespace
            .clone()
            .unwrap_or_else(|| "ingress-nginx".into()),
        monitoring_namespace: args
            .kube_monitoring_namespace
            .clone()
            .unwrap_or_else(|| "monitoring".into()),
        gateway,
        resync: Duration::from_secs(resync),
        nats_signer,
        worker_env,
    }))
}

/// What the reconciler sets on dedicated workers itself; the configuration may not.
const SET_BY_RECONCILER: [&str; 10] = [
    "SWITCHYARD_POLICY_KEY",
    "SWITCHYARD_ONLY_TENANT",
    "SWITCHYARD_NATS_URL",
    "SWITCHYARD_NATS_CREDS",
    "SWITCHYARD_HTTP_LISTEN",
    "SWITCHYARD_METRICS_LISTEN",
    "SWITCHYARD_DRAIN_GRACE",
    "SWITCHYARD_WORKER_ID",
    "SWITCHYARD_PUBLIC_URL",
    "SWITCHYARD_UPSTREAM_ALLOW",
];

/// The settings dedicated workers inherit ([kube-worker-env]): worker settings by their
/// environment names, none of those the reconciler sets.
pub fn worker_env(env: BTreeMap<String, String>) -> anyhow::Result<Vec<(String, String)>> {
    for name in env.keys() {
        let settable = name.strip_prefix("SWITCHYARD_").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        });
        if !settable {
            bail!("kube-worker-env: {name:?} is not a worker setting (SWITCHYARD_...)");
        }
        if SET_BY_RECONCILER.contains(&name.as_str()) {
            bail!("kube-worker-env: {name} is set by the reconciler itself");
        }
    }
    Ok(env.into_iter().collect())
}

fn uuid_like() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedicated_workers_inherit_worker_settings_but_not_the_reconcilers_own() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        let ok = worker_env(env(&[("SWITCHYARD_MAX_HEADERS", "64")])).unwrap();
        assert_eq!(ok, [("SWITCHYARD_MAX_HEADERS".to_owned(), "64".to_owned())]);
        for bad in [
            "SWITCHYARD_POLICY_KEY",
            "SWITCHYARD_ONLY_TENANT",
            "PATH",
            "SWITCHYARD_",
            "switchyard_x",
        ] {
            let e = worker_env(env(&[(bad, "x")])).unwrap_err();
            assert!(e.to_string().contains("kube-worker-env"), "{bad}: {e}");
        }
    }
}

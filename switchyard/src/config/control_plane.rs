//! The `control-plane` and `migrate` roles' configuration.

use super::parse_key;
use anyhow::{Context as _, bail};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use switchyard_common::netguard::UpstreamGuard;
use switchyard_common::seal::Keyring;
use switchyard_control_plane::audit::checkpoint::Signer;
use switchyard_control_plane::kube::ComputeProfile;
use switchyard_control_plane::{Store, compile::Keys};

#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ControlPlaneArgs {
    /// PostgreSQL URL, e.g. postgres://user:pass@host/db.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// NATS server the compiled policies are published to, e.g. nats://nats:4222.
    #[arg(long, env = "SWITCHYARD_NATS_URL")]
    pub(super) nats_url: Option<String>,
    /// NATS credentials file (.creds) when NATS authenticates with JWTs [default: none].
    #[arg(long, env = "SWITCHYARD_NATS_CREDS")]
    pub(super) nats_creds: Option<std::path::PathBuf>,
    /// The workers' public base URL (their --public-url): connectors may not point at it.
    #[arg(long, env = "SWITCHYARD_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// Address of the admin API [default: 127.0.0.1:50051].
    #[arg(long, env = "SWITCHYARD_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// Address of /healthz, /readyz and /metrics [default: 127.0.0.1:9090].
    #[arg(long, env = "SWITCHYARD_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Key that seals connector secrets at rest: 32 bytes, base64.
    #[arg(long, env = "SWITCHYARD_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
    /// Retired master keys that still open stored secrets, comma-separated.
    #[arg(
        long,
        env = "SWITCHYARD_PREVIOUS_MASTER_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    previous_master_keys: Option<Vec<String>>,
    /// Key that seals secrets in published policies; workers hold the same: 32 bytes, base64.
    #[arg(long, env = "SWITCHYARD_POLICY_KEY", hide_env_values = true)]
    policy_key: Option<String>,
    /// An operator token accepted from the start (at least 32 characters); stored hashed.
    #[arg(long, env = "SWITCHYARD_BOOTSTRAP_TOKEN", hide_env_values = true)]
    bootstrap_token: Option<String>,
    /// CIDRs connectors may point to despite the private-range guard, comma-separated.
    #[arg(long, env = "SWITCHYARD_UPSTREAM_ALLOW", value_delimiter = ',')]
    pub(super) upstream_allow: Option<Vec<IpNet>>,
    /// Reconcile a Kubernetes namespace per tenant (needs RBAC; see the Helm chart).
    #[arg(long, env = "SWITCHYARD_KUBE_NAMESPACES", num_args = 0..=1, default_missing_value = "true")]
    pub(super) kube_namespaces: Option<bool>,
    /// Tenant namespaces are named this plus the slug [default: switchyard-t-].
    #[arg(long, env = "SWITCHYARD_KUBE_NAMESPACE_PREFIX")]
    pub(super) kube_namespace_prefix: Option<String>,
    /// The namespace of the reconciler's Lease: the control plane's own.
    #[arg(long, env = "SWITCHYARD_KUBE_LEASE_NAMESPACE")]
    pub(super) kube_lease_namespace: Option<String>,
    /// Names this replica in the Lease [default: a random id]; e.g. the pod name.
    #[arg(long, env = "SWITCHYARD_KUBE_IDENTITY")]
    pub(super) kube_identity: Option<String>,
    /// Image of isolated tenants' dedicated workers (this binary's image).
    #[arg(long, env = "SWITCHYARD_KUBE_WORKER_IMAGE")]
    pub(super) kube_worker_image: Option<String>,
    /// NATS as dedicated workers reach it [default: nats-url].
    #[arg(long, env = "SWITCHYARD_KUBE_NATS_URL")]
    pub(super) kube_nats_url: Option<String>,
    /// File holding a signing key (seed, SA...) of the NATS account the fleet uses: with
    /// it, each dedicated pool gets credentials limited to its tenant's keys [default:
    /// none; dedicated workers then use NATS without credentials of their own].
    #[arg(long, env = "SWITCHYARD_KUBE_NATS_SIGNING_KEY_FILE")]
    pub(super) kube_nats_signing_key_file: Option<std::path::PathBuf>,
    /// The public key (A...) of that account.
    #[arg(long, env = "SWITCHYARD_KUBE_NATS_ACCOUNT")]
    pub(super) kube_nats_account: Option<String>,
    /// The public base URL of the workers (their --public-url), for dedicated workers.
    #[arg(long, env = "SWITCHYARD_KUBE_PUBLIC_URL")]
    pub(super) kube_public_url: Option<String>,
    /// The Gateway dedicated pools' HTTPRoutes attach to: NAMESPACE/NAME[/SECTION].
    #[arg(long, env = "SWITCHYARD_KUBE_GATEWAY")]
    pub(super) kube_gateway: Option<String>,
    /// The namespace of the ingress controller or gateway that reaches tenants' workers
    /// [default: ingress-nginx].
    #[arg(long, env = "SWITCHYARD_KUBE_INGRESS_NAMESPACE")]
    pub(super) kube_ingress_namespace: Option<String>,
    /// The namespace whose pods scrape metrics [default: monitoring].
    #[arg(long, env = "SWITCHYARD_KUBE_MONITORING_NAMESPACE")]
    pub(super) kube_monitoring_namespace: Option<String>,
    /// Seconds between reconciling every tenant, to repair drift [default: 300].
    #[arg(long, env = "SWITCHYARD_KUBE_RESYNC_SECONDS")]
    pub(super) kube_resync_seconds: Option<u64>,
    /// The compute profile of tenants that name none [default: default].
    #[arg(long, env = "SWITCHYARD_DEFAULT_COMPUTE_PROFILE")]
    pub(super) default_compute_profile: Option<String>,
    /// Days audit records are kept before the hourly job removes them [default: 365].
    #[arg(long, env = "SWITCHYARD_AUDIT_RETENTION_DAYS")]
    pub(super) audit_retention_days: Option<u32>,
    /// Ed25519 key that signs audit checkpoints every 5 minutes: a 32-byte seed, base64
    /// [default: none, no checkpoints].
    #[arg(long, env = "SWITCHYARD_AUDIT_SIGNING_KEY", hide_env_values = true)]
    pub(super) audit_signing_key: Option<String>,
    /// Public keys (base64, comma-separated) of audit signing keys replaced by the current
    /// one: checkpoints they signed still check.
    #[arg(
        long,
        env = "SWITCHYARD_AUDIT_PREVIOUS_PUBLIC_KEYS",
        value_delimiter = ','
    )]
    pub(super) audit_previous_public_keys: Option<Vec<String>>,
    /// Compute profiles, by name (config file only: [compute-profiles.NAME]).
    #[arg(skip)]
    pub(super) compute_profiles: Option<BTreeMap<String, ComputeProfile>>,
    /// Settings dedicated workers get, as the shared workers' environment names them
    /// (config file only: [kube-worker-env], e.g. SWITCHYARD_MAX_HEADERS = "64").
    #[arg(skip)]
    pub(super) kube_worker_env: Option<BTreeMap<String, String>>,
    /// TOML file with the same keys as these flags (e.g. database-url = "...").
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// PostgreSQL URL (or sqlite: URL) to migrate.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

fn read_file(path: &Path) -> anyhow::Result<ControlPlaneArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

/// A validated control-plane configuration.
#[derive(Debug)]
pub struct ControlPlaneSettings {
    pub database_url: String,
    pub nats_url: Option<String>,
    pub nats_creds: Option<std::path::PathBuf>,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub config: switchyard_control_plane::Config,
    /// The reconciler's settings, when tenant namespaces are on; its client is made at start.
    pub kube: Option<switchyard_control_plane::kube::KubeSettings>,
}

impl ControlPlaneArgs {
    fn merge(self, file: ControlPlaneArgs) -> Self {
        Self {
            database_url: self.database_url.or(file.database_url),
            nats_url: self.nats_url.or(file.nats_url),
            nats_creds: self.nats_creds.or(file.nats_creds),
            grpc_listen: self.grpc_listen.or(file.grpc_listen),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            master_key: self.master_key.or(file.master_key),
            previous_master_keys: self.previous_master_keys.or(file.previous_master_keys),
            policy_key: self.policy_key.or(file.policy_key),
            bootstrap_token: self.bootstrap_token.or(file.bootstrap_token),
            upstream_allow: self.upstream_allow.or(file.upstream_allow),
            kube_namespaces: self.kube_namespaces.or(file.kube_namespaces),
            kube_namespace_prefix: self.kube_namespace_prefix.or(file.kube_namespace_prefix),
            kube_lease_namespace: self.kube_lease_namespace.or(file.kube_lease_namespace),
            kube_identity: self.kube_identity.or(file.kube_identity),
            kube_worker_image: self.kube_worker_image.or(file.kube_worker_image),
            kube_nats_url: self.kube_nats_url.or(file.kube_nats_url),
            kube_nats_signing_key_file: self
                .kube_nats_signing_key_file
                .or(file.kube_nats_signing_key_file),
            kube_nats_account: self.kube_nats_account.or(file.kube_nats_account),
            kube_public_url: self.kube_public_url.or(file.kube_public_url),
            public_url: self.public_url.or(file.public_url),
            kube_gateway: self.kube_gateway.or(file.kube_gateway),
            kube_ingress_namespace: self.kube_ingress_namespace.or(file.kube_ingress_namespace),
            kube_monitoring_namespace: self
                .kube_monitoring_namespace
                .or(file.kube_monitoring_namespace),
            kube_resync_seconds: self.kube_resync_seconds.or(file.kube_resync_seconds),
            default_compute_profile: self
                .default_compute_profile
                .or(file.default_compute_profile),
            audit_retention_days: self.audit_retention_days.or(file.audit_retention_days),
            audit_signing_key: self.audit_signing_key.or(file.audit_signing_key),
            audit_previous_public_keys: self
                .audit_previous_public_keys
                .or(file.audit_previous_public_keys),
            compute_profiles: self.compute_profiles.or(file.compute_profiles),
            kube_worker_env: self.kube_worker_env.or(file.kube_worker_env),
            config: None,
        }
    }

    pub fn validate(self) -> anyhow::Result<ControlPlaneSettings> {
        let args = match &self.config {
            Some(path) => {
                let file = read_file(path)?;
                self.merge(file)
            }
            None => self,
        };
        let profiles = super::kube::profiles(&args)?;
        let kube = super::kube::settings(&args)?;
        let Some(database_url) = args.database_url else {
            bail!("database-url (SWITCHYARD_DATABASE_URL) is required");
        };
        let Some(master) = args.master_key else {
            bail!("master-key (SWITCHYARD_MASTER_KEY) is required: 32 random bytes, base64");
        };
        let Some(policy) = args.policy_key else {
            bail!("policy-key (SWITCHYARD_POLICY_KEY) is required: 32 random bytes, base64");
        };
        let master = parse_key("master-key", &master)?;
        let policy = parse_key("policy-key", &policy)?;
        if master.to_base64() == policy.to_base64() {
            bail!("master-key and policy-key must differ: workers hold the policy key");
        }
        let retired = args
            .previous_master_keys
            .unwrap_or_default()
            .iter()
            .map(|k| parse_key("previous-master-keys", k))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ControlPlaneSettings {
            database_url,
            nats_url: args.nats_url,
            nats_creds: args.nats_creds,
            grpc_listen: args
                .grpc_listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
            metrics_listen: args
                .metrics_listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090))),
            config: switchyard_control_plane::Config {
                keys: Keys {
                    master: Keyring::new(master).with_retired(retired),
                    policy: Keyring::new(policy),
                },
                upstream_guard: own_guard(
                    UpstreamGuard::new(args.upstream_allow.unwrap_or_default()),
                    args.public_url.as_ref(),
                )?,
                bootstrap_token: args.bootstrap_token,
                policy_bus: None,
                usage_bus: None,
                tool_bus: None,
                refusal_bus: None,
                grants: None,
                fleet: None,
                profiles,
                kube: None,
                audit_retention: Some(audit_retention(args.audit_retention_days)?),
                audit_signer: args
                    .audit_signing_key
                    .as_deref()
                    .map(Signer::from_base64)
                    .transpose()
                    .map_err(|e| {
                        anyhow::anyhow!("audit-signing-key (SWITCHYARD_AUDIT_SIGNING_KEY) {e}")
                    })?,
                audit_checkpoint_every: switchyard_control_plane::audit::checkpoint::DEFAULT_EVERY,
                audit_previous_keys: previous_audit_keys(args.audit_previous_public_keys)?,
            },
            kube,
        })
    }
}

/// The public keys of replaced audit signing keys.
fn previous_audit_keys(
    keys: Option<Vec<String>>,
) -> anyhow::Result<Vec<switchyard_control_plane::audit::checkpoint::VerifyingKey>> {
    use switchyard_control_plane::audit::checkpoint::public_key_from_base64;
    let keys = keys.unwrap_or_default();
    keys.iter()
        .filter(|k| !k.trim().is_empty())
        .enumerate()
        .map(|(i, k)| {
            public_key_from_base64(k).map_err(|e| {
                anyhow::anyhow!(
                    "audit-previous-public-keys (SWITCHYARD_AUDIT_PREVIOUS_PUBLIC_KEYS): key {} {e}",
                    i + 1
                )
            })
        })
        .collect()
}

/// How long audit records are kept: `days` (1 to 36,500), 365 when unset.
fn audit_retention(days: Option<u32>) -> anyhow::Result<std::time::Duration> {
    use switchyard_control_plane::audit::retention;
    let days = days.unwrap_or(retention::DEFAULT_DAYS);
    if !(1..=36_500).contains(&days) {
        bail!("audit-retention-days must be between 1 and 36500, not {days}");
    }
    Ok(retention::days(days))
}

pub async fn run_control_plane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let mut settings = args.validate()?;
    match &settings.nats_url {
        Some(url) => {
            // Keep trying in the background: the publisher retries until NATS answers.
            let client = super::connect_nats(
                url,
                settings.nats_creds.as_deref(),
                "nats-creds (SWITCHYARD_NATS_CREDS)",
                None,
            )
            .await?;
            settings.config.policy_bus = Some(std::sync::Arc::new(switchyard_bus::NatsBus::new(
                client.clone(),
                switchyard_bus::POLICY_BUCKET,
            )));
            settings.config.usage_bus = Some(std::sync::Arc::new(switchyard_bus::NatsUsage::new(
                client.clone(),
            )));
            settings.config.tool_bus = Some(std::sync::Arc::new(switchyard_bus::NatsTools::new(
                client.clone(),
            )));
            settings.config.refusal_bus = Some(std::sync::Arc::new(
                switchyard_bus::NatsRefusals::new(client.clone()),
            ));
            settings.config.grants = Some(switchyard_bus::GrantStores::nats(client.clone()).grants);
            settings.config.fleet = Some(std::sync::Arc::new(switchyard_bus::NatsFleet::new(
                client,
                switchyard_bus::FLEET_BUCKET,
                std::time::Duration::from_secs(15),
            )));
        }
        None => tracing::warn!(
            "no nats-url: policy changes stay in the outbox until a control plane with NATS runs"
        ),
    }
    if let Some(kube) = settings.kube.take() {
        let client = kube::Client::try_default()
            .await
            .context("kube-namespaces: no Kubernetes API to reach (in-cluster or kubeconfig)")?;
        settings.config.kube = Some(switchyard_control_plane::KubeConfig {
            client,
            settings: kube,
        });
    }
    let store = Store::connect(&settings.database_url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    let grpc = tokio::net::TcpListener::bind(settings.grpc_listen)
        .await
        .with_context(|| format!("binding grpc-listen {}", settings.grpc_listen))?;
    let metrics = tokio::net::TcpListener::bind(settings.metrics_listen)
        .await
        .with_context(|| format!("binding metrics-listen {}", settings.metrics_listen))?;
    tracing::info!(
        admin = %grpc.local_addr()?,
        metrics = %metrics.local_addr()?,
        "control plane listening"
    );
    let listeners = switchyard_control_plane::Listeners {
        grpc,
        metrics: Some(metrics),
    };
    switchyard_control_plane::serve(listeners, store, settings.config, crate::shutdown_signal())
        .await?;
    Ok(())
}

pub async fn run_migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let store = Store::connect(&args.database_url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    println!("migrations applied");
    Ok(())
}

/// `guard`, also refusing the gateway's own endpoint at `public_url`.
pub(crate) fn own_guard(
    guard: UpstreamGuard,
    public_url: Option<&url::Url>,
) -> anyhow::Result<UpstreamGuard> {
    let Some(url) = public_url else {
        return Ok(guard);
    };
    if url.host_str().is_none() || !matches!(url.scheme(), "http" | "https") {
        bail!("public-url (SWITCHYARD_PUBLIC_URL) must be an http or https URL with a host");
    }
    Ok(guard.with_own_url(url))
}

#[cfg(test)]
#[path = "control_plane_tests.rs"]
mod tests;

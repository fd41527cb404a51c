//! Configuration of the server roles: flags, their `SWITCHYARD_*` environment twins and an
//! optional TOML file with the same keys, merged (flag > environment > file > default) and
//! validated once at start with errors that name the key.

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use switchyard_common::netguard::UpstreamGuard;
use switchyard_common::seal::{Keyring, SecretKey};
use switchyard_control_plane::{Store, compile::Keys};

#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ControlPlaneArgs {
    /// PostgreSQL URL, e.g. postgres://user:pass@host/db.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// NATS server the compiled policies are published to, e.g. nats://nats:4222.
    #[arg(long, env = "SWITCHYARD_NATS_URL")]
    nats_url: Option<String>,
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
    upstream_allow: Option<Vec<IpNet>>,
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

pub fn parse_key(name: &str, value: &str) -> anyhow::Result<SecretKey> {
    SecretKey::from_base64(value).with_context(|| {
        format!(
            "{name} (SWITCHYARD_{}) is invalid",
            name.to_uppercase().replace('-', "_")
        )
    })
}

/// A validated control-plane configuration.
#[derive(Debug)]
pub struct ControlPlaneSettings {
    pub database_url: String,
    pub nats_url: Option<String>,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub config: switchyard_control_plane::Config,
}

impl ControlPlaneArgs {
    fn merge(self, file: ControlPlaneArgs) -> Self {
        Self {
            database_url: self.database_url.or(file.database_url),
            nats_url: self.nats_url.or(file.nats_url),
            grpc_listen: self.grpc_listen.or(file.grpc_listen),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            master_key: self.master_key.or(file.master_key),
            previous_master_keys: self.previous_master_keys.or(file.previous_master_keys),
            policy_key: self.policy_key.or(file.policy_key),
            bootstrap_token: self.bootstrap_token.or(file.bootstrap_token),
            upstream_allow: self.upstream_allow.or(file.upstream_allow),
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
                upstream_guard: UpstreamGuard::new(args.upstream_allow.unwrap_or_default()),
                bootstrap_token: args.bootstrap_token,
                policy_bus: None,
                usage_bus: None,
                fleet: None,
            },
        })
    }
}

pub async fn run_control_plane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let mut settings = args.validate()?;
    match &settings.nats_url {
        Some(url) => {
            // Keep trying in the background: the publisher retries until NATS answers.
            let client = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(url.as_str())
                .await
                .with_context(|| format!("nats-url {url:?}"))?;
            settings.config.policy_bus = Some(std::sync::Arc::new(switchyard_bus::NatsBus::new(
                client.clone(),
                switchyard_bus::POLICY_BUCKET,
            )));
            settings.config.usage_bus = Some(std::sync::Arc::new(switchyard_bus::NatsUsage::new(
                client.clone(),
            )));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        SecretKey::generate().to_base64().to_string()
    }

    #[test]
    fn file_fills_what_flags_leave_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.toml");
        std::fs::write(
            &path,
            format!(
                "database-url = \"postgres://file/db\"\ngrpc-listen = \"127.0.0.1:6000\"\n\
                 master-key = \"{}\"\npolicy-key = \"{}\"\n",
                key(),
                key()
            ),
        )
        .unwrap();
        let args = ControlPlaneArgs {
            database_url: Some("postgres://flag/db".into()),
            config: Some(path),
            ..Default::default()
        };
        let s = args.validate().unwrap();
        assert_eq!(s.database_url, "postgres://flag/db");
        assert_eq!(s.grpc_listen, "127.0.0.1:6000".parse().unwrap());
    }

    #[test]
    fn unknown_file_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.toml");
        std::fs::write(&path, "databse-url = \"x\"\n").unwrap();
        let err = ControlPlaneArgs {
            config: Some(path),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(format!("{err:#}").contains("databse-url"), "{err:#}");
    }

    #[test]
    fn bad_keys_are_named() {
        let err = ControlPlaneArgs {
            database_url: Some("postgres://x/y".into()),
            master_key: Some("dG9vIHNob3J0".into()),
            policy_key: Some(key()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(format!("{err:#}").contains("master-key"), "{err:#}");
        let err = ControlPlaneArgs {
            database_url: Some("postgres://x/y".into()),
            policy_key: Some(key()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(format!("{err:#}").contains("master-key"), "{err:#}");
    }
}

#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WorkerArgs {
    /// NATS server the compiled policies are read from, e.g. nats://nats:4222.
    #[arg(long, env = "SWITCHYARD_NATS_URL")]
    nats_url: Option<String>,
    /// Address of the tenant-facing MCP endpoint [default: 127.0.0.1:8080].
    #[arg(long, env = "SWITCHYARD_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Address of /healthz, /readyz and /metrics [default: 127.0.0.1:9091].
    #[arg(long, env = "SWITCHYARD_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Key that opens secrets in published policies (the control plane's policy-key).
    #[arg(long, env = "SWITCHYARD_POLICY_KEY", hide_env_values = true)]
    policy_key: Option<String>,
    /// Other policy keys that still open published policies while the key changes,
    /// comma-separated.
    #[arg(
        long,
        env = "SWITCHYARD_PREVIOUS_POLICY_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    previous_policy_keys: Option<Vec<String>>,
    /// Public base URL clients use, e.g. https://mcp.example.com: only its host is accepted
    /// in Host and only its origin in Origin [default: loopback only].
    #[arg(long, env = "SWITCHYARD_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// CIDRs upstreams may resolve to despite the private-range guard, comma-separated.
    #[arg(long, env = "SWITCHYARD_UPSTREAM_ALLOW", value_delimiter = ',')]
    upstream_allow: Option<Vec<IpNet>>,
    /// Names this worker in heartbeats [default: a random id]; e.g. the pod name.
    #[arg(long, env = "SWITCHYARD_WORKER_ID")]
    worker_id: Option<String>,
    /// Requests served at once; beyond it the worker sheds load with 503 [default: 512].
    #[arg(long, env = "SWITCHYARD_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// Seconds a draining worker (SIGTERM) lets requests in flight finish [default: 25].
    #[arg(long, env = "SWITCHYARD_DRAIN_GRACE")]
    drain_grace: Option<u64>,
    /// TOML file with the same keys as these flags.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
}

/// A validated worker configuration.
#[derive(Debug)]
pub struct WorkerSettings {
    pub nats_url: String,
    pub http_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub config: switchyard_worker::Config,
}

impl WorkerArgs {
    pub fn validate(self) -> anyhow::Result<WorkerSettings> {
        let args = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let file: WorkerArgs = toml::from_str(&text)
                    .with_context(|| format!("config file {}", path.display()))?;
                WorkerArgs {
                    nats_url: self.nats_url.or(file.nats_url),
                    http_listen: self.http_listen.or(file.http_listen),
                    metrics_listen: self.metrics_listen.or(file.metrics_listen),
                    policy_key: self.policy_key.or(file.policy_key),
                    previous_policy_keys: self.previous_policy_keys.or(file.previous_policy_keys),
                    public_url: self.public_url.or(file.public_url),
                    upstream_allow: self.upstream_allow.or(file.upstream_allow),
                    worker_id: self.worker_id.or(file.worker_id),
                    max_in_flight: self.max_in_flight.or(file.max_in_flight),
                    drain_grace: self.drain_grace.or(file.drain_grace),
                    config: None,
                }
            }
            None => self,
        };
        let Some(nats_url) = args.nats_url else {
            bail!("nats-url (SWITCHYARD_NATS_URL) is required");
        };
        let Some(policy) = args.policy_key else {
            bail!("policy-key (SWITCHYARD_POLICY_KEY) is required: the control plane's policy key");
        };
        if let Some(url) = &args.public_url
            && (url.host_str().is_none() || !matches!(url.scheme(), "http" | "https"))
        {
            bail!("public-url (SWITCHYARD_PUBLIC_URL) must be an http(s) URL with a host");
        }
        let previous = args
            .previous_policy_keys
            .unwrap_or_default()
            .iter()
            .map(|k| parse_key("previous-policy-keys", k))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut config = switchyard_worker::Config::new(
            Keyring::new(parse_key("policy-key", &policy)?).with_retired(previous),
        );
        config.public_url = args.public_url;
        config.upstream_guard = UpstreamGuard::new(args.upstream_allow.unwrap_or_default());
        if let Some(id) = args.worker_id {
            config.worker_id = id;
        }
        if let Some(n) = args.max_in_flight {
            if n == 0 {
                bail!("max-in-flight (SWITCHYARD_MAX_IN_FLIGHT) must be at least 1");
            }
            config.max_in_flight = n;
        }
        if let Some(secs) = args.drain_grace {
            if secs > 3600 {
                bail!("drain-grace (SWITCHYARD_DRAIN_GRACE) is in seconds and at most 3600");
            }
            config.drain_grace = std::time::Duration::from_secs(secs);
        }
        Ok(WorkerSettings {
            nats_url,
            http_listen: args
                .http_listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            metrics_listen: args
                .metrics_listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9091))),
            config,
        })
    }
}

pub async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let settings = args.validate()?;
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(settings.nats_url.as_str())
        .await
        .with_context(|| format!("nats-url {:?}", settings.nats_url))?;
    let bus = std::sync::Arc::new(switchyard_bus::NatsBus::new(
        client.clone(),
        switchyard_bus::POLICY_BUCKET,
    ));
    // Idle sessions expire after an hour; sessions in use are touched every few minutes.
    let buses = switchyard_worker::Buses {
        policy: bus,
        sessions: std::sync::Arc::new(switchyard_bus::NatsSessions::new(
            client.clone(),
            switchyard_bus::SESSION_BUCKET,
            std::time::Duration::from_secs(3600),
        )),
        usage: std::sync::Arc::new(switchyard_bus::NatsUsage::new(client.clone())),
        fleet: std::sync::Arc::new(switchyard_bus::NatsFleet::new(
            client,
            switchyard_bus::FLEET_BUCKET,
            std::time::Duration::from_secs(15),
        )),
    };
    let http = tokio::net::TcpListener::bind(settings.http_listen)
        .await
        .with_context(|| format!("binding http-listen {}", settings.http_listen))?;
    let metrics = tokio::net::TcpListener::bind(settings.metrics_listen)
        .await
        .with_context(|| format!("binding metrics-listen {}", settings.metrics_listen))?;
    tracing::info!(
        mcp = %http.local_addr()?,
        metrics = %metrics.local_addr()?,
        "worker listening"
    );
    switchyard_worker::run(
        settings.config,
        http,
        metrics,
        buses,
        crate::shutdown_signal(),
    )
    .await?;
    Ok(())
}

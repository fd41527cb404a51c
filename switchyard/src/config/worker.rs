//! The `worker` role's configuration.

use super::parse_key;
use anyhow::{Context as _, bail};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use switchyard_common::netguard::UpstreamGuard;
use switchyard_common::seal::Keyring;

#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WorkerArgs {
    /// NATS server the compiled policies are read from, e.g. nats://nats:4222.
    #[arg(long, env = "SWITCHYARD_NATS_URL")]
    nats_url: Option<String>,
    /// NATS credentials file (.creds) when NATS authenticates with JWTs [default: none].
    #[arg(long, env = "SWITCHYARD_NATS_CREDS")]
    nats_creds: Option<std::path::PathBuf>,
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
    /// Serve only this tenant: an isolated tenant's dedicated worker, whose policy-key is
    /// the key derived for that tenant.
    #[arg(long, env = "SWITCHYARD_ONLY_TENANT")]
    only_tenant: Option<String>,
    /// Requests served at once; beyond it the worker sheds load with 503 [default: 512].
    #[arg(long, env = "SWITCHYARD_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// Client sessions held in memory at once; a request that would bring in another is
    /// refused with 503 and Retry-After [default: 10000].
    #[arg(long, env = "SWITCHYARD_MAX_SESSIONS")]
    max_sessions: Option<usize>,
    /// Seconds a session with no request in flight and no GET stream open stays in memory
    /// before it is parked (restored from its records on its next request), 10 to 3600
    /// [default: 30].
    #[arg(long, env = "SWITCHYARD_SESSION_PARK_AFTER")]
    session_park_after: Option<u64>,
    /// Seconds a draining worker (SIGTERM) lets requests in flight finish [default: 25].
    #[arg(long, env = "SWITCHYARD_DRAIN_GRACE")]
    drain_grace: Option<u64>,
    /// Seconds a client may take to send a request's headers, also the longest a kept-alive
    /// connection waits idle for its next request [default: 10].
    #[arg(long, env = "SWITCHYARD_HEADER_READ_TIMEOUT")]
    header_read_timeout: Option<u64>,
    /// Seconds a client may take to send a request's body [default: 30].
    #[arg(long, env = "SWITCHYARD_BODY_READ_TIMEOUT")]
    body_read_timeout: Option<u64>,
    /// Headers a request may have [default: 64].
    #[arg(long, env = "SWITCHYARD_MAX_HEADERS")]
    max_headers: Option<usize>,
    /// Bytes a request's headers may take, at least 8192 [default: 16384].
    #[arg(long, env = "SWITCHYARD_MAX_HEADER_BYTES")]
    max_header_bytes: Option<usize>,
    /// Connections open at once; beyond it new ones are closed [default: 10000].
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Bytes of one upstream answer (a JSON body or one stream event) read before it is
    /// refused as upstream_too_large, 64 KiB to 256 MiB [default: 4194304].
    #[arg(long, env = "SWITCHYARD_MAX_UPSTREAM_RESPONSE_BYTES")]
    max_upstream_response_bytes: Option<usize>,
    /// Tools (and, each, prompts, resources, templates) one connector may list; a
    /// connector listing more is refused [default: 1000].
    #[arg(long, env = "SWITCHYARD_MAX_LISTED_PER_CONNECTOR")]
    max_listed_per_connector: Option<usize>,
    /// Upstream sessions one tenant's client sessions may hold open on this worker; a
    /// session over it is refused [default: 1000].
    #[arg(long, env = "SWITCHYARD_MAX_UPSTREAM_SESSIONS_PER_TENANT")]
    max_upstream_sessions_per_tenant: Option<usize>,
    /// Proxy every upstream connection goes through, e.g. http://egress:3128 [default: none;
    /// HTTP_PROXY and the like are ignored].
    #[arg(long, env = "SWITCHYARD_EGRESS_PROXY")]
    egress_proxy: Option<url::Url>,
    /// CIDRs of proxies whose X-Forwarded-For is believed, comma-separated [default: none].
    #[arg(long, env = "SWITCHYARD_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Option<Vec<IpNet>>,
    /// TOML file with the same keys as these flags.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
}

/// A validated worker configuration.
#[derive(Debug)]
pub struct WorkerSettings {
    pub nats_url: String,
    pub nats_creds: Option<std::path::PathBuf>,
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
                    nats_creds: self.nats_creds.or(file.nats_creds),
                    http_listen: self.http_listen.or(file.http_listen),
                    metrics_listen: self.metrics_listen.or(file.metrics_listen),
                    policy_key: self.policy_key.or(file.policy_key),
                    previous_policy_keys: self.previous_policy_keys.or(file.previous_policy_keys),
                    public_url: self.public_url.or(file.public_url),
                    upstream_allow: self.upstream_allow.or(file.upstream_allow),
                    worker_id: self.worker_id.or(file.worker_id),
                    only_tenant: self.only_tenant.or(file.only_tenant),
                    max_in_flight: self.max_in_flight.or(file.max_in_flight),
                    max_sessions: self.max_sessions.or(file.max_sessions),
                    session_park_after: self.session_park_after.or(file.session_park_after),
                    drain_grace: self.drain_grace.or(file.drain_grace),
                    header_read_timeout: self.header_read_timeout.or(file.header_read_timeout),
                    body_read_timeout: self.body_read_timeout.or(file.body_read_timeout),
                    max_headers: self.max_headers.or(file.max_headers),
                    max_header_bytes: self.max_header_bytes.or(file.max_header_bytes),
                    max_connections: self.max_connections.or(file.max_connections),
                    max_upstream_response_bytes: self
                        .max_upstream_response_bytes
                        .or(file.max_upstream_response_bytes),
                    max_listed_per_connector: self
                        .max_listed_per_connector
                        .or(file.max_listed_per_connector),
                    max_upstream_sessions_per_tenant: self
                        .max_upstream_sessions_per_tenant
                        .or(file.max_upstream_sessions_per_tenant),
                    trusted_proxies: self.trusted_proxies.or(file.trusted_proxies),
                    egress_proxy: self.egress_proxy.or(file.egress_proxy),
                    config: None,
                }
            }
            None => self,
        };
        let connection_bounds = bounds(&args)?;
        let upstream_bounds = upstream_bounds(&args)?;
        let Some(nats_url) = args.nats_url else {
            bail!("nats-url (SWITCHYARD_NATS_URL) is required");
        };
        let Some(policy) = args.policy_key else {
            bail!("policy-key (SWITCHYARD_POLICY_KEY) is required: the control plane's policy key");
        };
        if let Some(url) = &args.public_url
            && (url.host_str().is_none()
                || !matches!(url.scheme(), "http" | "https")
                || url.path() != "/"
                || url.query().is_some()
                || url.fragment().is_some()
                || url.username() != ""
                || url.password().is_some())
        {
            bail!(
                "public-url (SWITCHYARD_PUBLIC_URL) must be an http(s) origin such as \
                 https://mcp.example.com: tenants' endpoints and their sign-in metadata are \
                 at its root"
            );
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
        config.bounds = connection_bounds;
        config.upstream_bounds = upstream_bounds;
        config.public_url = args.public_url;
        if let Some(p) = &args.egress_proxy
            && !matches!(p.scheme(), "http" | "https" | "socks5" | "socks5h")
        {
            bail!("egress-proxy (SWITCHYARD_EGRESS_PROXY) must be an http, https or socks5 URL");
        }
        config.egress_proxy = args.egress_proxy;
        config.upstream_guard = UpstreamGuard::new(args.upstream_allow.unwrap_or_default());
        if let Some(tenant) = args.only_tenant {
            switchyard_common::TenantSlug::parse(&tenant)
                .map_err(|e| anyhow::anyhow!("only-tenant (SWITCHYARD_ONLY_TENANT): {e}"))?;
            config.only_tenant = Some(tenant);
        }
        if let Some(id) = args.worker_id {
            config.worker_id = id;
        }
        if let Some(n) = args.max_in_flight {
            if n == 0 {
                bail!("max-in-flight (SWITCHYARD_MAX_IN_FLIGHT) must be at least 1");
            }
            config.max_in_flight = n;
        }
        if let Some(n) = args.max_sessions {
            if n == 0 {
                bail!("max-sessions (SWITCHYARD_MAX_SESSIONS) must be at least 1");
            }
            config.max_sessions = n;
        }
        if let Some(secs) = args.session_park_after {
            if !(10..=3600).contains(&secs) {
                bail!(
                    "session-park-after (SWITCHYARD_SESSION_PARK_AFTER) is in seconds, 10 (how \
                     long answers are kept for a client to resume) to 3600"
                );
            }
            config.session_park_after = std::time::Duration::from_secs(secs);
        }
        if let Some(secs) = args.drain_grace {
            if secs > 3600 {
                bail!("drain-grace (SWITCHYARD_DRAIN_GRACE) is in seconds and at most 3600");
            }
            config.drain_grace = std::time::Duration::from_secs(secs);
        }
        Ok(WorkerSettings {
            nats_url,
            nats_creds: args.nats_creds,
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
    let only = settings.config.only_tenant.as_deref();
    let client = super::connect_nats(
        &settings.nats_url,
        settings.nats_creds.as_deref(),
        "nats-creds (SWITCHYARD_NATS_CREDS)",
        only.map(switchyard_bus::inbox_prefix),
    )
    .await?;
    let buckets = switchyard_bus::Buckets::default();
    let buses = match &settings.config.only_tenant {
        Some(tenant) => switchyard_bus::Buses::nats_for_tenant(client, &buckets, tenant),
        None => switchyard_bus::Buses::nats(client, &buckets),
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

/// The connection bounds, each checked against a sane range.
fn bounds(args: &WorkerArgs) -> anyhow::Result<switchyard_worker::Bounds> {
    let mut b = switchyard_worker::Bounds::default();
    let secs = |name: &str, v: Option<u64>, default: std::time::Duration| match v {
        Some(s) if (1..=3600).contains(&s) => Ok(std::time::Duration::from_secs(s)),
        Some(_) => bail!("{name} is in seconds, 1 to 3600"),
        None => Ok(default),
    };
    b.header_read_timeout = secs(
        "header-read-timeout (SWITCHYARD_HEADER_READ_TIMEOUT)",
        args.header_read_timeout,
        b.header_read_timeout,
    )?;
    b.body_read_timeout = secs(
        "body-read-timeout (SWITCHYARD_BODY_READ_TIMEOUT)",
        args.body_read_timeout,
        b.body_read_timeout,
    )?;
    if let Some(n) = args.max_headers {
        if !(8..=1000).contains(&n) {
            bail!("max-headers (SWITCHYARD_MAX_HEADERS) must be 8 to 1000");
        }
        b.max_headers = n;
    }
    if let Some(n) = args.max_header_bytes {
        if !(8192..=1024 * 1024).contains(&n) {
            bail!("max-header-bytes (SWITCHYARD_MAX_HEADER_BYTES) must be 8192 to 1048576");
        }
        b.max_header_bytes = n;
    }
    if let Some(n) = args.max_connections {
        if n == 0 {
            bail!("max-connections (SWITCHYARD_MAX_CONNECTIONS) must be at least 1");
        }
        b.max_connections = n;
    }
    b.trusted_proxies = args.trusted_proxies.clone().unwrap_or_default();
    Ok(b)
}

/// The bounds on what upstreams send back, each checked against a sane range.
fn upstream_bounds(args: &WorkerArgs) -> anyhow::Result<switchyard_worker::UpstreamBounds> {
    let mut b = switchyard_worker::UpstreamBounds::default();
    if let Some(n) = args.max_upstream_response_bytes {
        if !(64 * 1024..=256 * 1024 * 1024).contains(&n) {
            bail!(
                "max-upstream-response-bytes (SWITCHYARD_MAX_UPSTREAM_RESPONSE_BYTES) must be \
                 65536 to 268435456"
            );
        }
        b.max_response_bytes = n;
    }
    if let Some(n) = args.max_listed_per_connector {
        if !(1..=100_000).contains(&n) {
            bail!(
                "max-listed-per-connector (SWITCHYARD_MAX_LISTED_PER_CONNECTOR) must be 1 to 100000"
            );
        }
        b.max_listed = n;
    }
    if let Some(n) = args.max_upstream_sessions_per_tenant {
        if !(1..=1_000_000).contains(&n) {
            bail!(
                "max-upstream-sessions-per-tenant (SWITCHYARD_MAX_UPSTREAM_SESSIONS_PER_TENANT) \
                 must be 1 to 1000000"
            );
        }
        b.max_sessions_per_tenant = n;
    }
    Ok(b)
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;

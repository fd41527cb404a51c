//! The Switchyard worker: follows tenant policies on the policy bus and serves each
//! tenant's MCP endpoint at `/t/{tenant}/mcp`, aggregating the tools, resources and prompts
//! of the tenant's connectors. Stateless: any worker serves any tenant.

pub mod auth;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod names;
pub mod policy;
pub mod sessions;
pub mod upstream;

use std::sync::Arc;
use switchyard_bus::{PolicyBus, SessionKv};
use switchyard_common::netguard::UpstreamGuard;
use switchyard_common::seal::Keyring;
use tokio::net::TcpListener;

/// What a worker needs besides its listeners and bus, validated at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Opens connector secrets in published policies.
    pub policy_keys: Keyring,
    /// The public base URL (e.g. `https://mcp.example.com`): its host is the only `Host`
    /// accepted and its origin the only browser `Origin`. `None` accepts loopback hosts only.
    pub public_url: Option<url::Url>,
    /// Upstream ranges allowed despite the private-range guard.
    pub upstream_guard: UpstreamGuard,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

impl Config {
    pub fn new(policy_keys: Keyring) -> Self {
        Self {
            policy_keys,
            public_url: None,
            upstream_guard: UpstreamGuard::default(),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Runs a worker until `shutdown` resolves: the MCP endpoint on `http`, health and metrics
/// on `metrics`, policies followed on `bus`, sessions shared through `sessions`.
pub async fn run(
    config: Config,
    http: TcpListener,
    metrics: TcpListener,
    bus: Arc<dyn PolicyBus>,
    sessions: Arc<dyn SessionKv>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let policies = Arc::new(policy::Policies::new(config.policy_keys.clone()));
    let metrics_state = Arc::new(metrics::Metrics::new(policies.clone(), bus.clone()));
    let follower = tokio::spawn(policy::follow(bus, policies.clone(), cancel.clone()));
    let sessions = Arc::new(sessions::Sessions::new(sessions));
    let app = http::App::new(
        &config,
        policies,
        sessions,
        metrics_state.clone(),
        cancel.clone(),
    )?;
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });
    let metrics_server = tokio::spawn(http::serve_metrics(metrics, metrics_state, cancel.clone()));
    let served = http::serve(http, app, cancel.clone()).await;
    cancel.cancel();
    follower.abort();
    metrics_server.await.ok();
    served
}

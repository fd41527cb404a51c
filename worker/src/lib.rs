//! The Switchyard worker: follows tenant policies on the policy bus and serves each
//! tenant's MCP endpoint at `/t/{tenant}/mcp`, aggregating the tools, resources and prompts
//! of the tenant's connectors. Stateless: any worker serves any tenant.

pub mod auth;
pub mod exchange;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod names;
pub mod policy;
pub mod relay;
pub mod resume;
pub mod sessions;
pub mod upstream;
pub mod usage;

use std::sync::Arc;
use switchyard_bus::{Fleet, Heartbeat, PolicyBus, SessionKv, UsageBus};
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
    /// Names this worker in heartbeats (e.g. the pod name).
    pub worker_id: String,
}

impl Config {
    pub fn new(policy_keys: Keyring) -> Self {
        Self {
            policy_keys,
            public_url: None,
            upstream_guard: UpstreamGuard::default(),
            max_body_bytes: 4 * 1024 * 1024,
            worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

/// What a worker shares with the rest of the platform (NATS in production).
#[derive(Debug, Clone)]
pub struct Buses {
    /// Compiled tenant policies, followed.
    pub policy: Arc<dyn PolicyBus>,
    /// Session records shared by all workers.
    pub sessions: Arc<dyn SessionKv>,
    /// Usage events for the control plane.
    pub usage: Arc<dyn UsageBus>,
    /// Heartbeats of the live workers.
    pub fleet: Arc<dyn Fleet>,
}

const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes this worker's heartbeat every few seconds until cancelled.
async fn heartbeats(
    id: String,
    fleet: Arc<dyn Fleet>,
    policies: Arc<policy::Policies>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let started_ms = now_ms();
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let beat = Heartbeat {
            worker: id.clone(),
            started_ms,
            at_ms: now_ms(),
            ready: policies.is_ready(),
            tenants: policies.tenant_count() as u64,
            policy_revision: policies.max_revision(),
        };
        if let Err(e) = fleet.beat(&beat).await {
            tracing::debug!(error = %e, "heartbeat not written");
        }
    }
}

/// Runs a worker until `shutdown` resolves: the MCP endpoint on `http`, health and metrics
/// on `metrics`.
pub async fn run(
    config: Config,
    http: TcpListener,
    metrics: TcpListener,
    buses: Buses,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let policies = Arc::new(policy::Policies::new(config.policy_keys.clone()));
    let metrics_state = Arc::new(metrics::Metrics::new(
        policies.clone(),
        buses.policy.clone(),
    ));
    let follower = tokio::spawn(policy::follow(
        buses.policy,
        policies.clone(),
        cancel.clone(),
    ));
    let reporter = usage::Reporter::start(buses.usage, metrics_state.usage_dropped.clone());
    let beating = tokio::spawn(heartbeats(
        config.worker_id.clone(),
        buses.fleet,
        policies.clone(),
        cancel.clone(),
    ));
    let sessions = Arc::new(sessions::Sessions::new(buses.sessions));
    let app = http::App::new(
        &config,
        policies,
        sessions,
        reporter,
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
    beating.abort();
    metrics_server.await.ok();
    served
}

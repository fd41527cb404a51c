//! The Switchyard worker: follows tenant policies on the policy bus and serves each
//! tenant's MCP endpoint at `/t/{tenant}/mcp`, aggregating the tools, resources and prompts
//! of the tenant's connectors. Stateless: any worker serves any tenant.

#![warn(clippy::too_many_lines)]

pub mod access;
pub mod auth;
pub mod call_headers;
pub mod conns;
pub mod direct;
pub mod egress;
pub mod error;
pub mod exchange;
pub mod handler;
pub mod http;
pub mod latency;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod oauth;
pub mod ordered;
pub mod parking;
pub mod pins;
pub mod policy;
pub mod principal;
pub mod redact;
pub mod refusals;
pub mod relay;
pub mod releasing;
pub mod reports;
pub mod resilience;
pub mod resume;
pub mod route;
pub mod sessions;
pub mod sync;
pub mod traced;
pub mod upstream;

#[cfg(test)]
mod proptests;

use std::sync::Arc;
use switchyard_bus::{Fleet, Heartbeat};
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
    /// The proxy every upstream connection goes through, if the operator wants one
    /// (proxy settings in the environment are ignored).
    pub egress_proxy: Option<url::Url>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Names this worker in heartbeats (e.g. the pod name).
    pub worker_id: String,
    /// Requests this worker serves at once; beyond it, it sheds load (503).
    pub max_in_flight: usize,
    /// How long a draining worker (SIGTERM) lets requests in flight finish.
    pub drain_grace: std::time::Duration,
    /// How long rmcp keeps a session without events in memory whatever is open on it
    /// (it can be restored later).
    pub session_idle: std::time::Duration,
    /// How long a session with no request in flight stays in memory before it is parked
    /// (see `parking`); at least how long answers are kept for clients to resume
    /// (`http::ANSWERED_KEPT_FOR`, 10 s), so a parked session has none to replay.
    pub session_park_after: std::time::Duration,
    /// Sessions this worker holds in memory at most; a request that would bring in
    /// another is refused (503, `Retry-After`), so clients land on another worker.
    pub max_sessions: usize,
    /// How often this worker writes its heartbeat; the fleet bucket's entries should live
    /// about three times as long.
    pub heartbeat_every: std::time::Duration,
    /// How often refusal tallies are reported (see `refusals`).
    pub refusal_tally_every: std::time::Duration,
    /// Events each reporter queues at most while NATS is away or slow (see `reports`).
    pub report_queue: usize,
    /// Serve this tenant only (an isolated tenant's dedicated worker); its `policy_keys` are
    /// that tenant's own.
    pub only_tenant: Option<String>,
    /// Limits on the tenant-facing connections.
    pub bounds: http::Bounds,
    /// Limits on what upstreams send back.
    pub upstream_bounds: upstream::UpstreamBounds,
}

impl Config {
    pub fn new(policy_keys: Keyring) -> Self {
        Self {
            policy_keys,
            public_url: None,
            upstream_guard: UpstreamGuard::default(),
            egress_proxy: None,
            max_body_bytes: 4 * 1024 * 1024,
            worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            max_in_flight: 512,
            drain_grace: std::time::Duration::from_secs(25),
            session_idle: std::time::Duration::from_secs(300),
            session_park_after: DEFAULT_PARK_AFTER,
            max_sessions: DEFAULT_MAX_SESSIONS,
            heartbeat_every: std::time::Duration::from_secs(5),
            refusal_tally_every: refusals::INTERVAL,
            report_queue: reports::QUEUE,
            only_tenant: None,
            bounds: http::Bounds::default(),
            upstream_bounds: upstream::UpstreamBounds::default(),
        }
    }
}

impl Config {
    /// The configured upstream guard, also refusing this gateway's own public endpoint.
    pub fn guard(&self) -> UpstreamGuard {
        let guard = self.upstream_guard.clone();
        match &self.public_url {
            Some(url) => guard.with_own_url(url),
            None => guard,
        }
    }
}

pub use http::Bounds;
pub use switchyard_bus::{Buckets, Buses};
pub use upstream::UpstreamBounds;

/// Makes the authorization server's buckets in the background: shared workers do, so that
/// dedicated workers, which may use them but not make them, find them.
fn open_grant_stores(grants: switchyard_bus::GrantStores) {
    tokio::spawn(async move {
        if let Err(e) = grants.open().await {
            tracing::warn!(error = %e, "the authorization server's stores are not ready");
        }
    });
}

/// How long a session with nothing in use stays in memory by default.
pub const DEFAULT_PARK_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
/// Sessions a worker holds in memory at most by default: about 1.1 GiB of live sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// How often a worker reads the fleet to re-share tenant limits.
const FLEET_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes this worker's heartbeat every few seconds, and reads the others' to share tenant
/// limits with them, until cancelled.
#[allow(clippy::too_many_arguments)]
async fn fleet_loop(
    id: String,
    only_tenant: Option<String>,
    heartbeat_every: std::time::Duration,
    fleet: Arc<dyn Fleet>,
    policies: Arc<policy::Policies>,
    app: Arc<http::App>,
    metrics: Arc<metrics::Metrics>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let started_ms = now_ms();
    let mut beat_tick = tokio::time::interval(heartbeat_every);
    let mut read_tick = tokio::time::interval(FLEET_EVERY);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = beat_tick.tick() => {
                let beat = Heartbeat {
                    worker: id.clone(),
                    started_ms,
                    at_ms: now_ms(),
                    ready: metrics.is_ready(),
                    tenants: policies.tenant_count() as u64,
                    policy_revision: policies.max_revision(),
                    sessions: app.admission.sessions_here().into_iter().collect(),
                    breakers: app.breaker_reports(),
                    only_tenant: only_tenant.clone(),
                };
                if let Err(e) = fleet.beat(&beat).await {
                    tracing::debug!(error = %e, "heartbeat not written");
                }
            }
            _ = read_tick.tick() => {
                app.sweep().await;
                match fleet.members().await {
                    Ok(members) => {
                        // Workers that serve with this one: ready ones of the same pool (the
                        // shared fleet, or one tenant's dedicated workers), this one
                        // included while it is.
                        let mut size = members
                            .iter()
                            .filter(|m| m.ready && m.worker != id && m.only_tenant == only_tenant)
                            .count();
                        if metrics.is_ready() {
                            size += 1;
                        }
                        let mut elsewhere = std::collections::HashMap::<String, u64>::new();
                        for m in members.iter().filter(|m| m.worker != id) {
                            for (tenant, n) in &m.sessions {
                                *elsewhere.entry(tenant.clone()).or_default() += n;
                            }
                        }
                        app.admission.set_fleet(size.max(1), elsewhere);
                        metrics.fleet_size.set(size.max(1) as i64);
                    }
                    // Partitioned from NATS: keep sharing as last known.
                    Err(e) => tracing::debug!(error = %e, "fleet not readable"),
                }
                metrics.in_flight.set(app.in_flight() as i64);
            }
        }
    }
}

/// Applies every policy change to what the worker holds (see `access`) until cancelled.
async fn enforce_loop(
    mut changes: tokio::sync::broadcast::Receiver<String>,
    app: Arc<http::App>,
    cancel: tokio_util::sync::CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let change = tokio::select! {
            () = cancel.cancelled() => return,
            c = changes.recv() => c,
        };
        match change {
            Ok(slug) => app.enforce(&slug).await,
            Err(RecvError::Lagged(_)) => app.enforce_all().await,
            Err(RecvError::Closed) => return,
        }
    }
}

/// Runs a worker until `shutdown` resolves, then drains: it stops being ready and takes no
/// new work at once, lets requests in flight finish for up to `config.drain_grace`, then
/// closes streams and sessions and returns. The MCP endpoint is served on `http`, health
/// and metrics on `metrics`.
pub async fn run(
    config: Config,
    http: TcpListener,
    metrics: TcpListener,
    buses: Buses,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let policies = Arc::new(policy::Policies::only(
        config.policy_keys.clone(),
        config.only_tenant.clone(),
    ));
    let metrics_state = Arc::new(metrics::Metrics::new(
        policies.clone(),
        buses.policy.clone(),
    ));
    let changes = policies.changes();
    let (reporter, tallying) = reports::Reports::start(&buses, &metrics_state, &config, &cancel);
    let follower = tokio::spawn(policy::follow(
        buses.policy,
        policies.clone(),
        cancel.clone(),
    ));
    let sessions = Arc::new(sessions::SessionRecords::new(buses.sessions));
    if config.only_tenant.is_none() {
        open_grant_stores(buses.grants.clone());
    }
    let app = http::App::new(
        &config,
        policies.clone(),
        &buses.grants,
        sessions,
        reporter.clone(),
        metrics_state.clone(),
        cancel.clone(),
    )?;
    let enforcing = tokio::spawn(enforce_loop(changes, app.clone(), cancel.clone()));
    let beating = tokio::spawn(fleet_loop(
        config.worker_id.clone(),
        config.only_tenant.clone(),
        config.heartbeat_every,
        buses.fleet,
        policies,
        app.clone(),
        metrics_state.clone(),
        cancel.clone(),
    ));
    let stop = cancel.clone();
    let draining = (app.clone(), metrics_state.clone(), config.drain_grace);
    tokio::spawn(async move {
        shutdown.await;
        let (app, metrics, grace) = draining;
        metrics
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        tracing::info!(in_flight = app.in_flight(), "draining");
        while app.in_flight() > 0 && started.elapsed() < grace {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if !reporter.flush(std::time::Duration::from_secs(2)).await {
            tracing::warn!(
                "usage events, tool sightings and refusal tallies not yet published are lost with this worker"
            );
        }
        tracing::info!(
            left = app.in_flight(),
            after_ms = started.elapsed().as_millis() as u64,
            "drained; closing streams and stopping"
        );
        stop.cancel();
    });
    let metrics_server = tokio::spawn(http::serve_metrics(metrics, metrics_state, cancel.clone()));
    let served = http::serve(http, app, cancel.clone()).await;
    cancel.cancel();
    follower.abort();
    enforcing.abort();
    beating.abort();
    tallying.abort();
    metrics_server.await.ok();
    served
}

//! Connections to tenants' upstream MCP servers, made with rmcp's Streamable HTTP client
//! (either protocol era). Each client session gets its own upstream sessions, so no client
//! sees another's notifications or server requests; requests without a session (MCP
//! 2026-07-28) borrow an upstream session from a small per-connector pool for the length
//! of the request. HTTP connections are shared by all of them. Every connection is checked
//! against the private-range guard, including each address a host name resolves to (a DNS
//! answer cannot point a connector into the platform's network). The connector's own
//! headers are sent; the client's credential never is.

use crate::conns::{Conns, Origin};
use crate::direct::Direct;
use crate::policy::Connector;
use crate::relay::{Diverted, Recipient, Relay, RelayHandler};
use crate::resume::{MayEnd, OnSession, SessionClient, Takeover, always_end, or_ending};
use crate::route::Router;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt as _, Peer, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_common::netguard::UpstreamGuard;

/// Idle pooled sessions kept per tenant x connector. A pooled session serves one request
/// at a time, so a tenant with more calls in flight than this on one connector opens and
/// ends an upstream session per call beyond it; how many are in flight at once is bounded
/// by the tenant's concurrency quota.
const POOL_IDLE_MAX: usize = 64;
/// How long a pooled session may sit unused before it is closed.
const POOL_IDLE_FOR: Duration = Duration::from_secs(120);

/// What an upstream may send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamBounds {
    /// Largest answer (a JSON body, or one event of a stream) read from an upstream.
    pub max_response_bytes: usize,
    /// Most tools, prompts, resources or templates one connector may list.
    pub max_listed: usize,
    /// Most resource subscriptions one client session may hold on one connector (each is
    /// remembered, to renew it on a new upstream session).
    pub max_subscriptions: usize,
    /// Most upstream sessions client sessions of one tenant hold open on this worker.
    pub max_sessions_per_tenant: usize,
}

impl Default for UpstreamBounds {
    fn default() -> Self {
        Self {
            max_response_bytes: 4 * 1024 * 1024,
            max_listed: 1000,
            max_subscriptions: 1000,
            max_sessions_per_tenant: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0} is in a private range this worker may not reach (see --upstream-allow)")]
    Forbidden(String),
    #[error("did not answer within {0} ms")]
    Timeout(u64),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("failed {0}")]
    Protocol(String),
    /// The connector points at this gateway's own public endpoint.
    #[error("it points at this gateway's own endpoint")]
    OwnEndpoint,
    /// It sent more than this worker's bounds allow (says which bound; no address).
    #[error("{0}")]
    Bound(String),
}

impl UpstreamError {
    /// What a client is told: what happened, without transport details (which may name the
    /// connector's address); those go to the worker's log.
    pub fn public(&self) -> String {
        match self {
            Self::Forbidden(_) => "its address is in a range this worker may not reach".into(),
            Self::Timeout(ms) => format!("it did not answer within {ms} ms"),
            Self::Connect(_) => "it could not be reached".into(),
            Self::Protocol(_) => "it did not answer as MCP expects".into(),
            Self::Bound(what) => what.clone(),
            Self::OwnEndpoint => self.to_string(),
        }
    }
}

/// One upstream session.
#[derive(Debug)]
pub struct Session {
    client: RunningService<RoleClient, RelayHandler>,
    pub relay: Arc<Relay>,
    /// The connector configuration it was made for.
    pub fingerprint: u64,
    /// The session id the upstream assigned (none for 2026-07-28 upstreams).
    pub assigned: Arc<Mutex<Option<String>>>,
    /// Set after a transport failure: the session is not reused.
    broken: std::sync::atomic::AtomicBool,
    /// Set when the session is ended on purpose: the upstream is told (DELETE).
    ending: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the upstream sent an event over the size bound.
    oversized: Arc<std::sync::atomic::AtomicBool>,
    /// Its HTTP side, for calls sent without rmcp's client service (shared by the calls
    /// in flight on it, not copied for each).
    pub direct: Arc<Direct>,
}

/// How a client session's upstream session starts and ends.
pub struct Hooks {
    /// Take over this upstream session instead of opening one.
    pub takeover: Option<Takeover>,
    /// Whether the upstream session may be ended when this one is dropped.
    pub may_end: MayEnd,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("takeover", &self.takeover.is_some())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.client.peer()
    }

    /// Whether the session can no longer be used (closed, failed in transport, or sent
    /// more than the bound).
    pub fn is_closed(&self) -> bool {
        self.client.is_transport_closed()
            || self.broken.load(std::sync::atomic::Ordering::Relaxed)
            || self.sent_too_much()
    }

    /// Ends the session now and tells the upstream so (its connector is gone, or its
    /// client lost access).
    pub fn end(&self) {
        self.ending
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.client.cancellation_token().cancel();
    }

    /// Whether the upstream sent an event over the size bound on this session.
    pub fn sent_too_much(&self) -> bool {
        self.oversized.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the session as failed in transport: the next request opens another.
    pub fn mark_broken(&self) {
        self.broken
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the upstream answered at `initialize` (or discovery).
    pub fn server_info(&self) -> Option<serde_json::Value> {
        self.client
            .peer_info()
            .and_then(|i| serde_json::to_value(i).ok())
    }

    /// Whether the upstream declared logging support.
    pub fn logs(&self) -> bool {
        self.client
            .peer_info()
            .is_some_and(|i| i.capabilities.logging.is_some())
    }
}

/// A pooled session borrowed for one request; it goes back to the pool when dropped.
#[derive(Debug)]
pub struct Lease {
    session: Option<Arc<Session>>,
    home: Arc<Pool>,
}

impl Lease {
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.as_ref()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            session.relay.set_owner(None);
            self.home.give_back(session);
        }
    }
}

#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<Vec<(Arc<Session>, Instant)>>,
}

impl Pool {
    fn take(&self, fingerprint: u64) -> Option<Arc<Session>> {
        let mut idle = crate::sync::lock(&self.idle);
        idle.retain(|(s, at)| {
            s.fingerprint == fingerprint && !s.is_closed() && at.elapsed() < POOL_IDLE_FOR
        });
        idle.pop().map(|(s, _)| s)
    }

    fn give_back(&self, session: Arc<Session>) {
        if session.is_closed() {
            return;
        }
        let mut idle = crate::sync::lock(&self.idle);
        if idle.len() < POOL_IDLE_MAX {
            idle.push((session, Instant::now()));
        }
    }
}

#[derive(Debug)]
pub struct Upstreams {
    http: reqwest::Client,
    /// TLS of the connections calls are sent on (see `conns`); `None` when a proxy carries
    /// upstream connections.
    tls: Option<Arc<rustls::ClientConfig>>,
    pub bounds: UpstreamBounds,
    guard: UpstreamGuard,
    diverted: Diverted,
    pools: Mutex<HashMap<(String, String), Arc<Pool>>>,
}

/// The client capabilities offered upstream: those of the client being served.
pub fn client_info(capabilities: ClientCapabilities) -> ClientConfig {
    ClientConfig::new(
        capabilities,
        Implementation::new("switchyard", env!("CARGO_PKG_VERSION")),
    )
}

impl Upstreams {
    /// Upstream sessions whose unsolicited traffic reaches no client count it in `diverted`.
    /// Proxy settings in the environment are ignored: a proxy would resolve and reach
    /// names the guard never saw. `proxy`, when an operator configures one, carries every
    /// upstream connection; literal addresses are still checked, names are the proxy's to
    /// police.
    pub fn new(
        guard: UpstreamGuard,
        proxy: Option<&url::Url>,
        diverted: Diverted,
        bounds: UpstreamBounds,
    ) -> Result<Self, UpstreamError> {
        // reqwest's TLS needs a process-wide provider; one installed already stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().no_proxy();
        if let Some(p) = proxy {
            let p = reqwest::Proxy::all(p.as_str())
                .map_err(|e| UpstreamError::Connect(format!("egress proxy: {e}")))?;
            builder = builder.proxy(p);
        }
        let http = builder
            .dns_resolver(Arc::new(crate::egress::GuardedResolver(guard.clone())))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        // A proxy carries every connection, so none is made here.
        let tls = match proxy {
            Some(_) => None,
            None => Some(crate::conns::tls_config().map_err(UpstreamError::Connect)?),
        };
        Ok(Self {
            http,
            tls,
            bounds,
            guard,
            diverted,
            pools: Mutex::default(),
        })
    }

    /// How calls reach a new upstream session rmcp's client reaches through `http` with
    /// `config`: on connections of its own, unless a proxy carries them or the URL carries
    /// credentials (which only `http` sends).
    fn direct(
        &self,
        http: SessionClient,
        config: &StreamableHttpClientTransportConfig,
        info: &ClientConfig,
    ) -> Direct {
        let conns = self.tls.clone().and_then(|tls| {
            let origin = Origin::parse(&config.uri).ok()?;
            Some(Conns::new(origin, self.guard.clone(), tls))
        });
        Direct::new(http, config, info, self.bounds.max_response_bytes, conns)
    }

    fn pool(&self, tenant: &str, connector: &str) -> Arc<Pool> {
        let key = (tenant.to_owned(), connector.to_owned());
        crate::sync::lock(&self.pools)
            .entry(key)
            .or_default()
            .clone()
    }

    /// Borrows a session of `c` for one request whose unsolicited traffic goes to `owner`.
    pub async fn lease(
        &self,
        tenant: &str,
        c: &Connector,
        owner: Option<Recipient>,
    ) -> Result<Lease, UpstreamError> {
        let pool = self.pool(tenant, &c.name);
        let session = match pool.take(c.fingerprint) {
            Some(s) => s,
            None => {
                // A pooled session serves requests whose clients answer server requests
                // through input-required results, whatever they are.
                let caps = serde_json::from_value(serde_json::json!({
                    "sampling": {}, "elicitation": {}, "roots": {}
                }))
                .unwrap_or_default();
                Arc::new(self.connect(c, client_info(caps), None).await?)
            }
        };
        session.relay.set_owner(owner);
        Ok(Lease {
            session: Some(session),
            home: pool,
        })
    }

    /// Closes pooled sessions idle for too long, and drops the pools of tenants or
    /// connectors `keep` says are gone.
    pub fn sweep(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut pools = crate::sync::lock(&self.pools);
        pools.retain(|(t, c), _| keep(t, c));
        for pool in pools.values() {
            crate::sync::lock(&pool.idle)
                .retain(|(s, at)| !s.is_closed() && at.elapsed() < POOL_IDLE_FOR);
        }
    }

    /// Refuses a connector URL that points at this gateway, or whose host is a literal
    /// address in a guarded range (names are checked when they resolve).
    fn check_address(&self, raw: &str) -> Result<(), UpstreamError> {
        crate::egress::check_address(&self.guard, raw)
    }

    /// Opens (or takes over) an upstream session for `c`, presenting `info` (the
    /// capabilities of the client it serves); `hooks` when that client is a session
    /// client, whose upstream session other workers may carry on.
    pub async fn connect(
        &self,
        c: &Connector,
        info: ClientConfig,
        hooks: Option<Hooks>,
    ) -> Result<Session, UpstreamError> {
        let session_era = hooks.is_some();
        let (mut takeover, may_end) = match hooks {
            Some(h) => (h.takeover, h.may_end),
            None => (None, always_end()),
        };
        let ending = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let may_end = or_ending(may_end, ending.clone());
        let assigned: Arc<Mutex<Option<String>>> = Arc::default();
        let on_session: OnSession = {
            let assigned = assigned.clone();
            Arc::new(move |id| *crate::sync::lock(&assigned) = Some(id))
        };
        if let Some(t) = &takeover {
            *crate::sync::lock(&assigned) = Some(t.session_id.clone());
        }
        self.check_address(&c.url)?;
        let config = transport_config(c, self.bounds.max_response_bytes);
        // A session client's upstream session speaks the session era too, so the upstream
        // may send it requests; requests without a session go out as 2026-07-28. Either way
        // an upstream that knows only the other era is spoken to in that one.
        let modern = ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: None,
        };
        let lifecycles = if session_era {
            [ClientLifecycleMode::Initialize, modern]
        } else {
            [modern, ClientLifecycleMode::Initialize]
        };
        let started = Instant::now();
        let oversized = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut last = UpstreamError::Connect("no attempt".into());
        for lifecycle in lifecycles {
            let Some(left) = c.timeout.checked_sub(started.elapsed()) else {
                break;
            };
            let relay = Arc::new(Relay::new(self.diverted.clone()));
            let router = Router {
                owner: relay.unsolicited(),
                diverted: self.diverted.clone(),
                oversized: oversized.clone(),
            };
            let http = SessionClient::new(
                self.http.clone(),
                takeover.take(),
                on_session.clone(),
                may_end.clone(),
                router,
            );
            let direct = self.direct(http.clone(), &config, &info);
            let transport = StreamableHttpClientTransport::with_client(http, config.clone());
            let handler = RelayHandler {
                relay: relay.clone(),
                info: info.clone(),
            };
            // A task of its own: the session's tasks outlive the call that opens it, and
            // must not keep the call's span open (see `traced`).
            let opening = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                handler.serve_with_lifecycle(transport, lifecycle),
            ));
            match tokio::time::timeout(left, opening).await {
                Err(_) => return Err(UpstreamError::Timeout(c.timeout.as_millis() as u64)),
                Ok(Err(e)) => last = UpstreamError::Connect(e.to_string()),
                Ok(Ok(Err(e))) => last = UpstreamError::Connect(e.to_string()),
                Ok(Ok(Ok(client))) => {
                    return Ok(Session {
                        client,
                        relay,
                        fingerprint: c.fingerprint,
                        assigned,
                        broken: Default::default(),
                        ending,
                        oversized,
                        direct: Arc::new(direct),
                    });
                }
            }
        }
        Err(last)
    }
}

/// How rmcp's client reaches `c`: its URL and headers, answers bounded to `bound` bytes.
fn transport_config(c: &Connector, bound: usize) -> StreamableHttpClientTransportConfig {
    let headers = c
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<HashMap<_, _>>();
    StreamableHttpClientTransportConfig::with_uri(c.url.clone())
        .custom_headers(headers)
        .max_json_response_size(bound)
        .max_sse_event_size(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(guard: UpstreamGuard) -> Upstreams {
        let diverted = Diverted(Default::default());
        Upstreams::new(guard, None, diverted, UpstreamBounds::default()).unwrap()
    }

    #[test]
    fn the_gateways_own_endpoint_is_never_connected_to() {
        let loopback = vec!["127.0.0.0/8".parse().unwrap()];
        let guard = UpstreamGuard::new(loopback).with_own_host("127.0.0.1", 8080);
        let u = upstreams(guard);
        assert!(matches!(
            u.check_address("http://127.0.0.1:8080/t/acme/mcp"),
            Err(UpstreamError::OwnEndpoint)
        ));
        assert!(u.check_address("http://127.0.0.1:9000/mcp").is_ok());
        let named = upstreams(UpstreamGuard::default().with_own_host("mcp.example.com", 443));
        assert!(matches!(
            named.check_address("http://MCP.example.com:8443/t/acme/mcp"),
            Err(UpstreamError::OwnEndpoint)
        ));
        assert!(named.check_address("https://api.example.com/mcp").is_ok());
    }
}

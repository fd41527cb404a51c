//! The worker's HTTP surface. The tenant-facing listener serves `/t/{tenant}/mcp`: the
//! steps in `gate` (serving, authentication, hand-over, session binding, body) and
//! `admit` (the limits) run in that order in `mcp`, each refusing with its `Error`, which
//! alone decides the answer (`Error::response`) and the metric it counts in; then rmcp's
//! Streamable HTTP service takes over (both protocol eras, Host and Origin checks). The
//! metrics listener (`probes`) serves `/healthz`, `/readyz` and `/metrics`, never on the
//! tenant-facing port.

mod admit;
mod detached;
mod discovery;
mod enforce;
mod envelope;
mod for_oauth;
mod forward;
pub(crate) mod gate;
mod inline;
mod probes;
mod quiet;
mod refused;
mod residency;
mod rmcp_config;
mod serve;
mod stateless;

pub use discovery::{Endpoint, readable_anywhere};
pub use probes::serve_metrics;
pub use serve::{Bounds, Peer, serve};

use crate::Config;
use crate::auth::Authenticator;
use crate::error::Error;
use crate::handler::Gateway;
use crate::limits::Admission;
use crate::metrics::{Metrics, StatusLabel};
use crate::ordered::OrderedSessions;
use crate::parking::Kind;
use crate::policy::Policies;
use crate::sessions::SessionRecords;
use crate::upstream::Upstreams;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::any;
use gate::SessionCheck;
use http::Request;
use refused::{Refused, Seen, count};
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const SESSION_HEADER: &str = "mcp-session-id";

pub struct App {
    policies: Arc<Policies>,
    auth: Authenticator,
    mcp: StreamableHttpService<Gateway, OrderedSessions<LocalSessionManager>>,
    local_sessions: Arc<OrderedSessions<LocalSessionManager>>,
    max_body_bytes: usize,
    /// Which principal opened each session: a session id never authenticates.
    sessions: Arc<SessionRecords>,
    metrics: Arc<Metrics>,
    pub admission: Arc<Admission>,
    /// The gateway every session forks from: it holds the breakers.
    breakers: Gateway,
    /// A dedicated worker (`--only-tenant`): it serves its tenant whatever the policy says
    /// about who serves it.
    dedicated: bool,
    bounds: Bounds,
    /// Idle sessions leave memory (see `parking`).
    parking: Arc<crate::parking::Parking>,
    /// Sessions this worker holds in memory at most.
    max_sessions: usize,
    /// GET streams of sessions not in memory.
    quiet: Arc<quiet::Quiet>,
    /// Ends when the worker drains.
    cancel: CancellationToken,
    /// Refusals tallied for the audit trail.
    refusals: Arc<crate::refusals::Refusals>,
    /// The `Host`s requests may name (rmcp's check, which calls served inline skip).
    hosts: Vec<String>,
    /// Calls served inline now (see `inline`).
    inline_calls: Arc<inline::Calls>,
    /// The client peer of 2026-07-28 calls served inline (see `stateless`).
    listeners: stateless::Listeners,
    /// The public base URL, under which tenants' resource URLs are.
    public_url: Option<url::Url>,
    /// The built-in authorization server.
    oauth: Arc<crate::oauth::Server>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    pub fn new(
        config: &Config,
        policies: Arc<Policies>,
        grants: &switchyard_bus::GrantStores,
        sessions: Arc<SessionRecords>,
        reports: crate::reports::Reports,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> std::io::Result<Arc<Self>> {
        let upstreams = Arc::new(
            Upstreams::new(
                config.guard(),
                config.egress_proxy.as_ref(),
                crate::relay::Diverted(metrics.relay_diverted.clone()),
                config.upstream_bounds,
            )
            .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let refusals = reports.refusals.clone();
        let gateway = Gateway::new(
            policies.clone(),
            upstreams,
            reports,
            sessions.clone(),
            metrics.clone(),
        );
        let breakers = gateway.clone();
        let (mut mcp_config, hosts) = rmcp_config::service(config, cancel.clone());
        // Sessions opened on another worker are restored from the shared store.
        mcp_config.session_store = Some(sessions.rmcp_store());
        let local_sessions = Arc::new(OrderedSessions::new(
            Arc::new(rmcp_config::sessions(config)),
            crate::relay::Diverted(metrics.relay_diverted.clone()),
        ));
        let oauth = Arc::new(crate::oauth::Server::new(
            grants,
            config.policy_keys.clone(),
            config.only_tenant.is_some(),
            config.guard(),
        )?);
        let listeners =
            stateless::Listeners::new(crate::relay::Diverted(metrics.relay_diverted.clone()));
        let mcp = StreamableHttpService::new(
            move || Ok(gateway.fork()),
            local_sessions.clone(),
            mcp_config,
        );
        Ok(Arc::new(Self {
            policies,
            local_sessions,
            max_body_bytes: config.max_body_bytes,
            auth: for_oauth::authenticator(config, &metrics, oauth.clone())?,
            oauth,
            mcp,
            sessions,
            metrics,
            admission: Arc::new(Admission::new(config.max_in_flight)),
            breakers,
            dedicated: config.only_tenant.is_some(),
            bounds: config.bounds.clone(),
            parking: crate::parking::Parking::new(config.session_park_after),
            max_sessions: config.max_sessions,
            quiet: quiet::Quiet::new(config.session_idle),
            cancel,
            refusals,
            hosts,
            inline_calls: Arc::default(),
            listeners,
            public_url: config.public_url.clone(),
        }))
    }

    /// Lets go of state nothing needs any more (see `Gateway::sweep`), and of sessions
    /// nobody used for a while.
    pub async fn sweep(&self) {
        self.breakers.sweep();
        self.auth.sweep();
        self.oauth.sweep();
        self.sessions.sweep();
        self.admission.sweep();
        self.prune_sessions().await;
    }

    /// Breakers that are not closed, for the heartbeat; also updates the breakers' gauges
    /// (see `Gateway::breakers`).
    pub fn breaker_reports(&self) -> Vec<switchyard_bus::BreakerReport> {
        use crate::resilience::BreakerState;
        use switchyard_bus::BreakerStatus;
        let mut reports = Vec::new();
        let now = tokio::time::Instant::now();
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for (tenant, connector, state) in self.breakers.breakers() {
            let report = match state {
                BreakerState::Closed => None,
                BreakerState::HalfOpen => Some((BreakerStatus::HalfOpen, wall_ms)),
                BreakerState::Open(until) => Some((
                    BreakerStatus::Open,
                    wall_ms + until.saturating_duration_since(now).as_millis() as i64,
                )),
            };
            if let Some((state, retry_at_ms)) = report {
                reports.push(switchyard_bus::BreakerReport {
                    tenant,
                    connector,
                    state,
                    retry_at_ms,
                });
            }
        }
        reports
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.admission.in_flight()
    }

    /// Tenant `tenant`'s endpoint as a request with `headers` reaches it.
    fn endpoint(
        &self,
        host: Option<&http::HeaderValue>,
        tenant: &str,
    ) -> Option<discovery::Endpoint> {
        discovery::Endpoint::of(self.public_url.as_ref(), host, &self.hosts, tenant)
    }
}

async fn mcp_entry(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    mut req: Request<Body>,
) -> Response {
    use tracing::Instrument as _;
    let span = switchyard_common::span!(
        "mcp.request",
        otel.kind = "server",
        tenant = %tenant,
        http.request.method = %req.method(),
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if !span.is_none() {
        switchyard_common::trace::adopt(&span, req.headers());
        req.extensions_mut()
            .insert(crate::traced::RequestSpan(span.clone()));
    }
    let started = std::time::Instant::now();
    let mut seen = Seen::default();
    // Kept for a refusal's challenge, which names the endpoint (see `discovery`).
    let host = inline::single_host(req.headers()).cloned();
    // rmcp runs outside the request's span: a session it starts outlives the request and
    // must not hold the span open (the handler finds the span in the request).
    let response = match mcp(&app, &tenant, req, &mut seen)
        .instrument(span.clone())
        .await
    {
        Ok(Next::Answered(response)) => response,
        Ok(Next::Forward(ready)) => forward::forward(&app, ready).await,
        Err(Refused(e, id)) => {
            count(&app.metrics, &e);
            app.tally(&tenant, &seen, &e);
            let endpoint = e
                .challenges()
                .then(|| app.endpoint(host.as_ref(), &tenant))
                .flatten();
            e.response_at(id, endpoint.map(|e| e.challenge()).as_deref())
        }
    };
    app.metrics
        .requests
        .get_or_create(&StatusLabel {
            status: response.status().as_u16(),
        })
        .inc();
    span.record("http.response.status_code", response.status().as_u16());
    // Only an authenticated request names its tenant: paths with made-up tenants must not
    // take the histogram's label sets.
    let known = seen.authenticated.then_some(tenant.as_str());
    app.metrics.latency.request(known, started.elapsed());
    response
}

/// Where a request goes after the gate.
// Made once per request and moved straight out: not worth a box.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// Answered already (a GET stream of a parked session).
    Answered(Response),
    /// On to rmcp.
    Forward(forward::Ready),
}

/// The request path, in order: serving, authentication, hand-over, session binding, body
/// and admission (see `gate` and `admit`); then rmcp.
async fn mcp(
    app: &App,
    tenant: &str,
    mut req: Request<Body>,
    seen: &mut Seen,
) -> Result<Next, Refused> {
    gate::serving(app.metrics.is_draining(), app.policies.is_ready())?;
    let client = forward::client_address(&req, &app.bounds.trusted_proxies);
    seen.client = client;
    let policy = app.policies.get(tenant);
    let principal = gate::authenticate(
        &app.auth,
        policy.as_deref(),
        req.headers(),
        client,
        // Only a bearer that is not an API key needs it.
        {
            let headers = req.headers();
            move || {
                app.endpoint(inline::single_host(headers), tenant)
                    .map(|e| e.resource())
            }
        },
    )
    .await
    .inspect_err(|_| seen.key = gate::claimed_key(req.headers()))?;
    seen.key = principal.key_id().cloned();
    seen.subject = principal.subject().map(str::to_owned);
    seen.authenticated = true;
    // Authentication found the tenant's policy, so there is one.
    let policy = policy.ok_or(Error::TenantGone)?;
    gate::served_here(app.dedicated, &policy)?;
    let session = gate::session_id(req.headers());
    if let Some(id) = &session
        && gate::bind_session(&app.sessions, &principal, id).await? == SessionCheck::Ended
    {
        // Terminated (perhaps through another worker) or expired: let go of it here too.
        use rmcp::transport::streamable_http_server::session::SessionManager as _;
        let _ = app.local_sessions.close_session(&id.clone().into()).await;
        return Err(Error::SessionNotFound.into());
    }
    let is_get = req.method() == http::Method::GET;
    if is_get
        && let Some(id) = &session
        && quiet::wanted(req.headers())
    {
        let admitted = admit::admit_stream(&app.admission, &policy)?;
        // Registered before the session is looked for, so a request bringing it back
        // meanwhile ends this stream (see `quiet`).
        let registration = app.quiet.register(id, &principal);
        if !app.is_live(id).await {
            return Ok(Next::Answered(quiet::response(
                registration,
                admitted,
                app.cancel.clone(),
            )));
        }
    }
    let kind = if is_get { Kind::Stream } else { Kind::Request };
    let in_use = match &session {
        Some(id) => Some(app.parking.enter(id, kind).await),
        None => None,
    };
    let returning = session.is_some()
        && req.method() != http::Method::DELETE
        && app.room_for(&policy, session.as_deref()).await?;
    let mut admitted = None;
    let mut inline = None;
    if req.method() == http::Method::POST {
        (admitted, inline) =
            read_post(app, &mut req, &policy, &principal, session.is_some()).await?;
    } else if req.method() == http::Method::GET {
        admitted = Some(admit::admit_stream(&app.admission, &policy)?);
    }
    let held = forward::Held {
        admitted: admitted.map(Arc::new),
        in_use,
        returning,
    };
    Ok(Next::Forward(forward::Ready {
        req,
        principal,
        session,
        held,
        inline,
    }))
}

/// A POST's body (read, and put back for rmcp) and its admission; the body again when it
/// is for `inline` (or, without a session, `stateless`).
async fn read_post(
    app: &App,
    req: &mut Request<Body>,
    policy: &crate::policy::Tenant,
    principal: &crate::principal::Principal,
    in_session: bool,
) -> Result<(Option<crate::limits::Admitted>, Option<bytes::Bytes>), Refused> {
    let body = std::mem::take(req.body_mut());
    let (bytes, head) = gate::read_body(
        req.headers(),
        body,
        app.max_body_bytes,
        app.bounds.body_read_timeout,
    )
    .await?;
    let mut admitted = None;
    let mut inline = None;
    if let Some(head) = head {
        if !in_session && head.method.as_deref() == Some("initialize") {
            app.room_for(policy, None).await?;
        }
        for_oauth::step_up(app, policy, principal, &head).await?;
        let _admit = switchyard_common::span!("admit").entered();
        admitted = admit::admit(&app.admission, policy, principal, !in_session, &head)
            .map_err(|e| Refused(e, head.id.clone().unwrap_or_default()))?;
        let method = head.method.as_deref();
        let wanted = if in_session {
            inline::wanted(method, req.headers(), &app.hosts)
        } else {
            stateless::wanted(method, req.headers(), &app.hosts)
        };
        if wanted {
            inline = Some(bytes.clone());
        }
    }
    *req.body_mut() = Body::from(bytes);
    Ok((admitted, inline))
}

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/t/{tenant}/mcp", any(mcp_entry))
        .merge(discovery::routes())
        .merge(crate::oauth::Server::routes())
        .with_state(app)
}

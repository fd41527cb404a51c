//! The worker's HTTP surface. The tenant-facing listener serves `/t/{tenant}/mcp`:
//! authenticate, bind sessions to their tenant and key, admit real work under the tenant's
//! and the worker's limits (answering refusals as DESIGN.md's error table says), then hand
//! over to rmcp's Streamable HTTP service (both protocol eras, Host and Origin checks, body
//! cap). The metrics listener serves `/healthz`, `/readyz` and `/metrics`, never on the
//! tenant-facing port.

use crate::Config;
use crate::auth::{AuthError, Authenticator, Caller};
use crate::handler::Gateway;
use crate::limits::{Admission, Admitted, CAP_RETRY_AFTER, Limits, Rate, Refusal};
use crate::metrics::{Metrics, ReasonLabel, StatusLabel};
use crate::ordered::OrderedSessions;
use crate::policy::{Policies, Tenant};
use crate::sessions::{Owner, Sessions, plausible_id};
use crate::upstream::Upstreams;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::serve::ListenerExt as _;
use http::{HeaderValue, Request, StatusCode};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use std::sync::Arc;
use switchyard_common::ErrorCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SESSION_HEADER: &str = "mcp-session-id";
/// Requests that are real work: they count against rates, quotas and concurrency.
const REAL_WORK: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

pub struct App {
    policies: Arc<Policies>,
    auth: Authenticator,
    mcp: StreamableHttpService<Gateway, OrderedSessions<LocalSessionManager>>,
    local_sessions: Arc<OrderedSessions<LocalSessionManager>>,
    max_body_bytes: usize,
    /// Which tenant and key opened each session: a session id never authenticates.
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    pub admission: Arc<Admission>,
    /// The gateway every session forks from: it holds the breakers.
    breakers: Gateway,
    /// A dedicated worker (`--only-tenant`): it serves its tenant whatever the policy says
    /// about who serves it.
    dedicated: bool,
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
        sessions: Arc<Sessions>,
        usage: crate::usage::Reporter,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> std::io::Result<Arc<Self>> {
        let upstreams = Arc::new(
            Upstreams::new(
                config.upstream_guard.clone(),
                crate::relay::Diverted(metrics.relay_diverted.clone()),
            )
            .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let gateway = Gateway::new(
            policies.clone(),
            upstreams,
            usage,
            sessions.clone(),
            metrics.clone(),
        );
        let breakers = gateway.clone();
        let mut mcp_config = StreamableHttpServerConfig::default()
            .with_cancellation_token(cancel)
            .with_max_request_body_bytes(config.max_body_bytes);
        // Sessions opened on another worker are restored from the shared store.
        mcp_config.session_store = Some(sessions.rmcp_store());
        if let Some(public) = &config.public_url {
            let host = public.host_str().unwrap_or_default().to_owned();
            let mut hosts = vec![host.clone()];
            if let Some(port) = public.port() {
                hosts.push(format!("{host}:{port}"));
            }
            mcp_config = mcp_config
                .with_allowed_hosts(hosts)
                .with_allowed_origins([public.origin().ascii_serialization()])
                .enforce_origin_validation();
        } else {
            // Loopback only (rmcp's default hosts), and no browser origin but loopback.
            mcp_config = mcp_config
                .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*"])
                .enforce_origin_validation();
        }
        let mut local_sessions = LocalSessionManager::default();
        local_sessions.session_config.keep_alive = Some(config.session_idle);
        let local_sessions = Arc::new(OrderedSessions::new(
            Arc::new(local_sessions),
            crate::relay::Diverted(metrics.relay_diverted.clone()),
        ));
        let mcp = StreamableHttpService::new(
            move || Ok(gateway.fork()),
            local_sessions.clone(),
            mcp_config,
        );
        Ok(Arc::new(Self {
            policies,
            local_sessions,
            max_body_bytes: config.max_body_bytes,
            auth: Authenticator::default(),
            mcp,
            sessions,
            metrics,
            admission: Arc::new(Admission::new(config.max_in_flight)),
            breakers,
            dedicated: config.only_tenant.is_some(),
        }))
    }

    /// Whether this (shared) worker hands `tenant` over to its dedicated workers.
    fn hands_over(&self, tenant: Option<&crate::policy::Tenant>) -> bool {
        !self.dedicated && tenant.is_some_and(|t| t.dedicated)
    }

    /// Drops sessions rmcp has let go (idle) from the per-tenant session counts.
    pub async fn prune_sessions(&self) {
        let alive: std::collections::HashSet<String> = self
            .local_sessions
            .inner
            .sessions
            .read()
            .await
            .keys()
            .map(|k| k.to_string())
            .collect();
        self.admission.retain_sessions(|id| alive.contains(id));
    }

    /// Lets go of state nothing needs any more (see `Gateway::sweep`), and of sessions
    /// nobody used for a while.
    pub async fn sweep(&self) {
        self.breakers.sweep();
        self.sessions.sweep();
        self.admission.sweep();
        self.prune_sessions().await;
    }

    /// Breakers that are not closed, for the heartbeat; also updates their gauges.
    pub fn breaker_reports(&self) -> Vec<switchyard_bus::BreakerReport> {
        use crate::resilience::BreakerState;
        let mut reports = Vec::new();
        let now = tokio::time::Instant::now();
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for (tenant, connector, state) in self.breakers.breakers() {
            let value = state.gauge();
            let report = match state {
                BreakerState::Closed => None,
                BreakerState::HalfOpen => Some(("half_open", wall_ms)),
                BreakerState::Open(until) => Some((
                    "open",
                    wall_ms + until.saturating_duration_since(now).as_millis() as i64,
                )),
            };
            self.metrics
                .breakers
                .get_or_create(&crate::metrics::BreakerLabel {
                    tenant: tenant.clone(),
                    connector: connector.clone(),
                })
                .set(value);
            if let Some((state, retry_at_ms)) = report {
                reports.push(switchyard_bus::BreakerReport {
                    tenant,
                    connector,
                    state: state.to_owned(),
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
}

/// The head of a JSON-RPC message: enough to classify it and answer it.
#[derive(Debug, serde::Deserialize)]
struct Head {
    id: Option<serde_json::Value>,
    method: Option<String>,
}

/// A JSON-RPC error answering request `id`, with `data`.
fn refusal_body(
    status: StatusCode,
    id: serde_json::Value,
    code: ErrorCode,
    message: &str,
    data: serde_json::Value,
    retry_after: std::time::Duration,
) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code.jsonrpc(), "message": message, "data": data },
    });
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    resp
}

/// What a refused request is told, exactly as DESIGN.md's error table says.
fn refusal(id: serde_json::Value, refused: &Refusal) -> (&'static str, Response) {
    match refused {
        Refusal::Rate { scope, retry_after } => {
            let ms = retry_after.as_millis().max(1) as u64;
            let reason = match scope {
                crate::limits::Scope::Tenant => "rate_limited_tenant",
                crate::limits::Scope::Key => "rate_limited_key",
            };
            let resp = refusal_body(
                StatusCode::TOO_MANY_REQUESTS,
                id,
                ErrorCode::RateLimited,
                &format!(
                    "rate limited ({} limit): retry after {ms} ms",
                    scope.as_str()
                ),
                json!({"reason": "rate_limited", "scope": scope.as_str(), "retryAfterMs": ms}),
                *retry_after,
            );
            (reason, resp)
        }
        Refusal::Concurrency | Refusal::Sessions => {
            let (metric, reason, message) = match refused {
                Refusal::Sessions => (
                    "sessions",
                    "session_limit",
                    "the tenant has as many open sessions as it may; close one or retry later",
                ),
                _ => (
                    "concurrency",
                    "concurrency_limited",
                    "the tenant's concurrent requests are all in use; retry shortly",
                ),
            };
            let ms = CAP_RETRY_AFTER.as_millis() as u64;
            let resp = refusal_body(
                StatusCode::TOO_MANY_REQUESTS,
                id,
                ErrorCode::ConcurrencyLimited,
                message,
                json!({"reason": reason, "retryAfterMs": ms}),
                CAP_RETRY_AFTER,
            );
            (metric, resp)
        }
        Refusal::Saturated => (
            "saturated",
            refusal_body(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                ErrorCode::Unavailable,
                "this worker is saturated; retry shortly",
                json!({"reason": "saturated", "retryAfterMs": 1000}),
                std::time::Duration::from_secs(1),
            ),
        ),
    }
}

/// The monthly tool-call quota's answer: when it resets.
fn quota_exhausted(id: serde_json::Value, resets: std::time::SystemTime) -> Response {
    let wait = resets
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let resets_at = time::OffsetDateTime::from(resets)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    refusal_body(
        StatusCode::TOO_MANY_REQUESTS,
        id,
        ErrorCode::QuotaExhausted,
        &format!("the tenant's monthly tool calls are used up until {resets_at}"),
        json!({"reason": "quota_exhausted", "quota": "monthly_tool_calls", "resetsAt": resets_at}),
        wait,
    )
}

/// A JSON-RPC error response with an HTTP status, for failures before MCP handling.
fn rpc_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code.jsonrpc(), "message": message },
    });
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn unauthorized(message: &str, invalid: bool) -> Response {
    let mut resp = rpc_error(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthenticated,
        message,
    );
    let challenge = if invalid {
        "Bearer realm=\"switchyard\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"switchyard\""
    };
    resp.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}

async fn mcp_entry(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    mut req: Request<Body>,
) -> Response {
    let response = mcp_inner(&app, &tenant, &mut req).await;
    app.metrics
        .requests
        .get_or_create(&StatusLabel {
            status: response.status().as_u16(),
        })
        .inc();
    response
}

async fn mcp_inner(app: &Arc<App>, tenant: &str, req: &mut Request<Body>) -> Response {
    if app.metrics.is_draining() {
        app.metrics
            .limited
            .get_or_create(&ReasonLabel { reason: "draining" })
            .inc();
        let mut resp = rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "this worker is shutting down; retry and another worker will serve you",
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    if !app.policies.is_ready() {
        // Without its initial policies a worker knows no tenant: saying 401 would tell
        // clients their key is wrong. Readiness keeps load balancers away meanwhile.
        let mut resp = rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "this worker is starting and has not loaded tenant policies yet; retry shortly",
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    let policy = app.policies.get(tenant);
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller: Caller = match app
        .auth
        .authenticate(policy.as_deref(), authorization)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            let (reason, resp) = match e {
                AuthError::Missing => (
                    "missing",
                    unauthorized("send your API key as `Authorization: Bearer sy_...`", false),
                ),
                AuthError::Invalid => (
                    "invalid",
                    unauthorized("the API key is not valid for this endpoint", true),
                ),
                AuthError::Busy => (
                    "busy",
                    refusal(serde_json::Value::Null, &Refusal::Concurrency).1,
                ),
                AuthError::Suspended(reason) => {
                    let message = if reason.is_empty() {
                        "this tenant is suspended; contact your operator".to_owned()
                    } else {
                        format!("this tenant is suspended: {reason}")
                    };
                    (
                        "suspended",
                        rpc_error(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, &message),
                    )
                }
            };
            app.metrics
                .auth_failures
                .get_or_create(&ReasonLabel { reason })
                .inc();
            return resp;
        }
    };
    if app.hands_over(policy.as_deref()) {
        // Its dedicated workers serve it now: the client retries and reaches them.
        app.metrics
            .limited
            .get_or_create(&ReasonLabel {
                reason: "dedicated",
            })
            .inc();
        let mut resp = rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "this tenant has moved to its dedicated workers; retry and they will serve you",
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    let owner = Owner {
        tenant: caller.tenant.clone(),
        key_id: caller.key_id.clone(),
    };
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session {
        let not_found = || {
            rpc_error(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "session not found",
            )
        };
        if !plausible_id(id) {
            return not_found();
        }
        match app.sessions.owner(id).await {
            Ok(Some(o)) if o == owner => {}
            // Another tenant's or key's session is answered as if it did not exist.
            Ok(Some(_)) => return not_found(),
            // Terminated (perhaps through another worker) or expired: let go of it here too.
            Ok(None) => {
                use rmcp::transport::streamable_http_server::session::SessionManager as _;
                let _ = app.local_sessions.close_session(&id.clone().into()).await;
                return not_found();
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store unavailable");
                return rpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "sessions are unavailable right now; retry shortly",
                );
            }
        }
    }
    let mut admitted = None;
    if req.method() == http::Method::POST {
        // Read the body here (within the cap) so malformed JSON gets the JSON-RPC parse
        // error the spec names, rather than a media-type complaint.
        let body = std::mem::take(req.body_mut());
        let bytes = match axum::body::to_bytes(body, app.max_body_bytes).await {
            Ok(b) => b,
            Err(_) => {
                return rpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::InvalidArgument,
                    &format!("request body exceeds {} bytes", app.max_body_bytes),
                );
            }
        };
        // One parse tells malformed JSON (a parse error) from JSON that is not one message
        // (rmcp answers that) and gives what admission needs.
        let head = match serde_json::from_slice::<Head>(&bytes) {
            Ok(head) => Some(head),
            Err(e) if e.classify() == serde_json::error::Category::Data => None,
            Err(_) => {
                let body = json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": { "code": -32700, "message": "parse error: the body is not JSON" },
                });
                return (
                    StatusCode::BAD_REQUEST,
                    [(http::header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response();
            }
        };
        let policy = policy.as_deref();
        match head.and_then(|h| admit(app, policy?, &caller, session.is_none(), h).transpose()) {
            None => {}
            Some(Ok(a)) => admitted = Some(a),
            Some(Err(resp)) => return *resp,
        }
        *req.body_mut() = Body::from(bytes);
    }
    let is_delete = req.method() == http::Method::DELETE;
    if is_delete && let Some(id) = &session {
        // Forgotten before rmcp closes the session, so its upstream sessions see that the
        // client ended it and end theirs too (see `resume`).
        app.sessions.forget(id).await;
        app.admission.session_closed(id);
    }
    let mut forwarded = Request::from_parts(
        {
            let (parts, _) = Request::new(()).into_parts();
            parts
        },
        Body::empty(),
    );
    std::mem::swap(&mut forwarded, req);
    forwarded.extensions_mut().insert(caller);
    let mut response = app.mcp.handle(forwarded).await.map(Body::new);
    if let Some(admitted) = admitted {
        // The places stay taken until the answer (perhaps a stream) is finished.
        use http_body_util::BodyExt as _;
        response = response.map(|body| {
            Body::new(body.map_frame(move |frame| {
                let _held = &admitted;
                frame
            }))
        });
    }
    if is_delete && response.status() == StatusCode::ACCEPTED {
        // Session termination is complete when rmcp answers; clients (the Python SDK
        // among them) expect 200 or 204 and warn on 202.
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    let issued = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let (Some(id), None) = (issued, &session) {
        app.admission.session_opened(&owner.tenant, &id);
        if let Err(e) = app.sessions.bind(&id, &owner).await {
            // The session still works on this worker; others cannot carry it on.
            tracing::warn!(error = %e, "could not share a new session");
        }
    }
    response
}

/// Admits a POSTed message under the tenant's and the worker's limits: real work under
/// rates, the monthly quota and concurrency; a new session under the session cap; any other
/// request under the worker's in-flight cap. Notifications and responses pass freely.
fn admit(
    app: &App,
    policy: &Tenant,
    caller: &Caller,
    new_session: bool,
    head: Head,
) -> Result<Option<Admitted>, Box<Response>> {
    let Head {
        id: Some(id),
        method: Some(method),
    } = head
    else {
        return Ok(None);
    };
    let tenant = policy.slug.as_str();
    let quotas = &policy.quotas;
    let refused = |(reason, resp): (&'static str, Response)| {
        app.metrics
            .limited
            .get_or_create(&ReasonLabel { reason })
            .inc();
        Box::new(resp)
    };
    if new_session
        && method == "initialize"
        && let Err(r) = app.admission.may_open_session(tenant, quotas.max_sessions)
    {
        return Err(refused(refusal(id, &r)));
    }
    if !REAL_WORK.contains(&method.as_str()) {
        return app
            .admission
            .admit_other()
            .map(Some)
            .map_err(|r| refused(refusal(id, &r)));
    }
    if method == "tools/call"
        && let Some(until) = policy.tool_calls_exhausted_until
        && until > std::time::SystemTime::now()
    {
        return Err(refused(("quota", quota_exhausted(id, until))));
    }
    let key_rate = policy.keys.get(&caller.key_id).map_or(
        Rate {
            per_second: 0,
            burst: 0,
        },
        |k| Rate {
            per_second: k.requests_per_second,
            burst: k.burst,
        },
    );
    let limits = Limits {
        tenant_rate: Rate {
            per_second: quotas.requests_per_second,
            burst: quotas.burst,
        },
        key_rate,
        max_concurrent: quotas.max_concurrent_requests,
    };
    app.admission
        .admit(tenant, &caller.key_id, limits)
        .map(Some)
        .map_err(|r| refused(refusal(id, &r)))
}

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/t/{tenant}/mcp", any(mcp_entry))
        .with_state(app)
}

/// Serves the MCP endpoint until `cancel` fires, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

/// Serves `/healthz`, `/readyz` and `/metrics` until `cancel` fires.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let sampler = {
        let metrics = metrics.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => metrics.sample(),
                }
            }
        })
    };
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "initial policy load not complete",
                    )
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.render(),
                )
            }),
        )
        .with_state(metrics);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    sampler.abort();
    served
}

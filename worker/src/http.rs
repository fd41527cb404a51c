//! The worker's HTTP surface. The tenant-facing listener serves `/t/{tenant}/mcp`:
//! authenticate, bind sessions to their tenant and key, then hand over to rmcp's Streamable
//! HTTP service (both protocol eras, Host and Origin checks, body cap). The metrics
//! listener serves `/healthz`, `/readyz` and `/metrics`, never on the tenant-facing port.

use crate::Config;
use crate::auth::{AuthError, Authenticator, Caller};
use crate::handler::Gateway;
use crate::metrics::{Metrics, ReasonLabel, StatusLabel};
use crate::policy::Policies;
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

pub struct App {
    policies: Arc<Policies>,
    auth: Authenticator,
    mcp: StreamableHttpService<Gateway, LocalSessionManager>,
    local_sessions: Arc<LocalSessionManager>,
    max_body_bytes: usize,
    /// Which tenant and key opened each session: a session id never authenticates.
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
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
            Upstreams::new(config.upstream_guard.clone())
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let gateway = Gateway::new(policies.clone(), upstreams, usage, sessions.clone());
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
        let local_sessions = Arc::new(LocalSessionManager::default());
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
        }))
    }
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
        if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
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
        *req.body_mut() = Body::from(bytes);
    }
    let is_delete = req.method() == http::Method::DELETE;
    if is_delete && let Some(id) = &session {
        // Forgotten before rmcp closes the session, so its upstream sessions see that the
        // client ended it and end theirs too (see `resume`).
        app.sessions.forget(id).await;
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
    if let (Some(id), None) = (issued, &session)
        && let Err(e) = app.sessions.bind(&id, &owner).await
    {
        // The session still works on this worker; others cannot carry it on.
        tracing::warn!(error = %e, "could not share a new session");
    }
    response
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

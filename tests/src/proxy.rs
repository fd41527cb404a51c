//! A reverse proxy that adds one `Authorization` header and changes nothing else: method,
//! path, query, every other header (`Host` and `Origin` included) and both bodies pass
//! through as they are, streamed. It lets clients that cannot send headers (the
//! conformance suites) reach a tenant's endpoint.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt as _;
use http::{HeaderValue, StatusCode};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Target {
    base: String,
    authorization: HeaderValue,
    http: reqwest::Client,
}

/// Headers that describe one hop, not the message (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

async fn forward(State(target): State<Arc<Target>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = parts.headers;
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.insert(http::header::AUTHORIZATION, target.authorization.clone());
    let upstream = target
        .http
        .request(parts.method, format!("{}{path}", target.base))
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match upstream {
        Ok(resp) => {
            let mut out = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if !HOP_BY_HOP.contains(&k.as_str()) {
                    out = out.header(k, v);
                }
            }
            out.body(Body::from_stream(
                resp.bytes_stream().map_err(std::io::Error::other),
            ))
            .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// A running proxy; stopped when dropped.
#[derive(Debug)]
pub struct AuthProxy {
    pub addr: std::net::SocketAddr,
    stop: CancellationToken,
}

impl AuthProxy {
    /// Serves on `listener`, forwarding every request to `base` (scheme and authority, e.g.
    /// `http://127.0.0.1:8080`) with `Authorization: Bearer {key}`.
    pub fn start(
        listener: tokio::net::TcpListener,
        base: &str,
        key: &str,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let authorization = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let target = Arc::new(Target {
            base: base.trim_end_matches('/').to_owned(),
            authorization,
            http,
        });
        let app = axum::Router::new().fallback(forward).with_state(target);
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .ok();
        });
        Ok(Self { addr, stop })
    }
}

impl Drop for AuthProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

//! The tenant-facing listener, served by hyper with the bounds a public endpoint needs
//! (`Bounds`): a connection cap, a deadline for a request's headers (which also bounds how
//! long a kept-alive connection may sit idle before its next request), a cap on header
//! count and size. Connections refused or closed for a bound are counted by reason in
//! `switchyard_worker_connections_closed_total`. Each request carries the peer's address
//! (`Peer`); `client_addr` turns it into the client's address, believing `X-Forwarded-For`
//! only from `Bounds::trusted_proxies`.

use super::App;
use crate::metrics::ReasonLabel;
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Limits on the tenant-facing connections.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// How long a client may take to send a request's headers, counted from when the
    /// server waits for them (also between requests on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// Headers a request may have.
    pub max_headers: usize,
    /// Bytes a request's headers may take (at least 8 KiB).
    pub max_header_bytes: usize,
    /// Connections open at once; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The address a request came from: the TCP peer.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The client's address: the peer's, or when the peer is a trusted proxy, the last address
/// in `X-Forwarded-For` that is not a trusted proxy itself.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for
        .unwrap_or_default()
        .split(',')
        .filter_map(|h| h.trim().parse::<IpAddr>().ok());
    let mut client = peer;
    for hop in hops.collect::<Vec<_>>().into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

fn closed(app: &App, reason: &'static str) {
    app.metrics
        .connections_closed
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

/// Why hyper ended a connection early, as a metric reason.
fn reason_of(e: &(dyn std::error::Error + 'static)) -> &'static str {
    match e.downcast_ref::<hyper::Error>() {
        Some(h) if h.is_timeout() => "header_timeout",
        Some(h) if h.is_parse_too_large() => "headers_too_large",
        Some(h) if h.is_parse() => "malformed",
        _ => "error",
    }
}

/// Serves the MCP endpoint until `cancel` fires, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let bounds = app.bounds.clone();
    let router = super::router(app.clone());
    let slots = Arc::new(Semaphore::new(bounds.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout)
        .max_headers(bounds.max_headers)
        .max_buf_size(bounds.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(bounds.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            closed(&app, "connection_limit");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                let reason = reason_of(&*e);
                tracing::debug!(%peer, reason, error = %e, "connection closed early");
                closed(&app, reason);
            }
            drop(slot);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_believes_only_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A client talking directly: its own address, whatever it claims.
        assert_eq!(
            client_addr(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // Through a trusted proxy: the last address the proxies did not add.
        assert_eq!(
            client_addr(
                ip("10.0.0.2"),
                Some("1.2.3.4, 198.51.100.7, 10.0.0.5"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // A trusted proxy without a header (or with garbage) is the client.
        assert_eq!(client_addr(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_addr(ip("10.0.0.2"), Some("not an address"), &trusted),
            ip("10.0.0.2")
        );
        // No trusted proxies: the peer, always.
        assert_eq!(
            client_addr(ip("10.0.0.2"), Some("1.2.3.4"), &[]),
            ip("10.0.0.2")
        );
    }
}

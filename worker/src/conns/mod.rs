//! HTTP/1.1 connections to one upstream, each written and read by the task of the request
//! it carries. A general HTTP client (reqwest) drives each connection from a task of its
//! own, so every request crosses tasks twice, and often threads: once to be written, once
//! for its answer to come back. Here the request's task polls the connection itself while
//! it waits for the answer and reads the body (see `driven`), and gives the connection
//! back to the pool when the body has been read to its end.
//!
//! Every connection is made as the worker's other upstream connections are: the name
//! resolved through the operator's guard, no proxy, TCP_NODELAY, TLS verified against the
//! platform's roots. The pool belongs to one upstream session, so none of its connections
//! carries two tenants' calls (the session's other requests, sent by rmcp's client, share
//! the worker's reqwest pool).

mod driven;
mod origin;
pub mod sse;

pub use driven::Driven;
pub use origin::Origin;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};
use switchyard_common::netguard::UpstreamGuard;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Idle connections kept per upstream session, and for how long each.
const IDLE_MAX: usize = 8;
const IDLE_FOR: Duration = Duration::from_secs(90);
/// Times a request is offered to another connection when the one it was given had
/// closed before the request was written (so it cannot have run).
const UNSENT_RETRIES: usize = 2;

/// What a request's body is: the whole JSON-RPC message, sent at once.
pub type Body = Full<Bytes>;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ConnsError {
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Driver = http1::Connection<TokioIo<Box<dyn Io>>, Body>;

/// One connection: the side requests are given to, and the state machine that writes and
/// reads it, polled by whichever request holds the connection.
struct Conn {
    send: http1::SendRequest<Body>,
    driver: Pin<Box<Driver>>,
    /// The driver has finished: the connection is closed.
    done: bool,
}

impl Conn {
    /// Polls the driver; whether the connection is still open.
    fn drive(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if !self.done && self.driver.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
        !self.done
    }

    /// Waits, driving the connection, until it takes a request; false when it closed.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            if !self.drive(cx) {
                return Poll::Ready(false);
            }
            self.send.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }
}

#[derive(Default)]
struct Idle(Mutex<Vec<(Conn, Instant)>>);

impl Idle {
    fn take(&self) -> Option<Conn> {
        let mut idle = crate::sync::lock(&self.0);
        idle.retain(|(c, at)| !c.done && at.elapsed() < IDLE_FOR);
        idle.pop().map(|(c, _)| c)
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = crate::sync::lock(&self.0);
        if idle.len() < IDLE_MAX {
            idle.push((conn, Instant::now()));
        }
    }
}

/// The connections of one upstream session.
pub struct Conns {
    origin: Origin,
    guard: UpstreamGuard,
    tls: Option<tokio_rustls::TlsConnector>,
    idle: Arc<Idle>,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conns")
            .field("origin", &self.origin.authority())
            .finish_non_exhaustive()
    }
}

impl Conns {
    /// Connections to `origin`, through `guard`, with `tls` for an `https` origin.
    pub fn new(origin: Origin, guard: UpstreamGuard, tls: Arc<rustls::ClientConfig>) -> Self {
        let tls = origin.https.then(|| tokio_rustls::TlsConnector::from(tls));
        Self {
            origin,
            guard,
            tls,
            idle: Arc::default(),
        }
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Sends `request` (its URI in origin form, its `Host` set) and waits for the head of
    /// the answer; its body is read, and the connection driven, by whoever reads it.
    pub async fn send(
        &self,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<Driven>, ConnsError> {
        let mut left = UNSENT_RETRIES;
        loop {
            let (mut conn, reused) = self.checkout().await?;
            let answer = {
                let mut sending = std::pin::pin!(conn.send.try_send_request(request));
                poll_fn(|cx| {
                    conn.drive(cx);
                    sending.as_mut().poll(cx)
                })
                .await
            };
            match answer {
                Ok(response) => {
                    let idle = Arc::downgrade(&self.idle);
                    return Ok(response.map(|body| Driven::new(body, conn, idle)));
                }
                Err(mut e) => match e.take_message() {
                    // Given to a kept connection that had closed: never written.
                    Some(unsent) if reused && left > 0 => {
                        left -= 1;
                        request = unsent;
                    }
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// A kept connection that still takes requests, or a new one; whether it was kept.
    async fn checkout(&self) -> Result<(Conn, bool), ConnsError> {
        while let Some(mut conn) = self.idle.take() {
            if conn.ready().await {
                return Ok((conn, true));
            }
        }
        Ok((self.connect().await?, false))
    }

    async fn connect(&self) -> Result<Conn, ConnsError> {
        let name = self.origin.authority().to_owned();
        let refused = |e| ConnsError::Connect(name.clone(), e);
        let addrs = crate::egress::resolve(&self.guard, self.origin.host(), self.origin.port)
            .await
            .map_err(refused)?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp
            .ok_or_else(|| refused(last.unwrap_or_else(|| std::io::Error::other("no address"))))?;
        tcp.set_nodelay(true).map_err(refused)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let server = self
                    .origin
                    .server_name()
                    .map_err(|e| ConnsError::Tls(name.clone(), e))?;
                Box::new(
                    tls.connect(server, tcp)
                        .await
                        .map_err(|e| ConnsError::Tls(name.clone(), e))?,
                )
            }
        };
        let (send, driver) = http1::handshake(TokioIo::new(io)).await?;
        Ok(Conn {
            send,
            driver: Box::pin(driver),
            done: false,
        })
    }
}

/// The TLS settings of upstream connections: the platform's roots, HTTP/1.1 only.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("the platform's TLS roots: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Returns a connection to its pool, if the pool is still there.
fn give_back(idle: &Weak<Idle>, conn: Conn) {
    if let Some(idle) = idle.upgrade() {
        idle.give_back(conn);
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

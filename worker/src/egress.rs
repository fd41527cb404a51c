//! What a worker may connect to: every outbound connection it makes for a tenant (to
//! upstreams, to identity providers) goes through the operator's guard (see
//! `switchyard_common::netguard`): names resolve only to permitted addresses, and a
//! literal address or this gateway's own endpoint is refused before connecting.

use crate::upstream::UpstreamError;
use std::net::{IpAddr, SocketAddr};
use switchyard_common::netguard::UpstreamGuard;

/// A DNS resolver that drops addresses the guard refuses.
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub UpstreamGuard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let addrs = resolve(&guard, name.as_str(), 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The addresses `host` (a name, or a literal address) resolves to on `port` that the
/// guard permits; an error naming `host` when there are none.
pub async fn resolve(
    guard: &UpstreamGuard,
    host: &str,
    port: u16,
) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await?
        .filter(|a| guard.permits(a.ip()))
        .collect();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{host} resolves only to addresses this worker may not reach"),
        ));
    }
    Ok(addrs)
}

/// Refuses a URL that points at this gateway, or whose host is a literal address in a
/// guarded range (names are checked when they resolve).
pub fn check_address(guard: &UpstreamGuard, raw: &str) -> Result<(), UpstreamError> {
    let url = url::Url::parse(raw).map_err(|e| UpstreamError::Connect(e.to_string()))?;
    if let Some(host) = url.host_str()
        && guard.is_own_host(host, url.port_or_known_default().unwrap_or(80))
    {
        return Err(UpstreamError::OwnEndpoint);
    }
    let literal: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(ip.into()),
        Some(url::Host::Ipv6(ip)) => Some(ip.into()),
        _ => None,
    };
    match literal {
        Some(ip) if !guard.permits(ip) => Err(UpstreamError::Forbidden(ip.to_string())),
        _ => Ok(()),
    }
}

/// Fetches small JSON documents a tenant's configuration points at (an identity
/// provider's keys, a client's metadata) through the guard: no proxy from the environment,
/// no redirects, a deadline, and a bound on the size read.
#[derive(Debug, Clone)]
pub struct JsonFetcher {
    http: reqwest::Client,
    guard: UpstreamGuard,
}

impl JsonFetcher {
    pub fn new(guard: UpstreamGuard, timeout: std::time::Duration) -> reqwest::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(GuardedResolver(guard.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()?;
        Ok(Self { http, guard })
    }

    /// The JSON document at `url`, of at most `max` bytes; why not, naming `url`.
    pub async fn get(&self, url: &str, max: usize) -> Result<serde_json::Value, String> {
        let failed = |e: &dyn std::fmt::Display| format!("{url}: {e}");
        check_address(&self.guard, url).map_err(|e| failed(&e))?;
        let response = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| failed(&e))?;
        if !response.status().is_success() {
            return Err(failed(&response.status()));
        }
        read(response, max).await.map_err(|e| failed(&e))
    }

    /// Posts `form` to `url` and reads the JSON answer, of at most `max` bytes, whatever
    /// its status (an OAuth error is JSON too); why not, naming `url`.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        max: usize,
    ) -> Result<(http::StatusCode, serde_json::Value), String> {
        let failed = |e: &dyn std::fmt::Display| format!("{url}: {e}");
        check_address(&self.guard, url).map_err(|e| failed(&e))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        let status = response.status();
        let value = read(response, max).await.map_err(|e| failed(&e))?;
        Ok((status, value))
    }
}

/// The JSON body of `response`, of at most `max` bytes.
async fn read(mut response: reqwest::Response, max: usize) -> Result<serde_json::Value, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("over {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

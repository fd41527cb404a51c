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
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    format!("{host} resolves only to addresses this worker may not reach").into(),
                );
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
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

//! Connections to tenants' upstream MCP servers, made with rmcp's Streamable HTTP client
//! (either protocol era). One client per tenant x connector per worker, reused across
//! requests and replaced when the connector's configuration changes. Every connection is
//! checked against the private-range guard, including each address a host name resolves
//! to (a DNS answer cannot point a connector into the platform's network). The connector's
//! own headers are sent; the client's credential never is.

use crate::policy::Connector;
use rmcp::service::{Peer, RoleClient, RunningService, ServiceExt as _};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use switchyard_common::netguard::UpstreamGuard;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0} is in a private range this worker may not reach (see --upstream-allow)")]
    Forbidden(String),
    #[error("did not answer within {0} ms")]
    Timeout(u64),
    #[error("cannot connect: {0}")]
    Connect(String),
}

/// A DNS resolver that drops addresses the guard refuses.
#[derive(Debug, Clone)]
struct GuardedResolver(UpstreamGuard);

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

type Client = RunningService<RoleClient, ()>;

#[derive(Debug)]
struct Slot {
    fingerprint: u64,
    client: tokio::sync::Mutex<Option<Client>>,
}

#[derive(Debug)]
pub struct Upstreams {
    http: reqwest::Client,
    guard: UpstreamGuard,
    slots: Mutex<HashMap<(String, String), Arc<Slot>>>,
}

impl Upstreams {
    pub fn new(guard: UpstreamGuard) -> Result<Self, UpstreamError> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        Ok(Self {
            http,
            guard,
            slots: Mutex::default(),
        })
    }

    fn slot(&self, tenant: &str, c: &Connector) -> Arc<Slot> {
        let key = (tenant.to_owned(), c.name.clone());
        let Ok(mut slots) = self.slots.lock() else {
            return Arc::new(Slot {
                fingerprint: c.fingerprint,
                client: tokio::sync::Mutex::new(None),
            });
        };
        let slot = slots.entry(key).or_insert_with(|| {
            Arc::new(Slot {
                fingerprint: c.fingerprint,
                client: tokio::sync::Mutex::new(None),
            })
        });
        if slot.fingerprint != c.fingerprint {
            *slot = Arc::new(Slot {
                fingerprint: c.fingerprint,
                client: tokio::sync::Mutex::new(None),
            });
        }
        slot.clone()
    }

    /// A connected peer for `c`, connecting if needed.
    pub async fn peer(
        &self,
        tenant: &str,
        c: &Connector,
    ) -> Result<Peer<RoleClient>, UpstreamError> {
        let slot = self.slot(tenant, c);
        let mut client = slot.client.lock().await;
        if let Some(existing) = client.as_ref()
            && !existing.is_transport_closed()
        {
            return Ok(existing.peer().clone());
        }
        let connected = self.connect(c).await?;
        let peer = connected.peer().clone();
        *client = Some(connected);
        Ok(peer)
    }

    /// Drops the client of `c` so the next call connects afresh.
    pub fn forget(&self, tenant: &str, connector: &str) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&(tenant.to_owned(), connector.to_owned()));
        }
    }

    /// Drops clients of tenants or connectors that are no longer configured.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|(t, c), _| keep(t, c));
        }
    }

    async fn connect(&self, c: &Connector) -> Result<Client, UpstreamError> {
        let url = url::Url::parse(&c.url).map_err(|e| UpstreamError::Connect(e.to_string()))?;
        let literal: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(ip.into()),
            Some(url::Host::Ipv6(ip)) => Some(ip.into()),
            _ => None,
        };
        if let Some(ip) = literal
            && !self.guard.permits(ip)
        {
            return Err(UpstreamError::Forbidden(ip.to_string()));
        }
        let headers = c
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>();
        let config =
            StreamableHttpClientTransportConfig::with_uri(c.url.clone()).custom_headers(headers);
        let transport = StreamableHttpClientTransport::with_client(self.http.clone(), config);
        match tokio::time::timeout(c.timeout, ().serve(transport)).await {
            Err(_) => Err(UpstreamError::Timeout(c.timeout.as_millis() as u64)),
            Ok(Err(e)) => Err(UpstreamError::Connect(e.to_string())),
            Ok(Ok(client)) => Ok(client),
        }
    }
}

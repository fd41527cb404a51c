//! The MCP server every tenant's clients talk to: an rmcp `ServerHandler` that aggregates
//! the tools, prompts and resources of the tenant's connectors and routes calls to them.
//! It reads the authenticated principal from the HTTP request and the tenant's *current*
//! policy on every request, so a removed connector, revoked key or suspension applies to
//! sessions already open. One `Gateway` serves one client session (or one request without
//! a session); the upstream sessions it opens belong to that client alone.
//!
//! - `catalog`: the aggregated listing (a pure function of the connectors' listings) and
//!   when it is listed afresh;
//! - `upstream_sessions`: which upstream session a request uses, and carrying a client
//!   session's upstream sessions across workers;
//! - `routing`: the one path every real call takes (usage report, breaker, retries, era
//!   bridging);
//! - `server`: the `ServerHandler` methods.

// Logging is deprecated for future protocol versions; the versions served here have it.
#![allow(deprecated)]

mod catalog;
mod inline;
mod listing;
mod lookup;
mod report;
mod routing;
mod server;
mod upstream_sessions;

use crate::error::{Error, Result};
use crate::exchange::Holds;
use crate::policy::{Connector, Policies, Tenant};
use crate::principal::Principal;
use crate::resilience::{BreakerState, Guard};
use crate::sessions::SessionRecords;
use crate::sync::lock;
use crate::upstream::{Session, Upstreams};
use catalog::Catalog;
use prometheus_client::metrics::gauge::Gauge;
use rmcp::model::{LoggingLevel, ResultType};
use rmcp::service::{RequestContext, RoleServer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A breaker and retry budget, and the breaker's gauge.
type Held = (Arc<Guard>, Gauge);

/// What every client session of a worker shares.
#[derive(Debug)]
struct Core {
    policies: Arc<Policies>,
    upstreams: Arc<Upstreams>,
    reports: crate::reports::Reports,
    /// Tool sightings reported lately.
    reported: crate::pins::Reported,
    /// Shared session records (upstream sessions of client sessions).
    sessions: Arc<SessionRecords>,
    catalogs: Mutex<HashMap<String, Arc<Catalog>>>,
    /// Per tenant, taken while its connectors are listed.
    listing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    holds: Holds,
    /// Breakers and retry budgets, with their gauges, by tenant and then connector (so a
    /// call finds its own without allocating a key).
    guards: Mutex<HashMap<String, HashMap<String, Held>>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Calls in flight, to stop those whose caller loses access.
    calls: crate::access::Calls,
    /// Client sessions' upstream sessions, by tenant and connector, to end those whose
    /// connector goes away.
    open: Mutex<Vec<(String, String, std::sync::Weak<Session>)>>,
    /// Client sessions rmcp holds in memory here, by session id (see `inline`).
    live: Mutex<HashMap<String, std::sync::Weak<ClientSession>>>,
}

/// What belongs to one client session.
#[derive(Debug, Default)]
struct ClientSession {
    /// Upstream sessions by connector name.
    upstream: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
    /// The log level the client asked for, applied to upstream sessions opened later.
    log_level: Mutex<Option<LoggingLevel>>,
    /// The upstream session ids recorded in the shared store, by connector name.
    recorded: Mutex<HashMap<String, String>>,
    /// The resources the client subscribed to, by connector name: renewed on an upstream
    /// session that replaces another.
    subscribed: Mutex<HashMap<String, std::collections::BTreeSet<String>>>,
    /// The client, as rmcp's session serves it: calls served without rmcp's session
    /// machinery (see `inline`) reach the client through it.
    peer: std::sync::OnceLock<rmcp::service::Peer<RoleServer>>,
}

#[derive(Debug, Clone)]
pub struct Gateway {
    core: Arc<Core>,
    client: Arc<ClientSession>,
}

/// The `_meta` key under which a 2026-07-28 client asks for log messages for one request.
pub(crate) const LOG_LEVEL_META: &str = "io.modelcontextprotocol/logLevel";

/// Whether the request belongs to a session (protocol 2025-03-26 .. 2025-11-25); requests
/// of 2026-07-28 carry none.
fn in_session(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.extensions
        .get::<http::request::Parts>()
        .is_some_and(|p| p.headers.contains_key("mcp-session-id"))
}

/// Results of session-era upstreams lack the discriminator 2026-07-28 clients require
/// (rmcp drops it again for session clients).
fn complete(result_type: &mut Option<ResultType>) {
    result_type.get_or_insert(ResultType::COMPLETE);
}

impl Gateway {
    pub fn new(
        policies: Arc<Policies>,
        upstreams: Arc<Upstreams>,
        reports: crate::reports::Reports,
        sessions: Arc<SessionRecords>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            core: Arc::new(Core {
                policies,
                upstreams,
                reports,
                reported: crate::pins::Reported::default(),
                sessions,
                catalogs: Mutex::default(),
                listing: Mutex::default(),
                holds: Holds::new(crate::relay::Diverted(metrics.relay_diverted.clone())),
                guards: Mutex::default(),
                metrics,
                calls: crate::access::Calls::default(),
                open: Mutex::default(),
                live: Mutex::default(),
            }),
            client: Arc::default(),
        }
    }

    /// A gateway for one more client session (or one request without a session).
    pub fn fork(&self) -> Self {
        Self {
            core: self.core.clone(),
            client: Arc::default(),
        }
    }

    /// The authenticated principal and the tenant's current policy.
    fn tenant(&self, ctx: &RequestContext<RoleServer>) -> Result<(Principal, Arc<Tenant>)> {
        self.remember(ctx);
        let principal = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Principal>())
            .cloned()
            .ok_or_else(|| Error::Internal("request is not authenticated".into()))?;
        let tenant = self
            .core
            .policies
            .get(principal.tenant.as_str())
            .ok_or(Error::TenantGone)?;
        Ok((principal, tenant))
    }

    fn connector<'t>(tenant: &'t Tenant, name: &str) -> Option<&'t Arc<Connector>> {
        tenant.connectors.iter().find(|c| c.name == name)
    }

    /// The breaker and retry budget of `tenant` x `c`, following the connector's breaker
    /// configuration, and the breaker's gauge.
    fn guard(&self, tenant: &str, c: &Connector) -> Held {
        let mut guards = lock(&self.core.guards);
        if let Some((guard, gauge)) = guards.get(tenant).and_then(|t| t.get(&c.name))
            && guard.config() == c.breaker
        {
            return (guard.clone(), gauge.clone());
        }
        let gauge = self.core.metrics.breaker(crate::metrics::BreakerLabel {
            tenant: tenant.to_owned(),
            connector: c.name.clone(),
        });
        let held = (Arc::new(Guard::new(c.breaker)), gauge);
        guards
            .entry(tenant.to_owned())
            .or_default()
            .insert(c.name.clone(), held.clone());
        held
    }

    /// Applies `tenant`'s new policy (`None`: gone) to what is in flight: calls whose
    /// caller lost access are stopped, and upstream sessions of connectors no longer in
    /// the policy (or changed) are ended; returns how many calls were stopped.
    pub fn enforce(&self, slug: &str, tenant: Option<&Tenant>) -> usize {
        let stopped = self.core.calls.stop(slug, tenant);
        let kept = |connector: &str, session: &Session| {
            tenant.is_some_and(|t| {
                t.connectors
                    .iter()
                    .any(|c| c.name == connector && c.fingerprint == session.fingerprint)
            })
        };
        let mut open = lock(&self.core.open);
        open.retain(|(t, c, weak)| {
            let Some(session) = weak.upgrade() else {
                return false;
            };
            if t == slug && !kept(c, &session) {
                session.end();
                return false;
            }
            true
        });
        stopped
    }

    /// The tenants with calls in flight here.
    pub fn busy_tenants(&self) -> Vec<String> {
        self.core.calls.tenants()
    }

    /// Every breaker this worker has, with its state; sets the breakers' gauges, and drops
    /// those of breakers it no longer has (under the same lock that makes breakers, so a
    /// breaker made meanwhile keeps its gauge).
    pub fn breakers(&self) -> Vec<(String, String, BreakerState)> {
        use crate::metrics::BreakerLabel;
        let guards = lock(&self.core.guards);
        let states: Vec<_> = guards
            .iter()
            .flat_map(|(t, cs)| {
                cs.iter()
                    .map(move |(c, (g, _))| (t.clone(), c.clone(), g.state()))
            })
            .collect();
        self.core
            .metrics
            .set_breakers(states.iter().map(|(t, c, state)| {
                let label = BreakerLabel {
                    tenant: t.clone(),
                    connector: c.clone(),
                };
                (label, state.gauge())
            }));
        states
    }

    /// Lets go of what is no longer needed: expired held calls, idle pooled upstream
    /// sessions, and the state of tenants and connectors that are gone.
    pub fn sweep(&self) {
        self.core.holds.purge();
        let policies = &self.core.policies;
        let exists = |tenant: &str, connector: &str| {
            policies
                .get(tenant)
                .is_some_and(|t| t.connectors.iter().any(|c| c.name == connector))
        };
        self.core.upstreams.sweep(exists);
        lock(&self.core.guards).retain(|t, cs| {
            cs.retain(|c, _| exists(t, c));
            !cs.is_empty()
        });
        lock(&self.core.catalogs).retain(|tenant, _| policies.get(tenant).is_some());
        lock(&self.core.listing).retain(|tenant, _| policies.get(tenant).is_some());
        lock(&self.core.live).retain(|_, client| client.strong_count() > 0);
    }
}

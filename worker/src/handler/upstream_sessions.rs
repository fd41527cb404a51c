//! Which upstream session a request uses: a session client's own (opened on first use, or
//! taken over from the shared record when another worker opened it), or for a request
//! without a session one borrowed from the connector's pool. A new upstream session id is
//! recorded with the client session, so any worker carries on the same upstream session.
//! When one upstream session replaces another (the upstream restarted and the session was
//! re-opened, or the connector changed), the client's resource subscriptions are renewed
//! on it, at the first request that uses it.

use super::{Gateway, in_session};
use crate::exchange::Upstream;
use crate::policy::{Connector, Tenant};
use crate::relay::Recipient;
use crate::resume::{MayEnd, Takeover};
use crate::sessions::UpstreamRecord;
use crate::sync::lock;
use crate::upstream::{Hooks, Session, UpstreamError, client_info};
use rmcp::model::{SetLevelRequestParams, SubscribeRequestParams};
use rmcp::service::{RequestContext, RoleServer};
use std::sync::Arc;

impl Gateway {
    /// The upstream session of `c` this request uses: its client session's own (opened on
    /// first use), or for a request without a session one borrowed from the pool.
    pub(super) async fn upstream(
        &self,
        ctx: &RequestContext<RoleServer>,
        tenant: &Tenant,
        c: &Connector,
    ) -> Result<Upstream, UpstreamError> {
        if !in_session(ctx) {
            let owner = Recipient {
                peer: ctx.peer.clone(),
                wants_logs: ctx.meta.get(super::LOG_LEVEL_META).is_some(),
                session: false,
            };
            return self
                .core
                .upstreams
                .lease(tenant.slug.as_str(), c, Some(owner))
                .await
                .map(Upstream::Leased);
        }
        let client_session = client_session_id(ctx);
        let mut sessions = self.client.upstream.lock().await;
        if let Some(s) = sessions.get(&c.name)
            && s.fingerprint == c.fingerprint
            && !s.is_closed()
        {
            let s = s.clone();
            drop(sessions);
            self.settle(&client_session, c, &s).await;
            return Ok(Upstream::Scoped(s));
        }
        let takeover = self.recorded(&client_session, c).await;
        let may_end: MayEnd = {
            let store = self.core.sessions.clone();
            let session = client_session.clone();
            Arc::new(move || {
                let store = store.clone();
                let session = session.clone();
                Box::pin(async move { store.ended(&session.tenant, &session.id).await })
            })
        };
        let caps = ctx
            .peer
            .peer_info()
            .map(|i| i.capabilities.clone())
            .unwrap_or_default();
        let max = self.core.upstreams.bounds.max_sessions_per_tenant;
        if self.open_upstream_sessions(tenant.slug.as_str()) >= max {
            return Err(UpstreamError::Bound(format!(
                "the tenant's client sessions hold {max} upstream sessions on this worker, its \
                 bound (an operator can raise --max-upstream-sessions-per-tenant)"
            )));
        }
        let hooks = Hooks { takeover, may_end };
        let session = Arc::new(
            self.core
                .upstreams
                .connect(c, client_info(caps), Some(hooks))
                .await?,
        );
        session.relay.set_owner(Some(Recipient {
            peer: ctx.peer.clone(),
            wants_logs: true,
            session: true,
        }));
        self.unasked(ctx, &session).await;
        sessions.insert(c.name.clone(), session.clone());
        lock(&self.core.open).push((
            tenant.slug.to_string(),
            c.name.clone(),
            Arc::downgrade(&session),
        ));
        drop(sessions);
        self.settle(&client_session, c, &session).await;
        Ok(Upstream::Scoped(session))
    }

    /// Sets up what new upstream session `session` may send the client of `ctx` unasked:
    /// the log level the client asked for, and whether its GET stream keeps it in memory.
    async fn unasked(&self, ctx: &RequestContext<RoleServer>, session: &crate::upstream::Session) {
        let level = *lock(&self.client.log_level);
        if let Some(level) = level
            && session.logs()
        {
            let _ = session
                .peer()
                .set_level(SetLevelRequestParams::new(level))
                .await;
        }
        if pushes(session, level.is_some()) {
            anchor(ctx);
        }
    }

    /// How many upstream sessions client sessions of `tenant` hold open here.
    fn open_upstream_sessions(&self, tenant: &str) -> usize {
        let mut open = lock(&self.core.open);
        open.retain(|(_, _, weak)| weak.upgrade().is_some_and(|s| !s.is_closed()));
        open.iter().filter(|(t, _, _)| t == tenant).count()
    }

    /// The upstream session of `c` another worker (or this one, before the session went
    /// idle) opened for this client session and recorded, to carry on with.
    async fn recorded(&self, client_session: &ClientSession, c: &Connector) -> Option<Takeover> {
        let recorded = self
            .core
            .sessions
            .upstreams(&client_session.tenant, &client_session.id)
            .await
            .remove(&c.name)
            .filter(|r| r.fingerprint == c.fingerprint)?;
        lock(&self.client.recorded).insert(c.name.clone(), recorded.session_id.clone());
        Some(Takeover {
            session_id: recorded.session_id,
            init: serde_json::from_value(recorded.init).ok()?,
        })
    }

    /// After `session` of `c` was used for the client session whose id `ctx` carries:
    /// records a new upstream session id, and subscribes it to what the client subscribed
    /// to on the one it replaced (the upstream restarted, or the connector changed).
    pub(super) async fn settled(
        &self,
        ctx: &RequestContext<RoleServer>,
        c: &Connector,
        session: &Session,
    ) {
        self.settle(&client_session_id(ctx), c, session).await;
    }

    async fn settle(&self, client_session: &ClientSession, c: &Connector, session: &Session) {
        if self.record(client_session, c, session).await {
            self.resubscribe(c, session).await;
        }
    }

    /// Subscribes `session` to every resource of `c` the client subscribed to.
    async fn resubscribe(&self, c: &Connector, session: &Session) {
        let uris: Vec<String> = lock(&self.client.subscribed)
            .get(&c.name)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default();
        for uri in uris {
            if let Err(e) = session
                .peer()
                .subscribe(SubscribeRequestParams::new(uri))
                .await
            {
                tracing::warn!(connector = %c.name, error = %e, "renewing a subscription on a new upstream session failed");
            }
        }
    }

    /// Records the upstream session id of `c` with the client session, when it is new, so
    /// another worker carries on the same upstream session; whether it replaced another.
    async fn record(
        &self,
        client_session: &ClientSession,
        c: &Connector,
        session: &Session,
    ) -> bool {
        let Some(assigned) = lock(&session.assigned).clone() else {
            return false;
        };
        let known = lock(&self.client.recorded).get(&c.name).cloned();
        if known.as_deref() == Some(assigned.as_str()) {
            return false;
        }
        let Some(init) = session.server_info() else {
            return false;
        };
        let record = UpstreamRecord {
            fingerprint: c.fingerprint,
            session_id: assigned.clone(),
            init,
        };
        self.core
            .sessions
            .record_upstream(&client_session.tenant, &client_session.id, &c.name, record)
            .await;
        lock(&self.client.recorded)
            .insert(c.name.clone(), assigned)
            .is_some()
    }
}

/// Whether upstream session `session` may send its client something unasked for, which
/// the client's GET stream would carry: it announces changes to its lists, or the client
/// asked for log messages (`logs_asked`) and it sends them. Resource updates follow a
/// subscription, which anchors its session itself; server requests and progress belong to
/// a call and travel on the call's own stream.
fn pushes(session: &crate::upstream::Session, logs_asked: bool) -> bool {
    session.peer().peer_info().is_some_and(|info| {
        let c = &info.capabilities;
        c.tools
            .as_ref()
            .is_some_and(|t| t.list_changed == Some(true))
            || c.prompts
                .as_ref()
                .is_some_and(|p| p.list_changed == Some(true))
            || c.resources
                .as_ref()
                .is_some_and(|r| r.list_changed == Some(true))
            || (logs_asked && c.logging.is_some())
    })
}

/// Marks the client session of `ctx` as holding an upstream session that may send it
/// something: it is not let go of while its GET stream may relay that (see `parking`).
pub(super) fn anchor(ctx: &RequestContext<RoleServer>) {
    if let Some(anchor) = ctx
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<crate::parking::Anchor>())
    {
        anchor.hold();
    }
}

/// The id of the client session `ctx` belongs to (empty without one).
fn client_session_id(ctx: &RequestContext<RoleServer>) -> ClientSession {
    let parts = ctx.extensions.get::<http::request::Parts>();
    ClientSession {
        tenant: parts
            .and_then(|p| p.extensions.get::<crate::principal::Principal>())
            .map(|p| p.tenant.to_string())
            .unwrap_or_default(),
        id: parts
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    }
}

/// A client session: its tenant and id, which its shared records are kept under.
#[derive(Debug, Clone)]
struct ClientSession {
    tenant: String,
    id: String,
}

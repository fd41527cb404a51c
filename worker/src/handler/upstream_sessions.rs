//! Which upstream session a request uses: a session client's own (opened on first use, or
//! taken over from the shared record when another worker opened it), or for a request
//! without a session one borrowed from the connector's pool. A new upstream session id is
//! recorded with the client session, so any worker carries on the same upstream session.

use super::{Gateway, in_session};
use crate::exchange::Upstream;
use crate::policy::{Connector, Tenant};
use crate::relay::Recipient;
use crate::resume::{MayEnd, Takeover};
use crate::sessions::UpstreamRecord;
use crate::sync::lock;
use crate::upstream::{Hooks, Session, UpstreamError, client_info};
use rmcp::model::SetLevelRequestParams;
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
                wants_logs: ctx.meta.get("io.modelcontextprotocol/logLevel").is_some(),
                session: false,
            };
            return self
                .core
                .upstreams
                .lease(tenant.slug.as_str(), c, Some(owner))
                .await
                .map(Upstream::Leased);
        }
        let client_session = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut sessions = self.client.upstream.lock().await;
        if let Some(s) = sessions.get(&c.name)
            && s.fingerprint == c.fingerprint
            && !s.is_closed()
        {
            let s = s.clone();
            drop(sessions);
            self.record(&client_session, c, &s).await;
            return Ok(Upstream::Scoped(s));
        }
        let takeover = self.recorded(&client_session, c).await;
        let may_end: MayEnd = {
            let store = self.core.sessions.clone();
            let id = client_session.clone();
            Arc::new(move || {
                let store = store.clone();
                let id = id.clone();
                Box::pin(async move { store.ended(&id).await })
            })
        };
        let caps = ctx
            .peer
            .peer_info()
            .map(|i| i.capabilities.clone())
            .unwrap_or_default();
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
        let level = *lock(&self.client.log_level);
        if let Some(level) = level
            && session.logs()
        {
            let _ = session
                .peer()
                .set_level(SetLevelRequestParams::new(level))
                .await;
        }
        sessions.insert(c.name.clone(), session.clone());
        lock(&self.core.open).push((
            tenant.slug.to_string(),
            c.name.clone(),
            Arc::downgrade(&session),
        ));
        drop(sessions);
        self.record(&client_session, c, &session).await;
        Ok(Upstream::Scoped(session))
    }

    /// The upstream session of `c` another worker (or this one, before the session went
    /// idle) opened for this client session and recorded, to carry on with.
    async fn recorded(&self, client_session: &str, c: &Connector) -> Option<Takeover> {
        let recorded = self
            .core
            .sessions
            .upstreams(client_session)
            .await
            .remove(&c.name)
            .filter(|r| r.fingerprint == c.fingerprint)?;
        lock(&self.client.recorded).insert(c.name.clone(), recorded.session_id.clone());
        Some(Takeover {
            session_id: recorded.session_id,
            init: serde_json::from_value(recorded.init).ok()?,
        })
    }

    /// Records the upstream session id of `c` with the client session, when it is new, so
    /// another worker carries on the same upstream session.
    async fn record(&self, client_session: &str, c: &Connector, session: &Session) {
        let Some(assigned) = lock(&session.assigned).clone() else {
            return;
        };
        let known = lock(&self.client.recorded).get(&c.name).cloned();
        if known.as_deref() == Some(assigned.as_str()) {
            return;
        }
        let Some(init) = session.server_info() else {
            return;
        };
        let record = UpstreamRecord {
            fingerprint: c.fingerprint,
            session_id: assigned.clone(),
            init,
        };
        self.core
            .sessions
            .record_upstream(client_session, &c.name, record)
            .await;
        lock(&self.client.recorded).insert(c.name.clone(), assigned);
    }
}

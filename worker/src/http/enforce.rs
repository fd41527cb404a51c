//! Losing access ends access here (see `access`): when a tenant's policy changes, what this
//! worker holds for callers that lost access ends, calls in flight, sessions and streams.

use super::App;
use rmcp::transport::streamable_http_server::session::SessionId;

/// How long the sessions that lost access at one policy change stay open, at most, for the
/// answers of their stopped calls (see `App::enforce`); they take no new request meanwhile.
const ANSWERS_AWAITED_FOR: std::time::Duration = std::time::Duration::from_secs(2);

impl App {
    /// Applies tenant `slug`'s current policy to what this worker holds for it: calls in
    /// flight and sessions of callers that lost access end (streams closed, upstream
    /// sessions ended), and so do upstream sessions of connectors it no longer has.
    pub async fn enforce(&self, slug: &str) {
        use rmcp::transport::streamable_http_server::session::SessionManager as _;
        let tenant = self.policies.get(slug);
        let stopped = self.breakers.enforce(slug, tenant.as_deref());
        let mut ended = Vec::new();
        for id in self.admission.sessions_of(slug) {
            let Ok(Some(owner)) = self.sessions.owner(slug, &id).await else {
                continue;
            };
            if crate::access::lost(&owner, tenant.as_deref()).is_none() {
                continue;
            }
            // Forgotten first, so its upstream sessions are ended too (see `resume`), and
            // so the session takes no new request from here on.
            self.sessions.forget(slug, &id).await;
            self.admission.session_closed(&id);
            ended.push(SessionId::from(id));
        }
        let mut closed = ended.len();
        // The calls stopped above are answered with why on their own streams first: rmcp
        // would end those streams unanswered if the session closed before their answers
        // reached them.
        let local = self.local_sessions.clone();
        // One wait for them all: a session waited for in turn would hold the next back.
        let answered = futures::future::join_all(ended.iter().map(|id| local.answered(id)));
        tokio::spawn(async move {
            let _ = tokio::time::timeout(ANSWERS_AWAITED_FOR, answered).await;
            for id in ended {
                let _ = local.close_session(&id).await;
            }
        });
        closed += self.quiet.close_lost(slug, |p| {
            crate::access::lost(p, tenant.as_deref()).is_some()
        });
        if stopped + closed > 0 {
            tracing::info!(
                tenant = slug,
                calls = stopped,
                sessions = closed,
                "access lost; ended"
            );
        }
    }

    /// Like `enforce`, for every tenant this worker holds anything of.
    pub async fn enforce_all(&self) {
        let mut slugs: Vec<String> = self.admission.sessions_here().into_keys().collect();
        slugs.extend(self.breakers.busy_tenants());
        slugs.sort();
        slugs.dedup();
        for slug in slugs {
            self.enforce(&slug).await;
        }
    }
}

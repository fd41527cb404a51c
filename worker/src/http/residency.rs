//! Which client sessions this worker holds in memory: parking idle ones (see `parking`),
//! and the cap on how many it holds.

use super::App;
use crate::error::Error;
use crate::limits::Refusal;
use crate::policy::Tenant;

impl App {
    /// Whether session `id` is in memory here.
    pub(super) async fn is_live(&self, id: &str) -> bool {
        self.local_sessions
            .inner
            .sessions
            .read()
            .await
            .contains_key(id)
    }

    /// The sessions in memory here.
    async fn live_sessions(&self) -> Vec<String> {
        let sessions = self.local_sessions.inner.sessions.read().await;
        sessions.keys().map(|k| k.to_string()).collect()
    }

    /// Parks sessions idle for long enough (see `parking`), then drops sessions no longer
    /// in memory from the per-tenant session counts.
    pub async fn prune_sessions(&self) {
        use rmcp::transport::streamable_http_server::session::SessionManager as _;
        let live = self.live_sessions().await;
        let idle = self.parking.idle(&live);
        for id in &idle {
            let _ = self.local_sessions.close_session(&id.as_str().into()).await;
            self.parking.parked(id);
        }
        let alive: std::collections::HashSet<String> =
            self.live_sessions().await.into_iter().collect();
        // The gauges first: whoever sees the parked count move sees them current.
        self.metrics.sessions_live.set(alive.len() as i64);
        self.metrics.quiet_streams.set(self.quiet.len() as i64);
        self.metrics.sessions_parked.inc_by(idle.len() as u64);
        self.admission.retain_sessions(|id| alive.contains(id));
    }

    /// Refuses a request that would bring one more session into memory (`session`, when
    /// it is parked, or a new one) over this worker's cap; one of `tenant`'s parked
    /// sessions also over its own cap, as a new one would be. Whether the request brings
    /// `session` back (it is not in memory here).
    pub(super) async fn room_for(
        &self,
        tenant: &Tenant,
        session: Option<&str>,
    ) -> Result<bool, Error> {
        let sessions = self.local_sessions.inner.sessions.read().await;
        if let Some(id) = session
            && sessions.contains_key(id)
        {
            return Ok(false);
        }
        if sessions.len() >= self.max_sessions {
            return Err(Error::Limited(Refusal::WorkerSessions));
        }
        drop(sessions);
        if session.is_some() {
            self.admission
                .room_for_session(tenant.slug.as_str(), tenant.quotas.max_sessions)
                .map_err(Error::Limited)?;
        }
        Ok(session.is_some())
    }
}

//! MCP sessions any worker can carry on. Each session has shared records: its owner (the
//! tenant and key that opened it; a session id is never a credential), the client's
//! `initialize` parameters, which rmcp replays to restore the session on a worker that has
//! not seen it, and the upstream sessions opened for it (per connector: session id and the
//! upstream's `initialize` answer), which another worker takes over. Records expire with
//! the store's time to live unless the session is used; a used session touches them every
//! few minutes.
//!
//! Records are keyed by tenant first (`{tenant}.{session}.owner`), so NATS credentials can
//! let a tenant's dedicated workers read and write its sessions and no one else's. rmcp's
//! own calls (`SessionStore`) name only the session; they run inside a request, whose
//! tenant the HTTP layer sets in [`REQUEST_TENANT`].

use crate::principal::Principal;
use crate::sync::lock;
use bytes::Bytes;
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_bus::{BusError, SessionKv};

const TOUCH_EVERY: Duration = Duration::from_secs(300);
/// How long a worker trusts its cached owner record before reading it again; also how
/// long a session terminated through another worker may still be used here.
const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a request waits for the shared store before falling back to what it knows.
const STORE_WAIT: Duration = Duration::from_millis(500);
/// How long a worker remembers a session nobody used.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Whether `id` can be a session id this platform issued; anything else is unknown.
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

tokio::task_local! {
    /// The tenant whose request is being served, for rmcp's session store calls.
    pub static REQUEST_TENANT: String;
}

fn owner_key(tenant: &str, id: &str) -> String {
    format!("{tenant}.{id}.owner")
}

fn init_key(tenant: &str, id: &str) -> String {
    format!("{tenant}.{id}.init")
}

fn upstreams_key(tenant: &str, id: &str) -> String {
    format!("{tenant}.{id}.upstreams")
}

/// An upstream session opened for a client session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamRecord {
    /// The connector configuration it was opened with.
    pub fingerprint: u64,
    pub session_id: String,
    /// The upstream's `initialize` result.
    pub init: serde_json::Value,
}

#[derive(Debug)]
pub struct SessionRecords {
    kv: Arc<dyn SessionKv>,
    /// Who opened it, when the shared record was last read, when it was last written.
    known: Mutex<HashMap<String, (Principal, Instant, Instant)>>,
}

impl SessionRecords {
    pub fn new(kv: Arc<dyn SessionKv>) -> Self {
        Self {
            kv,
            known: Mutex::default(),
        }
    }

    /// The store rmcp uses for `initialize` parameters.
    pub fn rmcp_store(&self) -> Arc<dyn SessionStore> {
        Arc::new(InitStore(self.kv.clone()))
    }

    /// Who owns session `id`, if anyone. `None` also when the session was terminated. While
    /// the shared store is unreachable, sessions known here are trusted as they were.
    pub async fn owner(&self, tenant: &str, id: &str) -> Result<Option<Principal>, BusError> {
        let local = lock(&self.known)
            .get(id)
            .filter(|(owner, _, _)| owner.tenant.as_str() == tenant)
            .cloned();
        if let Some((owner, checked, touched)) = &local
            && checked.elapsed() < RECHECK_EVERY
        {
            if touched.elapsed() > TOUCH_EVERY {
                self.touch(id, owner).await;
            }
            return Ok(Some(owner.clone()));
        }
        let read = tokio::time::timeout(STORE_WAIT, self.kv.get(&owner_key(tenant, id)))
            .await
            .unwrap_or_else(|_| Err(BusError::Unavailable("session store did not answer".into())));
        let stored = match read {
            Ok(bytes) => bytes
                .and_then(|b| serde_json::from_slice::<Principal>(&b).ok())
                .filter(|owner| owner.tenant.as_str() == tenant),
            // The shared store is away: sessions this worker knows keep working.
            Err(e) => match local {
                Some((owner, _, _)) => return Ok(Some(owner)),
                None => return Err(e),
            },
        };
        let due = {
            let mut known = lock(&self.known);
            match &stored {
                Some(owner) => {
                    let touched = local.map_or_else(Instant::now, |(_, _, t)| t);
                    known.insert(id.to_owned(), (owner.clone(), Instant::now(), touched));
                    touched.elapsed() > TOUCH_EVERY
                }
                None => {
                    // Terminated or expired; another tenant's session of that id stays.
                    if known
                        .get(id)
                        .is_some_and(|(owner, _, _)| owner.tenant.as_str() == tenant)
                    {
                        known.remove(id);
                    }
                    false
                }
            }
        };
        if let (true, Some(owner)) = (due, &stored) {
            self.touch(id, owner).await;
        }
        Ok(stored)
    }

    /// Records that `owner` opened session `id`.
    pub async fn bind(&self, id: &str, owner: &Principal) -> Result<(), BusError> {
        let bytes = serde_json::to_vec(owner).unwrap_or_default();
        let key = owner_key(owner.tenant.as_str(), id);
        self.kv.put(&key, Bytes::from(bytes)).await?;
        self.remember(id, owner);
        Ok(())
    }

    /// The upstream sessions recorded for client session `id`, by connector (none when the
    /// store cannot say).
    pub async fn upstreams(&self, tenant: &str, id: &str) -> HashMap<String, UpstreamRecord> {
        let key = upstreams_key(tenant, id);
        let read = tokio::time::timeout(STORE_WAIT, self.kv.get(&key)).await;
        match read {
            Ok(Ok(Some(bytes))) => serde_json::from_slice(&bytes).unwrap_or_default(),
            _ => HashMap::new(),
        }
    }

    /// Records the upstream session of `connector` for client session `id`.
    pub async fn record_upstream(
        &self,
        tenant: &str,
        id: &str,
        connector: &str,
        record: UpstreamRecord,
    ) {
        let mut all = self.upstreams(tenant, id).await;
        all.insert(connector.to_owned(), record);
        let bytes = serde_json::to_vec(&all).unwrap_or_default();
        let key = upstreams_key(tenant, id);
        if let Err(e) = self.kv.put(&key, Bytes::from(bytes)).await {
            tracing::debug!(error = %e, "upstream session not recorded");
        }
    }

    /// Whether client session `id` has ended (terminated or expired). Unknown while the
    /// store is away: then it has not.
    pub async fn ended(&self, tenant: &str, id: &str) -> bool {
        matches!(
            tokio::time::timeout(STORE_WAIT, self.kv.get(&owner_key(tenant, id))).await,
            Ok(Ok(None))
        )
    }

    /// Forgets a terminated session.
    pub async fn forget(&self, tenant: &str, id: &str) {
        lock(&self.known).remove(id);
        for key in [
            owner_key(tenant, id),
            init_key(tenant, id),
            upstreams_key(tenant, id),
        ] {
            if let Err(e) = self.kv.delete(&key).await {
                tracing::warn!(error = %e, "could not delete a session record");
            }
        }
    }

    /// Whether this worker knows session `id` as another tenant's.
    pub fn known_elsewhere(&self, tenant: &str, id: &str) -> bool {
        lock(&self.known)
            .get(id)
            .is_some_and(|(owner, _, _)| owner.tenant.as_str() != tenant)
    }

    fn remember(&self, id: &str, owner: &Principal) {
        let now = Instant::now();
        lock(&self.known).insert(id.to_owned(), (owner.clone(), now, now));
    }

    /// Forgets what this worker knows of sessions not used for a while (the shared records
    /// stay; a later request reads them again).
    pub fn sweep(&self) {
        lock(&self.known).retain(|_, (_, checked, _)| checked.elapsed() < FORGET_AFTER);
    }

    /// Writes the records again, restarting their time to live.
    async fn touch(&self, id: &str, owner: &Principal) {
        self.remember(id, owner);
        let tenant = owner.tenant.as_str();
        let work = async {
            let init = self.kv.get(&init_key(tenant, id)).await?;
            let upstreams = self.kv.get(&upstreams_key(tenant, id)).await?;
            self.bind(id, owner).await?;
            if let Some(init) = init {
                self.kv.put(&init_key(tenant, id), init).await?;
            }
            if let Some(upstreams) = upstreams {
                self.kv.put(&upstreams_key(tenant, id), upstreams).await?;
            }
            Ok::<_, BusError>(())
        };
        match tokio::time::timeout(STORE_WAIT, work).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not refresh a session record"),
            Err(_) => tracing::warn!("refreshing a session record timed out"),
        }
    }
}

#[derive(Debug)]
struct InitStore(Arc<dyn SessionKv>);

/// The key of session `id`'s `initialize` record, in the tenant of the request being
/// served; an error outside one (rmcp calls its store only while serving a request).
fn request_init_key(id: &str) -> Result<String, SessionStoreError> {
    REQUEST_TENANT
        .try_with(|tenant| init_key(tenant, id))
        .map_err(|_| SessionStoreError::from(BusError::Unavailable("no request tenant".into())))
}

#[async_trait::async_trait]
impl SessionStore for InitStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        if !plausible_id(session_id) {
            return Ok(None);
        }
        match self.0.get(&request_init_key(session_id)?).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let bytes = serde_json::to_vec(state)?;
        self.0
            .put(&request_init_key(session_id)?, Bytes::from(bytes))
            .await?;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.0.delete(&request_init_key(session_id)?).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_ids_are_refused() {
        assert!(plausible_id("0b6f2c1e-7a1d-4c7e-9d1e-3f0a1b2c3d4e"));
        for bad in ["", "a b", "a.b", "*", ">", &"a".repeat(129), "ä"] {
            assert!(!plausible_id(bad), "{bad:?}");
        }
    }
}

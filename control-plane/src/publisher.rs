//! The outbox publisher: drains `policy_outbox` into the policy bus. On start it publishes
//! every tenant's current policy (so a bus that lost data, or changes made while NATS was
//! away, catch up), then drains the outbox whenever a change is signalled and on a short
//! tick (changes made through another control-plane replica). While the bus is unreachable
//! it retries with backoff and acknowledges nothing, so no change is lost. Any number of
//! replicas may run this: the bus refuses writes that would move a tenant backwards.

use crate::compile::{Keys, compile};
use crate::error::Result as StoreResult;
use crate::model::now_millis;
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{PolicyBus, Published, tombstone};
use switchyard_common::TenantSlug;
use switchyard_proto::policy::v1::TenantPolicy;
use tokio::sync::Notify;

const BATCH: u32 = 256;
const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] crate::Error),
    #[error(transparent)]
    Bus(#[from] switchyard_bus::BusError),
}

#[derive(Debug, Clone)]
pub struct Publisher {
    store: Store,
    bus: Arc<dyn PolicyBus>,
    keys: Keys,
    changed: Arc<Notify>,
}

impl Publisher {
    pub fn new(store: Store, bus: Arc<dyn PolicyBus>, keys: Keys) -> Self {
        let changed = store.changes();
        Self {
            store,
            bus,
            keys,
            changed,
        }
    }

    /// The current policy of `tenant`, or its tombstone at `deleted_at` if it is gone.
    /// `None` if the stored state does not compile (logged; an operator must fix it).
    async fn policy_of(
        &self,
        tenant: &TenantSlug,
        deleted_at: u64,
    ) -> StoreResult<Option<TenantPolicy>> {
        match self.store.tenant_state(tenant).await? {
            None => Ok(Some(tombstone(tenant.as_str(), deleted_at))),
            Some(state) => match compile(&state, &self.keys, now_millis()) {
                Ok(p) => Ok(Some(p)),
                Err(e) => {
                    tracing::error!(tenant = %tenant, error = %e, "policy does not compile; not published");
                    Ok(None)
                }
            },
        }
    }

    async fn publish(&self, policy: &TenantPolicy) -> Result<(), PublishError> {
        match self.bus.publish(policy).await? {
            Published::Written => {
                tracing::debug!(tenant = %policy.tenant, revision = policy.revision, "policy published");
            }
            Published::Stale { stored } => {
                tracing::debug!(tenant = %policy.tenant, revision = policy.revision, stored, "bus already newer");
            }
        }
        Ok(())
    }

    /// Publishes every existing tenant's current policy.
    pub async fn republish_all(&self) -> Result<usize, PublishError> {
        let mut after: Option<String> = None;
        let mut count = 0;
        loop {
            let page = self.store.list_tenants(after.as_deref(), BATCH).await?;
            for t in &page {
                if let Some(policy) = self.policy_of(&t.slug, t.policy_revision).await? {
                    self.publish(&policy).await?;
                    count += 1;
                }
            }
            match page.last() {
                Some(last) if page.len() == BATCH as usize => after = Some(last.slug.to_string()),
                _ => return Ok(count),
            }
        }
    }

    /// Publishes what the outbox holds and acknowledges it; returns how many entries.
    pub async fn drain(&self) -> Result<usize, PublishError> {
        let mut drained = 0;
        loop {
            let entries = self.store.outbox_pending(BATCH).await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(drained);
            };
            // Each tenant once per batch, at its newest revision: compiling reads the
            // current state anyway.
            let mut newest: BTreeMap<&TenantSlug, u64> = BTreeMap::new();
            for e in &entries {
                let r = newest.entry(&e.tenant).or_default();
                *r = (*r).max(e.revision);
            }
            for (tenant, revision) in newest {
                if let Some(policy) = self.policy_of(tenant, revision).await? {
                    self.publish(&policy).await?;
                }
            }
            self.store.outbox_ack(last).await?;
            drained += entries.len();
        }
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        let mut caught_up = false;
        loop {
            let result = if caught_up {
                self.drain().await.map(|_| ())
            } else {
                match self.republish_all().await {
                    Ok(n) => {
                        tracing::info!(tenants = n, "published every tenant's policy");
                        caught_up = true;
                        self.drain().await.map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            };
            let wait = match result {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    TICK
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "publishing policies failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

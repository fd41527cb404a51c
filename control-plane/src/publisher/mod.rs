//! The outbox publisher: drains `policy_outbox` into the policy bus. On start it publishes
//! every tenant's current policy (so a bus that lost data, or changes made while NATS was
//! away, catch up), then drains the outbox whenever a change is signalled and on a short
//! tick (changes made through another control-plane replica). While the bus is unreachable
//! it retries with backoff and acknowledges nothing, so no change is lost. Any number of
//! replicas may run this: the bus refuses writes that would move a tenant backwards.
//! Each tenant's outcome is recorded in the store (its `TenantStatus`) and counted in the
//! control plane's metrics.

use crate::compile::{Keys, compile};
use crate::error::Result as StoreResult;
use crate::metrics::Metrics;
use crate::model::now_millis;
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{PolicyBus, Published, tombstone};
use switchyard_common::TenantSlug;
use switchyard_proto::policy::v1::TenantPolicy;
use tracing::Instrument as _;

mod retries;
use retries::Retries;

const BATCH: u32 = 256;
const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the publisher looks for policies sealed with another policy key (replicas
/// still holding the old key during a rotation publish with it until they are replaced).
const RESEAL_EVERY: Duration = Duration::from_secs(60);
/// How often the publisher looks for tenants whose publish failed on record.
const LOOK_EVERY: Duration = Duration::from_secs(30);

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
    changed: tokio::sync::watch::Receiver<u64>,
    metrics: Arc<Metrics>,
    /// Names the policy key policies are sealed with now.
    key_id: String,
    /// Tenants whose policy failed on its own, published again apart from the rest.
    retries: Arc<Retries>,
}

impl Publisher {
    pub fn new(store: Store, bus: Arc<dyn PolicyBus>, keys: Keys, metrics: Arc<Metrics>) -> Self {
        let changed = store.changes();
        let key_id = keys.policy.primary_id();
        Self {
            store,
            bus,
            keys,
            changed,
            metrics,
            key_id,
            retries: Arc::default(),
        }
    }

    /// Records why `tenant`'s policy was not published; recording is best effort.
    async fn failed(&self, tenant: &TenantSlug, reason: &'static str, error: &str) {
        self.metrics.publish_failed(reason);
        if let Err(e) = self.store.record_publish_error(tenant, error).await {
            tracing::debug!(tenant = %tenant, error = %e, "recording a publish error failed");
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
                    self.failed(
                        tenant,
                        "compile",
                        &format!("the policy does not compile: {e}"),
                    )
                    .await;
                    Ok(None)
                }
            },
        }
    }

    async fn publish(
        &self,
        tenant: &TenantSlug,
        policy: &TenantPolicy,
    ) -> Result<(), PublishError> {
        self.metrics.publish_attempts.inc();
        match self.bus.publish(policy).await {
            Ok(Published::Written) => {
                tracing::debug!(tenant = %policy.tenant, revision = policy.revision, "policy published");
            }
            Ok(Published::Stale { stored }) => {
                // What the bus holds was written, and recorded, by whoever wrote it.
                tracing::debug!(tenant = %policy.tenant, revision = policy.revision, stored, "bus already newer");
                return Ok(());
            }
            Err(e) => {
                self.failed(
                    tenant,
                    "bus",
                    &format!("the policy bus did not take it: {e}"),
                )
                .await;
                return Err(e.into());
            }
        }
        if !is_tombstone(policy)
            && let Err(e) = self
                .store
                .record_published(tenant, policy.revision, &self.key_id)
                .await
        {
            tracing::debug!(tenant = %tenant, error = %e, "recording a publish failed");
        }
        Ok(())
    }

    /// Publishes each tenant at its revision. A policy that fails on its own is retried
    /// apart (`Retries`) and the others go on; an error means the bus is away, and nothing
    /// of this pass should be taken as done.
    async fn publish_each<'a>(
        &self,
        tenants: impl Iterator<Item = (&'a TenantSlug, u64)>,
    ) -> Result<(), PublishError> {
        let mut failed = Vec::new();
        let mut written = 0;
        for (tenant, revision) in tenants {
            match self.policy_of(tenant, revision).await? {
                Some(policy) => match self
                    .publish(tenant, &policy)
                    .instrument(switchyard_common::span!(
                        "policy.publish",
                        tenant = %tenant,
                        revision,
                    ))
                    .await
                {
                    Ok(()) => written += 1,
                    Err(e) => failed.push((tenant.clone(), e)),
                },
                None => self.retries.fail(tenant),
            }
        }
        if !failed.is_empty() && written == 0 && !self.bus.is_connected() {
            return Err(failed.swap_remove(0).1);
        }
        for (tenant, e) in failed {
            tracing::warn!(tenant = %tenant, error = %e, "this tenant's policy is retried on its own");
            self.retries.fail(&tenant);
        }
        Ok(())
    }

    /// Publishes every existing tenant's current policy.
    pub async fn republish_all(&self) -> Result<usize, PublishError> {
        let mut after: Option<String> = None;
        let mut count = 0;
        loop {
            let page = self.store.list_tenants(after.as_deref(), BATCH).await?;
            self.publish_each(page.iter().map(|t| (&t.slug, t.policy_revision)))
                .await?;
            count += page.len();
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
            self.publish_each(newest.into_iter()).await?;
            self.store.outbox_ack(last).await?;
            drained += entries.len();
        }
    }

    /// Gives a new revision to every tenant whose policy was last published sealed with
    /// another policy key, so it is published again under the current one (after the
    /// policy key changed); returns how many.
    pub async fn reseal(&self) -> Result<usize, PublishError> {
        let mut count = 0;
        loop {
            let stale = self
                .store
                .sealed_with_other_key(&self.key_id, BATCH)
                .await?;
            // What the sweep found when it started: 0 once a sweep finds none.
            if count == 0 {
                self.metrics.sealed_with_other_key.set(stale.len() as i64);
            }
            if stale.is_empty() {
                return Ok(count);
            }
            for tenant in &stale {
                self.store.touch_policy(tenant).await?;
            }
            count += stale.len();
            // Touched tenants keep their old key until published: publish before looking
            // again, or the same tenants come back.
            self.drain().await?;
        }
    }

    /// Publishes again the tenants whose policy failed on its own and whose wait is over;
    /// with `look`, first takes on every tenant whose publish failed on record (another
    /// replica's, or before a restart).
    async fn retry_failed(&self, look: bool) -> Result<(), PublishError> {
        if look {
            for (tenant, _) in self.store.publish_failures(BATCH).await? {
                self.retries.adopt(&tenant);
            }
        }
        for tenant in self.retries.due() {
            let revision = self
                .store
                .get_tenant(&tenant)
                .await
                .map_or(0, |t| t.policy_revision);
            let published = match self.policy_of(&tenant, revision).await? {
                Some(policy) => self.publish(&tenant, &policy).await.is_ok(),
                None => false,
            };
            if published {
                self.retries.done(&tenant);
            } else {
                self.retries.fail(&tenant);
            }
        }
        Ok(())
    }

    /// One round of work: everything once after a start, then what the outbox holds, a
    /// look for policies sealed with another key now and then, and the tenants retried on
    /// their own.
    async fn pass(
        &self,
        caught_up: &mut bool,
        resealed: &mut Option<tokio::time::Instant>,
        looked: &mut Option<tokio::time::Instant>,
    ) -> Result<(), PublishError> {
        if !*caught_up {
            let n = self.republish_all().await?;
            tracing::info!(tenants = n, "published every tenant's policy");
            *caught_up = true;
            self.drain().await?;
            // The look for policies sealed with another key waits for the next round,
            // when what was just written is on record.
            return Ok(());
        }
        self.drain().await?;
        if resealed.is_none_or(|at| at.elapsed() >= RESEAL_EVERY) {
            *resealed = Some(tokio::time::Instant::now());
            let n = self.reseal().await?;
            if n > 0 {
                tracing::info!(
                    tenants = n,
                    "policies sealed with another policy key published again"
                );
            }
        }
        let look = looked.is_none_or(|at| at.elapsed() >= LOOK_EVERY);
        if look {
            *looked = Some(tokio::time::Instant::now());
        }
        self.retry_failed(look).await
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut changed = self.changed.clone();
        let mut backoff = Duration::from_millis(100);
        let mut caught_up = false;
        let mut resealed: Option<tokio::time::Instant> = None;
        let mut looked: Option<tokio::time::Instant> = None;
        loop {
            let result = self.pass(&mut caught_up, &mut resealed, &mut looked).await;
            let wait = match result {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    TICK
                }
                Err(e) => {
                    if let PublishError::Store(_) = e {
                        self.metrics.publish_failed("store");
                    }
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "publishing policies failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                _ = changed.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Whether `policy` says its tenant is gone.
fn is_tombstone(policy: &TenantPolicy) -> bool {
    policy.status == switchyard_proto::policy::v1::Status::Deleted as i32
}

//! Audit retention: every hour, the records older than their tenant's retention (or the
//! control plane's) are removed from the start of each chain (its newest record always
//! stays), cut where a signed checkpoint covers the first record kept, and the head row
//! notes where the chain now starts, so it still verifies. Replicas may all run it: each
//! chain's pruning holds its head's row lock.

use crate::store::Store;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(3600);

/// Days records are kept unless the control plane is told otherwise.
pub const DEFAULT_DAYS: u32 = 365;

/// `days` as a duration.
pub fn days(days: u32) -> Duration {
    Duration::from_secs(u64::from(days) * 86_400)
}

/// Runs until the task is dropped; `keep` is the retention of tenants that set none.
pub async fn run(store: Store, keep: Duration) {
    loop {
        match store.prune_audit(crate::model::now_millis(), keep).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired audit records removed"),
            Err(e) => tracing::warn!(error = %e, "removing expired audit records failed"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

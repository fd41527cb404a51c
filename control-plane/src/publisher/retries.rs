//! Tenants whose policy could not be published on its own (too large for the bus, or not
//! compiling), each retried after its own backoff: from `FIRST_WAIT`, doubling to
//! `LONGEST_WAIT`. Every other tenant's changes flow meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use switchyard_common::TenantSlug;
use tokio::time::Instant;

const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(super) struct Retries {
    waiting: Mutex<HashMap<TenantSlug, (Duration, Instant)>>,
}

impl Retries {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<TenantSlug, (Duration, Instant)>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `tenant`'s policy failed (again): it waits twice as long as last time.
    pub(super) fn fail(&self, tenant: &TenantSlug) {
        let mut waiting = self.waiting();
        let wait = waiting
            .get(tenant)
            .map_or(FIRST_WAIT, |(w, _)| (*w * 2).min(LONGEST_WAIT));
        waiting.insert(tenant.clone(), (wait, Instant::now() + wait));
    }

    /// Takes on `tenant`, whose publish failed on record, unless it waits already.
    pub(super) fn adopt(&self, tenant: &TenantSlug) {
        self.waiting()
            .entry(tenant.clone())
            .or_insert((FIRST_WAIT, Instant::now()));
    }

    /// `tenant`'s policy is on the bus.
    pub(super) fn done(&self, tenant: &TenantSlug) {
        self.waiting().remove(tenant);
    }

    /// Tenants whose wait is over.
    pub(super) fn due(&self) -> Vec<TenantSlug> {
        let now = Instant::now();
        self.waiting()
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(t, _)| t.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failing_tenant_waits_longer_each_time_up_to_a_bound() {
        let r = Retries::default();
        let t = TenantSlug::parse("big").unwrap();
        r.fail(&t);
        assert!(r.due().is_empty());
        tokio::time::advance(FIRST_WAIT).await;
        assert_eq!(r.due(), std::slice::from_ref(&t));
        r.fail(&t);
        tokio::time::advance(FIRST_WAIT).await;
        assert!(r.due().is_empty(), "the second wait is twice the first");
        tokio::time::advance(FIRST_WAIT).await;
        assert_eq!(r.due(), std::slice::from_ref(&t));
        for _ in 0..10 {
            r.fail(&t);
        }
        tokio::time::advance(LONGEST_WAIT).await;
        assert_eq!(
            r.due(),
            std::slice::from_ref(&t),
            "never longer than the bound"
        );
        r.done(&t);
        assert!(r.due().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tenant_failing_on_record_is_due_at_once_unless_it_waits() {
        let r = Retries::default();
        let (a, b) = (
            TenantSlug::parse("a").unwrap(),
            TenantSlug::parse("b").unwrap(),
        );
        r.fail(&a);
        r.adopt(&a);
        r.adopt(&b);
        assert_eq!(r.due(), [b]);
    }
}

//! Refused requests and authentication failures, tallied for the audit trail. Each is
//! counted in its group (tenant, kind, key, reason, tool, source); every [`INTERVAL`] (by
//! default) the tallies are sent as one report each (`switchyard_bus::RefusalReport`) and start again.
//! A flood of refusals is a report per group and interval, never a report each.
//!
//! Bounded: at most [`MAX_GROUPS`] groups are tallied at once; beyond that a refusal is
//! counted in its tenant's overflow group (key, tool and source `other`), so what is
//! refused is still counted, by tenant and reason. Only tenants the worker serves are
//! tallied: a request to a tenant it does not know is refused and counted in metrics only.

use crate::reports::Reporter;
use crate::sync::lock;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use switchyard_bus::{RefusalKind, RefusalReport};

/// How often tallies are reported by default.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Groups tallied at once at most, beyond the overflow groups.
pub const MAX_GROUPS: usize = 4096;
const OTHER: &str = "other";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Group {
    tenant: String,
    kind: RefusalKind,
    key: Option<String>,
    subject: Option<String>,
    reason: &'static str,
    target: Option<String>,
    source: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

/// One refusal to tally.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    pub tenant: &'a str,
    pub kind: RefusalKind,
    /// The key refused, or the key id a failed credential claimed.
    pub key: Option<&'a str>,
    /// The subject of the access token refused.
    pub subject: Option<&'a str>,
    /// The error's reason.
    pub reason: &'static str,
    /// The tool, for a refusal by role.
    pub target: Option<&'a str>,
    /// The client's address, for an authentication failure.
    pub source: Option<IpAddr>,
}

#[derive(Debug)]
pub struct Refusals {
    groups: Mutex<HashMap<Group, Tally>>,
    reporter: Reporter<RefusalReport>,
    worker: String,
    every: Duration,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Refusals {
    /// Tallies reported with `reporter` as worker `worker`'s, `every` so often.
    pub fn new(reporter: Reporter<RefusalReport>, worker: String, every: Duration) -> Self {
        Self {
            groups: Mutex::default(),
            reporter,
            worker,
            every,
        }
    }

    pub fn reporter(&self) -> &Reporter<RefusalReport> {
        &self.reporter
    }

    /// Counts `refused` in its group.
    pub fn note(&self, refused: Refused<'_>) {
        let mut group = Group {
            tenant: refused.tenant.to_owned(),
            kind: refused.kind,
            key: refused.key.map(str::to_owned),
            subject: refused.subject.map(str::to_owned),
            reason: refused.reason,
            target: refused.target.map(str::to_owned),
            source: refused.source.map(|ip| ip.to_string()),
        };
        let now = now_ms();
        let mut groups = lock(&self.groups);
        if groups.len() >= MAX_GROUPS && !groups.contains_key(&group) {
            group.key = group.key.map(|_| OTHER.to_owned());
            group.subject = group.subject.map(|_| OTHER.to_owned());
            group.target = group.target.map(|_| OTHER.to_owned());
            group.source = group.source.map(|_| OTHER.to_owned());
        }
        let tally = groups.entry(group).or_insert(Tally {
            count: 0,
            first_ms: now,
            last_ms: now,
        });
        tally.count += 1;
        tally.last_ms = now;
    }

    /// Counts a call whose usage event `lost` was lost: the audit trail gets a gap record
    /// for it, under the caller's key or token subject.
    pub fn lost(&self, lost: &switchyard_bus::UsageEvent) {
        self.note(Refused {
            tenant: &lost.tenant,
            kind: RefusalKind::AuditGap,
            key: Some(lost.key_id.as_str()).filter(|k| !k.is_empty()),
            subject: lost.subject.as_deref(),
            reason: "report_queue_full",
            target: None,
            source: None,
        });
    }

    /// Sends every tally as a report and starts again. A tally the reporter's queue has
    /// no room for is kept, and sent with the next: a gap record in particular is all that
    /// accounts for the calls it counts.
    pub fn flush(&self) {
        let groups = std::mem::take(&mut *lock(&self.groups));
        for (group, tally) in groups {
            let report = RefusalReport {
                id: uuid::Uuid::new_v4().simple().to_string(),
                tenant: group.tenant.clone(),
                kind: group.kind,
                key_id: group.key.clone(),
                subject: group.subject.clone(),
                reason: group.reason.to_owned(),
                target: group.target.clone(),
                source: group.source.clone(),
                count: tally.count,
                first_ms: tally.first_ms,
                last_ms: tally.last_ms,
                worker: self.worker.clone(),
            };
            if self.reporter.try_record(report).is_err() {
                self.keep(group, tally);
            }
        }
    }

    /// Puts `tally` of `group` back, with what was counted in it since.
    fn keep(&self, group: Group, tally: Tally) {
        let mut groups = lock(&self.groups);
        let kept = groups.entry(group).or_insert(Tally {
            count: 0,
            first_ms: tally.first_ms,
            last_ms: tally.last_ms,
        });
        kept.count += tally.count;
        kept.first_ms = kept.first_ms.min(tally.first_ms);
        kept.last_ms = kept.last_ms.max(tally.last_ms);
    }

    pub async fn run(&self, cancel: tokio_util::sync::CancellationToken) {
        let mut every = tokio::time::interval(self.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.flush(),
                () = cancel.cancelled() => break,
            }
        }
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use std::sync::Arc;

    fn refusals() -> (Refusals, Arc<switchyard_bus::MemoryRefusals>) {
        let bus = Arc::new(switchyard_bus::MemoryRefusals::default());
        let reporter = Reporter::start(bus.clone(), Default::default(), 100);
        (Refusals::new(reporter, "w-1".into(), INTERVAL), bus)
    }

    fn limited<'a>(key: &'a str) -> Refused<'a> {
        Refused {
            tenant: "acme",
            kind: RefusalKind::Refusal,
            key: Some(key),
            subject: None,
            reason: "rate_limited",
            target: None,
            source: None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_tally_the_queue_has_no_room_for_is_kept_not_lost() {
        let bus = Arc::new(switchyard_bus::MemoryRefusals::default());
        // Room for one report, and the reporter does not run until this test yields.
        let reporter = Reporter::start(bus.clone(), Default::default(), 1);
        let refusals = Refusals::new(reporter, "w-1".into(), INTERVAL);
        for (key, n) in [("k1", 5), ("k2", 3), ("k3", 1)] {
            for _ in 0..n {
                refusals.note(limited(key));
            }
        }
        refusals.flush();
        assert_eq!(lock(&refusals.groups).len(), 2, "two tallies kept");
        refusals.note(limited("k1"));
        for _ in 0..100 {
            tokio::task::yield_now().await;
            refusals.flush();
            if lock(&refusals.groups).is_empty() {
                break;
            }
        }
        assert!(lock(&refusals.groups).is_empty(), "every tally sent");
        let mut reports = switchyard_bus::Queue::consume(bus.as_ref()).await.unwrap();
        let mut counted = 0;
        while counted < 10 {
            let next = tokio::time::timeout(Duration::from_secs(10), reports.next());
            counted += next.await.unwrap().unwrap().unwrap().event.count;
        }
        assert_eq!(counted, 10, "every refusal counted once");
    }

    #[tokio::test]
    async fn a_flood_is_one_tally_per_group() {
        let (refusals, _) = refusals();
        for _ in 0..10_000 {
            refusals.note(limited("k1"));
        }
        refusals.note(limited("k2"));
        let groups = lock(&refusals.groups);
        assert_eq!(groups.len(), 2);
        let k1 = groups
            .iter()
            .find(|(g, _)| g.key.as_deref() == Some("k1"))
            .map(|(_, t)| t.count);
        assert_eq!(k1, Some(10_000));
    }

    #[tokio::test]
    async fn beyond_the_bound_refusals_are_counted_in_the_tenants_overflow_group() {
        let (refusals, _) = refusals();
        let keys: Vec<String> = (0..MAX_GROUPS + 500).map(|i| format!("k{i}")).collect();
        for key in &keys {
            refusals.note(limited(key));
        }
        let groups = lock(&refusals.groups);
        assert_eq!(groups.len(), MAX_GROUPS + 1);
        let other = groups
            .iter()
            .find(|(g, _)| g.key.as_deref() == Some(OTHER))
            .map(|(_, t)| t.count);
        assert_eq!(other, Some(500));
        let total: u64 = groups.values().map(|t| t.count).sum();
        assert_eq!(total, keys.len() as u64, "every refusal counted");
    }
}

//! Admission control for real work (`tools/call`, `resources/read`, `prompts/get`): per
//! tenant and per key rates (GCRA, governor), the tenant's concurrent requests and sessions,
//! then the worker's own in-flight cap. Tenant limits come first, so a tenant over its limits
//! is refused before it can take any of the worker's shared capacity.
//!
//! Places are held by `Admitted` until the answer (perhaps a stream) is finished; `http`
//! calls `admit` before rmcp sees a request, and refusals become `Error::Limited`.
//!
//! **Across the fleet.** Every worker reads the fleet's heartbeats every `FLEET_EVERY`
//! (`lib.rs`). A tenant's rate, burst and concurrency are split evenly: each of N ready
//! workers enforces rate/N (one cell every N/rate seconds), burst/N (at least 1) and
//! concurrency/N (rounded up) — see `rates::share` and `Admission::gate`. With load spread
//! evenly the tenant gets its configured rate in total; with load on one worker, its share
//! there, never more than the total. A concurrency gate is resized in place, counting the
//! requests in flight, so a smaller share takes effect as they finish. Sessions are counted,
//! not split: heartbeats carry each worker's sessions per tenant, and a new session is
//! admitted only while the fleet total is under `max_sessions` (sessions opened at the same
//! moment, or elsewhere since the last heartbeat, can overshoot it by their number).
//!
//! When a worker joins, the others re-share within one read of its first heartbeat; until
//! then the fleet may admit up to one share more, and each new share starts with a full
//! burst (up to one burst more at that moment). When a worker leaves or drains, its share
//! is redistributed once its heartbeat expires (`Buckets::heartbeat_ttl`) or says it is not
//! ready; meanwhile the fleet admits less, never more. Under a partition from NATS a
//! cut-off worker keeps enforcing the share it last knew; the others drop it once its
//! heartbeat expires and re-share among themselves, so until the partition heals the fleet
//! may admit the rate plus the cut-off workers' shares (two workers, one cut off: up to 1.5
//! times the rate), and their sessions stop being counted by the others.

mod rates;

use crate::sync::lock;
use rates::Rates;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The wait suggested when a concurrency or session cap is reached.
pub const CAP_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a refused request is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over the tenant's or the key's rate: retry after the given wait.
    Rate {
        scope: RateScope,
        retry_after: Duration,
    },
    /// The tenant's concurrent requests are all in use.
    Concurrency,
    /// The tenant has as many sessions as it may.
    Sessions,
    /// The tenant's requests that are not real work (listings, streams, ...) are all in
    /// use.
    Others,
    /// This worker is saturated.
    Saturated,
    /// This worker holds as many live sessions as it may (another worker may have room).
    WorkerSessions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    Tenant,
    Key,
}

impl RateScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Key => "key",
        }
    }
}

/// A rate and burst; zero rate means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// A tenant's concurrency share. Resized in place, so requests holding places count
/// against the new size: a shrink that cannot take free places at once takes them as the
/// held ones come back (`debt`).
#[derive(Debug)]
struct Gate {
    permits: usize,
    semaphore: Arc<Semaphore>,
    debt: usize,
}

impl Gate {
    fn resize(&mut self, permits: usize) {
        if permits > self.permits {
            let grow = permits - self.permits;
            let repaid = grow.min(self.debt);
            self.debt -= repaid;
            self.semaphore.add_permits(grow - repaid);
        } else {
            self.debt += self.permits - permits;
        }
        self.permits = permits;
        self.repay();
    }

    fn repay(&mut self) {
        if self.debt > 0 {
            self.debt -= self.semaphore.forget_permits(self.debt);
        }
    }
}

/// `tenant`'s gate in `gates`, sized to this worker's share of `max` (at least one).
fn gate(
    gates: &Mutex<HashMap<String, Gate>>,
    tenant: &str,
    max: u32,
    fleet: usize,
) -> Arc<Semaphore> {
    let permits = (max as usize).div_ceil(fleet).max(1);
    let mut gates = lock(gates);
    let gate = gates.entry(tenant.to_owned()).or_insert_with(|| Gate {
        permits,
        semaphore: Arc::new(Semaphore::new(permits)),
        debt: 0,
    });
    if gate.permits != permits {
        gate.resize(permits);
    }
    gate.repay();
    gate.semaphore.clone()
}

/// Everything a worker admits work by.
#[derive(Debug)]
pub struct Admission {
    tenants: Rates,
    keys: Rates,
    concurrency: Mutex<HashMap<String, Gate>>,
    /// Per tenant, for requests that are not real work.
    others: Mutex<HashMap<String, Gate>>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// Live workers, this one included.
    fleet: std::sync::atomic::AtomicUsize,
    /// Sessions other workers hold, by tenant (from their heartbeats).
    elsewhere: Mutex<HashMap<String, u64>>,
    /// Sessions this worker holds, by tenant.
    here: Mutex<HashMap<String, HashSet<String>>>,
    /// Sessions being opened here, by tenant: counted until they are open or refused.
    opening: Arc<Mutex<HashMap<String, u64>>>,
}

/// Held while a request is being served; dropping it frees its places.
#[derive(Debug)]
pub struct Admitted {
    _tenant: Option<OwnedSemaphorePermit>,
    _worker: Option<OwnedSemaphorePermit>,
    _session: Option<Opening>,
}

/// A session being opened: it counts against the tenant's cap until dropped (by then it
/// is open and counted as such, or it failed).
#[derive(Debug)]
struct Opening {
    tenant: String,
    opening: Arc<Mutex<HashMap<String, u64>>>,
}

impl Drop for Opening {
    fn drop(&mut self) {
        let mut opening = lock(&self.opening);
        if let Some(n) = opening.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                opening.remove(&self.tenant);
            }
        }
    }
}

/// The limits a request is admitted under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub tenant_rate: Rate,
    pub key_rate: Rate,
    /// Concurrent requests for the whole tenant; zero means unlimited.
    pub max_concurrent: u32,
}

impl Admission {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            tenants: Rates::default(),
            keys: Rates::default(),
            concurrency: Mutex::default(),
            others: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            max_in_flight: max_in_flight.max(1),
            fleet: std::sync::atomic::AtomicUsize::new(1),
            elsewhere: Mutex::default(),
            here: Mutex::default(),
            opening: Arc::default(),
        }
    }

    pub fn fleet_size(&self) -> usize {
        self.fleet.load(std::sync::atomic::Ordering::Relaxed).max(1)
    }

    /// Records the live fleet: its size, and the sessions the other workers hold.
    pub fn set_fleet(&self, size: usize, sessions_elsewhere: HashMap<String, u64>) {
        self.fleet
            .store(size.max(1), std::sync::atomic::Ordering::Relaxed);
        *lock(&self.elsewhere) = sessions_elsewhere;
    }

    /// Admits one real request of `tenant` made with `key`, or says why not.
    pub fn admit(&self, tenant: &str, key: &str, limits: Limits) -> Result<Admitted, Refusal> {
        let fleet = self.fleet_size();
        // The key's own rate first: a key over it must not spend the tenant's cells, which
        // the tenant's other keys need.
        if limits.key_rate.per_second > 0 {
            self.keys
                .check(&format!("{tenant}/{key}"), limits.key_rate, fleet)
                .map_err(|retry_after| Refusal::Rate {
                    scope: RateScope::Key,
                    retry_after,
                })?;
        }
        self.tenants
            .check(tenant, limits.tenant_rate, fleet)
            .map_err(|retry_after| Refusal::Rate {
                scope: RateScope::Tenant,
                retry_after,
            })?;
        let tenant_permit = match limits.max_concurrent {
            0 => None,
            max => Some(
                gate(&self.concurrency, tenant, max, fleet)
                    .try_acquire_owned()
                    .map_err(|_| Refusal::Concurrency)?,
            ),
        };
        let worker_permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Saturated)?;
        Ok(Admitted {
            _tenant: tenant_permit,
            _worker: Some(worker_permit),
            _session: None,
        })
    }

    /// Admits a request of `tenant` that is not real work: first one of the tenant's
    /// `max` places for such requests (its share of them), then, with `worker`, one of the
    /// worker's (an open stream takes none of the worker's).
    pub fn admit_other(&self, tenant: &str, max: u32, worker: bool) -> Result<Admitted, Refusal> {
        let tenant_permit = gate(&self.others, tenant, max.max(1), self.fleet_size())
            .try_acquire_owned()
            .map_err(|_| Refusal::Others)?;
        let worker_permit = if worker {
            let permit = self.in_flight.clone().try_acquire_owned();
            Some(permit.map_err(|_| Refusal::Saturated)?)
        } else {
            None
        };
        Ok(Admitted {
            _tenant: Some(tenant_permit),
            _worker: worker_permit,
            _session: None,
        })
    }

    /// Counts a session `tenant` is opening against its cap `max` (zero: unlimited),
    /// with the sessions every live worker holds and those being opened here; `admitted`
    /// then holds its place until it is open (`session_opened`) or failed.
    pub fn open_session(
        &self,
        tenant: &str,
        max: u32,
        admitted: &mut Admitted,
    ) -> Result<(), Refusal> {
        if max == 0 {
            return Ok(());
        }
        let here = lock(&self.here).get(tenant).map_or(0, |s| s.len() as u64);
        let elsewhere = lock(&self.elsewhere).get(tenant).copied().unwrap_or(0);
        let mut opening = lock(&self.opening);
        let pending = opening.entry(tenant.to_owned()).or_default();
        if here + elsewhere + *pending >= u64::from(max) {
            return Err(Refusal::Sessions);
        }
        *pending += 1;
        admitted._session = Some(Opening {
            tenant: tenant.to_owned(),
            opening: self.opening.clone(),
        });
        Ok(())
    }

    /// Whether `tenant` may have one more session live under its cap `max` (zero:
    /// unlimited), as `open_session` counts, without taking a place: a parked session
    /// coming back to memory counts again.
    pub fn room_for_session(&self, tenant: &str, max: u32) -> Result<(), Refusal> {
        if max == 0 {
            return Ok(());
        }
        let here = lock(&self.here).get(tenant).map_or(0, |s| s.len() as u64);
        let elsewhere = lock(&self.elsewhere).get(tenant).copied().unwrap_or(0);
        let pending = lock(&self.opening).get(tenant).copied().unwrap_or(0);
        if here + elsewhere + pending >= u64::from(max) {
            return Err(Refusal::Sessions);
        }
        Ok(())
    }

    pub fn session_opened(&self, tenant: &str, id: &str) {
        let mut here = lock(&self.here);
        if let Some(sessions) = here.get_mut(tenant) {
            if !sessions.contains(id) {
                sessions.insert(id.to_owned());
            }
            return;
        }
        here.entry(tenant.to_owned())
            .or_default()
            .insert(id.to_owned());
    }

    pub fn session_closed(&self, id: &str) {
        let mut here = lock(&self.here);
        for sessions in here.values_mut() {
            sessions.remove(id);
        }
        here.retain(|_, s| !s.is_empty());
    }

    /// Keeps only the sessions `alive` says still exist here.
    pub fn retain_sessions(&self, alive: impl Fn(&str) -> bool) {
        let mut here = lock(&self.here);
        for sessions in here.values_mut() {
            sessions.retain(|id| alive(id));
        }
        here.retain(|_, s| !s.is_empty());
    }

    /// The sessions of `tenant` this worker holds.
    pub fn sessions_of(&self, tenant: &str) -> Vec<String> {
        lock(&self.here)
            .get(tenant)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Sessions this worker holds, by tenant (for its heartbeat).
    pub fn sessions_here(&self) -> HashMap<String, u64> {
        lock(&self.here)
            .iter()
            .map(|(t, s)| (t.clone(), s.len() as u64))
            .collect()
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    /// Drops limiters nobody used for a while.
    pub fn sweep(&self) {
        self.tenants.sweep();
        self.keys.sweep();
    }
}

#[cfg(test)]
mod tests;

//! Admission control for real work (`tools/call`, `resources/read`, `prompts/get`): per
//! tenant and per key rates (GCRA, governor), the tenant's concurrent requests and sessions,
//! then the worker's own in-flight cap. Tenant limits come first, so a tenant over its limits
//! is refused before it can take any of the worker's shared capacity.
//!
//! Limits hold for the whole fleet: each worker enforces its share of a tenant's rate,
//! burst and concurrency (the configured value divided by the number of live workers, which
//! it reads from the workers' heartbeats) and counts sessions across the fleet from them.
//! See ARCHITECTURE.md ("Limits across the fleet") for what happens while the fleet changes
//! or NATS is partitioned.

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long an idle limiter is kept before it is dropped (its state restarts full).
const IDLE_FOR: Duration = Duration::from_secs(600);
/// The wait suggested when a concurrency or session cap is reached.
pub const CAP_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a refused request is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over the tenant's or the key's rate: retry after the given wait.
    Rate { scope: Scope, retry_after: Duration },
    /// The tenant's concurrent requests are all in use.
    Concurrency,
    /// The tenant has as many sessions as it may.
    Sessions,
    /// This worker is saturated.
    Saturated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Key,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Key => "key",
        }
    }
}

/// A rate and burst; zero rate means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug)]
struct Limiter {
    /// The rate and fleet size it was built for.
    built_for: (Rate, usize),
    limiter: DefaultDirectRateLimiter,
    used: Instant,
}

/// This worker's share of `rate` when `fleet` workers split it.
fn share(rate: Rate, fleet: usize) -> Option<Quota> {
    if rate.per_second == 0 {
        return None;
    }
    let fleet = fleet.max(1) as f64;
    // One cell every `fleet / rate` seconds: the worker's part of the fleet-wide rate.
    let period = Duration::from_secs_f64(fleet / f64::from(rate.per_second));
    let burst = (f64::from(rate.burst.max(1)) / fleet).round().max(1.0) as u32;
    Quota::with_period(period)
        .map(|q| q.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)))
}

#[derive(Debug, Default)]
struct Rates {
    limiters: Mutex<HashMap<String, Limiter>>,
}

impl Rates {
    /// Takes one cell for `id` under `rate`, or says how long until one is free.
    fn check(&self, id: &str, rate: Rate, fleet: usize) -> Result<(), Duration> {
        let Some(quota) = share(rate, fleet) else {
            return Ok(());
        };
        let Ok(mut limiters) = self.limiters.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let entry = limiters.entry(id.to_owned()).or_insert_with(|| Limiter {
            built_for: (rate, fleet),
            limiter: DefaultDirectRateLimiter::direct(quota),
            used: now,
        });
        if entry.built_for != (rate, fleet) {
            // A new share (the rate or the fleet changed) starts with its burst: the fleet
            // may admit up to one burst more at that moment (ARCHITECTURE.md).
            *entry = Limiter {
                built_for: (rate, fleet),
                limiter: DefaultDirectRateLimiter::direct(quota),
                used: now,
            };
        }
        entry.used = now;
        entry
            .limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn sweep(&self) {
        if let Ok(mut limiters) = self.limiters.lock() {
            limiters.retain(|_, l| l.used.elapsed() < IDLE_FOR);
        }
    }
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

/// Everything a worker admits work by.
#[derive(Debug)]
pub struct Admission {
    tenants: Rates,
    keys: Rates,
    concurrency: Mutex<HashMap<String, Gate>>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// Live workers, this one included.
    fleet: std::sync::atomic::AtomicUsize,
    /// Sessions other workers hold, by tenant (from their heartbeats).
    elsewhere: Mutex<HashMap<String, u64>>,
    /// Sessions this worker holds, by tenant.
    here: Mutex<HashMap<String, HashSet<String>>>,
}

/// Held while a request is being served; dropping it frees its places.
#[derive(Debug)]
pub struct Admitted {
    _tenant: Option<OwnedSemaphorePermit>,
    _worker: OwnedSemaphorePermit,
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
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            max_in_flight: max_in_flight.max(1),
            fleet: std::sync::atomic::AtomicUsize::new(1),
            elsewhere: Mutex::default(),
            here: Mutex::default(),
        }
    }

    pub fn fleet_size(&self) -> usize {
        self.fleet.load(std::sync::atomic::Ordering::Relaxed).max(1)
    }

    /// Records the live fleet: its size, and the sessions the other workers hold.
    pub fn set_fleet(&self, size: usize, sessions_elsewhere: HashMap<String, u64>) {
        self.fleet
            .store(size.max(1), std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut e) = self.elsewhere.lock() {
            *e = sessions_elsewhere;
        }
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
                    scope: Scope::Key,
                    retry_after,
                })?;
        }
        self.tenants
            .check(tenant, limits.tenant_rate, fleet)
            .map_err(|retry_after| Refusal::Rate {
                scope: Scope::Tenant,
                retry_after,
            })?;
        let tenant_permit = match limits.max_concurrent {
            0 => None,
            max => Some(
                self.gate(tenant, max, fleet)
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
            _worker: worker_permit,
        })
    }

    /// Admits a request that is not real work: only the worker's in-flight cap applies.
    pub fn admit_other(&self) -> Result<Admitted, Refusal> {
        let worker_permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Saturated)?;
        Ok(Admitted {
            _tenant: None,
            _worker: worker_permit,
        })
    }

    /// The tenant's concurrency gate, sized to this worker's share (at least one).
    fn gate(&self, tenant: &str, max: u32, fleet: usize) -> Arc<Semaphore> {
        let permits = (max as usize).div_ceil(fleet).max(1);
        let Ok(mut gates) = self.concurrency.lock() else {
            return Arc::new(Semaphore::new(permits));
        };
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

    /// Whether `tenant` may open one more session under `max` (zero: unlimited), counting
    /// the sessions every live worker holds.
    pub fn may_open_session(&self, tenant: &str, max: u32) -> Result<(), Refusal> {
        if max == 0 {
            return Ok(());
        }
        let here = self
            .here
            .lock()
            .ok()
            .and_then(|h| h.get(tenant).map(|s| s.len() as u64))
            .unwrap_or(0);
        let elsewhere = self
            .elsewhere
            .lock()
            .ok()
            .and_then(|e| e.get(tenant).copied())
            .unwrap_or(0);
        if here + elsewhere >= u64::from(max) {
            return Err(Refusal::Sessions);
        }
        Ok(())
    }

    pub fn session_opened(&self, tenant: &str, id: &str) {
        if let Ok(mut here) = self.here.lock() {
            here.entry(tenant.to_owned())
                .or_default()
                .insert(id.to_owned());
        }
    }

    pub fn session_closed(&self, id: &str) {
        if let Ok(mut here) = self.here.lock() {
            for sessions in here.values_mut() {
                sessions.remove(id);
            }
            here.retain(|_, s| !s.is_empty());
        }
    }

    /// Keeps only the sessions `alive` says still exist here.
    pub fn retain_sessions(&self, alive: impl Fn(&str) -> bool) {
        if let Ok(mut here) = self.here.lock() {
            for sessions in here.values_mut() {
                sessions.retain(|id| alive(id));
            }
            here.retain(|_, s| !s.is_empty());
        }
    }

    /// Sessions this worker holds, by tenant (for its heartbeat).
    pub fn sessions_here(&self) -> HashMap<String, u64> {
        self.here
            .lock()
            .map(|h| h.iter().map(|(t, s)| (t.clone(), s.len() as u64)).collect())
            .unwrap_or_default()
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
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        tenant_rate: Rate {
            per_second: 10,
            burst: 4,
        },
        key_rate: Rate {
            per_second: 0,
            burst: 0,
        },
        max_concurrent: 0,
    };

    #[test]
    fn a_tenant_gets_its_burst_then_waits_about_one_period() {
        let a = Admission::new(100);
        for _ in 0..4 {
            assert!(a.admit("t", "k", LIMITS).is_ok());
        }
        match a.admit("t", "k", LIMITS) {
            Err(Refusal::Rate {
                scope: Scope::Tenant,
                retry_after,
            }) => assert!(retry_after <= Duration::from_millis(100), "{retry_after:?}"),
            other => panic!("{other:?}"),
        }
        // Another tenant is not affected.
        assert!(a.admit("u", "k", LIMITS).is_ok());
    }

    #[test]
    fn each_worker_gets_its_share_of_the_fleet_rate() {
        let a = Admission::new(100);
        a.set_fleet(2, HashMap::new());
        // A burst of 4 split between two workers: 2 here.
        assert!(a.admit("t", "k", LIMITS).is_ok());
        assert!(a.admit("t", "k", LIMITS).is_ok());
        match a.admit("t", "k", LIMITS) {
            // Half the rate: a cell every 200 ms.
            Err(Refusal::Rate { retry_after, .. }) => {
                assert!(retry_after > Duration::from_millis(100), "{retry_after:?}");
                assert!(retry_after <= Duration::from_millis(200), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_over_its_rate_does_not_spend_the_tenants() {
        let a = Admission::new(100);
        let limits = Limits {
            key_rate: Rate {
                per_second: 1,
                burst: 1,
            },
            ..LIMITS
        };
        assert!(a.admit("t", "k", limits).is_ok());
        for _ in 0..10 {
            assert!(matches!(
                a.admit("t", "k", limits),
                Err(Refusal::Rate {
                    scope: Scope::Key,
                    ..
                })
            ));
        }
        // The tenant's burst of 4 had one cell taken; its other keys get the other three.
        for key in ["k2", "k3", "k4"] {
            assert!(a.admit("t", key, limits).is_ok());
        }
        assert!(matches!(
            a.admit("t", "k5", limits),
            Err(Refusal::Rate {
                scope: Scope::Tenant,
                ..
            })
        ));
    }

    #[test]
    fn resizing_a_gate_counts_the_places_in_use() {
        let a = Admission::new(100);
        let limits = Limits {
            max_concurrent: 4,
            tenant_rate: Rate {
                per_second: 0,
                burst: 0,
            },
            ..LIMITS
        };
        let held: Vec<_> = (0..3).map(|_| a.admit("t", "k", limits).unwrap()).collect();
        // Two workers: a share of 2, and 3 are in use here.
        a.set_fleet(2, HashMap::new());
        assert_eq!(a.admit("t", "k", limits).unwrap_err(), Refusal::Concurrency);
        drop(held);
        let now: Vec<_> = (0..2).map(|_| a.admit("t", "k", limits).unwrap()).collect();
        assert_eq!(a.admit("t", "k", limits).unwrap_err(), Refusal::Concurrency);
        drop(now);
        // Back to one worker: 4 again.
        a.set_fleet(1, HashMap::new());
        let all: Vec<_> = (0..4).map(|_| a.admit("t", "k", limits).unwrap()).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(a.admit("t", "k", limits).unwrap_err(), Refusal::Concurrency);
    }

    #[test]
    fn concurrency_is_capped_per_tenant_and_freed_on_drop() {
        let a = Admission::new(100);
        let limits = Limits {
            max_concurrent: 2,
            tenant_rate: Rate {
                per_second: 0,
                burst: 0,
            },
            ..LIMITS
        };
        let one = a.admit("t", "k", limits).unwrap();
        let _two = a.admit("t", "k", limits).unwrap();
        assert_eq!(a.admit("t", "k", limits).unwrap_err(), Refusal::Concurrency);
        assert!(
            a.admit("u", "k", limits).is_ok(),
            "other tenants unaffected"
        );
        drop(one);
        assert!(a.admit("t", "k", limits).is_ok());
    }

    #[test]
    fn the_worker_cap_comes_after_the_tenant_caps() {
        let a = Admission::new(1);
        let unlimited = Limits {
            tenant_rate: Rate {
                per_second: 0,
                burst: 0,
            },
            ..LIMITS
        };
        let _held = a.admit("t", "k", unlimited).unwrap();
        assert_eq!(
            a.admit("u", "k", unlimited).unwrap_err(),
            Refusal::Saturated
        );
        assert_eq!(a.in_flight(), 1);
    }

    #[test]
    fn sessions_count_across_the_fleet() {
        let a = Admission::new(10);
        a.set_fleet(2, HashMap::from([("t".to_owned(), 2)]));
        assert!(a.may_open_session("t", 3).is_ok());
        a.session_opened("t", "s1");
        assert_eq!(a.may_open_session("t", 3).unwrap_err(), Refusal::Sessions);
        a.session_closed("s1");
        assert!(a.may_open_session("t", 3).is_ok());
        a.session_opened("t", "s2");
        a.retain_sessions(|id| id != "s2");
        assert!(a.may_open_session("t", 3).is_ok());
        assert!(a.may_open_session("t", 0).is_ok(), "zero is unlimited");
    }
}

//! Rates by id (a tenant, or a tenant's key): GCRA limiters from governor, each built for
//! this worker's share of the fleet-wide rate and burst, and rebuilt when the rate or the
//! fleet changes. Generic over governor's clock, so the arithmetic is tested on a fake one.

use super::Rate;
use crate::sync::lock;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an idle limiter is kept before it is dropped (its state restarts full).
const IDLE_FOR: Duration = Duration::from_secs(600);

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

struct Entry<C: Clock> {
    /// The rate and fleet size it was built for.
    built_for: (Rate, usize),
    limiter: Limiter<C>,
    used: Instant,
}

/// This worker's share of `rate` when `fleet` workers split it: one cell every
/// `fleet / rate` seconds, and the burst divided likewise (at least one).
fn share(rate: Rate, fleet: usize) -> Option<Quota> {
    if rate.per_second == 0 {
        return None;
    }
    let fleet = fleet.max(1) as f64;
    let period = Duration::from_secs_f64(fleet / f64::from(rate.per_second));
    let burst = (f64::from(rate.burst.max(1)) / fleet).round().max(1.0) as u32;
    Quota::with_period(period)
        .map(|q| q.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)))
}

pub(super) struct Rates<C: Clock = DefaultClock> {
    limiters: Mutex<HashMap<String, Entry<C>>>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for Rates<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rates").finish_non_exhaustive()
    }
}

impl Default for Rates {
    fn default() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> Rates<C> {
    pub(super) fn with_clock(clock: C) -> Self {
        Self {
            limiters: Mutex::default(),
            clock,
        }
    }

    /// Takes one cell for `id` under `rate`, or says how long until one is free.
    pub(super) fn check(&self, id: &str, rate: Rate, fleet: usize) -> Result<(), Duration> {
        let Some(quota) = share(rate, fleet) else {
            return Ok(());
        };
        let mut limiters = lock(&self.limiters);
        let now = Instant::now();
        let fresh = || Entry {
            built_for: (rate, fleet),
            limiter: RateLimiter::direct_with_clock(quota, self.clock.clone()),
            used: now,
        };
        let entry = limiters.entry(id.to_owned()).or_insert_with(fresh);
        if entry.built_for != (rate, fleet) {
            // A new share (the rate or the fleet changed) starts with its burst: the fleet
            // may admit up to one burst more at that moment (see `limits`).
            *entry = fresh();
        }
        entry.used = now;
        entry
            .limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    pub(super) fn sweep(&self) {
        lock(&self.limiters).retain(|_, l| l.used.elapsed() < IDLE_FOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn rate(per_second: u32, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    /// Cells taken from `rates` for `id` before the first refusal, and that refusal's wait.
    fn drain(rates: &Rates<FakeRelativeClock>, id: &str, r: Rate, fleet: usize) -> (u32, Duration) {
        let mut taken = 0;
        loop {
            match rates.check(id, r, fleet) {
                Ok(()) => taken += 1,
                Err(wait) => return (taken, wait),
            }
        }
    }

    #[test]
    fn a_burst_then_one_cell_a_period() {
        let clock = FakeRelativeClock::default();
        let rates = Rates::with_clock(clock.clone());
        let r = rate(1, 5);
        assert_eq!(drain(&rates, "t", r, 1), (5, Duration::from_secs(1)));
        // Half a period later: still nothing, and the wait says so.
        clock.advance(Duration::from_millis(500));
        assert_eq!(rates.check("t", r, 1), Err(Duration::from_millis(500)));
        // A period after the burst: exactly one more.
        clock.advance(Duration::from_millis(500));
        assert_eq!(drain(&rates, "t", r, 1), (1, Duration::from_secs(1)));
        // Idle long enough, the burst is back, and no more than the burst.
        clock.advance(Duration::from_secs(60));
        assert_eq!(drain(&rates, "t", r, 1).0, 5);
    }

    #[test]
    fn a_worker_takes_its_share_of_the_fleets_rate_and_burst() {
        let clock = FakeRelativeClock::default();
        let rates = Rates::with_clock(clock.clone());
        // 1 a second, burst 10, split by two workers: 5 here, then one every 2 s.
        let r = rate(1, 10);
        assert_eq!(drain(&rates, "t", r, 2), (5, Duration::from_secs(2)));
        clock.advance(Duration::from_secs(2));
        assert_eq!(drain(&rates, "t", r, 2).0, 1);
        // A burst smaller than the fleet still lets each worker one cell.
        assert_eq!(drain(&rates, "u", rate(10, 1), 3).0, 1);
    }

    #[test]
    fn a_changed_rate_or_fleet_starts_a_fresh_share() {
        let clock = FakeRelativeClock::default();
        let rates = Rates::with_clock(clock);
        assert_eq!(drain(&rates, "t", rate(1, 4), 1).0, 4);
        // The fleet grew: the new share starts with its own (smaller) burst.
        assert_eq!(drain(&rates, "t", rate(1, 4), 2).0, 2);
        // The operator raised the rate.
        assert_eq!(drain(&rates, "t", rate(1, 8), 2).0, 4);
    }

    #[test]
    fn ids_are_limited_apart_and_zero_means_unlimited() {
        let rates = Rates::with_clock(FakeRelativeClock::default());
        assert_eq!(drain(&rates, "a", rate(1, 2), 1).0, 2);
        assert_eq!(drain(&rates, "b", rate(1, 2), 1).0, 2);
        for _ in 0..1000 {
            assert_eq!(rates.check("c", rate(0, 0), 1), Ok(()));
        }
    }
}

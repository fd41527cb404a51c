//! What stands between a request and an upstream that misbehaves: a circuit breaker per
//! tenant x connector, a retry budget so retries cannot multiply load, and exponential
//! backoff with full jitter. Each is a small state machine on tokio's clock, tested on
//! paused time; `handler` composes them around every upstream call.

mod guard;

pub use guard::{Attempts, Guard, Retry};

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// When a breaker opens and how it recovers (from the connector's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open it (0: never on this ground).
    pub consecutive_failures: u32,
    /// Failure share, in percent, over the recent calls that opens it (0: never).
    pub failure_rate_percent: u32,
    /// Calls the failure share needs before it counts.
    pub minimum_calls: u32,
    /// How long it stays open before it lets probes through.
    pub open_for: Duration,
    /// Successful probes that close it again.
    pub half_open_probes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Probes are being let through.
    HalfOpen,
    /// Failing fast until the instant given.
    Open(Instant),
}

impl BreakerState {
    /// The state as a metric: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open(_) => 2,
        }
    }

    /// The state's name: `closed`, `half_open` or `open`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open(_) => "open",
        }
    }
}

/// How many recent outcomes the failure share is computed over, at least.
const WINDOW_MIN: usize = 20;

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    /// Counts state changes: an outcome of a call let through in an earlier state is
    /// ignored (a call from before the breaker opened must not close it).
    generation: u64,
    consecutive: u32,
    recent: VecDeque<bool>,
    probes_out: u32,
    probes_ok: u32,
}

/// A call the breaker let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    generation: u64,
    probe: bool,
}

/// Why a call may not go upstream now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// When the breaker will let a call through again.
    pub retry_at: Instant,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed,
            generation: 0,
            consecutive: 0,
            recent: VecDeque::new(),
            probes_out: 0,
            probes_ok: 0,
        }
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// The state now (an open breaker whose time is up reads as half-open).
    pub fn state(&self) -> BreakerState {
        match self.state {
            BreakerState::Open(until) if Instant::now() >= until => BreakerState::HalfOpen,
            s => s,
        }
    }

    /// Asks to send one call upstream.
    pub fn acquire(&mut self) -> Result<Pass, Open> {
        let now = Instant::now();
        if let BreakerState::Open(until) = self.state {
            if now < until {
                return Err(Open { retry_at: until });
            }
            self.state = BreakerState::HalfOpen;
            self.generation += 1;
            self.probes_out = 0;
            self.probes_ok = 0;
        }
        let probe = self.state == BreakerState::HalfOpen;
        if probe {
            let probes = self.config.half_open_probes.max(1);
            if self.probes_out >= probes {
                // The probes are out; others wait for their verdict.
                return Err(Open {
                    retry_at: now + Duration::from_secs(1).min(self.config.open_for),
                });
            }
            self.probes_out += 1;
        }
        Ok(Pass {
            generation: self.generation,
            probe,
        })
    }

    /// Records the outcome of a call `acquire` let through.
    pub fn record(&mut self, pass: Pass, ok: bool) {
        if pass.generation != self.generation {
            return;
        }
        let now = Instant::now();
        match self.state {
            BreakerState::HalfOpen => {
                if ok {
                    self.probes_ok += 1;
                    if self.probes_ok >= self.config.half_open_probes.max(1) {
                        self.close();
                    }
                } else {
                    self.open(now);
                }
            }
            BreakerState::Open(_) => {}
            BreakerState::Closed => {
                self.consecutive = if ok { 0 } else { self.consecutive + 1 };
                let window = (self.config.minimum_calls as usize).max(WINDOW_MIN);
                self.recent.push_back(ok);
                while self.recent.len() > window {
                    self.recent.pop_front();
                }
                let failures = self.recent.iter().filter(|ok| !**ok).count();
                let by_streak = self.config.consecutive_failures > 0
                    && self.consecutive >= self.config.consecutive_failures;
                let by_share = self.config.failure_rate_percent > 0
                    && self.recent.len() >= self.config.minimum_calls.max(1) as usize
                    && failures * 100
                        >= self.recent.len() * self.config.failure_rate_percent as usize;
                if by_streak || by_share {
                    self.open(now);
                }
            }
        }
    }

    /// A call `acquire` let through ended without an outcome (cancelled): its probe place,
    /// if it had one, is free again.
    pub fn abandon(&mut self, pass: Pass) {
        if pass.probe && pass.generation == self.generation {
            self.probes_out = self.probes_out.saturating_sub(1);
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open(now + self.config.open_for);
        self.generation += 1;
        self.probes_out = 0;
        self.probes_ok = 0;
    }

    fn close(&mut self) {
        self.state = BreakerState::Closed;
        self.generation += 1;
        self.consecutive = 0;
        self.recent.clear();
    }
}

/// The budget counts in tenths of a retry. A request earns 2 (a fifth of a retry), time
/// earns 100 a second (10 retries), a retry costs 10, and 200 (20 retries) can be saved up.
const PER_REQUEST: u32 = 2;
const PER_RETRY: u32 = 10;
const FLOOR_PER_SECOND: u32 = 100;
const CAP: u32 = 200;

/// Retries may add at most 20% to the requests sent, plus a floor of 10 a second, so that
/// retrying can never multiply the load on an upstream that is struggling.
#[derive(Debug)]
pub struct RetryBudget {
    tenths: u32,
    refilled: Instant,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            tenths: CAP,
            refilled: Instant::now(),
        }
    }
}

impl RetryBudget {
    fn refill(&mut self) {
        let step = Duration::from_secs(1) / FLOOR_PER_SECOND;
        let earned = Instant::now().duration_since(self.refilled).as_nanos() / step.as_nanos();
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        // Time not yet worth a tenth stays for the next refill.
        self.refilled += step * earned.min(CAP);
        if earned >= CAP {
            self.refilled = Instant::now();
        }
        self.tenths = self.tenths.saturating_add(earned).min(CAP);
    }

    /// A request was sent (not a retry): it earns a fifth of a retry.
    pub fn deposit(&mut self) {
        self.refill();
        self.tenths = (self.tenths + PER_REQUEST).min(CAP);
    }

    /// Takes one retry from the budget, if there is one.
    pub fn withdraw(&mut self) -> bool {
        self.refill();
        if self.tenths >= PER_RETRY {
            self.tenths -= PER_RETRY;
            true
        } else {
            false
        }
    }
}

/// The wait before retry number `attempt` (0 for the first retry): a uniformly random time
/// up to `initial * 2^attempt`, capped at `max` ("full jitter").
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let ceiling = initial
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(max);
    ceiling.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate_percent: 50,
            minimum_calls: 10,
            open_for: Duration::from_secs(30),
            half_open_probes: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_it_and_it_fails_fast_until_its_time() {
        let mut b = Breaker::new(config());
        for _ in 0..2 {
            let pass = b.acquire().unwrap();
            b.record(pass, false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let pass = b.acquire().unwrap();
        b.record(pass, false);
        let opened = Instant::now();
        assert_eq!(
            b.state(),
            BreakerState::Open(opened + Duration::from_secs(30))
        );
        assert_eq!(
            b.acquire(),
            Err(Open {
                retry_at: opened + Duration::from_secs(30)
            })
        );
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(b.acquire().is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_streak() {
        let mut b = Breaker::new(config());
        for ok in [false, false, true, false, false] {
            let pass = b.acquire().unwrap();
            b.record(pass, ok);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_share_opens_it_once_there_are_enough_calls() {
        let mut b = Breaker::new(BreakerConfig {
            consecutive_failures: 0,
            ..config()
        });
        // Alternating: 50% failures, never two in a row.
        for i in 0..9 {
            let pass = b.acquire().unwrap();
            b.record(pass, i % 2 == 1);
        }
        assert_eq!(b.state(), BreakerState::Closed, "only 9 calls so far");
        let pass = b.acquire().unwrap();
        b.record(pass, false);
        assert!(matches!(b.state(), BreakerState::Open(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_probes_through_and_closes_after_enough_successes() {
        let mut b = Breaker::new(config());
        for _ in 0..3 {
            let pass = b.acquire().unwrap();
            b.record(pass, false);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        // Two probes may go; a third waits for their verdict.
        let first = b.acquire().unwrap();
        let second = b.acquire().unwrap();
        assert!(b.acquire().is_err());
        b.record(first, true);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.record(second, true);
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_from_before_it_opened_neither_closes_it_nor_frees_a_probe() {
        let mut b = Breaker::new(config());
        let slow = b.acquire().unwrap();
        for _ in 0..3 {
            let pass = b.acquire().unwrap();
            b.record(pass, false);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        let probe = b.acquire().unwrap();
        let other = b.acquire().unwrap();
        assert!(b.acquire().is_err());
        // The call let through while closed finishes now: it is not a probe.
        b.record(slow, true);
        b.abandon(slow);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.acquire().is_err(), "no probe place was freed");
        // A cancelled probe frees its place.
        b.abandon(other);
        let again = b.acquire().unwrap();
        b.record(probe, true);
        b.record(again, true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again() {
        let mut b = Breaker::new(config());
        for _ in 0..3 {
            let pass = b.acquire().unwrap();
            b.record(pass, false);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        let pass = b.acquire().unwrap();
        b.record(pass, false);
        let now = Instant::now();
        assert_eq!(b.state(), BreakerState::Open(now + Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_allows_a_fifth_of_requests_plus_a_floor() {
        let mut budget = RetryBudget::default();
        // The saved-up tokens go first.
        let mut saved = 0;
        while budget.withdraw() {
            saved += 1;
        }
        assert_eq!(saved, 20);
        // 100 requests in no time earn 20 retries.
        for _ in 0..100 {
            budget.deposit();
        }
        let mut earned = 0;
        while budget.withdraw() {
            earned += 1;
        }
        assert_eq!(earned, 20);
        // With no traffic, the floor gives 10 a second.
        tokio::time::advance(Duration::from_secs(1)).await;
        let mut floor = 0;
        while budget.withdraw() {
            floor += 1;
        }
        assert_eq!(floor, 10);
    }

    #[test]
    fn backoff_is_jittered_below_an_exponential_ceiling() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 0..8 {
            let ceiling = (initial * 2u32.pow(attempt)).min(max);
            for _ in 0..50 {
                assert!(backoff(attempt, initial, max) <= ceiling);
            }
        }
        let spread: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(3, initial, max)).collect();
        assert!(spread.len() > 10, "full jitter spreads retries");
    }
}

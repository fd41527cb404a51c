//! The breaker and retry budget of one tenant x connector, and the retry loop they govern:
//! every attempt takes a ticket from the breaker (or fails fast while it is open) and
//! reports its outcome; a transient failure is tried again while attempts remain and the
//! budget allows, after a backoff with full jitter.

use super::{Breaker, BreakerConfig, BreakerState, Pass, RetryBudget, backoff};
use crate::error::{Error, Result};
use crate::sync::lock;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug)]
pub struct Guard {
    breaker: Mutex<Breaker>,
    budget: Mutex<RetryBudget>,
}

/// A call the breaker let through; dropped without an outcome (cancelled), it gives its
/// place back without counting.
struct Ticket<'a> {
    guard: &'a Guard,
    pass: Option<Pass>,
}

impl Ticket<'_> {
    fn record(mut self, ok: bool) {
        if let Some(pass) = self.pass.take() {
            lock(&self.guard.breaker).record(pass, ok);
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(pass) = self.pass.take() {
            lock(&self.guard.breaker).abandon(pass);
        }
    }
}

/// How often and how patiently a call is tried.
#[derive(Debug, Clone, Copy)]
pub struct Attempts {
    /// Tries in all, the first included (1: no retries).
    pub max: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// What a try of a call turned into, for the caller's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Another try follows.
    Attempted,
    /// The budget refused another try.
    BudgetExhausted,
}

impl Retry {
    pub fn label(self) -> &'static str {
        match self {
            Self::Attempted => "attempted",
            Self::BudgetExhausted => "budget_exhausted",
        }
    }
}

impl Guard {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            breaker: Mutex::new(Breaker::new(config)),
            budget: Mutex::new(RetryBudget::default()),
        }
    }

    pub fn config(&self) -> BreakerConfig {
        lock(&self.breaker).config()
    }

    pub fn state(&self) -> BreakerState {
        lock(&self.breaker).state()
    }

    fn acquire(&self) -> Result<Ticket<'_>> {
        let pass = lock(&self.breaker)
            .acquire()
            .map_err(|open| Error::CircuitOpen(open.retry_at))?;
        Ok(Ticket {
            guard: self,
            pass: Some(pass),
        })
    }

    /// Runs `call` until it succeeds, fails for good, or runs out of tries. `after` sees the
    /// breaker's state after every try; `retried` every decision to try again or not.
    pub async fn run<T, F, Fut>(
        &self,
        attempts: Attempts,
        mut call: F,
        after: impl Fn(BreakerState),
        retried: impl Fn(Retry, &Error, u32),
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        lock(&self.budget).deposit();
        let mut attempt = 0;
        loop {
            let ticket = self.acquire()?;
            let result = call().await;
            ticket.record(!result.as_ref().is_err_and(Error::counts_against_upstream));
            after(self.state());
            match result {
                Err(e) if e.is_transient() && attempt + 1 < attempts.max => {
                    let allowed = lock(&self.budget).withdraw();
                    let retry = if allowed {
                        Retry::Attempted
                    } else {
                        Retry::BudgetExhausted
                    };
                    retried(retry, &e, attempt);
                    if !allowed {
                        return Err(e);
                    }
                    let wait = backoff(attempt, attempts.initial_backoff, attempts.max_backoff);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamError;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 2,
            failure_rate_percent: 0,
            minimum_calls: 1,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }

    fn attempts(max: u32) -> Attempts {
        Attempts {
            max,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_tried_again_up_to_the_limit() {
        let guard = Guard::new(BreakerConfig {
            consecutive_failures: 100,
            ..config()
        });
        let tries = AtomicU32::new(0);
        let result: Result<()> = guard
            .run(
                attempts(3),
                || async {
                    tries.fetch_add(1, Ordering::SeqCst);
                    Err(Error::Upstream(UpstreamError::Connect("reset".into())))
                },
                |_| {},
                |_, _, _| {},
            )
            .await;
        assert!(result.is_err());
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_that_are_errors_are_not_tried_again_and_an_open_breaker_fails_fast() {
        let guard = Guard::new(config());
        let tries = AtomicU32::new(0);
        for _ in 0..2 {
            let _: Result<()> = guard
                .run(
                    attempts(5),
                    || async {
                        tries.fetch_add(1, Ordering::SeqCst);
                        Err(Error::Upstream(UpstreamError::Timeout(5)))
                    },
                    |_| {},
                    |_, _, _| {},
                )
                .await;
        }
        // Timeouts are not transient: one try each, and two of them opened the breaker.
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        assert!(matches!(guard.state(), BreakerState::Open(_)));
        let failed: Result<()> = guard
            .run(attempts(5), || async { Ok(()) }, |_| {}, |_, _, _| {})
            .await;
        assert!(matches!(failed, Err(Error::CircuitOpen(_))));
    }
}

//! Bounds on the argon2 work a credential guesser can cause. Every check that misses the
//! cache takes an attempt from its key id's budget and from its client address's budget
//! (GCRA, governor); with either spent the credential is refused at once, before any
//! hashing. A key in use stays cached (see `CACHE_IDLE` and `CACHE_LIFE` in `auth`), so a
//! flood of wrong secrets for a known key id leaves its holder served.

use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// Uncached checks of one key id: a burst, then one per period.
const PER_KEY: (u32, Duration) = (10, Duration::from_secs(6));
/// Uncached checks from one client address: a burst, then one per period.
const PER_ADDRESS: (u32, Duration) = (30, Duration::from_secs(2));

fn quota((burst, period): (u32, Duration)) -> Quota {
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

pub(super) struct Attempts {
    by_key: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for Attempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempts").finish_non_exhaustive()
    }
}

impl Default for Attempts {
    fn default() -> Self {
        Self {
            by_key: DefaultKeyedRateLimiter::keyed(quota(PER_KEY)),
            by_address: DefaultKeyedRateLimiter::keyed(quota(PER_ADDRESS)),
        }
    }
}

impl Attempts {
    /// Takes an attempt for `key` (tenant and key id) from `address`, or says how long
    /// until one is left.
    pub(super) fn take(&self, key: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        use governor::clock::{Clock as _, DefaultClock};
        let now = DefaultClock::default().now();
        if let Some(a) = address {
            self.by_address
                .check_key(&a)
                .map_err(|n| n.wait_time_from(now))?;
        }
        self.by_key
            .check_key(&key.to_owned())
            .map_err(|n| n.wait_time_from(now))
    }

    /// Forgets budgets that are full again.
    pub(super) fn sweep(&self) {
        self.by_key.retain_recent();
        self.by_address.retain_recent();
        self.by_key.shrink_to_fit();
        self.by_address.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_and_an_address_each_get_a_bounded_burst() {
        let a = Attempts::default();
        let attacker = Some(IpAddr::from([203, 0, 113, 9]));
        let taken = (0..100)
            .take_while(|_| a.take("acme/abcdef123456", None).is_ok())
            .count();
        assert_eq!(taken as u32, PER_KEY.0);
        // Another key id has its own budget; so does the address.
        assert!(a.take("acme/other123456", attacker).is_ok());
        let from_one_address = (0..100)
            .take_while(|i| a.take(&format!("acme/key{i:08}"), attacker).is_ok())
            .count();
        assert_eq!(from_one_address as u32, PER_ADDRESS.0 - 1);
        let wait = a.take("acme/fresh0000000", attacker).unwrap_err();
        assert!(wait <= PER_ADDRESS.1, "{wait:?}");
    }
}

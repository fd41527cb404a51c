//! What callers who have signed nothing yet may make the authorization server keep or
//! fetch: sign-ins begun (each a stored entry, and perhaps a client's metadata document
//! fetched) per address, and client registrations per address, per tenant and in all. Each
//! worker keeps its own count, so a fleet of N allows N times as many. Failed key
//! guesses on the consent page are bounded by the key checks' own attempt limits.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// Sign-ins an address may begin per minute.
pub const SIGN_INS_PER_MINUTE: u32 = 30;
/// Registrations an address may make per hour.
pub const REGISTRATIONS_PER_ADDRESS: u32 = 10;
/// Registrations a tenant takes per hour.
pub const REGISTRATIONS_PER_TENANT: u32 = 100;
/// Registrations a worker takes per hour, all tenants together (made-up tenant names
/// included): what unused registrations can take of the store is bounded.
pub const REGISTRATIONS_PER_WORKER: u32 = 1000;

#[derive(Debug)]
pub struct Limits {
    sign_ins: DefaultKeyedRateLimiter<IpAddr>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_tenant: DefaultKeyedRateLimiter<String>,
    per_worker: governor::DefaultDirectRateLimiter,
}

/// `n` per `per`, all of them at once if need be.
fn quota(n: u32, per: Duration) -> Quota {
    let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(per / n.get())
        .unwrap_or_else(|| Quota::per_second(n))
        .allow_burst(n)
}

impl Default for Limits {
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            sign_ins: RateLimiter::keyed(quota(SIGN_INS_PER_MINUTE, Duration::from_secs(60))),
            per_address: RateLimiter::keyed(quota(REGISTRATIONS_PER_ADDRESS, hour)),
            per_tenant: RateLimiter::keyed(quota(REGISTRATIONS_PER_TENANT, hour)),
            per_worker: RateLimiter::direct(quota(REGISTRATIONS_PER_WORKER, hour)),
        }
    }
}

impl Limits {
    /// Whether `address` may begin another sign-in.
    pub fn sign_in(&self, address: Option<IpAddr>) -> bool {
        address.is_none_or(|a| self.sign_ins.check_key(&a).is_ok())
    }

    /// Whether `address` may register another client with `tenant`.
    pub fn register(&self, tenant: &str, address: Option<IpAddr>) -> bool {
        address.is_none_or(|a| self.per_address.check_key(&a).is_ok())
            && self.per_tenant.check_key(&tenant.to_owned()).is_ok()
            && self.per_worker.check().is_ok()
    }

    /// Forgets limits that are full again.
    pub fn sweep(&self) {
        self.sign_ins.retain_recent();
        self.per_address.retain_recent();
        self.per_tenant.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_no_more() {
        let limits = Limits::default();
        let a = Some(IpAddr::from([192, 0, 2, 1]));
        let b = Some(IpAddr::from([192, 0, 2, 2]));
        for _ in 0..REGISTRATIONS_PER_ADDRESS {
            assert!(limits.register("acme", a));
        }
        assert!(!limits.register("acme", a), "one more is refused");
        assert!(limits.register("acme", b), "another address is not");
        for _ in 0..SIGN_INS_PER_MINUTE {
            assert!(limits.sign_in(a));
        }
        assert!(!limits.sign_in(a));
        assert!(limits.sign_in(b));
    }

    #[test]
    fn a_worker_takes_its_share_of_registrations_for_all_tenants() {
        let limits = Limits::default();
        let mut taken = 0;
        for i in 0..REGISTRATIONS_PER_WORKER + 10 {
            let tenant = format!("t{i}");
            let address = IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8]);
            taken += u32::from(limits.register(&tenant, Some(address)));
        }
        assert_eq!(taken, REGISTRATIONS_PER_WORKER);
    }

    #[test]
    fn a_tenant_takes_its_share_of_registrations_from_all_addresses() {
        let limits = Limits::default();
        for i in 0..REGISTRATIONS_PER_TENANT {
            let address = IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]);
            assert!(limits.register("acme", Some(address)));
        }
        assert!(!limits.register("acme", Some(IpAddr::from([10, 9, 9, 9]))));
        assert!(limits.register("other", Some(IpAddr::from([10, 9, 9, 9]))));
    }
}

//! Admission of a POSTed message under the tenant's and the worker's limits: real work
//! under rates, the monthly tool-call quota and concurrency; a new session under the
//! session cap; any other request under the worker's in-flight cap. Notifications and
//! responses pass freely.

use super::gate::Head;
use crate::error::{Error, Result};
use crate::limits::{Admission, Admitted, Limits, Rate};
use crate::policy::Tenant;
use crate::principal::Principal;
use std::time::SystemTime;

/// Requests that are real work: they count against rates, quotas and concurrency.
const REAL_WORK: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

/// The limits `principal`'s requests to `tenant` are admitted under.
fn limits(tenant: &Tenant, principal: &Principal) -> Limits {
    let quotas = &tenant.quotas;
    let key_rate = principal
        .key_id()
        .and_then(|id| tenant.keys.get(id))
        .map_or(Rate::default(), |k| Rate {
            per_second: k.requests_per_second,
            burst: k.burst,
        });
    Limits {
        tenant_rate: Rate {
            per_second: quotas.requests_per_second,
            burst: quotas.burst,
        },
        key_rate,
        max_concurrent: quotas.max_concurrent_requests,
    }
}

/// Admits message `head` (on a new session when `new_session`); the places it takes are
/// held by the returned `Admitted` until it is dropped. Real work takes the tenant's rates,
/// quota and concurrency; anything else one of the tenant's places for other requests
/// (a new session also its place under the session cap); both then one of the worker's.
/// `None` when the message takes no place: an answer to a request of ours, or a
/// cancellation (which must always get through).
pub fn admit(
    admission: &Admission,
    tenant: &Tenant,
    principal: &Principal,
    new_session: bool,
    head: &Head,
) -> Result<Option<Admitted>> {
    let slug = tenant.slug.as_str();
    let others = tenant.quotas.max_concurrent_other_requests;
    let method = match (&head.id, &head.method) {
        (_, None) => return Ok(None),
        (_, Some(m)) if m == "notifications/cancelled" => return Ok(None),
        // A notification takes a place of the tenant's while it is handled.
        (None, Some(_)) => {
            return admission
                .admit_other(slug, others, false)
                .map(Some)
                .map_err(Error::Limited);
        }
        (Some(_), Some(m)) => m,
    };
    if !REAL_WORK.contains(&method.as_str()) {
        let mut admitted = admission
            .admit_other(slug, others, true)
            .map_err(Error::Limited)?;
        if new_session && method == "initialize" {
            admission
                .open_session(slug, tenant.quotas.max_sessions, &mut admitted)
                .map_err(Error::Limited)?;
        }
        return Ok(Some(admitted));
    }
    if method == "tools/call"
        && let Some(until) = tenant.tool_calls_exhausted_until
        && until > SystemTime::now()
    {
        return Err(Error::QuotaExhausted(until));
    }
    admission
        // Only a key has a rate of its own, so only a key's id is ever used here.
        .admit(
            slug,
            principal.key_id().map_or("", |k| k.as_str()),
            limits(tenant, principal),
        )
        .map(Some)
        .map_err(Error::Limited)
}

/// Admits an open stream (GET) of `tenant`: one of its places for other requests, held
/// while the stream is open; none of the worker's, so streams do not hold up a drain.
pub fn admit_stream(admission: &Admission, tenant: &Tenant) -> Result<Admitted> {
    admission
        .admit_other(
            tenant.slug.as_str(),
            tenant.quotas.max_concurrent_other_requests,
            false,
        )
        .map_err(Error::Limited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{RateScope, Refusal};
    use crate::policy::{Key, Role};
    use crate::principal::{KeyId, TenantSlug};
    use std::time::Duration;

    fn head(method: &str) -> Head {
        Head {
            id: Some(serde_json::json!(1)),
            method: Some(method.into()),
            params: None,
        }
    }

    fn caller() -> Principal {
        Principal::api_key(
            TenantSlug::parse("acme").unwrap(),
            KeyId::parse("abcdef123456").unwrap(),
        )
    }

    fn tenant(rps: u32, key_rps: u32, concurrent: u32, sessions: u32) -> Tenant {
        let mut t = Tenant::for_test("acme");
        t.quotas.requests_per_second = rps;
        t.quotas.burst = rps;
        t.quotas.max_concurrent_requests = concurrent;
        t.quotas.max_sessions = sessions;
        t.keys.insert(
            caller().key_id().unwrap().clone(),
            Key {
                verifier: String::new(),
                role: Role::Admin,
                requests_per_second: key_rps,
                burst: key_rps,
                expires: None,
            },
        );
        t
    }

    #[test]
    fn answers_and_cancellations_take_no_place_and_notifications_only_the_tenants() {
        let admission = Admission::new(1);
        let mut t = tenant(1, 0, 1, 1);
        t.quotas.max_concurrent_other_requests = 1;
        let answer = Head {
            id: Some(serde_json::json!(1)),
            method: None,
            params: None,
        };
        let cancel = Head {
            id: None,
            method: Some("notifications/cancelled".into()),
            params: None,
        };
        let note = Head {
            id: None,
            method: Some("notifications/initialized".into()),
            params: None,
        };
        // The tenant's one place for other requests is taken (a listing)...
        let listing = admit(&admission, &t, &caller(), false, &head("tools/list"))
            .unwrap()
            .unwrap();
        let refused = admit(&admission, &t, &caller(), false, &note);
        assert!(matches!(refused, Err(Error::Limited(Refusal::Others))));
        // ...yet answers and cancellations get through.
        for h in [answer, cancel] {
            assert!(
                admit(&admission, &t, &caller(), false, &h)
                    .unwrap()
                    .is_none()
            );
        }
        drop(listing);
        // A notification takes the tenant's place but none of the worker's.
        let held = admit(&admission, &t, &caller(), false, &note).unwrap();
        assert!(held.is_some());
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn real_work_is_refused_by_the_tightest_rate_and_names_its_scope() {
        let admission = Admission::new(100);
        let by_key = tenant(10, 1, 10, 10);
        let first = admit(&admission, &by_key, &caller(), false, &head("tools/call"));
        drop(first.unwrap());
        let second = admit(&admission, &by_key, &caller(), false, &head("tools/call"));
        assert!(matches!(
            second,
            Err(Error::Limited(Refusal::Rate {
                scope: RateScope::Key,
                ..
            }))
        ));
        // Other requests are not rate limited.
        assert!(admit(&admission, &by_key, &caller(), false, &head("tools/list")).is_ok());
    }

    #[test]
    fn concurrency_places_are_held_until_dropped() {
        let admission = Admission::new(100);
        let t = tenant(0, 0, 1, 10);
        let held = admit(&admission, &t, &caller(), false, &head("resources/read")).unwrap();
        let refused = admit(&admission, &t, &caller(), false, &head("prompts/get"));
        assert!(matches!(refused, Err(Error::Limited(Refusal::Concurrency))));
        drop(held);
        assert!(admit(&admission, &t, &caller(), false, &head("prompts/get")).is_ok());
    }

    #[test]
    fn an_exhausted_quota_refuses_tool_calls_only_until_it_resets() {
        let admission = Admission::new(100);
        let mut t = tenant(0, 0, 10, 10);
        let resets = SystemTime::now() + Duration::from_secs(3600);
        t.tool_calls_exhausted_until = Some(resets);
        let refused = admit(&admission, &t, &caller(), false, &head("tools/call"));
        assert!(matches!(refused, Err(Error::QuotaExhausted(at)) if at == resets));
        assert!(admit(&admission, &t, &caller(), false, &head("resources/read")).is_ok());
        t.tool_calls_exhausted_until = Some(SystemTime::now() - Duration::from_secs(1));
        assert!(admit(&admission, &t, &caller(), false, &head("tools/call")).is_ok());
    }

    #[test]
    fn a_new_session_counts_against_the_session_cap() {
        let admission = Admission::new(100);
        let t = tenant(0, 0, 10, 1);
        admission.session_opened("acme", "s1");
        let refused = admit(&admission, &t, &caller(), true, &head("initialize"));
        assert!(matches!(refused, Err(Error::Limited(Refusal::Sessions))));
        // On an open session, initialize is not a new session.
        assert!(admit(&admission, &t, &caller(), false, &head("initialize")).is_ok());
    }
}

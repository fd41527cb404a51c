//! Losing access ends access. When a tenant's policy changes, whatever its callers may no
//! longer do stops: calls in flight of a revoked key, a suspended or a deleted tenant are
//! cancelled upstream and answered with why (`Calls`); their sessions are closed, GET
//! streams included, and their upstream sessions ended (`http::App::enforce`); upstream
//! sessions of a removed or disabled connector are ended (`handler::Gateway`).

use crate::error::Error;
use crate::policy::{Status, Tenant};
use crate::principal::Principal;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::sync::oneshot;

/// Why `principal` may no longer act, given its tenant's current policy (`None`: gone).
pub fn lost(principal: &Principal, tenant: Option<&Tenant>) -> Option<Error> {
    let Some(tenant) = tenant else {
        return Some(Error::TenantGone);
    };
    if tenant.status == Status::Suspended {
        return Some(Error::Suspended(tenant.suspend_reason.clone()));
    }
    let Some(key) = principal.key_id() else {
        // A token: its caller keeps access while the tenant still takes its provider's
        // tokens (each request's token is checked again).
        return tenant
            .provider
            .is_none()
            .then_some(Error::CredentialRevoked);
    };
    // Keys off at the endpoint leaves tokens a key signed in for (the built-in server).
    if tenant.api_keys_disabled && !principal.by_token() {
        return Some(Error::ApiKeysDisabled);
    }
    match tenant.keys.get(key) {
        Some(k) if k.expires.is_none_or(|e| e > SystemTime::now()) => None,
        _ => Some(Error::CredentialRevoked),
    }
}

/// Calls in flight, by who made them, so a lost access can stop them.
#[derive(Debug, Default)]
pub struct Calls {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (Principal, oneshot::Sender<Error>)>>,
}

/// A call being watched; it stops being watched when dropped.
#[derive(Debug)]
pub struct Watched<'a> {
    calls: &'a Calls,
    id: u64,
    /// Fires with why the call must stop.
    pub stop: oneshot::Receiver<Error>,
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        lock(&self.calls.open).remove(&self.id);
    }
}

impl Calls {
    /// Watches a call of `principal`.
    pub fn watch(&self, principal: &Principal) -> Watched<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, stop) = oneshot::channel();
        lock(&self.open).insert(id, (principal.clone(), tx));
        Watched {
            calls: self,
            id,
            stop,
        }
    }

    /// The tenants with calls in flight.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = lock(&self.open)
            .values()
            .map(|(p, _)| p.tenant.to_string())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// Stops every call of tenant `slug` whose principal `lost` says has lost access;
    /// returns how many.
    pub fn stop(&self, slug: &str, tenant: Option<&Tenant>) -> usize {
        let mut open = lock(&self.open);
        let ended: Vec<u64> = open
            .iter()
            .filter(|(_, (p, _))| p.tenant.as_str() == slug && lost(p, tenant).is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in &ended {
            if let Some((p, tx)) = open.remove(id)
                && let Some(why) = lost(&p, tenant)
            {
                let _ = tx.send(why);
            }
        }
        ended.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Key, Role};
    use crate::principal::{KeyId, TenantSlug};

    fn principal(key: &str) -> Principal {
        Principal::api_key(
            TenantSlug::parse("acme").unwrap(),
            KeyId::parse(key).unwrap(),
        )
    }

    fn tenant_with(keys: &[&str]) -> Tenant {
        let mut t = Tenant::for_test("acme");
        for k in keys {
            t.keys.insert(
                KeyId::parse(k).unwrap(),
                Key {
                    verifier: String::new(),
                    role: Role::Editor,
                    requests_per_second: 0,
                    burst: 0,
                    expires: None,
                },
            );
        }
        t
    }

    #[test]
    fn access_is_lost_with_the_key_the_tenant_or_its_standing() {
        let p = principal("abcdef123456");
        let mut t = tenant_with(&["abcdef123456"]);
        assert!(lost(&p, Some(&t)).is_none());
        assert!(matches!(lost(&p, None), Some(Error::TenantGone)));
        assert!(matches!(
            lost(&principal("abcdef654321"), Some(&t)),
            Some(Error::CredentialRevoked)
        ));
        if let Some(k) = t.keys.values_mut().next() {
            k.expires = Some(SystemTime::now() - std::time::Duration::from_secs(1));
        }
        assert!(matches!(lost(&p, Some(&t)), Some(Error::CredentialRevoked)));
        let mut suspended = tenant_with(&["abcdef123456"]);
        suspended.status = Status::Suspended;
        assert!(matches!(
            lost(&p, Some(&suspended)),
            Some(Error::Suspended(_))
        ));
        let mut keys_off = tenant_with(&["abcdef123456"]);
        keys_off.api_keys_disabled = true;
        assert!(matches!(
            lost(&p, Some(&keys_off)),
            Some(Error::ApiKeysDisabled)
        ));
    }

    #[tokio::test]
    async fn only_the_calls_that_lost_access_are_stopped() {
        let calls = Calls::default();
        let mut revoked = calls.watch(&principal("abcdef123456"));
        let mut kept = calls.watch(&principal("abcdef654321"));
        let after = tenant_with(&["abcdef654321"]);
        assert_eq!(calls.stop("acme", Some(&after)), 1);
        assert!(matches!(
            revoked.stop.try_recv(),
            Ok(Error::CredentialRevoked)
        ));
        assert!(kept.stop.try_recv().is_err());
        // Another tenant's change stops nothing here.
        assert_eq!(calls.stop("other", None), 0);
        drop(kept);
        assert!(
            lock(&calls.open).is_empty(),
            "a finished call is no longer watched"
        );
    }
}

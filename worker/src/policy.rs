//! The worker's view of tenant policies: decoded, secrets opened, globs compiled, ready for
//! the request path. Follows the policy bus: applies a value only if its revision is higher
//! than the one held, drops tenants on tombstones, and keeps serving the last good policies
//! while the bus is away.

use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use switchyard_bus::{PolicyBus, PolicyEvent};
use switchyard_common::seal::Keyring;
use switchyard_proto::policy::v1 as pb;

use crate::principal::{KeyId, TenantSlug};
use crate::sync::{read, write};
pub use pb::{Role, Status};

mod connector;
use connector::connector;
pub use connector::{Connector, RetryPolicy};

#[derive(Debug, Clone)]
pub struct Key {
    pub verifier: String,
    pub role: Role,
    pub requests_per_second: u32,
    pub burst: u32,
    pub expires: Option<SystemTime>,
}

#[derive(Debug)]
pub struct Tenant {
    pub slug: TenantSlug,
    pub revision: u64,
    pub status: Status,
    pub suspend_reason: String,
    pub quotas: pb::Quotas,
    pub connectors: Vec<Arc<Connector>>,
    pub keys: HashMap<KeyId, Key>,
    /// While set and in the future, the monthly tool calls are used up.
    pub tool_calls_exhausted_until: Option<SystemTime>,
    /// Served by its dedicated workers: shared workers hand its requests over (503).
    pub dedicated: bool,
    /// What its call records keep of the arguments.
    pub arguments: crate::redact::Arguments,
    /// Calls are refused while their usage events cannot be queued.
    pub audit_fail_closed: bool,
    /// API keys are refused as bearer credentials (the tenant's identity settings).
    pub api_keys_disabled: bool,
    /// The identity provider whose access tokens the tenant takes.
    pub provider: Option<Arc<crate::auth::tokens::Provider>>,
    /// How long the built-in authorization server's access and refresh tokens live.
    pub token_lifetimes: (Duration, Duration),
    /// Grants of the built-in authorization server revoked while their access tokens may
    /// live: those tokens are refused.
    pub revoked_grants: std::collections::HashSet<String>,
    /// The built-in authorization server's signing keys made until this (seconds since
    /// the epoch; 0: none) are retired: they neither sign nor verify.
    pub signing_keys_not_before: u64,
}

impl Tenant {
    /// An active tenant for unit tests, with no connectors and no keys.
    #[cfg(test)]
    pub fn for_test(slug: &str) -> Self {
        Self {
            slug: TenantSlug::parse(slug).expect("a valid test slug"),
            revision: 1,
            status: Status::Active,
            suspend_reason: String::new(),
            quotas: pb::Quotas::default(),
            connectors: Vec::new(),
            keys: HashMap::new(),
            tool_calls_exhausted_until: None,
            dedicated: false,
            arguments: crate::redact::Arguments::None,
            audit_fail_closed: false,
            api_keys_disabled: false,
            provider: None,
            token_lifetimes: DEFAULT_TOKEN_LIFETIMES,
            revoked_grants: Default::default(),
            signing_keys_not_before: 0,
        }
    }
}

fn to_system_time(t: &prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(t.seconds).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, t.nanos.clamp(0, 999_999_999) as u32))
}

/// One API key of tenant `tenant`; `None` (logged) when its id does not parse.
fn api_key(tenant: &TenantSlug, k: pb::KeyVerifier) -> Option<(KeyId, Key)> {
    let role = k.role();
    let Ok(id) = KeyId::parse(&k.id) else {
        tracing::error!(%tenant, "an API key with an invalid id left out");
        return None;
    };
    let key = Key {
        verifier: k.verifier,
        role,
        requests_per_second: k.requests_per_second,
        burst: k.burst,
        expires: k.expire_time.as_ref().and_then(to_system_time),
    };
    Some((id, key))
}

/// Builds the runtime view of a policy. A connector whose secrets do not open is left out
/// (and logged): its tools disappear rather than being called without credentials. A
/// policy whose slug does not parse is not served, and a key whose id does not parse is
/// left out (neither can come from the control plane, which validates both).
fn build(policy: pb::TenantPolicy, keys: &Keyring) -> Option<Tenant> {
    let slug = match TenantSlug::parse(&policy.tenant) {
        Ok(slug) => slug,
        Err(e) => {
            tracing::error!(tenant = %policy.tenant, error = %e, "policy for an invalid tenant slug ignored");
            return None;
        }
    };
    let status = policy.status();
    let dedicated = policy.dedicated;
    let audit_fail_closed = policy.audit_fail_closed;
    let api_keys_disabled = policy
        .identity
        .as_ref()
        .is_some_and(|i| i.api_keys_disabled);
    let provider = policy
        .identity
        .as_ref()
        .and_then(crate::auth::tokens::Provider::from_policy)
        .map(Arc::new);
    let token_lifetimes = policy
        .identity
        .as_ref()
        .map_or(DEFAULT_TOKEN_LIFETIMES, |i| {
            let secs = |s: u32, default: Duration| {
                if s == 0 {
                    default
                } else {
                    Duration::from_secs(s.into())
                }
            };
            (
                secs(i.access_token_seconds, DEFAULT_TOKEN_LIFETIMES.0),
                secs(i.refresh_token_seconds, DEFAULT_TOKEN_LIFETIMES.1),
            )
        });
    let arguments =
        crate::redact::Arguments::from_policy(policy.argument_audit(), &policy.sensitive_keys);
    let connectors = policy
        .connectors
        .into_iter()
        .filter_map(|c| connector(&policy.tenant, c, keys))
        .map(Arc::new)
        .collect();
    let keys = policy
        .keys
        .into_iter()
        .filter_map(|k| api_key(&slug, k))
        .collect();
    Some(Tenant {
        status,
        slug,
        revision: policy.revision,
        suspend_reason: policy.suspend_reason,
        quotas: policy.quotas.unwrap_or_default(),
        connectors,
        keys,
        tool_calls_exhausted_until: policy
            .tool_calls_exhausted_until
            .as_ref()
            .and_then(to_system_time),
        dedicated,
        arguments,
        audit_fail_closed,
        api_keys_disabled,
        provider,
        token_lifetimes,
        signing_keys_not_before: policy
            .identity
            .as_ref()
            .map_or(0, |i| i.signing_keys_not_before),
        revoked_grants: policy
            .identity
            .map(|i| i.revoked_grants.into_iter().collect())
            .unwrap_or_default(),
    })
}

/// Token lifetimes of a policy that sets none: an hour, and 30 days.
pub const DEFAULT_TOKEN_LIFETIMES: (Duration, Duration) =
    (Duration::from_secs(3600), Duration::from_secs(30 * 86_400));

/// All tenants this worker serves.
#[derive(Debug)]
pub struct Policies {
    keys: Keyring,
    /// A dedicated worker's one tenant: other tenants' policies are ignored, and its keys
    /// are already that tenant's own (derived) keys.
    only: Option<String>,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    /// Highest revision seen per tenant, tombstones included.
    revisions: RwLock<HashMap<String, u64>>,
    ready: AtomicBool,
    /// The slug of each tenant whose policy changed (or that is gone).
    changed: tokio::sync::broadcast::Sender<String>,
}

impl Policies {
    pub fn new(keys: Keyring) -> Self {
        Self::only(keys, None)
    }

    /// Policies of one tenant only (`--only-tenant`), or of all when `only` is `None`.
    pub fn only(keys: Keyring, only: Option<String>) -> Self {
        Self {
            keys,
            only,
            tenants: RwLock::default(),
            revisions: RwLock::default(),
            ready: AtomicBool::new(false),
            changed: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// The slugs of tenants whose policy changes from now on (a receiver that falls behind
    /// is told it lagged, and should look at every tenant).
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    pub fn get(&self, tenant: &str) -> Option<Arc<Tenant>> {
        read(&self.tenants).get(tenant).cloned()
    }

    pub fn tenant_count(&self) -> usize {
        read(&self.tenants).len()
    }

    /// The highest policy revision applied (tombstones included).
    pub fn max_revision(&self) -> u64 {
        read(&self.revisions).values().copied().max().unwrap_or(0)
    }

    /// True once the initial load from the bus is complete.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Applies a policy if its revision is higher than the one held; returns whether it did.
    pub fn apply(&self, policy: pb::TenantPolicy) -> bool {
        if self
            .only
            .as_ref()
            .is_some_and(|only| *only != policy.tenant)
        {
            return false;
        }
        let tenant = policy.tenant.clone();
        let revision = policy.revision;
        {
            let mut revisions = write(&self.revisions);
            let held = revisions.entry(tenant.clone()).or_insert(0);
            if revision <= *held {
                return false;
            }
            *held = revision;
        }
        if policy.status() == Status::Deleted {
            write(&self.tenants).remove(&tenant);
            tracing::info!(tenant = %tenant, revision, "tenant deleted");
            let _ = self.changed.send(tenant);
            return true;
        }
        // A tenant-sealed policy opens with the tenant's derived keys: a shared worker
        // derives them from the policy keys; a dedicated worker holds only those.
        let keys = if policy.tenant_sealed && self.only.is_none() {
            self.keys.with_tenant(&tenant)
        } else {
            self.keys.clone()
        };
        let Some(built) = build(policy, &keys) else {
            return false;
        };
        write(&self.tenants).insert(tenant.clone(), Arc::new(built));
        tracing::debug!(tenant = %tenant, revision, "policy applied");
        let _ = self.changed.send(tenant);
        true
    }

    /// Drops a tenant whose key vanished from the bus.
    pub fn remove(&self, tenant: &str) {
        write(&self.tenants).remove(tenant);
        let _ = self.changed.send(tenant.to_owned());
    }

    fn mark_ready(&self) {
        if !self.ready.swap(true, Ordering::AcqRel) {
            tracing::info!(
                tenants = self.tenant_count(),
                "initial policy load complete"
            );
        }
    }
}

/// Follows the bus until cancelled, watching again (with backoff) whenever the watch ends.
pub async fn follow(
    bus: Arc<dyn PolicyBus>,
    policies: Arc<Policies>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match bus.watch().await {
            Ok(mut events) => loop {
                let event = tokio::select! {
                    () = cancel.cancelled() => return,
                    e = events.next() => e,
                };
                match event {
                    Some(Ok(PolicyEvent::Put(p))) => {
                        policies.apply(*p);
                        backoff = Duration::from_millis(100);
                    }
                    Some(Ok(PolicyEvent::Removed { tenant })) => policies.remove(&tenant),
                    Some(Ok(PolicyEvent::Synced)) => policies.mark_ready(),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "policy watch failed; watching again");
                        break;
                    }
                    None => {
                        tracing::warn!("policy watch ended; watching again");
                        break;
                    }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot watch policies")
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_common::seal::{SecretKey, policy_header_aad};

    fn sealed(keys: &Keyring, url: &str, value: &str, timeout_ms: u32) -> pb::Connector {
        let aad = policy_header_aad("acme", "c", "authorization");
        pb::Connector {
            name: "c".into(),
            timeout_ms,
            kind: Some(pb::connector::Kind::Mcp(pb::McpConnector {
                url: url.into(),
                headers: vec![pb::SealedHeader {
                    name: "authorization".into(),
                    sealed_value: keys.seal(&aad, value.as_bytes()),
                }],
            })),
            ..Default::default()
        }
    }

    fn fp(keys: &Keyring, c: pb::Connector) -> u64 {
        connector("acme", c, keys).unwrap().fingerprint
    }

    #[test]
    fn an_upstream_session_changes_only_with_what_the_upstream_sees() {
        let keys = Keyring::new(SecretKey::generate());
        let url = "http://up.example/mcp";
        let first = fp(&keys, sealed(&keys, url, "Bearer a", 1000));
        // Sealed again (a new nonce), or another timeout: the same upstream session.
        assert_eq!(first, fp(&keys, sealed(&keys, url, "Bearer a", 1000)));
        assert_eq!(first, fp(&keys, sealed(&keys, url, "Bearer a", 5000)));
        // Another header value or URL: another one.
        assert_ne!(first, fp(&keys, sealed(&keys, url, "Bearer b", 1000)));
        let moved = "http://up.example/other";
        assert_ne!(first, fp(&keys, sealed(&keys, moved, "Bearer a", 1000)));
    }
}

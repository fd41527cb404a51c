//! API key authentication on the request path. A key is checked against the argon2id
//! verifier in the tenant's current policy; a success is cached, keyed by the verifier
//! itself, so a revoked or rotated key stops working as soon as the policy without it is
//! applied. A cached key stays cached while it is used (`CACHE_IDLE`), for at most
//! `CACHE_LIFE`. argon2 work runs on the blocking pool, at most one per core, and is shared
//! fairly: one tenant may use at most half the cores (at least one) and queue a bounded
//! number of checks, so a tenant flooding wrong secrets slows only itself; checks that miss
//! the cache are limited per key id and per client address (`attempts`).

mod attempts;
pub mod tokens;

use crate::error::{Error, Result};
use crate::metrics::ReasonLabel;
use crate::oauth::KID_PREFIX;
use crate::policy::{Status, Tenant};
use crate::principal::Principal;
use crate::sync::lock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use switchyard_common::apikey;
use tokio::sync::Semaphore;

/// How long a verified key stays cached without being used.
const CACHE_IDLE: Duration = Duration::from_secs(60);
/// How long a verified key stays cached at most, however much it is used.
const CACHE_LIFE: Duration = Duration::from_secs(3600);
const CACHE_MAX: usize = 100_000;
/// argon2 checks one tenant may have waiting; more are refused at once.
const TENANT_QUEUE_MAX: usize = 64;

/// One tenant's part of the argon2 work.
#[derive(Debug)]
struct TenantGate {
    checks: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Counts a check waiting for its tenant's place; uncounted however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Cached {
    secret: [u8; 32],
    verifier: [u8; 32],
    verified: Instant,
    used: Instant,
}

impl Cached {
    fn fresh(&self) -> bool {
        self.used.elapsed() < CACHE_IDLE && self.verified.elapsed() < CACHE_LIFE
    }
}

#[derive(Debug)]
pub struct Authenticator {
    cache: Mutex<HashMap<String, Cached>>,
    argon2: Arc<Semaphore>,
    per_tenant: usize,
    gates: Mutex<HashMap<String, Arc<TenantGate>>>,
    attempts: attempts::Attempts,
    /// argon2 checks run, by result (`verified`, `rejected`).
    checks: Option<Family<ReasonLabel, Counter>>,
    /// Checks access tokens of tenants' identity providers.
    tokens: Option<tokens::Tokens>,
    /// Checks access tokens of the built-in authorization server.
    server: Option<Arc<crate::oauth::Server>>,
}

impl Default for Authenticator {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_cores(cores)
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let v = header?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Authenticator {
    fn with_cores(cores: usize) -> Self {
        Self {
            cache: Mutex::default(),
            argon2: Arc::new(Semaphore::new(cores.max(1))),
            per_tenant: (cores / 2).max(1),
            gates: Mutex::default(),
            attempts: attempts::Attempts::default(),
            checks: None,
            tokens: None,
            server: None,
        }
    }

    /// Counts the argon2 checks it runs in `checks`, by result.
    pub fn counting(mut self, checks: Family<ReasonLabel, Counter>) -> Self {
        self.checks = Some(checks);
        self
    }

    /// Takes access tokens of tenants' identity providers too, checked with `tokens`.
    #[must_use]
    pub fn with_tokens(mut self, tokens: tokens::Tokens) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Takes access tokens of the built-in authorization server too.
    #[must_use]
    pub fn with_server(mut self, server: Arc<crate::oauth::Server>) -> Self {
        self.server = Some(server);
        self
    }

    /// The check of providers' tokens, which also signs users in at providers.
    pub fn tokens(&self) -> Option<&tokens::Tokens> {
        self.tokens.as_ref()
    }

    /// Forgets guessing budgets that are full again, and cached keys gone stale.
    pub fn sweep(&self) {
        self.attempts.sweep();
        lock(&self.cache).retain(|_, c| c.fresh());
    }

    fn gate(&self, tenant: &str) -> Arc<TenantGate> {
        let fresh = || {
            Arc::new(TenantGate {
                checks: Arc::new(Semaphore::new(self.per_tenant)),
                waiting: AtomicUsize::new(0),
            })
        };
        lock(&self.gates)
            .entry(tenant.to_owned())
            .or_insert_with(fresh)
            .clone()
    }

    /// Runs one argon2 check for `tenant`: first a place in the tenant's share, then a core.
    async fn check(&self, tenant: &str, secret: &str, verifier: &str) -> Result<bool> {
        let gate = self.gate(tenant);
        let waiting = Waiting(&gate.waiting);
        if gate.waiting.fetch_add(1, Ordering::SeqCst) >= TENANT_QUEUE_MAX {
            return Err(Error::AuthBusy);
        }
        let tenant_place = gate
            .checks
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::InvalidCredential)?;
        drop(waiting);
        let core = self
            .argon2
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::InvalidCredential)?;
        let (secret, verifier) = (secret.to_owned(), verifier.to_owned());
        // The places go with the work: a request cancelled meanwhile does not free them
        // while its hash still runs.
        Ok(tokio::task::spawn_blocking(move || {
            let ok = apikey::verify_secret(&secret, &verifier);
            drop((tenant_place, core));
            ok
        })
        .await
        .unwrap_or(false))
    }

    /// Authenticates a request to `tenant` bearing `authorization`: an API key, or an
    /// access token of the tenant's provider for the tenant's URL, which `resource` gives
    /// (`None` when the request names no endpoint a token can be for).
    pub async fn authenticate(
        &self,
        tenant: Option<&Tenant>,
        authorization: Option<&str>,
        client: Option<IpAddr>,
        resource: impl FnOnce() -> Option<String> + Send,
    ) -> Result<Principal> {
        let token = bearer(authorization).ok_or(Error::MissingCredential)?;
        if apikey::parse(token).is_none() {
            let resource = resource().ok_or(Error::InvalidCredential)?;
            return self.access_token(tenant, token, &resource).await;
        }
        let tenant = tenant.ok_or(Error::InvalidCredential)?;
        if tenant.api_keys_disabled {
            return Err(Error::ApiKeysDisabled);
        }
        let id = self.key(tenant, token, client).await?;
        Ok(Principal::api_key(tenant.slug.clone(), id))
    }

    /// Checks `token` as one of `tenant`'s API keys, whether or not the tenant takes keys
    /// at its endpoint (the built-in authorization server signs users in with them).
    pub async fn key(
        &self,
        tenant: &Tenant,
        token: &str,
        client: Option<IpAddr>,
    ) -> Result<crate::principal::KeyId> {
        let (id, secret) = apikey::parse(token).ok_or(Error::InvalidCredential)?;
        let key = tenant.keys.get(&id).ok_or(Error::InvalidCredential)?;
        if key.expires.is_some_and(|e| e <= SystemTime::now()) {
            return Err(Error::InvalidCredential);
        }
        let secret_digest = digest(secret);
        let verifier_digest = digest(&key.verifier);
        let cached = lock(&self.cache).get_mut(id.as_str()).is_some_and(|e| {
            let hit = e.secret == secret_digest && e.verifier == verifier_digest && e.fresh();
            if hit {
                e.used = Instant::now();
            }
            hit
        });
        if !cached {
            self.attempts
                .take(&format!("{}/{}", tenant.slug, id), client)
                .map_err(Error::TooManyAttempts)?;
            let ok = self
                .check(tenant.slug.as_str(), secret, &key.verifier)
                .await?;
            if let Some(checks) = &self.checks {
                let reason = if ok { "verified" } else { "rejected" };
                checks.get_or_create(&ReasonLabel { reason }).inc();
            }
            if !ok {
                return Err(Error::InvalidCredential);
            }
            {
                let mut c = lock(&self.cache);
                if c.len() >= CACHE_MAX {
                    c.clear();
                }
                c.insert(
                    id.to_string(),
                    Cached {
                        secret: secret_digest,
                        verifier: verifier_digest,
                        verified: Instant::now(),
                        used: Instant::now(),
                    },
                );
            }
        }
        if tenant.status == Status::Suspended {
            return Err(Error::Suspended(tenant.suspend_reason.clone()));
        }
        Ok(id)
    }
}

impl Authenticator {
    /// Authenticates `token`, not an API key, as an access token of `tenant`'s provider.
    async fn access_token(
        &self,
        tenant: Option<&Tenant>,
        token: &str,
        resource: &str,
    ) -> Result<Principal> {
        let tenant = tenant.ok_or(Error::InvalidCredential)?;
        // A token of the built-in authorization server names one of its keys.
        if let Some(server) = &self.server
            && let Ok(header) = jsonwebtoken::decode_header(token)
            && let Some(kid) = header.kid.as_deref().filter(|k| k.starts_with(KID_PREFIX))
        {
            let principal = server.verify(tenant, resource, kid, token).await?;
            if tenant.status == Status::Suspended {
                return Err(Error::Suspended(tenant.suspend_reason.clone()));
            }
            return Ok(principal);
        }
        let (Some(tokens), Some(provider)) = (&self.tokens, &tenant.provider) else {
            return Err(Error::InvalidCredential);
        };
        let verified = tokens
            .verify(provider, resource, token)
            .await
            .map_err(|e| {
                tracing::debug!(tenant = %tenant.slug, error = %e, "access token refused");
                match e {
                    tokens::TokenError::Invalid(_) => Error::InvalidCredential,
                    tokens::TokenError::NoRole(claim) => Error::InsufficientScope(claim),
                    tokens::TokenError::Unavailable(_) => Error::IdentityProviderUnavailable,
                }
            })?;
        if tenant.status == Status::Suspended {
            return Err(Error::Suspended(tenant.suspend_reason.clone()));
        }
        Ok(Principal::token(
            tenant.slug.clone(),
            verified.subject,
            verified.role,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_uses_at_most_its_share_and_queues_a_bounded_number() {
        let auth = Authenticator::with_cores(2);
        assert_eq!(auth.per_tenant, 1);
        // The flooding tenant holds its one place; the other tenant still gets a core.
        let gate = auth.gate("flood");
        let _held = gate.checks.clone().acquire_owned().await.unwrap();
        assert_eq!(auth.gate("calm").checks.available_permits(), 1);
        assert_eq!(auth.argon2.available_permits(), 2);
        // Its queue is bounded: beyond it, checks are refused at once.
        gate.waiting.store(TENANT_QUEUE_MAX, Ordering::SeqCst);
        assert!(matches!(
            auth.check("flood", "secret", "verifier").await,
            Err(Error::AuthBusy)
        ));
        assert_eq!(gate.waiting.load(Ordering::SeqCst), TENANT_QUEUE_MAX);
        // A check cancelled while it waits leaves the count as it found it.
        gate.waiting.store(0, Ordering::SeqCst);
        let waiting = tokio::time::timeout(
            Duration::from_millis(20),
            auth.check("flood", "secret", "verifier"),
        )
        .await;
        assert!(waiting.is_err(), "it waited for the held place");
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
        let verifier = apikey::hash_secret("right").unwrap();
        assert!(auth.check("calm", "right", &verifier).await.unwrap());
        assert!(!auth.check("calm", "wrong", &verifier).await.unwrap());
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }
}

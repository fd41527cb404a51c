//! API key authentication on the request path. A key is checked against the argon2id
//! verifier in the tenant's current policy; a success is cached briefly, keyed by the
//! verifier itself, so a revoked or rotated key stops working as soon as the policy
//! without it is applied. argon2 work runs on the blocking pool, at most one per core.

use crate::policy::{Role, Status, Tenant};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use switchyard_common::apikey;
use tokio::sync::Semaphore;

const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 100_000;

/// Who is calling, attached to each request once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub key_id: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer credential.
    Missing,
    /// Not a key of this tenant (wrong, unknown, revoked or expired): never says which.
    Invalid,
    /// The key is valid but the tenant is suspended.
    Suspended(String),
}

#[derive(Debug)]
struct Cached {
    secret: [u8; 32],
    verifier: [u8; 32],
    at: Instant,
}

#[derive(Debug)]
pub struct Authenticator {
    cache: Mutex<HashMap<String, Cached>>,
    argon2: Semaphore,
}

impl Default for Authenticator {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            cache: Mutex::default(),
            argon2: Semaphore::new(cores),
        }
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
    pub async fn authenticate(
        &self,
        tenant: Option<&Tenant>,
        authorization: Option<&str>,
    ) -> Result<Caller, AuthError> {
        let token = bearer(authorization).ok_or(AuthError::Missing)?;
        let (id, secret) = apikey::parse(token).ok_or(AuthError::Invalid)?;
        let tenant = tenant.ok_or(AuthError::Invalid)?;
        let key = tenant.keys.get(id.as_str()).ok_or(AuthError::Invalid)?;
        if key.expires.is_some_and(|e| e <= SystemTime::now()) {
            return Err(AuthError::Invalid);
        }
        let secret_digest = digest(secret);
        let verifier_digest = digest(&key.verifier);
        let cached = self.cache.lock().ok().is_some_and(|c| {
            c.get(id.as_str()).is_some_and(|e| {
                e.secret == secret_digest
                    && e.verifier == verifier_digest
                    && e.at.elapsed() < CACHE_TTL
            })
        });
        if !cached {
            let _permit = self
                .argon2
                .acquire()
                .await
                .map_err(|_| AuthError::Invalid)?;
            let secret = secret.to_owned();
            let verifier = key.verifier.clone();
            let ok = tokio::task::spawn_blocking(move || apikey::verify_secret(&secret, &verifier))
                .await
                .unwrap_or(false);
            if !ok {
                return Err(AuthError::Invalid);
            }
            if let Ok(mut c) = self.cache.lock() {
                if c.len() >= CACHE_MAX {
                    c.clear();
                }
                c.insert(
                    id.to_string(),
                    Cached {
                        secret: secret_digest,
                        verifier: verifier_digest,
                        at: Instant::now(),
                    },
                );
            }
        }
        if tenant.status == Status::Suspended {
            return Err(AuthError::Suspended(tenant.suspend_reason.clone()));
        }
        Ok(Caller {
            tenant: tenant.slug.clone(),
            key_id: id.to_string(),
            role: key.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

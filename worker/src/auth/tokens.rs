//! Access tokens of a tenant's OpenID Connect provider, checked on the worker without a
//! call to the provider per request: the signature against the provider's published keys
//! (found by discovery, cached, fetched again when a token names a key not seen yet, so
//! keys rotate without anyone being refused), `iss` exactly the configured issuer, `aud`
//! the tenant's resource URL or its configured audience, `exp` and `nbf` with a small skew,
//! and a role from the configured claim. Only asymmetric algorithms are accepted, and only
//! the one the key itself is for, so neither `none` nor a public key used as an HMAC secret
//! passes. Discovery and keys are fetched through the same egress guard as upstreams.

use crate::policy::Role;
use crate::sync::lock;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_common::netguard::UpstreamGuard;
use switchyard_proto::policy::v1 as pb;

/// When an issuer's keys are fetched again.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long fetched keys are used before they are fetched again.
    pub fresh: Duration,
    /// How soon keys may be fetched again for a token naming an unknown key, or after a
    /// failed fetch while keys are cached: a flood of tokens with made-up key ids costs the
    /// provider one fetch per this.
    pub refetch_after: Duration,
    /// How soon a failed fetch is tried again while no keys are cached.
    pub retry_empty: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            fresh: Duration::from_secs(300),
            refetch_after: Duration::from_secs(30),
            retry_empty: Duration::from_secs(2),
        }
    }
}
/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 60;
/// Largest discovery document and key set read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Issuers whose keys are cached at most; beyond, the cache starts over.
const MAX_ISSUERS: usize = 10_000;
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A tenant's provider as its policy gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub issuer: String,
    /// Empty: the tenant's resource URL.
    pub audience: String,
    pub role_claim: String,
    pub roles: Vec<(String, Role)>,
    /// The built-in authorization server's client at the provider, to sign users in
    /// there; empty: they sign in with an API key.
    pub client_id: String,
    /// Scopes asked for at sign-in besides `openid`.
    pub sign_in_scopes: Vec<String>,
}

impl Provider {
    /// The provider in `identity`, if it names one.
    pub fn from_policy(identity: &pb::Identity) -> Option<Self> {
        if identity.issuer.is_empty() {
            return None;
        }
        let roles = identity
            .roles
            .iter()
            .filter(|g| g.role() != Role::Unspecified)
            .map(|g| (g.value.clone(), g.role()))
            .collect();
        Some(Self {
            issuer: identity.issuer.clone(),
            audience: identity.audience.clone(),
            role_claim: identity.role_claim.clone(),
            roles,
            client_id: identity.client_id.clone(),
            sign_in_scopes: identity.sign_in_scopes.clone(),
        })
    }

    /// The values of the role claim in `claims` that the mapping names.
    fn mapped(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
        let values: Vec<&str> = match claims.get(&self.role_claim) {
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        self.roles
            .iter()
            .filter(|(value, _)| values.contains(&value.as_str()))
            .map(|(value, _)| value.clone())
            .collect()
    }

    /// The strongest role `values` of the role claim give under the current mapping.
    pub fn role_of(&self, values: &[String]) -> Option<Role> {
        self.roles
            .iter()
            .filter(|(value, _)| values.contains(value))
            .map(|(_, role)| *role)
            .max()
    }
}

/// Where a provider signs users in, from its discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
}

/// A user an ID token signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub subject: String,
    /// The values of the role claim the mapping names.
    pub values: Vec<String>,
}

/// Who a valid token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub subject: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a valid token for this tenant; the reason is for logs, never for the caller.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A valid token whose role claim gives no role.
    #[error("the token's {0} claim gives no role")]
    NoRole(String),
    /// The provider's keys could not be had; the token may be fine.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// One issuer's keys, when they were fetched, and when a fetch was last tried.
#[derive(Debug, Default)]
struct Issuer {
    keys: Mutex<Option<(Arc<Vec<Jwk>>, Instant)>>,
    tried: Mutex<Option<Instant>>,
    /// Where it signs users in, found with its keys.
    endpoints: Mutex<Option<Endpoints>>,
    /// Held while fetching, so concurrent misses fetch once.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
pub struct Tokens {
    fetcher: crate::egress::JsonFetcher,
    timing: Timing,
    issuers: Mutex<HashMap<String, Arc<Issuer>>>,
    /// Key sets fetched, for tests and metrics.
    fetches: std::sync::atomic::AtomicU64,
}

impl Tokens {
    /// Checks tokens of providers reached through `guard`.
    pub fn new(guard: UpstreamGuard) -> Result<Self, TokenError> {
        let fetcher = crate::egress::JsonFetcher::new(guard, FETCH_TIMEOUT)
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
        Ok(Self {
            fetcher,
            timing: Timing::default(),
            issuers: Mutex::default(),
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    #[must_use]
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Key sets fetched so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks `token` for `provider`, expecting the tenant's `resource` URL as its audience
    /// when the provider names none.
    pub async fn verify(
        &self,
        provider: &Provider,
        resource: &str,
        token: &str,
    ) -> Result<Verified, TokenError> {
        let audience = if provider.audience.is_empty() {
            resource
        } else {
            &provider.audience
        };
        let claims = self.decode(&provider.issuer, audience, token).await?;
        let role = provider
            .role_of(&provider.mapped(&claims.rest))
            .ok_or_else(|| TokenError::NoRole(provider.role_claim.clone()))?;
        Ok(Verified {
            subject: claims.sub,
            role,
        })
    }

    /// Checks `token`, an ID token the provider gave the built-in authorization server's
    /// client at sign-in `nonce`: issued for that client, for that sign-in, and naming a
    /// role the mapping knows.
    pub async fn verify_id_token(
        &self,
        provider: &Provider,
        token: &str,
        nonce: &str,
    ) -> Result<SignedIn, TokenError> {
        let claims = self
            .decode(&provider.issuer, &provider.client_id, token)
            .await?;
        if claims.rest.get("nonce").and_then(|n| n.as_str()) != Some(nonce) {
            return Err(TokenError::Invalid(
                "the nonce is not this sign-in's".into(),
            ));
        }
        // A token for several audiences must say which one it was issued to (OpenID Connect
        // Core 3.1.3.7); one that names an authorised party names this client.
        let audiences = claims
            .rest
            .get("aud")
            .and_then(|a| a.as_array())
            .map(Vec::len);
        match claims.rest.get("azp") {
            None if audiences.unwrap_or(1) <= 1 => {}
            Some(azp) if azp.as_str() == Some(provider.client_id.as_str()) => {}
            _ => {
                return Err(TokenError::Invalid(
                    "the token was issued to another client (azp)".into(),
                ));
            }
        }
        let values = provider.mapped(&claims.rest);
        if provider.role_of(&values).is_none() {
            return Err(TokenError::NoRole(provider.role_claim.clone()));
        }
        Ok(SignedIn {
            subject: claims.sub,
            values,
        })
    }

    /// The claims of `token`, signed by a key of `issuer`, for `audience`, in date, with
    /// a subject fit to name the caller.
    async fn decode(
        &self,
        issuer: &str,
        audience: &str,
        token: &str,
    ) -> Result<Claims, TokenError> {
        let invalid = |e: jsonwebtoken::errors::Error| TokenError::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} not accepted",
                header.alg
            )));
        }
        let key = self.key(issuer, header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(invalid)?
            .claims;
        // The subject names the caller on the audit trail and binds its sessions.
        if claims.sub.is_empty()
            || claims.sub.len() > crate::principal::MAX_SUBJECT_LEN
            || claims.sub.chars().any(char::is_control)
        {
            return Err(TokenError::Invalid(
                "the subject is empty, too long or has control characters".into(),
            ));
        }
        Ok(claims)
    }

    fn state(&self, issuer: &str) -> Arc<Issuer> {
        let mut issuers = lock(&self.issuers);
        if issuers.len() >= MAX_ISSUERS && !issuers.contains_key(issuer) {
            issuers.clear();
        }
        issuers.entry(issuer.to_owned()).or_default().clone()
    }

    /// Where `issuer` signs users in, found by discovery with its keys.
    pub async fn endpoints(&self, issuer: &str) -> Result<Endpoints, TokenError> {
        let state = self.state(issuer);
        if let Some(found) = lock(&state.endpoints).clone() {
            return Ok(found);
        }
        let _fetching = state.fetching.lock().await;
        if let Some(found) = lock(&state.endpoints).clone() {
            return Ok(found);
        }
        let due = lock(&state.tried).is_none_or(|t| t.elapsed() >= self.timing.retry_empty);
        if due {
            *lock(&state.tried) = Some(Instant::now());
            let keys = self.fetch(issuer, &state).await?;
            *lock(&state.keys) = Some((Arc::new(keys), Instant::now()));
        }
        lock(&state.endpoints).clone().ok_or_else(|| {
            TokenError::Unavailable("the provider names no authorization and token endpoint".into())
        })
    }

    /// Posts `form` to the provider's token endpoint `url`; its answer, whatever status.
    pub async fn exchange(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(http::StatusCode, serde_json::Value), TokenError> {
        self.fetcher
            .post_form(url, form, MAX_DOCUMENT_BYTES)
            .await
            .map_err(TokenError::Unavailable)
    }

    /// The key `kid` of `issuer` for `alg`, fetching the issuer's keys when they are stale,
    /// or when `kid` is not among them and they were not fetched just now.
    async fn key(
        &self,
        issuer: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, TokenError> {
        let state = self.state(issuer);
        let cached = lock(&state.keys).clone();
        if let Some((keys, at)) = &cached
            && at.elapsed() < self.timing.fresh
            && let Some(key) = pick(keys, kid, alg)
        {
            return key;
        }
        let _fetching = state.fetching.lock().await;
        // Another request may have fetched them meanwhile; fetches are spaced either way.
        let cached = lock(&state.keys).clone();
        let wait = if cached.is_some() {
            self.timing.refetch_after
        } else {
            self.timing.retry_empty
        };
        let due = lock(&state.tried).is_none_or(|t| t.elapsed() >= wait);
        let keys = if due {
            *lock(&state.tried) = Some(Instant::now());
            match self.fetch(issuer, &state).await {
                Ok(keys) => {
                    let keys = Arc::new(keys);
                    *lock(&state.keys) = Some((keys.clone(), Instant::now()));
                    keys
                }
                // The provider is away: keys still cached go on serving.
                Err(e) => cached.map(|(keys, _)| keys).ok_or(e)?,
            }
        } else {
            cached.map(|(keys, _)| keys).ok_or_else(|| {
                TokenError::Unavailable("the provider's keys could not be fetched".into())
            })?
        };
        pick(&keys, kid, alg)
            .unwrap_or_else(|| Err(TokenError::Invalid("no key of the issuer matches".into())))
    }

    /// The issuer's keys, by OpenID Connect discovery; its endpoints are kept in `state`.
    async fn fetch(&self, issuer: &str, state: &Issuer) -> Result<Vec<Jwk>, TokenError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&discovery).await?;
        if doc["issuer"].as_str() != Some(issuer) {
            return Err(TokenError::Unavailable(format!(
                "{discovery} names another issuer"
            )));
        }
        let jwks_uri = doc["jwks_uri"]
            .as_str()
            .ok_or_else(|| TokenError::Unavailable(format!("{discovery} has no jwks_uri")))?;
        if !as_strong(jwks_uri, issuer) {
            return Err(TokenError::Unavailable(format!(
                "{discovery} gives keys at a weaker URL than the issuer's"
            )));
        }
        let endpoint = |name: &str| {
            doc[name]
                .as_str()
                .filter(|u| as_strong(u, issuer))
                .map(str::to_owned)
        };
        if let (Some(authorization), Some(token)) = (
            endpoint("authorization_endpoint"),
            endpoint("token_endpoint"),
        ) {
            *lock(&state.endpoints) = Some(Endpoints {
                authorization,
                token,
            });
        }
        let set = self.get_json(jwks_uri).await?;
        // Keys of a kind this worker does not know are left out, not the whole set.
        Ok(set["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, TokenError> {
        self.fetcher
            .get(url, MAX_DOCUMENT_BYTES)
            .await
            .map_err(TokenError::Unavailable)
    }
}

/// Whether `url` is https, or of the issuer's own scheme.
fn as_strong(url: &str, issuer: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .zip(url::Url::parse(issuer).ok())
        .is_some_and(|(u, iss)| u.scheme() == "https" || u.scheme() == iss.scheme())
}

/// The key among `keys` a token signed with `alg` under `kid` names (with no `kid`, the
/// one key for `alg`), as a decoding key; `None` when there is none.
fn pick(
    keys: &[Jwk],
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<Result<DecodingKey, TokenError>> {
    let fits = |k: &&Jwk| {
        let declared = k.common.key_algorithm.map(|a| a.to_string());
        declared.is_none_or(|a| a == format!("{alg:?}"))
            && k.common.public_key_use != Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    };
    let mut candidates = keys.iter().filter(fits);
    let key = match kid {
        Some(kid) => candidates.find(|k| k.common.key_id.as_deref() == Some(kid))?,
        None => {
            let only = candidates.next()?;
            if candidates.next().is_some() {
                return Some(Err(TokenError::Invalid(
                    "the token names no key and the issuer has several".into(),
                )));
            }
            only
        }
    };
    Some(DecodingKey::from_jwk(key).map_err(|e| TokenError::Invalid(e.to_string())))
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;

//! The keys the built-in authorization server signs a tenant's access tokens with: one
//! ES256 key per tenant, so that whoever holds one tenant's key (a dedicated worker) can
//! mint tokens for that tenant alone. A tenant's keys are kept in the shared keys store,
//! sealed with the tenant's policy key; the first worker to need them makes them (a
//! create-once write, so racing workers agree on one) and every worker caches them. The
//! first key signs; the others still verify, so a key rotated out logs nobody out. Keys
//! rotate on their own: once the newest key is older than the rotation period, the first
//! worker to read them puts a new one first (a compare-and-set, so one rotation wins). The
//! new key signs only once every worker has read it (workers read the keys again at least
//! every minute), so no worker refuses its tokens; a replaced key is kept until every
//! token it signed has expired. An operator may retire a tenant's keys at once (its
//! policy names a time before which keys are retired): they neither sign nor verify, and
//! a new key signs at once; clients refresh their tokens, and nobody signs in again.

use crate::sync::lock;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_bus::CasKv;
use switchyard_common::seal::Keyring;

/// Key ids of the built-in server start with this, so a token names which checks it needs.
pub const KID_PREFIX: &str = "sy-";
/// How long cached keys are used before they are read again (a rotation reaches every
/// worker within this).
const FRESH: Duration = Duration::from_secs(60);
/// How soon keys are read again for a token naming a key not among them: a flood of
/// tokens with made-up key ids costs the store one read per this.
const REREAD_AFTER: Duration = Duration::from_secs(5);
/// How long a key signs before a new one takes over.
pub const ROTATE_AFTER: Duration = Duration::from_secs(30 * 86_400);
/// How long after it is made a key starts signing: every worker has read it by then.
pub const ACTIVATE_AFTER: Duration = Duration::from_secs(180);
const _: () = assert!(ACTIVATE_AFTER.as_secs() > FRESH.as_secs() + REREAD_AFTER.as_secs());
/// How long a replaced key still verifies: until it stops signing, then the longest
/// access token lifetime, and skew.
const RETAIN_FOR: Duration = Duration::from_secs(180 + 86_400 + 120);

/// A tenant's keys as stored: the first signs.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    keys: Vec<StoredKey>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// The PKCS#8 private key, sealed, base64.
    sealed: String,
    /// The public point's coordinates, base64url.
    x: String,
    y: String,
    /// When it was made, in seconds since the epoch.
    #[serde(default)]
    created: u64,
}

/// One usable key.
#[derive(Clone)]
struct Key {
    kid: String,
    created: u64,
    signing: EncodingKey,
    verifying: DecodingKey,
    x: String,
    y: String,
}

struct Cached {
    keys: Arc<Vec<Key>>,
    read: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the keys store is unavailable: {0}")]
    Unavailable(String),
    #[error("the stored keys cannot be used: {0}")]
    Corrupt(String),
}

/// Tenants' signing keys.
pub struct SigningKeys {
    store: Arc<dyn CasKv>,
    /// Opens and seals a tenant's keys (see `sealer`).
    policy_keys: Keyring,
    /// Whether `policy_keys` is one tenant's already (a dedicated worker's).
    derived: bool,
    rotate_after: Duration,
    activate_after: Duration,
    /// How long read keys are used before they are read again.
    fresh: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").finish_non_exhaustive()
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKeys {
    pub fn new(store: Arc<dyn CasKv>, policy_keys: Keyring, derived: bool) -> Self {
        Self {
            store,
            policy_keys,
            derived,
            rotate_after: ROTATE_AFTER,
            activate_after: ACTIVATE_AFTER,
            fresh: FRESH,
            cache: Mutex::default(),
        }
    }

    /// Makes a new key once the newest is `rotate_after` old, signing `activate_after` later.
    #[must_use]
    pub fn with_rotation(mut self, rotate_after: Duration, activate_after: Duration) -> Self {
        self.rotate_after = rotate_after;
        self.activate_after = activate_after;
        self
    }

    fn sealer(&self, tenant: &str) -> Keyring {
        if self.derived {
            self.policy_keys.clone()
        } else {
            self.policy_keys.for_tenant(tenant)
        }
    }

    fn aad(tenant: &str, kid: &str) -> Vec<u8> {
        switchyard_common::seal::associated_data("oauth-signing-key", &[tenant, kid])
    }

    /// A new key for `tenant`, as stored, made after `not_before` (a retirement in this
    /// very second, or a control plane's clock ahead of this worker's, must not retire it).
    fn generate(&self, tenant: &str, not_before: u64) -> Result<StoredKey, KeyError> {
        let rng = SystemRandom::new();
        let corrupt = |e: ring::error::Unspecified| KeyError::Corrupt(e.to_string());
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(corrupt)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| KeyError::Corrupt(e.to_string()))?;
        // An uncompressed point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        let mut id = [0u8; 12];
        ring::rand::SecureRandom::fill(&rng, &mut id).map_err(corrupt)?;
        let kid = format!("{KID_PREFIX}{}", b64url(&id));
        let sealed = self
            .sealer(tenant)
            .seal(&Self::aad(tenant, &kid), pkcs8.as_ref());
        use base64::Engine as _;
        Ok(StoredKey {
            sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
            x: b64url(&point[1..33]),
            y: b64url(&point[33..65]),
            kid,
            created: super::now_secs().max(not_before + 1),
        })
    }

    fn open(&self, tenant: &str, stored: &StoredKey) -> Result<Key, KeyError> {
        use base64::Engine as _;
        let corrupt = |e: &dyn std::fmt::Display| KeyError::Corrupt(e.to_string());
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&stored.sealed)
            .map_err(|e| corrupt(&e))?;
        let pkcs8 = self
            .sealer(tenant)
            .open(&Self::aad(tenant, &stored.kid), &sealed)
            .map_err(|e| corrupt(&e))?;
        Ok(Key {
            kid: stored.kid.clone(),
            created: stored.created,
            signing: EncodingKey::from_ec_der(&pkcs8),
            verifying: DecodingKey::from_ec_components(&stored.x, &stored.y)
                .map_err(|e| corrupt(&e))?,
            x: stored.x.clone(),
            y: stored.y.clone(),
        })
    }

    /// `tenant`'s keys not retired (see `live`; `not_before` in seconds), from the
    /// cache while fresh (`refresh`: unless read a while ago), else from the store, made if
    /// none are.
    async fn keys(
        &self,
        tenant: &str,
        not_before: u64,
        refresh: bool,
    ) -> Result<Arc<Vec<Key>>, KeyError> {
        let within = if refresh {
            REREAD_AFTER.min(self.fresh)
        } else {
            self.fresh
        };
        if let Some(c) = lock(&self.cache).get(tenant)
            && c.read.elapsed() < within
            && c.keys.iter().all(|k| live(k.created, not_before))
        {
            return Ok(c.keys.clone());
        }
        let stored = match self.stored(tenant, not_before).await {
            Ok(stored) => stored,
            Err(e @ KeyError::Unavailable(_)) => {
                // The store is away: the keys read last go on checking and signing, but
                // none retired since.
                let cached = lock(&self.cache).get(tenant).map(|c| c.keys.clone());
                let live_keys: Vec<Key> = cached
                    .iter()
                    .flat_map(|keys| keys.iter())
                    .filter(|k| live(k.created, not_before))
                    .cloned()
                    .collect();
                return if live_keys.is_empty() {
                    Err(e)
                } else {
                    Ok(Arc::new(live_keys))
                };
            }
            Err(e) => return Err(e),
        };
        let keys = stored
            .keys
            .iter()
            .filter(|k| live(k.created, not_before))
            .map(|k| self.open(tenant, k))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::Corrupt("no keys stored".into()));
        }
        let keys = Arc::new(keys);
        let mut cache = lock(&self.cache);
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(
            tenant.to_owned(),
            Cached {
                keys: keys.clone(),
                read: Instant::now(),
            },
        );
        Ok(keys)
    }

    /// `tenant`'s keys as stored: made if there are none, rotated if the signing one is old
    /// or retired (see `live`).
    async fn stored(&self, tenant: &str, not_before: u64) -> Result<Stored, KeyError> {
        let unavailable = |e: switchyard_bus::BusError| KeyError::Unavailable(e.to_string());
        let corrupt = |e: serde_json::Error| KeyError::Corrupt(e.to_string());
        let name = format!("{tenant}.signing");
        loop {
            let Some(entry) = self.store.get(&name).await.map_err(unavailable)? else {
                let first = Stored {
                    keys: vec![self.generate(tenant, not_before)?],
                };
                let bytes = serde_json::to_vec(&first).map_err(corrupt)?;
                if self
                    .store
                    .create(&name, bytes.into())
                    .await
                    .map_err(unavailable)?
                {
                    return Ok(first);
                }
                // Another worker made them first: use theirs.
                continue;
            };
            let stored: Stored = serde_json::from_slice(&entry.value).map_err(corrupt)?;
            let now = super::now_secs();
            let due = stored.keys.first().is_none_or(|k| {
                k.created + self.rotate_after.as_secs() <= now || !live(k.created, not_before)
            });
            if !due {
                return Ok(stored);
            }
            let kept = retained(stored.keys, now)
                .into_iter()
                .filter(|k| live(k.created, not_before));
            let rotated = Stored {
                keys: std::iter::once(self.generate(tenant, not_before)?)
                    .chain(kept)
                    .collect(),
            };
            let bytes = serde_json::to_vec(&rotated).map_err(corrupt)?;
            if self
                .store
                .update(&name, bytes.into(), entry.revision)
                .await
                .map_err(unavailable)?
            {
                tracing::info!(tenant, "signing key rotated");
                return Ok(rotated);
            }
            // Another worker rotated them first: read theirs.
        }
    }

    /// `claims` signed with `tenant`'s current key (none retired, see `live`).
    pub async fn sign(
        &self,
        tenant: &str,
        not_before: u64,
        claims: &impl Serialize,
    ) -> Result<String, KeyError> {
        let keys = self.keys(tenant, not_before, false).await?;
        // The newest key every worker knows by now; the oldest when none is that old (a
        // tenant's first key, or the first after a retirement, signs at once: no worker
        // holds others of it that it would take).
        let now = super::now_secs();
        let active = |k: &&Key| k.created + self.activate_after.as_secs() <= now;
        let Some(key) = keys.iter().find(active).or(keys.last()) else {
            return Err(KeyError::Corrupt("no keys stored".into()));
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &key.signing)
            .map_err(|e| KeyError::Corrupt(e.to_string()))
    }

    /// The key `kid` of `tenant` to check a token with, unless retired (see `live`): read
    /// again once when it is not among the cached keys (a key made
    /// since).
    pub async fn verifying(
        &self,
        tenant: &str,
        not_before: u64,
        kid: &str,
    ) -> Result<Option<DecodingKey>, KeyError> {
        for refresh in [false, true] {
            let keys = self.keys(tenant, not_before, refresh).await?;
            if let Some(k) = keys.iter().find(|k| k.kid == kid) {
                return Ok(Some(k.verifying.clone()));
            }
        }
        Ok(None)
    }

    /// `tenant`'s public keys not retired (see `live`), as a JWK set.
    pub async fn jwks(&self, tenant: &str, not_before: u64) -> Result<serde_json::Value, KeyError> {
        let keys = self.keys(tenant, not_before, false).await?;
        let keys: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                    "kid": k.kid, "x": k.x, "y": k.y,
                })
            })
            .collect();
        Ok(serde_json::json!({ "keys": keys }))
    }
}

/// Whether a key made at `created` outlives a retirement of the keys made until
/// `not_before` (seconds; 0: none retired).
fn live(created: u64, not_before: u64) -> bool {
    not_before == 0 || created > not_before
}

/// Of `keys` (newest first) being replaced now (`now`), those that may still have signed a
/// live token: each was replaced when the one before it was made.
fn retained(keys: Vec<StoredKey>, now: u64) -> Vec<StoredKey> {
    let mut replaced_at = now;
    let mut kept = Vec::new();
    for key in keys {
        if replaced_at + RETAIN_FOR.as_secs() > now {
            replaced_at = key.created;
            kept.push(key);
        } else {
            break;
        }
    }
    kept
}

/// Validation for a token of the built-in server: ES256 only.
pub fn validation() -> Validation {
    Validation::new(Algorithm::ES256)
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;

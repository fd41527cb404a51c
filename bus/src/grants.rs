//! The built-in authorization server's state, shared by all workers so that any of them can
//! carry on a sign-in another began and none loses it when one goes: authorization codes,
//! grants with their refresh tokens, and the signing keys. Every change that must happen
//! once (a code redeemed, a refresh token rotated) is a compare-and-set on the entry's
//! revision, so two workers racing on one entry cannot both win. NATS JetStream KV in
//! production, one bucket per lifetime (entries expire after the bucket's max age unless
//! written again); a map in `switchyard dev`.

use crate::{BusError, Result};
use async_nats::jetstream::kv;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The default bucket names.
pub const CODES_BUCKET: &str = "switchyard-oauth-codes";
pub const GRANTS_BUCKET: &str = "switchyard-oauth-grants";
pub const KEYS_BUCKET: &str = "switchyard-oauth-keys";
pub const CLIENTS_BUCKET: &str = "switchyard-oauth-clients";

/// A value and the revision it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Bytes,
    pub revision: u64,
}

#[async_trait::async_trait]
pub trait CasKv: Send + Sync + std::fmt::Debug + 'static {
    /// Makes the store ready (a bucket created if missing), so that users allowed to read
    /// and write it but not to create it can use it.
    async fn open(&self) -> Result<()> {
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Versioned>>;
    /// Stores `value` under `key` unless it holds one; `false` if it does.
    async fn create(&self, key: &str, value: Bytes) -> Result<bool>;
    /// Replaces `key`'s value if it is still at `revision`; `false` if it is not.
    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<bool>;
    /// Takes `key`'s value away if it is still at `revision`; `false` if it is not. A
    /// taken key reads as absent and cannot be created again until it expires.
    async fn take(&self, key: &str, revision: u64) -> Result<bool>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// The entries whose keys start with `prefix` (taken ones left out), in key order, at
    /// most `max` of them.
    async fn list(&self, prefix: &str, max: usize) -> Result<Vec<(String, Versioned)>>;
}

/// Entries in memory, each forgotten `ttl` after it was last written.
#[derive(Debug, Clone)]
pub struct MemoryCas {
    entries: Arc<Mutex<Entries>>,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, (Versioned, Instant)>,
    revision: u64,
}

impl MemoryCas {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Default::default(),
            ttl,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Entries, Instant) -> T) -> Result<T> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| BusError::Unavailable("poisoned".into()))?;
        let now = Instant::now();
        let ttl = self.ttl;
        entries
            .map
            .retain(|_, (_, written)| now.duration_since(*written) < ttl);
        Ok(f(&mut entries, now))
    }
}

impl Entries {
    fn write(&mut self, key: &str, value: Bytes, now: Instant) {
        self.revision += 1;
        let revision = self.revision;
        self.map
            .insert(key.to_owned(), (Versioned { value, revision }, now));
    }

    fn at(&self, key: &str, revision: u64) -> bool {
        self.map
            .get(key)
            .is_some_and(|(v, _)| v.revision == revision)
    }
}

#[async_trait::async_trait]
impl CasKv for MemoryCas {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.with(|e, _| {
            e.map
                .get(key)
                .filter(|(v, _)| !v.value.is_empty())
                .map(|(v, _)| v.clone())
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<bool> {
        self.with(|e, now| {
            if e.map.contains_key(key) {
                return false;
            }
            e.write(key, value, now);
            true
        })
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<bool> {
        self.with(|e, now| {
            if !e.at(key, revision) {
                return false;
            }
            e.write(key, value, now);
            true
        })
    }

    async fn take(&self, key: &str, revision: u64) -> Result<bool> {
        self.with(|e, now| {
            if !e.at(key, revision) {
                return false;
            }
            e.write(key, Bytes::new(), now);
            true
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.with(|e, _| {
            e.map.remove(key);
        })
    }

    async fn list(&self, prefix: &str, max: usize) -> Result<Vec<(String, Versioned)>> {
        self.with(|e, _| {
            let mut found: Vec<(String, Versioned)> = e
                .map
                .iter()
                .filter(|(k, (v, _))| k.starts_with(prefix) && !v.value.is_empty())
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found.truncate(max);
            found
        })
    }
}

/// Entries in a JetStream KV bucket.
#[derive(Debug, Clone)]
pub struct NatsCas {
    bucket: crate::LazyBucket,
}

impl NatsCas {
    /// Entries in `bucket`, each expiring `ttl` after it was last written (`None`: never).
    pub fn new(client: async_nats::Client, bucket: &str, ttl: Option<Duration>) -> Self {
        let config = kv::Config {
            bucket: bucket.to_owned(),
            description: "Switchyard authorization server state shared by workers".into(),
            history: 1,
            max_age: ttl.unwrap_or_default(),
            ..Default::default()
        };
        Self {
            bucket: crate::LazyBucket::new(client, config),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

#[async_trait::async_trait]
impl CasKv for NatsCas {
    async fn open(&self) -> Result<()> {
        self.bucket.get().await.map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        let entry = self
            .bucket
            .get()
            .await?
            .entry(key)
            .await
            .map_err(unavailable)?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put && !e.value.is_empty())
            .map(|e| Versioned {
                value: e.value,
                revision: e.revision,
            }))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<bool> {
        match self.bucket.get().await?.create(key, value).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<bool> {
        match self.bucket.get().await?.update(key, value, revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn take(&self, key: &str, revision: u64) -> Result<bool> {
        // An empty value marks the key taken (see `CasKv::take`); it expires with the bucket.
        self.update(key, Bytes::new(), revision).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.bucket
            .get()
            .await?
            .purge(key)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn list(&self, prefix: &str, max: usize) -> Result<Vec<(String, Versioned)>> {
        use futures::TryStreamExt as _;
        let store = self.bucket.get().await?;
        // The bucket's keys, read once each from the last write per key.
        let mut keys: Vec<String> = store
            .keys()
            .await
            .map_err(unavailable)?
            .try_filter(|k| std::future::ready(k.starts_with(prefix)))
            .try_collect()
            .await
            .map_err(unavailable)?;
        keys.sort();
        let mut found = Vec::new();
        for key in keys {
            if found.len() >= max {
                break;
            }
            if let Some(entry) = self.get(&key).await? {
                found.push((key, entry));
            }
        }
        Ok(found)
    }
}

/// The three stores of the authorization server.
#[derive(Debug, Clone)]
pub struct GrantStores {
    /// Authorization codes and sign-ins in progress: minutes.
    pub codes: Arc<dyn CasKv>,
    /// Grants and their refresh tokens: as long as a refresh token may live.
    pub grants: Arc<dyn CasKv>,
    /// Signing keys: until rotated out.
    pub keys: Arc<dyn CasKv>,
    /// Client registrations nobody has signed in with yet: a day.
    pub clients: Arc<dyn CasKv>,
}

/// How long a code or a sign-in in progress lives.
pub const CODE_TTL: Duration = Duration::from_secs(600);
/// How long a registration nobody signs in with lives.
pub const UNUSED_CLIENT_TTL: Duration = Duration::from_secs(86_400);
/// How long a grant nobody refreshes lives: the longest refresh token lifetime a tenant
/// can set.
pub const GRANT_TTL: Duration = Duration::from_secs(90 * 86_400);

impl GrantStores {
    /// Makes every store ready (see `CasKv::open`).
    pub async fn open(&self) -> Result<()> {
        self.codes.open().await?;
        self.grants.open().await?;
        self.clients.open().await?;
        self.keys.open().await
    }

    pub fn nats(client: async_nats::Client) -> Self {
        Self {
            codes: Arc::new(NatsCas::new(client.clone(), CODES_BUCKET, Some(CODE_TTL))),
            grants: Arc::new(NatsCas::new(client.clone(), GRANTS_BUCKET, Some(GRANT_TTL))),
            clients: Arc::new(NatsCas::new(
                client.clone(),
                CLIENTS_BUCKET,
                Some(UNUSED_CLIENT_TTL),
            )),
            keys: Arc::new(NatsCas::new(client, KEYS_BUCKET, None)),
        }
    }

    pub fn in_memory() -> Self {
        Self {
            codes: Arc::new(MemoryCas::new(CODE_TTL)),
            grants: Arc::new(MemoryCas::new(GRANT_TTL)),
            clients: Arc::new(MemoryCas::new(UNUSED_CLIENT_TTL)),
            keys: Arc::new(MemoryCas::new(Duration::MAX)),
        }
    }
}

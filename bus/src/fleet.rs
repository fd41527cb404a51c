//! Worker heartbeats: each worker writes one every few seconds under its id; entries expire
//! when a worker stops writing, so the bucket always lists the live fleet. The control plane
//! and other workers read it (fleet membership, health). Keys name the pool first
//! (`shared.{worker}`, `dedicated.{tenant}.{worker}`), so a dedicated worker can read and
//! write its own pool's heartbeats alone, which its NATS credentials may be limited to.

use crate::{BusError, Result};
use async_nats::jetstream::kv;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub const FLEET_BUCKET: &str = "switchyard-workers";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub worker: String,
    /// Unix milliseconds.
    pub started_ms: i64,
    pub at_ms: i64,
    pub ready: bool,
    pub tenants: u64,
    /// Highest policy revision this worker has applied.
    pub policy_revision: u64,
    /// Sessions this worker holds, by tenant: workers count a tenant's sessions across the
    /// fleet from these.
    #[serde(default)]
    pub sessions: std::collections::BTreeMap<String, u64>,
    /// Circuit breakers that are not closed.
    #[serde(default)]
    pub breakers: Vec<BreakerReport>,
    /// The one tenant a dedicated worker serves; none for a shared worker. Tenant limits
    /// are shared among the workers of one pool.
    #[serde(default)]
    pub only_tenant: Option<String>,
}

/// The state of a circuit breaker that is not closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerStatus {
    /// Calls fail fast until `retry_at_ms`.
    Open,
    /// Probes are let through to see whether the upstream recovered.
    HalfOpen,
}

impl BreakerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A circuit breaker that is open or half-open on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerReport {
    pub tenant: String,
    pub connector: String,
    pub state: BreakerStatus,
    /// Unix milliseconds when an open breaker lets a probe through.
    pub retry_at_ms: i64,
}

#[async_trait::async_trait]
pub trait Fleet: Send + Sync + std::fmt::Debug + 'static {
    async fn beat(&self, heartbeat: &Heartbeat) -> Result<()>;
    /// Live workers: those whose last heartbeat has not expired.
    async fn members(&self) -> Result<Vec<Heartbeat>>;
}

/// The fleet of `switchyard dev`, in memory: heartbeats expire `ttl` after they were
/// written, as on NATS.
#[derive(Debug, Clone)]
pub struct MemoryFleet {
    beats: Arc<Mutex<HashMap<String, (Heartbeat, Instant)>>>,
    ttl: Duration,
}

impl Default for MemoryFleet {
    fn default() -> Self {
        Self::with_ttl(Duration::from_secs(15))
    }
}

impl MemoryFleet {
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            beats: Arc::default(),
            ttl,
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Heartbeat, Instant)>> {
        let mut beats = self.beats.lock().unwrap_or_else(PoisonError::into_inner);
        beats.retain(|_, (_, at)| at.elapsed() < self.ttl);
        beats
    }
}

#[async_trait::async_trait]
impl Fleet for MemoryFleet {
    async fn beat(&self, heartbeat: &Heartbeat) -> Result<()> {
        self.live().insert(
            heartbeat.worker.clone(),
            (heartbeat.clone(), Instant::now()),
        );
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Heartbeat>> {
        Ok(self.live().values().map(|(h, _)| h.clone()).collect())
    }
}

#[derive(Debug, Clone)]
pub struct NatsFleet {
    bucket: crate::LazyBucket,
    ttl: Duration,
    /// The dedicated pool whose heartbeats this fleet reads alone, if scoped.
    only: Option<String>,
    /// A scoped fleet's view of its pool, kept from the heartbeats as they are written.
    pool: Arc<tokio::sync::OnceCell<MemoryFleet>>,
}

/// Where `heartbeat` is kept: under its pool.
fn fleet_key(heartbeat: &Heartbeat) -> String {
    match &heartbeat.only_tenant {
        Some(tenant) => format!("dedicated.{tenant}.{}", heartbeat.worker),
        None => format!("shared.{}", heartbeat.worker),
    }
}

impl NatsFleet {
    /// Entries in `bucket`, each expiring `ttl` after it was last written.
    pub fn new(client: async_nats::Client, bucket: &str, ttl: Duration) -> Self {
        let config = kv::Config {
            bucket: bucket.to_owned(),
            description: "Switchyard worker heartbeats".into(),
            history: 1,
            max_age: ttl,
            ..Default::default()
        };
        Self {
            bucket: crate::LazyBucket::new(client, config),
            ttl,
            only: None,
            pool: Arc::default(),
        }
    }

    /// A fleet that reads the heartbeats of tenant `tenant`'s dedicated pool alone.
    pub fn scoped(client: async_nats::Client, bucket: &str, ttl: Duration, tenant: &str) -> Self {
        Self {
            only: Some(tenant.to_owned()),
            ..Self::new(client, bucket, ttl)
        }
    }

    async fn kv(&self) -> Result<&kv::Store> {
        self.bucket.get().await
    }

    /// The live heartbeats of `tenant`'s dedicated pool, as core NATS delivers their
    /// writes from the first call on (a JetStream consumer is not a permission that can be
    /// limited to the pool's keys): each live worker is listed within a heartbeat period.
    async fn pool(&self, tenant: &str) -> Result<Vec<Heartbeat>> {
        let pool = self
            .pool
            .get_or_try_init(|| async {
                let subject = self.bucket.subject(&format!("dedicated.{tenant}.>"));
                let mut writes = self
                    .bucket
                    .client()
                    .subscribe(subject)
                    .await
                    .map_err(unavailable)?;
                let pool = MemoryFleet::with_ttl(self.ttl);
                let seen = pool.clone();
                tokio::spawn(async move {
                    while let Some(m) = writes.next().await {
                        if let Ok(hb) = serde_json::from_slice::<Heartbeat>(&m.payload) {
                            seen.beat(&hb).await.ok();
                        }
                    }
                });
                Ok::<_, BusError>(pool)
            })
            .await?;
        pool.members().await
    }
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

#[async_trait::async_trait]
impl Fleet for NatsFleet {
    async fn beat(&self, heartbeat: &Heartbeat) -> Result<()> {
        let bytes = serde_json::to_vec(heartbeat).map_err(unavailable)?;
        self.kv()
            .await?
            .put(fleet_key(heartbeat), bytes.into())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Heartbeat>> {
        if let Some(tenant) = &self.only {
            return self.pool(tenant).await;
        }
        let kv = self.kv().await?;
        let mut keys = kv.keys().await.map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(unavailable)?;
            if let Some(entry) = kv.entry(&key).await.map_err(unavailable)?
                && entry.operation == kv::Operation::Put
                && let Ok(hb) = serde_json::from_slice::<Heartbeat>(&entry.value)
            {
                out.push(hb);
            }
        }
        Ok(out)
    }
}

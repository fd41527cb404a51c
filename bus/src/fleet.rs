//! Worker heartbeats: each worker writes one every few seconds under its id; entries expire
//! when a worker stops writing, so the bucket always lists the live fleet. The control plane
//! and other workers read it (fleet membership, health).

use crate::{BusError, Result};
use async_nats::jetstream::kv;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// A circuit breaker that is open or half-open on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerReport {
    pub tenant: String,
    pub connector: String,
    /// `open` or `half_open`.
    pub state: String,
    /// Unix milliseconds when an open breaker lets a probe through.
    pub retry_at_ms: i64,
}

#[async_trait::async_trait]
pub trait Fleet: Send + Sync + std::fmt::Debug + 'static {
    async fn beat(&self, heartbeat: &Heartbeat) -> Result<()>;
    /// Live workers: those whose last heartbeat has not expired.
    async fn members(&self) -> Result<Vec<Heartbeat>>;
}

/// The fleet of `switchyard dev`: one worker, in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryFleet(Arc<Mutex<HashMap<String, Heartbeat>>>);

#[async_trait::async_trait]
impl Fleet for MemoryFleet {
    async fn beat(&self, heartbeat: &Heartbeat) -> Result<()> {
        let mut map = self
            .0
            .lock()
            .map_err(|_| BusError::Unavailable("poisoned".into()))?;
        map.insert(heartbeat.worker.clone(), heartbeat.clone());
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Heartbeat>> {
        let map = self
            .0
            .lock()
            .map_err(|_| BusError::Unavailable("poisoned".into()))?;
        Ok(map.values().cloned().collect())
    }
}

#[derive(Debug, Clone)]
pub struct NatsFleet {
    bucket: crate::LazyBucket,
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
        }
    }

    async fn kv(&self) -> Result<&kv::Store> {
        self.bucket.get().await
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
            .put(&heartbeat.worker, bytes.into())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Heartbeat>> {
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

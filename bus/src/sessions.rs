//! Shared MCP session records, so any worker can carry on a session another one started:
//! who owns it (tenant and key) and the client's `initialize` parameters. NATS JetStream KV
//! in production (entries expire after the bucket's max age unless touched), a map in
//! `switchyard dev`.

use crate::{BusError, Result};
use async_nats::jetstream::kv;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The default bucket name.
pub const SESSION_BUCKET: &str = "switchyard-sessions";

#[async_trait::async_trait]
pub trait SessionKv: Send + Sync + std::fmt::Debug + 'static {
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Stores `value`, restarting the entry's time to live.
    async fn put(&self, key: &str, value: Bytes) -> Result<()>;
    async fn delete(&self, key: &str) -> Result<()>;
}

#[derive(Debug, Default, Clone)]
pub struct MemorySessions(Arc<Mutex<HashMap<String, Bytes>>>);

#[async_trait::async_trait]
impl SessionKv for MemorySessions {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let map = self
            .0
            .lock()
            .map_err(|_| BusError::Unavailable("poisoned".into()))?;
        Ok(map.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        let mut map = self
            .0
            .lock()
            .map_err(|_| BusError::Unavailable("poisoned".into()))?;
        map.insert(key.to_owned(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut map = self
            .0
            .lock()
            .map_err(|_| BusError::Unavailable("poisoned".into()))?;
        map.remove(key);
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct NatsSessions {
    bucket: crate::LazyBucket,
}

impl NatsSessions {
    /// Entries in `bucket`, each expiring `ttl` after it was last written.
    pub fn new(client: async_nats::Client, bucket: &str, ttl: Duration) -> Self {
        let config = kv::Config {
            bucket: bucket.to_owned(),
            description: "Switchyard MCP sessions shared by workers".into(),
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
impl SessionKv for NatsSessions {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.kv().await?.entry(key).await.map_err(unavailable)? {
            Some(e) if e.operation == kv::Operation::Put => Ok(Some(e.value)),
            _ => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        self.kv()
            .await?
            .put(key, value)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.kv().await?.purge(key).await.map_err(unavailable)?;
        Ok(())
    }
}

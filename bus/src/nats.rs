//! The production bus: a NATS JetStream KV bucket, key per tenant, value the encoded
//! `TenantPolicy`. Publishes use the bucket's compare-and-set (`create` / `update` against
//! the entry's sequence), so concurrent publishers cannot move a key backwards. A bus
//! scoped to one tenant (a dedicated worker's) reads that tenant's key alone, which its
//! NATS credentials may be limited to.

use crate::{BusError, LazyBucket, PolicyBus, PolicyEvent, Published, Result, decode};
use async_nats::jetstream::kv::{self, Operation};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use prost::Message as _;
use switchyard_proto::policy::v1::TenantPolicy;

/// The default bucket name.
pub const POLICY_BUCKET: &str = "switchyard-policy";
/// How often a scoped watch reads its tenant's policy again.
const SCOPED_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    bucket: LazyBucket,
    /// The one tenant this bus watches, if scoped.
    only: Option<String>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl NatsBus {
    /// A bus over `bucket` on `client`'s server; the bucket is opened (and created if
    /// missing) on first use.
    pub fn new(client: async_nats::Client, bucket: &str) -> Self {
        let config = kv::Config {
            bucket: bucket.to_owned(),
            description: "Switchyard compiled tenant policies, key per tenant".into(),
            history: 1,
            ..Default::default()
        };
        Self {
            bucket: LazyBucket::new(client.clone(), config),
            client,
            only: None,
        }
    }

    /// A bus that watches tenant `tenant`'s key alone.
    pub fn scoped(client: async_nats::Client, bucket: &str, tenant: &str) -> Self {
        Self {
            only: Some(tenant.to_owned()),
            ..Self::new(client, bucket)
        }
    }

    /// One tenant's policy: its current value (or none), then each write to its key as
    /// core NATS delivers it, and its current value again every [`SCOPED_REFRESH`] (a
    /// write missed while disconnected is not lost; older revisions are ignored by the
    /// follower). No JetStream consumer is made: creating one is not a permission that
    /// can be limited to one key.
    async fn watch_one(&self, tenant: &str) -> Result<BoxStream<'static, Result<PolicyEvent>>> {
        let changes = self
            .client
            .subscribe(self.bucket.subject(tenant))
            .await
            .map_err(unavailable)?;
        let current = self.get(tenant).await?;
        let head = current
            .map(|p| Ok(PolicyEvent::Put(Box::new(p))))
            .into_iter()
            .chain([Ok(PolicyEvent::Synced)]);
        let key = tenant.to_owned();
        let changes = changes.map(move |m| {
            let op = m
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .map(|v| v.as_str().to_owned());
            match op.as_deref() {
                Some("DEL" | "PURGE") => Ok(PolicyEvent::Removed {
                    tenant: key.clone(),
                }),
                _ => decode(&key, &m.payload).map(|p| PolicyEvent::Put(Box::new(p))),
            }
        });
        let bus = self.clone();
        let key = tenant.to_owned();
        let refresh = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval_at(
            tokio::time::Instant::now() + SCOPED_REFRESH,
            SCOPED_REFRESH,
        ))
        .then(move |_| {
            let (bus, key) = (bus.clone(), key.clone());
            async move { bus.get(&key).await }
        })
        .filter_map(|got| async move {
            match got {
                Ok(Some(p)) => Some(Ok(PolicyEvent::Put(Box::new(p)))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        });
        Ok(futures::stream::iter(head)
            .chain(futures::stream::select(changes, refresh))
            .boxed())
    }

    /// Whether the bucket holds nothing yet (a watch of it then delivers nothing until
    /// the first change).
    async fn nothing_to_watch(&self, kv: &kv::Store) -> Result<bool> {
        // `kv.status()` reports what the bucket held when it was opened; ask afresh.
        let mut stream = self
            .bucket
            .jetstream()
            .get_stream(format!("KV_{}", kv.name))
            .await
            .map_err(unavailable)?;
        Ok(stream.info().await.map_err(unavailable)?.state.messages == 0)
    }

    async fn kv(&self) -> Result<&kv::Store> {
        self.bucket.get().await
    }
}

#[async_trait::async_trait]
impl PolicyBus for NatsBus {
    async fn publish(&self, policy: &TenantPolicy) -> Result<Published> {
        let key = policy.tenant.as_str();
        let kv = self.kv().await?;
        let bytes: bytes::Bytes = policy.encode_to_vec().into();
        // A lost compare-and-set means another publisher wrote meanwhile: look again.
        for _ in 0..16 {
            let entry = kv.entry(key).await.map_err(unavailable)?;
            let written = match entry {
                Some(e) if e.operation == Operation::Put => {
                    let stored = decode(key, &e.value)?;
                    if stored.revision >= policy.revision {
                        return Ok(Published::Stale {
                            stored: stored.revision,
                        });
                    }
                    kv.update(key, bytes.clone(), e.revision).await.is_ok()
                }
                Some(e) => kv.update(key, bytes.clone(), e.revision).await.is_ok(),
                None => kv.create(key, bytes.clone()).await.is_ok(),
            };
            if written {
                return Ok(Published::Written);
            }
        }
        Err(BusError::Unavailable(format!(
            "could not publish the policy of {key:?}: too many concurrent writers"
        )))
    }

    async fn get(&self, tenant: &str) -> Result<Option<TenantPolicy>> {
        match self.kv().await?.entry(tenant).await.map_err(unavailable)? {
            Some(e) if e.operation == Operation::Put => Ok(Some(decode(tenant, &e.value)?)),
            _ => Ok(None),
        }
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn watch(&self) -> Result<BoxStream<'static, Result<PolicyEvent>>> {
        if let Some(tenant) = &self.only {
            return self.watch_one(tenant).await;
        }
        // An empty bucket delivers nothing until the first change, so ask first whether
        // there is anything to wait for.
        let kv = self.kv().await?;
        let empty = self.nothing_to_watch(kv).await?;
        // Last value per key first (watch_all would start at new changes only).
        let watch = kv.watch_with_history(">").await.map_err(unavailable)?;
        let mut synced = empty;
        let events = watch.flat_map(move |entry| {
            let mut out = Vec::with_capacity(2);
            match entry {
                Err(e) => out.push(Err(unavailable(e))),
                Ok(e) => {
                    out.push(match e.operation {
                        Operation::Put => {
                            decode(&e.key, &e.value).map(|p| PolicyEvent::Put(Box::new(p)))
                        }
                        Operation::Delete | Operation::Purge => Ok(PolicyEvent::Removed {
                            tenant: e.key.clone(),
                        }),
                    });
                    if !synced && e.delta == 0 {
                        synced = true;
                        out.push(Ok(PolicyEvent::Synced));
                    }
                }
            }
            futures::stream::iter(out)
        });
        let head = futures::stream::iter(empty.then_some(Ok(PolicyEvent::Synced)));
        Ok(head.chain(events).boxed())
    }
}

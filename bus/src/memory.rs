//! The in-process bus of `switchyard dev`: a map plus a broadcast channel of changes.

use crate::{BusError, PolicyBus, PolicyEvent, Published, Result};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use switchyard_proto::policy::v1::TenantPolicy;
use tokio::sync::broadcast;

#[derive(Debug, Clone)]
pub struct MemoryBus {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    values: BTreeMap<String, TenantPolicy>,
    changes: broadcast::Sender<TenantPolicy>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                values: BTreeMap::new(),
                changes: broadcast::channel(1024).0,
            })),
        }
    }
}

impl MemoryBus {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| BusError::Unavailable("in-process bus poisoned".into()))
    }
}

#[async_trait::async_trait]
impl PolicyBus for MemoryBus {
    async fn publish(&self, policy: &TenantPolicy) -> Result<Published> {
        let mut inner = self.lock()?;
        if let Some(stored) = inner.values.get(&policy.tenant)
            && stored.revision >= policy.revision
        {
            return Ok(Published::Stale {
                stored: stored.revision,
            });
        }
        inner.values.insert(policy.tenant.clone(), policy.clone());
        // No receiver is fine: nobody is watching yet.
        let _ = inner.changes.send(policy.clone());
        Ok(Published::Written)
    }

    async fn get(&self, tenant: &str) -> Result<Option<TenantPolicy>> {
        Ok(self.lock()?.values.get(tenant).cloned())
    }

    async fn watch(&self) -> Result<BoxStream<'static, Result<PolicyEvent>>> {
        // Snapshot and subscribe under one lock, so no change falls between them.
        let (snapshot, changes) = {
            let inner = self.lock()?;
            let snapshot: Vec<_> = inner.values.values().cloned().collect();
            (snapshot, inner.changes.subscribe())
        };
        let initial = futures::stream::iter(
            snapshot
                .into_iter()
                .map(|p| Ok(PolicyEvent::Put(Box::new(p))))
                .chain([Ok(PolicyEvent::Synced)]),
        );
        let updates = tokio_stream::wrappers::BroadcastStream::new(changes).map(|r| match r {
            Ok(p) => Ok(PolicyEvent::Put(Box::new(p))),
            Err(_) => Err(BusError::Lagged),
        });
        Ok(initial.chain(updates).boxed())
    }
}

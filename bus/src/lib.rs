//! The policy bus carries each tenant's compiled `TenantPolicy` from the control plane to
//! every worker. Production uses a NATS JetStream KV bucket (key per tenant); `switchyard
//! dev` uses an in-process map. Both implement [`PolicyBus`] and pass the same contract.
//!
//! Values never go backwards: a publish whose revision is not above the stored one is
//! refused, using the store's compare-and-set, so any number of publishers may race. A
//! deleted tenant is published as a tombstone (status `DELETED`) rather than removed, so its
//! revision is kept and an older policy cannot bring it back.

mod buses;
pub mod fleet;
pub mod grant;
pub mod grants;
mod memory;
mod nats;
mod packed;
pub mod queue;
pub mod refusals;
pub mod sessions;
pub mod tools;
pub mod usage;

pub use buses::{Buckets, Buses};
pub use fleet::{
    BreakerReport, BreakerStatus, FLEET_BUCKET, Fleet, Heartbeat, MemoryFleet, NatsFleet,
};
pub use grants::{CasKv, GrantStores, MemoryCas, NatsCas, Versioned};
pub use memory::MemoryBus;
pub use nats::{NatsBus, POLICY_BUCKET};
pub use queue::{Delivery, Event, MemoryQueue, NatsQueue, Queue, QueueSpec, Rejected};
pub use refusals::{
    MemoryRefusals, NatsRefusals, REFUSALS_STREAM, RefusalBus, RefusalKind, RefusalReport,
};
pub use sessions::{MemorySessions, NatsSessions, SESSION_BUCKET, SessionKv};
pub use tools::{MemoryTools, NatsTools, TOOLS_STREAM, ToolBus, ToolSighting};
pub use usage::{MemoryUsage, NatsUsage, USAGE_STREAM, UsageBus, UsageEvent, UsageMethod};

use futures::stream::BoxStream;
use switchyard_proto::policy::v1::TenantPolicy;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("policy bus unavailable: {0}")]
    Unavailable(String),
    #[error("stored policy for {key:?} is not a valid TenantPolicy: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("policy bus watch fell behind; watch again")]
    Lagged,
}

pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// What became of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Written,
    /// The bus already holds this or a higher revision for the tenant.
    Stale {
        stored: u64,
    },
}

/// What a watcher sees.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyEvent {
    /// A tenant's policy: its current value at watch start, or a later change. A tombstone
    /// (status `DELETED`) means the tenant was deleted.
    Put(Box<TenantPolicy>),
    /// The tenant's key was removed from the bus by other means (e.g. purged by an operator).
    Removed { tenant: String },
    /// Every value that existed when the watch started has been delivered.
    Synced,
}

#[async_trait::async_trait]
pub trait PolicyBus: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `policy` under its tenant unless the bus holds the same or a higher revision.
    async fn publish(&self, policy: &TenantPolicy) -> Result<Published>;

    /// The stored policy of one tenant, if any.
    async fn get(&self, tenant: &str) -> Result<Option<TenantPolicy>>;

    /// Current values, then [`PolicyEvent::Synced`], then changes as they happen. The
    /// stream ends or yields an error when the bus is lost; watch again to resume.
    async fn watch(&self) -> Result<BoxStream<'static, Result<PolicyEvent>>>;

    /// Whether the bus is reachable right now (for health and the policy-age metric).
    fn is_connected(&self) -> bool {
        true
    }
}

/// The prefix of the reply subjects a dedicated worker of `tenant` uses, which its NATS
/// credentials let it subscribe to (and no one else's).
pub fn inbox_prefix(tenant: &str) -> String {
    format!("_INBOX_{tenant}")
}

/// A tombstone: what is published when a tenant is deleted.
pub fn tombstone(tenant: &str, revision: u64) -> TenantPolicy {
    TenantPolicy {
        tenant: tenant.to_owned(),
        revision,
        status: switchyard_proto::policy::v1::Status::Deleted as i32,
        ..Default::default()
    }
}

/// A JetStream KV bucket opened, or created with `config` if missing, on first use, so a
/// bus can be made before NATS is reachable.
#[derive(Debug, Clone)]
pub(crate) struct LazyBucket {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    config: async_nats::jetstream::kv::Config,
    kv: std::sync::Arc<tokio::sync::OnceCell<async_nats::jetstream::kv::Store>>,
}

impl LazyBucket {
    pub(crate) fn new(
        client: async_nats::Client,
        config: async_nats::jetstream::kv::Config,
    ) -> Self {
        Self {
            js: async_nats::jetstream::new(client.clone()),
            client,
            config,
            kv: Default::default(),
        }
    }

    pub(crate) fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.js
    }

    /// The connection the bucket is reached on.
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The subject values of `key` are written to (core NATS subscribers see each write).
    pub(crate) fn subject(&self, key: &str) -> String {
        format!("$KV.{}.{key}", self.config.bucket)
    }

    pub(crate) async fn get(&self) -> Result<&async_nats::jetstream::kv::Store> {
        self.kv
            .get_or_try_init(|| async {
                match self.js.get_key_value(&self.config.bucket).await {
                    Ok(kv) => Ok(kv),
                    Err(_) => self
                        .js
                        .create_key_value(self.config.clone())
                        .await
                        .map_err(|e| BusError::Unavailable(e.to_string())),
                }
            })
            .await
    }
}

pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<TenantPolicy> {
    let policy =
        <TenantPolicy as prost::Message>::decode(bytes).map_err(|e| BusError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
    if policy.tenant != key {
        return Err(BusError::Corrupt {
            key: key.to_owned(),
            reason: format!("it names tenant {:?}", policy.tenant),
        });
    }
    Ok(policy)
}

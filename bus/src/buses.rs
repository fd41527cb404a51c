//! The buses a worker uses, wired once: on NATS in production and in tests of the
//! production path, in memory for `switchyard dev`.

use crate::{
    FLEET_BUCKET, Fleet, MemoryBus, MemoryFleet, MemoryRefusals, MemorySessions, MemoryTools,
    MemoryUsage, NatsBus, NatsFleet, NatsRefusals, NatsSessions, NatsTools, NatsUsage,
    POLICY_BUCKET, PolicyBus, RefusalBus, SESSION_BUCKET, SessionKv, ToolBus, UsageBus,
};
use std::sync::Arc;
use std::time::Duration;

/// Where a worker's buses live on NATS, and how long their entries last.
#[derive(Debug, Clone)]
pub struct Buckets {
    pub policy: String,
    pub sessions: String,
    /// How long an idle session's records live (a session in use touches them).
    pub session_ttl: Duration,
    pub fleet: String,
    /// How long a heartbeat lives: about three heartbeat periods.
    pub heartbeat_ttl: Duration,
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            policy: POLICY_BUCKET.into(),
            sessions: SESSION_BUCKET.into(),
            session_ttl: Duration::from_secs(3600),
            fleet: FLEET_BUCKET.into(),
            heartbeat_ttl: Duration::from_secs(15),
        }
    }
}

/// The buses a worker follows and writes.
#[derive(Debug, Clone)]
pub struct Buses {
    /// Compiled tenant policies, followed.
    pub policy: Arc<dyn PolicyBus>,
    /// Session records shared by all workers.
    pub sessions: Arc<dyn SessionKv>,
    /// Usage events for the control plane.
    pub usage: Arc<UsageBus>,
    /// Tool definitions found unpinned, for the control plane.
    pub tools: Arc<ToolBus>,
    /// Refusals and authentication failures, tallied, for the audit trail.
    pub refusals: Arc<RefusalBus>,
    /// Heartbeats of the live workers.
    pub fleet: Arc<dyn Fleet>,
    /// The built-in authorization server's codes, grants and signing keys.
    pub grants: crate::GrantStores,
}

impl Buses {
    /// The buses on NATS, in `buckets`.
    pub fn nats(client: async_nats::Client, buckets: &Buckets) -> Self {
        Self {
            policy: Arc::new(NatsBus::new(client.clone(), &buckets.policy)),
            sessions: Arc::new(NatsSessions::new(
                client.clone(),
                &buckets.sessions,
                buckets.session_ttl,
            )),
            usage: Arc::new(NatsUsage::new(client.clone())),
            tools: Arc::new(NatsTools::new(client.clone())),
            refusals: Arc::new(NatsRefusals::new(client.clone())),
            fleet: Arc::new(NatsFleet::new(
                client.clone(),
                &buckets.fleet,
                buckets.heartbeat_ttl,
            )),
            grants: crate::GrantStores::nats(client),
        }
    }

    /// The buses on NATS of a dedicated worker of `tenant`: its policy, its pool's
    /// heartbeats and its sessions alone, as credentials limited to its keys allow.
    pub fn nats_for_tenant(client: async_nats::Client, buckets: &Buckets, tenant: &str) -> Self {
        Self {
            policy: Arc::new(NatsBus::scoped(client.clone(), &buckets.policy, tenant)),
            fleet: Arc::new(NatsFleet::scoped(
                client.clone(),
                &buckets.fleet,
                buckets.heartbeat_ttl,
                tenant,
            )),
            ..Self::nats(client, buckets)
        }
    }

    /// The buses in this process's memory, for one process running everything.
    pub fn in_memory() -> Self {
        Self {
            policy: Arc::new(MemoryBus::default()),
            sessions: Arc::new(MemorySessions::default()),
            usage: Arc::new(MemoryUsage::default()),
            tools: Arc::new(MemoryTools::default()),
            refusals: Arc::new(MemoryRefusals::default()),
            fleet: Arc::new(MemoryFleet::default()),
            grants: crate::GrantStores::in_memory(),
        }
    }
}

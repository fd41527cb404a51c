//! Refusals from workers to the control plane's audit trail, counted rather than listed: a
//! worker tallies the requests it refused (by a limit or a role) and the authentication
//! failures it saw, per tenant, key, reason and source, and reports each tally once per
//! interval. A flood of refused requests is a handful of reports, not a report each. On
//! NATS they go to the JetStream stream `SWITCHYARD_REFUSALS` (subject per tenant).

use crate::queue::{Event, MemoryQueue, NatsQueue, Queue, QueueSpec};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const REFUSALS_STREAM: &str = "SWITCHYARD_REFUSALS";

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// A request authenticated, refused by a limit or the caller's role.
    Refusal,
    /// A request whose credential was missing, wrong, or of a suspended tenant.
    AuthFailure,
    /// Calls served whose usage events (their audit records) were lost: the worker's
    /// queue was full.
    AuditGap,
    /// A decision of the built-in authorization server about a client: a sign-in allowed
    /// (`signed_in`) or declined, a replayed refresh token that ended its grant. The
    /// target is the client's ID.
    Authorization,
}

impl RefusalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refusal => "refusal",
            Self::AuthFailure => "auth_failure",
            Self::AuditGap => "audit_gap",
            Self::Authorization => "authorization",
        }
    }
}

/// One tally: `count` requests refused alike between `first_ms` and `last_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalReport {
    /// Unique per report; repeats carry the same id.
    pub id: String,
    pub tenant: String,
    pub kind: RefusalKind,
    /// The key refused, or the key id an authentication failure claimed (`None`: no
    /// credential, or not one of the platform's keys).
    pub key_id: Option<String>,
    /// The subject of the access token refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The error reason (`rate_limited`, `permission_denied`, `invalid_credential`, ...).
    pub reason: String,
    /// The tool refused, for a refusal by role; the client, for an authorization.
    pub target: Option<String>,
    /// The client's address, for authentication failures.
    pub source: Option<String>,
    pub count: u64,
    /// Unix milliseconds of the first and last refusal tallied.
    pub first_ms: i64,
    pub last_ms: i64,
    pub worker: String,
}

impl Event for RefusalReport {
    const SPEC: QueueSpec = QueueSpec {
        stream: REFUSALS_STREAM,
        subject_prefix: "switchyard.refusals",
        description: "Switchyard refusals and authentication failures, tallied per interval",
        max_age: Duration::from_secs(7 * 24 * 3600),
        ack_wait: Duration::from_secs(10),
    };

    fn id(&self) -> &str {
        &self.id
    }

    fn tenant(&self) -> &str {
        &self.tenant
    }
}

/// Where workers send refusal tallies.
pub type RefusalBus = dyn Queue<RefusalReport>;
pub type MemoryRefusals = MemoryQueue<RefusalReport>;
pub type NatsRefusals = NatsQueue<RefusalReport>;

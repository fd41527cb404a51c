//! Usage reports from workers to the control plane: one event per real call (tools/call,
//! resources/read, prompts/get), each with an id so a consumer can tell repeats apart. On
//! NATS they go to the JetStream stream `SWITCHYARD_USAGE` (subject per tenant; the server
//! drops repeats of a message id within its duplicate window), a worker's batch several to
//! a message (see `packed`), and the control plane reads them with a durable consumer,
//! acknowledging each after folding it in and dropping repeats by event id.

use crate::queue::{Event, MemoryQueue, NatsQueue, Queue, QueueSpec};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const USAGE_STREAM: &str = "SWITCHYARD_USAGE";

/// The real work a usage event reports (on the wire as the MCP method name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UsageMethod {
    #[serde(rename = "tools/call")]
    ToolsCall,
    #[serde(rename = "resources/read")]
    ResourcesRead,
    #[serde(rename = "prompts/get")]
    PromptsGet,
}

impl UsageMethod {
    /// Whether it counts against the monthly tool-call quota.
    pub fn is_tool_call(self) -> bool {
        self == Self::ToolsCall
    }

    /// The MCP method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ToolsCall => "tools/call",
            Self::ResourcesRead => "resources/read",
            Self::PromptsGet => "prompts/get",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// Unique per call; repeats carry the same id.
    pub id: String,
    pub tenant: String,
    /// The API key the call was made with; empty for a call made with an access token.
    pub key_id: String,
    /// The subject of the access token the call was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub method: UsageMethod,
    /// The name (or URI) the client asked for.
    pub target: String,
    pub connector: String,
    pub ok: bool,
    /// Unix milliseconds when the call arrived.
    pub at_ms: i64,
    pub duration_ms: u64,
    /// Why the call failed (an error reason such as `upstream_timeout`), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A digest of the client session's id (the id itself is a credential-like handle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The worker that served the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The call's trace, while tracing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// `sha256:` and the digest of the arguments, when the tenant records digests (or
    /// redacted arguments too large to redact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_digest: Option<String>,
    /// The arguments redacted (JSON text, at most 4 KiB), when the tenant records them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl Event for UsageEvent {
    const SPEC: QueueSpec = QueueSpec {
        stream: USAGE_STREAM,
        subject_prefix: "switchyard.usage",
        description: "Switchyard usage events, one per real call",
        max_age: Duration::from_secs(7 * 24 * 3600),
        // Folding an event takes milliseconds; one not acknowledged by then (its consumer
        // died) goes to the next consumer soon.
        ack_wait: Duration::from_secs(10),
    };
    // The control plane's fold drops repeats by event id.
    const PACKED: bool = true;

    fn id(&self) -> &str {
        &self.id
    }

    fn tenant(&self) -> &str {
        &self.tenant
    }
}

/// Where workers send usage events.
pub type UsageBus = dyn Queue<UsageEvent>;
pub type MemoryUsage = MemoryQueue<UsageEvent>;
pub type NatsUsage = NatsQueue<UsageEvent>;

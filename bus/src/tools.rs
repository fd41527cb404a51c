//! Tool sightings from workers to the control plane, for tool pinning: a worker that lists
//! a connector and finds a tool whose definition its policy does not pin (a new tool, or a
//! changed one) reports it here. The control plane records the first definition it hears
//! of as approved and holds a changed one for an operator's approval.

use crate::queue::{Event, MemoryQueue, NatsQueue, Queue, QueueSpec};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const TOOLS_STREAM: &str = "SWITCHYARD_TOOLS";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSighting {
    /// The same for every sighting of one definition of one tool, so repeats from many
    /// workers are dropped.
    pub id: String,
    pub tenant: String,
    pub connector: String,
    /// The upstream's own name for the tool.
    pub tool: String,
    /// `sha256:` and the hex digest of the pinned definition.
    pub digest: String,
    /// The pinned definition as JSON; `None` when it is too large to carry (the digest
    /// still pins it).
    pub definition: Option<String>,
    pub worker: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}

impl Event for ToolSighting {
    const SPEC: QueueSpec = QueueSpec {
        stream: TOOLS_STREAM,
        subject_prefix: "switchyard.tools",
        description: "Switchyard tool sightings: definitions workers found unpinned",
        max_age: Duration::from_secs(24 * 3600),
        ack_wait: Duration::from_secs(10),
    };

    fn id(&self) -> &str {
        &self.id
    }

    fn tenant(&self) -> &str {
        &self.tenant
    }
}

/// Where workers send tool sightings.
pub type ToolBus = dyn Queue<ToolSighting>;
pub type MemoryTools = MemoryQueue<ToolSighting>;
pub type NatsTools = NatsQueue<ToolSighting>;

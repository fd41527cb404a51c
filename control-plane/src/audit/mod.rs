//! The audit trail: every admin change on record, in per-tenant hash chains.
//!
//! An admin change's record is appended in the change's own transaction (see
//! `Store::commit_audited`), so a change and its record commit together or not at all. Each
//! record names its actor (the operator token the admin API authenticated, taken from
//! [`ACTOR`], which the authentication layer sets around every call) and carries the change
//! as a field-level diff of the object's [`snapshot`]s, in which secret values never appear.

pub mod chain;
pub mod checkpoint;
mod diff;
pub mod retention;
pub mod snapshot;

pub use chain::{ChainBreak, Record, verify};
pub use diff::diff;

use serde_json::Value;

/// The admin call being served: who makes it and which method it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `operator:<token id>`.
    pub actor: String,
    /// The admin API method, e.g. `UpdateTenant`.
    pub method: String,
}

tokio::task_local! {
    /// The admin call being served; set by the authentication layer around each call.
    pub static ACTOR: Caller;
}

/// The actor of changes made outside an admin call (the reconciler, the publisher).
pub const SYSTEM: &str = "system";

/// The trace of the admin call being served, while tracing is on; else empty.
pub fn current_trace_id() -> String {
    switchyard_common::trace::trace_id(&tracing::Span::current()).unwrap_or_default()
}

/// The admin call being served, if any.
pub fn caller() -> Option<Caller> {
    ACTOR.try_with(Clone::clone).ok()
}

/// The kinds of record, as stored and listed.
pub mod kind {
    /// A change made through the admin API, or by the platform itself.
    pub const ADMIN: &str = "admin";
    /// A call a worker sent upstream.
    pub const CALL: &str = "call";
    /// An API key used for the first time.
    pub const KEY_FIRST_USE: &str = "key_first_use";
    /// The audit trail listed or verified.
    pub const AUDIT_READ: &str = "audit_read";
}

/// The chain of changes that belong to no tenant (operator tokens).
pub const PLATFORM_CHAIN: &str = "";

/// An admin change to record: what was done to which object, before and after.
#[derive(Debug, Clone)]
pub struct Change {
    /// What was done, recorded when the change is not made by an admin call (whose method
    /// is recorded instead).
    pub action: &'static str,
    /// The object changed, e.g. `tenant/acme` or `connector/acme/github`.
    pub object: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Change {
    pub fn new(
        action: &'static str,
        object: String,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Self {
        Self {
            action,
            object,
            before,
            after,
        }
    }

    /// The record's detail: `{"diff": {...}}`.
    pub fn detail(&self) -> Value {
        serde_json::json!({ "diff": diff(self.before.as_ref(), self.after.as_ref()) })
    }
}

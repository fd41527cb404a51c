//! The usage report of a real call: one event per call, sent however the call ends, with
//! what the audit trail records of it (outcome and why, session, worker, trace).

use super::Gateway;
use crate::error::Result;
use crate::exchange::Outcome;
use crate::principal::Principal;
use rmcp::model::ServerResult;
use rmcp::service::{RequestContext, RoleServer};
use std::time::{Instant, SystemTime};

/// The usage report of one real call, sent when the call ends however it ends: a call its
/// client cancelled was still attempted upstream, and counts.
pub(super) struct Report {
    usage: crate::reports::Reporter<switchyard_bus::UsageEvent>,
    /// The event's place in the queue, held from the call's start.
    reserved: Option<crate::reports::Reserved<switchyard_bus::UsageEvent>>,
    /// Where a lost event is counted, for a gap record.
    gaps: std::sync::Arc<crate::refusals::Refusals>,
    event: Option<switchyard_bus::UsageEvent>,
    started: Instant,
}

impl Report {
    /// The call ended with `outcome`: `None` when it is not to be reported (nothing was
    /// sent upstream, or it continues a call reported already); otherwise whether it
    /// succeeded, and why not (`error`) when it did not.
    pub(super) fn finish(mut self, outcome: Option<bool>, error: Option<&'static str>) {
        match outcome {
            Some(ok) => {
                if let Some(event) = &mut self.event
                    && !ok
                {
                    event.error = error.map(str::to_owned);
                }
                self.send(ok);
            }
            None => self.event = None,
        }
    }

    /// What the record keeps of the call's arguments.
    pub(super) fn arguments(&mut self, recorded: crate::redact::Recorded) {
        if let Some(event) = &mut self.event {
            event.arguments_digest = recorded.digest;
            event.arguments = recorded.redacted;
        }
    }

    /// Whether the event has its place in the queue (else it may be lost).
    pub(super) fn has_place(&self) -> bool {
        self.reserved.is_some()
    }

    fn send(&mut self, ok: bool) {
        if let Some(mut event) = self.event.take() {
            event.ok = ok;
            event.duration_ms = self.started.elapsed().as_millis() as u64;
            match self.reserved.take() {
                Some(place) => place.send(event),
                None => {
                    if let Err(lost) = self.usage.try_record(event) {
                        self.gaps.lost(&lost);
                    }
                }
            }
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.send(false);
    }
}

/// What to report of a call's first round: nothing for a call never sent, else whether
/// it succeeded; a round that asks for input counts as the call (its continuations, which
/// carry a `requestState`, are not reported again), so a call counts once whether its
/// client answers or abandons it.
pub(super) fn reported(outcome: &Result<Outcome>) -> Option<bool> {
    match outcome {
        Ok(Outcome::InputRequired(_) | Outcome::Result(ServerResult::InputRequiredResult(_))) => {
            Some(true)
        }
        // A tool's own failure (`isError`) was a call that did not succeed.
        Ok(Outcome::Result(ServerResult::CallToolResult(r))) => Some(r.is_error != Some(true)),
        Ok(_) => Some(true),
        Err(e) => e.attempted(),
    }
}

/// Why a call ended badly: its error's reason, or `tool_error` for a tool's own failure.
pub(super) fn failure(outcome: &Result<Outcome>) -> Option<&'static str> {
    match outcome {
        Err(e) => Some(e.reason()),
        Ok(Outcome::Result(ServerResult::CallToolResult(r))) if r.is_error == Some(true) => {
            Some("tool_error")
        }
        Ok(_) => None,
    }
}

/// A digest of the client session `ctx` belongs to: enough to tell a session's calls
/// apart from another's, without recording the id that addresses it.
fn session_digest(ctx: &RequestContext<RoleServer>) -> Option<String> {
    use sha2::Digest as _;
    let id = ctx
        .extensions
        .get::<http::request::Parts>()?
        .headers
        .get("mcp-session-id")?;
    let digest = sha2::Sha256::digest(id.as_bytes());
    Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

impl Gateway {
    /// Starts the usage report of a real call to `connector`, served in `ctx` and traced
    /// as `span`.
    pub(super) fn report(
        &self,
        ctx: &RequestContext<RoleServer>,
        principal: &Principal,
        method: switchyard_bus::UsageMethod,
        (target, connector): (&str, &str),
        span: &tracing::Span,
    ) -> Report {
        let usage = &self.core.reports.usage;
        Report {
            usage: usage.clone(),
            reserved: usage.reserve(),
            gaps: self.core.reports.refusals.clone(),
            event: Some(switchyard_bus::UsageEvent {
                // From the thread's generator: `Uuid::new_v4` asks the kernel for every id.
                id: uuid::Builder::from_random_bytes(rand::random())
                    .into_uuid()
                    .simple()
                    .to_string(),
                tenant: principal.tenant.to_string(),
                key_id: principal
                    .key_id()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                subject: principal.subject().map(str::to_owned),
                method,
                target: target.to_owned(),
                connector: connector.to_owned(),
                ok: false,
                at_ms: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                duration_ms: 0,
                error: None,
                session: session_digest(ctx),
                worker: Some(self.core.reports.worker.clone()),
                trace_id: switchyard_common::trace::trace_id(span),
                arguments_digest: None,
                arguments: None,
            }),
            started: Instant::now(),
        }
    }
}

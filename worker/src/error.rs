//! The worker's one error type. Every refusal and failure is a variant that says what
//! happened; `code()` maps it to the shared `ErrorCode` (which alone decides the HTTP status
//! and JSON-RPC code) and `reason()` gives its one stable reason string, used alike in
//! JSON-RPC error data, a tool result's `_meta.reason` and metric labels. README.md lists
//! every reason.

use crate::limits::{CAP_RETRY_AFTER, RateScope, Refusal};
use crate::upstream::UpstreamError;
use axum::response::{IntoResponse as _, Response};
use http::{HeaderValue, StatusCode};
use rmcp::ErrorData as McpError;
use rmcp::service::ServiceError;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use switchyard_common::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this worker is shutting down; retry and another worker will serve you")]
    Draining,
    #[error("this worker is starting and has not loaded tenant policies yet; retry shortly")]
    Starting,
    #[error("send your API key as `Authorization: Bearer sy_...`")]
    MissingCredential,
    #[error("the API key is not valid for this endpoint")]
    InvalidCredential,
    /// The tenant accepts no API keys at its endpoint (its identity settings).
    #[error("this tenant does not accept API keys at its endpoint")]
    ApiKeysDisabled,
    /// A valid access token whose role claim (named) gives no role at this tenant.
    #[error("the access token's {0} claim gives no role at this tenant")]
    InsufficientScope(String),
    /// An access token whose scopes do not cover calling tool (named), which changes
    /// things, though the key it was granted with may: the client can ask for more.
    #[error(
        "this access token was granted tools:read only, and {0} is not read-only; sign in again granting tools:write"
    )]
    ScopeNeeded(String),
    /// The tenant's identity provider's keys could not be had to check an access token.
    #[error("the tenant's identity provider cannot be reached to check the token; retry shortly")]
    IdentityProviderUnavailable,
    #[error("{}", suspended(.0))]
    Suspended(String),
    #[error("too many key checks of this tenant are waiting; retry shortly")]
    AuthBusy,
    /// Too many checks of this key id, or from this address, missed the cache.
    #[error("too many failed attempts with this key or from this address; retry in {} s", .0.as_secs().max(1))]
    TooManyAttempts(Duration),
    #[error("this tenant has moved to its dedicated workers; retry and they will serve you")]
    Dedicated,
    #[error("session not found")]
    SessionNotFound,
    #[error("sessions are unavailable right now; retry shortly")]
    SessionStore,
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("parse error: the body is not JSON")]
    Malformed,
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    BodyTimeout(Duration),
    /// Refused by a tenant's, a key's or the worker's limit.
    #[error("{}", refused(.0))]
    Limited(Refusal),
    /// The tenant's monthly tool calls are used up until then.
    #[error("the tenant's monthly tool calls are used up until {}", rfc3339(*.0))]
    QuotaExhausted(SystemTime),
    /// The client's input could not be used (a changed or expired requestState, answers).
    #[error("{0}")]
    BadInput(String),
    /// A 2026-07-28 request's headers disagree with its body (SEP-2243).
    #[error("the request's headers disagree with its body: {0}")]
    HeaderMismatch(String),
    /// No tool, prompt or resource of that name is served to this tenant.
    #[error("unknown {kind}: {name}")]
    UnknownName { kind: &'static str, name: String },
    /// The tool's definition changed upstream and is held until an operator approves it.
    #[error(
        "tool {0} changed upstream; it is held until an operator approves the change (switchyard connector tools)"
    )]
    ToolPendingApproval(String),
    /// The caller's role does not allow this call.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request needs a session (protocol 2025-03-26 .. 2025-11-25).
    #[error("{0} needs a session")]
    NeedsSession(&'static str),
    /// The key was revoked (or expired) while its request was being served.
    #[error("the API key was revoked")]
    CredentialRevoked,
    /// The tenant was deleted while its request was being served.
    #[error("this tenant no longer exists")]
    TenantGone,
    /// This worker cannot take on more of something (calls held for input).
    #[error("{0}")]
    Capacity(String),
    /// The upstream could not be reached or did not answer in time.
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// The upstream session failed, or the upstream answered with a JSON-RPC error.
    #[error("{0}")]
    Service(#[from] ServiceError),
    /// The connector's circuit breaker is open: calls fail fast until then.
    #[error("it failed repeatedly, so calls to it are paused; the next try is in {} ms", ms_until(*.0))]
    CircuitOpen(tokio::time::Instant),
    /// The connector could not be listed, so its tools cannot be called now.
    #[error("{0}")]
    UpstreamDown(String),
    /// The upstream broke the protocol (asked for input again and again).
    #[error("{0}")]
    UpstreamMisbehaved(String),
    /// The upstream's answer was larger than this worker reads (the bound, in bytes).
    #[error(
        "its answer was larger than the {0}-byte bound (an operator can raise --max-upstream-response-bytes)"
    )]
    UpstreamTooLarge(usize),
    /// The tenant refuses calls that could not be audited, and this one could not be queued.
    #[error(
        "this call cannot be put on the tenant's audit trail right now, and the tenant refuses calls that are not; retry shortly"
    )]
    AuditUnavailable,
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The text of rmcp's refusal of a stream event over its bound. Its error type is private
/// to rmcp, so the chain is searched for this text; a JSON answer over the bound has a
/// public variant, matched by type.
pub(crate) const EVENT_TOO_LARGE: &str = "SSE event exceeded the maximum size";

impl Error {
    /// This error, or `UpstreamTooLarge(bound)` when it says the upstream's answer was
    /// larger than the worker reads.
    pub fn sized(self, bound: usize) -> Self {
        match &self {
            Self::Service(e) if says_too_large(e) => Self::UpstreamTooLarge(bound),
            _ => self,
        }
    }
}

/// Whether `e`, or anything that caused it, is a refusal of an answer (a JSON body or a
/// stream event) over its bound.
pub(crate) fn says_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    type HttpError = rmcp::transport::streamable_http_client::StreamableHttpError<reqwest::Error>;
    let mut cause = Some(e);
    while let Some(c) = cause {
        if matches!(
            c.downcast_ref::<HttpError>(),
            Some(HttpError::ResponseBodyTooLarge { .. })
        ) || c.to_string().contains(EVENT_TOO_LARGE)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

fn suspended(reason: &str) -> String {
    if reason.is_empty() {
        "this tenant is suspended; contact your operator".into()
    } else {
        format!("this tenant is suspended: {reason}")
    }
}

fn refused(r: &Refusal) -> String {
    match r {
        Refusal::Rate { scope, retry_after } => format!(
            "rate limited ({} limit): retry after {} ms",
            scope.as_str(),
            retry_after.as_millis().max(1)
        ),
        Refusal::Concurrency => {
            "the tenant's concurrent requests are all in use; retry shortly".into()
        }
        Refusal::Sessions => {
            "the tenant has as many open sessions as it may; close one or retry later".into()
        }
        Refusal::Saturated => "this worker is saturated; retry shortly".into(),
        Refusal::WorkerSessions => "this worker holds as many sessions as it may; retry \
                                    shortly (another worker may take it)"
            .into(),
        Refusal::Others => "the tenant's listings, streams and other requests are all in use; \
                            retry shortly"
            .into(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn ms_until(at: tokio::time::Instant) -> u64 {
    at.saturating_duration_since(tokio::time::Instant::now())
        .as_millis() as u64
}

/// A wait of a second: how soon a starting, draining or handing-over worker is worth
/// trying again.
const SOON: Duration = Duration::from_secs(1);

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Draining
            | Self::Starting
            | Self::Dedicated
            | Self::SessionStore
            | Self::CircuitOpen(_)
            | Self::UpstreamDown(_)
            | Self::UpstreamMisbehaved(_)
            | Self::UpstreamTooLarge(_)
            | Self::AuditUnavailable
            | Self::Limited(Refusal::Saturated | Refusal::WorkerSessions) => ErrorCode::Unavailable,
            Self::UnknownName { .. } => ErrorCode::InvalidArgument,
            Self::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Self::NeedsSession(_) | Self::TenantGone | Self::ToolPendingApproval(_) => {
                ErrorCode::FailedPrecondition
            }
            Self::MissingCredential
            | Self::InvalidCredential
            | Self::ApiKeysDisabled
            | Self::CredentialRevoked => ErrorCode::Unauthenticated,
            Self::InsufficientScope(_) | Self::ScopeNeeded(_) => ErrorCode::PermissionDenied,
            Self::IdentityProviderUnavailable => ErrorCode::Unavailable,
            Self::Suspended(_) => ErrorCode::PermissionDenied,
            Self::AuthBusy
            | Self::Capacity(_)
            | Self::Limited(Refusal::Concurrency | Refusal::Sessions | Refusal::Others) => {
                ErrorCode::ConcurrencyLimited
            }
            Self::SessionNotFound => ErrorCode::NotFound,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::Malformed => ErrorCode::Malformed,
            Self::BodyTimeout(_) => ErrorCode::RequestTimeout,
            Self::Limited(Refusal::Rate { .. }) | Self::TooManyAttempts(_) => {
                ErrorCode::RateLimited
            }
            Self::QuotaExhausted(_) => ErrorCode::QuotaExhausted,
            Self::BadInput(_) | Self::HeaderMismatch(_) => ErrorCode::InvalidArgument,
            Self::Upstream(UpstreamError::Timeout(_))
            | Self::Service(ServiceError::Timeout { .. }) => ErrorCode::DeadlineExceeded,
            Self::Upstream(_) | Self::Service(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The one stable reason string of this refusal or failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Draining => "draining",
            Self::Starting => "starting",
            Self::MissingCredential => "missing_credential",
            Self::InvalidCredential => "invalid_credential",
            Self::ApiKeysDisabled => "api_keys_disabled",
            Self::InsufficientScope(_) | Self::ScopeNeeded(_) => "insufficient_scope",
            Self::IdentityProviderUnavailable => "identity_provider_unavailable",
            Self::Suspended(_) => "tenant_suspended",
            Self::AuthBusy => "auth_busy",
            Self::TooManyAttempts(_) => "too_many_attempts",
            Self::Dedicated => "dedicated_workers",
            Self::SessionNotFound => "session_not_found",
            Self::SessionStore => "session_store_unavailable",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Malformed => "malformed",
            Self::BodyTimeout(_) => "body_timeout",
            Self::Limited(Refusal::Rate { .. }) => "rate_limited",
            Self::Limited(Refusal::Concurrency) => "concurrency_limited",
            Self::Limited(Refusal::Sessions) => "session_limit",
            Self::Limited(Refusal::Saturated) => "saturated",
            Self::Limited(Refusal::WorkerSessions) => "worker_sessions_full",
            Self::Limited(Refusal::Others) => "other_requests_limited",
            Self::QuotaExhausted(_) => "quota_exhausted",
            Self::BadInput(_) => "invalid_input",
            Self::HeaderMismatch(_) => "header_mismatch",
            Self::UnknownName { .. } => "unknown_name",
            Self::ToolPendingApproval(_) => "tool_pending_approval",
            Self::PermissionDenied(_) => "permission_denied",
            Self::NeedsSession(_) => "session_required",
            Self::TenantGone => "tenant_gone",
            Self::CredentialRevoked => "credential_revoked",
            Self::UpstreamDown(_) => "upstream_unavailable",
            Self::Capacity(_) => "held_calls_full",
            Self::Upstream(UpstreamError::Timeout(_))
            | Self::Service(ServiceError::Timeout { .. }) => "upstream_timeout",
            Self::Upstream(_) => "upstream_unavailable",
            Self::Service(_) => "upstream_error",
            Self::CircuitOpen(_) => "circuit_open",
            Self::UpstreamMisbehaved(_) => "upstream_protocol",
            Self::UpstreamTooLarge(_) => "upstream_too_large",
            Self::AuditUnavailable => "audit_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// How long the client should wait before trying again, if it should.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Draining
            | Self::Starting
            | Self::Dedicated
            | Self::SessionStore
            | Self::AuditUnavailable
            | Self::IdentityProviderUnavailable => Some(SOON),
            Self::Limited(Refusal::Rate { retry_after, .. })
            | Self::TooManyAttempts(retry_after) => Some(*retry_after),
            Self::Limited(Refusal::Concurrency | Refusal::Sessions | Refusal::Others)
            | Self::AuthBusy => Some(CAP_RETRY_AFTER),
            Self::Limited(Refusal::Saturated | Refusal::WorkerSessions) => Some(SOON),
            Self::QuotaExhausted(resets) => {
                Some(resets.duration_since(SystemTime::now()).unwrap_or_default())
            }
            Self::CircuitOpen(at) => {
                Some(at.saturating_duration_since(tokio::time::Instant::now()))
            }
            _ => None,
        }
    }

    /// Whether the call reached the upstream: `None` when it never left this worker (a
    /// refusal, bad input, an open breaker), `Some(false)` when it was attempted and failed.
    pub fn attempted(&self) -> Option<bool> {
        match self {
            Self::Upstream(_)
            | Self::Service(_)
            | Self::UpstreamMisbehaved(_)
            | Self::UpstreamTooLarge(_)
            | Self::Internal(_) => Some(false),
            _ => None,
        }
    }

    /// A failure of the connection or transport, where trying again may well succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Upstream(UpstreamError::Connect(_) | UpstreamError::Protocol(_)) => true,
            Self::Service(ServiceError::McpError(_)) => false,
            Self::Service(_) => true,
            _ => false,
        }
    }

    /// Whether this says the upstream is failing (what a circuit breaker counts). An
    /// upstream that answers with a JSON-RPC error is working.
    pub fn counts_against_upstream(&self) -> bool {
        match self {
            Self::Upstream(_) | Self::UpstreamMisbehaved(_) | Self::UpstreamTooLarge(_) => true,
            Self::Service(ServiceError::McpError(e)) => {
                e.code == rmcp::model::ErrorCode::INTERNAL_ERROR
            }
            Self::Service(_) => true,
            _ => false,
        }
    }

    /// What a client is told about an upstream's failure: what happened, without transport
    /// details (which may name the connector's address; those go to the log).
    pub fn public(&self) -> String {
        match self {
            Self::Upstream(e) => e.public(),
            Self::UpstreamDown(failure) => failure.clone(),
            Self::Service(ServiceError::McpError(e)) => {
                format!("it answered with an error: {}", e.message)
            }
            Self::Service(ServiceError::Timeout { timeout }) => {
                format!("it did not answer within {} ms", timeout.as_millis())
            }
            Self::Service(_) => "the connection to it failed".into(),
            other => other.to_string(),
        }
    }

    /// Whether the upstream, not the client or this worker, is at fault.
    fn is_upstream(&self) -> bool {
        matches!(
            self,
            Self::Upstream(_)
                | Self::Service(_)
                | Self::CircuitOpen(_)
                | Self::UpstreamDown(_)
                | Self::UpstreamMisbehaved(_)
                | Self::UpstreamTooLarge(_)
        )
    }
}

fn scope_str(scope: RateScope) -> &'static str {
    scope.as_str()
}

mod answers;

#[cfg(test)]
#[path = "error_tests.rs"]
pub(crate) mod tests;

//! A request's spans, while tracing is on (see `switchyard_common::trace`): the request's
//! own (`mcp.request`, continuing the client's `traceparent`) with `authenticate` and
//! `admit` under it; for real work, the call (named for what was called, such as
//! `tools/call github__search`) and each attempt upstream
//! (`upstream.attempt`), whose `traceparent` the upstream receives. Retries and breaker
//! decisions are events of the call's span. rmcp handles a request in a task of its
//! session, so the request's span travels to the handler in the request's extensions.

use rmcp::service::{RequestContext, RoleServer};

/// The span of the HTTP request a handler serves.
#[derive(Debug, Clone)]
pub struct RequestSpan(pub tracing::Span);

/// The trace headers an upstream request carries (on a `ClientRequest`'s extensions, so
/// they reach the HTTP client whichever way the request is sent).
#[derive(Debug, Clone)]
pub struct TraceHeaders(pub http::HeaderMap);

/// The span of attempt `n` on `connector` of the call traced as `call`, and `request`
/// carrying the attempt's trace headers.
pub fn attempt(
    call: &tracing::Span,
    connector: &str,
    n: u32,
    mut request: rmcp::model::ClientRequest,
) -> (rmcp::model::ClientRequest, tracing::Span) {
    use rmcp::model::GetExtensions as _;
    let span = switchyard_common::child_span!(call, "upstream.attempt", connector, attempt = n);
    let trace = switchyard_common::trace::headers(&span);
    if !trace.is_empty() {
        request.extensions_mut().insert(TraceHeaders(trace));
    }
    (request, span)
}

/// A `breaker` event on the call traced as `call` when its connector's breaker is not
/// closed (after an attempt, or refusing one).
pub fn breaker(call: &tracing::Span, state: crate::resilience::BreakerState) {
    if !matches!(state, crate::resilience::BreakerState::Closed) {
        switchyard_common::trace::event(call, "breaker", &[("state", state.name().to_owned())]);
    }
}

/// A `retry` event on the call traced as `call`: attempt `attempt` (from 0) failed with
/// `error`, and whether another follows (`decision`).
pub fn retry(
    call: &tracing::Span,
    decision: crate::resilience::Retry,
    error: &crate::error::Error,
    attempt: u32,
) {
    switchyard_common::trace::event(
        call,
        "retry",
        &[
            ("attempt", (attempt + 1).to_string()),
            ("error.type", error.reason().to_owned()),
            ("decision", decision.label().to_owned()),
        ],
    );
}

/// The span of the request `ctx` serves; `Span::none()` when tracing is off.
pub fn request_span(ctx: &RequestContext<RoleServer>) -> tracing::Span {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<RequestSpan>())
        .map_or_else(tracing::Span::none, |s| s.0.clone())
}

/// Adds the trace headers `extensions` carry, if any, to `headers`.
pub fn add_headers(
    extensions: &rmcp::model::Extensions,
    headers: &mut std::collections::HashMap<http::HeaderName, http::HeaderValue>,
) {
    if let Some(TraceHeaders(trace)) = extensions.get::<TraceHeaders>() {
        for (name, value) in trace {
            headers.insert(name.clone(), value.clone());
        }
    }
}

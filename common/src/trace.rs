//! W3C trace context across the fleet. Tracing is off unless the process exports spans
//! (`--otlp-endpoint`, which calls [`enable`]); while it is off no span is made on the
//! request path ([`span!`](crate::span) yields `Span::none()`) and nothing is read from or
//! added to headers, so it costs nothing. While it is on, a request's `traceparent` (and
//! `tracestate`) continue the caller's trace, and each call to another server carries the
//! current span's.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

static ON: AtomicBool = AtomicBool::new(false);

/// Spans are exported from now on: the request path makes them.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// An INFO span named `$name` with the given fields while tracing is on, else
/// `Span::none()`. A server span declares `trace_id = tracing::field::Empty` for
/// [`adopt`] to fill.
#[macro_export]
macro_rules! span {
    ($name:expr $(, $($field:tt)*)?) => {
        if $crate::trace::enabled() {
            ::tracing::info_span!($name $(, $($field)*)?)
        } else {
            ::tracing::Span::none()
        }
    };
}

struct Read<'a>(&'a http::HeaderMap);

impl Extractor for Read<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Write<'a>(&'a mut http::HeaderMap);

impl Injector for Write<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(key),
            http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span`, a server span just made, continue the trace `headers` name (a valid
/// `traceparent`); a request without one starts a trace. Records the trace id in the
/// span's `trace_id` field, so every log line under it carries it.
pub fn adopt(span: &tracing::Span, headers: &http::HeaderMap) {
    if span.is_none() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Read(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when spans are not exported, which `span.is_none()` ruled out.
        let _ = span.set_parent(parent);
    }
    if let Some(id) = trace_id(span) {
        span.record("trace_id", id.as_str());
    }
}

/// The headers that name `span` to a server it calls: `traceparent`, and `tracestate`
/// when there is one; empty when tracing is off.
pub fn headers(span: &tracing::Span) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if span.is_none() {
        return headers;
    }
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut Write(&mut headers));
    }
    headers
}

/// Adds event `name` with `attributes` to `span` (nothing while tracing is off): what
/// happened during a span that is not a span of its own, such as a retry.
pub fn event(span: &tracing::Span, name: &'static str, attributes: &[(&'static str, String)]) {
    if span.is_none() {
        return;
    }
    let attributes = attributes
        .iter()
        .map(|(k, v)| opentelemetry::KeyValue::new(*k, v.clone()))
        .collect();
    span.add_event(name, attributes);
}

/// A child of `parent` named `$name` with the given fields; `Span::none()` when `parent`
/// is (tracing is off, or the parent is not traced).
#[macro_export]
macro_rules! child_span {
    ($parent:expr, $name:expr $(, $($field:tt)*)?) => {
        if $parent.is_none() {
            ::tracing::Span::none()
        } else {
            ::tracing::info_span!(parent: $parent, $name $(, $($field)*)?)
        }
    };
}

/// The id of the trace `span` belongs to, as 32 hex digits.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    if span.is_none() {
        return None;
    }
    let cx = span.context();
    let ctx = cx.span().span_context().clone();
    ctx.is_valid().then(|| ctx.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_read_or_written_while_tracing_is_off() {
        let mut incoming = http::HeaderMap::new();
        incoming.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        );
        let span = tracing::Span::none();
        adopt(&span, &incoming);
        assert!(headers(&span).is_empty());
        assert_eq!(trace_id(&span), None);
    }

    #[test]
    fn a_request_continues_its_callers_trace_and_names_its_own_span_onwards() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, || {
            let mut incoming = http::HeaderMap::new();
            incoming.insert(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
            );
            let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
            adopt(&span, &incoming);
            assert_eq!(
                trace_id(&span).as_deref(),
                Some("0af7651916cd43dd8448eb211c80319c")
            );
            let child = tracing::info_span!(parent: &span, "attempt");
            let onwards = headers(&child);
            let value = onwards["traceparent"].to_str().unwrap_or_default();
            assert!(
                value.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "{value}"
            );
            assert!(!value.contains("b7ad6b7169203331"), "{value}");

            // A request without one starts a trace of its own.
            let fresh = tracing::info_span!("request", trace_id = tracing::field::Empty);
            adopt(&fresh, &http::HeaderMap::new());
            let id = trace_id(&fresh).unwrap_or_default();
            assert_eq!(id.len(), 32);
            assert_ne!(id, "0af7651916cd43dd8448eb211c80319c");
        });
    }
}

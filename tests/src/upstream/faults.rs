//! Faults injected into a fixture's tool calls: delays, hangs and reset connections, before
//! or after the tool ran.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults injected into tool calls, each roll independent.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of calls answered by a reset connection without running the tool.
    pub reset_before: f64,
    /// Share of calls whose tool runs but whose answer is lost with a reset connection.
    pub reset_after: f64,
    /// Added before every call.
    pub delay: Duration,
    /// Calls never get an answer.
    pub hang: bool,
    /// Tool listings never get an answer.
    pub hang_listings: bool,
    /// Requests on a session the server does not know get 400 and a JSON-RPC error, as
    /// the TypeScript SDK's example servers answer, instead of the 404 the spec names.
    pub lost_session_as_400: bool,
    /// Each call's response ends this long after its last event, as that of an upstream
    /// that closes a stream a moment after answering on it.
    pub late_end: Duration,
}

#[derive(Debug, Clone)]
pub(super) struct FaultState {
    pub(super) faults: Arc<Mutex<Faults>>,
    pub(super) attempts: Arc<AtomicUsize>,
    pub(super) ended: Arc<AtomicUsize>,
    /// Calls' responses that have ended late (see `Faults::late_end`).
    pub(super) ended_late: Arc<AtomicUsize>,
    /// Calls' responses to end late whose client went before they ended.
    pub(super) cut_short: Arc<AtomicUsize>,
}

/// A reset connection: the status line goes out, then the body fails, so the client sees
/// the connection break.
fn reset() -> axum::response::Response {
    let failing = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("connection reset"))
    });
    axum::response::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(axum::body::Body::from_stream(failing))
        .unwrap()
}

/// What the TypeScript SDK's example servers answer on a session they do not know.
fn no_valid_session() -> axum::response::Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {
        "code": -32000, "message": "Bad Request: No valid session ID provided"}});
    axum::response::Response::builder()
        .status(400)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap()
}

pub(super) async fn inject(
    axum::extract::State(state): axum::extract::State<FaultState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let on_session = req.headers().contains_key("mcp-session-id");
    let as_400 = state.faults.lock().unwrap().lost_session_as_400;
    let response = faulty(state, req, next).await;
    if as_400 && on_session && response.status() == http::StatusCode::NOT_FOUND {
        return no_valid_session();
    }
    response
}

async fn faulty(
    state: FaultState,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.method() == http::Method::DELETE {
        state.ended.fetch_add(1, Ordering::SeqCst);
    }
    if req.method() != http::Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let method = serde_json::from_slice::<serde_json::Value>(&bytes)
        .map(|v| v["method"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    if method == "tools/list" && state.faults.lock().unwrap().hang_listings {
        std::future::pending::<()>().await;
    }
    if method != "tools/call" {
        return next.run(req).await;
    }
    state.attempts.fetch_add(1, Ordering::SeqCst);
    let faults = state.faults.lock().unwrap().clone();
    if faults.hang {
        std::future::pending::<()>().await;
    }
    // Not even a zero sleep: tokio's timer rounds it up to its next tick, a millisecond.
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }
    if rand::random::<f64>() < faults.reset_before {
        return reset();
    }
    let response = next.run(req).await;
    if rand::random::<f64>() < faults.reset_after {
        // The tool ran; its answer is lost with the connection.
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .ok();
        return reset();
    }
    if faults.late_end.is_zero() {
        return response;
    }
    end_late(response, faults.late_end, &state)
}

/// `response`, its body ending `after` its last frame: counted in `ended_late` once it
/// has, in `cut_short` if the client goes first.
fn end_late(
    response: axum::response::Response,
    after: Duration,
    state: &FaultState,
) -> axum::response::Response {
    use futures::StreamExt as _;
    let (ended, unfinished) = (
        state.ended_late.clone(),
        Unfinished(Some(state.cut_short.clone())),
    );
    let (parts, body) = response.into_parts();
    let end = futures::stream::once(async move {
        tokio::time::sleep(after).await;
        ended.fetch_add(1, Ordering::SeqCst);
        unfinished.finish();
    })
    .filter_map(|()| async { None });
    let body = axum::body::Body::from_stream(body.into_data_stream().chain(end));
    axum::response::Response::from_parts(parts, body)
}

/// Counts a response dropped before its end.
struct Unfinished(Option<Arc<AtomicUsize>>);

impl Unfinished {
    /// The response ended: nothing to count.
    fn finish(mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(count) = self.0.take() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

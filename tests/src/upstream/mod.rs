//! A real MCP server (rmcp over Streamable HTTP, both eras) to use as a connector in tests.
//! Every answer carries the server's label, so a test can tell which upstream answered and
//! prove that one tenant never reaches another's upstream. It records the headers it was
//! sent, to show connectors' secrets arrive and clients' credentials do not. Some tools talk
//! back while they run (progress, a log message, a sampling request to the client), and a
//! fixture can be limited to the session-based protocol versions, as many servers still are.
//!
//! Faults can be injected per test (`set_faults`): tool calls delayed, hung, or answered by
//! a reset connection before the tool runs or after it ran (the answer lost). The `record`
//! tools count their executions by a `nonce` argument, so a test can prove a call ran at
//! most once whatever the worker retried.
//!
//! The fixture's tools are in `fixture`, the fault layer in `faults`, the gate of `hold` in
//! `gate`; this module starts and controls a fixture server.

// Logging and sampling are deprecated for future protocol versions; the versions served
// here have them.
#![allow(deprecated)]

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

mod faults;
mod fixture;
mod gate;

use faults::{FaultState, inject};
use fixture::{Era, Fixture};

pub use faults::Faults;
pub use gate::Gate;

/// A running fixture server; stopped when dropped.
pub struct TestUpstream {
    pub url: String,
    addr: std::net::SocketAddr,
    pub calls: Arc<AtomicUsize>,
    /// Calls of `slow` that were cancelled by the caller.
    pub cancelled: Arc<AtomicUsize>,
    gate: Arc<Gate>,
    /// Tool calls that reached the fault layer (each worker attempt counts).
    pub attempts: Arc<AtomicUsize>,
    /// Sessions its clients ended (DELETE).
    pub ended: Arc<AtomicUsize>,
    headers: Arc<fixture::Recent<http::HeaderMap>>,
    executions: Arc<Mutex<HashMap<String, usize>>>,
    faults: Arc<Mutex<Faults>>,
    stop: CancellationToken,
    serving: Option<tokio::task::JoinHandle<()>>,
    fixture: Fixture,
    state: FaultState,
}

impl TestUpstream {
    /// Starts a fixture whose answers carry `label`, at `http://127.0.0.1:PORT/mcp`.
    pub async fn start(label: &str) -> Self {
        Self::launch(label, Era::Both).await
    }

    /// Like `start`, but the fixture speaks only the session-based protocol versions.
    pub async fn start_legacy(label: &str) -> Self {
        Self::launch(label, Era::Sessions).await
    }

    /// Like `start`, but the fixture speaks only MCP 2026-07-28.
    pub async fn start_stateless(label: &str) -> Self {
        Self::launch(label, Era::Stateless).await
    }

    async fn launch(label: &str, era: Era) -> Self {
        let executions: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let fixture = Fixture {
            label: label.to_owned(),
            era,
            executions: executions.clone(),
            calls: Arc::default(),
            gate: Arc::default(),
            cancelled: Arc::default(),
            headers: Arc::default(),
            call_ids: Arc::default(),
            subscriptions: Arc::default(),
            rewritten: Arc::default(),
            connections: Arc::default(),
        };
        let faults: Arc<Mutex<Faults>> = Arc::default();
        let attempts: Arc<AtomicUsize> = Arc::default();
        let ended: Arc<AtomicUsize> = Arc::default();
        let state = FaultState {
            faults: faults.clone(),
            attempts: attempts.clone(),
            ended: ended.clone(),
            ended_late: Arc::default(),
            cut_short: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let serving = serve(listener, fixture.clone(), state.clone(), stop.clone());
        Self {
            url: format!("http://{addr}/mcp"),
            addr,
            calls: fixture.calls.clone(),
            gate: fixture.gate.clone(),
            cancelled: fixture.cancelled.clone(),
            attempts,
            ended,
            headers: fixture.headers.clone(),
            executions,
            faults,
            stop,
            serving: Some(serving),
            fixture,
            state,
        }
    }

    /// Stops the server as a restarted process would (every connection closed, every
    /// session forgotten) and starts it again on the same address.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.resume().await;
    }

    /// Stops the server: every connection closed, nothing listening on its address.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(serving) = self.serving.take() {
            serving.abort();
            let _ = serving.await;
        }
    }

    /// Starts a stopped server again on its address, knowing none of its old sessions.
    pub async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.stop = CancellationToken::new();
        self.serving = Some(serve(
            listener,
            self.fixture.clone(),
            self.state.clone(),
            self.stop.clone(),
        ));
    }

    /// Calls' responses that have ended late so far (see `Faults::late_end`).
    pub fn ended_late(&self) -> usize {
        self.state.ended_late.load(Ordering::SeqCst)
    }

    /// Calls' responses to end late whose client went before they ended, so far.
    pub fn cut_short(&self) -> usize {
        self.state.cut_short.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.fixture.connections.load(Ordering::SeqCst)
    }

    /// Calls of `hold` (or `announce`) waiting for the gate.
    pub fn holding(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    /// Opens the gate: calls of `hold` and `announce` answer, now and from now on.
    pub fn release(&self) {
        self.gate.open.send_replace(true);
    }

    /// Closes the gate again: calls of `hold` from now on wait for the next `release`.
    pub fn hold_again(&self) {
        self.gate.open.send_replace(false);
    }

    /// Every resource subscription so far: its URI and the session it came on.
    pub fn subscriptions(&self) -> Vec<(String, String)> {
        self.fixture.subscriptions.lock().unwrap().clone()
    }

    /// Lists tool `name` with `description` from now on, as an upstream whose tool was
    /// rewritten would.
    pub fn rewrite_tool(&self, name: &str, description: &str) {
        self.fixture
            .rewritten
            .lock()
            .unwrap()
            .insert(name.to_owned(), description.to_owned());
    }

    /// The headers of every request so far (of the last 10,000).
    pub fn seen_headers(&self) -> Vec<http::HeaderMap> {
        self.headers.all()
    }

    /// The JSON-RPC id of each tool call it received, in arrival order (of the last 10,000).
    pub fn call_ids(&self) -> Vec<String> {
        self.fixture.call_ids.all()
    }

    /// Injects `faults` into the tool calls from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    /// How many times the `record` tools ran with each nonce.
    pub fn executions(&self) -> HashMap<String, usize> {
        self.executions.lock().unwrap().clone()
    }
}

/// Serves `fixture` on `listener` until `stop`: its own sessions, which `stop` ends.
fn serve(
    listener: tokio::net::TcpListener,
    fixture: Fixture,
    state: FaultState,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let connections = fixture.connections.clone();
    let service = StreamableHttpService::new(
        move || Ok(fixture.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(stop.clone()),
    );
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(state, inject));
    // As servers should: without TCP_NODELAY an answer written in pieces waits for the
    // client's delayed ACK (about 40 ms per call on reused connections).
    let listener = axum::serve::ListenerExt::tap_io(listener, move |tcp| {
        connections.fetch_add(1, Ordering::SeqCst);
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .ok();
    })
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

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

// Logging and sampling are deprecated for future protocol versions; the versions served
// here have them.
#![allow(deprecated)]

use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which protocol versions a fixture speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    Both,
    /// Only the session-based versions (2025-03-26 .. 2025-11-25).
    Sessions,
    /// Only 2026-07-28.
    Stateless,
}

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
}

#[derive(Debug, Clone)]
struct FaultState {
    faults: Arc<Mutex<Faults>>,
    attempts: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
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

async fn inject(
    axum::extract::State(state): axum::extract::State<FaultState>,
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
    tokio::time::sleep(faults.delay).await;
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
    response
}

#[derive(Debug, Clone)]
struct Fixture {
    label: String,
    era: Era,
    executions: Arc<Mutex<HashMap<String, usize>>>,
    calls: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<http::HeaderMap>>>,
    gate: Arc<Gate>,
}

/// Holds calls of `hold` until the test opens it, counting those waiting.
#[derive(Debug)]
pub struct Gate {
    waiting: AtomicUsize,
    open: tokio::sync::watch::Sender<bool>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            open: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Gate {
    async fn pass(&self, ct: &CancellationToken) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.subscribe();
        let passed = tokio::select! {
            r = open.wait_for(|o| *o) => r.is_ok(),
            () = ct.cancelled() => false,
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        passed
    }
}

fn schema(props: serde_json::Value) -> Arc<JsonObject> {
    match json!({ "type": "object", "properties": props }) {
        serde_json::Value::Object(m) => Arc::new(m),
        _ => Arc::default(),
    }
}

impl Fixture {
    fn record(&self, ctx: &RequestContext<RoleServer>) {
        if let Some(parts) = ctx.extensions.get::<http::request::Parts>() {
            self.headers.lock().unwrap().push(parts.headers.clone());
        }
    }
}

impl ServerHandler for Fixture {
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Owned(match self.era {
            Era::Both => ProtocolVersion::KNOWN_VERSIONS.to_vec(),
            Era::Sessions => vec![
                ProtocolVersion::V_2025_11_25,
                ProtocolVersion::V_2025_06_18,
                ProtocolVersion::V_2025_03_26,
            ],
            Era::Stateless => vec![ProtocolVersion::V_2026_07_28],
        })
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new(
            format!("fixture-{}", self.label),
            "1.0.0",
        ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.record(&ctx);
        Ok(ListToolsResult::with_all_items(vec![
            Tool::new(
                "echo",
                "Returns its text argument",
                schema(json!({"text": {"type": "string"}})),
            ),
            Tool::new("whoami", "Names this upstream", schema(json!({})))
                .with_annotations(ToolAnnotations::new().read_only(true)),
            Tool::new(
                "add",
                "Adds a and b",
                schema(json!({"a": {"type": "number"}, "b": {"type": "number"}})),
            ),
            Tool::new(
                "slow",
                "Answers after 30 s unless cancelled",
                schema(json!({})),
            ),
            Tool::new(
                "delete_everything",
                "A tool operators may deny",
                schema(json!({})),
            ),
            Tool::new(
                "sample",
                "Asks the client's model the question and returns its answer",
                schema(json!({"question": {"type": "string"}})),
            ),
            Tool::new(
                "ask_name",
                "Asks the user's name with an input-required result (2026-07-28)",
                schema(json!({})),
            ),
            Tool::new(
                "record",
                "Counts one execution of its nonce",
                schema(json!({"nonce": {"type": "string"}})),
            ),
            Tool::new(
                "record_idempotent",
                "Counts one execution of its nonce; doing it twice is harmless",
                schema(json!({"nonce": {"type": "string"}})),
            )
            .with_annotations(ToolAnnotations::new().idempotent(true)),
            Tool::new(
                "sleep_ms",
                "Answers after `ms` milliseconds unless cancelled",
                schema(json!({"ms": {"type": "number"}})),
            ),
            Tool::new(
                "hold",
                "Answers once the test opens the gate, unless cancelled",
                schema(json!({})),
            ),
            Tool::new(
                "progress",
                "Reports progress 1 and 2 of 2, and logs a line, before answering",
                schema(json!({})),
            ),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.record(&ctx);
        self.calls.fetch_add(1, Ordering::SeqCst);
        let args = request.arguments.unwrap_or_default();
        let text = match request.name.as_ref() {
            "echo" => args
                .get("text")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
            "whoami" => format!("upstream {}", self.label),
            "add" => {
                let n = |k: &str| {
                    args.get(k)
                        .and_then(serde_json::Value::as_f64)
                        .unwrap_or(0.0)
                };
                (n("a") + n("b")).to_string()
            }
            "delete_everything" => "deleted".to_owned(),
            "record" | "record_idempotent" => {
                let nonce = args
                    .get("nonce")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                *self
                    .executions
                    .lock()
                    .unwrap()
                    .entry(nonce.to_owned())
                    .or_default() += 1;
                format!("recorded {nonce}")
            }
            "sleep_ms" => {
                let ms = args
                    .get("ms")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
                tokio::select! {
                    () = ctx.ct.cancelled() => {
                        self.cancelled.fetch_add(1, Ordering::SeqCst);
                        return Err(McpError::internal_error("cancelled", None));
                    }
                    () = tokio::time::sleep(Duration::from_millis(ms)) => format!("slept {ms} ms"),
                }
            }
            "hold" => {
                if !self.gate.pass(&ctx.ct).await {
                    self.cancelled.fetch_add(1, Ordering::SeqCst);
                    return Err(McpError::internal_error("cancelled", None));
                }
                "released".to_owned()
            }
            "ask_name" => {
                let name = request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get("name"))
                    .and_then(|r| r["content"]["name"].as_str().map(str::to_owned));
                match name {
                    Some(name) => format!("{} greets {name}", self.label),
                    None => {
                        let ask = serde_json::from_value(json!({"name": {
                            "method": "elicitation/create",
                            "params": {"mode": "form", "message": "Your name?", "requestedSchema": {
                                "type": "object", "properties": {"name": {"type": "string"}}}}
                        }}))
                        .unwrap();
                        return Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
                            Some(ask),
                            None,
                        )));
                    }
                }
            }
            "sample" => {
                let question = args.get("question").and_then(|v| v.as_str()).unwrap_or("?");
                let params: CreateMessageRequestParams = serde_json::from_value(json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": question}}],
                    "maxTokens": 50
                }))
                .unwrap();
                match ctx.peer.create_message(params).await {
                    Ok(answer) => {
                        let content = serde_json::to_value(&answer.message.content).unwrap();
                        format!(
                            "{} says: {}",
                            self.label,
                            content["text"].as_str().unwrap_or("")
                        )
                    }
                    Err(e) => {
                        return Err(McpError::internal_error(
                            format!("sampling failed: {e}"),
                            None,
                        ));
                    }
                }
            }
            "progress" => {
                if let Some(token) = ctx.meta.get_progress_token() {
                    for step in [1.0, 2.0] {
                        let _ = ctx
                            .peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), step).with_total(2.0),
                            )
                            .await;
                    }
                }
                let _ = ctx
                    .peer
                    .notify_logging_message(LoggingMessageNotificationParam::new(
                        LoggingLevel::Info,
                        json!(format!("log line from {}", self.label)),
                    ))
                    .await;
                "done".to_owned()
            }
            "slow" => {
                tokio::select! {
                    () = ctx.ct.cancelled() => {
                        self.cancelled.fetch_add(1, Ordering::SeqCst);
                        return Err(McpError::internal_error("cancelled", None));
                    }
                    () = tokio::time::sleep(std::time::Duration::from_secs(30)) => "slept".to_owned(),
                }
            }
            other => return Err(McpError::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![
            ContentBlock::text(text),
        ])))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "greet",
            Some("A greeting"),
            None,
        )]))
    }

    async fn get_prompt(
        &self,
        _request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        Ok(GetPromptResponse::Complete(GetPromptResult::new(vec![
            PromptMessage::new_text(Role::User, format!("hello from {}", self.label)),
        ])))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            format!("test://{}/info", self.label),
            "info",
        )]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != format!("test://{}/info", self.label) {
            return Err(McpError::resource_not_found(request.uri, None));
        }
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(
            vec![ResourceContents::text(
                format!("info of {}", self.label),
                request.uri,
            )],
        )))
    }
}

/// A running fixture server; stopped when dropped.
pub struct TestUpstream {
    pub url: String,
    pub calls: Arc<AtomicUsize>,
    /// Calls of `slow` that were cancelled by the caller.
    pub cancelled: Arc<AtomicUsize>,
    gate: Arc<Gate>,
    /// Tool calls that reached the fault layer (each worker attempt counts).
    pub attempts: Arc<AtomicUsize>,
    /// Sessions its clients ended (DELETE).
    pub ended: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<http::HeaderMap>>>,
    executions: Arc<Mutex<HashMap<String, usize>>>,
    faults: Arc<Mutex<Faults>>,
    stop: CancellationToken,
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
        let stop = CancellationToken::new();
        let executions: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let fixture = Fixture {
            label: label.to_owned(),
            era,
            executions: executions.clone(),
            calls: Arc::default(),
            gate: Arc::default(),
            cancelled: Arc::default(),
            headers: Arc::default(),
        };
        let calls = fixture.calls.clone();
        let gate = fixture.gate.clone();
        let cancelled = fixture.cancelled.clone();
        let headers = fixture.headers.clone();
        let service = StreamableHttpService::new(
            move || Ok(fixture.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_cancellation_token(stop.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let faults: Arc<Mutex<Faults>> = Arc::default();
        let attempts: Arc<AtomicUsize> = Arc::default();
        let ended: Arc<AtomicUsize> = Arc::default();
        let state = FaultState {
            faults: faults.clone(),
            attempts: attempts.clone(),
            ended: ended.clone(),
        };
        let app = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn_with_state(state, inject));
        let shutdown = stop.clone();
        // As servers should: without TCP_NODELAY an answer written in pieces waits for the
        // client's delayed ACK (about 40 ms per call on reused connections).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .ok();
        });
        Self {
            url: format!("http://{addr}/mcp"),
            calls,
            gate,
            cancelled,
            attempts,
            ended,
            headers,
            executions,
            faults,
            stop,
        }
    }

    /// Calls of `hold` waiting for the gate.
    pub fn holding(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    /// Opens the gate: calls of `hold` answer, now and from now on.
    pub fn release(&self) {
        self.gate.open.send_replace(true);
    }

    /// Every request's headers so far.
    pub fn seen_headers(&self) -> Vec<http::HeaderMap> {
        self.headers.lock().unwrap().clone()
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

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

//! A real MCP server (rmcp over Streamable HTTP, both eras) to use as a connector in tests.
//! Every answer carries the server's label, so a test can tell which upstream answered and
//! prove that one tenant never reaches another's upstream. It records the headers it was
//! sent, to show connectors' secrets arrive and clients' credentials do not.

use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Fixture {
    label: String,
    calls: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<http::HeaderMap>>>,
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
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
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
    headers: Arc<Mutex<Vec<http::HeaderMap>>>,
    stop: CancellationToken,
}

impl TestUpstream {
    /// Starts a fixture whose answers carry `label`, at `http://127.0.0.1:PORT/mcp`.
    pub async fn start(label: &str) -> Self {
        let stop = CancellationToken::new();
        let fixture = Fixture {
            label: label.to_owned(),
            calls: Arc::default(),
            cancelled: Arc::default(),
            headers: Arc::default(),
        };
        let calls = fixture.calls.clone();
        let cancelled = fixture.cancelled.clone();
        let headers = fixture.headers.clone();
        let service = StreamableHttpService::new(
            move || Ok(fixture.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_cancellation_token(stop.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().nest_service("/mcp", service);
        let shutdown = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .ok();
        });
        Self {
            url: format!("http://{addr}/mcp"),
            calls,
            cancelled,
            headers,
            stop,
        }
    }

    /// Every request's headers so far.
    pub fn seen_headers(&self) -> Vec<http::HeaderMap> {
        self.headers.lock().unwrap().clone()
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

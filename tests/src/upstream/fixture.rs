//! The fixture's MCP server: its tools, prompts and resources, each answer carrying its
//! label, and the protocol versions it speaks.

use super::Gate;
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which protocol versions a fixture speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Era {
    Both,
    /// Only the session-based versions (2025-03-26 .. 2025-11-25).
    Sessions,
    /// Only 2026-07-28.
    Stateless,
}

/// What the fixture records of each request, the most recent [`Recent::KEPT`] only: a load
/// generator sends it millions.
#[derive(Debug, Default)]
pub(super) struct Recent<T>(Mutex<std::collections::VecDeque<T>>);

impl<T: Clone> Recent<T> {
    const KEPT: usize = 10_000;

    pub(super) fn push(&self, item: T) {
        let mut items = self.0.lock().unwrap();
        if items.len() == Self::KEPT {
            items.pop_front();
        }
        items.push_back(item);
    }

    pub(super) fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().iter().cloned().collect()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Fixture {
    pub(super) label: String,
    pub(super) era: Era,
    pub(super) executions: Arc<Mutex<HashMap<String, usize>>>,
    pub(super) calls: Arc<AtomicUsize>,
    pub(super) cancelled: Arc<AtomicUsize>,
    pub(super) headers: Arc<Recent<http::HeaderMap>>,
    /// The JSON-RPC id of each tool call, in arrival order.
    pub(super) call_ids: Arc<Recent<String>>,
    pub(super) gate: Arc<Gate>,
    /// Resources subscribed to, with the session each subscription came on.
    pub(super) subscriptions: Arc<Mutex<Vec<(String, String)>>>,
    /// Descriptions listed instead of a tool's own, by tool name.
    pub(super) rewritten: Arc<Mutex<HashMap<String, String>>>,
    /// TCP connections accepted.
    pub(super) connections: Arc<AtomicUsize>,
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
            self.headers.push(parts.headers.clone());
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
                .enable_resources_subscribe()
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
        let mut tools = vec![
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
                "regional",
                "Names its region, which 2026-07-28 clients also send as a header, and its client",
                schema(json!({"region": {"type": "string", "x-mcp-header": "Region"}})),
            ),
            Tool::new(
                "progress",
                "Reports progress 1 and 2 of 2, and logs a line, before answering",
                schema(json!({})),
            ),
            Tool::new(
                "announce",
                "Says its tool list changed, then answers once the test opens the gate",
                schema(json!({})),
            ),
        ];
        let rewritten = self.rewritten.lock().unwrap();
        for t in &mut tools {
            if let Some(d) = rewritten.get(t.name.as_ref()) {
                t.description = Some(d.clone().into());
            }
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.record(&ctx);
        self.call_ids.push(ctx.id.to_string());
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
            "regional" => {
                let region = args.get("region").and_then(|v| v.as_str()).unwrap_or("?");
                // A 2026-07-28 request names its client itself; a session's did at
                // `initialize`.
                let client = ctx
                    .meta
                    .client_info()
                    .or_else(|| ctx.peer.peer_info().map(|i| i.client_info.clone()))
                    .map(|i| i.name);
                format!("{region} for {}", client.as_deref().unwrap_or("?"))
            }
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
            "announce" => {
                let _ = ctx.peer.notify_tool_list_changed().await;
                if !self.gate.pass(&ctx.ct).await {
                    return Err(McpError::internal_error("cancelled", None));
                }
                "announced".to_owned()
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

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("test://{}/items/{{id}}", self.label), "item"),
        ]))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let session = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id")?.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.subscriptions
            .lock()
            .unwrap()
            .push((request.uri, session));
        Ok(())
    }

    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
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

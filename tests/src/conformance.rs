//! An MCP server (rmcp, both protocol eras) exposing the fixtures the
//! `@modelcontextprotocol/conformance` server suites expect: `test_simple_text` and the other
//! tools, `test://` resources and templates, the `test_*` prompts, completions, logging,
//! progress, sampling and elicitation in the session era, and input-required results in the
//! 2026-07-28 era. The suites run against it directly and through a worker that has it as a
//! connector with an empty prefix, so the names they look for are exact.

// Logging and sampling are deprecated for future protocol versions, but the versions served
// here still have them and the suites test them.
#![allow(deprecated)]

use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A 1x1 PNG and a minimal WAV: the suites check only that data and MIME type are present.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn from<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, McpError> {
    serde_json::from_value(v).map_err(|e| McpError::internal_error(e.to_string(), None))
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn tools() -> Value {
    let plain = |name: &str, description: &str| json!({"name": name, "description": description, "inputSchema": no_args()});
    let mut tools = vec![
        plain("test_simple_text", "Returns simple text content"),
        plain("test_image_content", "Returns image content"),
        plain("test_audio_content", "Returns audio content"),
        plain("test_embedded_resource", "Returns an embedded resource"),
        plain(
            "test_multiple_content_types",
            "Returns text, image and resource content",
        ),
        plain("test_tool_with_logging", "Sends log messages while it runs"),
        plain("test_tool_with_progress", "Reports progress while it runs"),
        plain("test_error_handling", "Always fails with a tool error"),
        json!({"name": "test_sampling", "description": "Asks the client's model",
               "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}}),
        json!({"name": "test_elicitation", "description": "Asks the user for input",
               "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}}),
        plain(
            "test_elicitation_sep1034_defaults",
            "Elicitation with default values",
        ),
        plain(
            "test_elicitation_sep1330_enums",
            "Elicitation with enum variants",
        ),
        json!({"name": "json_schema_2020_12_tool", "description": "Tool with JSON Schema 2020-12 features",
               "inputSchema": {
                   "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                   "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                             "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                   "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                                  "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                                  "phone": {"type": "string"}, "email": {"type": "string"}},
                   "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                   "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                   "then": {"required": ["phone"]}, "else": {"required": ["email"]},
                   "additionalProperties": false}}),
        plain(
            "test_missing_capability",
            "Needs the client's sampling capability",
        ),
        plain(
            "test_streaming_elicitation",
            "Asks for input with an input-required result",
        ),
        plain(
            "test_logging_tool",
            "Logs at the level the request asks for",
        ),
        json!({"name": "test_custom_header", "description": "Takes an argument mirrored in a header",
               "inputSchema": {"type": "object",
                               "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
                               "required": ["region"]}}),
    ];
    for (name, what) in [
        ("elicitation", "an elicitation"),
        ("sampling", "a sampling request"),
        ("list_roots", "the client's roots"),
        ("request_state", "a confirmation, keeping request state"),
        ("multiple_inputs", "elicitation, sampling and roots at once"),
        ("multi_round", "two rounds of input"),
        ("tampered_state", "a confirmation, verifying request state"),
        ("capabilities", "only what the client declared"),
    ] {
        tools.push(plain(
            &format!("test_input_required_result_{name}"),
            &format!("Input-required result asking for {what}"),
        ));
    }
    Value::Array(tools)
}

fn prompts() -> Value {
    json!([
        {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
        {"name": "test_prompt_with_arguments", "description": "A prompt with two arguments",
         "arguments": [{"name": "arg1", "description": "First argument", "required": true},
                       {"name": "arg2", "description": "Second argument", "required": true}]},
        {"name": "test_prompt_with_embedded_resource", "description": "A prompt embedding a resource",
         "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]},
        {"name": "test_prompt_with_image", "description": "A prompt with an image"},
        {"name": "test_input_required_result_prompt", "description": "A prompt that asks for context first"},
    ])
}

fn text_result(text: impl Into<String>) -> CallToolResponse {
    CallToolResponse::Complete(CallToolResult::success(vec![ContentBlock::text(text)]))
}

fn elicit_form(message: &str, schema: Value) -> Value {
    json!({"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": schema}})
}

fn name_schema(field: &str, kind: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": kind}}, "required": [field]})
}

/// State carried in `requestState` between rounds, sealed so a changed value is refused.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Round {
    tool: String,
    step: u32,
}

#[derive(Debug, Clone)]
struct Conformance {
    states: Arc<RequestStateCodec>,
}

impl Conformance {
    fn input_required(
        &self,
        tool: &str,
        step: u32,
        requests: Value,
        with_state: bool,
    ) -> Result<InputRequiredResult, McpError> {
        let state = if with_state {
            let round = Round {
                tool: tool.to_owned(),
                step,
            };
            let sealed = self.states.seal_json(&round);
            Some(sealed.map_err(|e| McpError::internal_error(e.to_string(), None))?)
        } else {
            None
        };
        Ok(InputRequiredResult::new(Some(from(requests)?), state))
    }

    /// The round the client is answering, from its echoed state (0 without one).
    fn round(&self, tool: &str, state: Option<&str>) -> Result<u32, McpError> {
        let Some(state) = state else { return Ok(0) };
        let round: Round = self
            .states
            .open_json(state)
            .map_err(|_| McpError::invalid_params("requestState is not valid", None))?;
        if round.tool != tool {
            return Err(McpError::invalid_params("requestState is not valid", None));
        }
        Ok(round.step)
    }

    async fn elicit(
        &self,
        ctx: &RequestContext<RoleServer>,
        params: Value,
    ) -> Result<String, McpError> {
        let result = ctx
            .peer
            .create_elicitation(from(params)?)
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        Ok(format!(
            "action={}, content={}",
            serde_json::to_value(result.action).unwrap_or_default(),
            result.content.map(|c| c.to_string()).unwrap_or_default()
        ))
    }

    async fn input_tool(
        &self,
        name: &str,
        request: &CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let responses = request.input_responses.clone().unwrap_or_default();
        let answered = |key: &str| responses.get(key).filter(|v| v.is_object()).cloned();
        if request.input_responses.is_some() && responses.values().any(|v| !v.is_object()) {
            return Err(McpError::invalid_params(
                "inputResponses must be result objects",
                None,
            ));
        }
        let round = self.round(name, request.request_state.as_deref())?;
        let ask = |requests: Value, step: u32, state: bool| {
            self.input_required(name, step, requests, state)
                .map(CallToolResponse::InputRequired)
        };
        match name {
            "test_input_required_result_elicitation" => match answered("user_name") {
                Some(r) => Ok(text_result(format!(
                    "Hello, {}!",
                    r["content"]["name"].as_str().unwrap_or("you")
                ))),
                None => ask(
                    json!({"user_name": elicit_form("What is your name?", name_schema("name", "string"))}),
                    1,
                    false,
                ),
            },
            "test_input_required_result_sampling" => match answered("capital_question") {
                Some(r) => Ok(text_result(format!(
                    "The model said: {}",
                    r["content"]["text"].as_str().unwrap_or_default()
                ))),
                None => ask(
                    json!({"capital_question": {"method": "sampling/createMessage", "params": {
                    "messages": [{"role": "user", "content": {"type": "text", "text": "What is the capital of France?"}}],
                    "maxTokens": 100}}}),
                    1,
                    false,
                ),
            },
            "test_input_required_result_list_roots" => match answered("client_roots") {
                Some(r) => Ok(text_result(format!("roots: {}", r["roots"]))),
                None => ask(
                    json!({"client_roots": {"method": "roots/list", "params": {}}}),
                    1,
                    false,
                ),
            },
            "test_input_required_result_request_state"
            | "test_input_required_result_tampered_state" => match (round, answered("confirm")) {
                (1, Some(_)) => Ok(text_result("state-ok: confirmed")),
                _ => ask(
                    json!({"confirm": elicit_form("Confirm?", name_schema("ok", "boolean"))}),
                    1,
                    true,
                ),
            },
            "test_input_required_result_multiple_inputs" => {
                let all = ["user_name", "greeting", "client_roots"]
                    .iter()
                    .all(|k| answered(k).is_some());
                if round == 1 && all {
                    Ok(text_result("state-ok: all three answered"))
                } else {
                    ask(
                        json!({
                        "user_name": elicit_form("What is your name?", name_schema("name", "string")),
                        "greeting": {"method": "sampling/createMessage", "params": {
                            "messages": [{"role": "user", "content": {"type": "text", "text": "Generate a greeting"}}],
                            "maxTokens": 50}},
                        "client_roots": {"method": "roots/list", "params": {}}}),
                        1,
                        true,
                    )
                }
            }
            "test_input_required_result_multi_round" => {
                match (round, answered("step1"), answered("step2")) {
                    (2, _, Some(_)) => Ok(text_result("state-ok: both rounds answered")),
                    (1, Some(_), _) => ask(
                        json!({"step2": elicit_form("Step 2: What is your favourite colour?", name_schema("color", "string"))}),
                        2,
                        true,
                    ),
                    _ => ask(
                        json!({"step1": elicit_form("Step 1: What is your name?", name_schema("name", "string"))}),
                        1,
                        true,
                    ),
                }
            }
            "test_input_required_result_capabilities" => {
                let caps = ctx.meta.client_capabilities().unwrap_or_default();
                let mut requests = serde_json::Map::new();
                if caps.sampling.is_some() && answered("sampled").is_none() {
                    requests.insert("sampled".into(), json!({"method": "sampling/createMessage", "params": {
                        "messages": [{"role": "user", "content": {"type": "text", "text": "Say hello"}}], "maxTokens": 20}}));
                }
                if caps.elicitation.is_some() && answered("elicited").is_none() {
                    requests.insert(
                        "elicited".into(),
                        elicit_form("Your name?", name_schema("name", "string")),
                    );
                }
                if requests.is_empty() {
                    Ok(text_result("every declared capability was used"))
                } else {
                    ask(Value::Object(requests), 1, false)
                }
            }
            _ => Err(McpError::invalid_params(format!("no tool {name}"), None)),
        }
    }
}

impl ServerHandler for Conformance {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_logging()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new("conformance-upstream", "1.0.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(from(tools())?))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        let arg = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let name = request.name.to_string();
        let result: Value = match name.as_str() {
            "test_simple_text" => {
                json!({"content": [{"type": "text", "text": "This is a simple text response for testing."}]})
            }
            "test_image_content" => {
                json!({"content": [{"type": "image", "data": PNG, "mimeType": "image/png"}]})
            }
            "test_audio_content" => {
                json!({"content": [{"type": "audio", "data": WAV, "mimeType": "audio/wav"}]})
            }
            "test_embedded_resource" => json!({"content": [{"type": "resource", "resource": {
                "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}]}),
            "test_multiple_content_types" => json!({"content": [
                {"type": "text", "text": "Multiple content types test:"},
                {"type": "image", "data": PNG, "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json",
                                                  "text": "{\"test\":\"data\",\"value\":123}"}}]}),
            "test_error_handling" => {
                json!({"isError": true, "content": [{"type": "text", "text": "This tool intentionally returns an error for testing"}]})
            }
            "test_tool_with_logging" | "test_logging_tool" => {
                // In the 2026-07-28 era a request asks for logs with a level in its _meta.
                let wants_logs = name == "test_tool_with_logging"
                    || ctx.meta.get("io.modelcontextprotocol/logLevel").is_some();
                if wants_logs {
                    for (i, data) in [
                        "Tool execution started",
                        "Tool processing data",
                        "Tool execution completed",
                    ]
                    .iter()
                    .enumerate()
                    {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        ctx.peer
                            .notify_logging_message(
                                LoggingMessageNotificationParam::new(
                                    LoggingLevel::Info,
                                    json!(data),
                                )
                                .with_logger("conformance"),
                            )
                            .await
                            .ok();
                    }
                }
                json!({"content": [{"type": "text", "text": "Tool with logging executed successfully"}]})
            }
            "test_tool_with_progress" => {
                let token = ctx.meta.get_progress_token();
                if let Some(token) = &token {
                    for (i, step) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        ctx.peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), step)
                                    .with_total(100.0)
                                    .with_message(format!("Completed step {step} of 100")),
                            )
                            .await
                            .ok();
                    }
                }
                json!({"content": [{"type": "text", "text": format!("progress reported for {}", serde_json::to_string(&token).unwrap_or_default())}]})
            }
            "test_sampling" => {
                let params: CreateMessageRequestParams = from(json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": arg("prompt")}}],
                    "maxTokens": 100}))?;
                let answer = ctx
                    .peer
                    .create_message(params)
                    .await
                    .map_err(|e| McpError::internal_error(e.to_string(), None))?;
                let text = serde_json::to_value(&answer.message.content).unwrap_or_default();
                json!({"content": [{"type": "text", "text": format!("LLM response: {}", text["text"].as_str().unwrap_or_default())}]})
            }
            "test_elicitation" => {
                let schema = json!({"type": "object", "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"}},
                    "required": ["username", "email"]});
                let answer = self.elicit(&ctx, json!({"mode": "form", "message": arg("message"), "requestedSchema": schema})).await?;
                json!({"content": [{"type": "text", "text": format!("User response: {answer}")}]})
            }
            "test_elicitation_sep1034_defaults" => {
                let schema = json!({"type": "object", "properties": {
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                    "verified": {"type": "boolean", "description": "Verification status", "default": true}},
                    "required": []});
                let answer = self.elicit(&ctx, json!({"mode": "form", "message": "Please review and update the form fields with defaults", "requestedSchema": schema})).await?;
                json!({"content": [{"type": "text", "text": format!("Elicitation completed: {answer}")}]})
            }
            "test_elicitation_sep1330_enums" => {
                let schema = json!({"type": "object", "properties": {
                    "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": [
                        {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"}]},
                    "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"],
                                   "enumNames": ["Option One", "Option Two", "Option Three"]},
                    "untitledMulti": {"type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                                      "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                    "titledMulti": {"type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                                    "items": {"anyOf": [{"const": "value1", "title": "First Choice"},
                                                        {"const": "value2", "title": "Second Choice"},
                                                        {"const": "value3", "title": "Third Choice"}]}}},
                    "required": []});
                let answer = self.elicit(&ctx, json!({"mode": "form", "message": "Please select options from the enum fields", "requestedSchema": schema})).await?;
                json!({"content": [{"type": "text", "text": format!("Elicitation completed: {answer}")}]})
            }
            "json_schema_2020_12_tool" => {
                json!({"content": [{"type": "text", "text": format!("received {}", Value::Object(args.clone()))}]})
            }
            "test_missing_capability" => {
                let caps = ctx.meta.client_capabilities().unwrap_or_default();
                if caps.sampling.is_none() {
                    return Err(McpError::new(
                        ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
                        "this tool needs the sampling capability",
                        Some(json!({"requiredCapabilities": {"sampling": {}}})),
                    ));
                }
                json!({"content": [{"type": "text", "text": "the client can sample"}]})
            }
            "test_streaming_elicitation" => {
                return match request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get("confirm"))
                {
                    Some(_) => Ok(text_result("confirmed")),
                    None => Ok(CallToolResponse::InputRequired(self.input_required(
                        &name,
                        1,
                        json!({"confirm": elicit_form("Proceed?", name_schema("ok", "boolean"))}),
                        false,
                    )?)),
                };
            }
            "test_custom_header" => {
                json!({"content": [{"type": "text", "text": format!("region {}", arg("region"))}]})
            }
            other if other.starts_with("test_input_required_result_") => {
                return self.input_tool(other, &request, &ctx).await;
            }
            other => return Err(McpError::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(CallToolResponse::Complete(from(result)?))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(from(prompts())?))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        let arg = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let text = |t: String| json!({"role": "user", "content": {"type": "text", "text": t}});
        let messages = match request.name.as_str() {
            "test_simple_prompt" => json!([text("This is a simple prompt for testing.".into())]),
            "test_prompt_with_arguments" => json!([text(format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                arg("arg1"),
                arg("arg2")
            ))]),
            "test_prompt_with_embedded_resource" => json!([
                {"role": "user", "content": {"type": "resource", "resource": {
                    "uri": arg("resourceUri"), "mimeType": "text/plain", "text": "Embedded resource content for testing."}}},
                text("Please process the embedded resource above.".into())]),
            "test_prompt_with_image" => json!([
                {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
                text("Please analyze the image above.".into())]),
            "test_input_required_result_prompt" => {
                let answered = request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get("user_context"))
                    .filter(|v| v.is_object());
                match answered {
                    Some(r) => json!([text(format!(
                        "Context: {}",
                        r["content"]["context"].as_str().unwrap_or_default()
                    ))]),
                    None => {
                        return Ok(GetPromptResponse::InputRequired(self.input_required(
                            &request.name, 1,
                            json!({"user_context": elicit_form("What context should the prompt use?", name_schema("context", "string"))}),
                            false,
                        )?));
                    }
                }
            }
            other => return Err(McpError::invalid_params(format!("no prompt {other}"), None)),
        };
        Ok(GetPromptResponse::Complete(from(
            json!({"messages": messages}),
        )?))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(from(json!([
            {"uri": "test://static-text", "name": "static-text", "description": "A static text resource", "mimeType": "text/plain"},
            {"uri": "test://static-binary", "name": "static-binary", "description": "A static binary resource", "mimeType": "image/png"},
            {"uri": "test://watched-resource", "name": "watched-resource", "description": "A resource to subscribe to", "mimeType": "text/plain"},
        ]))?))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(from(json!([
            {"uriTemplate": "test://template/{id}/data", "name": "template", "description": "Data by id", "mimeType": "application/json"},
        ]))?))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let content = match uri {
            "test://static-text" => {
                json!({"uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource."})
            }
            "test://static-binary" => json!({"uri": uri, "mimeType": "image/png", "blob": PNG}),
            "test://watched-resource" => {
                json!({"uri": uri, "mimeType": "text/plain", "text": "Watched resource content."})
            }
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|r| r.strip_suffix("/data"))
            {
                Some(id) if !id.is_empty() && !id.contains('/') => {
                    json!({"uri": uri, "mimeType": "application/json",
                    "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()})
                }
                _ => {
                    return Err(McpError::invalid_params(
                        format!("no resource {uri}"),
                        Some(json!({"uri": uri})),
                    ));
                }
            },
        };
        Ok(ReadResourceResponse::Complete(from(
            json!({"contents": [content]}),
        )?))
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        _request: SubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn complete(
        &self,
        _request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        from(json!({"completion": {"values": [], "total": 0, "hasMore": false}}))
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }
}

/// A running conformance fixture; stopped when dropped.
#[derive(Debug)]
pub struct ConformanceUpstream {
    pub url: String,
    stop: CancellationToken,
}

impl ConformanceUpstream {
    /// Starts the fixture at `http://127.0.0.1:PORT/mcp` (or on `listener`).
    pub async fn start(listener: tokio::net::TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let fixture = Conformance {
            states: Arc::new(RequestStateCodec::new(
                uuid::Uuid::new_v4().as_bytes().repeat(2),
            )),
        };
        let service = StreamableHttpService::new(
            move || Ok(fixture.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_cancellation_token(stop.clone()),
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let shutdown = stop.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .ok();
        });
        Ok(Self {
            url: format!("http://{addr}/mcp"),
            stop,
        })
    }
}

impl Drop for ConformanceUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

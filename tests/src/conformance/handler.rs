//! The fixture's MCP handler: every tool, prompt, resource and template the suites call,
//! completions, subscriptions and the log level.

use super::input::{elicit_form, name_schema, text_result};
use super::listings::{PNG, WAV, prompts, tools};
use super::{Conformance, from};
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Value, json};
use std::time::Duration;

/// The string argument `k` of a request (empty when absent or not a string).
fn str_arg(args: &JsonObject, k: &str) -> String {
    args.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
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
        let arg = |k: &str| str_arg(&args, k);
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
        let arg = |k: &str| str_arg(&args, k);
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

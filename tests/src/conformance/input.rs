//! Input-required results (2026-07-28) and elicitation (session era): the rounds of the
//! `test_input_required_result_*` tools, their sealed request state, and the answers' shapes.

use super::{Conformance, from};
use rmcp::ErrorData as McpError;
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Value, json};

pub(super) fn text_result(text: impl Into<String>) -> CallToolResponse {
    CallToolResponse::Complete(CallToolResult::success(vec![ContentBlock::text(text)]))
}

pub(super) fn elicit_form(message: &str, schema: Value) -> Value {
    json!({"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": schema}})
}

pub(super) fn name_schema(field: &str, kind: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": kind}}, "required": [field]})
}

/// State carried in `requestState` between rounds, sealed so a changed value is refused.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Round {
    tool: String,
    step: u32,
}

impl Conformance {
    pub(super) fn input_required(
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

    pub(super) async fn elicit(
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

    pub(super) async fn input_tool(
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

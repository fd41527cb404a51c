//! How a refusal or failure is answered: as an HTTP response before MCP handling, as a
//! JSON-RPC error, or as a tool result the model reads.

use super::*;

impl Error {
    /// The JSON-RPC error code: its code's, unless MCP names one of its own (a header
    /// mismatch's -32020, which the client's transport answers with 400).
    pub fn jsonrpc(&self) -> i32 {
        match self {
            Self::HeaderMismatch(_) => rmcp::model::ErrorCode::HEADER_MISMATCH.0,
            _ => self.code().jsonrpc(),
        }
    }

    /// JSON-RPC error data: the reason and what else a client needs to act on it.
    pub fn data(&self) -> Value {
        let mut data = json!({"reason": self.reason()});
        if let Some(wait) = self.retry_after() {
            data["retryAfterMs"] = json!(wait.as_millis() as u64);
        }
        match self {
            Self::Limited(Refusal::Rate { scope, retry_after }) => {
                data["scope"] = json!(scope_str(*scope));
                data["retryAfterMs"] = json!(retry_after.as_millis().max(1) as u64);
            }
            Self::UnknownName { kind, name } => {
                data["name"] = json!(name);
                if *kind == "resource" {
                    data["uri"] = json!(name);
                }
            }
            Self::QuotaExhausted(resets) => {
                data["quota"] = json!("monthly_tool_calls");
                data["resetsAt"] = json!(rfc3339(*resets));
                if let Some(m) = data.as_object_mut() {
                    m.remove("retryAfterMs");
                }
            }
            _ => {}
        }
        data
    }

    /// The HTTP answer to request `id` (`null` when it is not known yet): the status of the
    /// error's code, a JSON-RPC error with its data, `Retry-After` when there is a wait, and
    /// a bearer challenge for a missing, invalid or insufficient credential.
    pub fn response(&self, id: Value) -> Response {
        self.response_at(id, None)
    }

    /// Like `response`, with `endpoint`'s parameters (its metadata and scopes, see
    /// `http::discovery`) in the bearer challenge.
    pub fn response_at(&self, id: Value, endpoint: Option<&str>) -> Response {
        let code = self.code();
        let error =
            json!({"code": self.jsonrpc(), "message": self.to_string(), "data": self.data()});
        let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Some(wait) = self.retry_after() {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        let error = match self {
            Self::MissingCredential => None,
            Self::InvalidCredential | Self::ApiKeysDisabled => Some("invalid_token"),
            Self::InsufficientScope(_) | Self::ScopeNeeded(_) => Some("insufficient_scope"),
            _ => return resp,
        };
        let mut challenge = String::from("Bearer realm=\"switchyard\"");
        for part in [endpoint, error.map(|e| format!("error=\"{e}\"")).as_deref()]
            .into_iter()
            .flatten()
        {
            challenge.push_str(", ");
            challenge.push_str(part);
        }
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
        }
        resp
    }

    /// Whether the answer carries a bearer challenge (see `response_at`).
    pub fn challenges(&self) -> bool {
        matches!(
            self,
            Self::MissingCredential
                | Self::InvalidCredential
                | Self::ApiKeysDisabled
                | Self::InsufficientScope(_)
                | Self::ScopeNeeded(_)
        )
    }

    /// As the JSON-RPC error of an MCP request other than `tools/call` to connector
    /// `connector`: an upstream's own JSON-RPC error passes through unchanged.
    pub fn into_mcp(self, connector: &str) -> McpError {
        match self {
            Self::Service(ServiceError::McpError(e)) => e,
            other => {
                let message = if other.is_upstream() {
                    format!("the {connector} connector failed: {}", other.public())
                } else {
                    other.to_string()
                };
                McpError::new(
                    rmcp::model::ErrorCode(other.jsonrpc()),
                    message,
                    Some(other.data()),
                )
            }
        }
    }

    /// As the result of a `tools/call` to connector `connector`, which the model reads:
    /// `isError`, a text naming the connector and what happened, and `_meta` with the
    /// reason, the connector and, when there is one, the wait.
    pub fn tool_result(&self, connector: &str) -> rmcp::model::CallToolResult {
        let text = if self.is_upstream() {
            format!(
                "The {connector} connector failed: {}. Other tools still work; try again later.",
                self.public()
            )
        } else {
            self.to_string()
        };
        let mut meta = serde_json::Map::new();
        meta.insert("reason".into(), json!(self.reason()));
        meta.insert("connector".into(), json!(connector));
        if let Some(wait) = self.retry_after() {
            meta.insert("retryAfterMs".into(), json!(wait.as_millis() as u64));
        }
        let mut result =
            rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(text)]);
        result.meta = Some(rmcp::model::MetaObject(meta));
        result
    }
}

#[cfg(test)]
#[path = "answers_tests.rs"]
mod tests;

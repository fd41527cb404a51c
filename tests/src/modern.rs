//! MCP 2026-07-28 requests as a raw HTTP client makes them: no session, everything in the
//! request; what came back, status and headers included.

use serde_json::{Value, json};

/// What a tool call got back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds, when sent.
    pub retry_after: Option<u64>,
    /// The JSON-RPC response (the last event of a stream).
    pub body: Value,
}

impl Answer {
    pub fn error_code(&self) -> Option<i64> {
        self.body["error"]["code"].as_i64()
    }

    pub fn ok(&self) -> bool {
        self.status == 200 && self.body["result"].is_object()
    }

    /// The first text of a result.
    pub fn text(&self) -> Option<&str> {
        self.body["result"]["content"][0]["text"].as_str()
    }
}

/// One `tools/call` of `tool` with `args`.
pub async fn call(
    http: &reqwest::Client,
    endpoint: &str,
    key: &str,
    tool: &str,
    args: Value,
) -> Answer {
    let params = json!({"name": tool, "arguments": args});
    request(http, endpoint, key, "tools/call", Some(tool), params).await
}

/// One `tools/list`.
pub async fn list(http: &reqwest::Client, endpoint: &str, key: &str) -> Answer {
    request(http, endpoint, key, "tools/list", None, json!({})).await
}

/// One request of `method` (naming `name`, if it names one) with `params`.
pub async fn request(
    http: &reqwest::Client,
    endpoint: &str,
    key: &str,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> Answer {
    request_with(http, endpoint, key, (method, name), params, &[]).await
}

/// Like `request`, with `headers` added.
pub async fn request_with(
    http: &reqwest::Client,
    endpoint: &str,
    key: &str,
    (method, name): (&str, Option<&str>),
    params: Value,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = post(http, endpoint, key, 7, (method, name), params);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.send().await.unwrap()).await
}

/// The request `request` sends, as request `id`, ready to send: its `_meta` gets the
/// protocol version and capabilities beside whatever `params` already has there (a
/// progress token, say).
pub fn post(
    http: &reqwest::Client,
    endpoint: &str,
    key: &str,
    id: u64,
    (method, name): (&str, Option<&str>),
    mut params: Value,
) -> reqwest::RequestBuilder {
    crate::install_tls();
    if !params["_meta"].is_object() {
        params["_meta"] = json!({});
    }
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut req = http
        .post(endpoint)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    req.json(&body)
}

/// What `r` carried: its status, `Retry-After`, and the JSON-RPC response, plain or the
/// last event of a stream.
pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let text = r.text().await.unwrap_or_default();
    // A streamed answer carries its JSON-RPC response as the last `data:` line.
    let json_text = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map_or(text.as_str(), |l| l);
    Answer {
        status,
        retry_after,
        body: serde_json::from_str(json_text).unwrap_or(Value::Null),
    }
}

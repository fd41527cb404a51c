//! Session-based MCP (2025-06-18 unless asked for another version) as a raw HTTP client
//! speaks it: `initialize`, then requests on the session the server assigned.

use crate::modern::{Answer, answer};
use serde_json::{Value, json};

const VERSION: &str = "2025-06-18";

/// An initialized client session at one endpoint.
#[derive(Debug, Clone)]
pub struct Session {
    http: reqwest::Client,
    endpoint: String,
    key: String,
    /// The session id the server assigned.
    pub id: String,
    /// The protocol version the session speaks.
    version: &'static str,
}

impl Session {
    /// Opens a session with `key`: `initialize`, then `notifications/initialized`.
    pub async fn open(http: &reqwest::Client, endpoint: &str, key: &str) -> Self {
        Self::try_open(http, endpoint, key)
            .await
            .expect("initialize is answered with a session")
    }

    /// The session `id` at `endpoint`, opened before (perhaps through another worker).
    pub fn of(http: &reqwest::Client, endpoint: &str, key: &str, id: String) -> Self {
        Self {
            http: http.clone(),
            endpoint: endpoint.to_owned(),
            key: key.to_owned(),
            id,
            version: VERSION,
        }
    }

    /// Like `open`, but `None` when `initialize` is refused. Each answer is read to its
    /// end, so the connection is reused.
    pub async fn try_open(http: &reqwest::Client, endpoint: &str, key: &str) -> Option<Self> {
        Self::try_open_with(http, endpoint, key, json!({})).await
    }

    /// Like `try_open`, for a client declaring `capabilities`.
    pub async fn try_open_with(
        http: &reqwest::Client,
        endpoint: &str,
        key: &str,
        capabilities: Value,
    ) -> Option<Self> {
        Self::try_open_at(http, endpoint, key, capabilities, VERSION).await
    }

    /// Like `try_open_with`, speaking protocol `version`.
    pub async fn try_open_at(
        http: &reqwest::Client,
        endpoint: &str,
        key: &str,
        capabilities: Value,
        version: &'static str,
    ) -> Option<Self> {
        let r = http
            .post(endpoint)
            .bearer_auth(key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", version)
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": version, "capabilities": capabilities,
                "clientInfo": {"name": "switchyard-tests", "version": "1"}}}),
            )
            .send()
            .await
            .ok()?;
        let id = r.headers().get("mcp-session-id")?.to_str().ok()?.to_owned();
        r.bytes().await.ok()?;
        let session = Self {
            version,
            ..Self::of(http, endpoint, key, id)
        };
        session
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .bytes()
            .await
            .ok()?;
        Some(session)
    }

    /// Sends `body` on the session.
    pub async fn post(&self, body: Value) -> reqwest::Response {
        self.http
            .post(&self.endpoint)
            .bearer_auth(&self.key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", self.version)
            .header("mcp-session-id", &self.id)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Opens the session's GET stream.
    pub async fn stream(&self) -> reqwest::Response {
        self.http
            .get(&self.endpoint)
            .bearer_auth(&self.key)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", self.version)
            .header("mcp-session-id", &self.id)
            .send()
            .await
            .unwrap()
    }

    /// Ends the session (DELETE); the status the server answered with.
    pub async fn close(&self) -> u16 {
        self.http
            .delete(&self.endpoint)
            .bearer_auth(&self.key)
            .header("mcp-protocol-version", self.version)
            .header("mcp-session-id", &self.id)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// One `tools/call` of `tool` with `args` on the session.
    pub async fn call(&self, tool: &str, args: Value) -> Answer {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        answer(self.post(body).await).await
    }
}

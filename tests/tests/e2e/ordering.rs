//! What an upstream sends on one request's stream reaches the client in the upstream's
//! order and before the result: a Python SDK upstream sends 20 progress notifications and
//! 20 log messages back to back and answers at once, while the test keeps every CPU busy.
//! Checked on the wire (the SSE events of each POST) for both client eras against an
//! upstream that speaks only the session era and one that speaks only 2026-07-28.

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_tests::admin::{CreateTenantRequest, Quotas};
use switchyard_tests::python::{BusyCpus, PythonUpstream};
use switchyard_tests::sse::messages;
use switchyard_tests::{Stack, mcp_connector};

const NOTICES: usize = 20;
const CALLS: usize = 30;

/// What the client must see for one call: progress (when it follows it, under `token`) and
/// log messages interleaved as the upstream sent them, then the result.
fn check(messages: &[Value], token: Option<&str>, id: u64, what: &str) {
    let expected: Vec<String> = (1..=NOTICES)
        .flat_map(|i| {
            let progress = token.map(|_| format!("progress {i}"));
            progress.into_iter().chain([format!("log line {i}")])
        })
        .chain([format!("result {id}")])
        .collect();
    let seen: Vec<String> = messages
        .iter()
        .map(|m| match m["method"].as_str() {
            Some("notifications/progress") => {
                assert_eq!(m["params"]["progressToken"], json!(token), "{what}: {m}");
                format!(
                    "progress {}",
                    m["params"]["progress"].as_f64().unwrap_or(-1.0)
                )
            }
            Some("notifications/message") => {
                format!("log {}", m["params"]["data"].as_str().unwrap_or("?"))
            }
            Some(other) => format!("unexpected {other}"),
            None => {
                assert_eq!(
                    m["result"]["content"][0]["text"],
                    format!("burst of {NOTICES}"),
                    "{what}: {m}"
                );
                format!("result {}", m["id"])
            }
        })
        .collect();
    assert_eq!(seen, expected, "{what}");
}

struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
    /// A session client's session id; none for a 2026-07-28 client.
    session: Option<String>,
}

impl Client {
    fn post(&self, method: &str, body: &Value) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        match &self.session {
            Some(id) => {
                r = r
                    .header("mcp-session-id", id)
                    .header("mcp-protocol-version", "2025-11-25")
            }
            None => {
                r = r
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", method)
            }
        }
        r
    }

    async fn legacy(http: reqwest::Client, url: String, key: String) -> Self {
        let mut client = Self {
            http,
            url,
            key,
            session: None,
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "ordering-test", "version": "1"}}});
        let r = client
            .http
            .post(&client.url)
            .bearer_auth(&client.key)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        r.text().await.unwrap();
        client.session = Some(id);
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = client
            .post("notifications/initialized", &initialized)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        client
    }

    /// Calls `tool` asking for log messages, and for progress under `token` if given;
    /// every message of the answer, in order.
    async fn burst(&self, tool: &str, id: u64, token: Option<&str>) -> Vec<Value> {
        let mut meta = json!({});
        if let Some(token) = token {
            meta["progressToken"] = json!(token);
        }
        if self.session.is_none() {
            meta["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
            meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
            meta["io.modelcontextprotocol/logLevel"] = json!("debug");
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": tool, "arguments": {"count": NOTICES}, "_meta": meta}});
        let r = self
            .post("tools/call", &body)
            .header("mcp-name", tool)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{tool}");
        messages(&r.text().await.unwrap())
    }
}

#[tokio::test]
async fn upstream_notifications_reach_the_client_in_order_before_the_result_in_every_era() {
    let stack = Stack::start().await;
    let (cp, worker) = (&stack.cp, stack.worker());
    let old = PythonUpstream::start("burst_upstream.py", &["--era", "legacy"]).await;
    let new = PythonUpstream::start("burst_upstream.py", &["--era", "modern"]).await;
    // Limits well above what the calls need: this test is about order, not admission.
    cp.tenants()
        .create_tenant(CreateTenantRequest {
            slug: "acme".into(),
            quotas: Some(Quotas {
                requests_per_second: Some(1000),
                burst: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for (name, up) in [("old", &old), ("new", &new)] {
        cp.connectors()
            .create_connector(mcp_connector("acme", name, &up.url, &[]))
            .await
            .unwrap();
    }
    let key = cp.api_key("acme").await;
    let http = reqwest::Client::new();
    let url = worker.endpoint("acme");
    // The worker may not hold the new key yet.
    let probe = Client {
        http: http.clone(),
        url: url.clone(),
        key: key.clone(),
        session: None,
    };
    switchyard_tests::assert_eventually!(
        probe
            .post(
                "tools/list",
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}}})
            )
            .send()
            .await
            .is_ok_and(|r| r.status() == 200),
        Duration::from_secs(30),
        "the worker serves the tenant"
    );

    let _busy = BusyCpus::start();
    let legacy = Client::legacy(http.clone(), url.clone(), key.clone()).await;
    for (client, era) in [(&legacy, "session client"), (&probe, "2026-07-28 client")] {
        for tool in ["old__burst", "new__burst"] {
            for n in 0..CALLS {
                let id = 100 + n as u64;
                let token = format!("t-{tool}-{n}");
                let got = client.burst(tool, id, Some(&token)).await;
                check(&got, Some(&token), id, &format!("{era}, {tool}, call {n}"));
            }
        }
    }
    // A session client's call that follows no progress is served inline; its log messages
    // still come on its stream, in order, before the result.
    for tool in ["old__burst", "new__burst"] {
        for n in 0..CALLS {
            let id = 500 + n as u64;
            let got = legacy.burst(tool, id, None).await;
            check(&got, None, id, &format!("plain call, {tool}, call {n}"));
        }
    }

    // Nothing was dropped or sent off its request's stream.
    let diverted = worker
        .series("switchyard_worker_relay_diverted_total")
        .await;
    assert!(diverted.is_empty(), "{diverted:?}");
}

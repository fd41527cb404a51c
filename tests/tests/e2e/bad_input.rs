//! Malformed and hostile requests get the answer the spec of their protocol era names, and
//! the worker stays healthy.

use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, eventually, mcp_connector};

#[tokio::test]
async fn bad_requests_get_protocol_errors_and_the_worker_stays_healthy() {
    let stack = Stack::start().await;
    let (cp, worker) = (&stack.cp, stack.worker());
    let up = TestUpstream::start("A").await;
    cp.create_tenant("acme").await;
    cp.connectors()
        .create_connector(mcp_connector("acme", "alpha", &up.url, &[]))
        .await
        .unwrap();
    let key = cp
        .keys_api()
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let url = worker.endpoint("acme");
    let http = reqwest::Client::new();
    let init = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    });
    let post = || {
        http.post(&url)
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
    };
    // Wait for the key, and open a legacy session for the in-session cases.
    let session = eventually(Duration::from_secs(20), "the key is accepted", || async {
        let r = post()
            .header("mcp-protocol-version", "2025-06-18")
            .json(&init)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => Ok(r.headers()["mcp-session-id"].to_str().unwrap().to_owned()),
            status => Err(status),
        }
    })
    .await;
    post()
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();

    let status = |r: reqwest::Response| r.status().as_u16();
    // Not JSON at all: 400 with a parse error.
    let r = post().body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("-32700"));
    // A body over the cap: 413.
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(5 * 1024 * 1024)
    );
    assert_eq!(status(post().body(huge).send().await.unwrap()), 413);
    // Accept without text/event-stream or JSON: 406.
    let r = http
        .post(&url)
        .bearer_auth(&key)
        .header("accept", "text/plain")
        .header("content-type", "application/json")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    // A browser origin that is not ours: 403.
    let r = post()
        .header("origin", "https://evil.example")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A Host that is not ours (DNS rebinding): 403.
    let r = post()
        .header("host", "evil.example")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // An unsupported protocol version header on a session request: 400.
    let r = post()
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "1999-01-01")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A legacy request with no version header is taken as 2025-03-26 and served.
    let r = post()
        .header("mcp-session-id", &session)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("alpha__echo"));
    // An unknown method: JSON-RPC -32601 inside a 200.
    let r = post()
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 5, "method": "no/such/method"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("-32601"));
    // An unknown session id: 404.
    let r = post()
        .header("mcp-session-id", "00000000-0000-0000-0000-000000000000")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // MCP 2026-07-28 requests carry their version in a header and in `_meta`, and name
    // their method in a header; each mistake gets the status and code that era names.
    let meta = |version: &str| {
        serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {}
        })
    };
    let modern = |version: &str, method: &str, params: serde_json::Value| {
        post()
            .header("mcp-protocol-version", version)
            .header("mcp-method", method)
            .json(
                &serde_json::json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}),
            )
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        (status, body["error"]["code"].as_i64(), body["id"].clone())
    };
    let list = |m: serde_json::Value| serde_json::json!({ "_meta": m });
    // Served when everything agrees.
    let ok = modern("2026-07-28", "tools/list", list(meta("2026-07-28")))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("alpha__echo"));
    // `_meta` without the protocol version: 400, -32602 (invalid params), the request's id.
    let no_meta = serde_json::json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}});
    let (st, code, id) = answer(
        modern("2026-07-28", "tools/list", no_meta)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, code, id), (400, Some(-32602), serde_json::json!(9)));
    // Header and `_meta` disagree on the version: 400, -32020 (header mismatch).
    let (st, code, _) = answer(
        modern("2026-07-28", "tools/list", list(meta("2099-01-01")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, code), (400, Some(-32020)));
    // A version nobody supports, consistently: 400, -32022 (unsupported version).
    let (st, code, _) = answer(
        modern("2099-01-01", "tools/list", list(meta("2099-01-01")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, code), (400, Some(-32022)));
    // The method header names another method: 400, -32020.
    let mismatched = post()
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "prompts/list")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": list(meta("2026-07-28"))}));
    let (st, code, _) = answer(mismatched.send().await.unwrap()).await;
    assert_eq!((st, code), (400, Some(-32020)));
    // An unknown method: 404, -32601.
    let (st, code, _) = answer(
        modern("2026-07-28", "no/such-method", list(meta("2026-07-28")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, code), (404, Some(-32601)));

    let health = http
        .get(worker.metrics_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let still = post()
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {"text": "alive"}}}))
        .send()
        .await
        .unwrap();
    assert!(still.text().await.unwrap().contains("alive"));
}

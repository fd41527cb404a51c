//! A call to an upstream that speaks MCP 2026-07-28 is sent straight over HTTP, as calls on
//! session-era upstream sessions are: the upstream gets one POST per call, under an id
//! the worker issued, carrying what rmcp's client would have sent (the SEP-2243 headers,
//! the `Mcp-Param-*` headers the tool's schema asks for, the client's identity and
//! capabilities in `_meta`), and no session. Each answer's response is read to its end, so
//! its connection serves the next call.

use serde_json::json;
use std::time::Duration;
use switchyard_tests::upstream::{Faults, TestUpstream};
use switchyard_tests::{Stack, assert_eventually, legacy, modern};

/// The headers of the `tools/call` POSTs the upstream saw.
fn call_headers(up: &TestUpstream) -> Vec<http::HeaderMap> {
    up.seen_headers()
        .into_iter()
        .filter(|h| h.get("mcp-method").is_some_and(|m| m == "tools/call"))
        .collect()
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn calls_to_a_2026_07_28_upstream_carry_its_headers_and_the_clients_context() {
    let stack = Stack::start().await;
    let up = TestUpstream::start_stateless("up").await;
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");

    // A 2026-07-28 client, and a session client: the upstream speaks only 2026-07-28 to
    // both.
    let answer = modern::request_with(
        &http,
        &endpoint,
        &key,
        ("tools/call", Some("a__regional")),
        json!({"name": "a__regional", "arguments": {"region": "eu-west-1"}}),
        &[("mcp-param-region", "eu-west-1")],
    )
    .await;
    assert!(answer.ok(), "{answer:?}");
    assert_eq!(answer.text(), Some("eu-west-1 for switchyard"));
    let session = legacy::Session::open(&http, &endpoint, &key).await;
    let answer = session
        .call("a__regional", json!({"region": "zürich"}))
        .await;
    assert!(answer.ok(), "{answer:?}");
    assert_eq!(answer.text(), Some("zürich for switchyard"));

    let seen = call_headers(&up);
    assert_eq!(seen.len(), 2, "one POST per call");
    for h in &seen {
        assert_eq!(
            header(h, "mcp-name"),
            Some("regional"),
            "the upstream's name"
        );
        assert_eq!(header(h, "mcp-protocol-version"), Some("2026-07-28"));
        assert!(h.get("mcp-session-id").is_none(), "no session: {h:?}");
    }
    assert_eq!(header(&seen[0], "mcp-param-region"), Some("eu-west-1"));
    // Not printable ASCII: in Base64, in the sentinel SEP-2243 names.
    assert_eq!(
        header(&seen[1], "mcp-param-region"),
        Some("=?base64?esO8cmljaA==?=")
    );
    let ids = up.call_ids();
    assert!(
        ids.iter().all(|id| id.starts_with("sy-")),
        "sent by the worker itself, not through rmcp's client: {ids:?}"
    );
}

/// A call's answer is read to the end of its response, so its connection goes back to the
/// pool even when the upstream ends the response a moment after answering on it: once each
/// response has ended, the next call reuses the connection, to an upstream of either era.
/// A stream dropped at its answer would close its connection, and every call would open
/// another.
#[tokio::test]
async fn a_calls_connection_is_reused_once_its_response_has_ended() {
    let stack = Stack::start().await;
    let http = reqwest::Client::new();
    for (tenant, up) in [
        ("acme", TestUpstream::start_stateless("up").await),
        ("beta", TestUpstream::start_legacy("up").await),
    ] {
        let key = stack.tenant_with_connector(tenant, "a", &up.url).await;
        stack.wait_serving(tenant, &key).await;
        let endpoint = stack.worker().endpoint(tenant);
        let session = legacy::Session::open(&http, &endpoint, &key).await;
        let call = || session.call("a__echo", json!({"text": "again"}));
        assert!(call().await.ok());
        up.set_faults(Faults {
            late_end: Duration::from_millis(50),
            ..Faults::default()
        });
        let opened = up.connections();
        for i in 1..=CALLS {
            let answer = call().await;
            assert_eq!(answer.text(), Some("again"), "{answer:?}");
            // The response ends, and its connection is free, before the next call.
            assert_eventually!(
                up.ended_late() + up.cut_short() == i,
                DEADLINE,
                "{tenant}: call {i}'s response ended"
            );
        }
        assert_eq!(up.cut_short(), 0, "{tenant}: responses cut short");
        assert!(
            up.connections() <= opened + 1,
            "{tenant}: {} connections opened for {CALLS} calls",
            up.connections() - opened
        );
    }
}

const CALLS: usize = 10;
const DEADLINE: Duration = Duration::from_secs(30);

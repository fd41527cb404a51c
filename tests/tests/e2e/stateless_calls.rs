//! A 2026-07-28 client's plain call (no progress followed, no log messages asked for) is
//! served inline, without the service rmcp starts for each such request. Each test checks
//! on the wire that the client sees what rmcp's answer gave it: the same answers, errors
//! and statuses, and a call that goes on when its client goes away. What the call cannot
//! carry without a stream, an unsolicited notification of the upstream session it
//! borrows, is counted.

use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchyard_tests::hang_up::post_and_hang_up;
use switchyard_tests::sse::Events;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, modern};

const DEADLINE: Duration = Duration::from_secs(30);

/// A stack serving tenant `acme` with connector `a` on `up`, and its key.
async fn serving(stack: &Stack, up: &TestUpstream) -> String {
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    stack.wait_serving("acme", &key).await;
    key
}

/// Request `id` of `method` naming `name`, with `params`; with `logs`, it asks for log
/// messages, which takes it to rmcp.
fn post(
    stack: &Stack,
    key: &str,
    id: u64,
    (method, name): (&str, &str),
    mut params: Value,
    logs: bool,
) -> reqwest::RequestBuilder {
    if logs {
        params["_meta"] = json!({"io.modelcontextprotocol/logLevel": "debug"});
    }
    let endpoint = stack.worker().endpoint("acme");
    modern::post(
        &reqwest::Client::new(),
        &endpoint,
        key,
        id,
        (method, Some(name)),
        params,
    )
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn what_a_plain_call_cannot_carry_is_counted_and_a_call_with_a_stream_carries_it() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let key = serving(&stack, &up).await;
    let diverted = || {
        stack
            .worker()
            .metric("switchyard_worker_relay_diverted_total{reason=\"no_stream\"}")
    };
    let announce = json!({"name": "a__announce", "arguments": {}});

    // The upstream says its tools changed while it holds the call: a plain call has no
    // stream for that, so it is counted, and the answer is plain JSON.
    let call = ("tools/call", "a__announce");
    let pending = tokio::spawn(post(&stack, &key, 1, call, announce.clone(), false).send());
    assert_eventually!(up.holding() == 1, DEADLINE, "the call reached the upstream");
    assert_eventually!(
        diverted().await == Some(1.0),
        DEADLINE,
        "the notification was counted: {:?}",
        diverted().await
    );
    up.release();
    let r = pending.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r), "application/json");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "announced",
        "{answer}"
    );

    // A call that asks for log messages goes to rmcp, whose stream carries it first.
    up.hold_again();
    let r = post(&stack, &key, 2, call, announce, true)
        .send()
        .await
        .unwrap();
    assert!(content_type(&r).starts_with("text/event-stream"));
    let mut events = Events::new(r);
    let first = events.next().await.expect("the notification");
    assert_eq!(
        first["method"], "notifications/tools/list_changed",
        "{first}"
    );
    up.release();
    let last = events.next().await.expect("the answer");
    assert_eq!(last["result"]["content"][0]["text"], "announced", "{last}");
    assert_eq!(diverted().await, Some(1.0), "nothing more was counted");
}

#[tokio::test]
async fn a_plain_call_is_answered_as_rmcp_answers_the_same_call() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let key = serving(&stack, &up).await;
    let calls = [
        (
            "tools/call",
            "a__echo",
            json!({"name": "a__echo", "arguments": {"text": "hi"}}),
        ),
        (
            "tools/call",
            "a__add",
            json!({"name": "a__add", "arguments": {"a": 2, "b": 3}}),
        ),
        // Errors: a tool, prompt or resource the tenant's connectors do not have.
        (
            "tools/call",
            "a__nope",
            json!({"name": "a__nope", "arguments": {}}),
        ),
        (
            "tools/call",
            "nobody__echo",
            json!({"name": "nobody__echo"}),
        ),
        ("prompts/get", "a__greet", json!({"name": "a__greet"})),
        ("prompts/get", "a__nope", json!({"name": "a__nope"})),
        (
            "resources/read",
            "test://nobody/info",
            json!({"uri": "test://nobody/info"}),
        ),
    ];
    for (method, name, params) in calls {
        let inline = post(&stack, &key, 3, (method, name), params.clone(), false);
        let inline = modern::answer(inline.send().await.unwrap()).await;
        let through_rmcp = post(&stack, &key, 3, (method, name), params, true);
        let through_rmcp = modern::answer(through_rmcp.send().await.unwrap()).await;
        assert_eq!(
            (inline.status, &inline.body),
            (through_rmcp.status, &through_rmcp.body),
            "{method} {name}"
        );
        assert!(inline.body["id"] == 3, "{method} {name}: {:?}", inline.body);
    }
    assert_eq!(
        up.cancelled.load(Ordering::SeqCst),
        0,
        "nothing was cancelled"
    );
}

/// A client that goes away mid-call has not cancelled it, as under rmcp: once the worker
/// has seen its connection close, the upstream answers, and the call is counted.
#[tokio::test]
async fn a_plain_call_goes_on_when_its_client_goes_away() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let key = serving(&stack, &up).await;
    let usage = || stack.cp.tool_calls("acme");
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "a__hold", "arguments": {}, "_meta": meta}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "a__hold"),
    ];
    let endpoint = stack.worker().endpoint("acme");
    post_and_hang_up(&endpoint, &key, &headers, &body.to_string(), || {
        up.holding() == 1
    })
    .await;
    up.release();
    assert_eventually!(usage().await == 1, DEADLINE, "the call ran to its end");
    assert_eq!(
        up.cancelled.load(Ordering::SeqCst),
        0,
        "nothing was cancelled"
    );
}

/// A client whose headers say one thing and whose body another (a proxy routing on the
/// header would send the call elsewhere than the worker runs it) is refused as rmcp
/// refuses it, before anything reaches the upstream; a name sent in Base64 that matches
/// is served.
#[tokio::test]
async fn a_call_whose_headers_disagree_with_its_body_is_refused_before_the_upstream() {
    use base64::Engine as _;
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let key = serving(&stack, &up).await;
    let endpoint = stack.worker().endpoint("acme");
    let http = reqwest::Client::new();
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let send = |name: Option<String>, version: &'static str, meta: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": "a__echo", "arguments": {"text": "hi"}, "_meta": meta}});
        let mut req = http
            .post(&endpoint)
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", version)
            .header("mcp-method", "tools/call")
            .json(&body);
        if let Some(name) = name {
            req = req.header("mcp-name", name);
        }
        async move { modern::answer(req.send().await.unwrap()).await }
    };
    let base64 = |s: &str| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(s);
        format!("=?base64?{encoded}?=")
    };
    let calls_before = up.calls.load(Ordering::SeqCst);
    let mut without_caps = meta.clone();
    without_caps
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let mut older = meta.clone();
    older["io.modelcontextprotocol/protocolVersion"] = json!("2025-11-25");
    let refused = [
        (Some("a__whoami".to_owned()), meta.clone(), -32020),
        (None, meta.clone(), -32020),
        (Some(base64("a__whoami")), meta.clone(), -32020),
        (Some("a__echo".to_owned()), older, -32020),
        (Some("a__echo".to_owned()), without_caps, -32602),
    ];
    for (name, meta, code) in refused {
        let what = format!("{name:?} {meta}");
        let answer = send(name, "2026-07-28", meta).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (400, Some(code)),
            "{what}: {:?}",
            answer.body
        );
    }
    assert_eq!(
        up.calls.load(Ordering::SeqCst),
        calls_before,
        "no refused call reached the upstream"
    );
    let answer = send(Some(base64("a__echo")), "2026-07-28", meta).await;
    assert!(answer.ok(), "{:?}", answer.body);
    assert_eq!(answer.text(), Some("hi"));
}

/// A tool's argument marked to travel in a header too (`regional`'s `region`) must travel
/// there as it is in the body: an intermediary may have acted on the header alone. A call
/// whose `Mcp-Param-Region` disagrees with its body is refused with MCP's header mismatch,
/// served inline or through rmcp (a call that asks for log messages), and reaches no
/// upstream; the same call whose header agrees is served.
#[tokio::test]
async fn a_call_whose_param_header_disagrees_with_its_arguments_is_refused() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let key = serving(&stack, &up).await;
    let name = ("tools/call", "a__regional");
    let call = |region: Value, headers: &[(&'static str, &'static str)], logs: bool| {
        let mut req = post(
            &stack,
            &key,
            9,
            name,
            json!({"name": "a__regional", "arguments": {"region": region}}),
            logs,
        );
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move { modern::answer(req.send().await.unwrap()).await }
    };
    let calls_before = up.calls.load(Ordering::SeqCst);
    for logs in [false, true] {
        for (region, headers) in [
            (json!("eu-west-1"), &[("mcp-param-region", "us-east-1")][..]),
            (json!("eu-west-1"), &[][..]),
            (Value::Null, &[("mcp-param-region", "us-east-1")][..]),
            (
                json!("eu-west-1"),
                &[
                    ("mcp-param-region", "eu-west-1"),
                    ("mcp-param-region", "us-east-1"),
                ][..],
            ),
        ] {
            let answer = call(region.clone(), headers, logs).await;
            assert_eq!(
                (answer.status, answer.error_code()),
                (400, Some(-32020)),
                "logs {logs}, {region} with {headers:?}: {:?}",
                answer.body
            );
            assert_eq!(answer.body["error"]["data"]["reason"], "header_mismatch");
        }
    }
    assert_eq!(
        up.calls.load(Ordering::SeqCst),
        calls_before,
        "no refused call reached the upstream"
    );
    for logs in [false, true] {
        let answer = call(
            json!("eu-west-1"),
            &[("mcp-param-region", "=?base64?ZXUtd2VzdC0x?=")],
            logs,
        )
        .await;
        assert!(answer.ok(), "logs {logs}: {:?}", answer.body);
        assert_eq!(answer.text(), Some("eu-west-1 for switchyard"));
    }
}

//! A session client's plain `tools/call` (no progress followed) is served inline, without
//! rmcp's session machinery. Each test checks on the wire that nothing a client sees
//! changed: the answer, what the upstream asks during the call (on the call's own stream,
//! before the answer), cancellation, and the Host and Origin checks. Log messages during
//! such calls are checked in `ordering.rs`. A 2026-07-28 client's answers, which rmcp
//! serves, take the same shapes.

use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchyard_tests::hang_up::post_and_hang_up;
use switchyard_tests::sse::{Events, messages};
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, legacy, modern};

const DEADLINE: Duration = Duration::from_secs(30);

fn call(id: u64, tool: &str, meta: Option<Value>) -> Value {
    let mut params = json!({"name": tool, "arguments": {}});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// The progress steps among an answer's `messages`.
fn progress(messages: &[Value]) -> Vec<f64> {
    messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect()
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A stack serving tenant `acme` with connector `a` on `up`, and a session opened there
/// (declaring `capabilities`) that has made one call already; and the session's key.
async fn session(
    stack: &Stack,
    up: &TestUpstream,
    capabilities: Value,
) -> (legacy::Session, String) {
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let session = legacy::Session::try_open_with(&http, &endpoint, &key, capabilities)
        .await
        .expect("a session");
    assert!(session.call("a__whoami", json!({})).await.ok());
    (session, key)
}

#[tokio::test]
async fn a_plain_call_is_answered_with_json_and_a_call_following_progress_with_its_stream() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let (session, _) = session(&stack, &up, json!({})).await;

    let r = session.post(call(10, "a__whoami", None)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r), "application/json");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["id"], 10);
    assert_eq!(answer["result"]["content"][0]["text"], "upstream A");
    assert!(
        answer["result"].get("resultType").is_none(),
        "a session client gets the result's older shape: {answer}"
    );

    // A client following progress reads it on the call's stream, before the answer.
    let r = session
        .post(call(11, "a__progress", Some(json!({"progressToken": "p"}))))
        .await;
    assert!(content_type(&r).starts_with("text/event-stream"));
    let got = messages(&r.text().await.unwrap());
    assert_eq!(progress(&got), [1.0, 2.0], "{got:?}");
    assert_eq!(got.last().unwrap()["id"], 11, "{got:?}");
}

#[tokio::test]
async fn a_2026_07_28_call_is_answered_with_json_unless_progress_comes_first() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let post = |id: u64, tool: &str, progress: Option<&str>| {
        let mut params = json!({"name": tool, "arguments": {}});
        if let Some(token) = progress {
            params["_meta"] = json!({"progressToken": token});
        }
        modern::post(
            &http,
            &endpoint,
            &key,
            id,
            ("tools/call", Some(tool)),
            params,
        )
        .send()
    };

    let r = post(20, "a__whoami", None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r), "application/json");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["id"], 20);
    assert_eq!(answer["result"]["content"][0]["text"], "upstream A");

    let r = post(21, "a__progress", Some("p")).await.unwrap();
    assert!(content_type(&r).starts_with("text/event-stream"));
    let got = messages(&r.text().await.unwrap());
    assert_eq!(progress(&got), [1.0, 2.0], "{got:?}");
    assert_eq!(got.last().unwrap()["id"], 21, "{got:?}");
}

#[tokio::test]
async fn a_plain_resource_read_and_prompt_get_are_answered_with_json() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let (session, key) = session(&stack, &up, json!({})).await;
    let listed = |method: &'static str| {
        let session = session.clone();
        async move {
            let r = session
                .post(json!({"jsonrpc": "2.0", "id": 50, "method": method}))
                .await;
            messages(&r.text().await.unwrap()).remove(0)
        }
    };
    let uri = listed("resources/list").await["result"]["resources"][0]["uri"].clone();
    let prompt = listed("prompts/list").await["result"]["prompts"][0]["name"].clone();

    let r = session
        .post(
            json!({"jsonrpc": "2.0", "id": 51, "method": "resources/read",
            "params": {"uri": uri}}),
        )
        .await;
    assert_eq!(content_type(&r), "application/json");
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["result"]["contents"][0]["text"], "info of A", "{read}");

    let r = session
        .post(json!({"jsonrpc": "2.0", "id": 52, "method": "prompts/get",
            "params": {"name": prompt}}))
        .await;
    assert_eq!(content_type(&r), "application/json");
    let got: Value = r.json().await.unwrap();
    assert_eq!(
        got["result"]["messages"][0]["content"]["text"], "hello from A",
        "{got}"
    );

    // A resource no connector has is the client's error, the same as rmcp answers it (a
    // session's first request goes through rmcp).
    let missing = json!({"jsonrpc": "2.0", "id": 53, "method": "resources/read",
        "params": {"uri": "test://nobody/info"}});
    let inline = session.post(missing.clone()).await;
    assert_eq!(content_type(&inline), "application/json");
    let inline: Value = inline.json().await.unwrap();
    let endpoint = stack.worker().endpoint("acme");
    let fresh = legacy::Session::open(&reqwest::Client::new(), &endpoint, &key).await;
    let through_rmcp = messages(&fresh.post(missing).await.text().await.unwrap()).remove(0);
    assert!(inline["error"]["code"].is_i64(), "{inline}");
    assert_eq!(inline, through_rmcp);
}

#[tokio::test]
async fn a_request_the_upstream_makes_during_a_plain_call_rides_the_calls_stream() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let (session, _) = session(&stack, &up, json!({"sampling": {}})).await;
    // The upstream asks the client's model: the request comes on the call's stream, the
    // client's answer (posted to the session) reaches the upstream, and the result follows.
    let r = session
        .post(json!({"jsonrpc": "2.0", "id": 21, "method": "tools/call",
            "params": {"name": "a__sample", "arguments": {"question": "meaning of life?"}}}))
        .await;
    let mut events = Events::new(r);
    let asked = events.next().await.expect("the upstream's request");
    assert_eq!(asked["method"], "sampling/createMessage", "{asked}");
    let answered = session
        .post(json!({"jsonrpc": "2.0", "id": asked["id"], "result": {
            "role": "assistant", "model": "test",
            "content": {"type": "text", "text": "forty-two"}}}))
        .await;
    assert_eq!(answered.status(), 202);
    let result = events.next().await.expect("the answer");
    assert_eq!(result["id"], 21);
    assert_eq!(result["result"]["content"][0]["text"], "A says: forty-two");
    assert!(
        events.next().await.is_none(),
        "the stream ends with the answer"
    );

    // Nothing went to the session's GET stream instead.
    let diverted = stack
        .worker()
        .series("switchyard_worker_relay_diverted_total")
        .await;
    assert!(diverted.is_empty(), "{diverted:?}");
}

#[tokio::test]
async fn a_client_cancelling_a_plain_call_stops_it_upstream() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let (session, _) = session(&stack, &up, json!({})).await;

    let calls_before = up.calls.load(Ordering::SeqCst);
    let pending = tokio::spawn({
        let session = session.clone();
        async move { session.post(call(30, "a__slow", None)).await.text().await }
    });
    assert_eventually!(
        up.calls.load(Ordering::SeqCst) == calls_before + 1,
        DEADLINE,
        "the call reached the upstream"
    );
    let r = session
        .post(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 30, "reason": "user pressed stop"}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    assert_eventually!(
        up.cancelled.load(Ordering::SeqCst) == 1,
        DEADLINE,
        "the client's cancellation reached the upstream"
    );
    // The call's answer ends without a result, as a cancelled request's stream does.
    let body = pending.await.unwrap().unwrap();
    assert!(messages(&body).is_empty(), "{body}");
    // The session goes on.
    assert!(session.call("a__whoami", json!({})).await.ok());
}

/// A client that goes away mid-call has not cancelled it: once the worker has seen its
/// connection close, the upstream answers, and the call has run to its end uncancelled
/// and is counted.
#[tokio::test]
async fn a_plain_call_goes_on_when_its_client_goes_away() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let (session, key) = session(&stack, &up, json!({})).await;
    let usage = || stack.cp.tool_calls("acme");
    assert_eventually!(usage().await == 1, DEADLINE, "the first call is counted");

    // The call on a connection of its own, which the client then closes.
    let body = call(50, "a__hold", None).to_string();
    let headers = [
        ("mcp-protocol-version", "2025-06-18"),
        ("mcp-session-id", session.id.as_str()),
    ];
    let endpoint = stack.worker().endpoint("acme");
    post_and_hang_up(&endpoint, &key, &headers, &body, || up.holding() == 1).await;
    up.release();
    assert_eventually!(usage().await == 2, DEADLINE, "the call ran to its end");
    assert_eq!(
        up.cancelled.load(Ordering::SeqCst),
        0,
        "nothing was cancelled"
    );
}

#[tokio::test]
async fn a_plain_call_keeps_the_host_and_origin_checks() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("A").await;
    let (session, key) = session(&stack, &up, json!({})).await;
    let calls_before = up.calls.load(Ordering::SeqCst);
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let send = |header: &'static str, value: &'static str| {
        http.post(&endpoint)
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .header("mcp-session-id", &session.id)
            .header(header, value)
            .json(&call(40, "a__whoami", None))
            .send()
    };
    // A page on another site, or one that rebound its name to the worker's address.
    let r = send("origin", "https://evil.example").await.unwrap();
    assert_eq!(r.status(), 403);
    let r = send("host", "evil.example").await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        up.calls.load(Ordering::SeqCst),
        calls_before,
        "no refused call reached the upstream"
    );
}

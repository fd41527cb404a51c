//! What an upstream sends back is bounded, and no connector points at the gateway itself:
//! an answer larger than the bound, or a connector listing more than the bound, is refused
//! with a reason naming the connector and the bound, and the worker goes on serving.

use serde_json::json;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, legacy, mcp_connector, modern, violated_field};

const BOUND: usize = 64 * 1024;

async fn bounded_stack() -> Stack {
    Stack::builder()
        .worker_config(|c| c.upstream_bounds.max_response_bytes = BOUND)
        .start()
        .await
}

/// A call whose answer is ten times the bound is refused, naming the connector and the
/// bound; a call within it still succeeds.
async fn refuses_oversized_answers(up: TestUpstream) {
    let stack = bounded_stack().await;
    let key = stack.tenant_with_connector("acme", "big", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let huge = "x".repeat(10 * BOUND);

    let a = modern::call(&http, &endpoint, &key, "big__echo", json!({"text": huge})).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["result"]["isError"], true, "{a:?}");
    assert_eq!(
        a.body["result"]["_meta"]["reason"], "upstream_too_large",
        "{a:?}"
    );
    let text = a.text().unwrap_or_default();
    assert!(
        text.contains("big") && text.contains(&BOUND.to_string()),
        "{text}"
    );
    let session = legacy::Session::open(&http, &endpoint, &key).await;
    let l = session.call("big__echo", json!({"text": huge})).await;
    assert_eq!(
        l.body["result"]["_meta"]["reason"], "upstream_too_large",
        "{l:?}"
    );

    let small = modern::call(&http, &endpoint, &key, "big__echo", json!({"text": "hi"})).await;
    assert_eq!(small.text(), Some("hi"), "{small:?}");
    let small = session.call("big__echo", json!({"text": "hi"})).await;
    assert_eq!(small.text(), Some("hi"), "{small:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_of_a_session_upstream_is_refused() {
    refuses_oversized_answers(TestUpstream::start_legacy("up").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_of_a_2026_upstream_is_refused() {
    refuses_oversized_answers(TestUpstream::start_stateless("up").await).await;
}

/// A connector that lists more tools than the bound (the fixture lists twelve, the bound is
/// one) is left out of the listing, and a call of its tools is refused saying so; another
/// connector of the tenant is listed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_listing_more_than_the_bound_is_refused() {
    let stack = Stack::builder()
        .worker_config(|c| c.upstream_bounds.max_listed = 1)
        .start()
        .await;
    let many = TestUpstream::start("many").await;
    let key = stack.tenant_with_connector("acme", "many", &many.url).await;
    // Served once a session opens and lists (nothing, here): before, the key is unknown.
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");

    let listed = modern::list(&http, &endpoint, &key).await;
    assert!(listed.ok(), "{listed:?}");
    assert_eq!(listed.body["result"]["tools"], json!([]), "{listed:?}");
    let a = modern::call(&http, &endpoint, &key, "many__whoami", json!({})).await;
    assert_eq!(
        a.body["result"]["_meta"]["reason"], "upstream_unavailable",
        "{a:?}"
    );
    let text = a.text().unwrap_or_default();
    assert!(
        text.contains("many") && text.contains("more than 1 tools"),
        "{text}"
    );
}

/// A connector that points at the gateway's own public host (under any port, as an
/// ingress may serve it on several) is refused when saved, naming the field.
#[tokio::test]
async fn a_connector_pointing_at_the_gateway_itself_is_refused() {
    let stack = Stack::builder()
        .control_plane(|c| {
            c.upstream_guard = c
                .upstream_guard
                .clone()
                .with_own_host("mcp.example.test", 443);
        })
        .start()
        .await;
    stack.tenant("acme").await;
    for url in [
        "https://mcp.example.test/t/other/mcp",
        "http://MCP.example.test:8080/t/acme/mcp",
    ] {
        let e = stack
            .cp
            .connectors()
            .create_connector(mcp_connector("acme", "loop", url, &[]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{url}: {e:?}");
        assert_eq!(
            violated_field(&e).as_deref(),
            Some("connector.mcp.url"),
            "{e:?}"
        );
        assert!(e.message().contains("own endpoint"), "{e:?}");
    }
}

//! A client cannot grow a worker's memory by subscribing without end: a resource template
//! lets it name endless URIs, but one session holds a bounded number of subscriptions per
//! connector, and the refusal says so.

use serde_json::{Value, json};
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, legacy};

const MAX: usize = 3;

/// The JSON-RPC response to `resources/subscribe` (or `unsubscribe`) of `uri`.
async fn subscription(session: &legacy::Session, method: &str, uri: &str) -> Value {
    let r = session
        .post(json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": {"uri": uri}}))
        .await;
    switchyard_tests::modern::answer(r).await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_a_bounded_number_of_subscriptions() {
    let stack = Stack::builder()
        .worker_config(|c| c.upstream_bounds.max_subscriptions = MAX)
        .start()
        .await;
    let up = TestUpstream::start_legacy("up").await;
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let session = legacy::Session::open(&http, &endpoint, &key).await;
    let item = |i: usize| format!("test://up/items/{i}");

    for i in 0..MAX {
        let r = subscription(&session, "resources/subscribe", &item(i)).await;
        assert!(r["result"].is_object(), "{r}");
    }
    let over = subscription(&session, "resources/subscribe", &item(MAX)).await;
    assert_eq!(over["error"]["data"]["reason"], "invalid_input", "{over}");
    assert!(
        over["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("at most {MAX} subscriptions"))),
        "{over}"
    );
    assert_eq!(
        up.subscriptions().len(),
        MAX,
        "the refused one went upstream"
    );

    // Subscribing again to one it holds is fine; letting one go makes room.
    let again = subscription(&session, "resources/subscribe", &item(0)).await;
    assert!(again["result"].is_object(), "{again}");
    let gone = subscription(&session, "resources/unsubscribe", &item(0)).await;
    assert!(gone["result"].is_object(), "{gone}");
    let room = subscription(&session, "resources/subscribe", &item(MAX)).await;
    assert!(room["result"].is_object(), "{room}");

    // Another session has its own.
    let other = legacy::Session::open(&http, &endpoint, &key).await;
    let r = subscription(&other, "resources/subscribe", &item(0)).await;
    assert!(r["result"].is_object(), "{r}");
}

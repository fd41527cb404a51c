//! A tenant cannot make a worker hold upstream sessions without end by opening client
//! sessions: each legacy client session holds its own upstream session per connector, and
//! one tenant's hold a bounded number on a worker. The refusal names the bound; the
//! tenant's other sessions and other tenants carry on, and a closed session makes room.

use serde_json::json;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, legacy};

const MAX: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_client_sessions_hold_a_bounded_number_of_upstream_sessions() {
    let stack = Stack::builder()
        .worker_config(|c| c.upstream_bounds.max_sessions_per_tenant = MAX)
        .start()
        .await;
    let up = TestUpstream::start_legacy("up").await;
    let acme = stack.tenant_with_connector("acme", "a", &up.url).await;
    let globex = stack.tenant_with_connector("globex", "a", &up.url).await;
    stack.wait_serving("acme", &acme).await;
    stack.wait_serving("globex", &globex).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let echo = |s: &legacy::Session| {
        let s = s.clone();
        async move { s.call("a__echo", json!({"text": "hi"})).await }
    };

    let mut held = Vec::new();
    for _ in 0..MAX {
        let s = legacy::Session::open(&http, &endpoint, &acme).await;
        assert_eq!(echo(&s).await.text(), Some("hi"));
        held.push(s);
    }
    let over = legacy::Session::open(&http, &endpoint, &acme).await;
    let refused = echo(&over).await;
    assert_eq!(
        refused.body["result"]["_meta"]["reason"], "upstream_unavailable",
        "{refused:?}"
    );
    let text = refused.text().unwrap_or_default().to_owned();
    assert!(
        text.contains(&format!("{MAX} upstream sessions"))
            && text.contains("--max-upstream-sessions-per-tenant"),
        "{text}"
    );

    // The sessions that hold one carry on, and another tenant has its own bound.
    for s in &held {
        assert_eq!(echo(s).await.text(), Some("hi"));
    }
    let other = legacy::Session::open(&http, &stack.worker().endpoint("globex"), &globex).await;
    assert_eq!(echo(&other).await.text(), Some("hi"));

    // A closed session lets its upstream session go, which makes room.
    assert_eq!(held.remove(0).close().await, 204);
    assert_eventually!(
        echo(&over).await.text() == Some("hi"),
        std::time::Duration::from_secs(20),
        "the refused session gets an upstream session once another closed"
    );
}

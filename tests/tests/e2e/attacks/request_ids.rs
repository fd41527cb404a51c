//! An upstream a tenant points the worker at sees the ids of the calls it is sent. They
//! count on its own upstream session only: a tenant cannot learn how busy other tenants are
//! from them.

use serde_json::json;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, legacy};

#[tokio::test]
async fn call_ids_an_upstream_sees_do_not_count_other_tenants_calls() {
    let stack = Stack::start().await;
    let watcher = TestUpstream::start_legacy("watcher").await;
    let busy = TestUpstream::start_legacy("busy").await;
    let acme = stack.tenant_with_connector("acme", "a", &watcher.url).await;
    let globex = stack.tenant_with_connector("globex", "b", &busy.url).await;
    stack.wait_serving("acme", &acme).await;
    stack.wait_serving("globex", &globex).await;
    let http = reqwest::Client::new();

    let acme_session = legacy::Session::open(&http, &stack.worker().endpoint("acme"), &acme).await;
    assert!(acme_session.call("a__whoami", json!({})).await.ok());
    let globex_session =
        legacy::Session::open(&http, &stack.worker().endpoint("globex"), &globex).await;
    for _ in 0..5 {
        assert!(globex_session.call("b__whoami", json!({})).await.ok());
    }
    assert!(acme_session.call("a__whoami", json!({})).await.ok());

    let (seen, other) = (watcher.call_ids(), busy.call_ids());
    assert_eq!(other.len(), 5);
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0], other[0],
        "each upstream session counts from the same start"
    );
    assert_eq!(
        seen[1], other[1],
        "the watcher's second id moved with another tenant's calls: {seen:?} vs {other:?}"
    );
}

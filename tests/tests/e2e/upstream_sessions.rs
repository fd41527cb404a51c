//! An open client session keeps its upstream session across policy changes the upstream
//! does not see, and gets a new one, the old one ended, when it does. Requests without a
//! session reuse pooled upstream sessions however many were in flight.

use rmcp::model::CallToolRequestParams;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, mcp_connector};

const DEADLINE: Duration = Duration::from_secs(20);

/// The upstream session ids the upstream has seen requests on.
fn session_ids(up: &TestUpstream) -> BTreeSet<String> {
    up.seen_headers()
        .iter()
        .filter_map(|h| h.get("mcp-session-id")?.to_str().ok().map(str::to_owned))
        .collect()
}

fn saw_value(up: &TestUpstream, value: &str) -> bool {
    up.seen_headers()
        .last()
        .and_then(|h| h.get("x-upstream-token"))
        .is_some_and(|v| v.as_bytes() == value.as_bytes())
}

#[tokio::test]
async fn a_policy_change_the_upstream_does_not_see_keeps_its_session() {
    let stack = Stack::start().await;
    let up = TestUpstream::start_legacy("up").await;
    stack.tenant("acme").await;
    stack
        .cp
        .connectors()
        .create_connector(mcp_connector(
            "acme",
            "a",
            &up.url,
            &[("x-upstream-token", "first")],
        ))
        .await
        .unwrap();
    let key = stack.key("acme").await;
    let client = stack.client("acme", &key).await;
    let whoami = || {
        client
            .peer()
            .call_tool(CallToolRequestParams::new("a__whoami"))
    };
    whoami().await.unwrap();
    let first = session_ids(&up);

    // A new key republishes the tenant's policy, its secrets sealed afresh: the worker
    // ends no upstream session, and the call goes on on one the upstream knows.
    let second_key = stack.key("acme").await;
    stack.wait_serving("acme", &second_key).await;
    whoami().await.unwrap();
    assert_eq!(
        up.ended.load(Ordering::SeqCst),
        0,
        "an upstream session was ended"
    );
    let kept = session_ids(&up);

    // A header the upstream sees changes: a new upstream session, the old one ended.
    stack
        .cp
        .connectors()
        .update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "a".into(),
            kind: Some(update_connector_request::Kind::Mcp(McpConnector {
                url: up.url.clone(),
                headers: vec![Header {
                    name: "x-upstream-token".into(),
                    value: Some("second".into()),
                    value_set: true,
                }],
            })),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eventually!(
        whoami().await.is_ok() && saw_value(&up, "second"),
        DEADLINE,
        "calls carry the new header"
    );
    assert!(
        session_ids(&up).len() > kept.len(),
        "no new upstream session: {first:?} then {kept:?}"
    );
    assert_eventually!(
        up.ended.load(Ordering::SeqCst) >= 1,
        DEADLINE,
        "the replaced upstream session is ended"
    );
}

#[tokio::test]
async fn calls_without_a_session_reuse_every_pooled_upstream_session() {
    const IN_FLIGHT: usize = 20;
    let stack = Stack::start().await;
    let up = TestUpstream::start_legacy("up").await;
    stack
        .tenant_with(CreateTenantRequest {
            slug: "acme".into(),
            quotas: Some(Quotas {
                max_concurrent_requests: Some(64),
                requests_per_second: Some(1000),
                burst: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    stack.connector("acme", "a", &up.url).await;
    let key = stack.key("acme").await;
    stack.wait_serving("acme", &key).await;
    let endpoint = stack.worker().endpoint("acme");
    let http = reqwest::Client::new();
    // Twice, IN_FLIGHT calls held at the upstream at once: each needs its own pooled
    // upstream session, and the second time every one of them is one the first opened.
    for wave in 1..=2 {
        let calls: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                switchyard_tests::modern::call(
                    &http,
                    &endpoint,
                    &key,
                    "a__hold",
                    serde_json::json!({}),
                )
            })
            .collect();
        let answers = futures::future::join_all(calls);
        let release = async {
            assert_eventually!(
                up.holding() == IN_FLIGHT,
                DEADLINE,
                "wave {wave}: every call reached the upstream"
            );
            up.release();
        };
        let (answers, ()) = tokio::join!(answers, release);
        assert!(answers.iter().all(|a| a.ok()), "wave {wave}: {answers:?}");
        up.hold_again();
    }
    let opened = session_ids(&up);
    assert_eq!(
        opened.len(),
        IN_FLIGHT,
        "the second wave opened upstream sessions instead of reusing the pooled ones"
    );
    assert_eq!(
        up.ended.load(Ordering::SeqCst),
        0,
        "a pooled session was ended"
    );
}

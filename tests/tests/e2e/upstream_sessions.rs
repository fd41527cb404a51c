//! An open client session keeps its upstream session across policy changes the upstream
//! does not see, and gets a new one, the old one ended, when it does.

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

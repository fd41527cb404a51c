//! Losing access ends access: a revoked key's open stream is closed and its call in flight
//! is cancelled upstream and answered with why, while another key of the tenant is untouched;
//! a suspended tenant's streams and a removed connector's upstream sessions end too.

use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::modern::call;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, legacy, within};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_stream_closes_and_its_call_is_cancelled_upstream() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    let other = stack.key("acme").await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let session = legacy::Session::open(&http, &endpoint, &key).await;

    // The session's GET stream, read until it ends.
    let stream = session.stream().await;
    assert_eq!(stream.status(), 200);
    let stream_ended = tokio::spawn(async move { stream.bytes().await.is_ok() });
    // A call that waits upstream.
    let call_answer = tokio::spawn({
        let session = session.clone();
        async move {
            session
                .post(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                    "params": {"name": "a__hold", "arguments": {}}}))
                .await
                .text()
                .await
                .unwrap_or_default()
        }
    });
    assert_eventually!(up.holding() == 1, DEADLINE, "the call waits upstream");

    let key_id = switchyard_common::apikey::parse(&key)
        .unwrap()
        .0
        .to_string();
    stack
        .cp
        .keys_api()
        .revoke_api_key(RevokeApiKeyRequest {
            tenant: "acme".into(),
            id: key_id,
        })
        .await
        .unwrap();

    let answer = within(DEADLINE, "the call is answered", call_answer)
        .await
        .unwrap();
    assert!(answer.contains("credential_revoked"), "{answer}");
    within(DEADLINE, "the stream is closed", stream_ended)
        .await
        .unwrap();
    assert_eventually!(
        up.cancelled.load(Ordering::SeqCst) >= 1,
        DEADLINE,
        "the upstream call is cancelled"
    );
    // The tenant's other key goes on.
    let a = call(&http, &endpoint, &other, "a__whoami", json!({})).await;
    assert!(a.ok(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_connector_ends_its_upstream_sessions() {
    let stack = Stack::start().await;
    let kept = TestUpstream::start_legacy("kept").await;
    let removed = TestUpstream::start_legacy("removed").await;
    let key = stack.tenant_with_connector("acme", "kept", &kept.url).await;
    stack.connector("acme", "gone", &removed.url).await;
    // A client session whose upstream sessions are open on both connectors.
    let client = stack.client("acme", &key).await;
    for tool in ["kept__whoami", "gone__whoami"] {
        client
            .peer()
            .call_tool(rmcp::model::CallToolRequestParams::new(tool))
            .await
            .unwrap();
    }
    let before = removed.ended.load(Ordering::SeqCst);
    stack
        .cp
        .connectors()
        .delete_connector(DeleteConnectorRequest {
            tenant: "acme".into(),
            name: "gone".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    assert_eventually!(
        removed.ended.load(Ordering::SeqCst) > before,
        DEADLINE,
        "the removed connector's upstream session is ended"
    );
    assert_eq!(kept.ended.load(Ordering::SeqCst), 0, "the other stays");
    client
        .peer()
        .call_tool(rmcp::model::CallToolRequestParams::new("kept__whoami"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_a_tenant_closes_its_streams_and_upstream_sessions() {
    let stack = Stack::start().await;
    let up = TestUpstream::start_legacy("up").await;
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let session = legacy::Session::open(&http, &endpoint, &key).await;
    // A call opens the session's upstream session.
    let r = session
        .post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "a__whoami", "arguments": {}}}))
        .await;
    assert_eq!(r.status(), 200);
    let stream = session.stream().await;
    assert_eq!(stream.status(), 200);
    let stream_ended = tokio::spawn(async move { stream.bytes().await.is_ok() });
    let before = up.ended.load(Ordering::SeqCst);

    stack
        .cp
        .tenants()
        .suspend_tenant(SuspendTenantRequest {
            slug: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    within(DEADLINE, "the stream is closed", stream_ended)
        .await
        .unwrap();
    assert_eventually!(
        up.ended.load(Ordering::SeqCst) > before,
        DEADLINE,
        "the tenant's upstream session is ended"
    );
}

//! Losing access ends access: a revoked key's open stream is closed and its call in flight
//! is cancelled upstream and answered with why, while another key of the tenant is untouched;
//! so are those of every key of a tenant that turns its API keys off; a suspended tenant's
//! streams and a removed connector's upstream sessions end too.

use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::modern::call;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, legacy, within};

const DEADLINE: Duration = Duration::from_secs(20);

/// A session of `key` with its GET stream open and a call waiting at `up`: whether the
/// stream ended cleanly, and the call's answer, once each comes.
struct Held {
    stream_ended: tokio::task::JoinHandle<bool>,
    answer: tokio::task::JoinHandle<String>,
}

async fn hold_a_call(endpoint: &str, key: &str, up: &TestUpstream) -> Held {
    let session = legacy::Session::open(&reqwest::Client::new(), endpoint, key).await;
    let stream = session.stream().await;
    assert_eq!(stream.status(), 200);
    let stream_ended = tokio::spawn(async move { stream.bytes().await.is_ok() });
    let answer = tokio::spawn(async move {
        session
            .post(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                "params": {"name": "a__hold", "arguments": {}}}))
            .await
            .text()
            .await
            .unwrap_or_default()
    });
    assert_eventually!(up.holding() == 1, DEADLINE, "the call waits upstream");
    Held {
        stream_ended,
        answer,
    }
}

impl Held {
    /// Waits for the call to be answered with `reason` and for the stream to close.
    async fn ends_with(self, reason: &str) {
        let answer = within(DEADLINE, "the call is answered", self.answer)
            .await
            .unwrap();
        assert!(answer.contains(reason), "{answer}");
        within(DEADLINE, "the stream is closed", self.stream_ended)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_stream_closes_and_its_call_is_cancelled_upstream() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    let other = stack.key("acme").await;
    stack.wait_serving("acme", &key).await;
    let endpoint = stack.worker().endpoint("acme");
    let held = hold_a_call(&endpoint, &key, &up).await;

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

    held.ends_with("credential_revoked").await;
    assert_eventually!(
        up.cancelled.load(Ordering::SeqCst) >= 1,
        DEADLINE,
        "the upstream call is cancelled"
    );
    // The tenant's other key goes on.
    let a = call(
        &reqwest::Client::new(),
        &endpoint,
        &other,
        "a__whoami",
        json!({}),
    )
    .await;
    assert!(a.ok(), "{a:?}");
}

/// A tenant that turns its API keys off (say, on suspecting one leaked) stops every use of
/// them at once: a held call and an open stream included. New requests get a bearer
/// challenge, the refusals are on record under the key that tried, and turned back on the
/// same keys work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_api_keys_off_stops_every_use_of_them_at_once() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let key_id = switchyard_common::apikey::parse(&key).unwrap().0;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let held = hold_a_call(&endpoint, &key, &up).await;
    let keys_off = |disabled| UpdateTenantRequest {
        slug: "acme".into(),
        identity: Some(IdentitySettings {
            api_keys_disabled: disabled,
            ..Default::default()
        }),
        ..Default::default()
    };
    stack
        .cp
        .tenants()
        .update_tenant(keys_off(true))
        .await
        .unwrap();

    held.ends_with("api_keys_disabled").await;
    assert_eventually!(
        up.cancelled.load(Ordering::SeqCst) >= 1,
        DEADLINE,
        "the upstream call is cancelled"
    );
    let refused = http
        .post(&endpoint)
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(refused.text().await.unwrap().contains("api_keys_disabled"));
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "auth_failure")
            .await
            .iter()
            .any(|t| t.action == "api_keys_disabled" && t.actor == format!("key:{key_id}")),
        DEADLINE,
        "the refusal is on record under key {key_id}"
    );

    stack
        .cp
        .tenants()
        .update_tenant(keys_off(false))
        .await
        .unwrap();
    assert_eventually!(
        call(&http, &endpoint, &key, "a__whoami", json!({}))
            .await
            .ok(),
        DEADLINE,
        "the key is served again"
    );
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

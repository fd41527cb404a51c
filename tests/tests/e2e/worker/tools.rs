//! Tools through the worker: aggregated and prefixed across connectors, called with each
//! connector's credentials, and limited to read-only ones for viewers.

use super::{DEADLINE, add_connector, call, new_key, text_of, tool_names};
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, mcp_connector};

#[tokio::test]
async fn tenant_tools_are_aggregated_and_called_through_the_worker() {
    let env = Stack::start().await;
    let a = TestUpstream::start("A").await;
    let b = TestUpstream::start("B").await;
    env.cp.create_tenant("acme").await;
    let mut req = mcp_connector(
        "acme",
        "alpha",
        &a.url,
        &[("authorization", "Bearer upstream-secret-A")],
    );
    req.connector.as_mut().unwrap().deny_tools = vec!["delete_*".into()];
    env.cp.connectors().create_connector(req).await.unwrap();
    add_connector(
        &env,
        "acme",
        "beta",
        &b,
        Some(""),
        &[("x-api-key", "upstream-secret-B")],
    )
    .await;
    let key = new_key(&env, "acme", ApiKeyRole::Editor).await;

    let client = env.client("acme", &key).await;
    let want = [
        "add",
        "alpha__add",
        "alpha__announce",
        "alpha__ask_name",
        "alpha__echo",
        "alpha__hold",
        "alpha__progress",
        "alpha__record",
        "alpha__record_idempotent",
        "alpha__regional",
        "alpha__sample",
        "alpha__sleep_ms",
        "alpha__slow",
        "alpha__whoami",
        "announce",
        "ask_name",
        "delete_everything",
        "echo",
        "hold",
        "progress",
        "record",
        "record_idempotent",
        "regional",
        "sample",
        "sleep_ms",
        "slow",
        "whoami",
    ];
    assert_eventually!(
        tool_names(&client).await == want,
        DEADLINE,
        "tools of both connectors listed: {:?}",
        tool_names(&client).await
    );

    assert_eq!(
        text_of(&call(&client, "alpha__whoami", serde_json::json!({})).await),
        "upstream A"
    );
    assert_eq!(
        text_of(&call(&client, "whoami", serde_json::json!({})).await),
        "upstream B"
    );
    assert_eq!(
        text_of(&call(&client, "alpha__add", serde_json::json!({"a": 2, "b": 3})).await),
        "5"
    );
    assert_eq!(
        text_of(&call(&client, "echo", serde_json::json!({"text": "hi"})).await),
        "hi"
    );
    let denied = client
        .peer()
        .call_tool(CallToolRequestParams::new("alpha__delete_everything"))
        .await;
    assert!(
        denied.is_err(),
        "a denied tool cannot be called: {denied:?}"
    );

    // Prompts are prefixed like tools; resources keep their URIs.
    let prompts: Vec<String> = client
        .peer()
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(
        prompts.contains(&"alpha__greet".to_owned()) && prompts.contains(&"greet".to_owned()),
        "{prompts:?}"
    );
    let prompt = client
        .peer()
        .get_prompt(GetPromptRequestParams::new("alpha__greet"))
        .await
        .unwrap();
    assert!(format!("{prompt:?}").contains("hello from A"));
    let resource = client
        .peer()
        .read_resource(ReadResourceRequestParams::new("test://B/info"))
        .await
        .unwrap();
    assert!(format!("{resource:?}").contains("info of B"));

    // Upstreams got their connector's secret header, never the client's key.
    let (_, client_secret) = switchyard_common::apikey::parse(&key).unwrap();
    for (upstream, header, value) in [
        (&a, "authorization", "Bearer upstream-secret-A"),
        (&b, "x-api-key", "upstream-secret-B"),
    ] {
        let seen = upstream.seen_headers();
        assert!(!seen.is_empty());
        for h in &seen {
            assert_eq!(h.get(header).and_then(|v| v.to_str().ok()), Some(value));
            assert!(
                !format!("{h:?}").contains(client_secret),
                "client key passed upstream"
            );
        }
    }
    // Workers report each call; the control plane fills the key's last-used time.
    let id = switchyard_common::apikey::parse(&key)
        .unwrap()
        .0
        .to_string();
    assert_eventually!(
        env.cp
            .keys_api()
            .get_api_key(GetApiKeyRequest {
                tenant: "acme".into(),
                id: id.clone()
            })
            .await
            .unwrap()
            .into_inner()
            .last_used_time
            .is_some(),
        DEADLINE,
        "last-used time filled from usage reports"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn viewers_call_only_read_only_tools() {
    let env = Stack::start().await;
    let up = TestUpstream::start("A").await;
    env.cp.create_tenant("acme").await;
    add_connector(&env, "acme", "alpha", &up, None, &[]).await;
    let key = new_key(&env, "acme", ApiKeyRole::Viewer).await;
    let client = env.client("acme", &key).await;
    assert_eq!(
        text_of(&call(&client, "alpha__whoami", serde_json::json!({})).await),
        "upstream A"
    );
    let before = up.calls.load(std::sync::atomic::Ordering::SeqCst);
    let refused = call(&client, "alpha__echo", serde_json::json!({"text": "x"})).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text_of(&refused).contains("viewer"),
        "{}",
        text_of(&refused)
    );
    assert_eq!(
        up.calls.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "the upstream was not called"
    );
}

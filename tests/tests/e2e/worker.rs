//! The worker end to end: real PostgreSQL, a real NATS server, the control plane, a worker,
//! rmcp clients and rmcp upstream servers. Tenants onboarded through gRPC reach their
//! connectors' tools through the worker; credentials, suspensions, revocations and removed
//! connectors are enforced.

use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, eventually, mcp_client, mcp_connector};

const DEADLINE: Duration = Duration::from_secs(20);

async fn new_key(stack: &Stack, tenant: &str, role: ApiKeyRole) -> String {
    stack
        .cp
        .keys_api()
        .create_api_key(CreateApiKeyRequest {
            tenant: tenant.into(),
            role: role as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret
}

async fn add_connector(
    stack: &Stack,
    tenant: &str,
    name: &str,
    upstream: &TestUpstream,
    prefix: Option<&str>,
    headers: &[(&str, &str)],
) {
    let mut req = mcp_connector(tenant, name, &upstream.url, headers);
    req.connector.as_mut().unwrap().prefix = prefix.map(Into::into);
    stack.cp.connectors().create_connector(req).await.unwrap();
}

/// POSTs a JSON-RPC message to `tenant`'s endpoint with the given bearer token.
async fn post(
    stack: &Stack,
    tenant: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    post_to(&stack.worker().endpoint(tenant), token, body).await
}

/// POSTs a JSON-RPC message to an MCP endpoint with the given bearer token.
async fn post_to(
    endpoint: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(endpoint)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn initialize() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    })
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    name: &str,
    args: serde_json::Value,
) -> rmcp::model::CallToolResult {
    let mut params = CallToolRequestParams::new(name.to_owned());
    if let serde_json::Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    client.peer().call_tool(params).await.unwrap()
}

async fn tool_names(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>) -> Vec<String> {
    let mut names: Vec<String> = client
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

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
        "alpha__ask_name",
        "alpha__echo",
        "alpha__hold",
        "alpha__progress",
        "alpha__record",
        "alpha__record_idempotent",
        "alpha__sample",
        "alpha__sleep_ms",
        "alpha__slow",
        "alpha__whoami",
        "ask_name",
        "delete_everything",
        "echo",
        "hold",
        "progress",
        "record",
        "record_idempotent",
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
async fn credentials_are_checked_and_suspension_is_explained() {
    let env = Stack::start().await;
    let up = TestUpstream::start("A").await;
    env.cp.create_tenant("acme").await;
    env.cp.create_tenant("other").await;
    add_connector(&env, "acme", "alpha", &up, None, &[]).await;
    let acme_key = new_key(&env, "acme", ApiKeyRole::Editor).await;
    let other_key = new_key(&env, "other", ApiKeyRole::Editor).await;
    assert_eventually!(
        post(&env, "acme", Some(&acme_key), initialize())
            .await
            .status()
            == 200,
        DEADLINE,
        "the key works"
    );

    let missing = post(&env, "acme", None, initialize()).await;
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().get("www-authenticate").is_some());
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32001);

    for (tenant, token) in [
        (
            "acme",
            "sy_abcdefghijkl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("acme", "not-a-key".to_owned()),
        ("acme", format!("{acme_key}x")),
        ("other", acme_key.clone()),
        ("nobody", acme_key.clone()),
        ("acme", other_key.clone()),
    ] {
        let r = post(&env, tenant, Some(&token), initialize()).await;
        assert_eq!(r.status(), 401, "{tenant} with {token:.12}...");
        let challenge = r
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }

    env.cp
        .tenants()
        .suspend_tenant(SuspendTenantRequest {
            slug: "acme".into(),
            reason: "invoice overdue".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eventually!(
        post(&env, "acme", Some(&acme_key), initialize())
            .await
            .status()
            == 403,
        DEADLINE,
        "suspension enforced"
    );
    let body: serde_json::Value = post(&env, "acme", Some(&acme_key), initialize())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invoice overdue"),
        "{body}"
    );
    // A wrong key still gets 401, not a hint that the tenant exists and is suspended.
    assert_eq!(
        post(&env, "acme", Some(&other_key), initialize())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn revocation_removal_and_suspension_reach_both_workers() {
    let env = Stack::start().await;
    let second = env.start_worker(|_| {}).await;
    let up = TestUpstream::start("A").await;
    env.cp.create_tenant("acme").await;
    add_connector(&env, "acme", "alpha", &up, None, &[]).await;
    add_connector(&env, "acme", "beta", &up, None, &[]).await;
    let key = new_key(&env, "acme", ApiKeyRole::Editor).await;
    let endpoints = [env.worker().endpoint("acme"), second.endpoint("acme")];
    let mut clients = Vec::new();
    for endpoint in &endpoints {
        let client = eventually(DEADLINE, &format!("a session at {endpoint}"), || {
            mcp_client(endpoint, &key)
        })
        .await;
        assert_eventually!(
            tool_names(&client).await.contains(&"beta__echo".to_owned()),
            DEADLINE,
            "beta listed at {endpoint}"
        );
        clients.push(client);
    }

    // Removing a connector takes its tools away, in the sessions already open.
    env.cp
        .connectors()
        .delete_connector(DeleteConnectorRequest {
            tenant: "acme".into(),
            name: "beta".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    for (client, endpoint) in clients.iter().zip(&endpoints) {
        assert_eventually!(
            !tool_names(client).await.contains(&"beta__echo".to_owned()),
            DEADLINE,
            "beta removed at {endpoint}"
        );
        assert!(
            client
                .peer()
                .call_tool(CallToolRequestParams::new("beta__echo"))
                .await
                .is_err()
        );
        assert_eq!(
            text_of(&call(client, "alpha__whoami", serde_json::json!({})).await),
            "upstream A"
        );
    }

    // Revoking the key shuts it out.
    let id = switchyard_common::apikey::parse(&key)
        .unwrap()
        .0
        .to_string();
    env.cp
        .keys_api()
        .revoke_api_key(RevokeApiKeyRequest {
            tenant: "acme".into(),
            id,
        })
        .await
        .unwrap();
    for endpoint in &endpoints {
        assert_eventually!(
            post_to(endpoint, Some(&key), initialize()).await.status() == 401,
            DEADLINE,
            "revocation enforced by {endpoint}"
        );
    }

    // Suspending the tenant shuts out its other keys.
    let other = new_key(&env, "acme", ApiKeyRole::Editor).await;
    for endpoint in &endpoints {
        assert_eventually!(
            post_to(endpoint, Some(&other), initialize()).await.status() == 200,
            DEADLINE,
            "new key works at {endpoint}"
        );
    }
    env.cp
        .tenants()
        .suspend_tenant(SuspendTenantRequest {
            slug: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for endpoint in &endpoints {
        assert_eventually!(
            post_to(endpoint, Some(&other), initialize()).await.status() == 403,
            DEADLINE,
            "suspension enforced by {endpoint}"
        );
    }
}

#[tokio::test]
async fn an_upstream_that_is_down_fails_only_its_own_tools() {
    let env = Stack::start().await;
    let a = TestUpstream::start("A").await;
    let b = TestUpstream::start("B").await;
    env.cp.create_tenant("acme").await;
    add_connector(&env, "acme", "alpha", &a, None, &[]).await;
    add_connector(&env, "acme", "beta", &b, None, &[]).await;
    let key = new_key(&env, "acme", ApiKeyRole::Editor).await;
    let client = env.client("acme", &key).await;
    assert_eventually!(
        tool_names(&client)
            .await
            .contains(&"beta__whoami".to_owned()),
        DEADLINE,
        "beta listed"
    );
    drop(b);

    // Its tools fail with a result that names the connector; the other connector's work.
    let names_beta = |r: &rmcp::model::CallToolResult| {
        r.is_error == Some(true)
            && text_of(r).contains("beta connector")
            && r.meta.as_ref().is_some_and(|m| m.0["connector"] == "beta")
    };
    let failed = call(&client, "beta__whoami", serde_json::json!({})).await;
    assert!(names_beta(&failed), "{failed:?}");
    assert_eq!(
        text_of(&call(&client, "alpha__whoami", serde_json::json!({})).await),
        "upstream A"
    );
    // Listed afresh, only the live connector's tools appear, and a call to the other's
    // still says which connector is down rather than that the tool does not exist.
    let fresh = env.client("acme", &key).await;
    assert_eventually!(
        !tool_names(&fresh)
            .await
            .contains(&"beta__whoami".to_owned()),
        DEADLINE,
        "beta's tools leave the listing once it is listed afresh"
    );
    let listed = tool_names(&fresh).await;
    assert!(listed.contains(&"alpha__whoami".to_owned()), "{listed:?}");
    let failed = call(&fresh, "beta__whoami", serde_json::json!({})).await;
    assert!(names_beta(&failed), "{failed:?}");
    let meta = failed.meta.unwrap();
    assert_eq!(meta.0["reason"], "upstream_unavailable");
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

#[tokio::test]
async fn workers_wait_for_policies_and_keep_serving_without_nats() {
    let env = Stack::start().await;
    let up = TestUpstream::start("A").await;
    env.cp.create_tenant("acme").await;
    add_connector(&env, "acme", "alpha", &up, None, &[]).await;
    let key = new_key(&env, "acme", ApiKeyRole::Editor).await;
    let client = env.client("acme", &key).await;

    // NATS goes away: the worker keeps serving its last policies and says how old they are.
    env.nats().stop();
    // Past the session record's recheck interval, the open session still works.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        text_of(&call(&client, "alpha__whoami", serde_json::json!({})).await),
        "upstream A"
    );
    let http = reqwest::Client::new();
    let metrics_url = env.worker().metrics_url("/metrics");
    assert_eventually!(
        {
            let text = http
                .get(&metrics_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines().any(|l| {
                l.starts_with("switchyard_worker_policy_age_seconds") && !l.ends_with(" 0.0")
            }) && text.contains("switchyard_worker_policy_bus_connected 0")
        },
        DEADLINE,
        "policy age reported"
    );

    // A worker started while NATS is down is not ready and serves nobody.
    let late = env.start_worker(|_| {}).await;
    let ready = http.get(late.metrics_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let r = post_to(&late.endpoint("acme"), Some(&key), initialize()).await;
    assert_eq!(
        r.status(),
        503,
        "no policies yet: unavailable, not unauthorized"
    );
    assert!(r.headers().contains_key("retry-after"));

    // Changes made meanwhile arrive once NATS is back.
    env.cp
        .tenants()
        .suspend_tenant(SuspendTenantRequest {
            slug: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    env.nats().restart().await;
    assert_eventually!(
        http.get(late.metrics_url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200),
        Duration::from_secs(60),
        "late worker ready after NATS returns"
    );
    for w in [env.worker(), &late] {
        let endpoint = w.endpoint("acme");
        assert_eventually!(
            post_to(&endpoint, Some(&key), initialize()).await.status() == 403,
            Duration::from_secs(60),
            "suspension made during the outage enforced by {endpoint}"
        );
    }
}

#[tokio::test]
async fn timeouts_and_client_cancellation_reach_the_upstream() {
    let env = Stack::start().await;
    let up = TestUpstream::start("A").await;
    env.cp.create_tenant("acme").await;
    let mut req = mcp_connector("acme", "alpha", &up.url, &[]);
    req.connector.as_mut().unwrap().timeout_ms = 500;
    env.cp.connectors().create_connector(req).await.unwrap();
    let key = new_key(&env, "acme", ApiKeyRole::Editor).await;
    let client = env.client("acme", &key).await;

    // The connector's timeout ends the call with a result naming the connector, and the
    // upstream is told to stop.
    let timed_out = call(&client, "alpha__slow", serde_json::json!({})).await;
    assert_eq!(timed_out.is_error, Some(true));
    let said = text_of(&timed_out);
    assert!(
        said.contains("alpha") && said.contains("within 500 ms"),
        "{said}"
    );
    assert_eventually!(
        up.cancelled.load(std::sync::atomic::Ordering::SeqCst) == 1,
        DEADLINE,
        "the upstream saw the cancellation after the timeout"
    );

    // A client that gives up cancels its request; the cancellation reaches the upstream.
    let calls_before = up.calls.load(std::sync::atomic::Ordering::SeqCst);
    let handle = client
        .peer()
        .send_cancellable_request(
            rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
                CallToolRequestParams::new("alpha__slow"),
            )),
            rmcp::service::PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    assert_eventually!(
        up.calls.load(std::sync::atomic::Ordering::SeqCst) == calls_before + 1,
        DEADLINE,
        "the call reached the upstream"
    );
    handle
        .cancel(Some("user pressed stop".into()))
        .await
        .unwrap();
    assert_eventually!(
        up.cancelled.load(std::sync::atomic::Ordering::SeqCst) == 2,
        DEADLINE,
        "the client's cancellation reached the upstream"
    );
}

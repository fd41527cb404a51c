//! Who reaches a tenant's tools: credentials checked, suspensions explained, and
//! revocations, removed connectors and suspensions enforced by every worker.

use super::{
    DEADLINE, add_connector, call, initialize, new_key, post, post_to, text_of, tool_names,
};
use rmcp::model::CallToolRequestParams;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, eventually, mcp_client};

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

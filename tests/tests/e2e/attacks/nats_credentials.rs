//! A dedicated worker's NATS credentials reach its own tenant's keys alone. With NATS in
//! operator mode, the control plane issues each isolated tenant's pool a user limited to
//! that tenant's policy, sessions, pool heartbeats and report subjects: the worker serves
//! its tenant on them (sessions, calls, usage, heartbeats), and the same credentials
//! cannot read or forge anything of another tenant.

use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_tests::admin as pb;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, client_of, legacy, modern};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_workers_credentials_reach_its_tenants_keys_alone() {
    let stack = Stack::builder().nats_accounts().start().await;
    let up = TestUpstream::start("up").await;
    let acme = stack.tenant_with_connector("acme", "a", &up.url).await;
    let globex = stack.tenant_with_connector("globex", "a", &up.url).await;
    stack.wait_serving("globex", &globex).await;

    // Served by a dedicated worker on its limited credentials: policy, sessions, usage.
    let dedicated = stack
        .start_worker(|c| c.only_tenant = Some("acme".into()))
        .await;
    client_of(&dedicated, "acme", &acme).await;
    let http = reqwest::Client::new();
    let endpoint = dedicated.endpoint("acme");
    let session = legacy::Session::open(&http, &endpoint, &acme).await;
    assert_eq!(
        session.call("a__echo", json!({"text": "hi"})).await.text(),
        Some("hi")
    );
    let call = modern::call(&http, &endpoint, &acme, "a__echo", json!({"text": "hi"})).await;
    assert_eq!(call.text(), Some("hi"));
    assert_eventually!(
        stack
            .cp
            .tenants()
            .get_tenant_usage(pb::GetTenantUsageRequest {
                slug: "acme".into()
            })
            .await
            .is_ok_and(|u| u.into_inner().tool_calls >= 2),
        DEADLINE,
        "the dedicated worker's usage is counted"
    );
    assert_eventually!(
        stack
            .cp
            .fleet()
            .list_workers(pb::ListWorkersRequest::default())
            .await
            .is_ok_and(|l| l.into_inner().workers.len() == 2),
        DEADLINE,
        "the dedicated worker's heartbeat is seen beside the shared one's"
    );

    // Its tenant's clients sign in with the dedicated worker's own authorization server.
    let access = sign_in_at(&dedicated.endpoint("acme"), &acme).await;
    let call = modern::call(&http, &endpoint, &access, "a__echo", json!({"text": "t"})).await;
    assert_eq!(call.text(), Some("t"), "{call:?}");

    // The same credentials, used directly.
    let nats = stack.nats();
    let creds = nats
        .accounts
        .as_ref()
        .unwrap()
        .signer()
        .dedicated_worker_creds("acme")
        .unwrap();
    let refusals = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = nats
        .client_seeing_refusals(
            &creds,
            Some(switchyard_bus::inbox_prefix("acme")),
            refusals.clone(),
        )
        .await;
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client.clone());
    let policy = js
        .get_key_value(switchyard_bus::POLICY_BUCKET)
        .await
        .unwrap();
    assert!(
        policy.entry("acme").await.unwrap().is_some(),
        "its own policy"
    );
    assert!(
        policy.entry("globex").await.is_err(),
        "another's policy was read"
    );
    assert!(
        policy.watch_with_history(">").await.is_err(),
        "every policy was watched"
    );
    let sessions = js
        .get_key_value(switchyard_bus::SESSION_BUCKET)
        .await
        .unwrap();
    assert!(
        sessions
            .put("globex.s1.owner", "forged".into())
            .await
            .is_err(),
        "another's session was forged"
    );
    assert!(sessions.entry("globex.s1.owner").await.is_err());
    let grants = js
        .get_key_value(switchyard_bus::grants::GRANTS_BUCKET)
        .await
        .unwrap();
    assert!(
        grants
            .put("globex.grant.g1", "forged".into())
            .await
            .is_err(),
        "another's grant was forged"
    );
    assert!(grants.entry("globex.grant.g1").await.is_err());
    let keys = js
        .get_key_value(switchyard_bus::grants::KEYS_BUCKET)
        .await
        .unwrap();
    assert!(
        keys.entry("globex.signing").await.is_err(),
        "another's signing keys were read"
    );
    let forged = async {
        js.publish("switchyard.usage.globex", "{}".into())
            .await?
            .await
    }
    .await;
    assert!(forged.is_err(), "usage was forged for another tenant");
    let violations = |subject: &str| {
        refusals
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("Permissions Violation") && r.contains(subject))
    };
    assert_eventually!(
        violations("$KV.switchyard-sessions.globex.s1.owner")
            && violations("switchyard.usage.globex")
            && violations("$KV.switchyard-policy.globex"),
        DEADLINE,
        "the server refused each for want of permission: {:?}",
        refusals.lock().unwrap()
    );
    // Another tenant's replies cannot be listened to either.
    let _sub = client.subscribe("_INBOX.>").await.unwrap();
    assert_eventually!(
        violations("Subscription to \"_INBOX.>\""),
        DEADLINE,
        "subscribing to every inbox is refused: {:?}",
        refusals.lock().unwrap()
    );
    // Globex, on the shared workers, noticed nothing.
    let other = modern::call(
        &http,
        &stack.worker().endpoint("globex"),
        &globex,
        "a__echo",
        json!({"text": "ok"}),
    )
    .await;
    assert_eq!(other.text(), Some("ok"));
}

/// An access token of `endpoint`'s tenant, signed in on its consent page with `key`.
async fn sign_in_at(endpoint: &str, key: &str) -> String {
    use switchyard_tests::oauth::{ClientDoc, Page, authorize_url, browser, param, pkce, redeem};
    let issuer = endpoint.trim_end_matches("/mcp");
    let client = ClientDoc::serve("Agent", None).await;
    let (verifier, challenge) = pkce();
    let url = authorize_url(issuer, &client, &challenge, "s");
    let browser = browser();
    let page = Page::open(&browser, &url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let answer = page.submit(&browser, &url, key, "allow", None).await;
    let code = param(answer.headers()["location"].to_str().unwrap(), "code").unwrap();
    let (status, tokens) = redeem(issuer, &client, &client.id, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

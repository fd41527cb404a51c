//! Per-connector scopes: a client that asks for `connector:NAME` lists and calls that
//! connector's tools only; the tenant's other tools are not listed, and calling one is
//! refused with `permission_denied`, on the audit trail. A malformed connector scope is
//! sent back to the client as `invalid_scope`. (Resources, templates and prompts go
//! through the same listing filter and route check; this test drives tools.)

use std::time::Duration;
use switchyard_tests::oauth::{ClientDoc, Page, acme, authorize_url, browser, param, pkce, redeem};
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{assert_eventually, modern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_one_connector_sees_and_calls_that_connector_only() {
    let (stack, _up, key) = acme().await;
    let two = TestUpstream::start("two").await;
    stack.connector("acme", "two", &two.url).await;
    let endpoint = stack.worker().endpoint("acme");
    let http = reqwest::Client::new();
    assert_eventually!(
        modern::call(
            &http,
            &endpoint,
            &key,
            "two__echo",
            serde_json::json!({"text": "k"})
        )
        .await
        .ok(),
        Duration::from_secs(20),
        "the second connector serves"
    );
    let issuer = endpoint.trim_end_matches("/mcp").to_owned();
    let client = ClientDoc::serve("Narrow", None).await;
    let (verifier, challenge) = pkce();
    let browser = browser();
    let url = authorize_url(&issuer, &client, &challenge, "s") + "&scope=connector%3Aup";
    let page = Page::open(&browser, &url).await;
    assert!(
        page.body.contains("only through connector up"),
        "{}",
        page.body
    );
    let answer = page.submit(&browser, &url, &key, "allow", None).await;
    let code = param(answer.headers()["location"].to_str().unwrap(), "code").unwrap();
    let (status, tokens) = redeem(&issuer, &client, &client.id, &code, &verifier).await;
    assert_eq!(
        (status, tokens["scope"].as_str()),
        (200, Some("tools:read tools:write connector:up"))
    );
    let access = tokens["access_token"].as_str().unwrap();

    let listed = modern::list(&http, &endpoint, access).await;
    let names: Vec<&str> = listed.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(!names.is_empty(), "{listed:?}");
    assert!(names.iter().all(|n| n.starts_with("up__")), "{names:?}");
    let text = serde_json::json!({"text": "x"});
    let mine = modern::call(&http, &endpoint, access, "up__echo", text.clone()).await;
    assert!(
        mine.ok() && mine.body["result"]["isError"] != true,
        "{mine:?}"
    );
    let other = modern::call(&http, &endpoint, access, "two__echo", text).await;
    assert_eq!(other.body["result"]["isError"], true, "{other:?}");
    assert_eq!(
        other.body["result"]["_meta"]["reason"], "permission_denied",
        "{other:?}"
    );
    // The key itself still reaches both.
    let listed = modern::list(&http, &endpoint, &key).await;
    let all = listed.body["result"]["tools"].as_array().unwrap();
    assert!(
        all.iter()
            .any(|t| t["name"].as_str().is_some_and(|n| n.starts_with("two__")))
    );
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "refusal")
            .await
            .iter()
            .any(|r| r.object.contains("two__echo") && r.action == "permission_denied"),
        Duration::from_secs(20),
        "the refusal is on record"
    );

    // Nor does it learn the state of a connector it may not use: a connector that is down
    // is refused to it as any other, while the key hears that it is down.
    stack
        .connector("acme", "gone", "http://127.0.0.1:9/mcp")
        .await;
    let text = serde_json::json!({"text": "x"});
    assert_eventually!(
        modern::call(&http, &endpoint, &key, "gone__echo", text.clone())
            .await
            .body["result"]["_meta"]["reason"]
            == "upstream_unavailable",
        Duration::from_secs(20),
        "the key hears that the connector is down"
    );
    let hidden = modern::call(&http, &endpoint, access, "gone__echo", text).await;
    assert_eq!(
        hidden.body["result"]["_meta"]["reason"], "permission_denied",
        "{hidden:?}"
    );

    // A connector scope that names no possible connector is refused to the client.
    let bad = authorize_url(&issuer, &client, &challenge, "s") + "&scope=connector%3ABad_Name";
    let answer = browser.get(&bad).send().await.unwrap();
    let location = answer.headers()["location"].to_str().unwrap();
    assert_eq!(param(location, "error").as_deref(), Some("invalid_scope"));
}

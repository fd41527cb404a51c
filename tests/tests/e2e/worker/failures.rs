//! When things go wrong: an upstream down, NATS gone, a call past its connector's timeout
//! and a client that gives up.

use super::{DEADLINE, add_connector, call, initialize, new_key, post_to, text_of, tool_names};
use rmcp::model::CallToolRequestParams;
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, mcp_connector};

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

//! One tenant cannot take what the worker owes the others: listings against a hanging
//! upstream fill only the tenant's own places, a client that goes away keeps its places
//! while its call goes on upstream, and concurrent handshakes cannot open more sessions
//! than the cap.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::modern::{call, list};
use switchyard_tests::upstream::{Faults, TestUpstream};
use switchyard_tests::{Stack, assert_eventually, mcp_connector};

const DEADLINE: Duration = Duration::from_secs(30);

fn quotas(concurrent: u32, sessions: u32, others: u32) -> Option<Quotas> {
    Some(Quotas {
        requests_per_second: Some(10_000),
        burst: Some(10_000),
        max_concurrent_requests: Some(concurrent),
        max_sessions: Some(sessions),
        max_concurrent_other_requests: Some(others),
        ..Default::default()
    })
}

/// A tenant `slug` with `quotas` whose connector `a` is `upstream`; returns a key.
async fn tenant(
    stack: &Stack,
    slug: &str,
    quotas: Option<Quotas>,
    upstream: &TestUpstream,
) -> String {
    stack
        .tenant_with(CreateTenantRequest {
            slug: slug.into(),
            quotas,
            ..Default::default()
        })
        .await;
    stack
        .cp
        .connectors()
        .create_connector(mcp_connector(slug, "a", &upstream.url, &[]))
        .await
        .unwrap();
    stack.key(slug).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_flood_against_a_hanging_upstream_spares_other_tenants() {
    let stack = Stack::builder()
        .worker_config(|c| c.max_in_flight = 30)
        .start()
        .await;
    let stuck = TestUpstream::start("stuck").await;
    let fine = TestUpstream::start("fine").await;
    let flood_key = tenant(&stack, "flood", quotas(100, 100, 10), &stuck).await;
    let calm_key = tenant(&stack, "calm", quotas(100, 100, 10), &fine).await;
    stack.wait_serving("flood", &flood_key).await;
    stack.wait_serving("calm", &calm_key).await;
    stuck.set_faults(Faults {
        hang_listings: true,
        ..Default::default()
    });
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("flood");

    // Fifty clients list again and again; the upstream never answers a listing.
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let flood: Vec<_> = (0..50)
        .map(|_| {
            let (http, endpoint, key) = (http.clone(), endpoint.clone(), flood_key.clone());
            let (refused, stop) = (refused.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let a = list(&http, &endpoint, &key).await;
                    if a.body["error"]["data"]["reason"] == "other_requests_limited" {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    // Beyond its ten places the flood is refused.
    assert_eventually!(
        refused.load(Ordering::SeqCst) >= 40,
        DEADLINE,
        "the flood beyond the tenant's places is refused"
    );
    // Meanwhile the other tenant's calls all succeed.
    let calm = stack.worker().endpoint("calm");
    let answers = futures::future::join_all(
        (0..15).map(|_| call(&http, &calm, &calm_key, "a__whoami", json!({}))),
    )
    .await;
    let failed: Vec<_> = answers.iter().filter(|a| !a.ok()).collect();
    assert!(
        failed.is_empty(),
        "{} of 15 failed: {failed:?}",
        failed.len()
    );
    stop.cancel();
    for f in flood {
        f.abort();
    }
}

/// Opens a 2025-06-18 session of `key` at `endpoint`: its id, or the refusal's status.
async fn open_session(http: &reqwest::Client, endpoint: &str, key: &str) -> Result<String, u16> {
    let r = http
        .post(endpoint)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "attack", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    match r.headers().get("mcp-session-id") {
        Some(id) if r.status() == 200 => Ok(id.to_str().unwrap().to_owned()),
        _ => Err(r.status().as_u16()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_handshakes_open_no_more_sessions_than_the_cap() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = tenant(&stack, "acme", quotas(100, 3, 100), &up).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    // wait_serving's own sessions are closed; the cap is free again once they are.
    assert_eventually!(
        open_session(&http, &endpoint, &key).await.is_ok(),
        DEADLINE,
        "a session opens"
    );
    let opened = 1;
    let results =
        futures::future::join_all((0..10).map(|_| open_session(&http, &endpoint, &key))).await;
    let more = results.iter().filter(|r| r.is_ok()).count();
    // A session of wait_serving's may still hold a place (closing one frees its place a
    // moment later), so the ten may get one place fewer, never one more.
    assert!(opened + more <= 3, "past the cap: {results:?}");
    assert!(more >= 1, "the cap had room: {results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| *r == Err(429))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_go_away_keep_their_places_while_their_calls_go_on() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = tenant(&stack, "acme", quotas(2, 100, 100), &up).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let session = open_session(&http, &endpoint, &key).await.unwrap();
    let post = |body: serde_json::Value| {
        http.post(&endpoint)
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .header("mcp-session-id", &session)
            .json(&body)
    };
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    // Calls of a tool that waits, each given up by its client once it reached the upstream
    // (a plain call's answer is one JSON body, so nothing of it comes before that).
    for id in 0..4 {
        let call = json!({"jsonrpc": "2.0", "id": 10 + id, "method": "tools/call",
            "params": {"name": "a__hold", "arguments": {}}});
        if id >= 2 {
            let status = post(call).send().await.unwrap().status();
            assert_eq!(status, 429, "call {id}: refused, the places are taken");
            continue;
        }
        let pending = tokio::spawn(post(call).send());
        assert_eventually!(
            up.holding() == id as usize + 1,
            DEADLINE,
            "call {id} reaches the upstream"
        );
        // The client goes away.
        pending.abort();
    }
    // Never more at the upstream than the tenant's concurrency.
    assert_eq!(up.holding(), 2);
    up.release();
}

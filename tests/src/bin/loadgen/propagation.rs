//! `propagation`: how long after the admin API answers a change each worker enforces it.

use crate::{served, stack};
use std::time::{Duration, Instant};
use switchyard_tests::admin::*;
use switchyard_tests::mcp_connector;

/// The HTTP status a 2025-06-18 `initialize` with `key` gets at `endpoint`.
async fn status_of(http: &reqwest::Client, endpoint: &str, key: &str) -> u16 {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "loadgen", "version": "1"}}});
    http.post(endpoint)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Milliseconds from `since` until `done` holds at each endpoint, each polled every 2 ms
/// at the same time.
async fn until_each<F, Fut>(endpoints: &[String], since: Instant, done: F) -> Vec<f64>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let done = &done;
    futures::future::join_all(endpoints.iter().map(|e| async move {
        while !done(e.clone()).await {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        since.elapsed().as_secs_f64() * 1000.0
    }))
    .await
}

/// How long after the admin API answers a change each of two workers enforces it.
pub(crate) async fn propagation(runs: usize) {
    let (stack, upstream) = stack(2).await;
    let cp = &stack.cp;
    let http = reqwest::Client::new();
    println!("| change | worker 1 ms | worker 2 ms |");
    println!("|---|---|---|");
    for run in 0..runs {
        let slug = format!("p{run}");
        cp.create_tenant(&slug).await;
        let mut req = mcp_connector(&slug, "b", &upstream.url, &[]);
        req.connector.as_mut().unwrap().prefix = Some(String::new());
        cp.connectors().create_connector(req).await.unwrap();
        let (revoked, other) = (cp.api_key(&slug).await, cp.api_key(&slug).await);
        let endpoints: Vec<String> = stack.workers.iter().map(|w| w.endpoint(&slug)).collect();
        for e in &endpoints {
            served(e, &other).await;
            while status_of(&http, e, &revoked).await != 200 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let row = |change: &str, ms: Vec<f64>| {
            println!("| {change} | {:.0} | {:.0} |", ms[0], ms[1]);
        };
        let id = switchyard_common::apikey::parse(&revoked)
            .unwrap()
            .0
            .to_string();
        let since = Instant::now();
        cp.keys_api()
            .revoke_api_key(RevokeApiKeyRequest {
                tenant: slug.clone(),
                id,
            })
            .await
            .unwrap();
        let ms = until_each(&endpoints, since, |e| {
            let (http, key) = (http.clone(), revoked.clone());
            async move { status_of(&http, &e, &key).await == 401 }
        })
        .await;
        row("key revoked -> 401", ms);
        let since = Instant::now();
        cp.connectors()
            .delete_connector(DeleteConnectorRequest {
                tenant: slug.clone(),
                name: "b".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let ms = until_each(&endpoints, since, |e| {
            let (http, key) = (http.clone(), other.clone());
            async move {
                let a = switchyard_tests::modern::list(&http, &e, &key).await;
                a.body["result"]["tools"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
            }
        })
        .await;
        row("connector removed -> tools gone", ms);
        let since = Instant::now();
        cp.tenants()
            .suspend_tenant(SuspendTenantRequest {
                slug: slug.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let ms = until_each(&endpoints, since, |e| {
            let (http, key) = (http.clone(), other.clone());
            async move { status_of(&http, &e, &key).await == 403 }
        })
        .await;
        row("tenant suspended -> 403", ms);
    }
}

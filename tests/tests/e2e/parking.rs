//! Idle sessions leave a worker's memory and come back on use; a worker holds a bounded
//! number of sessions and refuses more with a reason rather than running out of memory.
//! A parked session's GET stream is answered without bringing it back. Attacks: a session
//! whose stream may relay upstream notifications (a subscription's updates, log messages it
//! asked for) must not be let go of, a revoked key's
//! quiet stream must close, and a tenant must not get past its session cap by letting
//! sessions park.

use serde_json::json;
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{
    Stack, Worker, assert_eventually, install_tls, legacy, mcp_connector, within,
};

const DEADLINE: Duration = Duration::from_secs(20);

struct Env {
    stack: Stack,
    upstream: TestUpstream,
    http: reqwest::Client,
}

impl Env {
    async fn start() -> Self {
        install_tls();
        Self {
            stack: Stack::builder().workers(0).start().await,
            upstream: TestUpstream::start("A").await,
            http: reqwest::Client::new(),
        }
    }

    /// Tenant `slug` with at most `max_sessions` sessions (0: unlimited), connector `a`,
    /// once `worker` serves it.
    async fn tenant(&self, worker: &Worker, slug: &str, max_sessions: u32) -> String {
        self.stack
            .cp
            .tenants()
            .create_tenant(CreateTenantRequest {
                slug: slug.into(),
                quotas: Some(Quotas {
                    max_sessions: (max_sessions > 0).then_some(max_sessions),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        self.stack
            .cp
            .connectors()
            .create_connector(mcp_connector(slug, "a", &self.upstream.url, &[]))
            .await
            .unwrap();
        let key = self.stack.cp.api_key(slug).await;
        let endpoint = worker.endpoint(slug);
        assert_eventually!(
            switchyard_tests::modern::list(&self.http, &endpoint, &key)
                .await
                .ok(),
            DEADLINE,
            "{slug} is not served"
        );
        key
    }

    async fn open(&self, worker: &Worker, slug: &str, key: &str) -> legacy::Session {
        legacy::Session::open(&self.http, &worker.endpoint(slug), key).await
    }

    /// The upstream session ids the upstream has seen requests on.
    fn upstream_sessions(&self) -> std::collections::BTreeSet<String> {
        self.upstream
            .seen_headers()
            .iter()
            .filter_map(|h| h.get("mcp-session-id")?.to_str().ok().map(str::to_owned))
            .collect()
    }
}

async fn metric(worker: &Worker, series: &str) -> f64 {
    worker.metric(series).await.unwrap_or(0.0)
}

const PARKED: &str = "switchyard_worker_sessions_parked_total";

/// Waits until `worker` has parked a session.
async fn one_parked(worker: &Worker) {
    assert_eventually!(
        metric(worker, PARKED).await >= 1.0,
        DEADLINE,
        "no session was parked"
    );
}

/// Waits until `worker` has `n` quiet streams open.
async fn quiet_streams(worker: &Worker, n: f64) {
    assert_eventually!(
        metric(worker, "switchyard_worker_quiet_streams").await == n,
        DEADLINE,
        "not {n} quiet streams"
    );
}
const LIVE: &str = "switchyard_worker_sessions_live";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_parked_and_its_next_call_brings_it_back_with_its_upstream_session() {
    let env = Env::start().await;
    let worker = env
        .stack
        .start_worker(|c| c.session_park_after = Duration::from_secs(1))
        .await;
    let key = env.tenant(&worker, "idle", 0).await;
    let session = env.open(&worker, "idle", &key).await;
    let first = session.call("a__echo", json!({"text": "one"})).await;
    assert!(first.ok(), "{first:?}");
    assert_eq!(env.upstream_sessions().len(), 1);

    assert_eventually!(
        metric(&worker, PARKED).await >= 1.0 && metric(&worker, LIVE).await == 0.0,
        DEADLINE,
        "the idle session was never parked"
    );
    let again = session.call("a__echo", json!({"text": "two"})).await;
    assert!(again.ok(), "a parked session did not come back: {again:?}");
    // It carried on with the upstream session it had.
    let seen = env.upstream_sessions();
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_stream_keeps_its_session_only_while_an_upstream_may_send_it_something() {
    let env = Env::start().await;
    let worker = env
        .stack
        .start_worker(|c| c.session_park_after = Duration::from_secs(1))
        .await;
    let key = env.tenant(&worker, "streams", 0).await;
    // One session subscribed to a resource (its upstream session may send it updates, which
    // its stream relays); the other only called a tool (its upstream session announces no
    // list changes, and it asked for no log messages). Both have a GET stream open.
    let relaying = env.open(&worker, "streams", &key).await;
    let subscribed = relaying
        .post(
            json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe",
            "params": {"uri": "test://A/info"}}),
        )
        .await;
    assert_eq!(subscribed.status(), 200);
    assert!(!subscribed.text().await.unwrap().contains("\"error\""));
    assert_eq!(env.upstream.subscriptions().len(), 1);
    let quiet = env.open(&worker, "streams", &key).await;
    assert!(quiet.call("a__echo", json!({"text": "x"})).await.ok());
    let relaying_stream = relaying.stream().await;
    let quiet_stream = quiet.stream().await;
    assert_eq!(
        (
            relaying_stream.status().as_u16(),
            quiet_stream.status().as_u16()
        ),
        (200, 200)
    );
    let mut relaying_stream = relaying_stream.bytes_stream();

    // The quiet one is let go of, its stream with it; the relaying one stays, stream open.
    within(
        DEADLINE,
        "the quiet session's stream ends",
        quiet_stream.bytes(),
    )
    .await
    .ok();
    one_parked(&worker).await;
    assert_eq!(metric(&worker, PARKED).await, 1.0);
    assert_eq!(metric(&worker, LIVE).await, 1.0);
    use futures::StreamExt as _;
    let next = tokio::time::timeout(Duration::from_millis(200), relaying_stream.next()).await;
    assert!(
        !matches!(next, Ok(None) | Ok(Some(Err(_)))),
        "the relaying session's stream was ended: {next:?}"
    );

    // The client opens its GET stream again: the worker answers it without bringing the
    // session back into memory.
    let again = quiet.stream().await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    quiet_streams(&worker, 1.0).await;
    assert_eq!(metric(&worker, LIVE).await, 1.0);
    // A request brings the session back and ends the quiet stream, so the client's next
    // GET reaches the session.
    let ended = tokio::spawn(again.bytes());
    assert!(quiet.call("a__echo", json!({"text": "y"})).await.ok());
    within(DEADLINE, "the quiet stream ends", ended)
        .await
        .unwrap()
        .ok();
}

/// Asks for the upstreams' log messages on `session`.
async fn ask_for_logs(session: &legacy::Session) {
    let r = session
        .post(
            json!({"jsonrpc": "2.0", "id": 4, "method": "logging/setLevel",
            "params": {"level": "info"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(!body.contains("\"error\""), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_stream_keeps_a_session_that_asked_for_log_messages_whenever_it_asked() {
    let env = Env::start().await;
    let worker = env
        .stack
        .start_worker(|c| c.session_park_after = Duration::from_secs(1))
        .await;
    let key = env.tenant(&worker, "logs", 0).await;
    // One asks for log messages before its upstream session opens, one after; the third
    // never asks. All three called a tool and keep a GET stream open.
    let before = env.open(&worker, "logs", &key).await;
    ask_for_logs(&before).await;
    assert!(before.call("a__echo", json!({"text": "x"})).await.ok());
    let after = env.open(&worker, "logs", &key).await;
    assert!(after.call("a__echo", json!({"text": "x"})).await.ok());
    ask_for_logs(&after).await;
    let silent = env.open(&worker, "logs", &key).await;
    assert!(silent.call("a__echo", json!({"text": "x"})).await.ok());
    let streams = (
        before.stream().await,
        after.stream().await,
        silent.stream().await,
    );
    assert_eq!(
        (
            streams.0.status().as_u16(),
            streams.1.status().as_u16(),
            streams.2.status().as_u16()
        ),
        (200, 200, 200)
    );

    // Only the silent one is let go of, its stream with it.
    within(
        DEADLINE,
        "the silent session's stream ends",
        streams.2.bytes(),
    )
    .await
    .ok();
    one_parked(&worker).await;
    assert_eq!(metric(&worker, PARKED).await, 1.0);
    assert_eq!(metric(&worker, LIVE).await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_quiet_stream_is_closed() {
    let env = Env::start().await;
    let worker = env
        .stack
        .start_worker(|c| c.session_park_after = Duration::from_secs(1))
        .await;
    let key = env.tenant(&worker, "revoked", 0).await;
    let session = env.open(&worker, "revoked", &key).await;
    one_parked(&worker).await;
    let stream = session.stream().await;
    assert_eq!(stream.status(), 200);
    quiet_streams(&worker, 1.0).await;
    let ended = tokio::spawn(stream.bytes());
    let key_id = switchyard_common::apikey::parse(&key)
        .unwrap()
        .0
        .to_string();
    env.stack
        .cp
        .keys_api()
        .revoke_api_key(RevokeApiKeyRequest {
            tenant: "revoked".into(),
            id: key_id,
        })
        .await
        .unwrap();
    within(DEADLINE, "the quiet stream is closed", ended)
        .await
        .unwrap()
        .ok();
    let refused = session.stream().await;
    assert_eq!(refused.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_over_the_workers_cap_are_refused_and_the_worker_goes_on() {
    let env = Env::start().await;
    let worker = env.stack.start_worker(|c| c.max_sessions = 2).await;
    let key = env.tenant(&worker, "crowd", 0).await;
    let endpoint = worker.endpoint("crowd");
    let first = env.open(&worker, "crowd", &key).await;
    let second = env.open(&worker, "crowd", &key).await;

    let r = env
        .http
        .post(&endpoint)
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "third", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(!r.headers().contains_key("mcp-session-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["data"]["reason"], "worker_sessions_full",
        "{body}"
    );
    assert_eq!(
        metric(
            &worker,
            "switchyard_worker_limited_total{reason=\"worker_sessions_full\"}"
        )
        .await,
        1.0
    );

    for s in [&first, &second] {
        assert!(s.call("a__echo", json!({"text": "x"})).await.ok());
    }
    // A session ended makes room for another.
    assert_eq!(first.close().await, 204);
    let third = env.open(&worker, "crowd", &key).await;
    assert!(third.call("a__echo", json!({"text": "y"})).await.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_session_comes_back_only_under_its_tenants_session_cap() {
    let env = Env::start().await;
    let worker = env
        .stack
        .start_worker(|c| c.session_park_after = Duration::from_secs(1))
        .await;
    let key = env.tenant(&worker, "capped", 1).await;
    let parked = env.open(&worker, "capped", &key).await;
    one_parked(&worker).await;
    // Its place is free while it is parked: another session opens (and stays in memory
    // while its GET stream may relay its upstream session)...
    let other = env.open(&worker, "capped", &key).await;
    assert!(other.call("a__echo", json!({"text": "x"})).await.ok());
    let stream = other.stream().await;
    assert_eq!(stream.status(), 200);
    // ...and the parked one cannot come back past the cap while the other is live.
    let refused = parked.call("a__echo", json!({"text": "x"})).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.body["error"]["data"]["reason"], "session_limit");
    drop(stream);
    assert_eq!(other.close().await, 204);
    let back = parked.call("a__echo", json!({"text": "x"})).await;
    assert!(back.ok(), "{back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_client_carries_on_across_parking_with_its_get_stream() {
    let env = Env::start().await;
    let worker = env
        .stack
        .start_worker(|c| c.session_park_after = Duration::from_secs(1))
        .await;
    let key = env.tenant(&worker, "sdk", 0).await;
    // rmcp's client: a session, and the GET stream it opens on it.
    let client = switchyard_tests::mcp_client(&worker.endpoint("sdk"), &key)
        .await
        .unwrap();
    one_parked(&worker).await;
    // The client opens its GET stream again and gets a quiet one.
    quiet_streams(&worker, 1.0).await;
    assert_eq!(metric(&worker, LIVE).await, 0.0);

    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "a__echo"), "{tools:?}");
    let args = json!({"text": "back"}).as_object().unwrap().clone();
    let result = client
        .peer()
        .call_tool(rmcp::model::CallToolRequestParams::new("a__echo").with_arguments(args))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    // The session is back; the quiet stream ended, and the client's stream reaches it.
    quiet_streams(&worker, 0.0).await;
    client.cancel().await.unwrap();
}

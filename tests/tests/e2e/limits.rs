//! Tenant limits end to end: rates (tenant and key), concurrency, sessions, the monthly
//! tool-call quota, the worker's own in-flight cap and graceful drain. Refusals carry what
//! an agent needs to act (status, Retry-After, JSON-RPC code and data); calls under the
//! limits never see one; one tenant's flood never makes another tenant's calls fail; with
//! two workers a tenant gets its configured rate in total, not twice it.

use serde_json::json;
use std::time::{Duration, Instant};
use switchyard_tests::admin::*;
use switchyard_tests::modern::{Answer, call};
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, eventually, mcp_client, mcp_connector};

const DEADLINE: Duration = Duration::from_secs(20);

/// A stack without workers (each test starts its own) and the upstream every tenant's
/// connector `a` points at.
struct Env {
    stack: Stack,
    upstream: TestUpstream,
}

impl Env {
    async fn start() -> Self {
        let stack = Stack::builder().workers(0).start().await;
        let upstream = TestUpstream::start("A").await;
        Self { stack, upstream }
    }

    /// A tenant with `quotas` whose only connector `a` is the test upstream, and a key
    /// (with its own rate if given).
    async fn tenant(&self, slug: &str, quotas: Quotas, key_rate: Option<(u32, u32)>) -> String {
        self.stack
            .cp
            .tenants()
            .create_tenant(CreateTenantRequest {
                slug: slug.into(),
                quotas: Some(quotas),
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
        self.stack
            .cp
            .keys_api()
            .create_api_key(CreateApiKeyRequest {
                tenant: slug.into(),
                requests_per_second: key_rate.map(|r| r.0),
                burst: key_rate.map(|r| r.1),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .secret
    }
}

fn quotas(rps: u32, burst: u32) -> Quotas {
    Quotas {
        requests_per_second: Some(rps),
        burst: Some(burst),
        ..Default::default()
    }
}

/// Two calls held at the upstream, then a third made while they wait; all three answers.
async fn two_held_then_one(
    up: &TestUpstream,
    http: &reqwest::Client,
    endpoint: &str,
    key: &str,
) -> (Answer, Answer, Answer) {
    let hold = || call(http, endpoint, key, "a__hold", json!({}));
    tokio::join!(hold(), hold(), async {
        assert_eventually!(
            up.holding() == 2,
            DEADLINE,
            "both calls reached the upstream"
        );
        let third = call(http, endpoint, key, "a__whoami", json!({})).await;
        up.release();
        third
    })
}

/// Waits until `key` works at `endpoint` (the worker has the policy).
async fn ready(http: &reqwest::Client, endpoint: &str, key: &str) {
    assert_eventually!(
        call(http, endpoint, key, "a__whoami", json!({})).await.ok(),
        DEADLINE,
        "{endpoint} serves the key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_refuse_with_usable_waits_and_spare_calls_under_the_limit() {
    let env = Env::start().await;
    let worker = env.stack.start_worker(|_| {}).await;
    let http = reqwest::Client::new();
    // One call a second after a burst of five.
    let key = env.tenant("limited", quotas(1, 5), None).await;
    let endpoint = worker.endpoint("limited");
    ready(&http, &endpoint, &key).await;
    // Spend the burst at once: some calls pass, the rest are refused (how many pass of
    // a burst and its refill is unit-tested in `limits` on a fake clock).
    let answers: Vec<Answer> = futures::future::join_all(
        (0..10).map(|_| call(&http, &endpoint, &key, "a__whoami", json!({}))),
    )
    .await;
    let refused: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    let admitted = answers.iter().filter(|a| a.ok()).count();
    assert_eq!(admitted + refused.len(), 10, "{answers:?}");
    assert!(
        admitted >= 4 && !refused.is_empty(),
        "burst of 5 (one spent on readiness): {admitted} admitted"
    );
    for r in &refused {
        assert_eq!(r.error_code(), Some(-32060), "{r:?}");
        let data = &r.body["error"]["data"];
        assert_eq!(data["reason"], "rate_limited");
        assert_eq!(data["scope"], "tenant");
        let wait = data["retryAfterMs"].as_u64().unwrap();
        assert!((1..=1000).contains(&wait), "a usable wait: {wait} ms");
        assert_eq!(r.retry_after, Some(1), "Retry-After in whole seconds");
        assert_eq!(r.body["id"], 7, "the answer names the request");
    }
    // Waiting as told works.
    let wait = refused[0].body["error"]["data"]["retryAfterMs"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert!(
        call(&http, &endpoint, &key, "a__whoami", json!({}))
            .await
            .ok()
    );

    // Under the limit (4 a second against 5, burst 5): never refused.
    let steady_key = env.tenant("steady", quotas(5, 5), None).await;
    let steady = worker.endpoint("steady");
    ready(&http, &steady, &steady_key).await;
    // Calls at least 250 ms apart, even after the machine stalls (no catching up).
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..12 {
        tick.tick().await;
        let a = call(&http, &steady, &steady_key, "a__whoami", json!({})).await;
        assert!(a.ok(), "under the limit: {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_its_own_rate_is_held_to_it() {
    let env = Env::start().await;
    let worker = env.stack.start_worker(|_| {}).await;
    let http = reqwest::Client::new();
    let key = env.tenant("keyed", quotas(1000, 1000), Some((1, 1))).await;
    let endpoint = worker.endpoint("keyed");
    ready(&http, &endpoint, &key).await;
    let second = call(&http, &endpoint, &key, "a__whoami", json!({})).await;
    assert_eq!(second.status, 429, "{second:?}");
    assert_eq!(second.body["error"]["data"]["scope"], "key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_flood_does_not_fail_another_tenants_calls() {
    let env = Env::start().await;
    let worker = env.stack.start_worker(|_| {}).await;
    let http = reqwest::Client::new();
    let flood_key = env.tenant("flood", quotas(5, 5), None).await;
    let calm_key = env.tenant("calm", quotas(20, 20), None).await;
    let (flood, calm) = (worker.endpoint("flood"), worker.endpoint("calm"));
    ready(&http, &flood, &flood_key).await;
    ready(&http, &calm, &calm_key).await;

    let stop = Instant::now() + Duration::from_secs(3);
    let flooding = {
        let (http, flood, key) = (http.clone(), flood.clone(), flood_key.clone());
        tokio::spawn(async move {
            let mut refused = 0;
            while Instant::now() < stop {
                let burst = futures::future::join_all(
                    (0..20).map(|_| call(&http, &flood, &key, "a__whoami", json!({}))),
                )
                .await;
                refused += burst.iter().filter(|a| a.status == 429).count();
            }
            refused
        })
    };
    let mut calm_calls = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < stop {
        tick.tick().await;
        let a = call(&http, &calm, &calm_key, "a__whoami", json!({})).await;
        assert!(
            a.ok(),
            "the calm tenant's call failed during the flood: {a:?}"
        );
        calm_calls += 1;
    }
    let refused = flooding.await.unwrap();
    println!("flood: {refused} refusals; calm tenant: {calm_calls} calls, none refused");
    assert!(refused > 0, "the flooding tenant was held to its limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_and_session_caps_answer_429_with_their_reason() {
    let env = Env::start().await;
    let worker = env.stack.start_worker(|_| {}).await;
    let http = reqwest::Client::new();
    let key = env
        .tenant(
            "capped",
            Quotas {
                requests_per_second: Some(100),
                burst: Some(100),
                max_concurrent_requests: Some(2),
                max_sessions: Some(1),
                ..Default::default()
            },
            None,
        )
        .await;
    let endpoint = worker.endpoint("capped");
    ready(&http, &endpoint, &key).await;

    // Two held calls take both places; a third is refused at once.
    let (first, second, third) = two_held_then_one(&env.upstream, &http, &endpoint, &key).await;
    assert!(first.ok() && second.ok(), "{first:?} {second:?}");
    assert_eq!(third.status, 429, "{third:?}");
    assert_eq!(third.error_code(), Some(-32062));
    assert_eq!(third.body["error"]["data"]["reason"], "concurrency_limited");
    assert!(
        third.body["error"]["data"]["retryAfterMs"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(third.retry_after.is_some());

    // One session at a time.
    let session = mcp_client(&endpoint, &key).await.unwrap();
    let second_session = mcp_client(&endpoint, &key).await;
    let err = second_session.expect_err("a second session was opened");
    assert!(err.contains("429") || err.contains("session"), "{err}");
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_quota_is_counted_shown_and_enforced() {
    let env = Env::start().await;
    let worker = env.stack.start_worker(|_| {}).await;
    let http = reqwest::Client::new();
    let key = env
        .tenant(
            "metered",
            Quotas {
                monthly_tool_calls: Some(3),
                ..quotas(100, 100)
            },
            None,
        )
        .await;
    let endpoint = worker.endpoint("metered");
    ready(&http, &endpoint, &key).await; // the first of three
    for _ in 0..2 {
        assert!(
            call(&http, &endpoint, &key, "a__whoami", json!({}))
                .await
                .ok()
        );
    }
    // Usage reaches the control plane and the exhausted quota the worker as events: calls
    // made meanwhile pass (and are counted).
    let overshoot = std::sync::atomic::AtomicU64::new(0);
    let refused = eventually(DEADLINE, "the quota is enforced", || async {
        let a = call(&http, &endpoint, &key, "a__whoami", json!({})).await;
        if a.status == 429 {
            Ok(a)
        } else {
            overshoot.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(format!("{a:?}"))
        }
    })
    .await;
    let overshoot = overshoot.into_inner();
    assert_eq!(refused.error_code(), Some(-32061), "{refused:?}");
    let data = &refused.body["error"]["data"];
    assert_eq!(data["reason"], "quota_exhausted");
    assert_eq!(data["quota"], "monthly_tool_calls");
    assert!(
        data["resetsAt"]
            .as_str()
            .unwrap()
            .ends_with("-01T00:00:00Z"),
        "{data}"
    );
    // Reads are not tool calls. The last calls that passed may still be on their way.
    let usage = eventually(DEADLINE, "every call that passed is counted", || async {
        let usage = env
            .stack
            .cp
            .tenants()
            .get_tenant_usage(GetTenantUsageRequest {
                slug: "metered".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if usage.tool_calls < 3 + overshoot {
            Err(format!("{usage:?}"))
        } else {
            Ok(usage)
        }
    })
    .await;
    assert!(usage.exhausted, "{usage:?}");
    assert_eq!(usage.monthly_tool_calls, 3);
    assert_eq!(usage.tool_calls, 3 + overshoot, "no call counted twice");
    // Raising the quota lets calls through again.
    env.stack
        .cp
        .tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "metered".into(),
            quotas: Some(Quotas {
                monthly_tool_calls: Some(100),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eventually!(
        call(&http, &endpoint, &key, "a__whoami", json!({}))
            .await
            .ok(),
        DEADLINE,
        "a raised quota applies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_worker_sheds_load_after_tenant_limits() {
    let env = Env::start().await;
    let worker = env.stack.start_worker(|c| c.max_in_flight = 2).await;
    let http = reqwest::Client::new();
    let key = env.tenant("busy", quotas(1000, 1000), None).await;
    let endpoint = worker.endpoint("busy");
    ready(&http, &endpoint, &key).await;
    let (a, b, c) = two_held_then_one(&env.upstream, &http, &endpoint, &key).await;
    assert!(a.ok() && b.ok());
    assert_eq!(c.status, 503, "{c:?}");
    assert!(c.retry_after.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_finishes_its_calls_and_refuses_new_ones() {
    let env = Env::start().await;
    let mut worker = env
        .stack
        .start_worker(|c| {
            // Longer than the test can take: the calls end when the test releases them.
            c.drain_grace = Duration::from_secs(120);
        })
        .await;
    let http = reqwest::Client::new();
    let key = env.tenant("drained", quotas(1000, 1000), None).await;
    let endpoint = worker.endpoint("drained");
    ready(&http, &endpoint, &key).await;

    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let (http, endpoint, key) = (http.clone(), endpoint.clone(), key.clone());
            tokio::spawn(async move { call(&http, &endpoint, &key, "a__hold", json!({})).await })
        })
        .collect();
    let up = &env.upstream;
    assert_eventually!(
        up.holding() == 3,
        DEADLINE,
        "the calls reached the upstream"
    );
    let finished = worker.begin_shutdown();
    assert_eventually!(
        http.get(worker.metrics_url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 503),
        DEADLINE,
        "not ready once draining"
    );
    let refused = call(&http, &endpoint, &key, "a__whoami", json!({})).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.retry_after.is_some());
    // The worker waits for its calls in flight.
    assert!(!finished.is_finished(), "stopped with calls in flight");
    up.release();
    for call in in_flight {
        let a = call.await.unwrap();
        assert!(a.ok(), "a call in flight was cut off: {a:?}");
    }
    finished.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_tenants_burst() {
    let env = Env::start().await;
    let workers = [
        env.stack.start_worker(|_| {}).await,
        env.stack.start_worker(|_| {}).await,
    ];
    let http = reqwest::Client::new();
    // One call every two seconds per worker once they share the rate: the refill cannot
    // hide a doubled burst.
    let key = env.tenant("shared", quotas(1, 10), None).await;
    let endpoints: Vec<String> = workers.iter().map(|w| w.endpoint("shared")).collect();
    // Both serve the tenant (listing spends no cell) and see each other.
    for w in &workers {
        switchyard_tests::client_of(w, "shared", &key).await;
        assert_eventually!(
            w.metric("switchyard_worker_fleet_size").await == Some(2.0),
            DEADLINE,
            "{} sees two workers",
            w.mcp
        );
    }
    // Each worker takes its half of the burst of 10, then refuses: ten calls at each
    // worker pass about ten in all, not twenty. (The exact shares are unit-tested in
    // `limits`; the rate sustained in total is measured by `loadgen rate`.)
    let answers = futures::future::join_all(
        endpoints
            .iter()
            .flat_map(|e| (0..10).map(|_| call(&http, e, &key, "a__whoami", json!({})))),
    )
    .await;
    let admitted = answers.iter().filter(|a| a.ok()).count();
    let refused = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!(admitted + refused, 20, "{answers:?}");
    assert!(
        (10..=12).contains(&admitted),
        "two workers sharing a burst of 10 admitted {admitted} of 20"
    );
}

//! Upstreams that misbehave, end to end: retries only where safe (a call that is not
//! idempotent runs at most once, whatever breaks), retries that cannot multiply load (the
//! budget), and a circuit breaker that opens on failures, fails fast while open, spares
//! everything else, shows in metrics and the admin API, and closes by itself on recovery.

use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::{Faults, TestUpstream};
use switchyard_tests::{Stack, assert_eventually, eventually, mcp_client, mcp_connector};

const DEADLINE: Duration = Duration::from_secs(20);

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// A tenant without practical rate limits whose connector `name` points at `upstream`
/// with the given retry and breaker settings; returns a key.
async fn tenant(
    stack: &Stack,
    slug: &str,
    connectors: &[(
        &str,
        &TestUpstream,
        Option<RetryPolicy>,
        Option<BreakerPolicy>,
    )],
) -> String {
    stack
        .cp
        .tenants()
        .create_tenant(CreateTenantRequest {
            slug: slug.into(),
            quotas: Some(Quotas {
                requests_per_second: Some(10_000),
                burst: Some(10_000),
                max_concurrent_requests: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for (name, upstream, retry, breaker) in connectors {
        let mut req = mcp_connector(slug, name, &upstream.url, &[]);
        let c = req.connector.as_mut().unwrap();
        c.retry = *retry;
        c.breaker = *breaker;
        stack.cp.connectors().create_connector(req).await.unwrap();
    }
    stack.cp.api_key(slug).await
}

async fn listing_client(stack: &Stack, tenant: &str, key: &str, tool: &str) -> Client {
    let url = stack.worker().endpoint(tenant);
    eventually(DEADLINE, &format!("{tool} listed at {url}"), || async {
        let c = mcp_client(&url, key).await?;
        let tools = c.peer().list_all_tools().await.map_err(|e| e.to_string())?;
        if tools.iter().any(|t| t.name == tool) {
            Ok(c)
        } else {
            Err("not listed yet".to_owned())
        }
    })
    .await
}

/// Retries allowed for idempotent tools, many attempts, quick backoff.
fn eager_retries() -> Option<RetryPolicy> {
    Some(RetryPolicy {
        max_attempts: Some(8),
        initial_backoff_ms: Some(5),
        max_backoff_ms: Some(50),
        retry_idempotent_tools: Some(true),
    })
}

/// A breaker that does not open within a test.
fn no_breaker() -> Option<BreakerPolicy> {
    Some(BreakerPolicy {
        consecutive_failures: Some(1000),
        failure_rate_percent: Some(100),
        minimum_calls: Some(100_000),
        ..Default::default()
    })
}

async fn call(client: &Client, tool: &str, args: Value) -> rmcp::model::CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    client
        .peer()
        .call_tool(rmcp::model::CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap()
}

fn reason(result: &rmcp::model::CallToolResult) -> Option<String> {
    result
        .meta
        .as_ref()
        .and_then(|m| m.0.get("reason")?.as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_resets_only_idempotent_calls_are_retried_and_nothing_runs_twice() {
    let env = Stack::start().await;
    let up = TestUpstream::start("flaky").await;
    let key = tenant(&env, "resets", &[("f", &up, eager_retries(), no_breaker())]).await;
    let client = listing_client(&env, "resets", &key, "f__record").await;
    // Half the calls lose their connection: half of those before the tool runs, half after.
    up.set_faults(Faults {
        reset_before: 0.25,
        reset_after: 1.0 / 3.0,
        ..Default::default()
    });

    // A modest rate: at most 10 calls a second of each kind. At about one retry per call
    // that stays inside the retry budget's floor; a slow call delays the next tick rather
    // than bunching the calls after it, which could drain the budget.
    let calls = 40;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut plain_ok, mut idempotent_ok) = (0, 0);
    for i in 0..calls {
        tick.tick().await;
        let plain = call(&client, "f__record", json!({"nonce": format!("p{i}")})).await;
        if plain.is_error != Some(true) {
            plain_ok += 1;
        } else {
            assert!(
                reason(&plain).is_some_and(|r| r.starts_with("upstream")),
                "{plain:?}"
            );
        }
        let idem = call(
            &client,
            "f__record_idempotent",
            json!({"nonce": format!("i{i}")}),
        )
        .await;
        if idem.is_error != Some(true) {
            idempotent_ok += 1;
        } else {
            println!("idempotent call failed: {idem:?}");
        }
    }
    let executions = up.executions();
    let twice: Vec<_> = (0..calls)
        .map(|i| format!("p{i}"))
        .filter(|n| executions.get(n).copied().unwrap_or(0) > 1)
        .collect();
    println!(
        "under 50% resets: non-idempotent {plain_ok}/{calls} succeeded, idempotent \
         {idempotent_ok}/{calls} succeeded; {} upstream attempts",
        up.attempts.load(Ordering::SeqCst)
    );
    assert!(
        twice.is_empty(),
        "non-idempotent calls ran twice: {twice:?}"
    );
    let refused = env
        .worker()
        .metric("switchyard_worker_upstream_retries_total{reason=\"budget_exhausted\"}")
        .await
        .unwrap_or(0.0);
    assert!(
        idempotent_ok * 100 >= calls * 95,
        "idempotent calls succeeded {idempotent_ok}/{calls}; the budget refused {refused} retries"
    );
    // Without retries about half the plain calls fail: they really were exposed.
    assert!(plain_ok < calls, "the faults were not injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_total_failure_retries_stay_within_the_budget() {
    let env = Stack::start().await;
    let up = TestUpstream::start("dead").await;
    let key = tenant(&env, "budget", &[("d", &up, eager_retries(), no_breaker())]).await;
    let client =
        std::sync::Arc::new(listing_client(&env, "budget", &key, "d__record_idempotent").await);
    up.set_faults(Faults {
        reset_before: 1.0,
        ..Default::default()
    });
    let before = up.attempts.load(Ordering::SeqCst);
    let calls: u64 = 300;
    let tasks: Vec<_> = (0..10)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..calls / 10 {
                    let r = call(
                        &client,
                        "d__record_idempotent",
                        json!({"nonce": format!("{t}-{i}")}),
                    )
                    .await;
                    assert_eq!(r.is_error, Some(true));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let attempts = up.attempts.load(Ordering::SeqCst) - before;
    let retries = |reason: &'static str| {
        let w = env.worker();
        async move {
            w.metric(&format!(
                "switchyard_worker_upstream_retries_total{{reason=\"{reason}\"}}"
            ))
            .await
            .unwrap_or(0.0) as u64
        }
    };
    let (retried, refused) = (
        retries("attempted").await,
        retries("budget_exhausted").await,
    );
    // Every call wanted seven retries; the budget (unit-tested in `resilience`) let only
    // a few through, and refused nearly every call's next one.
    assert!(retried > 0, "some retries happened");
    assert!(attempts as u64 > calls, "the retries reached the upstream");
    assert!(
        refused * 2 >= calls,
        "the budget refused retries of {refused} of {calls} calls ({retried} retried)"
    );
    assert!(
        retried * 2 < calls * 7,
        "{retried} retries: without a budget every call would retry 7 times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_opens_its_breaker_which_closes_after_recovery() {
    let env = Stack::start().await;
    let bad = TestUpstream::start("bad").await;
    let good = TestUpstream::start("good").await;
    let breaker = Some(BreakerPolicy {
        consecutive_failures: Some(3),
        // Long enough that a slow machine checks the open breaker before it half-opens.
        open_ms: Some(10_000),
        half_open_probes: Some(1),
        ..Default::default()
    });
    let key = tenant(
        &env,
        "brk",
        &[("bad", &bad, None, breaker), ("good", &good, None, None)],
    )
    .await;
    let other_key = tenant(&env, "other", &[("bad", &bad, None, breaker)]).await;
    let client = listing_client(&env, "brk", &key, "bad__whoami").await;
    let other = listing_client(&env, "other", &other_key, "bad__whoami").await;

    bad.set_faults(Faults {
        reset_before: 1.0,
        ..Default::default()
    });
    for _ in 0..3 {
        let r = call(&client, "bad__whoami", json!({})).await;
        assert_eq!(reason(&r).as_deref(), Some("upstream_error"), "{r:?}");
    }
    // Open: fails fast without reaching the upstream, and says when it tries again.
    let attempts = bad.attempts.load(Ordering::SeqCst);
    let fast = call(&client, "bad__whoami", json!({})).await;
    assert_eq!(reason(&fast).as_deref(), Some("circuit_open"), "{fast:?}");
    let meta = fast.meta.as_ref().unwrap();
    assert_eq!(meta.0["connector"], "bad");
    assert!(meta.0["retryAfterMs"].as_u64().unwrap() <= 10_000);
    assert_eq!(
        bad.attempts.load(Ordering::SeqCst),
        attempts,
        "no upstream attempt"
    );

    // The tenant's other connector and another tenant on the same upstream are unaffected.
    let fine = call(&client, "good__whoami", json!({})).await;
    assert_ne!(fine.is_error, Some(true), "{fine:?}");
    let theirs = call(&other, "bad__whoami", json!({})).await;
    assert_eq!(
        reason(&theirs).as_deref(),
        Some("upstream_error"),
        "another tenant's breaker is its own: {theirs:?}"
    );

    // Visible in the worker's metrics and, through its heartbeat, the admin API.
    let http = reqwest::Client::new();
    let metrics = env.worker().metrics_url("/metrics");
    let text = http
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(
            |l| l.starts_with("switchyard_worker_circuit_breaker_state{")
                && l.contains("tenant=\"brk\"")
                && l.contains("connector=\"bad\"")
                && l.ends_with(" 2")
        ),
        "{text}"
    );
    let fleet = || async {
        env.cp
            .fleet()
            .list_workers(ListWorkersRequest {})
            .await
            .unwrap()
            .into_inner()
            .workers
    };
    assert_eventually!(
        fleet().await.iter().any(|w| w
            .breakers
            .iter()
            .any(|b| b.tenant == "brk" && b.connector == "bad")),
        DEADLINE,
        "the open breaker shows in the admin API"
    );

    // Recovery: after the open time a probe goes through and closes it.
    bad.set_faults(Faults::default());
    assert_eventually!(
        call(&client, "bad__whoami", json!({})).await.is_error != Some(true),
        DEADLINE * 2,
        "the breaker closes after recovery"
    );
    for _ in 0..5 {
        assert_ne!(
            call(&client, "bad__whoami", json!({})).await.is_error,
            Some(true)
        );
    }
    assert_eventually!(
        !fleet()
            .await
            .iter()
            .any(|w| w.breakers.iter().any(|b| b.tenant == "brk")),
        DEADLINE,
        "closed breakers leave the admin API"
    );
}

//! Refusals on the audit trail, as a hostile client provokes them: a flood of rate-limited
//! calls, guessed and missing credentials, and a viewer key calling a tool that changes
//! things each end up as a few tallied records with the right counts (every refusal
//! counted once), never a record each, and never with the guessed secret (in a record or
//! a log line). Requests to a tenant that does not exist leave nothing.

use switchyard_tests::admin::*;

use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack, assert_eventually, modern};

pub(crate) async fn records(cp: &ControlPlane, tenant: &str, kind: &str) -> Vec<AuditEvent> {
    let request = ListAuditEventsRequest {
        tenant: tenant.into(),
        page_size: 500,
        ..Default::default()
    };
    listed(cp, request, kind).await
}

/// The records of `kind` among those `request` lists.
pub(crate) async fn listed(
    cp: &ControlPlane,
    request: ListAuditEventsRequest,
    kind: &str,
) -> Vec<AuditEvent> {
    cp.audit()
        .list_audit_events(request)
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

pub(crate) fn count(e: &AuditEvent) -> u64 {
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
    detail["count"].as_u64().unwrap_or_default()
}

/// The records of `kind` once their counts add up to `total`.
async fn tallied(cp: &ControlPlane, tenant: &str, kind: &str, total: u64) -> Vec<AuditEvent> {
    let mut found: Vec<AuditEvent>;
    assert_eventually!(
        {
            found = records(cp, tenant, kind).await;
            found.iter().map(count).sum::<u64>() >= total
        },
        std::time::Duration::from_secs(30),
        "{total} {kind} tallied"
    );
    found
}

async fn stack() -> Stack {
    Stack::builder()
        .worker_config(|c| c.refusal_tally_every = std::time::Duration::from_millis(300))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_flood_is_one_tally_per_key_and_reason() {
    let stack = stack().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_slow_key("acme", "up", &up.url).await;
    let (key_id, _) = switchyard_common::apikey::parse(&key).unwrap();
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let mut refused = 0;
    for _ in 0..60 {
        let a = modern::call(
            &http,
            &endpoint,
            &key,
            "up__echo",
            serde_json::json!({"text": "x"}),
        )
        .await;
        if a.status == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 40, "the flood was refused: {refused}");
    let tallies = tallied(&stack.cp, "acme", "refusal", refused).await;
    assert_eq!(
        tallies.iter().map(count).sum::<u64>(),
        refused,
        "every refusal counted once: {tallies:#?}"
    );
    assert!(
        tallies.len() <= 20,
        "tallied, not a record each: {}",
        tallies.len()
    );
    for t in &tallies {
        assert_eq!(t.actor, format!("key:{}", key_id.as_str()));
        assert_eq!(t.action, "rate_limited");
        assert_eq!(t.outcome, "refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_and_missing_credentials_are_tallied_by_claimed_key_and_address() {
    let stack = stack().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    let (key_id, _) = switchyard_common::apikey::parse(&key).unwrap();
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let canary = "CANARYsecretCANARYsecretCANARY12";
    let guessed = format!("sy_{}_{canary}", key_id.as_str());
    let mut failed = 0;
    for _ in 0..20 {
        let a = modern::call(
            &http,
            &endpoint,
            &guessed,
            "up__echo",
            serde_json::json!({}),
        )
        .await;
        // Wrong, then too many wrong attempts with this key id.
        assert!(matches!(a.status, 401 | 429), "{a:?}");
        failed += 1;
    }
    for _ in 0..5 {
        let r = http
            .post(&endpoint)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        failed += 1;
    }
    // A tenant that does not exist: refused, and nothing recorded for it.
    let ghost = stack.worker().endpoint("ghost");
    for _ in 0..5 {
        let a = modern::call(&http, &ghost, &guessed, "up__echo", serde_json::json!({})).await;
        assert!(matches!(a.status, 401 | 429), "{a:?}");
    }

    let tallies = tallied(&stack.cp, "acme", "auth_failure", failed).await;
    assert_eq!(
        tallies.iter().map(count).sum::<u64>(),
        failed,
        "{tallies:#?}"
    );
    let claimed: u64 = tallies
        .iter()
        .filter(|t| t.actor == format!("key:{}", key_id.as_str()))
        .map(count)
        .sum();
    assert_eq!(claimed, 20, "{tallies:#?}");
    let missing: Vec<&AuditEvent> = tallies
        .iter()
        .filter(|t| t.action == "missing_credential")
        .collect();
    // Five requests may straddle a tally window; however they split, they add up.
    assert!(
        missing.iter().all(|t| t.actor == "key:unknown"),
        "{tallies:#?}"
    );
    assert_eq!(missing.iter().map(|t| count(t)).sum::<u64>(), 5);
    for t in &tallies {
        let detail: serde_json::Value = serde_json::from_str(&t.detail).unwrap();
        assert_eq!(detail["source"], "127.0.0.1", "{t:?}");
        assert!(
            !t.detail.contains(canary),
            "the guessed secret on record: {t:?}"
        );
    }
    assert!(records(&stack.cp, "ghost", "auth_failure").await.is_empty());
    // Nor in any log line of the whole stack (control plane, worker, bus, at DEBUG).
    let logs = switchyard_tests::logs();
    assert!(!logs.is_empty(), "logs were captured");
    assert!(!logs.contains(canary), "the guessed secret in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_calling_a_tool_that_changes_things_is_on_record_with_the_tool() {
    let stack = stack().await;
    let up = TestUpstream::start("up").await;
    let admin = stack.tenant_with_connector("acme", "up", &up.url).await;
    let viewer = stack
        .key_with(CreateApiKeyRequest {
            tenant: "acme".into(),
            role: ApiKeyRole::Viewer as i32,
            ..Default::default()
        })
        .await;
    let (viewer_id, _) = switchyard_common::apikey::parse(&viewer).unwrap();
    stack.wait_serving("acme", &admin).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    assert_eventually!(
        modern::call(
            &http,
            &endpoint,
            &viewer,
            "up__whoami",
            serde_json::json!({})
        )
        .await
        .ok(),
        std::time::Duration::from_secs(20),
        "the viewer key is served"
    );
    for _ in 0..3 {
        let denied = modern::call(
            &http,
            &endpoint,
            &viewer,
            "up__echo",
            serde_json::json!({"text": "x"}),
        )
        .await;
        assert_eq!(
            denied.body["result"]["_meta"]["reason"], "permission_denied",
            "{denied:?}"
        );
    }
    // The three refusals may straddle a tally window: whatever the split, they are
    // counted once each, all on the viewer's key, the reason and the tool.
    let tallies = tallied(&stack.cp, "acme", "refusal", 3).await;
    assert_eq!(tallies.iter().map(count).sum::<u64>(), 3, "{tallies:#?}");
    for t in &tallies {
        assert_eq!(t.actor, format!("key:{}", viewer_id.as_str()));
        assert_eq!(t.action, "permission_denied");
        assert_eq!(t.object, "tool/acme/up__echo");
    }
    // Listing by the tool finds the refusal.
    let by_tool = stack
        .cp
        .audit()
        .list_audit_events(ListAuditEventsRequest {
            tenant: "acme".into(),
            tool: "up__echo".into(),
            key: viewer_id.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(by_tool.len(), tallies.len(), "{by_tool:#?}");
    assert!(by_tool.iter().all(|e| e.kind == "refusal"), "{by_tool:#?}");
    assert_eq!(by_tool.iter().map(count).sum::<u64>(), 3, "{by_tool:#?}");
    let verified = stack
        .cp
        .audit()
        .verify_audit_chain(VerifyAuditChainRequest {
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact, "{verified:?}");
}

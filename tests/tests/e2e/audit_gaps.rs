//! Calls whose records cannot be queued, with NATS away and a worker's small queue full: a
//! tenant that keeps serving gets a gap record counting the records lost (so every call is
//! either on record or counted in a gap); a tenant that fails closed has its calls refused
//! (`audit_unavailable`, on record as refusals) until its records can be queued again.

use crate::audit_refusals::{count, listed, records};
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack, assert_eventually};

/// The reason a worker gave for refusing a call, from a tool result or a JSON-RPC error.
fn reason(body: &serde_json::Value) -> Option<&str> {
    body["result"]["_meta"]["reason"]
        .as_str()
        .or_else(|| body["error"]["data"]["reason"].as_str())
}

/// The records of `kind` of tenant `tenant`'s key `key`.
async fn of_key(cp: &ControlPlane, tenant: &str, key: &str, kind: &str) -> Vec<AuditEvent> {
    let request = ListAuditEventsRequest {
        tenant: tenant.into(),
        key: key.into(),
        page_size: 1000,
        ..Default::default()
    };
    listed(cp, request, kind).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_records_leave_a_gap_and_a_fail_closed_tenant_is_refused_instead() {
    let stack = Stack::builder()
        .worker_config(|c| {
            c.report_queue = 2;
            c.refusal_tally_every = std::time::Duration::from_millis(200);
        })
        .start()
        .await;
    let up = TestUpstream::start("up").await;
    // Limits above the calls the test makes: it is about records, not admission.
    stack
        .tenant_with(CreateTenantRequest {
            slug: "open".into(),
            quotas: Some(Quotas {
                requests_per_second: Some(1000),
                burst: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    stack.connector("open", "up", &up.url).await;
    let open = stack.key("open").await;
    stack
        .tenant_with(CreateTenantRequest {
            slug: "closed".into(),
            audit: Some(AuditSettings {
                fail_closed: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    stack.connector("closed", "up", &up.url).await;
    let closed = stack.key("closed").await;
    stack.wait_serving("open", &open).await;
    stack.wait_serving("closed", &closed).await;
    let http = reqwest::Client::new();
    let call = |tenant: &'static str, key: String| {
        let (http, endpoint) = (http.clone(), stack.worker().endpoint(tenant));
        async move {
            switchyard_tests::modern::call(
                &http,
                &endpoint,
                &key,
                "up__echo",
                serde_json::json!({"text": "x"}),
            )
            .await
        }
    };

    // While NATS is away the reporter holds one batch it cannot publish, and its queue two
    // more events: the calls beyond those cannot all be queued, however fast they come.
    let sent = switchyard_worker::reports::BATCH + 2 + 4;
    stack.nats().stop();
    for _ in 0..sent {
        let served = call("open", open.clone()).await;
        assert!(
            served.ok(),
            "a tenant that fails open is served: {served:?}"
        );
    }
    let upstream_calls = up.calls.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..2 {
        let refused = call("closed", closed.clone()).await;
        assert_eq!(
            reason(&refused.body),
            Some("audit_unavailable"),
            "{refused:?}"
        );
    }
    assert_eq!(
        up.calls.load(std::sync::atomic::Ordering::SeqCst),
        upstream_calls,
        "no refused call went upstream"
    );
    stack.nats().restart().await;

    // Every call served is on record or counted in a gap, and there is a gap. The key's
    // records are read: the reads themselves go on record, and would crowd a page.
    let (open_id, _) = switchyard_common::apikey::parse(&open).unwrap();
    let (mut calls, mut gaps): (Vec<AuditEvent>, Vec<AuditEvent>);
    assert_eventually!(
        {
            calls = of_key(&stack.cp, "open", open_id.as_ref(), "call").await;
            gaps = of_key(&stack.cp, "open", open_id.as_ref(), "audit_gap").await;
            calls.len() + gaps.iter().map(count).sum::<u64>() as usize >= sent
        },
        std::time::Duration::from_secs(30),
        "the open tenant's {sent} calls on record ({}) or in a gap ({})",
        calls.len(),
        gaps.iter().map(count).sum::<u64>()
    );
    let lost: u64 = gaps.iter().map(count).sum();
    assert_eq!(calls.len() + lost as usize, sent, "{gaps:#?}");
    assert!(
        lost >= 1,
        "a batch and a two-event queue cannot hold {sent} calls' events"
    );
    for gap in &gaps {
        assert_eq!(gap.outcome, "lost");
        assert_eq!(gap.action, "report_queue_full");
        assert_eq!(gap.actor, format!("key:{open_id}"));
    }

    // The closed tenant's refused calls are on record as refusals; once records can be
    // queued again, its calls are served.
    let mut refusals: Vec<AuditEvent>;
    assert_eventually!(
        {
            refusals = records(&stack.cp, "closed", "refusal").await;
            refusals.iter().map(count).sum::<u64>() >= 2
        },
        std::time::Duration::from_secs(30),
        "the refusals on record"
    );
    assert!(
        refusals.iter().all(|r| r.action == "audit_unavailable"),
        "{refusals:#?}"
    );
    assert!(records(&stack.cp, "closed", "call").await.is_empty());
    assert_eventually!(
        call("closed", closed.clone()).await.ok(),
        std::time::Duration::from_secs(30),
        "the closed tenant is served again"
    );
    for tenant in ["open", "closed"] {
        let verified = stack
            .cp
            .audit()
            .verify_audit_chain(VerifyAuditChainRequest {
                tenant: tenant.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(verified.intact, "{verified:?}");
    }
}

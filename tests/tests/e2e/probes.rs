//! The control plane's health, readiness and metrics listener, and each tenant's publish
//! status in the admin API: what an orchestrator and an SRE look at.

use std::time::Duration;
use switchyard_control_plane::Store;
use switchyard_control_plane::metrics::{Metrics, serve_metrics};
use switchyard_tests::admin::*;
use switchyard_tests::{Stack, assert_eventually};

const DEADLINE: Duration = Duration::from_secs(60);

async fn get(url: &str) -> (u16, String) {
    switchyard_tests::install_tls();
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// The value of the metric line starting with `series` (name and labels), if present.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn readiness_waits_for_every_migration() {
    let url = switchyard_tests::postgres_database().await;
    let store = Store::connect(&url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(serve_metrics(
        listener,
        store.clone(),
        std::sync::Arc::new(Metrics::default()),
        stop.clone().cancelled_owned(),
    ));
    let base = format!("http://{addr}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "ready before migrations: {body}");
    assert!(body.contains("migrations"), "{body}");
    let metrics = get(&format!("{base}/metrics")).await.1;
    assert_eq!(value(&metrics, "switchyard_control_plane_ready"), Some(0.0));

    store.migrate().await.unwrap();
    assert_eq!(get(&format!("{base}/readyz")).await.0, 200);
    let metrics = get(&format!("{base}/metrics")).await.1;
    assert_eq!(value(&metrics, "switchyard_control_plane_ready"), Some(1.0));
    stop.cancel();
}

#[tokio::test]
async fn metrics_count_admin_calls_and_publishing_without_naming_tenants() {
    let stack = Stack::builder().workers(0).start().await;
    let cp = &stack.cp;
    let base = format!("http://{}", cp.metrics);
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{base}/readyz")).await.0, 200);
    // Health and metrics are not on the admin API's port.
    let (status, body) = get(&format!("http://{}/metrics", cp.addr)).await;
    assert!(
        status != 200 && !body.contains("switchyard_"),
        "{status} {body}"
    );

    cp.create_tenant("acme-secret-name").await;
    let missing = cp
        .tenants()
        .get_tenant(GetTenantRequest {
            slug: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let mut anonymous = tenant_service_client::TenantServiceClient::new(cp.channel_with(None));
    let refused = anonymous
        .list_tenants(ListTenantsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let calls = |code: &str, method: &str| {
        format!("switchyard_control_plane_admin_calls_total{{method=\"{method}\",code=\"{code}\"}}")
    };
    assert_eventually!(
        {
            let m = get(&format!("{base}/metrics")).await.1;
            value(&m, "switchyard_control_plane_policy_publish_attempts_total").unwrap_or(0.0)
                >= 1.0
                && value(&m, "switchyard_control_plane_outbox_backlog") == Some(0.0)
        },
        DEADLINE,
        "the tenant's policy was published and the outbox drained"
    );
    let metrics = get(&format!("{base}/metrics")).await.1;
    for (code, method) in [
        ("OK", "TenantService/CreateTenant"),
        ("NOT_FOUND", "TenantService/GetTenant"),
        ("UNAUTHENTICATED", "TenantService/ListTenants"),
    ] {
        assert_eq!(
            value(&metrics, &calls(code, method)),
            Some(1.0),
            "{metrics}"
        );
    }
    assert_eq!(
        value(
            &metrics,
            "switchyard_control_plane_outbox_oldest_age_seconds"
        ),
        Some(0.0)
    );
    assert!(!metrics.contains("acme-secret-name"), "{metrics}");
}

#[tokio::test]
async fn a_failing_publish_shows_in_the_tenant_status_until_it_succeeds() {
    let stack = Stack::builder().workers(0).start().await;
    stack.cp.create_tenant("acme").await;
    let cp = &stack.cp;
    let get_tenant = || cp.tenant("acme");
    assert_eventually!(
        {
            let t = get_tenant().await;
            t.status.is_some_and(|s| {
                s.published_revision == t.policy_revision && s.publish_time.is_some()
            })
        },
        DEADLINE,
        "the first revision is published"
    );

    // NATS goes away: the next change cannot be published, and the tenant says why.
    stack.nats().stop();
    cp.tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            display_name: Some("Acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eventually!(
        {
            let t = get_tenant().await;
            let s = t.status.unwrap_or_default();
            !s.publish_error.is_empty()
                && s.publish_error_time.is_some()
                && s.published_revision < t.policy_revision
        },
        DEADLINE,
        "the publish error is shown"
    );
    let shown = get_tenant().await.status.unwrap().publish_error;
    assert!(shown.contains("policy bus"), "{shown}");
    let base = format!("http://{}", cp.metrics);
    let metrics = get(&format!("{base}/metrics")).await.1;
    assert!(
        value(
            &metrics,
            "switchyard_control_plane_policy_publish_failures_total{reason=\"bus\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
    assert!(value(&metrics, "switchyard_control_plane_outbox_backlog").unwrap_or(0.0) >= 1.0);

    // Back: published, and the error is gone.
    stack.nats().restart().await;
    assert_eventually!(
        {
            let t = get_tenant().await;
            let s = t.status.unwrap_or_default();
            s.publish_error.is_empty() && s.published_revision == t.policy_revision
        },
        DEADLINE,
        "published again once NATS is back"
    );
}

/// Events no worker wrote, put on the usage queue by someone holding NATS credentials
/// that allow it, are dropped unfolded, and counted by why on the control plane's metrics.
#[tokio::test]
async fn events_dropped_off_a_queue_are_counted_by_why() {
    let stack = Stack::start().await;
    let forged =
        serde_json::to_vec(&switchyard_tests::usage_event("forged", "acme", 1_000)).unwrap();
    stack
        .nats()
        .publish_raw(vec![
            ("switchyard.usage.globex", forged),
            ("switchyard.usage.acme", b"not an event".to_vec()),
            ("switchyard.usage.acme", b"{}".to_vec()),
        ])
        .await;
    let url = format!("http://{}/metrics", stack.cp.metrics);
    let series = |reason: &str| {
        format!(
            "switchyard_control_plane_queued_events_rejected_total{{queue=\"usage\",reason=\"{reason}\"}}"
        )
    };
    let mut metrics: String;
    assert_eventually!(
        {
            metrics = get(&url).await.1;
            value(&metrics, &series("forged")) == Some(1.0)
                && value(&metrics, &series("unreadable")) == Some(2.0)
        },
        DEADLINE,
        "one forged and two unreadable usage events counted: {metrics}"
    );
    // Every queue the control plane consumes has its series from the start, for alerts.
    for queue in ["tools", "refusals"] {
        let none = format!(
            "switchyard_control_plane_queued_events_rejected_total{{queue=\"{queue}\",reason=\"forged\"}}"
        );
        assert_eq!(value(&metrics, &none), Some(0.0), "{metrics}");
    }
}

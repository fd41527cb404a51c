//! `switchyard dev`'s usage path (the in-process bus and SQLite): a store that fails for a
//! while loses no event and stops nothing.

use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{MemoryUsage, Queue as _, UsageEvent};
use switchyard_common::TenantSlug;
use switchyard_control_plane::model::Quotas;
use switchyard_tests::{assert_eventually, logs, sqlite_store};

const DEADLINE: Duration = Duration::from_secs(20);

fn event(id: &str) -> UsageEvent {
    switchyard_tests::usage_event(id, "acme", switchyard_control_plane::model::now_millis())
}

#[tokio::test]
async fn the_dev_usage_consumer_survives_a_store_error() {
    switchyard_tests::capture_logs();
    let (store, _dir) = sqlite_store().await;
    let acme = TenantSlug::parse("acme").unwrap();
    store
        .create_tenant(&acme, "", Quotas::default())
        .await
        .unwrap();
    // The store refuses to record usage for now.
    sqlx::query(
        "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_events_seen \
         BEGIN SELECT RAISE(ABORT, 'usage refused'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let bus = Arc::new(MemoryUsage::default());
    let folding = tokio::spawn(switchyard_control_plane::usage::fold(
        store.clone(),
        bus.clone(),
    ));
    bus.publish(&event("during")).await.unwrap();
    assert_eventually!(
        logs().contains("recording usage failed"),
        DEADLINE,
        "the store's failure is seen"
    );
    // The store recovers; the event waiting and the next one are both counted.
    sqlx::query("DROP TRIGGER refuse_usage")
        .execute(store.pool())
        .await
        .unwrap();
    bus.publish(&event("after")).await.unwrap();
    assert_eventually!(
        store.usage(&acme).await.unwrap().tool_calls == 2,
        DEADLINE,
        "both events counted"
    );
    folding.abort();
}

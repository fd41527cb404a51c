//! Call records are written once however their events arrive, on PostgreSQL and NATS: a
//! worker publishing a batch again (its acknowledgement lost), and a control plane that
//! stops mid-batch, after writing some of it and before acknowledging any, so the stream
//! redelivers the whole batch to the replica that takes over.

use futures::StreamExt as _;
use switchyard_bus::UsageEvent;
use switchyard_control_plane::usage::record_of;
use switchyard_tests::{ControlPlane, Stack, assert_eventually};

fn event(n: usize) -> UsageEvent {
    let at = switchyard_control_plane::model::now_millis();
    UsageEvent {
        target: format!("a__tool{n}"),
        ..switchyard_tests::usage_event(&format!("call-{n:03}"), "acme", at)
    }
}

/// The tools named by `acme`'s call records, in chain order.
async fn recorded(cp: &ControlPlane) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE chain = 'acme' AND kind = 'call' ORDER BY seq",
    )
    .fetch_all(cp.store.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|d: String| serde_json::from_str::<serde_json::Value>(&d).unwrap()["target"].to_string())
    .collect()
}

/// Whether the control plane's consumer holds nothing unacknowledged or undelivered.
async fn drained(stack: &Stack) -> bool {
    let js = async_nats::jetstream::new(stack.nats().client().await);
    let Ok(stream) = js.get_stream("SWITCHYARD_USAGE").await else {
        return false;
    };
    let Ok(mut consumer) = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("control-plane")
        .await
    else {
        return false;
    };
    consumer
        .info()
        .await
        .is_ok_and(|i| i.num_ack_pending == 0 && i.num_pending == 0)
}

/// Publishes `events` as a worker's reporter does: again while the bus answers with an
/// error (the first publish creates the stream and is refused).
async fn publish(buses: &switchyard_bus::Buses, events: &[UsageEvent]) {
    let mut tries = 0;
    while let Err(e) = buses.usage.publish_batch(events).await {
        tries += 1;
        assert!(tries < 50, "publishing failed: {e}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_recorded_once_across_a_retried_publish_and_a_replica_lost_mid_batch() {
    // The first control plane folds nothing: the replica below stands for it.
    let stack = Stack::builder()
        .workers(0)
        .control_plane(|c| c.usage_bus = None)
        .start()
        .await;
    stack.cp.create_tenant("acme").await;
    let buses = stack.nats().buses().await;
    let events: Vec<UsageEvent> = (0..30).map(event).collect();
    publish(&buses, &events).await;
    // A worker that did not see its acknowledgements publishes again.
    publish(&buses, &events[..10]).await;

    // A replica takes 20 events, writes 15, and stops before acknowledging any.
    let mut deliveries = buses.usage.consume().await.unwrap();
    let mut taken = Vec::new();
    while taken.len() < 20 {
        taken.push(deliveries.next().await.unwrap().unwrap());
    }
    let written: Vec<_> = taken[..15]
        .iter()
        .filter_map(|d| record_of(&d.event))
        .collect();
    assert_eq!(
        stack.cp.store.record_usage_batch(&written).await.unwrap(),
        15
    );
    drop(taken);
    drop(deliveries);
    assert_eq!(recorded(&stack.cp).await.len(), 15);

    // The replica that takes over is given every unacknowledged event again.
    let _replica = stack.replica_on_nats().await;
    assert_eventually!(
        recorded(&stack.cp).await.len() >= 30 && drained(&stack).await,
        std::time::Duration::from_secs(60),
        "every event folded and acknowledged"
    );
    let mut targets = recorded(&stack.cp).await;
    assert_eq!(targets.len(), 30, "{targets:?}");
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 30, "each call once");
    let usage = stack
        .cp
        .store
        .usage(&switchyard_common::TenantSlug::parse("acme").unwrap())
        .await
        .unwrap();
    assert_eq!(usage.tool_calls, 30, "each call counted once");
    let (records, head) = stack.cp.store.audit_chain("acme", 1, 1000).await.unwrap();
    let head = head.unwrap();
    switchyard_control_plane::audit::verify(&records, 1, Some((head.seq, &head.hash))).unwrap();
}

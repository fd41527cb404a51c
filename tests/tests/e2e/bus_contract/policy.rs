//! The policy bus: revisions never go backwards, watches deliver current values then
//! changes, and a dedicated worker's bus sees its own tenant alone.

use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{NatsBus, PolicyBus, PolicyEvent, Published, tombstone};
use switchyard_proto::policy::v1::{Status, TenantPolicy};

contract!(
    contract,
    switchyard_bus::MemoryBus::default(),
    |client| switchyard_bus::NatsBus::new(client, "policy");
    revisions_never_go_backwards,
    watch_delivers_current_values_then_synced_then_changes,
    empty_bus_is_synced_at_once,
    tombstones_keep_deleted_tenants_deleted,
    racing_publishers_end_at_the_highest_revision,
);

fn policy(tenant: &str, revision: u64) -> TenantPolicy {
    TenantPolicy {
        tenant: tenant.into(),
        revision,
        status: Status::Active as i32,
        ..Default::default()
    }
}

async fn next(
    stream: &mut futures::stream::BoxStream<'static, switchyard_bus::Result<PolicyEvent>>,
) -> PolicyEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
        .expect("no error")
}

fn put_of(event: PolicyEvent) -> (String, u64) {
    match event {
        PolicyEvent::Put(p) => (p.tenant, p.revision),
        other => panic!("expected a put, got {other:?}"),
    }
}

async fn revisions_never_go_backwards(bus: Arc<dyn PolicyBus>) {
    assert_eq!(bus.get("acme").await.unwrap(), None);
    assert_eq!(
        bus.publish(&policy("acme", 5)).await.unwrap(),
        Published::Written
    );
    assert_eq!(
        bus.publish(&policy("acme", 5)).await.unwrap(),
        Published::Stale { stored: 5 }
    );
    assert_eq!(
        bus.publish(&policy("acme", 3)).await.unwrap(),
        Published::Stale { stored: 5 }
    );
    assert_eq!(bus.get("acme").await.unwrap().unwrap().revision, 5);
    assert_eq!(
        bus.publish(&policy("acme", 6)).await.unwrap(),
        Published::Written
    );
    assert_eq!(bus.get("acme").await.unwrap().unwrap().revision, 6);
    // Tenants are independent.
    assert_eq!(
        bus.publish(&policy("other", 1)).await.unwrap(),
        Published::Written
    );
}

async fn watch_delivers_current_values_then_synced_then_changes(bus: Arc<dyn PolicyBus>) {
    bus.publish(&policy("a", 1)).await.unwrap();
    bus.publish(&policy("b", 2)).await.unwrap();
    bus.publish(&policy("a", 3)).await.unwrap();
    let mut watch = bus.watch().await.unwrap();
    let mut initial = vec![
        put_of(next(&mut watch).await),
        put_of(next(&mut watch).await),
    ];
    initial.sort();
    assert_eq!(
        initial,
        [("a".to_owned(), 3), ("b".to_owned(), 2)],
        "latest value per tenant"
    );
    assert_eq!(next(&mut watch).await, PolicyEvent::Synced);
    bus.publish(&policy("c", 4)).await.unwrap();
    assert_eq!(put_of(next(&mut watch).await), ("c".to_owned(), 4));
    bus.publish(&policy("a", 2)).await.unwrap();
    bus.publish(&policy("a", 9)).await.unwrap();
    assert_eq!(
        put_of(next(&mut watch).await),
        ("a".to_owned(), 9),
        "a refused publish is not seen"
    );
}

async fn empty_bus_is_synced_at_once(bus: Arc<dyn PolicyBus>) {
    let mut watch = bus.watch().await.unwrap();
    assert_eq!(next(&mut watch).await, PolicyEvent::Synced);
    bus.publish(&policy("a", 1)).await.unwrap();
    assert_eq!(put_of(next(&mut watch).await), ("a".to_owned(), 1));
}

async fn tombstones_keep_deleted_tenants_deleted(bus: Arc<dyn PolicyBus>) {
    bus.publish(&policy("acme", 4)).await.unwrap();
    bus.publish(&tombstone("acme", 7)).await.unwrap();
    assert_eq!(
        bus.publish(&policy("acme", 5)).await.unwrap(),
        Published::Stale { stored: 7 }
    );
    let stored = bus.get("acme").await.unwrap().unwrap();
    assert_eq!(stored.status(), Status::Deleted);
    // Re-created later, at a higher revision, it comes back.
    assert_eq!(
        bus.publish(&policy("acme", 8)).await.unwrap(),
        Published::Written
    );
}

async fn racing_publishers_end_at_the_highest_revision(bus: Arc<dyn PolicyBus>) {
    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            // Each publisher walks the revisions in its own order.
            for i in 0..10u64 {
                let revision = 1 + (i * 7 + worker * 3) % 40;
                bus.publish(&policy("acme", revision)).await.unwrap();
            }
            bus.publish(&policy("acme", 40 + worker)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(bus.get("acme").await.unwrap().unwrap().revision, 43);
}

#[tokio::test]
async fn nats_bus_can_be_made_before_the_server_is_reachable() {
    let nats = switchyard_tests::Stack::nats_server().await;
    nats.stop();
    let client = nats.client().await;
    let bus = NatsBus::new(client, "policy");
    assert!(
        bus.get("acme").await.is_err(),
        "unreachable server is an error, not a panic"
    );
    nats.restart().await;
    switchyard_tests::assert_eventually!(
        bus.publish(&policy("acme", 1)).await.is_ok(),
        Duration::from_secs(15),
        "publish after the server came back"
    );
}

/// A dedicated worker's policy bus watches its tenant's key alone: it is synced at once
/// while that key is absent (other tenants' keys notwithstanding), then sees its tenant's
/// changes and no one else's.
#[tokio::test]
async fn a_scoped_policy_bus_sees_its_tenant_alone() {
    let nats = switchyard_tests::Stack::nats_server().await;
    let client = nats.client().await;
    let fleet_bus = NatsBus::new(client.clone(), "policy");
    fleet_bus.publish(&policy("globex", 1)).await.unwrap();
    let acme = NatsBus::scoped(client, "policy", "acme");
    let mut watch = acme.watch().await.unwrap();
    assert_eq!(next(&mut watch).await, PolicyEvent::Synced);
    fleet_bus.publish(&policy("globex", 2)).await.unwrap();
    fleet_bus.publish(&policy("acme", 3)).await.unwrap();
    assert_eq!(put_of(next(&mut watch).await), ("acme".to_owned(), 3));
    // Watched again with the key present: its value, then synced.
    let mut again = acme.watch().await.unwrap();
    assert_eq!(put_of(next(&mut again).await), ("acme".to_owned(), 3));
    assert_eq!(next(&mut again).await, PolicyEvent::Synced);
}

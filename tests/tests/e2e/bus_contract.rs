//! The policy bus contract: every test runs on the in-process bus and on NATS JetStream KV.

use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{NatsBus, PolicyBus, PolicyEvent, Published, tombstone};
use switchyard_proto::policy::v1::{Status, TenantPolicy};

/// Runs each named `async fn(Arc<dyn Bus>)` as two tests: on the in-process
/// implementation `switchyard dev` uses, and on NATS JetStream (made from `$client`).
macro_rules! contract {
    ($module:ident, $memory:expr, |$client:ident| $nats:expr; $($name:ident),* $(,)?) => {
        mod $module {
            mod in_memory {
                $(
                    #[tokio::test]
                    async fn $name() {
                        super::super::$name(std::sync::Arc::new($memory)).await;
                    }
                )*
            }
            mod on_nats {
                $(
                    #[tokio::test]
                    async fn $name() {
                        let nats = switchyard_tests::Stack::nats_server().await;
                        let $client = nats.client().await;
                        super::super::$name(std::sync::Arc::new($nats)).await;
                    }
                )*
            }
        }
    };
}

contract!(
    policy,
    switchyard_bus::MemoryBus::default(),
    |client| switchyard_bus::NatsBus::new(client, "policy");
    revisions_never_go_backwards,
    watch_delivers_current_values_then_synced_then_changes,
    empty_bus_is_synced_at_once,
    tombstones_keep_deleted_tenants_deleted,
    racing_publishers_end_at_the_highest_revision,
);

contract!(
    sessions,
    switchyard_bus::MemorySessions::default(),
    |client| switchyard_bus::NatsSessions::new(client, "sessions", std::time::Duration::from_secs(60));
    session_records_round_trip,
);

contract!(
    usage,
    switchyard_bus::MemoryUsage::default(),
    |client| switchyard_bus::NatsUsage::new(client);
    usage_events_arrive_in_order_once_per_id,
    a_consumer_started_again_gets_what_was_sent_meanwhile,
    a_batch_arrives_whole_once_per_id,
);

contract!(
    tools,
    switchyard_bus::MemoryTools::default(),
    |client| switchyard_bus::NatsTools::new(client);
    tool_sightings_arrive_once_per_definition,
);

/// How long a heartbeat lives in the fleet contract.
const HEARTBEAT_TTL: Duration = Duration::from_secs(2);

contract!(
    fleet,
    switchyard_bus::MemoryFleet::with_ttl(super::super::HEARTBEAT_TTL),
    |client| switchyard_bus::NatsFleet::new(client, "workers", super::super::HEARTBEAT_TTL);
    heartbeats_list_the_live_fleet,
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

/// The session record store, on both implementations.
async fn session_records_round_trip(kv: Arc<dyn switchyard_bus::SessionKv>) {
    assert_eq!(kv.get("s1.owner").await.unwrap(), None);
    kv.put("s1.owner", bytes::Bytes::from_static(b"one"))
        .await
        .unwrap();
    kv.put("s2.owner", bytes::Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(
        kv.get("s1.owner").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    kv.put("s1.owner", bytes::Bytes::from_static(b"uno"))
        .await
        .unwrap();
    assert_eq!(
        kv.get("s1.owner").await.unwrap().as_deref(),
        Some(&b"uno"[..])
    );
    kv.delete("s1.owner").await.unwrap();
    assert_eq!(kv.get("s1.owner").await.unwrap(), None);
    assert_eq!(
        kv.get("s2.owner").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    kv.delete("never-written").await.unwrap();
}

fn usage_event(id: &str) -> switchyard_bus::UsageEvent {
    switchyard_bus::UsageEvent {
        id: id.into(),
        tenant: "acme".into(),
        key_id: "abcdefghijkl".into(),
        method: switchyard_bus::UsageMethod::ToolsCall,
        target: "alpha__echo".into(),
        connector: "alpha".into(),
        ok: true,
        at_ms: 1_000,
        duration_ms: 3,
    }
}

async fn usage_events_arrive_in_order_once_per_id(usage: Arc<switchyard_bus::UsageBus>) {
    // Repeats come before the last event: delivered in order, a repeat would show before it.
    for id in ["e1", "e2", "e1", "e3", "e2", "e4"] {
        usage.publish(&usage_event(id)).await.unwrap();
    }
    let mut deliveries = usage.consume().await.unwrap();
    for want in ["e1", "e2", "e3", "e4"] {
        let got = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(got.event, usage_event(want));
        got.ack().await.unwrap();
    }
}

/// A batch (with repeats, of itself and of an earlier event) is stored whole before its
/// publish returns, each id once, in order.
async fn a_batch_arrives_whole_once_per_id(usage: Arc<switchyard_bus::UsageBus>) {
    usage.publish(&usage_event("b0")).await.unwrap();
    let ids: Vec<String> = (0..300).map(|i| format!("b{}", i % 250)).collect();
    let batch: Vec<_> = ids.iter().map(|id| usage_event(id)).collect();
    usage.publish_batch(&batch).await.unwrap();
    let mut deliveries = usage.consume().await.unwrap();
    for i in 0..250 {
        let got = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(got.event.id, format!("b{i}"));
        got.ack().await.unwrap();
    }
    let more = tokio::time::timeout(Duration::from_millis(500), deliveries.next()).await;
    assert!(more.is_err(), "a repeat was delivered: {more:?}");
}

async fn a_consumer_started_again_gets_what_was_sent_meanwhile(
    usage: Arc<switchyard_bus::UsageBus>,
) {
    usage.publish(&usage_event("before")).await.unwrap();
    let mut deliveries = usage.consume().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(first.event.id, "before");
    first.ack().await.unwrap();
    // The consumer stops (its stream failed, say) and starts again.
    drop(deliveries);
    usage.publish(&usage_event("meanwhile")).await.unwrap();
    let mut deliveries = usage.consume().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(next.event.id, "meanwhile");
}

fn sighting(tenant: &str, tool: &str, digest: &str) -> switchyard_bus::ToolSighting {
    switchyard_bus::ToolSighting {
        id: format!("{tenant}/{tool}/{digest}"),
        tenant: tenant.into(),
        connector: "gh".into(),
        tool: tool.into(),
        digest: digest.into(),
        definition: Some(format!(r#"{{"name":"{tool}"}}"#)),
        worker: "w1".into(),
        at_ms: 5,
    }
}

/// Two workers that see the same definition report it once; each tenant's and each
/// definition's sighting arrives, in order.
async fn tool_sightings_arrive_once_per_definition(tools: Arc<switchyard_bus::ToolBus>) {
    let sent = [
        sighting("acme", "search", "d1"),
        sighting("acme", "search", "d1"),
        sighting("globex", "search", "d1"),
        sighting("acme", "search", "d2"),
        sighting("acme", "search", "d1"),
    ];
    for s in &sent {
        tools.publish(s).await.unwrap();
    }
    let mut deliveries = tools.consume().await.unwrap();
    for want in [&sent[0], &sent[2], &sent[3]] {
        let got = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
            .await
            .expect("a sighting within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(&got.event, want);
        got.ack().await.unwrap();
    }
    let more = tokio::time::timeout(Duration::from_millis(500), deliveries.next()).await;
    assert!(more.is_err(), "repeats were delivered: {more:?}");
}

fn heartbeat(worker: &str, at_ms: i64) -> switchyard_bus::Heartbeat {
    switchyard_bus::Heartbeat {
        worker: worker.into(),
        started_ms: 1,
        at_ms,
        ready: true,
        tenants: 2,
        policy_revision: 7,
        sessions: [("acme".to_owned(), 3)].into(),
        breakers: vec![switchyard_bus::BreakerReport {
            tenant: "acme".into(),
            connector: "gh".into(),
            state: switchyard_bus::BreakerStatus::Open,
            retry_at_ms: 99,
        }],
        only_tenant: None,
    }
}

async fn heartbeats_list_the_live_fleet(fleet: Arc<dyn switchyard_bus::Fleet>) {
    assert!(fleet.members().await.unwrap().is_empty());
    fleet.beat(&heartbeat("w1", 10)).await.unwrap();
    fleet.beat(&heartbeat("w2", 10)).await.unwrap();
    fleet.beat(&heartbeat("w1", 20)).await.unwrap();
    let mut members = fleet.members().await.unwrap();
    members.sort_by(|a, b| a.worker.cmp(&b.worker));
    assert_eq!(members, vec![heartbeat("w1", 20), heartbeat("w2", 10)]);
    // w2 stops beating; w1 goes on: only w1 stays a member.
    let mut at = 20;
    switchyard_tests::assert_eventually!(
        {
            at += 1;
            fleet.beat(&heartbeat("w1", at)).await.unwrap();
            fleet
                .members()
                .await
                .unwrap()
                .iter()
                .map(|h| h.worker.clone())
                .collect::<Vec<_>>()
                == ["w1"]
        },
        HEARTBEAT_TTL * 10,
        "w2's heartbeat expires"
    );
}

/// NATS keeps usage events until the control plane acknowledges them, across restarts.
#[tokio::test]
async fn unacknowledged_usage_events_are_delivered_again() {
    use switchyard_bus::Queue as _;
    let nats = switchyard_tests::Stack::nats_server().await;
    let usage = switchyard_bus::NatsUsage::new(nats.client().await);
    for id in ["e1", "e1", "e2"] {
        usage.publish(&usage_event(id)).await.unwrap();
    }
    let mut deliveries = usage.consume().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.event.id, "e1");
    first.ack().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.event.id, "e2", "the repeated e1 was dropped");
    // Not acknowledged: a new consumer (the control plane restarted) gets it again.
    drop(second);
    drop(deliveries);
    let again = switchyard_bus::NatsUsage::new(nats.client().await);
    let mut deliveries = again.consume().await.unwrap();
    let redelivered = tokio::time::timeout(Duration::from_secs(60), deliveries.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(redelivered.event, usage_event("e2"));
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

/// A dedicated pool's fleet lists its own pool's heartbeats alone (as they are written,
/// from its first look on); the control plane's lists every pool.
#[tokio::test]
async fn a_scoped_fleet_lists_its_pool_alone() {
    use switchyard_bus::Fleet as _;
    let nats = switchyard_tests::Stack::nats_server().await;
    let client = nats.client().await;
    let ttl = Duration::from_secs(60);
    let all = switchyard_bus::NatsFleet::new(client.clone(), "workers", ttl);
    let acme = switchyard_bus::NatsFleet::scoped(client, "workers", ttl, "acme");
    assert!(acme.members().await.unwrap().is_empty());
    let dedicated = |worker: &str, tenant: &str| switchyard_bus::Heartbeat {
        only_tenant: Some(tenant.to_owned()),
        ..heartbeat(worker, 1)
    };
    let names = |hbs: Vec<switchyard_bus::Heartbeat>| {
        let mut n: Vec<String> = hbs.into_iter().map(|h| h.worker).collect();
        n.sort();
        n
    };
    switchyard_tests::assert_eventually!(
        {
            all.beat(&heartbeat("shared-1", 1)).await.unwrap();
            all.beat(&dedicated("acme-1", "acme")).await.unwrap();
            all.beat(&dedicated("acme-2", "acme")).await.unwrap();
            all.beat(&dedicated("globex-1", "globex")).await.unwrap();
            names(acme.members().await.unwrap()) == ["acme-1", "acme-2"]
        },
        Duration::from_secs(10),
        "acme's pool is listed, and nothing else"
    );
    assert_eq!(
        names(all.members().await.unwrap()),
        ["acme-1", "acme-2", "globex-1", "shared-1"]
    );
}

//! The outbox publisher: every committed change reaches the policy bus, including changes
//! made while the bus was away, deletions arrive as tombstones, and replicas racing to
//! publish never move a tenant backwards.

use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::{MemoryBus, NatsBus, PolicyBus, PolicyEvent};
use switchyard_proto::policy::v1::Status;
use switchyard_tests::admin::*;
use switchyard_tests::{
    ControlPlane, NatsServer, assert_eventually, mcp_connector, postgres_store,
};

const DEADLINE: Duration = Duration::from_secs(20);

async fn bus_revision(bus: &dyn PolicyBus, tenant: &str) -> Option<(u64, Status)> {
    bus.get(tenant)
        .await
        .ok()
        .flatten()
        .map(|p| (p.revision, p.status()))
}

#[tokio::test]
async fn changes_reach_nats_in_order_and_deletions_become_tombstones() {
    let nats = NatsServer::start().await;
    let bus: Arc<dyn PolicyBus> = Arc::new(NatsBus::new(nats.client().await, "policy"));
    let cp = ControlPlane::start_with_bus(postgres_store().await, Some(bus.clone())).await;

    let started = Instant::now();
    let t = cp.create_tenant("acme").await;
    assert_eventually!(
        bus_revision(&*bus, "acme").await == Some((t.policy_revision, Status::Active)),
        DEADLINE,
        "tenant creation published"
    );
    println!("create -> bus: {:?}", started.elapsed());

    let c = cp
        .connectors()
        .create_connector(mcp_connector(
            "acme",
            "gh",
            "http://127.0.0.1:9/",
            &[("authorization", "x")],
        ))
        .await
        .unwrap()
        .into_inner();
    let rev: u64 = c.etag.parse().unwrap();
    assert_eventually!(
        bus_revision(&*bus, "acme").await.map(|r| r.0) == Some(rev),
        DEADLINE,
        "connector change published"
    );
    let policy = bus.get("acme").await.unwrap().unwrap();
    assert_eq!(policy.connectors.len(), 1);

    let suspended = cp
        .tenants()
        .suspend_tenant(SuspendTenantRequest {
            slug: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eventually!(
        bus_revision(&*bus, "acme").await == Some((suspended.policy_revision, Status::Suspended)),
        DEADLINE,
        "suspension published"
    );

    cp.tenants()
        .delete_tenant(DeleteTenantRequest {
            slug: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eventually!(
        bus_revision(&*bus, "acme").await.map(|r| r.1) == Some(Status::Deleted),
        DEADLINE,
        "deletion published as a tombstone"
    );
    let tomb = bus_revision(&*bus, "acme").await.unwrap().0;
    assert!(tomb > suspended.policy_revision);
    assert_eventually!(
        cp.store.outbox_pending(10).await.unwrap().is_empty(),
        DEADLINE,
        "outbox drained"
    );
}

#[tokio::test]
async fn changes_made_while_nats_is_down_arrive_when_it_returns() {
    let mut nats = NatsServer::start().await;
    let bus: Arc<dyn PolicyBus> = Arc::new(NatsBus::new(nats.client().await, "policy"));
    let cp = ControlPlane::start_with_bus(postgres_store().await, Some(bus.clone())).await;
    cp.create_tenant("before").await;
    assert_eventually!(
        bus_revision(&*bus, "before").await.is_some(),
        DEADLINE,
        "first publish"
    );

    nats.stop();
    let during = cp.create_tenant("during").await;
    assert!(
        !cp.store.outbox_pending(10).await.unwrap().is_empty(),
        "the change waits in the outbox"
    );
    nats.restart().await;
    let back = Instant::now();
    assert_eventually!(
        bus_revision(&*bus, "during").await.map(|r| r.0) == Some(during.policy_revision),
        Duration::from_secs(60),
        "change made during the outage published after it"
    );
    println!("NATS back -> change published: {:?}", back.elapsed());
}

#[tokio::test]
async fn a_new_publisher_republishes_everything() {
    // Changes made with no publisher running stay in the outbox...
    let store = postgres_store().await;
    let cp = ControlPlane::start_on(store.clone()).await;
    for slug in ["a", "b", "c"] {
        cp.create_tenant(slug).await;
    }
    cp.tenants()
        .delete_tenant(DeleteTenantRequest {
            slug: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.outbox_pending(100).await.unwrap().len(), 4);
    // ...and a control plane started later with a bus publishes all of it.
    let bus: Arc<dyn PolicyBus> = Arc::new(MemoryBus::default());
    let _replica = cp.replica(Some(bus.clone())).await;
    for slug in ["a", "c"] {
        assert_eventually!(
            bus_revision(&*bus, slug).await.map(|r| r.1) == Some(Status::Active),
            DEADLINE,
            "{slug} published"
        );
    }
    assert_eventually!(
        bus_revision(&*bus, "b").await.map(|r| r.1) == Some(Status::Deleted),
        DEADLINE,
        "b published as deleted"
    );
    assert_eventually!(
        store.outbox_pending(100).await.unwrap().is_empty(),
        DEADLINE,
        "outbox drained"
    );
}

#[tokio::test]
async fn two_replicas_never_move_a_tenant_backwards() {
    let nats = NatsServer::start().await;
    let bus: Arc<dyn PolicyBus> = Arc::new(NatsBus::new(nats.client().await, "policy"));
    let store = postgres_store().await;
    let one = ControlPlane::start_with_bus(store, Some(bus.clone())).await;
    let two = one
        .replica(Some(Arc::new(NatsBus::new(nats.client().await, "policy"))))
        .await;
    let mut watch = bus.watch().await.unwrap();

    // Both replicas take changes at once; each publishes from the shared outbox.
    let mut last = HashMap::new();
    for i in 0..3 {
        let slug = format!("t{i}");
        one.create_tenant(&slug).await;
        for n in 0..5u32 {
            let api = if n % 2 == 0 { &one } else { &two };
            let t = api
                .tenants()
                .update_tenant(UpdateTenantRequest {
                    slug: slug.clone(),
                    display_name: Some(format!("v{n}")),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            last.insert(slug.clone(), t.policy_revision);
        }
    }
    // Every tenant ends at its last revision, and the watch never saw one go backwards.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let deadline = Instant::now() + DEADLINE;
    while seen != last {
        assert!(Instant::now() < deadline, "saw {seen:?}, want {last:?}");
        let event = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
        let Ok(Some(Ok(PolicyEvent::Put(p)))) = event else {
            continue;
        };
        if let Some(prev) = seen.get(&p.tenant) {
            assert!(
                p.revision > *prev,
                "{} went from {prev} to {}",
                p.tenant,
                p.revision
            );
        }
        seen.insert(p.tenant.clone(), p.revision);
    }
}

#[tokio::test]
async fn a_new_policy_key_seals_every_tenant_again() {
    let nats = NatsServer::start().await;
    let bus: Arc<dyn PolicyBus> = Arc::new(NatsBus::new(nats.client().await, "policy"));
    let old = ControlPlane::start_with_bus(postgres_store().await, Some(bus.clone())).await;
    old.create_tenant("acme").await;
    let c = old
        .connectors()
        .create_connector(mcp_connector(
            "acme",
            "gh",
            "http://127.0.0.1:9/",
            &[("authorization", "Bearer sealed")],
        ))
        .await
        .unwrap()
        .into_inner();
    let first: u64 = c.etag.parse().unwrap();
    assert_eventually!(
        bus_revision(&*bus, "acme").await.map(|r| r.0) == Some(first),
        DEADLINE,
        "published under the old key"
    );
    let header =
        |p: &switchyard_proto::policy::v1::TenantPolicy| match p.connectors[0].kind.as_ref() {
            Some(switchyard_proto::policy::v1::connector::Kind::Mcp(m)) => {
                m.headers[0].sealed_value.clone()
            }
            _ => panic!("an MCP connector"),
        };
    let aad = switchyard_common::seal::policy_header_aad("acme", "gh", "authorization");
    let sealed = header(&bus.get("acme").await.unwrap().unwrap());
    assert!(old.keys.policy.open(&aad, &sealed).is_ok());

    // The control plane restarts with a new policy key (the master key stays).
    let keys = switchyard_control_plane::compile::Keys {
        master: old.keys.master.clone(),
        policy: switchyard_common::seal::Keyring::new(
            switchyard_common::seal::SecretKey::generate(),
        ),
    };
    let new = old.replica_with_keys(keys.clone(), Some(bus.clone())).await;
    drop(old);
    assert_eventually!(
        bus_revision(&*bus, "acme").await.map(|r| r.0 > first) == Some(true),
        DEADLINE,
        "published again after the key changed"
    );
    let policy = bus.get("acme").await.unwrap().unwrap();
    let opened = keys.policy.open(&aad, &header(&policy)).unwrap();
    assert_eq!(&opened[..], b"Bearer sealed");
    let t = new
        .tenants()
        .get_tenant(GetTenantRequest {
            slug: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        t.policy_revision, policy.revision,
        "a new revision, not a new change"
    );
}

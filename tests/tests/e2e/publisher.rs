//! The outbox publisher: every committed change reaches the policy bus, including changes
//! made while the bus was away, deletions arrive as tombstones, and replicas racing to
//! publish never move a tenant backwards.

use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{MemoryBus, PolicyBus, PolicyEvent};
use switchyard_proto::policy::v1::Status;
use switchyard_tests::admin::*;
use switchyard_tests::{Stack, assert_eventually, mcp_connector, postgres_store, within};

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
    let stack = Stack::builder().workers(0).start().await;
    let (cp, bus) = (&stack.cp, stack.policy_bus().await);

    let t = cp.create_tenant("acme").await;
    assert_eventually!(
        bus_revision(&*bus, "acme").await == Some((t.policy_revision, Status::Active)),
        DEADLINE,
        "tenant creation published"
    );

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
    let stack = Stack::builder().workers(0).start().await;
    let (cp, bus) = (&stack.cp, stack.policy_bus().await);
    cp.create_tenant("before").await;
    assert_eventually!(
        bus_revision(&*bus, "before").await.is_some(),
        DEADLINE,
        "first publish"
    );

    stack.nats().stop();
    let during = cp.create_tenant("during").await;
    assert!(
        !cp.store.outbox_pending(10).await.unwrap().is_empty(),
        "the change waits in the outbox"
    );
    stack.nats().restart().await;
    assert_eventually!(
        bus_revision(&*bus, "during").await.map(|r| r.0) == Some(during.policy_revision),
        Duration::from_secs(60),
        "change made during the outage published after it"
    );
}

#[tokio::test]
async fn a_new_publisher_republishes_everything() {
    // Changes made with no publisher running stay in the outbox...
    let store = postgres_store().await;
    let stack = Stack::builder()
        .without_nats()
        .store(store.clone())
        .start()
        .await;
    let cp = &stack.cp;
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
    let _replica = stack.replica(Some(bus.clone())).await;
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
    let stack = Stack::builder().workers(0).start().await;
    let bus = stack.policy_bus().await;
    let one = &stack.cp;
    let two = stack.replica(Some(stack.policy_bus().await)).await;
    let mut watch = bus.watch().await.unwrap();

    // Both replicas take changes at once; each publishes from the shared outbox.
    let mut last = HashMap::new();
    for i in 0..3 {
        let slug = format!("t{i}");
        one.create_tenant(&slug).await;
        for n in 0..5u32 {
            let api = if n % 2 == 0 { one } else { &two };
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
    within(DEADLINE, "every tenant at its last revision", async {
        while seen != last {
            let p = match watch.next().await {
                Some(Ok(PolicyEvent::Put(p))) => p,
                Some(_) => continue,
                None => panic!("the watch ended"),
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
    })
    .await;
}

#[tokio::test]
async fn a_new_policy_key_seals_every_tenant_again() {
    let mut stack = Stack::builder().workers(0).start().await;
    let bus = stack.policy_bus().await;
    stack.cp.create_tenant("acme").await;
    let c = stack
        .cp
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
    assert!(stack.cp.keys.policy.open(&aad, &sealed).is_ok());

    // The control plane restarts with a new policy key (the master key stays).
    let keys = switchyard_control_plane::compile::Keys {
        master: stack.cp.keys.master.clone(),
        policy: switchyard_common::seal::Keyring::new(
            switchyard_common::seal::SecretKey::generate(),
        ),
    };
    let new = stack
        .replica_with_keys(keys.clone(), Some(bus.clone()))
        .await;
    stack.cp.stop();
    assert_eventually!(
        bus_revision(&*bus, "acme").await.map(|r| r.0 > first) == Some(true),
        DEADLINE,
        "published again after the key changed"
    );
    let policy = bus.get("acme").await.unwrap().unwrap();
    let opened = keys.policy.open(&aad, &header(&policy)).unwrap();
    assert_eq!(&opened[..], b"Bearer sealed");
    let t = new.tenant("acme").await;
    assert_eq!(
        t.policy_revision, policy.revision,
        "a new revision, not a new change"
    );
}

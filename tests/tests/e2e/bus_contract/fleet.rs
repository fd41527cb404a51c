//! Worker heartbeats: the live fleet, and a dedicated pool's view of itself.

use std::sync::Arc;
use std::time::Duration;

/// How long a heartbeat lives in the fleet contract.
const HEARTBEAT_TTL: Duration = Duration::from_secs(2);

contract!(
    contract,
    switchyard_bus::MemoryFleet::with_ttl(super::super::HEARTBEAT_TTL),
    |client| switchyard_bus::NatsFleet::new(client, "workers", super::super::HEARTBEAT_TTL);
    heartbeats_list_the_live_fleet,
);

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

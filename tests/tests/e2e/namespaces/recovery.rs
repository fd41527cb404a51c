//! Recovery: only the Lease holder writes and another replica takes over, and refused
//! writes and expired watches are recovered from.

use super::{DEADLINE, Env};
use serde_json::json;
use std::time::Duration;
use switchyard_control_plane::model::Tier;
use switchyard_tests::assert_eventually;
use switchyard_tests::kube_fake::key;

#[tokio::test]
async fn only_the_lease_holder_reconciles_and_another_takes_over() {
    let mut env = Env::start(2, Duration::from_secs(1)).await;
    let a = env.tenant("alpha", Tier::Shared, "").await;
    let b = env.tenant("bravo", Tier::Shared, "").await;
    assert_eventually!(
        env.reconciled(&a).await && env.reconciled(&b).await,
        DEADLINE,
        "both tenants reconciled"
    );
    let writers = |env: &Env| {
        env.fake
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| r.listener)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let first = writers(&env);
    assert_eq!(first.len(), 1, "one replica applies: {first:?}");
    let holder = *first.iter().next().unwrap();

    // The holder stops; once its Lease expires the other replica carries on.
    env.stop_replica(holder).await;
    let c = env.tenant("charlie", Tier::Shared, "").await;
    assert_eventually!(
        env.reconciled(&c).await,
        DEADLINE,
        "reconciled after failover"
    );
    let patched_c: Vec<usize> = env
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.key.namespace.as_deref() == Some("sy-t-charlie"))
        .map(|r| r.listener)
        .collect();
    assert!(
        !patched_c.is_empty() && patched_c.iter().all(|l| *l != holder),
        "{patched_c:?}"
    );
}

#[tokio::test]
async fn refused_writes_and_expired_watches_are_recovered_from() {
    // No resync within the test: only watch events and retries drive the reconciler.
    let env = Env::start(1, Duration::from_secs(3600)).await;
    env.fake.fail_next(&[500, 409, 503]);
    let acme = env.tenant("acme", Tier::Isolated, "small").await;
    let ns = "sy-t-acme";
    assert_eventually!(
        env.deployment(ns).is_some(),
        DEADLINE,
        "applied despite failures"
    );
    let refused = env
        .fake
        .requests()
        .iter()
        .filter(|r| r.status >= 409)
        .count();
    assert_eq!(refused, 3);
    assert_eventually!(
        env.store
            .isolation_status(&acme)
            .await
            .unwrap()
            .is_some_and(|i| i.namespace == ns),
        DEADLINE,
        "status recorded"
    );

    // The watches expire; drift on the pool is still noticed through the watch.
    env.fake.expire_watches();
    let deployment = key("apis/apps/v1", "deployments", Some(ns), "switchyard-worker");
    env.fake
        .edit(&deployment, |d| d["spec"]["replicas"] = json!(7));
    assert_eventually!(
        env.deployment(ns)
            .is_some_and(|d| d["spec"]["replicas"] == 1),
        DEADLINE,
        "drift on the pool repaired after the watch expired"
    );
}

//! Tier changes both ways: a dedicated pool is ready before it serves (make before break),
//! scales to zero while suspended, and goes after its route.

use super::{DEADLINE, Env};
use std::time::Duration;
use switchyard_control_plane::model::{TenantStatus, Tier};
use switchyard_control_plane::store::TenantChange;
use switchyard_tests::assert_eventually;
use switchyard_tests::kube_fake::key;

#[tokio::test]
async fn tier_changes_make_the_new_pool_ready_before_it_serves() {
    let env = Env::start(1, Duration::from_secs(1)).await;
    let acme = env.tenant("acme", Tier::Isolated, "small").await;
    let ns = "sy-t-acme";
    assert_eventually!(
        env.deployment(ns).is_some(),
        DEADLINE,
        "the pool is applied"
    );
    let deployment = env.deployment(ns).unwrap();
    assert_eq!(
        deployment["spec"]["replicas"], 1,
        "the small profile's pool"
    );
    let route = key(
        "apis/gateway.networking.k8s.io/v1",
        "httproutes",
        Some(ns),
        "switchyard-worker",
    );
    // The worker's own key: derived for this tenant, never the policy key.
    let secret = env
        .fake
        .get(&key("api/v1", "secrets", Some(ns), "switchyard-worker"))
        .unwrap();
    let derived = env.policy_key.primary().for_tenant("acme").to_base64();
    let stored = secret["data"]["policy-key"].as_str().unwrap();
    use base64::Engine as _;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .unwrap();
    assert_eq!(stored, derived.as_bytes());
    assert_ne!(stored, env.policy_key.primary().to_base64().as_bytes());

    // Not ready: after two more looks at the pool, still no route, and the shared
    // workers keep serving the tenant.
    let pool = key("apis/apps/v1", "deployments", Some(ns), "switchyard-worker");
    let looks = || {
        env.fake
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.key == pool)
            .count()
    };
    let seen = looks();
    assert_eventually!(looks() >= seen + 2, DEADLINE, "the reconciler looks again");
    assert!(env.fake.get(&route).is_none());
    assert!(!env.store.get_tenant(&acme).await.unwrap().dedicated());

    // Ready: the route, then the hand-over.
    env.fake.set_ready(
        &key("apis/apps/v1", "deployments", Some(ns), "switchyard-worker"),
        1,
    );
    assert_eventually!(
        env.store.get_tenant(&acme).await.unwrap().dedicated(),
        DEADLINE,
        "the dedicated pool serves the tenant"
    );
    let route_object = env
        .fake
        .get(&route)
        .expect("the route exists before the hand-over");
    assert_eq!(
        route_object["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "/t/acme/"
    );

    // Suspended: the pool scales to zero.
    env.change(
        &acme,
        TenantChange {
            status: Some((TenantStatus::Suspended, String::new())),
            ..Default::default()
        },
    )
    .await;
    assert_eventually!(
        env.deployment(ns)
            .is_some_and(|d| d["spec"]["replicas"] == 0),
        DEADLINE,
        "a suspended tenant's pool scales to zero"
    );
    env.change(
        &acme,
        TenantChange {
            status: Some((TenantStatus::Active, String::new())),
            ..Default::default()
        },
    )
    .await;

    // Back to shared: the shared workers serve at once, the route goes, then the pool.
    env.change(
        &acme,
        TenantChange {
            tier: Some(Tier::Shared),
            ..Default::default()
        },
    )
    .await;
    assert!(!env.store.get_tenant(&acme).await.unwrap().dedicated());
    assert_eventually!(
        env.deployment(ns).is_none() && env.fake.get(&route).is_none(),
        DEADLINE,
        "the pool and its route are removed"
    );
    let deletes: Vec<String> = env
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.key.namespace.as_deref() == Some(ns))
        .map(|r| r.key.resource.clone())
        .collect();
    assert_eq!(
        deletes.first().map(String::as_str),
        Some("httproutes"),
        "{deletes:?}"
    );
    assert!(env.has("api/v1", "resourcequotas", ns, "switchyard-quota"));

    // And isolated again: the new pool must become ready again before it serves.
    env.change(
        &acme,
        TenantChange {
            tier: Some(Tier::Isolated),
            ..Default::default()
        },
    )
    .await;
    assert_eventually!(env.deployment(ns).is_some(), DEADLINE, "the pool is back");
    assert!(!env.store.get_tenant(&acme).await.unwrap().dedicated());
    env.fake.set_ready(
        &key("apis/apps/v1", "deployments", Some(ns), "switchyard-worker"),
        1,
    );
    assert_eventually!(
        env.store.get_tenant(&acme).await.unwrap().dedicated(),
        DEADLINE,
        "served by the pool again"
    );
}

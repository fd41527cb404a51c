//! Which namespaces the reconciler manages and what it keeps there: a tenant's namespace
//! follows its changes and is repaired; one it does not manage is never touched.

use super::{DEADLINE, Env};
use serde_json::json;
use std::time::Duration;
use switchyard_control_plane::model::Tier;
use switchyard_control_plane::store::TenantChange;
use switchyard_tests::assert_eventually;
use switchyard_tests::kube_fake::key;

#[tokio::test]
async fn a_tenants_namespace_follows_its_changes_and_is_repaired() {
    let env = Env::start(1, Duration::from_secs(1)).await;
    let acme = env.tenant("acme", Tier::Shared, "").await;
    let ns = "sy-t-acme";
    assert_eventually!(env.reconciled(&acme).await, DEADLINE, "reconciled");
    let namespace = env
        .fake
        .get(&key("api/v1", "namespaces", None, ns))
        .unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["switchyard.dev/tenant"],
        "acme"
    );
    assert_eq!(
        namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "switchyard"
    );
    assert_eq!(
        env.quota_pods(ns).as_deref(),
        Some("10"),
        "the default profile"
    );
    for (api, resource, name) in [
        ("api/v1", "limitranges", "switchyard-limits"),
        (
            "apis/networking.k8s.io/v1",
            "networkpolicies",
            "default-deny",
        ),
        (
            "apis/networking.k8s.io/v1",
            "networkpolicies",
            "switchyard-worker",
        ),
        ("api/v1", "serviceaccounts", "switchyard-worker"),
    ] {
        assert!(env.has(api, resource, ns, name), "{resource}/{name}");
    }
    assert!(env.deployment(ns).is_none(), "a shared tenant has no pool");
    let status = env.store.isolation_status(&acme).await.unwrap().unwrap();
    assert_eq!(status.namespace, ns);

    // Every write was a server-side apply under the control plane's field manager.
    for r in env.fake.requests().iter().filter(|r| r.method == "PATCH") {
        assert_eq!(r.field_manager.as_deref(), Some("switchyard-control-plane"));
    }

    // A profile change.
    env.change(
        &acme,
        TenantChange {
            compute_profile: Some("small".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eventually!(
        env.quota_pods(ns).as_deref() == Some("3"),
        DEADLINE,
        "the small profile's quota"
    );

    // Drift: someone edits the quota; the next resync puts it back.
    env.fake.edit(
        &key("api/v1", "resourcequotas", Some(ns), "switchyard-quota"),
        |q| q["spec"]["hard"]["pods"] = json!("999"),
    );
    assert_eventually!(
        env.quota_pods(ns).as_deref() == Some("3"),
        DEADLINE,
        "drift repaired"
    );

    // Deletion removes the namespace.
    env.store.delete_tenant(&acme, None).await.unwrap();
    assert_eventually!(
        env.fake
            .get(&key("api/v1", "namespaces", None, ns))
            .is_none(),
        DEADLINE,
        "the deleted tenant's namespace is gone"
    );
}

#[tokio::test]
async fn a_namespace_the_control_plane_does_not_manage_is_never_touched() {
    let env = Env::start(1, Duration::from_secs(1)).await;
    let ns = "sy-t-acme";
    let foreign = key("api/v1", "namespaces", None, ns);
    env.fake.put(
        &foreign,
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"team": "someone-else"}}}),
    );
    let before = env.fake.get(&foreign).unwrap();
    let acme = env.tenant("acme", Tier::Isolated, "").await;
    assert_eventually!(
        env.store
            .isolation_status(&acme)
            .await
            .unwrap()
            .is_some_and(|i| i.error.contains("not managed by Switchyard")),
        DEADLINE,
        "the conflict shows in the tenant's status"
    );
    // After the deletion, once the reconciler has looked at the namespace again, it is
    // still as it was.
    let looks = || {
        env.fake
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.key == foreign)
            .count()
    };
    let seen = looks();
    env.store.delete_tenant(&acme, None).await.unwrap();
    assert_eventually!(looks() >= seen + 2, DEADLINE, "the reconciler looks again");
    assert_eq!(env.fake.get(&foreign), Some(before), "left as it was");
    let touched: Vec<_> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.method != "GET"
                && (r.key.namespace.as_deref() == Some(ns)
                    || (r.key.resource == "namespaces" && r.key.name == ns))
        })
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
}

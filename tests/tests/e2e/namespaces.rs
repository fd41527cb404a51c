//! The namespace reconciler against an HTTP fake of the Kubernetes API (no API server can run
//! where the suite runs): tenant changes, profile changes, suspension, tier changes both ways
//! (make before break), deletion and injected drift converge; a namespace of a tenant's name
//! that the control plane does not manage is never touched; only the Lease holder writes;
//! refused writes and expired watches are recovered from.

use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use switchyard_common::TenantSlug;
use switchyard_common::seal::{Keyring, SecretKey};
use switchyard_control_plane::Store;
use switchyard_control_plane::kube::lease::Lease;
use switchyard_control_plane::kube::reconciler::Reconciler;
use switchyard_control_plane::kube::{ComputeProfile, GatewayRef, KubeSettings, Profiles};
use switchyard_control_plane::model::{Placement, Quotas, TenantStatus, Tier};
use switchyard_control_plane::store::TenantChange;
use switchyard_tests::kube_fake::{KubeFake, key};
use switchyard_tests::{assert_eventually, postgres_store};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

fn settings(identity: &str, resync: Duration) -> KubeSettings {
    KubeSettings {
        namespace_prefix: "sy-t-".into(),
        lease_namespace: "switchyard".into(),
        identity: identity.into(),
        worker_image: "registry.example.com/switchyard:test".into(),
        nats_url: "nats://nats.nats:4222".into(),
        nats_port: 4222,
        public_url: Some("https://mcp.example.com".into()),
        upstream_allow: Vec::new(),
        ingress_namespace: "ingress-nginx".into(),
        monitoring_namespace: "monitoring".into(),
        gateway: GatewayRef::parse("gateways/public"),
        resync,
    }
}

fn profiles() -> Profiles {
    let small = ComputeProfile {
        pods: 3,
        workers: 1,
        ..Default::default()
    };
    Profiles::new(BTreeMap::from([("small".into(), small)]), None).unwrap()
}

struct Env {
    store: Store,
    fake: KubeFake,
    policy_key: Keyring,
    stops: Vec<CancellationToken>,
    running: Vec<Option<tokio::task::JoinHandle<()>>>,
}

impl Env {
    async fn start(replicas: usize, resync: Duration) -> Self {
        switchyard_tests::install_tls();
        let store = postgres_store().await;
        let fake = KubeFake::start(replicas).await;
        let policy_key = Keyring::new(SecretKey::generate());
        let mut env = Self {
            store,
            fake,
            policy_key,
            stops: Vec::new(),
            running: Vec::new(),
        };
        for replica in 0..replicas {
            env.start_replica(replica, resync);
        }
        env
    }

    fn start_replica(&mut self, replica: usize, resync: Duration) {
        let identity = format!("replica-{replica}");
        let client = self.fake.client(replica);
        let lease = Lease::new(
            kube::Api::namespaced(client.clone(), "switchyard"),
            "switchyard-reconciler",
            &identity,
        )
        .with_timing(Duration::from_secs(2), Duration::from_millis(300));
        let reconciler = Reconciler::new(
            client,
            self.store.clone(),
            settings(&identity, resync),
            profiles(),
            self.policy_key.clone(),
        );
        let stop = CancellationToken::new();
        let running = tokio::spawn(reconciler.run(lease, stop.clone().cancelled_owned()));
        self.stops.push(stop);
        self.running.push(Some(running));
    }

    /// Stops replica `replica` and waits until it has stopped.
    async fn stop_replica(&mut self, replica: usize) {
        self.stops[replica].cancel();
        if let Some(running) = self.running[replica].take() {
            running.await.unwrap();
        }
    }

    async fn tenant(&self, slug: &str, tier: Tier, profile: &str) -> TenantSlug {
        let slug = TenantSlug::parse(slug).unwrap();
        let placement = Placement {
            tier,
            compute_profile: profile.into(),
        };
        self.store
            .create_placed_tenant(&slug, "", Quotas::default(), placement)
            .await
            .unwrap();
        slug
    }

    async fn change(&self, slug: &TenantSlug, change: TenantChange) {
        self.store.update_tenant(slug, None, change).await.unwrap();
    }

    fn quota_pods(&self, ns: &str) -> Option<String> {
        let q = self.fake.get(&key(
            "api/v1",
            "resourcequotas",
            Some(ns),
            "switchyard-quota",
        ))?;
        q["spec"]["hard"]["pods"].as_str().map(str::to_owned)
    }

    fn has(&self, api: &str, resource: &str, ns: &str, name: &str) -> bool {
        self.fake.get(&key(api, resource, Some(ns), name)).is_some()
    }

    fn deployment(&self, ns: &str) -> Option<serde_json::Value> {
        self.fake.get(&key(
            "apis/apps/v1",
            "deployments",
            Some(ns),
            "switchyard-worker",
        ))
    }

    async fn reconciled(&self, slug: &TenantSlug) -> bool {
        let t = self.store.get_tenant(slug).await.unwrap();
        self.store
            .isolation_status(slug)
            .await
            .unwrap()
            .is_some_and(|i| i.reconciled_revision == t.policy_revision && i.error.is_empty())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for s in &self.stops {
            s.cancel();
        }
    }
}

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

//! The namespace reconciler against an HTTP fake of the Kubernetes API (no API server can run
//! where the suite runs): tenant changes, profile changes, suspension, tier changes both ways
//! (make before break), deletion and injected drift converge; a namespace of a tenant's name
//! that the control plane does not manage is never touched; only the Lease holder writes;
//! refused writes and expired watches are recovered from.
//! The harness the modules share lives here.

use std::collections::BTreeMap;
use std::time::Duration;
use switchyard_common::TenantSlug;
use switchyard_common::seal::{Keyring, SecretKey};
use switchyard_control_plane::Store;
use switchyard_control_plane::kube::lease::Lease;
use switchyard_control_plane::kube::reconciler::Reconciler;
use switchyard_control_plane::kube::{ComputeProfile, GatewayRef, KubeSettings, Profiles};
use switchyard_control_plane::model::{Placement, Quotas, Tier};
use switchyard_control_plane::store::TenantChange;
use switchyard_tests::kube_fake::{KubeFake, key};
use switchyard_tests::postgres_store;
use tokio_util::sync::CancellationToken;

mod managed;
mod recovery;
mod tiers;

pub(super) const DEADLINE: Duration = Duration::from_secs(30);

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
        nats_signer: None,
        worker_env: Vec::new(),
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

pub(super) struct Env {
    pub(super) store: Store,
    pub(super) fake: KubeFake,
    pub(super) policy_key: Keyring,
    stops: Vec<CancellationToken>,
    running: Vec<Option<tokio::task::JoinHandle<()>>>,
}

impl Env {
    pub(super) async fn start(replicas: usize, resync: Duration) -> Self {
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
    pub(super) async fn stop_replica(&mut self, replica: usize) {
        self.stops[replica].cancel();
        if let Some(running) = self.running[replica].take() {
            running.await.unwrap();
        }
    }

    pub(super) async fn tenant(&self, slug: &str, tier: Tier, profile: &str) -> TenantSlug {
        let slug = TenantSlug::parse(slug).unwrap();
        let placement = Placement {
            tier,
            compute_profile: profile.into(),
        };
        self.store
            .create_placed_tenant(
                &slug,
                "",
                Quotas::default(),
                placement,
                Default::default(),
                Default::default(),
            )
            .await
            .unwrap();
        slug
    }

    pub(super) async fn change(&self, slug: &TenantSlug, change: TenantChange) {
        self.store.update_tenant(slug, None, change).await.unwrap();
    }

    pub(super) fn quota_pods(&self, ns: &str) -> Option<String> {
        let q = self.fake.get(&key(
            "api/v1",
            "resourcequotas",
            Some(ns),
            "switchyard-quota",
        ))?;
        q["spec"]["hard"]["pods"].as_str().map(str::to_owned)
    }

    pub(super) fn has(&self, api: &str, resource: &str, ns: &str, name: &str) -> bool {
        self.fake.get(&key(api, resource, Some(ns), name)).is_some()
    }

    pub(super) fn deployment(&self, ns: &str) -> Option<serde_json::Value> {
        self.fake.get(&key(
            "apis/apps/v1",
            "deployments",
            Some(ns),
            "switchyard-worker",
        ))
    }

    pub(super) async fn reconciled(&self, slug: &TenantSlug) -> bool {
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

//! Makes each tenant's namespace what `desired` says, with server-side apply under the
//! control plane's own field manager, in the kube-rs controller's shape: `reconcile` one
//! tenant to an `Action`, and `error_policy` for when it fails (backoff per tenant). A
//! tenant is reconciled when it changes (the store's change signal), when a managed
//! namespace or dedicated pool changes in the cluster (watches), and every `resync` to
//! repair drift. Only the replica holding the Lease reconciles.
//!
//! A namespace of a tenant's name that does not carry the managed-by and tenant labels is
//! never adopted, changed or deleted; the tenant's status shows the conflict.
//!
//! Moving between tiers is make-before-break. Into the isolated tier: the pool is applied,
//! and only once its Deployment has a ready replica is its HTTPRoute applied and the
//! tenant marked as served by it (a policy change that tells shared workers to answer
//! 503). Back to the shared tier: the tenant's update already handed it back to the shared
//! workers; the route goes first, then the pool.

use super::desired::{self, Object, POOL};
use super::lease::Lease;
use super::{KubeSettings, MANAGED_BY, Profiles, TENANT_LABEL};
use crate::model::{Tenant, TenantStatus, Tier};
use crate::store::Store;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use switchyard_common::TenantSlug;
use switchyard_common::seal::Keyring;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How soon a pool that is not ready yet is looked at again.
const POOL_WAIT: Duration = Duration::from_secs(2);
/// Backoff after a failed reconcile: doubling from this, up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the Kubernetes API failed: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Store(#[from] crate::Error),
    #[error(
        "namespace {0} exists and is not managed by Switchyard for this tenant: it is left alone"
    )]
    Foreign(String),
    #[error("compute profile {0:?} is not defined by this control plane")]
    UnknownProfile(String),
    #[error("an object could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What to do after a tenant was reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Up to date: look again at the next change or resync.
    Done,
    /// Look again after this long (a pool becoming ready).
    RequeueAfter(Duration),
}

/// How long to wait after the `failures`-th failure in a row; a foreign namespace is only
/// looked at again at the next resync.
pub fn error_policy(error: &ReconcileError, failures: u32, resync: Duration) -> Duration {
    match error {
        ReconcileError::Foreign(_) | ReconcileError::UnknownProfile(_) => resync,
        _ => BACKOFF_MIN
            .saturating_mul(2u32.saturating_pow(failures.min(16)))
            .min(BACKOFF_MAX),
    }
}

#[derive(Clone)]
pub struct Reconciler {
    client: kube::Client,
    store: Store,
    settings: KubeSettings,
    profiles: Profiles,
    policy_key: Keyring,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").finish_non_exhaustive()
    }
}

fn is_managed_for(labels: Option<&BTreeMap<String, String>>, tenant: &str) -> bool {
    labels.is_some_and(|l| {
        l.get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1)
            && l.get(TENANT_LABEL).map(String::as_str) == Some(tenant)
    })
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Reconciler {
    pub fn new(
        client: kube::Client,
        store: Store,
        settings: KubeSettings,
        profiles: Profiles,
        policy_key: Keyring,
    ) -> Self {
        Self {
            client,
            store,
            settings,
            profiles,
            policy_key,
        }
    }

    fn api(&self, o: &Object) -> Api<DynamicObject> {
        match &o.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &o.resource),
            None => Api::all_with(self.client.clone(), &o.resource),
        }
    }

    async fn apply(&self, o: &Object) -> Result<(), ReconcileError> {
        let body: DynamicObject = serde_json::from_value(o.body.clone())?;
        self.api(o)
            .patch(
                &o.name,
                &PatchParams::apply(super::FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        Ok(())
    }

    /// Removes what a dedicated pool consists of, the route first.
    async fn remove_pool(&self, namespace: &str) -> Result<(), ReconcileError> {
        for resource in desired::pool_resources() {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &resource);
            match api.delete(POOL, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn pool_ready(&self, namespace: &str) -> Result<bool, ReconcileError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        Ok(api
            .get_opt(POOL)
            .await?
            .and_then(|d| d.status?.ready_replicas)
            .is_some_and(|n| n >= 1))
    }

    /// Brings `slug`'s namespace to what its tenant (or its absence) asks for.
    pub async fn reconcile(&self, slug: &TenantSlug) -> Result<Action, ReconcileError> {
        let namespace = self.settings.namespace(slug.as_str());
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let existing = namespaces.get_opt(&namespace).await?;
        if let Some(ns) = &existing
            && !is_managed_for(ns.metadata.labels.as_ref(), slug.as_str())
        {
            return Err(ReconcileError::Foreign(namespace));
        }
        let tenant = match self.store.get_tenant(slug).await {
            Ok(t) => t,
            Err(crate::Error::NotFound(_)) => {
                if existing.is_some() {
                    match namespaces
                        .delete(&namespace, &DeleteParams::default())
                        .await
                    {
                        Ok(_) => tracing::info!(%namespace, "deleted tenant's namespace removed"),
                        Err(e) if not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                return Ok(Action::Done);
            }
            Err(e) => return Err(e.into()),
        };
        let action = self.converge(&tenant, &namespace).await?;
        // Marking the pool ready took a revision: record the tenant as it is now.
        let revision = self.store.get_tenant(slug).await?.policy_revision;
        self.store
            .record_reconciled(slug, &namespace, revision)
            .await?;
        Ok(action)
    }

    async fn converge(&self, tenant: &Tenant, namespace: &str) -> Result<Action, ReconcileError> {
        let profile = self
            .profiles
            .get(&tenant.placement.compute_profile)
            .ok_or_else(|| {
                ReconcileError::UnknownProfile(tenant.placement.compute_profile.clone())
            })?;
        let key = self.policy_key.primary().for_tenant(tenant.slug.as_str());
        let key = key.to_base64();
        let creds = self.settings.nats_creds(tenant.slug.as_str());
        let view = desired::Tenant {
            slug: tenant.slug.as_str(),
            suspended: tenant.status == TenantStatus::Suspended,
            profile,
            policy_key: &key,
            nats_creds: creds.as_deref(),
        };
        for o in desired::base(&self.settings, &view) {
            self.apply(&o).await?;
        }
        if tenant.placement.tier == Tier::Shared {
            // The tenant's update already handed it back to the shared workers.
            self.remove_pool(namespace).await?;
            self.store.set_pool_ready(&tenant.slug, false).await?;
            return Ok(Action::Done);
        }
        for o in desired::pool(&self.settings, &view) {
            self.apply(&o).await?;
        }
        if view.suspended {
            // Scaled to zero: whether it is ready does not matter while it serves no one.
            return Ok(Action::Done);
        }
        if !self.pool_ready(namespace).await? {
            return Ok(Action::RequeueAfter(POOL_WAIT));
        }
        if let Some(route) = desired::route(&self.settings, &view) {
            self.apply(&route).await?;
        }
        if self.store.set_pool_ready(&tenant.slug, true).await? {
            tracing::info!(tenant = %tenant.slug, "dedicated workers serve the tenant");
        }
        Ok(Action::Done)
    }

    /// Tenants with a managed namespace (for noticing deleted ones).
    async fn managed_namespaces(&self) -> Result<BTreeSet<String>, ReconcileError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        let list = namespaces
            .list(&kube::api::ListParams::default().labels(&selector))
            .await?;
        Ok(list
            .items
            .iter()
            .filter_map(|ns| ns.metadata.labels.as_ref()?.get(TENANT_LABEL).cloned())
            .collect())
    }

    /// Watches managed namespaces and dedicated pools, naming the tenant of each change.
    fn watch(&self, tx: mpsc::Sender<String>) {
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        let config = watcher::Config::default().labels(&selector);
        let namespaces = watcher(Api::<Namespace>::all(self.client.clone()), config.clone())
            .map(|e| e.map(|e| tenants_of(e, |n: &Namespace| n.metadata.labels.clone())))
            .boxed();
        let pools = watcher(Api::<Deployment>::all(self.client.clone()), config)
            .map(|e| e.map(|e| tenants_of(e, |d: &Deployment| d.metadata.labels.clone())))
            .boxed();
        let mut events = futures::stream::select(namespaces, pools);
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(tenants) => {
                        for t in tenants {
                            if tx.send(t).await.is_err() {
                                return;
                            }
                        }
                    }
                    // The watcher lists and watches again by itself (expired versions too).
                    Err(e) => {
                        tracing::debug!(error = %e, "watching tenant namespaces");
                        tokio::time::sleep(BACKOFF_MIN).await;
                    }
                }
            }
        });
    }

    /// Runs until `shutdown` resolves: holds the Lease, and while it does reconciles.
    pub async fn run(self, lease: Lease, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let (tx, mut events) = mpsc::channel(1024);
        self.watch(tx);
        let mut changes = self.store.changes();
        let mut due: HashMap<String, Instant> = HashMap::new();
        let mut failures: HashMap<String, u32> = HashMap::new();
        let mut known: BTreeSet<String> = BTreeSet::new();
        let mut leading = false;
        let mut renew_at = Instant::now();
        let mut resync_at = Instant::now();
        loop {
            let now = Instant::now();
            if now >= renew_at {
                let held = lease.try_hold().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the reconciler's Lease cannot be read or written");
                    false
                });
                if held && !leading {
                    tracing::info!("holding the reconciler Lease: reconciling tenant namespaces");
                    resync_at = now;
                } else if !held && leading {
                    tracing::info!("lost the reconciler Lease");
                }
                leading = held;
                renew_at = now + lease.renew_every();
            }
            if leading && now >= resync_at {
                self.enqueue_all(&mut due, &mut known, now).await;
                resync_at = now + self.settings.resync;
            }
            if leading {
                let ready: Vec<String> = due
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(t, _)| t.clone())
                    .collect();
                for tenant in ready {
                    due.remove(&tenant);
                    self.step(&tenant, &mut due, &mut failures).await;
                }
            }
            let next = due
                .values()
                .min()
                .copied()
                .filter(|_| leading)
                .unwrap_or(renew_at)
                .min(renew_at)
                .min(resync_at.max(now));
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if leading {
                        self.enqueue_changed(&mut due, &mut known).await;
                    }
                }
                Some(tenant) = events.recv() => {
                    if leading {
                        due.entry(tenant).or_insert_with(Instant::now);
                    }
                }
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }

    async fn step(
        &self,
        tenant: &str,
        due: &mut HashMap<String, Instant>,
        failures: &mut HashMap<String, u32>,
    ) {
        let Ok(slug) = TenantSlug::parse(tenant) else {
            return;
        };
        match self.reconcile(&slug).await {
            Ok(action) => {
                failures.remove(tenant);
                if let Action::RequeueAfter(after) = action {
                    due.insert(tenant.to_owned(), Instant::now() + after);
                }
            }
            Err(e) => {
                let n = failures.entry(tenant.to_owned()).or_default();
                let wait = error_policy(&e, *n, self.settings.resync);
                *n += 1;
                tracing::warn!(tenant, error = %e, retry_in_ms = wait.as_millis() as u64, "reconciling the tenant's namespace failed");
                let namespace = self.settings.namespace(tenant);
                if let Err(e) = self
                    .store
                    .record_reconcile_error(&slug, &namespace, &e.to_string())
                    .await
                {
                    tracing::debug!(error = %e, "recording a reconcile error failed");
                }
                due.insert(tenant.to_owned(), Instant::now() + wait);
            }
        }
    }

    /// Tenants whose policy moved on since their namespace was reconciled, and tenants gone.
    async fn enqueue_changed(
        &self,
        due: &mut HashMap<String, Instant>,
        known: &mut BTreeSet<String>,
    ) {
        let Ok(states) = self.store.reconcile_states().await else {
            return;
        };
        let now = Instant::now();
        let current: BTreeSet<String> = states.iter().map(|s| s.slug.to_string()).collect();
        for gone in known.difference(&current) {
            due.entry(gone.clone()).or_insert(now);
        }
        for s in states
            .iter()
            .filter(|s| s.policy_revision > s.reconciled_revision)
        {
            due.entry(s.slug.to_string()).or_insert(now);
        }
        *known = current;
    }

    /// Every tenant, and every managed namespace whose tenant is gone.
    async fn enqueue_all(
        &self,
        due: &mut HashMap<String, Instant>,
        known: &mut BTreeSet<String>,
        now: Instant,
    ) {
        if let Ok(states) = self.store.reconcile_states().await {
            *known = states.iter().map(|s| s.slug.to_string()).collect();
        }
        for t in known.iter() {
            due.entry(t.clone()).or_insert(now);
        }
        match self.managed_namespaces().await {
            Ok(tenants) => {
                for t in tenants {
                    due.entry(t).or_insert(now);
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing managed namespaces failed"),
        }
    }
}

/// The tenants a watch event is about.
fn tenants_of<K>(
    event: watcher::Event<K>,
    labels: impl Fn(&K) -> Option<BTreeMap<String, String>>,
) -> Vec<String> {
    let tenant = |k: &K| labels(k).and_then(|l| l.get(TENANT_LABEL).cloned());
    match event {
        watcher::Event::Apply(k) | watcher::Event::Delete(k) | watcher::Event::InitApply(k) => {
            tenant(&k).into_iter().collect()
        }
        watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_up_to_a_limit_and_foreign_namespaces_wait_for_resync() {
        let resync = Duration::from_secs(600);
        let api = ReconcileError::Kube(kube::Error::Api(
            kube::core::Status::failure("boom", "InternalError")
                .with_code(500)
                .boxed(),
        ));
        assert_eq!(error_policy(&api, 0, resync), Duration::from_secs(1));
        assert_eq!(error_policy(&api, 3, resync), Duration::from_secs(8));
        assert_eq!(error_policy(&api, 30, resync), BACKOFF_MAX);
        let foreign = ReconcileError::Foreign("sy-t-acme".into());
        assert_eq!(error_policy(&foreign, 0, resync), resync);
    }

    #[test]
    fn only_labelled_namespaces_of_the_tenant_count_as_managed() {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(is_managed_for(
            Some(&labels(&[MANAGED_BY, (TENANT_LABEL, "acme")])),
            "acme"
        ));
        assert!(!is_managed_for(Some(&labels(&[MANAGED_BY])), "acme"));
        assert!(!is_managed_for(
            Some(&labels(&[MANAGED_BY, (TENANT_LABEL, "other")])),
            "acme"
        ));
        assert!(!is_managed_for(None, "acme"));
    }
}

//! The one way tests start the platform: `Stack` runs a private nats-server, the control
//! plane on a fresh PostgreSQL database publishing to it, and workers following it, and
//! offers the steps most tests take (a tenant, a connector, a key, a real MCP client, and
//! waiting until every worker serves a tenant). Nothing else in the suite starts
//! nats-server, a control plane or a worker.

use crate::control_plane::{ControlPlane, CpBuses};
use crate::db::{postgres_store, test_keys};
use crate::nats::NatsServer;
use crate::worker::{Worker, mcp_client};
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::PolicyBus;
use switchyard_control_plane::compile::Keys;
use switchyard_control_plane::{Config, Store};
use switchyard_proto::admin::v1 as pb;

/// How long the stack's waits poll before they give up.
const WAIT: Duration = Duration::from_secs(20);

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;
type WorkerAdjust = Arc<dyn Fn(&mut switchyard_worker::Config) + Send + Sync>;
type ControlPlaneAdjust = Box<dyn FnOnce(&mut Config) + Send>;

/// How a `Stack` is started; `Stack::builder()` makes one.
pub struct StackBuilder {
    workers: usize,
    nats: bool,
    max_payload: Option<usize>,
    accounts: bool,
    store: Option<Store>,
    control_plane: ControlPlaneAdjust,
    worker: WorkerAdjust,
}

impl StackBuilder {
    /// Starts `n` workers (one by default).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// The control plane alone, on its database, publishing nowhere (its changes wait in
    /// the outbox), and no workers.
    pub fn without_nats(mut self) -> Self {
        self.nats = false;
        self.workers = 0;
        self
    }

    /// NATS refuses messages over `bytes` (its default is 1 MiB).
    pub fn nats_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    /// NATS in operator mode: every client needs credentials, and dedicated workers get
    /// theirs from the control plane's signer, limited to their tenant's keys.
    pub fn nats_accounts(mut self) -> Self {
        self.accounts = true;
        self
    }

    /// The control plane on `store` rather than a fresh PostgreSQL database.
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Adjusts the control plane's configuration before it starts.
    pub fn control_plane(mut self, adjust: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.control_plane = Box::new(adjust);
        self
    }

    /// Adjusts every worker's configuration (also of workers started later).
    pub fn worker_config(
        mut self,
        adjust: impl Fn(&mut switchyard_worker::Config) + Send + Sync + 'static,
    ) -> Self {
        self.worker = Arc::new(adjust);
        self
    }

    pub async fn start(self) -> Stack {
        let nats = if self.nats {
            Some(NatsServer::start_with(self.max_payload, self.accounts).await)
        } else {
            None
        };
        let buses = match &nats {
            Some(n) => CpBuses::nats(n).await,
            None => CpBuses::default(),
        };
        let store = match self.store {
            Some(s) => s,
            None => postgres_store().await,
        };
        let token = switchyard_control_plane::auth::generate_operator_token();
        let cp = ControlPlane::start(store, test_keys(), token, buses, self.control_plane).await;
        let mut stack = Stack {
            nats,
            cp,
            workers: Vec::new(),
            worker_adjust: self.worker,
        };
        for _ in 0..self.workers {
            let w = stack.start_worker(|_| {}).await;
            w.wait_ready().await;
            stack.workers.push(w);
        }
        stack
    }
}

/// A running platform: NATS, a control plane, and its workers; stopped when dropped.
pub struct Stack {
    nats: Option<NatsServer>,
    pub cp: ControlPlane,
    pub workers: Vec<Worker>,
    worker_adjust: WorkerAdjust,
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder {
            workers: 1,
            nats: true,
            max_payload: None,
            accounts: false,
            store: None,
            control_plane: Box::new(|_| {}),
            worker: Arc::new(|_| {}),
        }
    }

    /// NATS, a control plane on PostgreSQL and one worker.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A nats-server alone, for the contract tests of the buses.
    pub async fn nats_server() -> NatsServer {
        NatsServer::start().await
    }

    /// The stack's nats-server (`stop` and `restart` it for outages).
    pub fn nats(&self) -> &NatsServer {
        self.nats.as_ref().expect("a stack with NATS")
    }

    /// The first worker.
    pub fn worker(&self) -> &Worker {
        self.workers.first().expect("a stack with a worker")
    }

    /// Starts one more worker, owned by the caller (to stop it on its own), its
    /// configuration adjusted by the stack's adjustment and then `adjust`.
    pub async fn start_worker(
        &self,
        adjust: impl FnOnce(&mut switchyard_worker::Config),
    ) -> Worker {
        self.start_worker_with_keys(&self.cp.keys, adjust).await
    }

    /// Like `start_worker`, opening policies with `keys` (a dedicated worker's own).
    pub async fn start_worker_with_keys(
        &self,
        keys: &Keys,
        adjust: impl FnOnce(&mut switchyard_worker::Config),
    ) -> Worker {
        let common = self.worker_adjust.clone();
        Worker::start(keys, self.nats(), |c| {
            common(c);
            adjust(c);
        })
        .await
    }

    /// Another control plane replica on the same database and token, publishing into
    /// `bus` (nowhere if `None`).
    pub async fn replica(&self, bus: Option<Arc<dyn PolicyBus>>) -> ControlPlane {
        self.cp
            .replica(self.cp.keys.clone(), CpBuses::policy(bus))
            .await
    }

    /// Another replica on the same database and token that consumes and publishes on the
    /// stack's NATS as the first does (a replica taking over from one that stopped).
    pub async fn replica_on_nats(&self) -> ControlPlane {
        let buses = CpBuses::nats(self.nats()).await;
        self.cp.replica(self.cp.keys.clone(), buses).await
    }

    /// A replica with other keys (a policy key being rotated).
    pub async fn replica_with_keys(
        &self,
        keys: Keys,
        bus: Option<Arc<dyn PolicyBus>>,
    ) -> ControlPlane {
        self.cp.replica(keys, CpBuses::policy(bus)).await
    }

    /// A reader of the policy bucket the control plane publishes to.
    pub async fn policy_bus(&self) -> Arc<dyn PolicyBus> {
        let buckets = crate::nats::test_buckets();
        Arc::new(switchyard_bus::NatsBus::new(
            self.nats().client().await,
            &buckets.policy,
        ))
    }

    /// Creates tenant `slug` with default quotas.
    pub async fn tenant(&self, slug: &str) -> pb::Tenant {
        self.cp.create_tenant(slug).await
    }

    /// Creates the tenant `req` describes.
    pub async fn tenant_with(&self, req: pb::CreateTenantRequest) -> pb::Tenant {
        self.cp
            .tenants()
            .create_tenant(req)
            .await
            .unwrap()
            .into_inner()
    }

    /// Adds MCP connector `name` at `url` to `tenant`.
    pub async fn connector(&self, tenant: &str, name: &str, url: &str) -> pb::Connector {
        self.cp
            .connectors()
            .create_connector(crate::mcp_connector(tenant, name, url, &[]))
            .await
            .unwrap()
            .into_inner()
    }

    /// Tenant `slug` with default quotas, one MCP connector `name` at `url`, and an admin
    /// key: the key's credential.
    pub async fn tenant_with_connector(&self, slug: &str, name: &str, url: &str) -> String {
        self.tenant(slug).await;
        self.connector(slug, name, url).await;
        self.key(slug).await
    }

    /// Tenant `slug` with MCP connector `name` at `url` and a key held to one request a
    /// second, once the first worker serves it: the key.
    pub async fn tenant_with_slow_key(&self, slug: &str, name: &str, url: &str) -> String {
        self.tenant(slug).await;
        self.connector(slug, name, url).await;
        let key = self
            .key_with(pb::CreateApiKeyRequest {
                tenant: slug.into(),
                requests_per_second: Some(1),
                ..Default::default()
            })
            .await;
        self.wait_serving(slug, &key).await;
        key
    }

    /// A new admin API key of `tenant`: the credential to send.
    pub async fn key(&self, tenant: &str) -> String {
        self.cp.api_key(tenant).await
    }

    /// A new API key as `req` describes it.
    pub async fn key_with(&self, req: pb::CreateApiKeyRequest) -> String {
        self.cp
            .keys_api()
            .create_api_key(req)
            .await
            .unwrap()
            .into_inner()
            .secret
    }

    /// A real MCP client session with the first worker, once that worker serves `tenant`
    /// with `key`.
    pub async fn client(&self, tenant: &str, key: &str) -> Client {
        client_of(self.worker(), tenant, key).await
    }

    /// Waits until every worker serves `tenant` with `key`: an MCP session opens and lists
    /// tools.
    pub async fn wait_serving(&self, tenant: &str, key: &str) {
        for w in &self.workers {
            let c = client_of(w, tenant, key).await;
            c.cancel().await.ok();
        }
    }
}

/// A real MCP client session with `worker`, polling until it opens and lists tools.
pub async fn client_of(worker: &Worker, tenant: &str, key: &str) -> Client {
    let url = worker.endpoint(tenant);
    crate::eventually(WAIT, &format!("{url} serves"), || async {
        let c = mcp_client(&url, key).await?;
        c.peer().list_all_tools().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(c)
    })
    .await
}

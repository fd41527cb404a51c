//! The end-to-end harness: a private PostgreSQL database per test, the real control plane
//! started in-process on port 0, authenticated gRPC clients, and captured logs.
//!
//! Tests need `SWITCHYARD_TEST_DATABASE_URL`, a superuser URL of a PostgreSQL server that
//! `scripts/test.sh` starts; each test creates its own database there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use switchyard_common::netguard::UpstreamGuard;
use switchyard_common::seal::{Keyring, SecretKey};
use switchyard_control_plane::compile::Keys;
use switchyard_control_plane::{Config, Store};
use switchyard_proto::admin::v1 as pb;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use switchyard_proto::admin::v1 as admin;

/// Polls `cond` until it holds or `timeout` passes; panics with `what` on timeout.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $timeout:expr, $($what:tt)+) => {{
        let deadline = std::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!("not true within {:?}: {}", $timeout, format!($($what)+));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

/// Runs each named `async fn(Store)` as two tests, on SQLite and on PostgreSQL: one store
/// contract, every backend.
#[macro_export]
macro_rules! store_contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = $crate::sqlite_store().await;
                    super::$name(store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::postgres_store().await).await;
                }
            )*
        }
    };
}

// ---- logs ----

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Buffer> = OnceLock::new();

/// Captures every log line of this test process at DEBUG level (and echoes it to stderr,
/// which the test runner shows only for failing tests).
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .ok();
        buffer
    });
}

/// Everything logged so far by this test process.
pub fn logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.0.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

// ---- databases ----

/// Creates a fresh PostgreSQL database and returns its URL.
pub async fn postgres_database() -> String {
    use sqlx::Connection as _;
    let admin_url = std::env::var("SWITCHYARD_TEST_DATABASE_URL").expect(
        "SWITCHYARD_TEST_DATABASE_URL is not set: run `bash scripts/test.sh`, which starts a \
         private PostgreSQL and sets it",
    );
    let name = format!("sy_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connecting to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A migrated store on a fresh PostgreSQL database.
pub async fn postgres_store() -> Store {
    let store = Store::connect(&postgres_database().await).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A migrated store on a fresh SQLite file; keep the directory alive as long as the store.
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

pub fn test_keys() -> Keys {
    Keys {
        master: Keyring::new(SecretKey::generate()),
        policy: Keyring::new(SecretKey::generate()),
    }
}

// ---- the control plane ----

pub type Authed = InterceptedService<Channel, TokenInterceptor>;

#[derive(Clone)]
pub struct TokenInterceptor(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A control plane serving on an ephemeral port; stopped when dropped.
pub struct ControlPlane {
    pub addr: SocketAddr,
    /// Health and metrics.
    pub metrics: SocketAddr,
    pub token: String,
    pub store: Store,
    pub keys: Keys,
    channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ControlPlane {
    /// Starts on a fresh PostgreSQL database, allowing loopback upstreams.
    pub async fn start() -> Self {
        Self::start_on(postgres_store().await).await
    }

    pub async fn start_on(store: Store) -> Self {
        Self::start_with_bus(store, None).await
    }

    /// Starts with an outbox publisher into `bus`, if given.
    pub async fn start_with_bus(
        store: Store,
        bus: Option<std::sync::Arc<dyn switchyard_bus::PolicyBus>>,
    ) -> Self {
        let token = switchyard_control_plane::auth::generate_operator_token();
        Self::launch(store, test_keys(), token, bus, None, None).await
    }

    /// Starts publishing policies to, and folding usage from, `nats`.
    pub async fn start_on_nats(store: Store, nats: &NatsServer) -> Self {
        Self::start_on_nats_with(store, nats, |_| {}).await
    }

    /// A second replica on the same store, keys and token, publishing into `bus`.
    pub async fn replica(
        &self,
        bus: Option<std::sync::Arc<dyn switchyard_bus::PolicyBus>>,
    ) -> Self {
        self.replica_with_keys(self.keys.clone(), bus).await
    }

    /// A replica on the same store and token with other keys (a key being rotated).
    pub async fn replica_with_keys(
        &self,
        keys: Keys,
        bus: Option<std::sync::Arc<dyn switchyard_bus::PolicyBus>>,
    ) -> Self {
        Self::launch(
            self.store.clone(),
            keys,
            self.token.clone(),
            bus,
            None,
            None,
        )
        .await
    }

    async fn launch(
        store: Store,
        keys: Keys,
        token: String,
        bus: Option<std::sync::Arc<dyn switchyard_bus::PolicyBus>>,
        usage: Option<std::sync::Arc<dyn switchyard_bus::UsageBus>>,
        fleet: Option<std::sync::Arc<dyn switchyard_bus::Fleet>>,
    ) -> Self {
        Self::launch_with(store, keys, token, bus, usage, fleet, |_| {}).await
    }

    /// Like `start_on_nats`, with the control plane's configuration adjusted by `adjust`
    /// first (compute profiles, the namespace reconciler).
    pub async fn start_on_nats_with(
        store: Store,
        nats: &NatsServer,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let client = nats.client().await;
        let token = switchyard_control_plane::auth::generate_operator_token();
        let bus = std::sync::Arc::new(switchyard_bus::NatsBus::new(client.clone(), "policy"));
        let usage = std::sync::Arc::new(switchyard_bus::NatsUsage::new(client.clone()));
        let fleet = std::sync::Arc::new(switchyard_bus::NatsFleet::new(
            client,
            "workers",
            std::time::Duration::from_secs(3),
        ));
        Self::launch_with(
            store,
            test_keys(),
            token,
            Some(bus),
            Some(usage),
            Some(fleet),
            adjust,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn launch_with(
        store: Store,
        keys: Keys,
        token: String,
        bus: Option<std::sync::Arc<dyn switchyard_bus::PolicyBus>>,
        usage: Option<std::sync::Arc<dyn switchyard_bus::UsageBus>>,
        fleet: Option<std::sync::Arc<dyn switchyard_bus::Fleet>>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        capture_logs();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let config = Config {
            keys: keys.clone(),
            upstream_guard: UpstreamGuard::new(vec!["127.0.0.0/8".parse().unwrap()]),
            bootstrap_token: Some(token.clone()),
            usage_bus: bus.as_ref().and(usage),
            policy_bus: bus,
            fleet,
            profiles: Default::default(),
            kube: None,
        };
        let mut config = config;
        adjust(&mut config);
        // The token must be installed before the first request can arrive.
        switchyard_control_plane::server::install_bootstrap_token(&store, Some(&token))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_store = store.clone();
        tokio::spawn(async move {
            let listeners = switchyard_control_plane::Listeners {
                grpc: listener,
                metrics: Some(metrics),
            };
            switchyard_control_plane::serve(listeners, server_store, config, async {
                stopped.await.ok();
            })
            .await
            .unwrap();
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect_lazy();
        Self {
            addr,
            metrics: metrics_addr,
            token,
            store,
            keys,
            channel,
            stop: Some(stop),
        }
    }

    /// A channel that sends `token` (or nothing) as the bearer credential.
    pub fn channel_with(&self, token: Option<&str>) -> Authed {
        let value = token.map(|t| format!("Bearer {t}").parse().unwrap());
        InterceptedService::new(self.channel.clone(), TokenInterceptor(value))
    }

    pub fn authed(&self) -> Authed {
        self.channel_with(Some(&self.token))
    }

    /// A channel without credentials.
    pub fn plain(&self) -> Channel {
        self.channel.clone()
    }

    pub fn tenants(&self) -> pb::tenant_service_client::TenantServiceClient<Authed> {
        pb::tenant_service_client::TenantServiceClient::new(self.authed())
    }

    pub fn connectors(&self) -> pb::connector_service_client::ConnectorServiceClient<Authed> {
        pb::connector_service_client::ConnectorServiceClient::new(self.authed())
    }

    pub fn keys_api(&self) -> pb::api_key_service_client::ApiKeyServiceClient<Authed> {
        pb::api_key_service_client::ApiKeyServiceClient::new(self.authed())
    }

    pub fn fleet(&self) -> pb::fleet_service_client::FleetServiceClient<Authed> {
        pb::fleet_service_client::FleetServiceClient::new(self.authed())
    }

    /// Creates an API key (editor, no rate of its own) for `tenant`; returns its secret.
    pub async fn api_key(&self, tenant: &str) -> String {
        self.keys_api()
            .create_api_key(pb::CreateApiKeyRequest {
                tenant: tenant.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .secret
    }

    /// Creates a tenant with default quotas.
    pub async fn create_tenant(&self, slug: &str) -> pb::Tenant {
        self.tenants()
            .create_tenant(pb::CreateTenantRequest {
                slug: slug.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

/// An MCP connector request for `tenant` named `name` pointing at `url`.
pub fn mcp_connector(
    tenant: &str,
    name: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> pb::CreateConnectorRequest {
    pb::CreateConnectorRequest {
        connector: Some(pb::Connector {
            tenant: tenant.into(),
            name: name.into(),
            kind: Some(pb::connector::Kind::Mcp(pb::McpConnector {
                url: url.into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| pb::Header {
                        name: (*n).into(),
                        value: Some((*v).into()),
                        value_set: false,
                    })
                    .collect(),
            })),
            ..Default::default()
        }),
        enabled: None,
    }
}

/// The field named by an INVALID_ARGUMENT status's BadRequest details.
pub fn violated_field(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
}

// ---- NATS ----

/// A private nats-server (JetStream on) on a random port; killed when dropped. It can be
/// stopped and started again on the same port and storage, to test outages.
pub struct NatsServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self {
            dir,
            port: 0,
            child: None,
        };
        server.spawn(None).await;
        server
    }

    async fn spawn(&mut self, port: Option<u16>) {
        let ports_dir = self.dir.path().join("ports");
        std::fs::create_dir_all(&ports_dir).unwrap();
        for f in std::fs::read_dir(&ports_dir).unwrap() {
            std::fs::remove_file(f.unwrap().path()).ok();
        }
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg])
            .arg("-sd")
            .arg(self.dir.path().join("js"))
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server on PATH (scripts/test.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let port = loop {
            let found = std::fs::read_dir(&ports_dir)
                .unwrap()
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .find_map(|text| {
                    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                    let url = v["nats"][0].as_str()?.to_owned();
                    url.rsplit(':').next()?.parse::<u16>().ok()
                });
            if let Some(p) = found {
                break p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        self.port = port;
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A client that keeps reconnecting across outages.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(self.url())
            .await
            .unwrap()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts again on the same port and storage.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn(Some(port)).await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- workers and MCP clients ----

pub mod conformance;
pub mod kube_fake;
pub mod modern;
pub mod proxy;
pub mod python;
pub mod upstream;

/// Installs the process-wide TLS provider rmcp's HTTP client needs.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A worker serving on ephemeral ports; stopped when dropped.
pub struct Worker {
    pub mcp: SocketAddr,
    pub metrics: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    /// Starts a worker following the policy bucket of `nats` and sharing sessions there,
    /// opening secrets with `keys.policy`, allowed to reach loopback upstreams.
    pub async fn start(keys: &Keys, nats: &NatsServer) -> Self {
        Self::start_configured(keys, nats, |_| {}).await
    }

    /// Like `start`, with the worker's configuration adjusted by `adjust` first.
    pub async fn start_configured(
        keys: &Keys,
        nats: &NatsServer,
        adjust: impl FnOnce(&mut switchyard_worker::Config),
    ) -> Self {
        let client = nats.client().await;
        let bus = std::sync::Arc::new(switchyard_bus::NatsBus::new(client.clone(), "policy"));
        let buses = switchyard_worker::Buses {
            policy: bus,
            sessions: std::sync::Arc::new(switchyard_bus::NatsSessions::new(
                client.clone(),
                "sessions",
                std::time::Duration::from_secs(600),
            )),
            usage: std::sync::Arc::new(switchyard_bus::NatsUsage::new(client.clone())),
            fleet: std::sync::Arc::new(switchyard_bus::NatsFleet::new(
                client,
                "workers",
                std::time::Duration::from_secs(3),
            )),
        };
        Self::launch(keys, buses, adjust).await
    }

    pub async fn start_with(keys: &Keys, buses: switchyard_worker::Buses) -> Self {
        Self::launch(keys, buses, |_| {}).await
    }

    async fn launch(
        keys: &Keys,
        buses: switchyard_worker::Buses,
        adjust: impl FnOnce(&mut switchyard_worker::Config),
    ) -> Self {
        capture_logs();
        install_tls();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mcp, metrics_addr) = (http.local_addr().unwrap(), metrics.local_addr().unwrap());
        let mut config = switchyard_worker::Config::new(keys.policy.clone());
        config.upstream_guard = UpstreamGuard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        // Heartbeats well within the test fleet bucket's 3 s time to live.
        config.heartbeat_every = std::time::Duration::from_secs(1);
        adjust(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            switchyard_worker::run(config, http, metrics, buses, async {
                stopped.await.ok();
            })
            .await
            .unwrap();
        });
        Self {
            mcp,
            metrics: metrics_addr,
            stop: Some(stop),
            running: Some(running),
        }
    }

    pub fn endpoint(&self, tenant: &str) -> String {
        format!("http://{}/t/{tenant}/mcp", self.mcp)
    }

    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics)
    }

    /// Stops the worker as SIGTERM would and waits until it has finished.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(running) = self.running.take() {
            running.await.ok();
        }
    }

    /// Starts a shutdown (as SIGTERM would) without waiting for it; `finished` waits.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        self.running
            .take()
            .unwrap_or_else(|| tokio::spawn(async {}))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

/// An rmcp client session to `url` with `key` as bearer credential.
pub async fn mcp_client(
    url: &str,
    key: &str,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ()>, String> {
    use rmcp::ServiceExt as _;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    install_tls();
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(key.to_owned());
    let transport = StreamableHttpClientTransport::from_config(config);
    ().serve(transport).await.map_err(|e| e.to_string())
}

//! The real worker, started in-process on port 0, and MCP clients.

use crate::capture_logs;
use crate::nats::NatsServer;
use std::net::SocketAddr;
use switchyard_common::netguard::UpstreamGuard;
use switchyard_control_plane::compile::Keys;

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
    /// Starts a worker on the buses of `nats`, opening secrets with `keys.policy`,
    /// allowed to reach loopback upstreams, its configuration adjusted by `adjust`.
    pub(crate) async fn start(
        keys: &Keys,
        nats: &NatsServer,
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
        let client = match (&nats.accounts, &config.only_tenant) {
            (Some(accounts), Some(tenant)) => {
                let creds = accounts.signer().dedicated_worker_creds(tenant).unwrap();
                let inbox = switchyard_bus::inbox_prefix(tenant);
                nats.client_as(&creds, Some(inbox)).await
            }
            _ => nats.client().await,
        };
        let buckets = crate::nats::test_buckets();
        let buses = match &config.only_tenant {
            Some(tenant) => switchyard_bus::Buses::nats_for_tenant(client, &buckets, tenant),
            None => switchyard_bus::Buses::nats(client, &buckets),
        };
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

    /// Waits until the worker reports ready (its initial policies are loaded).
    pub async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        crate::assert_eventually!(
            http.get(self.metrics_url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200),
            std::time::Duration::from_secs(20),
            "worker {} ready",
            self.mcp
        );
    }

    /// The value of the metric series `series` (name and labels as rendered), if shown.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::get(self.metrics_url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    pub fn endpoint(&self, tenant: &str) -> String {
        format!("http://{}/t/{tenant}/mcp", self.mcp)
    }

    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics)
    }

    /// The lines of the worker's `/metrics` whose series is `name`'s.
    pub async fn series(&self, name: &str) -> Vec<String> {
        let text = reqwest::get(self.metrics_url("/metrics"))
            .await
            .expect("the worker's metrics answer")
            .text()
            .await
            .expect("the worker's metrics are text");
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
            .map(str::to_owned)
            .collect()
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
